/**
 * Fleet grouping for notifications: which instances are firing the same break (same
 * `alertGroupKey`: type, fleet and stage) right now, as seen on the alerts topic. Each instance's
 * alert still fires, resolves and is delivered on its own (its dedup key is per instance); the group
 * rides along in the body so a receiver — or a person reading Slack — sees "3 instances of fleet
 * eu-1" instead of three unrelated pages, and can collapse them on `group.key`.
 *
 * Kept in memory by the notifier, in topic order; a restarted notifier rebuilds it from the alerts
 * it delivers next (a group's first message after a restart may list fewer instances).
 */
import type { Alert } from '../contract/records.ts'
import { alertGroupKey } from '../contract/alerts.ts'

export interface AlertGroup {
  key: string
  /** instances whose alert of this group is firing, this alert's included while it fires */
  firing_instances: string[]
  /** the earliest start among them (µs); this alert's own start once none is left */
  first_started_at_us: number
}

export class FleetGroups {
  /** group key → instance → starts_at_us of its firing alert */
  private readonly groups = new Map<string, Map<string, number>>()

  /** Records the alert's transition and returns its group as it stands after it. */
  observe(alert: Alert): AlertGroup {
    const key = alertGroupKey(alert)
    let members = this.groups.get(key)
    if (!members) {
      members = new Map()
      this.groups.set(key, members)
    }
    if (alert.status === 'firing') members.set(alert.instance, alert.starts_at_us)
    else members.delete(alert.instance)
    const group: AlertGroup = {
      key,
      firing_instances: [...members.keys()].sort(),
      first_started_at_us: Math.min(alert.starts_at_us, ...members.values()),
    }
    if (members.size === 0) this.groups.delete(key)
    return group
  }
}
