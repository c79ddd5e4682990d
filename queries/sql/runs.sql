-- name: runs
-- description: The runs in the store (spans with a run_id): requests, errors, first and last request, models and instances per run, newest first — what `breakid compare --baseline run:<id>` can name.
-- param: since DateTime64(6) default=-30d only runs with requests since then
-- param: limit UInt32 default=100 min=1 max=10000 how many runs
SELECT
  run_id AS run,
  count() AS requests,
  countIf(status != 'ok') AS errors,
  min(timestamp) AS first_request,
  max(timestamp) AS last_request,
  round(dateDiff('microsecond', min(timestamp), max(timestamp)) / 1e6, 1) AS duration_s,
  arraySort(groupUniqArray(model)) AS models,
  arraySort(groupUniqArray(instance)) AS instances
FROM spans
WHERE run_id IS NOT NULL
  AND timestamp >= {since:DateTime64(6)}
GROUP BY run_id
ORDER BY last_request DESC
LIMIT {limit:UInt32}
