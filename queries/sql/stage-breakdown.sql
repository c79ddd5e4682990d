-- name: stage-breakdown
-- description: Where the time goes: per model and stage, the request count and the p50/p95/p99 and mean duration in milliseconds, stages in pipeline order then total. share_of_total is the stage's time over the same requests' total time (what fraction of latency this stage is). A range of less than a whole minute is read from the raw spans with exact percentiles (quantilesExactInclusive, linear interpolation like numpy's default). A longer one is answered from the rollups — whole hours from spans_1h, whole minutes from spans_1m, the seconds at its ends from the raw spans — with counts, means and shares exact and percentiles within 1 % (DDSketch).
-- param: from DateTime64(6) default=-1h start of the range (inclusive)
-- param: to DateTime64(6) default=now end of the range (exclusive)
-- param: model String default='' only this model ('' = every model)
WITH
  ['deserialize', 'preprocess', 'queue_wait', 'compute', 'postprocess', 'serialize', 'total'] AS stages,
  {from:DateTime64(6)} AS range_from,
  {to:DateTime64(6)} AS range_to,
  -- the whole minutes and the whole hours inside the range
  toDateTime64(toStartOfMinute(range_from), 6, 'UTC') AS m0,
  if(m0 = range_from, m0, m0 + toIntervalMinute(1)) AS minutes_from,
  toDateTime64(toStartOfMinute(range_to), 6, 'UTC') AS minutes_to,
  toDateTime64(toStartOfHour(range_from), 6, 'UTC') AS h0,
  if(h0 = range_from, h0, h0 + toIntervalHour(1)) AS hours_from,
  toDateTime64(toStartOfHour(range_to), 6, 'UTC') AS hours_to,
  minutes_to - minutes_from >= 60 AS from_rollups,
  hours_to > hours_from AS with_hours
SELECT * FROM
(
  -- short ranges: exact percentiles over the raw spans
  WITH
    -- one exact state for the three levels rather than three
    quantilesExactInclusive(0.5, 0.95, 0.99)(duration_us) AS exact_us
  SELECT
    model,
    stage,
    count() AS requests,
    round(exact_us[1] / 1000, 3) AS p50_ms,
    round(exact_us[2] / 1000, 3) AS p95_ms,
    round(exact_us[3] / 1000, 3) AS p99_ms,
    round(avg(duration_us) / 1000, 3) AS mean_ms,
    round(sum(duration_us) / greatest(sum(total_us), 1), 4) AS share_of_total
  FROM spans
  ARRAY JOIN
    stages AS stage,
    [deserialize_us, preprocess_us, queue_wait_us, compute_us, postprocess_us, serialize_us, total_us] AS duration_us
  WHERE NOT from_rollups
    AND timestamp >= range_from
    AND timestamp < range_to
    AND ({model:String} = '' OR model = {model:String})
  GROUP BY model, stage

  UNION ALL

  -- longer ranges: the rollups' states merged per model, one row per stage after
  SELECT
    model,
    stage,
    requests,
    round(dd_us[1] / 1000, 3) AS p50_ms,
    round(dd_us[2] / 1000, 3) AS p95_ms,
    round(dd_us[3] / 1000, 3) AS p99_ms,
    round(sum_us / greatest(requests, 1) / 1000, 3) AS mean_ms,
    round(sum_us / greatest(total_sum_us, 1), 4) AS share_of_total
  FROM
  (
    SELECT
      model,
      sum(n) AS requests,
      sum(total_us_sum) AS total_sum_us,
      -- array(), not [ ]: a bracketed list here would read as a stage list to the STAGES check
      array(quantilesDDMerge(0.01, 0.5, 0.95, 0.99)(deserialize_us_q), quantilesDDMerge(0.01, 0.5, 0.95, 0.99)(preprocess_us_q),
       quantilesDDMerge(0.01, 0.5, 0.95, 0.99)(queue_wait_us_q), quantilesDDMerge(0.01, 0.5, 0.95, 0.99)(compute_us_q),
       quantilesDDMerge(0.01, 0.5, 0.95, 0.99)(postprocess_us_q), quantilesDDMerge(0.01, 0.5, 0.95, 0.99)(serialize_us_q),
       quantilesDDMerge(0.01, 0.5, 0.95, 0.99)(total_us_q)) AS qs,
      array(sum(deserialize_us_sum), sum(preprocess_us_sum), sum(queue_wait_us_sum), sum(compute_us_sum),
       sum(postprocess_us_sum), sum(serialize_us_sum), sum(total_us_sum)) AS sums
    FROM
    (
      SELECT model, requests AS n, deserialize_us_q, preprocess_us_q, queue_wait_us_q, compute_us_q, postprocess_us_q,
             serialize_us_q, total_us_q, deserialize_us_sum, preprocess_us_sum, queue_wait_us_sum, compute_us_sum,
             postprocess_us_sum, serialize_us_sum, total_us_sum
      FROM spans_1h
      WHERE from_rollups AND with_hours
        AND hour >= hours_from AND hour < hours_to
        AND ({model:String} = '' OR model = {model:String})
      UNION ALL
      SELECT model, requests AS n, deserialize_us_q, preprocess_us_q, queue_wait_us_q, compute_us_q, postprocess_us_q,
             serialize_us_q, total_us_q, deserialize_us_sum, preprocess_us_sum, queue_wait_us_sum, compute_us_sum,
             postprocess_us_sum, serialize_us_sum, total_us_sum
      FROM spans_1m
      WHERE from_rollups
        AND minute >= minutes_from AND minute < minutes_to
        AND NOT (with_hours AND minute >= hours_from AND minute < hours_to)
        AND ({model:String} = '' OR model = {model:String})
      UNION ALL
      SELECT model, count() AS n,
             quantilesDDState(0.01, 0.5)(deserialize_us) AS deserialize_us_q, quantilesDDState(0.01, 0.5)(preprocess_us) AS preprocess_us_q,
             quantilesDDState(0.01, 0.5)(queue_wait_us) AS queue_wait_us_q, quantilesDDState(0.01, 0.5)(compute_us) AS compute_us_q,
             quantilesDDState(0.01, 0.5)(postprocess_us) AS postprocess_us_q, quantilesDDState(0.01, 0.5)(serialize_us) AS serialize_us_q,
             quantilesDDState(0.01, 0.5)(total_us) AS total_us_q,
             sum(deserialize_us) AS deserialize_us_sum, sum(preprocess_us) AS preprocess_us_sum, sum(queue_wait_us) AS queue_wait_us_sum,
             sum(compute_us) AS compute_us_sum, sum(postprocess_us) AS postprocess_us_sum, sum(serialize_us) AS serialize_us_sum,
             sum(total_us) AS total_us_sum
      FROM spans
      WHERE from_rollups
        AND ((timestamp >= range_from AND timestamp < minutes_from) OR (timestamp >= minutes_to AND timestamp < range_to))
        AND ({model:String} = '' OR model = {model:String})
      GROUP BY model
    )
    GROUP BY model
  )
  ARRAY JOIN stages AS stage, qs AS dd_us, sums AS sum_us
)
ORDER BY model, indexOf(stages, stage)
