-- name: throughput
-- description: Requests per second and error rate per model in buckets of `step` seconds. A bucket cut by the range's ends is divided by the part of it inside the range, so partial buckets are not under-counted.
-- param: from DateTime64(6) default=-1h start of the range (inclusive)
-- param: to DateTime64(6) default=now end of the range (exclusive)
-- param: model String default='' only this model ('' = every model)
-- param: step UInt32 default=60 min=1 max=86400 bucket width in seconds
SELECT
  toStartOfInterval(timestamp, toIntervalSecond({step:UInt32})) AS bucket,
  model,
  count() AS requests,
  countIf(status != 'ok') AS errors,
  round(errors / requests, 4) AS error_rate,
  round(
    requests / (dateDiff('microsecond',
      greatest(toDateTime64(bucket, 6, 'UTC'), {from:DateTime64(6)}),
      least(toDateTime64(bucket, 6, 'UTC') + toIntervalSecond({step:UInt32}), {to:DateTime64(6)})) / 1e6),
    3) AS requests_per_s
FROM spans FINAL
WHERE timestamp >= {from:DateTime64(6)}
  AND timestamp < {to:DateTime64(6)}
  AND ({model:String} = '' OR model = {model:String})
GROUP BY bucket, model
ORDER BY bucket, model
