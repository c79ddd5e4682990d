-- name: slowest-requests
-- description: The slowest requests by total latency, with every stage in milliseconds and the stage that took longest, for following up on tail latency (request and trace ids lead to the traces). Reads the raw spans; ClickHouse skips the granules whose longest request cannot make the list (a min/max index on total_us).
-- param: from DateTime64(6) default=-1h start of the range (inclusive)
-- param: to DateTime64(6) default=now end of the range (exclusive)
-- param: model String default='' only this model ('' = every model)
-- param: limit UInt32 default=20 min=1 max=10000 how many requests
WITH
  ['deserialize', 'preprocess', 'queue_wait', 'compute', 'postprocess', 'serialize'] AS stages,
  [deserialize_us, preprocess_us, queue_wait_us, compute_us, postprocess_us, serialize_us] AS stage_us
SELECT
  timestamp,
  request_id,
  lower(hex(trace_id)) AS trace_id,
  model,
  instance,
  status,
  batch_size,
  round(total_us / 1000, 3) AS total_ms,
  stages[indexOf(stage_us, arrayMax(stage_us))] AS slowest_stage,
  round(deserialize_us / 1000, 3) AS deserialize_ms,
  round(preprocess_us / 1000, 3) AS preprocess_ms,
  round(queue_wait_us / 1000, 3) AS queue_wait_ms,
  round(compute_us / 1000, 3) AS compute_ms,
  round(postprocess_us / 1000, 3) AS postprocess_ms,
  round(serialize_us / 1000, 3) AS serialize_ms
FROM spans
WHERE timestamp >= {from:DateTime64(6)}
  AND timestamp < {to:DateTime64(6)}
  AND ({model:String} = '' OR model = {model:String})
ORDER BY total_us DESC, timestamp, request_id
LIMIT {limit:UInt32}
