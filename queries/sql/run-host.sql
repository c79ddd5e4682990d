-- name: run-host
-- description: The hardware samples of one run (run_id) or of a time range, one row each: instance, time (epoch µs), interval, the CPU the engine's process used and the CPU the whole host used (CPUs, from /proc/stat; null where the platform does not say), online CPUs, CPU pressure and the executor busy fraction. `breakid compare` reads the CPU other processes took (host − process) to tell a slower build from a busier machine.
-- param: run String default='' only this run ('' = every run in the time range)
-- param: from DateTime64(6) default=-1h start of the range (inclusive)
-- param: to DateTime64(6) default=now end of the range (exclusive)
-- param: limit UInt32 default=100000 min=1 max=1000000 most samples returned
SELECT
  instance,
  toUnixTimestamp64Micro(timestamp) AS timestamp_us,
  interval_ms,
  process_cpu,
  host_cpu,
  host_cpus,
  psi_cpu_some_avg10,
  executor_busy
FROM hw_samples
WHERE ({run:String} = '' OR run_id = {run:String})
  AND timestamp >= {from:DateTime64(6)}
  AND timestamp < {to:DateTime64(6)}
ORDER BY timestamp
LIMIT {limit:UInt32}
