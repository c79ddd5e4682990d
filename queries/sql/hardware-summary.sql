-- name: hardware-summary
-- description: Hardware use per instance over the range: samples, executor busy fraction (mean and peak), process and host CPU, peak RSS, device utilisation and power, peak host pressure (PSI some avg10, percent), peak event-loop delay and requests in flight. The report's hardware section.
-- param: from DateTime64(6) default=-1h start of the range (inclusive)
-- param: to DateTime64(6) default=now end of the range (exclusive)
WITH
  -- devices that report nothing for a field are left out of it rather than counted as 0
  arrayMap(x -> assumeNotNull(x), arrayFilter(x -> isNotNull(x), device_utilization)) AS util,
  arrayMap(x -> assumeNotNull(x), arrayFilter(x -> isNotNull(x), device_memory_used_bytes)) AS device_memory,
  arrayMap(x -> assumeNotNull(x), arrayFilter(x -> isNotNull(x), device_power_w)) AS power
SELECT
  instance,
  any(host) AS host,
  count() AS samples,
  round(avg(executor_busy), 3) AS busy_mean,
  round(max(executor_busy), 3) AS busy_max,
  round(avg(process_cpu), 3) AS process_cpu_mean,
  round(avg(host_cpu), 3) AS host_cpu_mean,
  round(max(rss_bytes) / 1048576, 1) AS rss_max_mib,
  round(avgArrayOrNull(util), 3) AS device_utilization_mean,
  round(avgIfOrNull(arraySum(power), notEmpty(power)), 1) AS power_mean_w,
  round(max(psi_cpu_some_avg10), 2) AS psi_cpu_some_max,
  round(max(psi_memory_some_avg10), 2) AS psi_memory_some_max,
  round(max(psi_io_some_avg10), 2) AS psi_io_some_max,
  round(max(event_loop_delay_p99_ms), 2) AS event_loop_p99_max_ms,
  max(in_flight) AS in_flight_max
FROM hw_samples
WHERE timestamp >= {from:DateTime64(6)}
  AND timestamp < {to:DateTime64(6)}
GROUP BY instance
ORDER BY instance
