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
 *
 * On the detector kernel (../detector.ts): one key per series, its settings declared once
 * (`ANOMALY.settings`, flat so the configuration can set them; the nested `probation` of
 * AnomalyOptions maps onto the `probation*` settings), snapshots, shutdown and stale resolution. Its
 * warm-up is the series model's probation, in points, so the kernel's event-time warm-up is 0 here.
 */
import type { NumericField } from '../../contract/fields.ts'
import type { Alert, DeviceSample, HwSample } from '../../contract/records.ts'
import { detectorKind, OneAlertDetector, type SettingsOf, setting } from '../detector.ts'
import type { AlertLifecycle } from '../lifecycle.ts'
import { EPISODE_DEFAULTS, EpisodeGate, type EpisodeOptions } from '../series/episodes.ts'
import {
  type Assessment,
  type ModelName,
  resolveSeriesModelOptions,
  SERIES_MODEL_DEFAULTS,
  SeriesModel,
  type SeriesModelOptions,
} from '../series/model.ts'

export interface AnomalyOptions extends SeriesModelOptions, EpisodeOptions {
  /** hardware-sample fields fed by onHwSample (default: every numeric one) */
  hwFields?: readonly HwField[]
  /** per-device fields fed by onHwSample, as `<device>.<field>` (default: every numeric one) */
  deviceFields?: readonly DeviceField[]
}

/**
 * The hardware-sample fields watched by default: a choice among the contract's numeric fields
 * (contract/fields.ts, typed against them so a renamed field fails to compile), leaving out the host's
 * own pressure fields, which host_contention reads.
 */
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
] as const satisfies readonly NumericField<HwSample>[]
export type HwField = (typeof HW_FIELDS)[number]
/** the accelerator fields watched by default: the device record's numbers but its memory size (a constant) */
export const DEVICE_FIELDS = [
  'utilization',
  'memory_used_bytes',
  'power_w',
  'temperature_c',
] as const satisfies readonly NumericField<DeviceSample>[]
export type DeviceField = (typeof DEVICE_FIELDS)[number]

const M = SERIES_MODEL_DEFAULTS

/**
 * Its settings. The live default watches only device temperature and power: on arrivals,
 * completions, CPU, busy fraction or GC time a generic detector pages on every traffic burst and
 * major GC; `breakid replay --file` runs it on every column instead.
 */
export const ANOMALY = detectorKind(
  'anomaly',
  { spans: [], hw: [...HW_FIELDS, 'devices'] },
  {
    // the episode gate decides firing and resolving; the lifecycle only turns them into records
    pendingSamples: setting.count(1, 'transitions from the episode gate before a record (1: at once)'),
    resolveSamples: setting.count(1, 'resolutions from the episode gate before a record (1: at once)'),
    warmupMs: setting.number(0, 'event-time warm-up; 0: the probation (in points) is the warm-up'),
    levelPoints: setting.count(
      M.levelPoints,
      'values in the level baseline; a shift this long becomes normal',
    ),
    spreadPoints: setting.count(M.spreadPoints, 'residuals in the spread baseline'),
    probationMinPoints: setting.count(M.probation.minPoints, 'never fewer values than this before scoring'),
    probationSpanMs: setting.number(
      M.probation.spanUs / 1000,
      'probation ends after this much event time, ms',
    ),
    probationMaxPoints: setting.count(M.probation.maxPoints, '…or after this many values'),
    relativeFloor: setting.number(M.relativeFloor, 'floor of σ as a share of the expected value'),
    alertZ: setting.number(M.alertZ, 'deviation (σ) at which the score is 0.5'),
    excursionZ: setting.number(M.excursionZ, 'deviation that opens an excursion and keeps it open'),
    familiarAfter: setting.count(
      M.familiarAfter,
      'earlier similar excursions after which one is familiar',
      0,
    ),
    similarShare: setting.ratio(
      M.similarShare,
      'an earlier excursion is similar at this share of the height',
    ),
    seasonalGain: setting.ratio(
      M.seasonalGain,
      'a seasonal model takes over with residuals this much tighter',
    ),
    historyPoints: setting.count(M.historyPoints, 'how long excursions are remembered, points'),
    alertScore: setting.ratio(EPISODE_DEFAULTS.alertScore, 'score at which an alert fires'),
    quietPoints: setting.count(
      EPISODE_DEFAULTS.quietPoints,
      'points after a resolve before the series may fire again',
      0,
    ),
    hwFields: setting.list([], `hardware-sample fields it watches (of ${HW_FIELDS.join(', ')})`),
    deviceFields: setting.list(
      ['temperature_c', 'power_w'],
      `per-device fields it watches (of ${DEVICE_FIELDS.join(', ')})`,
    ),
  },
)
type AnomalySettings = SettingsOf<typeof ANOMALY.settings>

/** Where an observed series comes from; names the alert's fleet/instance/model. */
export interface SeriesLabels {
  fleet?: string
  instance?: string
  model?: string
}

/** the finest score step printed by `breakid replay --scores` (4 decimals) */
export const SCORE_RESOLUTION = 1e-4

/** One scored point and the alert transitions it caused. */
export interface ScoredPoint {
  alerts: Alert[]
  /** undefined for a value that was skipped (not finite) */
  assessment?: Assessment
  /**
   * The point's score under the alert policy, in [0, 1]: the model's score where an alert fired
   * here (≥ alertScore), at most just below alertScore where the policy held one back (inside a
   * firing episode, the quiet time, before the key is warm). So whoever thresholds `--scores` at the
   * alert score gets exactly the alerts, not one detection per point of every episode — on the
   * tuning corpus that was 1 796 points against 76 false alerts, a window score of −76 against 83
   * (bench/scores-thresholded.ts).
   */
  score?: number
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

/**
 * AnomalyOptions (nested probation, used by replay and the corpus) or the registry's flat settings,
 * as flat settings. Without either field list a directly built detector watches every field (replay
 * and tests); the registry passes the live default explicitly.
 */
function flatten(opts: AnomalyOptions & Partial<AnomalySettings>): Partial<AnomalySettings> {
  const { probation, ...rest } = opts as AnomalyOptions & Partial<AnomalySettings>
  const { seasonsS: _seasons, ...settings } = rest as AnomalyOptions & Record<string, unknown>
  const flat: Record<string, unknown> = { ...settings }
  if (probation?.minPoints !== undefined) flat.probationMinPoints = probation.minPoints
  if (probation?.spanUs !== undefined) flat.probationSpanMs = probation.spanUs / 1000
  if (probation?.maxPoints !== undefined) flat.probationMaxPoints = probation.maxPoints
  // an episode's quiet time follows the level window unless set
  if (flat.quietPoints === undefined && flat.levelPoints !== undefined) flat.quietPoints = flat.levelPoints
  flat.hwFields ??= HW_FIELDS
  flat.deviceFields ??= DEVICE_FIELDS
  return flat as Partial<AnomalySettings>
}

export class AnomalyDetector extends OneAlertDetector<SeriesState, typeof ANOMALY.settings> {
  private readonly modelOptions: SeriesModelOptions
  private readonly episodeOptions: EpisodeOptions
  private readonly hwFields: readonly HwField[]
  private readonly deviceFields: readonly DeviceField[]

  constructor(opts: AnomalyOptions & Partial<AnomalySettings> = {}) {
    super(ANOMALY, flatten(opts))
    const o = this.settings
    this.modelOptions = {
      levelPoints: o.levelPoints,
      spreadPoints: o.spreadPoints,
      probation: {
        minPoints: o.probationMinPoints,
        spanUs: o.probationSpanMs * 1000,
        maxPoints: o.probationMaxPoints,
      },
      relativeFloor: o.relativeFloor,
      alertZ: o.alertZ,
      excursionZ: o.excursionZ,
      familiarAfter: o.familiarAfter,
      similarShare: o.similarShare,
      seasonalGain: o.seasonalGain,
      historyPoints: o.historyPoints,
      ...(opts.seasonsS ? { seasonsS: opts.seasonsS } : {}),
    }
    this.episodeOptions = { alertScore: o.alertScore, quietPoints: o.quietPoints }
    this.hwFields = o.hwFields.filter((f): f is HwField => (HW_FIELDS as readonly string[]).includes(f))
    this.deviceFields = o.deviceFields.filter((f): f is DeviceField =>
      (DEVICE_FIELDS as readonly string[]).includes(f),
    )
    resolveSeriesModelOptions(this.modelOptions) // validates the options once, here
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
    const s = this.state(key, timestampUs, () => ({
      series,
      fleet,
      instance,
      model: labels.model ?? '*',
      detector: new SeriesModel(this.modelOptions),
      gate: new EpisodeGate(this.episodeOptions),
      lifecycle: this.newLifecycle(),
    }))
    const a = s.detector.observe(timestampUs, value)
    if (!a) return { alerts: [] }
    const transition = s.gate.step(a)
    const alerts: Alert[] = []
    if (transition === 'fire' && this.warm(key, timestampUs)) {
      const fired = s.lifecycle.observe(s.gate.onsetUs, true, this.evidence(key, s, a))
      if (fired) alerts.push({ ...fired, updated_at_us: timestampUs })
    } else if (transition === 'resolve') {
      const resolved = s.lifecycle.observe(timestampUs, false)
      if (resolved) alerts.push(resolved)
    }
    const fired = alerts.some((x) => x.status === 'firing')
    const heldBack = Math.max(0, this.episodeOptions.alertScore! - SCORE_RESOLUTION)
    return { alerts, assessment: a, score: fired ? a.score : Math.min(a.score, heldBack) }
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

  protected fieldsToJson(s: SeriesState): Record<string, unknown> {
    return {
      series: s.series,
      fleet: s.fleet,
      instance: s.instance,
      model: s.model,
      detector: s.detector.toState(),
      gate: s.gate.toState(),
    }
  }

  protected fieldsFromJson(v: Record<string, unknown>, key: string) {
    return {
      series: String(v.series ?? key),
      fleet: String(v.fleet ?? ''),
      instance: String(v.instance ?? '*'),
      model: String(v.model ?? '*'),
      detector: SeriesModel.fromState(v.detector, this.modelOptions),
      gate: EpisodeGate.fromState(v.gate, this.episodeOptions),
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
