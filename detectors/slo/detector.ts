/**
 * `slo_p99_breach`: the p99 of total_us of a model, over all its instances in a fleet, across a
 * rolling event-time window (`windowMs`, 30 s), is above the model's latency SLO (`sloP99Ms`, 500 ms;
 * `sloP99MsByModel` overrides it per model). Unlike the drift and regression detectors this needs no
 * baseline: the SLO is the contract.
 *
 * Evaluated on event-time buckets of the span timestamps (`bucketMs`, 1 s) per fleet + model: the
 * first span of a later bucket evaluates the window ending with the closed one.
 *
 * Thresholds (defaults):
 * - at least `minSpans` (100) spans in the window       (a p99 of fewer is one request's latency)
 * - p99 > SLO
 * - held `pendingSamples` (3) buckets; clear `resolveSamples` (3) to resolve
 * Severity: critical when p99 > 2 × SLO.
 * The alert names the instance with the most requests over the SLO, and the stage where those
 * requests spent most of their time.
 */
import type { Alert, Span } from '../../contract/records.ts'
import { STAGES, type Stage } from '../../contract/vocabulary.ts'
import { RollingBaseline } from '../baseline.ts'
import { type Finding, OneAlertDetector, type OptionsOf, setting, detectorKind } from '../detector.ts'
import type { AlertLifecycle } from '../lifecycle.ts'
import { EventTimeBuckets, fmtMs, quantile } from '../stats.ts'

export const SLO = detectorKind(
  'slo_p99_breach',
  {
    spans: ['fleet', 'model', 'instance', 'request_id', 'total_us', ...STAGES.map((s) => `${s}_us` as const)],
    hw: [],
  },
  {
    pendingSamples: setting.count(3, 'buckets over the SLO before firing'),
    sloP99Ms: setting.number(500, 'p99 latency objective of models without their own, ms', { min: 0.001 }),
    sloP99MsByModel: setting.map('p99 latency objective per model name, ms'),
    windowMs: setting.number(30_000, 'rolling event-time window the p99 is taken over, ms', { min: 1 }),
    bucketMs: setting.number(1000, 'event-time bucket between evaluations, ms', { min: 1 }),
    minSpans: setting.count(100, 'fewest spans in the window to judge it'),
    maxWindowSpans: setting.count(20_000, 'bound of the window, spans (the oldest are dropped first)'),
  },
)
export type SloOptions = OptionsOf<typeof SLO.settings>

interface KeyState {
  fleet: string
  model: string
  buckets: EventTimeBuckets
  window: Span[]
  /** p99 per bucket while no alert is active: the evidence's baseline */
  p99: RollingBaseline
  lifecycle: AlertLifecycle
}

export class SloP99Detector extends OneAlertDetector<KeyState, typeof SLO.settings> {
  constructor(opts: SloOptions = {}) {
    super(SLO, opts)
  }

  /** a fleet-wide objective: its alert names the instance with the most slow requests when it fires */
  protected override instanceOf(): string {
    return '*'
  }

  /** the SLO of a model, µs */
  sloUs(model: string): number {
    return (this.o.sloP99MsByModel[model] ?? this.o.sloP99Ms) * 1000
  }

  onSpan(span: Span): Alert[] {
    const key = `${span.fleet}/${span.model}`
    const { fleet, model } = span
    const k = this.state(key, span.timestamp_us, () => this.newState(key, { fleet, model }))
    const alerts = k.buckets.closing(span.timestamp_us, (endUs) => this.evaluate(key, k, endUs))
    if (k.window.length >= this.o.maxWindowSpans) k.window.shift()
    k.window.push(span)
    return alerts
  }

  private evaluate(key: string, k: KeyState, nowUs: number): Alert[] {
    const fromUs = nowUs - this.o.windowMs * 1000
    let drop = 0
    while (drop < k.window.length && k.window[drop]!.timestamp_us < fromUs) drop++
    if (drop > 0) k.window.splice(0, drop)
    // too few spans to judge (warm-up, or a window refilling after a restart): the lifecycle waits
    if (k.window.length < this.o.minSpans) return []
    const sloUs = this.sloUs(k.model)
    const p99 = quantile(
      k.window.map((s) => s.total_us),
      0.99,
    )
    const breach = p99 > sloUs && this.warm(key, nowUs)
    const base = k.p99.count > 0 ? k.p99.median() : Number.NaN
    return this.judge(
      k.lifecycle,
      nowUs,
      breach,
      key,
      () => this.finding(k, p99, sloUs, base),
      () => k.p99.push(p99),
    )
  }

  private finding(k: KeyState, p99: number, sloUs: number, base: number): Finding {
    const slow = k.window.filter((s) => s.total_us > sloUs)
    const byInstance = new Map<string, number>()
    for (const s of slow) byInstance.set(s.instance, (byInstance.get(s.instance) ?? 0) + 1)
    const ranked = [...byInstance.entries()].sort((a, b) => b[1] - a[1])
    const instance = ranked[0]?.[0] ?? '*'
    let stage: Stage | null = null
    let stageUs = 0
    for (const st of STAGES) {
      const sum = slow.reduce((acc, s) => acc + s[`${st}_us`], 0)
      if (sum > stageUs) {
        stage = st
        stageUs = sum
      }
    }
    const stageShare = slow.length > 0 ? stageUs / slow.reduce((acc, s) => acc + s.total_us, 0) : 0
    return {
      severity: p99 > 2 * sloUs ? 'critical' : 'warning',
      fleet: k.fleet,
      instance,
      model: k.model,
      stage,
      statistic: 'p99_total_us',
      observed: p99,
      baseline: Number.isFinite(base) ? base : 0,
      threshold: sloUs,
      summary:
        `${k.model}: p99 latency ${fmtMs(p99)} over the last ${(this.o.windowMs / 1000).toFixed(0)} s ` +
        `is above the SLO of ${fmtMs(sloUs)}` +
        (Number.isFinite(base) ? ` (before: ${fmtMs(base)})` : '') +
        `; ${slow.length} of ${k.window.length} requests over it, on ${ranked.length} instance(s), most on ${instance}`,
      suspected_cause: stage
        ? `the requests over the SLO spend ${(stageShare * 100).toFixed(0)}% of their time in ${stage}`
        : 'requests over the SLO',
      suggested_action:
        stage === 'queue_wait'
          ? 'requests wait for the executor: add capacity (replicas, accelerators) or shed load'
          : `look at the ${stage ?? 'slowest'} stage of ${instance}; \`breakid query stage-breakdown\` shows where the time goes`,
      exemplar_request_ids: [...slow]
        .sort((a, b) => b.total_us - a.total_us)
        .slice(0, 3)
        .map((s) => s.request_id),
    }
  }

  /** The window's spans are not exported (they refill within `windowMs`); the baseline and lifecycle are. */
  protected fieldsToJson(k: KeyState): Record<string, unknown> {
    return {
      fleet: k.fleet,
      model: k.model,
      openBucket: k.buckets.toState(),
      p99: k.p99.toState(),
    }
  }

  protected fieldsFromJson(v: Record<string, unknown>) {
    return {
      fleet: String(v.fleet ?? ''),
      model: String(v.model ?? ''),
      buckets: EventTimeBuckets.fromState(v.openBucket, this.o.bucketMs * 1000),
      window: [],
      p99: RollingBaseline.fromState(v.p99, 300, 1),
    }
  }
}
