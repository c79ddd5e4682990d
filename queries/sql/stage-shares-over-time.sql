-- name: stage-shares-over-time
-- description: Where the time went, over time: per bucket of `step` seconds and stage (pipeline order), the stage's share of the same requests' total time and its mean duration in milliseconds. Shares of one bucket add up to at most 1; the rest is time between stages. The dashboard's stacked stage chart.
-- param: from DateTime64(6) default=-1h start of the range (inclusive)
-- param: to DateTime64(6) default=now end of the range (exclusive)
-- param: step UInt32 default=60 min=1 max=86400 bucket width in seconds
-- param: model String default='' only this model ('' = every model)
-- param: instance String default='' only this instance ('' = every instance)
WITH ['deserialize', 'preprocess', 'queue_wait', 'compute', 'postprocess', 'serialize'] AS stages
SELECT
  toStartOfInterval(timestamp, toIntervalSecond({step:UInt32})) AS bucket,
  stage,
  count() AS requests,
  round(sum(duration_us) / greatest(sum(total_us), 1), 4) AS share,
  round(avg(duration_us) / 1000, 3) AS mean_ms
FROM spans
ARRAY JOIN
  stages AS stage,
  [deserialize_us, preprocess_us, queue_wait_us, compute_us, postprocess_us, serialize_us] AS duration_us
WHERE timestamp >= {from:DateTime64(6)}
  AND timestamp < {to:DateTime64(6)}
  AND ({model:String} = '' OR model = {model:String})
  AND ({instance:String} = '' OR instance = {instance:String})
GROUP BY bucket, stage
ORDER BY bucket, indexOf(stages, stage)
