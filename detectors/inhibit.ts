/**
 * Inhibition (after Alertmanager's inhibit rules): one break often shows up in several detectors.
 * Under data starvation the preprocess stage's latency regresses, the latency distribution drifts,
 * the p99 SLO breaks and, once the fault clears, the backlog drains in large batches — symptoms of
 * the break that `accelerator_starved` already names.
 * While a source alert fires on an instance, and for `graceUs` after it resolves, target alerts of
 * that instance are suppressed — both their firing and their resolved record, so nobody receives a
 * resolution for an alert they never saw. Suppressions are counted by the caller.
 *
 * A symptom can fire before its cause: under data starvation the latency distribution drifts within
 * the second the starvation detector needs to confirm the idle executor (measured in `breakid up`:
 * latency_drift fired 23–254 ms before accelerator_starved, on every run). Alertmanager waits
 * `group_wait` before any notification for the same reason; here a target alert waits only while
 * its source is pending on that instance (the source's condition holds but has not been held long
 * enough to fire): it is suppressed if the source fires, published if the source clears, and
 * published anyway after `maxHoldUs` of event time. Targets with no pending source are not delayed.
 */
import type { Alert } from '../contract/records.ts'

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

/** What the caller knows besides the alerts: which sources are about to fire, and the time. */
export interface InhibitContext {
  /** `<source type>/<instance>` of every source whose condition holds but has not fired yet */
  pending: ReadonlySet<string>
  /** the event time the telemetry has reached, µs */
  nowUs: number
}

/** A target alert waiting on a pending source; its resolved record if it resolved meanwhile. */
interface Held {
  firing: Alert
  resolved?: Alert
}

export class Inhibitor {
  /** source type/instance → event time until which it inhibits (Infinity while firing) */
  private readonly active = new Map<string, number>()
  /** ids of target alerts whose firing record was suppressed */
  private readonly suppressed = new Set<string>()
  /** target alerts waiting on a pending source, by alert id, in arrival order */
  private readonly held = new Map<string, Held>()

  constructor(
    private readonly rules: InhibitRule[] = DEFAULT_INHIBIT_RULES,
    /** longest a target waits on a pending source, µs of event time */
    private readonly maxHoldUs = 15_000_000,
  ) {}

  /** target alerts waiting on a pending source */
  get heldCount(): number {
    return this.held.size
  }

  /**
   * Returns the alerts to publish; the rest were inhibited or are held (published or inhibited by a
   * later call). Feed alerts in event-time order. Without `ctx` nothing is held.
   */
  filter(alerts: Alert[], ctx?: InhibitContext): { publish: Alert[]; inhibited: Alert[] } {
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
      const waiting = this.held.get(a.id)
      if (waiting) {
        if (a.status === 'resolved') waiting.resolved = a
        continue
      }
      const blocked = this.suppressed.has(a.id) || (a.status === 'firing' && this.sourceInhibits(a))
      if (blocked) {
        if (a.status === 'firing') this.suppressed.add(a.id)
        else this.suppressed.delete(a.id)
        inhibited.push(a)
      } else if (a.status === 'firing' && ctx && this.sourcePending(a, ctx)) {
        this.held.set(a.id, { firing: a })
      } else publish.push(a)
    }
    // the held: suppressed if their source fired, published once it is no longer pending or too late
    for (const [id, h] of this.held) {
      if (this.sourceInhibits(h.firing)) {
        inhibited.push(h.firing)
        if (h.resolved) inhibited.push(h.resolved)
        else this.suppressed.add(id)
      } else if (
        !ctx ||
        !this.sourcePending(h.firing, ctx) ||
        ctx.nowUs - h.firing.updated_at_us > this.maxHoldUs
      ) {
        publish.push(h.firing)
        if (h.resolved) publish.push(h.resolved)
      } else continue
      this.held.delete(id)
    }
    return { publish, inhibited }
  }

  /** Hands out every held alert (to publish at shutdown: a hold must not lose an alert). */
  releaseAll(): Alert[] {
    const out = [...this.held.values()].flatMap((h) => (h.resolved ? [h.firing, h.resolved] : [h.firing]))
    this.held.clear()
    return out
  }

  private sourceInhibits(a: Alert): boolean {
    return this.rules.some(
      (r) =>
        r.target === a.type &&
        (this.active.get(`${r.source}/${a.instance}`) ?? Number.NEGATIVE_INFINITY) >= a.starts_at_us,
    )
  }

  private sourcePending(a: Alert, ctx: InhibitContext): boolean {
    return this.rules.some((r) => r.target === a.type && ctx.pending.has(`${r.source}/${a.instance}`))
  }
}
