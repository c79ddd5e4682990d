/**
 * `memory_leak`: rss_bytes or heap_used_bytes of an instance grows steadily, sample after sample.
 * Judged on the last `windowSamples` hardware samples of the instance (a window in samples, so the
 * same rule reads 1-second and 5-minute sampling), split into `chunks` equal chunks whose minimum is
 * the memory *floor* of that stretch (what is left after GC). A leak raises every floor; a GC sawtooth
 * has flat floors however steep its teeth; a one-off step (a model loaded, a cache filled) raises one
 * floor once and then stays flat.
 *
 * Thresholds (defaults), for either series:
 * - at least `minSamples` (60) samples in the window (warm-up)
 * - floors rise from chunk to chunk in ≥ `minRisingFraction` (0.8) of the steps    sustained
 * - the floors grew by ≥ `minWindowGrowthRatio` (0.02) of the first floor          not noise
 * - no single floor step carries more than `maxStepShare` (0.5) of that growth    not a one-off step
 * - the Theil–Sen slope over all samples projects ≥ `minProjectedGrowthRatio` (0.1) of the current
 *   level within `horizonMs` (1 h)                                                 it matters soon
 * - held `pendingSamples` (5) samples before firing; clear `resolveSamples` (10) to resolve
 * Severity: critical when the projection reaches the current level again (memory doubles) in the horizon.
 */
import type { Alert, HwSample } from '../../ingest/contract/records.ts'
import { type Detector, getOrCreate } from '../detector.ts'
import { AlertLifecycle, type LifecycleOptions } from '../lifecycle.ts'
import { entriesOf, nums, theilSen } from '../stats.ts'

export interface MemoryLeakOptions extends LifecycleOptions {
  windowSamples?: number
  minSamples?: number
  chunks?: number
  minRisingFraction?: number
  minWindowGrowthRatio?: number
  maxStepShare?: number
  minProjectedGrowthRatio?: number
  horizonMs?: number
}

const SERIES = ['rss_bytes', 'heap_used_bytes'] as const
type Series = (typeof SERIES)[number]

interface InstanceState {
  fleet: string
  instance: string
  tUs: number[]
  values: Record<Series, number[]>
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

export class MemoryLeakDetector implements Detector {
  readonly type = 'memory_leak'
  private readonly o: Required<MemoryLeakOptions>
  private readonly instances = new Map<string, InstanceState>()

  constructor(opts: MemoryLeakOptions = {}) {
    this.o = {
      windowSamples: 120,
      minSamples: 60,
      chunks: 6,
      minRisingFraction: 0.8,
      minWindowGrowthRatio: 0.02,
      maxStepShare: 0.5,
      minProjectedGrowthRatio: 0.1,
      horizonMs: 3_600_000,
      pendingSamples: 5,
      resolveSamples: 10,
      ...opts,
    }
  }

  private state(fleet: string, instance: string): InstanceState {
    const key = `${fleet}/${instance}`
    return getOrCreate(this.instances, key, () => ({
      fleet,
      instance,
      tUs: [],
      values: { rss_bytes: [], heap_used_bytes: [] },
      lifecycle: new AlertLifecycle(this.o),
    }))
  }

  onHwSample(sample: HwSample): Alert[] {
    const s = this.state(sample.fleet, sample.instance)
    s.tUs.push(sample.timestamp_us)
    for (const k of SERIES) s.values[k].push(sample[k])
    if (s.tUs.length > this.o.windowSamples) {
      s.tUs.shift()
      for (const k of SERIES) s.values[k].shift()
    }
    const assessed = SERIES.map((k) => this.assess(k, s.tUs, s.values[k]))
    const leaking = assessed.filter((a) => a.leaking).sort((a, b) => b.projectedRatio - a.projectedRatio)
    const worst = leaking[0]
    const alert = s.lifecycle.observe(
      sample.timestamp_us,
      worst !== undefined,
      worst ? this.evidence(s, worst, leaking, sample) : undefined,
    )
    return alert ? [alert] : []
  }

  /** Exposed for tests and the evaluation harness: the verdict on one window of one series. */
  assess(series: Series, tUs: readonly number[], ys: readonly number[]): LeakAssessment {
    const n = ys.length
    const none: LeakAssessment = {
      series,
      leaking: false,
      firstFloor: Number.NaN,
      lastFloor: Number.NaN,
      risingFraction: 0,
      slopePerHour: 0,
      projectedRatio: 0,
      current: ys[n - 1] ?? Number.NaN,
    }
    if (n < this.o.minSamples || n < this.o.chunks * 2) return none
    const floors: number[] = []
    for (let c = 0; c < this.o.chunks; c++) {
      const from = Math.floor((c * n) / this.o.chunks)
      const to = Math.floor(((c + 1) * n) / this.o.chunks)
      floors.push(Math.min(...ys.slice(from, to)))
    }
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
    const { slope } = theilSen(
      tUs.map((t) => (t - tUs[0]!) / 1e6),
      ys,
    )
    const slopePerHour = slope * 3600
    const current = Math.max(lastFloor, 1)
    const projectedRatio = (slope * (this.o.horizonMs / 1000)) / current
    const leaking =
      risingFraction >= this.o.minRisingFraction &&
      growth >= this.o.minWindowGrowthRatio * Math.max(firstFloor, 1) &&
      maxStep <= this.o.maxStepShare * growth &&
      slope > 0 &&
      projectedRatio >= this.o.minProjectedGrowthRatio
    return {
      series,
      leaking,
      firstFloor,
      lastFloor,
      risingFraction,
      slopePerHour,
      projectedRatio,
      current: ys[n - 1]!,
    }
  }

  private evidence(s: InstanceState, worst: LeakAssessment, all: LeakAssessment[], sample: HwSample) {
    const spanS = (s.tUs[s.tUs.length - 1]! - s.tUs[0]!) / 1e6
    const names = all.map((a) => a.series).join(' and ')
    const nativeOnly = all.length === 1 && worst.series === 'rss_bytes'
    return {
      type: this.type,
      severity: worst.projectedRatio >= 1 ? ('critical' as const) : ('warning' as const),
      dedup_key: `${this.type}/${s.fleet}/${s.instance}`,
      fleet: s.fleet,
      instance: s.instance,
      model: '*',
      stage: null,
      statistic: `${worst.series}_growth_bytes_per_hour`,
      observed: worst.slopePerHour,
      baseline: 0,
      threshold: (this.o.minProjectedGrowthRatio * worst.current) / (this.o.horizonMs / 3_600_000),
      summary:
        `${sample.instance}: ${names} keep growing — ${worst.series} floor ${mb(worst.firstFloor)} → ` +
        `${mb(worst.lastFloor)} over ${s.tUs.length} samples (${(spanS / 60).toFixed(1)} min), ` +
        `${mb(worst.slopePerHour)}/h, floors rising in ${(worst.risingFraction * 100).toFixed(0)}% of steps; ` +
        `+${(worst.projectedRatio * 100).toFixed(0)}% projected within ${(this.o.horizonMs / 60000).toFixed(0)} min`,
      suspected_cause: nativeOnly
        ? 'native memory grows while the JS heap does not: inference sessions, tensors or buffers not released'
        : 'the JS heap grows after every GC: objects kept alive (caches without bounds, listeners, closures over requests)',
      suggested_action: nativeOnly
        ? 'check that inference sessions and output tensors are released; compare rss with the heap; restart the instance as a stopgap'
        : 'take two heap snapshots a few minutes apart and diff them; restart the instance as a stopgap before it runs out of memory',
      exemplar_request_ids: [],
    }
  }

  exportState(): Record<string, unknown> {
    const instances: Record<string, unknown> = {}
    for (const [key, s] of this.instances) {
      instances[key] = {
        fleet: s.fleet,
        instance: s.instance,
        tUs: s.tUs,
        rss_bytes: s.values.rss_bytes,
        heap_used_bytes: s.values.heap_used_bytes,
        lifecycle: s.lifecycle.toState(),
      }
    }
    return { version: 1, instances }
  }

  importState(state: Record<string, unknown>): void {
    for (const [key, v] of entriesOf(state.instances)) {
      const tUs = nums(v.tUs)
      const rss = nums(v.rss_bytes)
      const heap = nums(v.heap_used_bytes)
      const n = Math.min(tUs.length, rss.length, heap.length, this.o.windowSamples)
      this.instances.set(key, {
        fleet: String(v.fleet ?? ''),
        instance: String(v.instance ?? ''),
        tUs: tUs.slice(tUs.length - n),
        values: { rss_bytes: rss.slice(rss.length - n), heap_used_bytes: heap.slice(heap.length - n) },
        lifecycle: AlertLifecycle.fromState(v.lifecycle, this.o),
      })
    }
  }
}

const mb = (bytes: number) => `${(bytes / 1_048_576).toFixed(1)} MB`
