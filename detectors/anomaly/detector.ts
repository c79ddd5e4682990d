/**
 * `anomaly`: the generic detector for any numeric series keyed by name — the metrics nobody wrote a
 * rule for (`breakid replay --file` feeds it every numeric column; `onHwSample` feeds it the numeric
 * fields of hardware samples it is configured for). Each series (fleet + instance + name) has its own
 * SeriesModel (detectors/series/model.ts: level or seasonal expectation found from the data,
 * resolution-aware noise floors, a rate model for counts, the memory of earlier excursions so what
 * recurs becomes normal, probation) and an EpisodeGate (series/episodes.ts: one alert per episode,
 * hysteresis, quiet time). Everything is in points and event time, so a series sampled every five
 * minutes is as valid as one sampled every second, and a replay gives the live run's alerts.
 *
 * `assess` also returns the per-point anomaly score in [0, 1] (`breakid replay --scores`).
 */
import type { Alert, HwSample } from '../../contract/records.ts'
import { isRecord } from '../baseline.ts'
import { type Detector, keyedState } from '../detector.ts'
import { AlertLifecycle } from '../lifecycle.ts'
import { EpisodeGate, type EpisodeOptions } from '../series/episodes.ts'
import {
  type Assessment,
  type ModelName,
  resolveSeriesModelOptions,
  SeriesModel,
  type SeriesModelOptions,
} from '../series/model.ts'

export interface AnomalyOptions extends SeriesModelOptions, EpisodeOptions {
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

/** One scored point and the alert transitions it caused. */
export interface ScoredPoint {
  alerts: Alert[]
  /** undefined for a value that was skipped (not finite) */
  assessment?: Assessment
}

interface SeriesState {
  series: string
  fleet: string
  instance: string
  model: string
  detector: SeriesModel
  gate: EpisodeGate
  lifecycle: AlertLifecycle
}

/** the lifecycle turns the gate's transitions into alert records (ids, start and end) */
const LIFECYCLE = { pendingSamples: 1, resolveSamples: 1 }

export class AnomalyDetector implements Detector {
  readonly type = 'anomaly'
  private readonly modelOptions: SeriesModelOptions
  private readonly episodeOptions: EpisodeOptions
  private readonly hwFields: readonly HwField[]
  private readonly deviceFields: readonly DeviceField[]
  private readonly series = new Map<string, SeriesState>()

  constructor(opts: AnomalyOptions = {}) {
    const { hwFields, deviceFields, alertScore, quietPoints, ...model } = opts
    this.modelOptions = model
    this.episodeOptions = { alertScore, quietPoints: quietPoints ?? model.levelPoints }
    this.hwFields = hwFields ?? HW_FIELDS
    this.deviceFields = deviceFields ?? DEVICE_FIELDS
    resolveSeriesModelOptions(model) // validates the options once, here
  }

  onHwSample(sample: HwSample): Alert[] {
    const labels = { fleet: sample.fleet, instance: sample.instance, model: '*' }
    const out: Alert[] = []
    for (const f of this.hwFields) out.push(...this.observe(f, sample.timestamp_us, sample[f], labels))
    for (const d of sample.devices) {
      for (const f of this.deviceFields) {
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
    return this.assess(series, timestampUs, value, labels).alerts
  }

  /** observe, with the point's assessment (score, expected value, deviation) */
  assess(series: string, timestampUs: number, value: number, labels: SeriesLabels = {}): ScoredPoint {
    if (!Number.isFinite(value)) return { alerts: [] }
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
        detector: new SeriesModel(this.modelOptions),
        gate: new EpisodeGate(this.episodeOptions),
        lifecycle: new AlertLifecycle(LIFECYCLE),
      }
      this.series.set(key, s)
    }
    const a = s.detector.observe(timestampUs, value)
    if (!a) return { alerts: [] }
    const transition = s.gate.step(a)
    const alerts: Alert[] = []
    if (transition === 'fire') {
      const fired = s.lifecycle.observe(s.gate.onsetUs, true, this.evidence(key, s, a))
      if (fired) alerts.push({ ...fired, updated_at_us: timestampUs })
    } else if (transition === 'resolve') {
      const resolved = s.lifecycle.observe(timestampUs, false)
      if (resolved) alerts.push(resolved)
    }
    return { alerts, assessment: a }
  }

  private evidence(key: string, s: SeriesState, a: Assessment) {
    const o = s.detector.o
    const persistent = a.sustained
    const kind = persistent ? 'sustained shift' : 'sudden jump'
    const dir = a.direction > 0 ? 'up' : 'down'
    const interval = s.detector.intervalUs
    return {
      type: this.type,
      severity: a.deviation >= 2 * o.alertZ ? ('critical' as const) : ('warning' as const),
      dedup_key: `${this.type}/${key}`,
      fleet: s.fleet,
      instance: s.instance,
      model: s.model,
      stage: null,
      statistic: s.series,
      observed: a.value,
      baseline: a.expected,
      threshold: a.expected + a.direction * o.alertZ * a.spread,
      summary:
        `${s.instance === '*' ? '' : `${s.instance}: `}${s.series} ${kind} ${dir} — ${fmt(a.value)} against ` +
        `an expected ${fmt(a.expected)} ± ${fmt(a.spread)} (deviation ${a.deviation.toFixed(1)}σ, ` +
        `${a.model === 'level' ? 'recent level' : `${PATTERN[a.model]} pattern`}` +
        `${Number.isFinite(interval) ? `, every ${fmtInterval(interval)}` : ''}; ` +
        `${a.similarBefore ? `${a.similarBefore} similar excursion(s) before` : 'nothing like it before'})`,
      suspected_cause: `${s.series} left its usual ${a.model === 'level' ? 'range' : `${PATTERN[a.model]} pattern`} ${dir}wards`,
      suggested_action: `look at what changed around the onset in ${s.series} and the series that moved with it`,
      exemplar_request_ids: [],
    }
  }

  exportState(): Record<string, unknown> {
    return {
      version: 2,
      keys: keyedState(this.series, (s) => ({
        series: s.series,
        fleet: s.fleet,
        instance: s.instance,
        model: s.model,
        detector: s.detector.toState(),
        gate: s.gate.toState(),
        lifecycle: s.lifecycle.toState(),
      })),
    }
  }

  importState(state: Record<string, unknown>): void {
    if (!isRecord(state.keys)) return
    for (const [key, v] of Object.entries(state.keys)) {
      if (!isRecord(v)) continue
      this.series.set(key, {
        series: String(v.series ?? key),
        fleet: String(v.fleet ?? ''),
        instance: String(v.instance ?? '*'),
        model: String(v.model ?? '*'),
        detector: SeriesModel.fromState(v.detector, this.modelOptions),
        gate: EpisodeGate.fromState(v.gate, this.episodeOptions),
        lifecycle: AlertLifecycle.fromState(v.lifecycle, LIFECYCLE),
      })
    }
  }
}

const PATTERN: Record<ModelName, string> = { level: 'level', hour: 'hourly', day: 'daily', week: 'weekly' }

const fmt = (v: number) =>
  Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-2 && v !== 0) ? v.toExponential(3) : v.toFixed(3)

function fmtInterval(us: number): string {
  if (us >= 3_600e6) return `${(us / 3_600e6).toFixed(1)} h`
  if (us >= 60e6) return `${(us / 60e6).toFixed(1)} min`
  if (us >= 1e6) return `${(us / 1e6).toFixed(1)} s`
  return `${(us / 1000).toFixed(0)} ms`
}
