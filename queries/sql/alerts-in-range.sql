-- name: alerts-in-range
-- description: Every alert active at some time in the range (started before `to`, and still firing or ended at or after `from`), in its latest state, with its evidence: statistic, baseline, observed and threshold, the suspected stage and cause, the suggested action, the exemplar request ids and the related symptoms it carried (`related`, a JSON array), oldest first. The dashboard's alert timeline and the report's alert section.
-- param: from DateTime64(6) default=-1h start of the range (inclusive)
-- param: to DateTime64(6) default=now end of the range (exclusive)
-- param: type String default='' only this alert type ('' = every type)
-- param: status String default='' only alerts in this state, firing or resolved ('' = any)
-- param: instance String default='' only this instance ('' = every instance)
-- param: limit UInt32 default=500 min=1 max=10000 how many alerts
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
FROM
(
  -- filter after FINAL in an outer query: a filter applied while reading would drop the newest
  -- state of an alert and let an older one survive
  SELECT * FROM alerts FINAL
)
WHERE starts_at < {to:DateTime64(6)}
  AND (ends_at IS NULL OR ends_at >= {from:DateTime64(6)})
  AND ({type:String} = '' OR type = {type:String})
  AND ({status:String} = '' OR status = {status:String})
  AND ({instance:String} = '' OR instance = {instance:String})
ORDER BY starts_at, id
LIMIT {limit:UInt32}
