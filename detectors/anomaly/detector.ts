/**
 * `anomaly`: a generic detector for any numeric series keyed by name — the metrics nobody wrote a
 * rule for (`breakid replay --file` feeds it every numeric column; `onHwSample` feeds it every numeric
 * field of a hardware sample). It works in samples, never seconds, so a series sampled every five
 * minutes is as valid as one sampled every second.
 *
 * Each series keeps a baseline of its last `windowSamples` (120) values (or, with
 * `seasonPeriodSamples` = P, of its seasonal-naive residuals v[t] − v[t−P], for series with a known
 * cycle). A value's robust z is (v − median) / σ, σ = max(1.4826·MAD, 1.2533·mean |v − median|,
 * 1e-9·|median|): the mean-deviation term keeps σ above 0 for quantised or mostly-constant series.
 * The baseline learns only while no alert is firing.
 *
 * Thresholds (defaults): a break is
 * - a level shift: `holdSamples` (5) consecutive values with |z| > `zEnter` (4) on the same side, each
 *   outside the baseline's [min, max]; the alert starts at the first of them;
 * - or a sudden jump (a spike, or the first value of a large shift): one value with |z| ≥ `spikeZ` (8)
 *   outside the baseline's [min, max];
 * after a warm-up of `warmupSamples` (30). Hysteresis: the alert stays firing while |z| > `zExit` (2.5)
 * and resolves after `resolveSamples` (3) values inside it. A shift that persists `adoptAfterSamples`
 * (60) values becomes the new normal: the baseline is replaced by the values since the onset, and
 * the alert resolves — so a step is reported once, with its start and end, and not forever.
 *
 * White noise of any scale stays quiet: a level shift needs five values beyond 4σ in a row
 * (probability ~1e-23 per sample for Gaussian noise) and a spike one beyond 8σ (~1e-15).
 */
import type { Alert, HwSample } from '../../contract/records.ts'
import type { Detector } from '../detector.ts'
import { AlertLifecycle } from '../lifecycle.ts'
import { entriesOf, median, nums, robustZ } from '../stats.ts'

export interface AnomalyOptions {
  windowSamples?: number
  warmupSamples?: number
  zEnter?: number
  zExit?: number
  spikeZ?: number
  holdSamples?: number
  resolveSamples?: number
  adoptAfterSamples?: number
  /** seasonal-naive period in samples; 0 = off */
  seasonPeriodSamples?: number
  /** hardware-sample fields fed by onHwSample (default: every numeric one) */
  hwFields?: readonly HwField[]
  /** per-device fields fed by onHwSample, as `<device>.<field>` (default: every numeric one) */
  deviceFields?: readonly DeviceField[]
}

export const HW_FIELDS = [
  'process_cpu',
  'rss_bytes',
  'heap_used_bytes',
  'event_loop_delay_p99_ms',
  'gc_ms',
  'queue_depth',
  'in_flight',
  'arrivals',
  'completions',
  'executor_busy',
] as const
export type HwField = (typeof HW_FIELDS)[number]
export const DEVICE_FIELDS = ['utilization', 'memory_used_bytes', 'power_w', 'temperature_c'] as const
export type DeviceField = (typeof DEVICE_FIELDS)[number]

/** Where an observed series comes from; names the alert's fleet/instance/model. */
export interface SeriesLabels {
  fleet?: string
  instance?: string
  model?: string
}

interface SeriesState {
  series: string
  fleet: string
  instance: string
  model: string
  /** baseline window (values or seasonal residuals), oldest first */
  window: number[]
  /** raw values of the last P samples (seasonal mode only) */
  season: number[]
  seen: number
  /** current run of same-side values beyond zEnter */
  runLength: number
  runSign: number
  runOnsetUs: number
  /** values since the alert's onset (for adoption) */
  since: number[]
  lifecycle: AlertLifecycle
}

type Resolved = Required<AnomalyOptions>

export class AnomalyDetector implements Detector {
  readonly type = 'anomaly'
  private readonly o: Resolved
  private readonly series = new Map<string, SeriesState>()

  constructor(opts: AnomalyOptions = {}) {
    this.o = {
      windowSamples: 120,
      warmupSamples: 30,
      zEnter: 4,
      zExit: 2.5,
      spikeZ: 8,
      holdSamples: 5,
      resolveSamples: 3,
      adoptAfterSamples: 60,
      seasonPeriodSamples: 0,
      hwFields: HW_FIELDS,
      deviceFields: DEVICE_FIELDS,
      ...opts,
    }
    if (this.o.warmupSamples > this.o.windowSamples) throw new RangeError('warmupSamples > windowSamples')
  }

  onHwSample(sample: HwSample): Alert[] {
    const labels = { fleet: sample.fleet, instance: sample.instance, model: '*' }
    const out: Alert[] = []
    for (const f of this.o.hwFields) out.push(...this.observe(f, sample.timestamp_us, sample[f], labels))
    for (const d of sample.devices) {
      for (const f of this.o.deviceFields) {
        const v = d[f]
        if (v !== null) out.push(...this.observe(`${d.device}.${f}`, sample.timestamp_us, v, labels))
      }
    }
    return out
  }

  /**
   * Feeds one value of a series (any name; non-finite values are skipped). Series are keyed by
   * fleet + instance + name. Returns the alert state changes it causes.
   */
  observe(series: string, timestampUs: number, value: number, labels: SeriesLabels = {}): Alert[] {
    if (!Number.isFinite(value)) return []
    const fleet = labels.fleet ?? ''
    const instance = labels.instance ?? '*'
    const key = `${fleet}/${instance}/${series}`
    let s = this.series.get(key)
    if (!s) {
      s = {
        series,
        fleet,
        instance,
        model: labels.model ?? '*',
        window: [],
        season: [],
        seen: 0,
        runLength: 0,
        runSign: 0,
        runOnsetUs: 0,
        since: [],
        lifecycle: new AlertLifecycle({ pendingSamples: 1, resolveSamples: this.o.resolveSamples }),
      }
      this.series.set(key, s)
    }
    const P = this.o.seasonPeriodSamples
    let x = value
    let reference: number | undefined
    if (P > 0) {
      s.season.push(value)
      if (s.season.length <= P) return []
      reference = s.season.shift()!
      x = value - reference
    }
    const alert = this.step(key, s, timestampUs, x, value, reference)
    return alert ? [alert] : []
  }

  private step(
    key: string,
    s: SeriesState,
    nowUs: number,
    x: number,
    raw: number,
    reference: number | undefined,
  ): Alert | undefined {
    s.seen++
    if (s.window.length < this.o.warmupSamples) {
      this.learn(s, x)
      return undefined
    }
    const centre = median(s.window)
    const dev = s.window.map((v) => Math.abs(v - centre))
    const sigma = Math.max(
      1.4826 * median(dev),
      (1.2533 * dev.reduce((a, b) => a + b, 0)) / dev.length,
      1e-9 * Math.abs(centre),
    )
    let lo = Number.POSITIVE_INFINITY
    let hi = Number.NEGATIVE_INFINITY
    for (const v of s.window) {
      if (v < lo) lo = v
      if (v > hi) hi = v
    }
    const z = robustZ(x, centre, sigma)
    const outside = x < lo || x > hi

    if (s.lifecycle.state === 'firing') {
      s.since.push(x)
      if (s.since.length >= this.o.adoptAfterSamples) {
        // the shift persisted: it is the new normal
        s.window = s.since.slice(-this.o.windowSamples)
        s.since = []
        s.runLength = 0
        // judged against the adopted level, the value is clear
        return s.lifecycle.observe(nowUs, false)
      }
      return s.lifecycle.observe(nowUs, Math.abs(z) > this.o.zExit)
    }

    const sign = Math.sign(z)
    if (Math.abs(z) > this.o.zEnter && outside) {
      if (s.runLength > 0 && sign === s.runSign) s.runLength++
      else {
        s.runLength = 1
        s.runSign = sign
        s.runOnsetUs = nowUs
        s.since = []
      }
      s.since.push(x)
    } else {
      s.runLength = 0
      s.since = []
    }
    const spike = Math.abs(z) >= this.o.spikeZ && outside
    const shift = s.runLength >= this.o.holdSamples
    if (!spike && !shift) {
      // a value in an unfinished run is kept out of the baseline, so a shift does not teach it
      if (s.runLength === 0) this.learn(s, x)
      return undefined
    }
    const kind = shift ? 'level shift' : 'sudden jump'
    const onsetUs = shift ? s.runOnsetUs : nowUs
    if (!shift) s.since = [x]
    s.runLength = 0
    const threshold = centre + sign * this.o.zEnter * sigma
    const fmt = (v: number) =>
      Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-2 && v !== 0) ? v.toExponential(3) : v.toFixed(3)
    const seasonal = reference !== undefined ? ` (one season ago: ${fmt(reference)})` : ''
    const what = reference !== undefined ? 'change against one season ago' : 'value'
    const fired = s.lifecycle.observe(onsetUs, true, {
      type: this.type,
      severity: Math.abs(z) >= 2 * this.o.spikeZ ? 'critical' : 'warning',
      dedup_key: `${this.type}/${key}`,
      fleet: s.fleet,
      instance: s.instance,
      model: s.model,
      stage: null,
      statistic: s.series,
      observed: x,
      baseline: centre,
      threshold,
      summary:
        `${s.instance === '*' ? '' : `${s.instance}: `}${s.series} ${kind} ${sign > 0 ? 'up' : 'down'} — ` +
        `${what} ${fmt(x)}${seasonal} against a baseline median ${fmt(centre)} ± ${fmt(sigma)} ` +
        `(robust z ${Number.isFinite(z) ? z.toFixed(1) : '∞'}` +
        `${shift ? `, ${this.o.holdSamples} samples in a row` : ''}; baseline of ${s.window.length} samples)`,
      suspected_cause: `${s.series} left its usual range (${fmt(lo)} … ${fmt(hi)})${raw !== x ? ` at ${fmt(raw)}` : ''}`,
      suggested_action: `look at what changed around the onset in ${s.series} and the series that moved with it`,
      exemplar_request_ids: [],
    })
    return fired ? { ...fired, updated_at_us: nowUs } : undefined
  }

  private learn(s: SeriesState, x: number): void {
    s.window.push(x)
    if (s.window.length > this.o.windowSamples) s.window.shift()
  }

  exportState(): Record<string, unknown> {
    const series: Record<string, unknown> = {}
    for (const [key, s] of this.series) {
      series[key] = {
        series: s.series,
        fleet: s.fleet,
        instance: s.instance,
        model: s.model,
        window: s.window,
        season: s.season,
        seen: s.seen,
        since: s.since,
        lifecycle: s.lifecycle.toState(),
      }
    }
    return { version: 1, series }
  }

  importState(state: Record<string, unknown>): void {
    for (const [key, v] of entriesOf(state.series)) {
      const firingSince = nums(v.since)
      const lifecycle = AlertLifecycle.fromState(v.lifecycle, {
        pendingSamples: 1,
        resolveSamples: this.o.resolveSamples,
      })
      this.series.set(key, {
        series: String(v.series ?? key),
        fleet: String(v.fleet ?? ''),
        instance: String(v.instance ?? '*'),
        model: String(v.model ?? '*'),
        window: nums(v.window).slice(-this.o.windowSamples),
        season: nums(v.season).slice(-this.o.seasonPeriodSamples || undefined),
        seen: typeof v.seen === 'number' ? v.seen : 0,
        runLength: 0,
        runSign: 0,
        runOnsetUs: 0,
        since: lifecycle.state === 'firing' ? firingSince : [],
        lifecycle,
      })
    }
  }
}
