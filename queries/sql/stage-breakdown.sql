-- name: stage-breakdown
-- description: Where the time goes: per model and stage, the request count and the p50/p95/p99 and mean duration in milliseconds, stages in pipeline order then total. share_of_total is the stage's time over the same requests' total time (what fraction of latency this stage is). Percentiles are exact (quantilesExactInclusive, linear interpolation like numpy's default), so every duration in the range is held in memory: narrow by model or time for very long ranges.
-- param: from DateTime64(6) default=-1h start of the range (inclusive)
-- param: to DateTime64(6) default=now end of the range (exclusive)
-- param: model String default='' only this model ('' = every model)
WITH
  ['deserialize', 'preprocess', 'queue_wait', 'compute', 'postprocess', 'serialize', 'total'] AS stages,
  -- one exact state for the three levels rather than three
  quantilesExactInclusive(0.5, 0.95, 0.99)(duration_us) AS q_us
SELECT
  model,
  stage,
  count() AS requests,
  round(q_us[1] / 1000, 3) AS p50_ms,
  round(q_us[2] / 1000, 3) AS p95_ms,
  round(q_us[3] / 1000, 3) AS p99_ms,
  round(avg(duration_us) / 1000, 3) AS mean_ms,
  round(sum(duration_us) / greatest(sum(total_us), 1), 4) AS share_of_total
FROM spans FINAL
ARRAY JOIN
  stages AS stage,
  [deserialize_us, preprocess_us, queue_wait_us, compute_us, postprocess_us, serialize_us, total_us] AS duration_us
WHERE timestamp >= {from:DateTime64(6)}
  AND timestamp < {to:DateTime64(6)}
  AND ({model:String} = '' OR model = {model:String})
GROUP BY model, stage
ORDER BY model, indexOf(stages, stage)
