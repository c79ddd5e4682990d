-- name: alert
-- description: One alert in its latest state, with its evidence (statistic, baseline, observed, threshold), suspected stage and cause, suggested action, exemplar request ids and the related symptoms it carried (`related`, a JSON array). The dashboard's alert page.
-- param: id String default='' the alert id
SELECT
  id,
  type,
  severity,
  status,
  fleet,
  instance,
  model,
  stage,
  starts_at,
  ends_at,
  updated_at,
  resolve_reason,
  statistic,
  baseline,
  observed,
  threshold,
  summary,
  suspected_cause,
  suggested_action,
  exemplar_request_ids,
  related,
  run_id
FROM (SELECT * FROM alerts FINAL)
WHERE id = {id:String}
