-- name: request
-- description: One request's span, found by request id or trace id: identity, batch, status and every stage's duration in microseconds (`<stage>_us`, pipeline order, then total_us). A narrower `from`/`to` (the time of the alert that named it) reads fewer partitions. The dashboard's request waterfall.
-- param: id String default='' request id or W3C trace id
-- param: from DateTime64(6) default=0 earliest arrival to look at (inclusive)
-- param: to DateTime64(6) default=+1d latest arrival to look at (exclusive)
SELECT
  timestamp,
  request_id,
  lower(hex(trace_id)) AS trace_id,
  lower(hex(span_id)) AS span_id,
  fleet,
  host,
  instance,
  model,
  model_version,
  device,
  batch_id,
  batch_size,
  status,
  error_class,
  cache_hit,
  request_bytes,
  response_bytes,
  deserialize_us,
  preprocess_us,
  queue_wait_us,
  compute_us,
  postprocess_us,
  serialize_us,
  total_us,
  run_id
FROM spans
WHERE (request_id = {id:String} OR spans.trace_id = unhex(lower({id:String})))
  AND timestamp >= {from:DateTime64(6)}
  AND timestamp < {to:DateTime64(6)}
ORDER BY timestamp, request_id
LIMIT 10
