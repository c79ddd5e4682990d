-- name: throughput
-- description: Requests per second and error rate per model in buckets of `step` seconds. A bucket cut by the range's ends is divided by the part of it inside the range, so partial buckets are not under-counted. With whole minutes for the range and the step, the counts come from the per-minute rollup instead of the raw spans.
-- param: from DateTime64(6) default=-1h start of the range (inclusive)
-- param: to DateTime64(6) default=now end of the range (exclusive)
-- param: model String default='' only this model ('' = every model)
-- param: step UInt32 default=60 min=1 max=86400 bucket width in seconds
WITH
  {from:DateTime64(6)} AS range_from,
  {to:DateTime64(6)} AS range_to,
  {step:UInt32} % 60 = 0
    AND toStartOfMinute(range_from) = range_from
    AND toStartOfMinute(range_to) = range_to AS from_rollup
SELECT
  bucket,
  model,
  requests,
  errors,
  round(errors / requests, 4) AS error_rate,
  round(
    requests / (dateDiff('microsecond',
      greatest(toDateTime64(bucket, 6, 'UTC'), range_from),
      least(toDateTime64(bucket, 6, 'UTC') + toIntervalSecond({step:UInt32}), range_to)) / 1e6),
    3) AS requests_per_s
FROM
(
  SELECT
    toStartOfInterval(timestamp, toIntervalSecond({step:UInt32})) AS bucket,
    model,
    count() AS requests,
    countIf(status != 'ok') AS errors
  FROM spans
  WHERE NOT from_rollup
    AND timestamp >= range_from
    AND timestamp < range_to
    AND ({model:String} = '' OR model = {model:String})
  GROUP BY bucket, model
  UNION ALL
  SELECT
    toStartOfInterval(minute, toIntervalSecond({step:UInt32})) AS bucket,
    model,
    -- positional: named as the first branch's columns
    sum(spans_1m.requests) AS rolled_requests,
    sumIf(spans_1m.requests, status != 'ok') AS rolled_errors
  FROM spans_1m
  WHERE from_rollup
    AND minute >= range_from
    AND minute < range_to
    AND ({model:String} = '' OR model = {model:String})
  GROUP BY bucket, model
)
ORDER BY bucket, model
