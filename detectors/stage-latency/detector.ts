/**
 * Stage latency regression: one stage of one model on one instance takes far longer than it used
 * to. Spans are aggregated per (instance, model) into event-time intervals of `intervalMs`; each
 * closed interval gives every stage's median duration, compared with that stage's baseline (the
 * median of past interval medians) — so the alert names the stage that regressed, not just "slow".
 *
 * An interval closes when a span of a later interval arrives for the same (instance, model); spans
 * arriving late for a closed interval count in the open one. Intervals with fewer than `minSpans`
 * spans are skipped (too few to have a median worth paging on).
 *
 * Thresholds (defaults):
 * - observed median > max(baseline × `ratio` (1.5), baseline + `sigmas` (6) × σ)   far above normal
 *   (queue_wait: × `queueWaitRatio` (3) — waiting grows with load by nature; the queue has its own
 *   detector, and a stage that slows is named by its own regression)
 * - and observed − baseline > `minIncreaseUs` (1000)          microsecond stages do not page
 * - held for `pendingSamples` (2) intervals; clear for `resolveSamples` (3) to resolve
 * - only requests that succeeded count: a failed one skips the stages after the failure
 * - baseline: `baselineWindow` (60) intervals, ready after `warmupSamples` (10), frozen while the
 *   stage's alert is pending or firing
 * - severity critical above 10 × baseline, else warning
 */
import type { Alert, Span } from '../../contract/records.ts'
import { STAGES, type Stage } from '../../contract/vocabulary.ts'
import { isRecord, RollingBaseline } from '../baseline.ts'
import { type Finding, type OptionsOf, setting, detectorKind, DeclaredDetector } from '../detector.ts'
import type { AlertLifecycle } from '../lifecycle.ts'
import { exemplarIds, RecentSpans } from '../recent-spans.ts'

export const STAGE_LATENCY = detectorKind(
  'stage_latency_regression',
  {
    spans: ['instance', 'model', 'status', 'request_id', ...STAGES.map((s) => `${s}_us` as const)],
    hw: [],
  },
  {
    intervalMs: setting.number(1000, 'event-time interval whose median is compared, ms', { min: 1 }),
    minSpans: setting.count(5, 'fewest spans in an interval to judge it'),
    ratio: setting.number(1.5, 'median above baseline × this'),
    queueWaitRatio: setting.number(3, 'the same for queue_wait, which grows with load by nature'),
    sigmas: setting.number(6, '…and above baseline + this many σ'),
    minIncreaseUs: setting.number(1000, '…and above baseline + this many µs'),
    baselineWindow: setting.count(60, 'intervals in the baseline'),
    warmupSamples: setting.count(10, 'intervals before the baseline is used'),
  },
)
export type StageLatencyOptions = OptionsOf<typeof STAGE_LATENCY.settings>

/** the spans of an open interval: the newest, enough for a median and exemplars */
const intervalSpans = (model: string) => new RecentSpans(model, 512)

interface StageState {
  baseline: RollingBaseline
  lifecycle: AlertLifecycle
}

/** One instance + model. */
interface ModelState {
  fleet: string
  instance: string
  model: string
  intervalStartUs: number
  spans: RecentSpans
  stages: Map<Stage, StageState>
}

const CAUSES: Record<Stage, string> = {
  deserialize: 'request decoding slowed: larger payloads or CPU contention on the request path',
  preprocess: 'preprocessing slowed: CPU contention, a saturated preprocessing pool or a slow data source',
  queue_wait: 'requests wait longer for the executor: load above capacity or a slower executor',
  compute: 'model execution slowed: device throttling or contention, a model change, or smaller batches',
  postprocess: 'postprocessing slowed: larger outputs or CPU contention',
  serialize: 'response encoding slowed: larger responses or CPU contention on the request path',
}
const ACTIONS: Record<Stage, string> = {
  deserialize: 'compare request sizes with the baseline; check the process CPU of this instance',
  preprocess: 'add preprocessing workers or check the data source; compare with the other instances',
  queue_wait: 'add capacity or check compute on this instance; look at the queue depth and batch sizes',
  compute: 'check device clocks, temperature and other tenants; check for a model version change',
  postprocess: 'check output sizes and the process CPU of this instance',
  serialize: 'compare response sizes with the baseline; check the process CPU of this instance',
}

export class StageLatencyDetector extends DeclaredDetector<ModelState, typeof STAGE_LATENCY.settings> {
  constructor(opts: StageLatencyOptions = {}) {
    super(STAGE_LATENCY, opts)
  }

  protected lifecyclesOf(m: ModelState): AlertLifecycle[] {
    return [...m.stages.values()].map((s) => s.lifecycle)
  }

  protected instanceOf(m: ModelState): string {
    return m.instance
  }

  private stage(m: ModelState, stage: Stage): StageState {
    let s = m.stages.get(stage)
    if (!s) {
      s = {
        baseline: new RollingBaseline(this.o.baselineWindow, this.o.warmupSamples),
        lifecycle: this.newLifecycle(),
      }
      m.stages.set(stage, s)
    }
    return s
  }

  onSpan(span: Span): Alert[] {
    const intervalUs = this.o.intervalMs * 1000
    const start = Math.floor(span.timestamp_us / intervalUs) * intervalUs
    const key = `${span.instance}/${span.model}`
    const m = this.state(key, span.timestamp_us, () => ({
      fleet: span.fleet,
      instance: span.instance,
      model: span.model,
      intervalStartUs: start,
      spans: intervalSpans(span.model),
      stages: new Map(),
    }))
    let out: Alert[] = []
    if (start > m.intervalStartUs) {
      out = this.closeInterval(key, m, m.spans.take())
      m.intervalStartUs = start
    }
    // a failed request skips the stages after the failure (they read 0): it says nothing about them
    if (span.status !== 'ok') return out
    m.spans.add(span)
    return out
  }

  private closeInterval(key: string, m: ModelState, spans: readonly Span[]): Alert[] {
    if (spans.length < this.o.minSpans) return []
    const nowUs = m.intervalStartUs + this.o.intervalMs * 1000
    const { instance, model } = m
    const warm = this.warm(key, nowUs)
    const out: Alert[] = []
    for (const stage of STAGES) {
      const s = this.stage(m, stage)
      const values = spans.map((x) => x[`${stage}_us`]).sort((a, b) => a - b)
      const observed = values[Math.floor(values.length / 2)]!
      const base = s.baseline.median()
      const sigma = s.baseline.sigma()
      const threshold = Math.max(
        base * (stage === 'queue_wait' ? this.o.queueWaitRatio : this.o.ratio),
        base + this.o.sigmas * sigma,
        base + this.o.minIncreaseUs,
      )
      const regressed = s.baseline.ready && warm && observed > threshold
      const finding = (): Finding => ({
        severity: observed > base * 10 ? 'critical' : 'warning',
        fleet: m.fleet,
        instance,
        model,
        stage,
        statistic: `${stage}_us_p50`,
        observed,
        baseline: base,
        threshold,
        summary:
          `${instance}/${model}: ${stage} median ${ms(observed)} per request ` +
          `(baseline ${ms(base)}, ${(observed / Math.max(base, 1)).toFixed(1)}×) over ${spans.length} requests`,
        suspected_cause: CAUSES[stage],
        suggested_action: ACTIONS[stage],
        exemplar_request_ids: exemplarIds(spans, (x) => x[`${stage}_us`]),
      })
      const scope = `${m.fleet}/${instance}/${model}/${stage}`
      out.push(...this.judge(s.lifecycle, nowUs, regressed, scope, finding, () => s.baseline.push(observed)))
    }
    return out
  }

  /** the open interval is not persisted; it restarts with the next span */
  protected stateToJson(m: ModelState): Record<string, unknown> {
    const stages: Record<string, unknown> = {}
    for (const [stage, s] of m.stages) {
      stages[stage] = { baseline: s.baseline.toState(), lifecycle: s.lifecycle.toState() }
    }
    return {
      fleet: m.fleet,
      instance: m.instance,
      model: m.model,
      intervalStartUs: m.intervalStartUs,
      stages,
    }
  }

  protected stateFromJson(raw: Record<string, unknown>, key: string): ModelState | undefined {
    if (typeof raw.instance !== 'string' || typeof raw.model !== 'string') return undefined
    const m: ModelState = {
      fleet: typeof raw.fleet === 'string' ? raw.fleet : 'default',
      instance: raw.instance,
      model: raw.model,
      intervalStartUs: typeof raw.intervalStartUs === 'number' ? raw.intervalStartUs : 0,
      spans: intervalSpans(raw.model),
      stages: new Map(),
    }
    const stages = isRecord(raw.stages) ? raw.stages : {}
    for (const stage of STAGES) {
      const rs = stages[stage]
      if (!isRecord(rs)) continue
      m.stages.set(stage, {
        baseline: RollingBaseline.fromState(rs.baseline, this.o.baselineWindow, this.o.warmupSamples),
        lifecycle: this.restoreLifecycle(rs.lifecycle),
      })
    }
    return key === `${m.instance}/${m.model}` ? m : undefined
  }
}

const ms = (us: number) => `${(us / 1000).toFixed(1)} ms`
