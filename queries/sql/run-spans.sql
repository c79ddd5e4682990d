-- name: run-spans
-- description: The requests of one run (run_id) or of a time range, one row each: model, status, arrival time (epoch µs), cache hit, batch size and every stage's duration in µs. What `breakid compare` and `breakid experiment` compute their statistics from. A run larger than `limit` is cut to a deterministic sample (by request id hash), so the same run gives the same rows.
-- param: run String default='' only this run ('' = every run in the time range)
-- param: from DateTime64(6) default=-1h start of the range (inclusive)
-- param: to DateTime64(6) default=now end of the range (exclusive)
-- param: model String default='' only this model ('' = every model)
-- param: limit UInt32 default=100000 min=1 max=2000000 most requests returned (the query limits cap results at 100 000 rows by default)
SELECT
  model,
  status,
  toUnixTimestamp64Micro(timestamp) AS timestamp_us,
  cache_hit,
  batch_size,
  deserialize_us,
  preprocess_us,
  queue_wait_us,
  compute_us,
  postprocess_us,
  serialize_us,
  total_us
FROM spans
WHERE ({run:String} = '' OR run_id = {run:String})
  AND timestamp >= {from:DateTime64(6)}
  AND timestamp < {to:DateTime64(6)}
  AND ({model:String} = '' OR model = {model:String})
ORDER BY cityHash64(request_id)
LIMIT {limit:UInt32}
