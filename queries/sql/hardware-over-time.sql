-- name: hardware-over-time
-- description: Per bucket of `step` seconds and instance: executor busy fraction, process and host CPU (CPU-seconds per second), device utilisation (mean over devices), memory in MiB (process RSS and heap peak, devices' used), devices' power in watts, host pressure (PSI some avg10 of cpu, memory and io, percent), the share of time the cgroup throttled the CPU, event-loop delay p99, queue depth and requests in flight. The dashboard's hardware page.
-- param: from DateTime64(6) default=-1h start of the range (inclusive)
-- param: to DateTime64(6) default=now end of the range (exclusive)
-- param: step UInt32 default=60 min=1 max=86400 bucket width in seconds
-- param: instance String default='' only this instance ('' = every instance)
WITH
  -- devices that report nothing for a field are left out of it rather than counted as 0
  arrayMap(x -> assumeNotNull(x), arrayFilter(x -> isNotNull(x), device_utilization)) AS util,
  arrayMap(x -> assumeNotNull(x), arrayFilter(x -> isNotNull(x), device_memory_used_bytes)) AS device_memory,
  arrayMap(x -> assumeNotNull(x), arrayFilter(x -> isNotNull(x), device_power_w)) AS power
SELECT
  toStartOfInterval(timestamp, toIntervalSecond({step:UInt32})) AS bucket,
  instance,
  count() AS samples,
  round(avg(executor_busy), 4) AS executor_busy,
  round(avg(process_cpu), 4) AS process_cpu,
  round(avg(host_cpu), 4) AS host_cpu,
  round(avgArrayOrNull(util), 4) AS device_utilization,
  round(max(rss_bytes) / 1048576, 1) AS rss_mib,
  round(max(heap_used_bytes) / 1048576, 1) AS heap_mib,
  round(avgIfOrNull(arraySum(device_memory), notEmpty(device_memory)) / 1048576, 1) AS device_memory_mib,
  round(avgIfOrNull(arraySum(power), notEmpty(power)), 1) AS power_w,
  round(avg(psi_cpu_some_avg10), 2) AS psi_cpu_some,
  round(avg(psi_memory_some_avg10), 2) AS psi_memory_some,
  round(avg(psi_io_some_avg10), 2) AS psi_io_some,
  round((max(cgroup_throttled_us) - min(cgroup_throttled_us)) / 1e6 / {step:UInt32}, 4) AS cpu_throttled_share,
  round(max(event_loop_delay_p99_ms), 2) AS event_loop_p99_ms,
  round(avg(queue_depth), 2) AS queue_depth,
  round(avg(in_flight), 2) AS in_flight
FROM hw_samples
WHERE timestamp >= {from:DateTime64(6)}
  AND timestamp < {to:DateTime64(6)}
  AND ({instance:String} = '' OR instance = {instance:String})
GROUP BY bucket, instance
ORDER BY bucket, instance
