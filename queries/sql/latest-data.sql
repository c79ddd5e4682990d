-- name: latest-data
-- description: When data last arrived: the newest span, hardware sample and alert change, the oldest span, and the raw row count of spans (before duplicates collapse: a cheap change signal, not a request count). Times are 1970-01-01 when a table is empty. The dashboard polls it to refresh only when something new arrived.
SELECT
  (SELECT max(timestamp) FROM spans) AS spans_latest,
  (SELECT min(timestamp) FROM spans) AS spans_earliest,
  (SELECT count() FROM spans) AS spans_rows,
  (SELECT max(timestamp) FROM hw_samples) AS hw_latest,
  (SELECT max(updated_at) FROM alerts) AS alerts_latest
