-- name: fleet-over-time
-- description: Per time bucket of `step` seconds, model and instance: requests, requests per second (over the part of the bucket inside the range, so partial buckets are not under-counted), errors, error rate and the p50/p95/p99 of total latency in milliseconds (t-digest: approximate, bounded memory over long ranges). The dashboard's fleet overview and the report's throughput and tail-latency chart.
-- param: from DateTime64(6) default=-1h start of the range (inclusive)
-- param: to DateTime64(6) default=now end of the range (exclusive)
-- param: step UInt32 default=60 min=1 max=86400 bucket width in seconds
-- param: model String default='' only this model ('' = every model)
-- param: instance String default='' only this instance ('' = every instance)
WITH quantilesTDigest(0.5, 0.95, 0.99)(total_us) AS q_us
SELECT
  toStartOfInterval(timestamp, toIntervalSecond({step:UInt32})) AS bucket,
  model,
  instance,
  count() AS requests,
  countIf(status != 'ok') AS errors,
  round(errors / requests, 4) AS error_rate,
  round(
    requests / (dateDiff('microsecond',
      greatest(toDateTime64(bucket, 6, 'UTC'), {from:DateTime64(6)}),
      least(toDateTime64(bucket, 6, 'UTC') + toIntervalSecond({step:UInt32}), {to:DateTime64(6)})) / 1e6),
    3) AS requests_per_s,
  round(q_us[1] / 1000, 3) AS p50_ms,
  round(q_us[2] / 1000, 3) AS p95_ms,
  round(q_us[3] / 1000, 3) AS p99_ms
FROM spans
WHERE timestamp >= {from:DateTime64(6)}
  AND timestamp < {to:DateTime64(6)}
  AND ({model:String} = '' OR model = {model:String})
  AND ({instance:String} = '' OR instance = {instance:String})
GROUP BY bucket, model, instance
ORDER BY bucket, model, instance
