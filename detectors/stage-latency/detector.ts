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
import type { Detector } from '../detector.ts'
import { AlertLifecycle, type LifecycleOptions } from '../lifecycle.ts'

export interface StageLatencyOptions extends LifecycleOptions {
  intervalMs?: number
  minSpans?: number
  ratio?: number
  queueWaitRatio?: number
  sigmas?: number
  minIncreaseUs?: number
  baselineWindow?: number
  warmupSamples?: number
}

/** spans kept per open interval (the newest; enough for a median and exemplars) */
const MAX_INTERVAL_SPANS = 512

interface StageState {
  baseline: RollingBaseline
  lifecycle: AlertLifecycle
}

interface ModelState {
  fleet: string
  intervalStartUs: number
  spans: Span[]
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

export class StageLatencyDetector implements Detector {
  readonly type = 'stage_latency_regression'
  /** instance → model → state */
  private readonly instances = new Map<string, Map<string, ModelState>>()
  private readonly o: Required<StageLatencyOptions>

  constructor(opts: StageLatencyOptions = {}) {
    this.o = {
      intervalMs: 1000,
      minSpans: 5,
      ratio: 1.5,
      queueWaitRatio: 3,
      sigmas: 6,
      minIncreaseUs: 1000,
      baselineWindow: 60,
      warmupSamples: 10,
      pendingSamples: 2,
      resolveSamples: 3,
      ...opts,
    }
  }

  private model(instance: string, model: string, fleet: string, startUs: number): ModelState {
    let models = this.instances.get(instance)
    if (!models) {
      models = new Map()
      this.instances.set(instance, models)
    }
    let m = models.get(model)
    if (!m) {
      m = { fleet, intervalStartUs: startUs, spans: [], stages: new Map() }
      models.set(model, m)
    }
    return m
  }

  private stage(m: ModelState, stage: Stage): StageState {
    let s = m.stages.get(stage)
    if (!s) {
      s = {
        baseline: new RollingBaseline(this.o.baselineWindow, this.o.warmupSamples),
        lifecycle: new AlertLifecycle(this.o),
      }
      m.stages.set(stage, s)
    }
    return s
  }

  onSpan(span: Span): Alert[] {
    const intervalUs = this.o.intervalMs * 1000
    const start = Math.floor(span.timestamp_us / intervalUs) * intervalUs
    const m = this.model(span.instance, span.model, span.fleet, start)
    let out: Alert[] = []
    if (start > m.intervalStartUs) {
      out = this.close(span.instance, span.model, m)
      m.intervalStartUs = start
      m.spans = []
    }
    // a failed request skips the stages after the failure (they read 0): it says nothing about them
    if (span.status !== 'ok') return out
    if (m.spans.length >= MAX_INTERVAL_SPANS) m.spans.shift()
    m.spans.push(span)
    return out
  }

  private close(instance: string, model: string, m: ModelState): Alert[] {
    if (m.spans.length < this.o.minSpans) return []
    const nowUs = m.intervalStartUs + this.o.intervalMs * 1000
    const out: Alert[] = []
    for (const stage of STAGES) {
      const s = this.stage(m, stage)
      const values = m.spans.map((x) => x[`${stage}_us`]).sort((a, b) => a - b)
      const observed = values[Math.floor(values.length / 2)]!
      const base = s.baseline.median()
      const sigma = s.baseline.sigma()
      const threshold = Math.max(
        base * (stage === 'queue_wait' ? this.o.queueWaitRatio : this.o.ratio),
        base + this.o.sigmas * sigma,
        base + this.o.minIncreaseUs,
      )
      const regressed = s.baseline.ready && observed > threshold
      const alert = s.lifecycle.observe(
        nowUs,
        regressed,
        regressed
          ? {
              type: this.type,
              severity: observed > base * 10 ? 'critical' : 'warning',
              dedup_key: `${this.type}/${m.fleet}/${instance}/${model}/${stage}`,
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
                `(baseline ${ms(base)}, ${(observed / Math.max(base, 1)).toFixed(1)}×) over ${m.spans.length} requests`,
              suspected_cause: CAUSES[stage],
              suggested_action: ACTIONS[stage],
              exemplar_request_ids: [...m.spans]
                .sort((a, b) => b[`${stage}_us`] - a[`${stage}_us`])
                .slice(0, 3)
                .map((x) => x.request_id),
            }
          : undefined,
      )
      if (alert) out.push(alert)
      if (!s.lifecycle.active) s.baseline.push(observed)
    }
    return out
  }

  exportState(): Record<string, unknown> {
    const keys: Record<string, unknown> = {}
    for (const [instance, models] of this.instances) {
      const entry: Record<string, unknown> = {}
      for (const [model, m] of models) {
        const stages: Record<string, unknown> = {}
        for (const [stage, s] of m.stages) {
          stages[stage] = { baseline: s.baseline.toState(), lifecycle: s.lifecycle.toState() }
        }
        entry[model] = { fleet: m.fleet, intervalStartUs: m.intervalStartUs, stages }
      }
      keys[instance] = { models: entry }
    }
    return { keys }
  }

  importState(state: Record<string, unknown>): void {
    if (!isRecord(state.keys)) return
    for (const [instance, raw] of Object.entries(state.keys)) {
      if (!isRecord(raw) || !isRecord(raw.models)) continue
      const models = new Map<string, ModelState>()
      for (const [model, rm] of Object.entries(raw.models)) {
        if (!isRecord(rm)) continue
        const m: ModelState = {
          fleet: typeof rm.fleet === 'string' ? rm.fleet : 'default',
          intervalStartUs: typeof rm.intervalStartUs === 'number' ? rm.intervalStartUs : 0,
          spans: [], // the open interval is not persisted; it restarts with the next span
          stages: new Map(),
        }
        const stages = isRecord(rm.stages) ? rm.stages : {}
        for (const stage of STAGES) {
          const rs = stages[stage]
          if (!isRecord(rs)) continue
          m.stages.set(stage, {
            baseline: RollingBaseline.fromState(rs.baseline, this.o.baselineWindow, this.o.warmupSamples),
            lifecycle: AlertLifecycle.fromState(rs.lifecycle, this.o),
          })
        }
        models.set(model, m)
      }
      this.instances.set(instance, models)
    }
  }
}

const ms = (us: number) => `${(us / 1000).toFixed(1)} ms`
