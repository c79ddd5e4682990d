-- name: alerts
-- description: The latest state of each alert (its newest row by updated_at: an alert's state changes are rows of their own until merged): every alert still firing, and those that changed since `since`; firing first, then by last change.
-- param: since DateTime64(6) default=-24h also list alerts that changed since then (firing ones are always listed)
-- param: status String default='' only alerts in this state, e.g. firing or resolved ('' = any)
-- param: limit UInt32 default=100 min=1 max=10000 how many alerts
SELECT
  id,
  type,
  severity,
  status,
  model,
  instance,
  stage,
  starts_at,
  ends_at,
  updated_at,
  statistic,
  observed,
  baseline,
  threshold,
  summary,
  suspected_cause,
  suggested_action
FROM
(
  -- the newest row of each alert first, filtered after in the outer query: a filter applied while
  -- reading would drop the newest state of an alert and let an older one survive
  SELECT * FROM alerts ORDER BY id, updated_at DESC LIMIT 1 BY id
)
WHERE (status = 'firing' OR updated_at >= {since:DateTime64(6)})
  AND ({status:String} = '' OR status = {status:String})
ORDER BY status = 'firing' DESC, updated_at DESC, id
LIMIT {limit:UInt32}
