/**
 * What the detector consumer does between the detectors and the alerts topic, as pure computation,
 * so the live consumer, `breakid eval` and the tests decide the same pages from the same records:
 * the records go to every detector; every `STALE_CHECK_EVERY_US` of event time firing alerts that
 * nothing evaluated for `staleAfterUs` resolve as stale; the causal inhibitor decides what is
 * delivered (inhibit.ts); and `close` ends every open alert at shutdown.
 */
import type { Alert, HwSample, Span } from '../contract/records.ts'
import type { Detector } from './detector.ts'
import { Inhibitor, type InhibitRule } from './inhibit.ts'

/** how often (event time) the stale sweep runs */
export const STALE_CHECK_EVERY_US = 10_000_000
/** a firing alert nothing evaluated for this long resolves as stale (10 min of event time) */
export const DEFAULT_STALE_AFTER_US = 600_000_000

export interface PagingOptions {
  /** the causal order (default CAUSAL_ORDER; [] turns inhibition off) */
  inhibitRules?: readonly InhibitRule[]
  staleAfterUs?: number
}

export interface PagingResult {
  /** every transition the detectors raised (inhibited ones included) */
  raised: Alert[]
  /** the records to publish: delivered alerts and roots whose `related` grew */
  publish: Alert[]
  /** symptoms kept from delivery */
  inhibited: Alert[]
}

export class Paging {
  private readonly inhibitor: Inhibitor
  private readonly staleAfterUs: number
  /** the newest record time seen, µs: the inhibitor's and the stale sweep's clock */
  eventTimeUs = 0
  private lastStaleCheckUs = 0
  private raised: Alert[] = []
  /** published firing records not yet resolved, by id: what a stop must close */
  private readonly open = new Map<string, Alert>()

  constructor(
    private readonly detectors: readonly Detector[],
    opts: PagingOptions = {},
  ) {
    this.inhibitor = new Inhibitor(opts.inhibitRules)
    this.staleAfterUs = opts.staleAfterUs ?? DEFAULT_STALE_AFTER_US
  }

  /** symptoms waiting on a pending cause */
  get heldCount(): number {
    return this.inhibitor.heldCount
  }

  span(span: Span): void {
    const before = this.raised.length
    for (const d of this.detectors) if (d.onSpan) this.raised.push(...d.onSpan(span))
    this.ownRun(before, span.run_id)
    if (span.timestamp_us > this.eventTimeUs) this.eventTimeUs = span.timestamp_us
  }

  hwSample(sample: HwSample): void {
    const before = this.raised.length
    for (const d of this.detectors) if (d.onHwSample) this.raised.push(...d.onHwSample(sample))
    this.ownRun(before, sample.run_id)
    if (sample.timestamp_us > this.eventTimeUs) this.eventTimeUs = sample.timestamp_us
  }

  /** an alert belongs to the run of the record that raised it (its resolution keeps it) */
  private ownRun(from: number, runId: string | null | undefined): void {
    for (let i = from; i < this.raised.length; i++) this.raised[i]!.run_id ??= runId ?? null
  }

  /** Decides the pages of everything fed since the last call. */
  flush(): PagingResult {
    const raised = this.raised
    this.raised = []
    if (this.eventTimeUs - this.lastStaleCheckUs >= STALE_CHECK_EVERY_US) {
      this.lastStaleCheckUs = this.eventTimeUs
      for (const d of this.detectors)
        raised.push(...(d.sweepStale?.(this.eventTimeUs, this.staleAfterUs) ?? []))
    }
    const { publish, inhibited } = this.inhibitor.filter(raised, {
      pending: this.pendingCauses(),
      nowUs: this.eventTimeUs,
    })
    this.track(publish)
    return { raised, publish, inhibited }
  }

  /**
   * Shutdown: the symptoms held for a pending cause go out (a hold must not lose an alert; those held
   * for host pressure they did not outlive are explained instead, unless this is a handover), then
   * every open alert resolves with reason `shutdown` and every lifecycle is left inactive.
   */
  close(resolve = true): PagingResult {
    const raised = this.raised
    this.raised = []
    const released = this.inhibitor.releaseAll(resolve)
    const publish = released.publish
    const inhibited = released.inhibited
    if (resolve) {
      const closed: Alert[] = []
      for (const d of this.detectors) closed.push(...(d.close?.(this.eventTimeUs, 'shutdown') ?? []))
      raised.push(...closed)
      const r = this.inhibitor.filter(closed)
      publish.push(...r.publish)
      inhibited.push(...r.inhibited)
      // detectors outside the kernel cannot close their alerts: close what they published
      const closing = new Set(publish.filter((a) => a.status === 'resolved').map((a) => a.id))
      for (const [id, firing] of this.open) {
        if (closing.has(id)) continue
        const at = Math.max(this.eventTimeUs, firing.updated_at_us)
        publish.push({
          ...firing,
          status: 'resolved',
          ends_at_us: at,
          updated_at_us: at,
          resolve_reason: 'shutdown',
        })
      }
    }
    this.track(publish)
    return { raised, publish, inhibited }
  }

  /** Things detectors want said once (e.g. that they are off for lack of input), with who says them. */
  notices(): { detector: string; notice: string }[] {
    return this.detectors.flatMap((d) =>
      (d.drainNotices?.() ?? []).map((notice) => ({ detector: d.type, notice })),
    )
  }

  private track(published: Alert[]): void {
    for (const a of published) {
      if (a.status === 'firing') this.open.set(a.id, a)
      else this.open.delete(a.id)
    }
  }

  /** `<type>/<instance>` of every detector's pending condition, for the inhibitor */
  private pendingCauses(): Set<string> {
    const pending = new Set<string>()
    for (const d of this.detectors) {
      for (const instance of d.pendingInstances?.() ?? []) pending.add(`${d.type}/${instance}`)
    }
    return pending
  }
}
