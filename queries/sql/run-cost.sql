-- name: run-cost
-- description: What a run (or time range) cost, per instance: billed seconds (hardware-sample intervals; the requests' time span where an instance sent no samples of the run), cost and cost per 1,000 ok inferences; executor idle time and its cost (1 − executor_busy), the part of it inside accelerator_starved alerts (idle while starved of data); result-cache hits, the compute they avoided (hits × mean compute per request of the misses) and its cost. Prices come in `prices`, a JSON object from instance or host name to {"type", "kind", "price"} (price per instance-hour), "*" for every other instance (breakid builds it from the config's pricing section).
-- param: run String default='' only this run ('' = every run in the time range)
-- param: from DateTime64(6) default=-1h start of the range (inclusive)
-- param: to DateTime64(6) default=now end of the range (exclusive)
-- param: prices String default='{}' JSON: instance or host → {"type": name, "kind": "cpu" or "accelerator", "price": per hour}; "*" = any other
WITH
  starved AS (
    SELECT
      instance,
      groupArray(tuple(starts_at, ifNull(ends_at, toDateTime64('2200-01-01 00:00:00', 6, 'UTC')))) AS windows
    FROM (SELECT * FROM alerts FINAL)
    WHERE type = 'accelerator_starved'
    GROUP BY instance
  ),
  hw AS (
    SELECT
      h.instance AS instance,
      any(h.host) AS host,
      sum(h.interval_ms) / 1000 AS sampled_s,
      sum((1 - h.executor_busy) * h.interval_ms) / 1000 AS idle_s,
      sumIf(
        (1 - h.executor_busy) * h.interval_ms,
        arrayExists(w -> h.timestamp >= w.1 AND h.timestamp < w.2, s.windows)
      ) / 1000 AS starved_s
    FROM hw_samples AS h
    LEFT JOIN starved AS s ON h.instance = s.instance
    WHERE ({run:String} = '' OR h.run_id = {run:String})
      AND h.timestamp >= {from:DateTime64(6)}
      AND h.timestamp < {to:DateTime64(6)}
    GROUP BY h.instance
  ),
  req AS (
    SELECT
      instance,
      any(host) AS host,
      count() AS requests,
      countIf(status = 'ok') AS ok,
      dateDiff('microsecond', min(timestamp), max(timestamp)) / 1e6 AS span_s,
      countIf(cache_hit) AS cache_hits,
      avgIf(compute_us / greatest(batch_size, 1), NOT cache_hit AND status = 'ok' AND compute_us > 0) AS miss_compute_us
    FROM spans
    WHERE ({run:String} = '' OR run_id = {run:String})
      AND timestamp >= {from:DateTime64(6)}
      AND timestamp < {to:DateTime64(6)}
    GROUP BY instance
  ),
  joined AS (
    SELECT
      if(req.instance != '', req.instance, hw.instance) AS instance,
      if(req.host != '', req.host, hw.host) AS host,
      req.requests AS requests,
      req.ok AS ok,
      if(hw.sampled_s > 0, hw.sampled_s, req.span_s) AS billed_s,
      hw.idle_s AS idle_s,
      hw.starved_s AS starved_s,
      req.cache_hits AS cache_hits,
      req.cache_hits * ifNotFinite(req.miss_compute_us, 0) / 1e6 AS compute_avoided_s,
      multiIf(JSONHas({prices:String}, instance), instance, JSONHas({prices:String}, host), host, '*') AS price_key
    FROM req
    FULL OUTER JOIN hw ON req.instance = hw.instance
  )
SELECT
  instance,
  host,
  JSONExtractString({prices:String}, price_key, 'type') AS instance_type,
  JSONExtractString({prices:String}, price_key, 'kind') AS kind,
  JSONExtractFloat({prices:String}, price_key, 'price') AS price_per_hour,
  requests,
  ok,
  round(billed_s, 3) AS billed_s,
  billed_s / 3600 * price_per_hour AS cost,
  if(ok > 0, cost / ok * 1000, NULL) AS cost_per_1k,
  round(idle_s, 3) AS idle_s,
  idle_s / 3600 * price_per_hour AS idle_cost,
  round(starved_s, 3) AS starved_s,
  starved_s / 3600 * price_per_hour AS starved_cost,
  cache_hits,
  round(compute_avoided_s, 6) AS compute_avoided_s,
  compute_avoided_s / 3600 * price_per_hour AS cache_saved_cost
FROM joined
ORDER BY instance
