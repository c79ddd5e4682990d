/** How alerts are identified and grouped: derived from fields every alert record carries. */
import { createHash } from 'node:crypto'
import type { Alert } from './records.ts'

/**
 * The fleet-wide group of an alert: the same break type (and stage, when the alert names one) in
 * the same fleet. Alerts of several instances that share it are one break seen several times — a
 * notifier or a query groups on it (`GROUP BY type, fleet, stage` over `alerts` gives the same).
 *
 * Derived from fields every alert already carries rather than stored, so the Avro alert schema v1
 * is unchanged and alerts written before this existed group too. The dedup key stays per instance
 * (`<type>/<fleet>/<instance>[/<model>/<stage>]`): each instance's alert still fires and resolves on
 * its own, and the group's span is from its first firing to its last resolution.
 */
export function alertGroupKey(alert: Pick<Alert, 'type' | 'fleet' | 'stage'>): string {
  return alert.stage ? `${alert.type}/${alert.fleet}/${alert.stage}` : `${alert.type}/${alert.fleet}`
}

/** Same key and onset → same id, so a replay or a redelivered batch produces the same alert id. */
export function alertId(dedupKey: string, startsAtUs: number): string {
  return createHash('sha256').update(`${dedupKey}@${startsAtUs}`).digest('hex').slice(0, 20)
}
