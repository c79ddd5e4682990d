/**
 * Inhibition (after Alertmanager's inhibit rules): one break often shows up in several detectors.
 * Under data starvation the preprocess stage's latency regresses, the latency distribution drifts,
 * the p99 SLO breaks and, once the fault clears, the backlog drains in large batches — symptoms of
 * the break that `accelerator_starved` already names.
 * While a source alert fires on an instance, and for `graceUs` after it resolves, target alerts of
 * that instance are suppressed — both their firing and their resolved record, so nobody receives a
 * resolution for an alert they never saw. Suppressions are counted by the caller.
 */
import type { Alert } from '../ingest/contract/records.ts'

export interface InhibitRule {
  source: string
  target: string
  /** how long after the source resolves its targets stay inhibited, µs */
  graceUs: number
}

/**
 * Measured in `breakid up`: without these, one starvation episode paged six times — the starvation
 * alert, then latency drift, the p99 SLO, and stage regressions of compute/serialize/postprocess
 * while the backlog drained in large batches. All are consequences of the break the first names.
 */
const STARVATION_SYMPTOMS = ['stage_latency_regression', 'latency_drift', 'slo_p99_breach', 'queue_growth']

export const DEFAULT_INHIBIT_RULES: InhibitRule[] = STARVATION_SYMPTOMS.map((target) => ({
  source: 'accelerator_starved',
  target,
  graceUs: 60_000_000,
}))

export class Inhibitor {
  /** source type/instance → event time until which it inhibits (Infinity while firing) */
  private readonly active = new Map<string, number>()
  /** ids of target alerts whose firing record was suppressed */
  private readonly suppressed = new Set<string>()

  constructor(private readonly rules: InhibitRule[] = DEFAULT_INHIBIT_RULES) {}

  /** Returns the alerts to publish; the rest were inhibited. Feed alerts in event-time order. */
  filter(alerts: Alert[]): { publish: Alert[]; inhibited: Alert[] } {
    const publish: Alert[] = []
    const inhibited: Alert[] = []
    for (const a of alerts) {
      if (this.rules.some((r) => r.source === a.type)) {
        const grace = Math.max(...this.rules.filter((r) => r.source === a.type).map((r) => r.graceUs))
        this.active.set(
          `${a.type}/${a.instance}`,
          a.status === 'firing' ? Number.POSITIVE_INFINITY : a.updated_at_us + grace,
        )
      }
      const blocked =
        this.suppressed.has(a.id) ||
        (a.status === 'firing' &&
          this.rules.some(
            (r) =>
              r.target === a.type &&
              (this.active.get(`${r.source}/${a.instance}`) ?? Number.NEGATIVE_INFINITY) >= a.starts_at_us,
          ))
      if (blocked) {
        if (a.status === 'firing') this.suppressed.add(a.id)
        else this.suppressed.delete(a.id)
        inhibited.push(a)
      } else publish.push(a)
    }
    return { publish, inhibited }
  }
}
