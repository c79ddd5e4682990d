/**
 * `memory_leak`: an instance's memory keeps growing. Two rules, one alert per instance:
 *
 * **Fast rule — the heap suddenly grows faster per request than it used to.** Between two GCs the
 * JS heap grows by what requests allocate; a leak adds what requests *retain*. The detector learns
 * the heap's growth per request (Δheap_used / arrivals over one sample, GC drops excluded) as a
 * rolling median/MAD baseline and fires when the median of the last `fastSamples` (3) samples is
 * above `median + max(fastSigmas (6) × σ, fastMinRise (1.0) × median)` — the heap grows at least
 * twice as fast per request as normal — for `fastHoldSamples` (2) samples. Normalised per request,
 * a load burst or ramp does not move it; a real leak (bytes kept per request, or per second) does
 * within seconds. Needs arrivals ≥ `minArrivals` (5) per sample and ≥ `minArrivalsShare` (0.5) of
 * their median over the baseline's samples — per request is only comparable at comparable load (when
 * `breakid up` stopped its load generator, a handful of arrivals next to the summary's allocations
 * read as a leak per request); the baseline warms up over `fastWarmup` (15) samples and is frozen
 * while the alert is pending or firing.
 *
 * **Slow rule — post-GC floors rise.** The last `windowSamples` hardware samples, split into
 * `chunks` (6) chunks whose minimum is the memory *floor* of that stretch (what is left after GC).
 * A leak raises every floor; a GC sawtooth has flat floors however steep its teeth; a one-off step (a
 * model loaded, a cache filled) raises one floor once and then stays flat. The window is in samples,
 * so the same rule reads 1-second and 5-minute sampling, and it stretches to `gcCycles` (2.5) GC
 * periods when the heap's major GCs are slower than the window: a window shorter than one GC period
 * sees only the rising half of a tooth, which looks exactly like a leak. Where GCs are further apart
 * than a chunk, a chunk's minimum is just where its stretch of a tooth began, so the floors are the
 * values at the last 4 GC samples instead (three cycles, every step rising). Until one GC has been seen,
 * a rising heap is only judged once the window spans `noGcMinSpanMs` (30 min) of event time. The
 * rss series (native memory) is judged on its own only where the heap is not rising with it, or
 * over full GC cycles. Thresholds (defaults), for either series:
 * - at least `minSamples` (60) samples in the window (warm-up)
 * - floors rise from chunk to chunk in ≥ `minRisingFraction` (0.8) of the steps    sustained
 * - the floors grew by ≥ `minWindowGrowthRatio` (0.02) of the first floor          not noise
 * - no single floor step carries more than `maxStepShare` (0.5) of that growth    not a one-off step
 * - the Theil–Sen slope over all samples projects ≥ `minProjectedGrowthRatio` (0.1) of the current
 *   level within `horizonMs` (1 h)                                                 it matters soon
 * - held `pendingSamples` (5) samples
 *
 * - the instance has been seen for `slowWarmupMs` (5 min): a process warming up grows
 *
 * While the alert is active the slow rule holds on half the thresholds (floors rising in half the
 * steps by half the growth; 3 GC floors), so a leak that goes on does not resolve and re-fire.
 * Resolves after `resolveSamples` (10) samples in which neither rule holds. Severity: critical when
 * the projection reaches the current level again (memory doubles) in the horizon.
 */
import type { Alert, HwSample } from '../../contract/records.ts'
import { RollingBaseline } from '../baseline.ts'
import { type Finding, OneAlertDetector, type OptionsOf, setting, detectorKind } from '../detector.ts'
import type { AlertLifecycle, LifecycleOptions } from '../lifecycle.ts'
import { median, num, nums, theilSen } from '../stats.ts'

export const MEMORY_LEAK = detectorKind(
  'memory_leak',
  {
    spans: [],
    hw: ['rss_bytes', 'heap_used_bytes', 'arrivals', 'interval_ms'],
  },
  {
    pendingSamples: setting.count(5, 'samples the slow rule must hold before firing'),
    resolveSamples: setting.count(10, 'samples in which neither rule holds before resolving'),
    windowSamples: setting.count(120, "the slow rule's window, samples (stretched to whole GC cycles)"),
    minSamples: setting.count(60, 'fewest samples in the window (warm-up)'),
    chunks: setting.count(6, 'chunks whose minima are the floors', 2),
    minRisingFraction: setting.ratio(0.8, 'floors rise in at least this share of the steps'),
    minWindowGrowthRatio: setting.number(0.02, 'floors grew by at least this share of the first floor'),
    maxStepShare: setting.ratio(0.5, 'no single floor step carries more of the growth (a one-off step)'),
    minProjectedGrowthRatio: setting.number(0.1, 'the slope projects at least this share of the level…'),
    horizonMs: setting.number(3_600_000, '…within this much time, ms', { min: 1 }),
    gcDropRatio: setting.ratio(0.05, 'a heap sample this much below the previous one is a GC'),
    gcCycles: setting.number(2.5, "the slow rule's window covers this many GC periods at least"),
    maxWindowSamples: setting.count(1800, 'samples kept per instance: the longest window'),
    noGcMinSpanMs: setting.number(
      1_800_000,
      'before any GC, a rising heap is judged only over this much time, ms',
    ),
    fastSamples: setting.count(3, 'the fast rule takes the median growth per request of this many samples'),
    fastSigmas: setting.number(6, 'fast rule: above baseline + this many σ…'),
    fastMinRise: setting.number(1, '…and above baseline × (1 + this)'),
    fastHoldSamples: setting.count(2, 'samples the fast rule must hold before firing'),
    // samples with a GC are left out, and live a GC fell on ~40 % of the samples: 30 were not reached
    // in the 40 s before an injected leak, and the leak itself is never learned, so it was never judged
    fastWarmup: setting.count(15, 'samples of growth per request before the fast rule judges'),
    fastBaselineWindow: setting.count(300, 'samples in the growth-per-request baseline'),
    minArrivals: setting.count(5, 'fewest arrivals in a sample for the fast rule'),
    minArrivalsShare: setting.ratio(0.5, '…and at least this share of their usual (median) arrivals'),
    slowWarmupMs: setting.number(
      300_000,
      'event time an instance must have been seen before the slow rule judges it (a process warming up grows)',
    ),
  },
)
export type MemoryLeakOptions = OptionsOf<typeof MEMORY_LEAK.settings>

const SERIES = ['rss_bytes', 'heap_used_bytes'] as const
type Series = (typeof SERIES)[number]

/** Theil–Sen is O(n²): longer windows are strided down to about this many points */
const SLOPE_POINTS = 240

interface InstanceState {
  fleet: string
  instance: string
  tUs: number[]
  values: Record<Series, number[]>
  /** event times of the last GC drops of the heap (newest last) */
  gcUs: number[]
  /** heap growth per request, one value per sample without a GC (the fast rule's baseline) */
  growth: RollingBaseline
  /** the last few samples' heap growth per request */
  recentGrowth: number[]
  /** arrivals per sample where growth was learned: what comparable load is */
  arrivals: RollingBaseline
  fastHeld: number
  slowHeld: number
  lifecycle: AlertLifecycle
}

export interface LeakAssessment {
  series: Series
  leaking: boolean
  firstFloor: number
  lastFloor: number
  risingFraction: number
  /** Theil–Sen slope, bytes per hour */
  slopePerHour: number
  /** slope × horizon / current level */
  projectedRatio: number
  current: number
}

interface FastVerdict {
  breaching: boolean
  /** median heap growth per request over the last samples, bytes */
  observed: number
  baseline: number
  threshold: number
  /** bytes per hour at the current arrival rate */
  perHour: number
  projectedRatio: number
}

export class MemoryLeakDetector extends OneAlertDetector<InstanceState, typeof MEMORY_LEAK.settings> {
  constructor(opts: MemoryLeakOptions = {}) {
    super(MEMORY_LEAK, opts)
  }

  /** the rules hold their own counts (fast and slow), so the lifecycle fires on the first held sample */
  protected override get lifecycleOptions(): LifecycleOptions {
    return { pendingSamples: 1, resolveSamples: this.o.resolveSamples }
  }

  onHwSample(sample: HwSample): Alert[] {
    const { fleet, instance } = sample
    const key = `${fleet}/${instance}`
    const s = this.state(key, sample.timestamp_us, () => this.newState(key, { fleet, instance }))
    const heaps = s.values.heap_used_bytes
    const prevHeap = heaps[heaps.length - 1]
    const gc = prevHeap !== undefined && sample.heap_used_bytes < prevHeap * (1 - this.o.gcDropRatio)
    if (gc) {
      s.gcUs.push(sample.timestamp_us)
      if (s.gcUs.length > 8) s.gcUs.shift()
    }
    s.tUs.push(sample.timestamp_us)
    for (const k of SERIES) s.values[k].push(sample[k])
    if (s.tUs.length > this.o.maxWindowSamples) {
      s.tUs.shift()
      for (const k of SERIES) s.values[k].shift()
    }

    const fast = this.fastRule(s, sample, prevHeap, gc)
    s.fastHeld = fast?.breaching ? s.fastHeld + 1 : 0

    const holding = s.lifecycle.active
    const heap = this.slowRule(s, 'heap_used_bytes', holding)
    const rss = this.slowRule(s, 'rss_bytes', holding)
    const slow = [heap, rss].filter((a) => a.leaking).sort((a, b) => b.projectedRatio - a.projectedRatio)
    s.slowHeld = slow.length > 0 ? s.slowHeld + 1 : 0

    const warm = this.warm(key, sample.timestamp_us)
    const fastFires = warm && fast !== undefined && s.fastHeld >= this.o.fastHoldSamples
    // a young process's memory grows as it warms up (JIT, caches, pools): measured in `breakid up`,
    // rss 450 → 670 MB over its first 70 s with no leak, which the slow rule read as one
    const slowFires =
      this.seenFor(key, sample.timestamp_us) >= this.o.slowWarmupMs * 1000 &&
      s.slowHeld >= this.o.pendingSamples
    return this.judge(s.lifecycle, sample.timestamp_us, fastFires || slowFires, key, () =>
      this.finding(s, sample, fastFires ? fast : undefined, slowFires ? slow : [], heap),
    )
  }

  /** The heap's growth per request now vs its baseline; undefined while it cannot be judged. */
  private fastRule(
    s: InstanceState,
    sample: HwSample,
    prevHeap: number | undefined,
    gc: boolean,
  ): FastVerdict | undefined {
    if (prevHeap === undefined || gc || sample.arrivals < this.o.minArrivals) return undefined
    const usual = s.arrivals.count > 0 ? s.arrivals.median() : 0
    if (sample.arrivals < this.o.minArrivalsShare * usual) return undefined
    const growth = (sample.heap_used_bytes - prevHeap) / sample.arrivals
    s.recentGrowth.push(growth)
    if (s.recentGrowth.length > this.o.fastSamples) s.recentGrowth.shift()
    // a break must never teach the baseline that it is normal
    if (!s.lifecycle.active && s.fastHeld === 0) {
      s.growth.push(growth)
      s.arrivals.push(sample.arrivals)
    }
    if (!s.growth.ready || s.recentGrowth.length < this.o.fastSamples) return undefined
    const baseline = s.growth.median()
    const threshold =
      baseline + Math.max(this.o.fastSigmas * s.growth.sigma(), this.o.fastMinRise * Math.abs(baseline))
    const observed = median(s.recentGrowth)
    const intervalH = Math.max(sample.interval_ms, 1) / 3_600_000
    const perHour = ((observed - Math.max(baseline, 0)) * sample.arrivals) / intervalH
    const projectedRatio = (perHour * (this.o.horizonMs / 3_600_000)) / Math.max(sample.heap_used_bytes, 1)
    return {
      breaching: observed > threshold && projectedRatio >= this.o.minProjectedGrowthRatio,
      observed,
      baseline,
      threshold,
      perHour,
      projectedRatio,
    }
  }

  /**
   * The slow rule on one series. Chunk minima are post-GC floors only when the window holds whole GC
   * cycles, so the window is `windowSamples` stretched to `gcCycles` GC periods; before any GC has
   * been seen a rising heap is judged only over `noGcMinSpanMs` of event time. rss is also judged
   * on the plain window where the heap is not rising with it (native memory).
   */
  private slowRule(s: InstanceState, series: Series, holding: boolean): LeakAssessment {
    const n = s.tUs.length
    const over = (window: number) => {
      const from = Math.max(0, n - window)
      const tUs = s.tUs.slice(from)
      return { from, tUs, verdict: this.assess(series, tUs, s.values[series].slice(from), holding) }
    }
    if (series === 'rss_bytes') {
      const plain = over(this.o.windowSamples)
      const heapRising = this.assess('heap_used_bytes', plain.tUs, s.values.heap_used_bytes.slice(plain.from))
      if (
        plain.verdict.leaking &&
        heapRising.firstFloor * (1 + this.o.minWindowGrowthRatio) > heapRising.lastFloor
      )
        return plain.verdict
    }
    if (s.gcUs.length === 0) {
      const all = over(this.o.maxWindowSamples)
      const spanMs = n > 1 ? (s.tUs[n - 1]! - s.tUs[0]!) / 1000 : 0
      return spanMs >= this.o.noGcMinSpanMs ? all.verdict : { ...all.verdict, leaking: false }
    }
    const intervalUs = n > 1 ? (s.tUs[n - 1]! - s.tUs[0]!) / (n - 1) : 1
    // the time from the first sample to the first GC bounds the period from below until two GCs are known
    const gaps = [s.gcUs[0]! - s.tUs[0]!]
    for (let i = 1; i < s.gcUs.length; i++) gaps.push(s.gcUs[i]! - s.gcUs[i - 1]!)
    const periodSamples = Math.max(...gaps) / Math.max(intervalUs, 1)
    const window = Math.min(
      this.o.maxWindowSamples,
      Math.max(this.o.windowSamples, Math.ceil(this.o.gcCycles * periodSamples)),
    )
    const { tUs, verdict } = over(window)
    // chunk minima are floors when every chunk holds a GC; with GCs further apart than a chunk a
    // chunk's minimum is wherever its stretch of a tooth began, and the floors are the GCs' own values
    if (periodSamples * this.o.chunks > window) return this.assessGcFloors(s, series, holding)
    const gcInWindow = s.gcUs.filter((t) => t >= tUs[0]!).length
    return gcInWindow >= 2 ? verdict : { ...verdict, leaking: false }
  }

  /**
   * The slow rule where GCs are further apart than a chunk: the floors are the series' values at the
   * last GC samples — 4 (3 cycles) to fire, 3 (2 cycles) to hold an active alert — and the slope is
   * Theil–Sen over those floors, not over the teeth between them.
   */
  private assessGcFloors(s: InstanceState, series: Series, holding: boolean): LeakAssessment {
    const at = s.gcUs
      .slice(holding ? -3 : -4)
      .map((t) => s.tUs.lastIndexOf(t))
      .filter((i) => i >= 0)
    const ys = s.values[series]
    const current = ys[ys.length - 1] ?? Number.NaN
    if (at.length < (holding ? 3 : 4)) return this.notLeaking(series, current)
    const t0 = s.tUs[at[0]!]!
    return this.judgeFloors(
      series,
      at.map((i) => ys[i]!),
      at.map((i) => (s.tUs[i]! - t0) / 1e6),
      at.map((i) => ys[i]!),
      current,
      holding,
    )
  }

  /** Exposed for tests and the evaluation harness: the slow rule's verdict on one window of one series. */
  assess(series: Series, tUs: readonly number[], ys: readonly number[], holding = false): LeakAssessment {
    const n = ys.length
    if (n < this.o.minSamples || n < this.o.chunks * 2)
      return this.notLeaking(series, ys[n - 1] ?? Number.NaN)
    const floors: number[] = []
    for (let c = 0; c < this.o.chunks; c++) {
      const from = Math.floor((c * n) / this.o.chunks)
      const to = Math.floor(((c + 1) * n) / this.o.chunks)
      let floor = Number.POSITIVE_INFINITY
      for (let i = from; i < to; i++) floor = Math.min(floor, ys[i]!)
      floors.push(floor)
    }
    const stride = Math.max(1, Math.ceil(n / SLOPE_POINTS))
    const xs: number[] = []
    const sampled: number[] = []
    for (let i = 0; i < n; i += stride) {
      xs.push((tUs[i]! - tUs[0]!) / 1e6)
      sampled.push(ys[i]!)
    }
    return this.judgeFloors(series, floors, xs, sampled, ys[n - 1]!, holding)
  }

  /**
   * The thresholds on a series of floors (oldest first) and the points its slope is fitted on
   * (seconds, bytes). While an alert is active (`holding`) the floors need only rise in half the
   * steps by half the growth, with no step-share test: hysteresis, so noise in one window does not
   * resolve a leak that goes on.
   */
  private judgeFloors(
    series: Series,
    floors: readonly number[],
    xs: readonly number[],
    ys: readonly number[],
    current: number,
    holding: boolean,
  ): LeakAssessment {
    let rising = 0
    let maxStep = 0
    for (let c = 1; c < floors.length; c++) {
      const step = floors[c]! - floors[c - 1]!
      if (step > 0) rising++
      maxStep = Math.max(maxStep, step)
    }
    const firstFloor = floors[0]!
    const lastFloor = floors[floors.length - 1]!
    const growth = lastFloor - firstFloor
    const risingFraction = rising / (floors.length - 1)
    const hold = holding ? 0.5 : 1
    const floorsRise =
      risingFraction >= hold * this.o.minRisingFraction &&
      growth >= hold * this.o.minWindowGrowthRatio * Math.max(firstFloor, 1) &&
      // a one-off step (a model loaded) is one rising step of several: judged where there are several
      (holding || floors.length < 5 || maxStep <= this.o.maxStepShare * growth)
    // the slope only matters (and costs O(n²)) once the floors rise
    if (!floorsRise) return { ...this.notLeaking(series, current), firstFloor, lastFloor, risingFraction }
    const { slope } = theilSen(xs, ys)
    const projectedRatio = (slope * (this.o.horizonMs / 1000)) / Math.max(lastFloor, 1)
    return {
      series,
      leaking: slope > 0 && projectedRatio >= hold * this.o.minProjectedGrowthRatio,
      firstFloor,
      lastFloor,
      risingFraction,
      slopePerHour: slope * 3600,
      projectedRatio,
      current,
    }
  }

  private notLeaking(series: Series, current: number): LeakAssessment {
    return {
      series,
      leaking: false,
      firstFloor: Number.NaN,
      lastFloor: Number.NaN,
      risingFraction: 0,
      slopePerHour: 0,
      projectedRatio: 0,
      current,
    }
  }

  private finding(
    s: InstanceState,
    sample: HwSample,
    fast: FastVerdict | undefined,
    slow: LeakAssessment[],
    heap: LeakAssessment,
  ): Finding {
    const common = {
      fleet: s.fleet,
      instance: s.instance,
      model: '*',
      stage: null,
      exemplar_request_ids: [],
    }
    const worst = slow[0]
    if (worst) {
      const names = slow.map((a) => a.series).join(' and ')
      const nativeOnly = slow.length === 1 && worst.series === 'rss_bytes'
      return {
        ...common,
        severity: worst.projectedRatio >= 1 ? ('critical' as const) : ('warning' as const),
        statistic: `${worst.series}_growth_bytes_per_hour`,
        observed: worst.slopePerHour,
        baseline: 0,
        threshold: (this.o.minProjectedGrowthRatio * worst.current) / (this.o.horizonMs / 3_600_000),
        summary:
          `${sample.instance}: ${names} keep growing — ${worst.series} floor ${mb(worst.firstFloor)} → ` +
          `${mb(worst.lastFloor)}, ${mb(worst.slopePerHour)}/h, floors rising in ` +
          `${(worst.risingFraction * 100).toFixed(0)}% of steps; ` +
          `+${(worst.projectedRatio * 100).toFixed(0)}% projected within ${(this.o.horizonMs / 60000).toFixed(0)} min`,
        suspected_cause: nativeOnly
          ? 'native memory grows while the JS heap does not: inference sessions, tensors or buffers not released'
          : HEAP_CAUSE,
        suggested_action: nativeOnly
          ? 'check that inference sessions and output tensors are released; compare rss with the heap; restart the instance as a stopgap'
          : HEAP_ACTION,
      }
    }
    const f = fast!
    return {
      ...common,
      severity: f.projectedRatio >= 1 ? ('critical' as const) : ('warning' as const),
      statistic: 'heap_used_bytes_growth_per_request',
      observed: f.observed,
      baseline: f.baseline,
      threshold: f.threshold,
      summary:
        `${sample.instance}: the JS heap grows ${kb(f.observed)} per request (baseline ${kb(f.baseline)}, ` +
        `threshold ${kb(f.threshold)}) — ${mb(f.perHour)}/h beyond normal allocation at this load; ` +
        `+${(f.projectedRatio * 100).toFixed(0)}% projected within ${(this.o.horizonMs / 60000).toFixed(0)} min` +
        (Number.isFinite(heap.lastFloor) ? `; heap floor now ${mb(heap.lastFloor)}` : ''),
      suspected_cause: HEAP_CAUSE,
      suggested_action: HEAP_ACTION,
    }
  }

  protected fieldsToJson(s: InstanceState): Record<string, unknown> {
    return {
      fleet: s.fleet,
      instance: s.instance,
      tUs: s.tUs,
      rss_bytes: s.values.rss_bytes,
      heap_used_bytes: s.values.heap_used_bytes,
      gcUs: s.gcUs,
      growth: s.growth.toState(),
      recentGrowth: s.recentGrowth,
      arrivals: s.arrivals.toState(),
      fastHeld: s.fastHeld,
      slowHeld: s.slowHeld,
    }
  }

  protected fieldsFromJson(v: Record<string, unknown>) {
    const tUs = nums(v.tUs)
    const rss = nums(v.rss_bytes)
    const heap = nums(v.heap_used_bytes)
    const n = Math.min(tUs.length, rss.length, heap.length, this.o.maxWindowSamples)
    return {
      fleet: String(v.fleet ?? ''),
      instance: String(v.instance ?? ''),
      tUs: tUs.slice(tUs.length - n),
      values: { rss_bytes: rss.slice(rss.length - n), heap_used_bytes: heap.slice(heap.length - n) },
      gcUs: nums(v.gcUs),
      growth:
        v.growth === undefined
          ? new RollingBaseline(this.o.fastBaselineWindow, this.o.fastWarmup)
          : RollingBaseline.fromState(v.growth, this.o.fastBaselineWindow, this.o.fastWarmup),
      recentGrowth: nums(v.recentGrowth),
      arrivals: RollingBaseline.fromState(v.arrivals, this.o.fastBaselineWindow, 1),
      fastHeld: num(v.fastHeld, 0),
      slowHeld: num(v.slowHeld, 0),
    }
  }
}

const HEAP_CAUSE =
  'the JS heap grows after every GC: objects kept alive (caches without bounds, listeners, closures over requests)'
const HEAP_ACTION =
  'take two heap snapshots a few minutes apart and diff them; restart the instance as a stopgap before it runs out of memory'
const mb = (bytes: number) => `${(bytes / 1_048_576).toFixed(1)} MB`
const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`
