/**
 * Distribution drift, the machinery shared by `latency_drift`, `input_drift` and `output_drift`: for
 * each key (instance + model + feature) the newest `recentSamples` values of a span feature are
 * compared with a baseline window of the `baselineSamples` values before them, by the two-sample
 * Kolmogorov–Smirnov test (statistic D and its p-value) and the population stability index (PSI over
 * the baseline's deciles). Values leave the recent window into the baseline, so the two never overlap;
 * the baseline is frozen while an alert is pending or firing, so the drift never becomes normal.
 *
 * Evaluated on event-time buckets of the spans' completion times (timestamp + total, `bucketMs`, 1 s):
 * the first span of a later bucket evaluates the closed one, so a replay of spans alone gives the same
 * alerts. Windows count
 * samples, not seconds: a low-rate model needs as many requests as a busy one.
 *
 * Thresholds (defaults): drifted when all hold on one evaluation —
 * - KS D > `ksThreshold` (0.3) and p < `pValueThreshold` (0.001)   the shapes differ, not by chance
 * - PSI > `psiThreshold` (0.25)                                     …by a shift that matters
 * - at least `minRecentSamples` (200) recent and `minBaselineSamples` (500) baseline values (warm-up)
 * - or the same on the newest `fastSamples` (60) alone with p < `fastPValueThreshold` (1e-6): a sharp
 *   drift shows in the newest values seconds before it dominates the whole recent window
 * - held for `pendingSamples` (2) buckets before firing; clear for `resolveSamples` (5) to resolve
 * - latency only: the recent median or p95 is ≥ (1 + `minGrowthRatio` (0.2)) × the baseline's and
 *   above it by `minIncreaseMs` (5 ms) — requests got slower by a margin a person would notice (a load
 *   swing that moves latency 10 % is no break, nor is a 3.7 → 4.3 ms median on a busy host, which paged
 *   in `breakid up --no-fault`; getting faster is none either)
 * Severity: critical when D ≥ 2 × ksThreshold on a kind that allows it (latency), else warning.
 */
import { mean, quantileSorted } from 'simple-statistics'
import type { Alert, Severity, Span } from '../../contract/records.ts'
import { STAGES, type Stage } from '../../contract/vocabulary.ts'
import type { AlertType } from '../../contract/vocabulary.ts'
import { RollingBaseline } from '../baseline.ts'
import {
  type DetectorReads,
  defaultsOf,
  KeyedDetector,
  LIFECYCLE_SETTINGS,
  type SettingsOf,
  type SettingsSpec,
  setting,
} from '../detector.ts'
import type { AlertLifecycle } from '../lifecycle.ts'
import {
  type EventTimeBuckets,
  entriesOf,
  ksSorted,
  median,
  nums,
  psi,
  quantile,
  strs,
  modelBucketsFromJson,
  modelBucketsToJson,
} from '../stats.ts'

/** The settings of input and output drift; latency drift adds its effect sizes. */
export const DRIFT_SETTINGS = {
  ...LIFECYCLE_SETTINGS,
  resolveSamples: setting.count(5, 'clear buckets before resolving'),
  bucketMs: setting.number(1000, 'event-time bucket between evaluations, ms', { min: 1 }),
  recentSamples: setting.count(300, 'size of the recent window, samples'),
  minRecentSamples: setting.count(200, 'fewest recent samples to evaluate'),
  baselineSamples: setting.count(2000, 'size of the baseline window, samples'),
  minBaselineSamples: setting.count(500, 'fewest baseline samples to evaluate (the warm-up)'),
  ksThreshold: setting.ratio(0.3, 'KS statistic D above which the distributions differ'),
  pValueThreshold: setting.ratio(0.001, 'KS p-value below which the difference is not chance'),
  fastSamples: setting.count(
    60,
    'the newest samples tested on their own, so a sharp drift fires within seconds',
  ),
  fastPValueThreshold: setting.ratio(1e-6, 'KS p-value of the newest-samples test'),
  psiThreshold: setting.number(0.25, 'PSI above which the shift is significant'),
  psiBins: setting.count(10, 'quantile bins of the baseline for the PSI', 2),
} as const

export const LATENCY_DRIFT_SETTINGS = {
  ...DRIFT_SETTINGS,
  minGrowthRatio: setting.number(0.2, 'the recent median or p95 must exceed the baseline’s by this ratio…'),
  minIncreaseMs: setting.number(5, '…and by this many ms'),
} as const

export type DriftOptions = Partial<SettingsOf<typeof LATENCY_DRIFT_SETTINGS>>
type Resolved = SettingsOf<typeof LATENCY_DRIFT_SETTINGS>

/** One span feature a drift detector watches. */
export interface DriftFeature {
  name: string
  value(span: Span): number | null
}

/** What distinguishes latency, input and output drift. */
export interface DriftKind {
  type: AlertType
  features: DriftFeature[]
  /** the span fields it reads */
  reads: DetectorReads
  /** whether to blame the stage whose mean grew most (latency) */
  attributeStage: boolean
  /** whether severity may be critical */
  mayBeCritical: boolean
  /**
   * `slower`: only a move up counts (the recent median or p95 above the baseline's) — faster requests
   * are no break; `both`: any move (inputs, outputs)
   */
  direction: 'slower' | 'both'
  unit: (v: number) => string
  cause: string
  action: string
}

/** exemplar request ids per alert */
const EXEMPLARS = 3

interface RecentEntry {
  v: number
  id: string
  /** stage durations in STAGES order (latency only) */
  stages?: number[]
}

interface FeatureState {
  recent: RecentEntry[]
  baseline: RollingBaseline
  sortedBaseline: number[] | undefined
  lifecycle: AlertLifecycle
}

interface KeyState {
  fleet: string
  instance: string
  model: string
  buckets: EventTimeBuckets
  features: Map<string, FeatureState>
  /** per-stage baseline of stage durations (latency only), fed like the feature baselines */
  stageBaselines: Map<Stage, RollingBaseline>
}

export class DistributionDriftDetector extends KeyedDetector<KeyState, Resolved> {
  readonly type: AlertType
  readonly reads: DetectorReads

  constructor(
    private readonly kind: DriftKind,
    opts: DriftOptions = {},
    spec: SettingsSpec = LATENCY_DRIFT_SETTINGS,
  ) {
    // input and output drift have no effect-size settings: they judge both directions by KS + PSI
    super(spec, opts)
    this.type = kind.type
    this.reads = kind.reads
    // the effect sizes default for kinds whose spec leaves them out (they are unused there)
    this.resolved = { ...defaultsOf(LATENCY_DRIFT_SETTINGS), ...(this.settings as Partial<Resolved>) }
  }

  private readonly resolved: Resolved

  protected override get o(): Readonly<Resolved> {
    return this.resolved
  }

  protected lifecyclesOf(k: KeyState): AlertLifecycle[] {
    return [...k.features.values()].map((f) => f.lifecycle)
  }

  protected instanceOf(k: KeyState): string {
    return k.instance
  }

  onSpan(span: Span): Alert[] {
    const [key, k] = this.modelKey(span)
    const alerts: Alert[] = []
    // bucketed by completion, not arrival: the model produced these values (and this latency) when
    // the request finished — behind a backlog, arrival time can be seconds or minutes earlier
    const closedAtUs = k.buckets.place(span.timestamp_us + span.total_us)
    if (closedAtUs !== undefined) this.evaluate(key, k, closedAtUs, alerts)
    const stages = this.kind.attributeStage ? STAGES.map((s) => span[`${s}_us`]) : undefined
    for (const f of this.kind.features) {
      const v = f.value(span)
      if (v === null || !Number.isFinite(v)) continue
      const fs = this.featureState(k, f.name)
      fs.recent.push({ v, id: span.request_id, stages })
      if (fs.recent.length > this.o.recentSamples) {
        const old = fs.recent.shift()!
        if (!fs.lifecycle.active) {
          fs.baseline.push(old.v)
          fs.sortedBaseline = undefined
          if (old.stages)
            for (const [i, st] of STAGES.entries()) k.stageBaselines.get(st)!.push(old.stages[i]!)
        }
      }
    }
    return alerts
  }

  private evaluate(key: string, k: KeyState, nowUs: number, out: Alert[]): void {
    for (const [name, fs] of k.features) {
      const ready =
        fs.baseline.count >= this.o.minBaselineSamples && fs.recent.length >= this.o.minRecentSamples
      // too few values to judge (warm-up, or a window refilling after a restart): the lifecycle waits
      if (!ready || !this.warm(key, nowUs)) continue
      fs.sortedBaseline ??= fs.baseline.ordered().sort((a, b) => a - b)
      const base = fs.sortedBaseline
      // the whole recent window sees a moderate drift; its newest `fastSamples` see a sharp one
      // within seconds, when the full window is still mostly made of values from before the break
      const full = this.test(
        fs.recent.map((e) => e.v),
        base,
        this.o.pValueThreshold,
      )
      const newest = fs.recent.slice(-this.o.fastSamples)
      const fast =
        full.drifted || fs.recent.length < this.o.fastSamples
          ? undefined
          : this.test(
              newest.map((e) => e.v),
              base,
              this.o.fastPValueThreshold,
            )
      const hit = full.drifted ? full : fast?.drifted ? fast : undefined
      const drifted = hit !== undefined
      // the evidence (exemplars, suspected stage) comes from the window that drifted
      const window = full.drifted ? fs.recent : newest
      const a = fs.lifecycle.observe(
        nowUs,
        drifted,
        hit ? this.evidence(key, k, name, window, hit.d, hit.p, hit.psi, base, hit.sorted) : undefined,
      )
      if (a) out.push(a)
    }
  }

  /** KS + PSI (+ direction for latency) of one window of recent values against the baseline */
  private test(values: number[], base: number[], pValueThreshold: number) {
    const sorted = [...values].sort((a, b) => a - b)
    const ks = ksSorted(sorted, base)
    const psiValue = psi(base, values, this.o.psiBins)
    const grow = 1 + this.o.minGrowthRatio
    const minUp = this.o.minIncreaseMs * 1000
    const slower = (q: number) => {
      const now = quantileSorted(sorted, q)
      const before = quantileSorted(base, q)
      return now > grow * before && now - before >= minUp
    }
    const upward = this.kind.direction === 'both' || slower(0.5) || slower(0.95)
    const drifted =
      upward && ks.d > this.o.ksThreshold && ks.p < pValueThreshold && psiValue > this.o.psiThreshold
    return { drifted, d: ks.d, p: ks.p, psi: psiValue, sorted }
  }

  private evidence(
    key: string,
    k: KeyState,
    feature: string,
    window: readonly RecentEntry[],
    d: number,
    p: number,
    psiValue: number,
    base: number[],
    recentSorted: number[],
  ): Omit<Alert, 'id' | 'status' | 'starts_at_us' | 'ends_at_us' | 'updated_at_us'> {
    const u = this.kind.unit
    const baseMed = median(base)
    const recentMed = median(recentSorted)
    const stage = this.kind.attributeStage ? this.suspectStage(k, window) : undefined
    const severity: Severity = this.kind.mayBeCritical && d >= 2 * this.o.ksThreshold ? 'critical' : 'warning'
    const exemplars = this.exemplars(window, base)
    return {
      type: this.type,
      severity,
      dedup_key: `${this.type}/${key}/${feature}`,
      fleet: k.fleet,
      instance: k.instance,
      model: k.model,
      stage: stage?.stage ?? null,
      statistic: `ks_d(${feature})`,
      observed: d,
      baseline: 0,
      threshold: this.o.ksThreshold,
      summary:
        `${k.instance}/${k.model}: ${feature} distribution drifted — median ${u(recentMed)} ` +
        `(baseline ${u(baseMed)}), p95 ${u(quantile(recentSorted, 0.95))} ` +
        `(baseline ${u(quantile(base, 0.95))}); KS D ${d.toFixed(2)} (p ${p.toExponential(1)}), ` +
        `PSI ${psiValue.toFixed(2)} over the last ${recentSorted.length} requests vs ${base.length} before`,
      suspected_cause: stage
        ? `${this.kind.cause}; the ${stage.stage} stage moved most: mean ${u(stage.observed)} (baseline ${u(stage.baseline)})`
        : this.kind.cause,
      suggested_action: this.kind.action,
      exemplar_request_ids: exemplars,
    }
  }

  /**
   * The newest requests of the window outside the baseline's central 90 % (in a drift, requests of the
   * new distribution; an older outlier still in the window is not what changed), topped up with the
   * farthest from the baseline median when fewer than three are outside.
   */
  private exemplars(window: readonly RecentEntry[], base: number[]): string[] {
    const lo = quantileSorted(base, 0.05)
    const hi = quantileSorted(base, 0.95)
    const ids: string[] = []
    for (let i = window.length - 1; i >= 0 && ids.length < EXEMPLARS; i--) {
      const e = window[i]!
      if (e.v < lo || e.v > hi) ids.push(e.id)
    }
    if (ids.length < EXEMPLARS) {
      const baseMed = median(base)
      const farthest = window
        .filter((e) => !ids.includes(e.id))
        .sort((a, b) => Math.abs(b.v - baseMed) - Math.abs(a.v - baseMed))
      for (const e of farthest.slice(0, EXEMPLARS - ids.length)) ids.push(e.id)
    }
    return ids
  }

  private suspectStage(
    k: KeyState,
    window: readonly RecentEntry[],
  ): { stage: Stage; observed: number; baseline: number } | undefined {
    let best: { stage: Stage; observed: number; baseline: number; growth: number } | undefined
    STAGES.forEach((stage, i) => {
      const b = k.stageBaselines.get(stage)!
      if (b.count === 0) return
      // means, not medians: a drift often lives in the tail (under data starvation the median
      // request is still fast while p95 is seconds), and the mean is what the tail adds per request
      const observed = mean(window.map((e) => e.stages?.[i] ?? 0))
      const baseline = mean(b.ordered())
      const growth = Math.abs(observed - baseline)
      if (!best || growth > best.growth) best = { stage, observed, baseline, growth }
    })
    return best
  }

  private featureState(k: KeyState, name: string): FeatureState {
    let fs = k.features.get(name)
    if (!fs) {
      fs = {
        recent: [],
        baseline: new RollingBaseline(this.o.baselineSamples, this.o.minBaselineSamples),
        sortedBaseline: undefined,
        lifecycle: this.newLifecycle(),
      }
      k.features.set(name, fs)
    }
    return fs
  }

  protected stateToJson(k: KeyState): Record<string, unknown> {
    const features: Record<string, unknown> = {}
    for (const [name, fs] of k.features) {
      features[name] = {
        recent: fs.recent.map((e) => e.v),
        recentIds: fs.recent.map((e) => e.id),
        recentStages: fs.recent.map((e) => e.stages ?? []),
        baseline: fs.baseline.toState(),
        lifecycle: fs.lifecycle.toState(),
      }
    }
    const stageBaselines: Record<string, unknown> = {}
    if (this.kind.attributeStage) for (const [s, b] of k.stageBaselines) stageBaselines[s] = b.toState()
    return {
      ...modelBucketsToJson(k),
      features,
      stageBaselines,
    }
  }

  protected stateFromJson(s: Record<string, unknown>): KeyState {
    const k: KeyState = {
      ...modelBucketsFromJson(s, this.o.bucketMs * 1000),
      features: new Map(),
      stageBaselines: new Map(STAGES.map((st) => [st, new RollingBaseline(this.o.baselineSamples, 1)])),
    }
    for (const [stage, b] of entriesOf(s.stageBaselines)) {
      if ((STAGES as readonly string[]).includes(stage)) {
        k.stageBaselines.set(stage as Stage, RollingBaseline.fromState(b, this.o.baselineSamples, 1))
      }
    }
    for (const [name, f] of entriesOf(s.features)) {
      const values = nums(f.recent)
      const ids = strs(f.recentIds)
      const stages = Array.isArray(f.recentStages) ? f.recentStages.map(nums) : []
      k.features.set(name, {
        recent: values.slice(-this.o.recentSamples).map((v, i, arr) => {
          const j = values.length - arr.length + i
          const st = stages[j]
          return { v, id: ids[j] ?? '', stages: st && st.length === STAGES.length ? st : undefined }
        }),
        baseline: RollingBaseline.fromState(f.baseline, this.o.baselineSamples, this.o.minBaselineSamples),
        sortedBaseline: undefined,
        lifecycle: this.restoreLifecycle(f.lifecycle),
      })
    }
    return k
  }
}
