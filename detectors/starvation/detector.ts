/**
 * Accelerator starved: the executor sits idle while requests are pending. Requests in flight pile up
 * far above their baseline, yet almost none of them wait at the executor (its queue is near empty)
 * and the executor has idle time it did not have before — the work exists but does not reach the
 * accelerator (data or preprocessing starvation). Idle with no pending work is a different break
 * (over-provisioned), and a backlog *at* the executor is overload, not starvation.
 *
 * Why not "busy fell below half its baseline": with dynamic batching, a starved executor runs
 * smaller batches that cost more per row, so its busy fraction falls less than its throughput
 * (measured: 0.47 → 0.25 while completions halved). Idle capacity next to a backlog is the signal.
 *
 * Thresholds (defaults):
 * - in_flight > max(baseline × `inFlightGrowth` (2), baseline + `minPending` (4))   work is waiting
 * - queue_depth ≤ in_flight × `maxQueuedShare` (0.1)               …but not at the executor
 * - busy < min(`busyCeiling` (0.75), baseline × `busyDropRatio` (0.9))  …which has idle time
 * - held for `pendingSamples` (2) samples before firing; clear for `resolveSamples` (3) to resolve
 *
 * State (exportState/importState): per instance, the busy and in-flight baselines, the per-stage
 * span baselines and the alert lifecycle (an alert firing at a checkpoint resolves after a restart
 * instead of firing again), as `{ keys: { <instance>: … } }` — one row per instance in the store.
 */
import type { Alert, HwSample } from '../../contract/records.ts'
import { STAGES, type Stage } from '../../contract/vocabulary.ts'
import { type Baselines, baselinesFromJson, baselinesToJson } from '../baseline.ts'
import { InstanceSampleDetector, type OptionsOf, setting, detectorKind } from '../detector.ts'
import type { AlertLifecycle } from '../lifecycle.ts'
import { InstanceSpanWindow } from '../instance-window.ts'

export const STARVATION = detectorKind(
  'accelerator_starved',
  {
    spans: [
      'instance',
      'model',
      'request_id',
      'preprocess_us',
      'deserialize_us',
      'queue_wait_us',
      'postprocess_us',
      'serialize_us',
    ],
    hw: ['executor_busy', 'in_flight', 'queue_depth'],
  },
  {
    busyDropRatio: setting.ratio(0.9, 'busy below this share of its baseline counts as idle capacity'),
    busyCeiling: setting.ratio(0.75, 'busy above this is never idle capacity'),
    maxQueuedShare: setting.ratio(0.1, 'at most this share of in-flight requests waits at the executor'),
    inFlightGrowth: setting.number(2, 'in-flight above baseline × this counts as a backlog'),
    minPending: setting.number(4, '…and above baseline + this many requests'),
    baselineWindow: setting.count(60, 'samples in the busy and in-flight baselines'),
    warmupSamples: setting.count(10, 'samples before the baselines are used'),
  },
)
export type StarvationOptions = OptionsOf<typeof STARVATION.settings>

const BASELINES = ['busy', 'inFlight'] as const

interface InstanceState extends Baselines<typeof BASELINES> {
  lifecycle: AlertLifecycle
  spans: InstanceSpanWindow
}

export class StarvationDetector extends InstanceSampleDetector<InstanceState, typeof STARVATION.settings> {
  constructor(opts: StarvationOptions = {}) {
    super(STARVATION, opts)
  }

  protected fieldsToJson(s: InstanceState): Record<string, unknown> {
    return {
      ...baselinesToJson(s, BASELINES),
      spans: s.spans.toState(),
    }
  }

  protected fieldsFromJson(raw: Record<string, unknown>) {
    return {
      ...baselinesFromJson(raw, BASELINES, this.o.baselineWindow, this.o.warmupSamples),
      spans: InstanceSpanWindow.fromState(raw.spans),
    }
  }

  onHwSample(sample: HwSample): Alert[] {
    const s = this.state(sample.instance, sample.timestamp_us)
    s.spans.roll(s.lifecycle.active)
    const busyBase = s.busy.median()
    const inFlightBase = s.inFlight.median()
    const threshold = Math.min(this.o.busyCeiling, busyBase * this.o.busyDropRatio)
    const pendingLimit = Math.max(inFlightBase * this.o.inFlightGrowth, inFlightBase + this.o.minPending)
    const idleWithWorkPending =
      s.busy.ready &&
      this.warm(sample.instance, sample.timestamp_us) &&
      sample.in_flight > pendingLimit &&
      sample.queue_depth <= sample.in_flight * this.o.maxQueuedShare &&
      sample.executor_busy < threshold
    const suspect = idleWithWorkPending ? s.spans.suspectStage() : undefined
    // requests piled up *after* the executor (a postprocess stall) do not starve it: that is the
    // stage's regression, and live it paged as starvation on a busy host
    const starved = idleWithWorkPending && !(suspect && isAfterExecutor(suspect.stage) && grew(suspect))
    const stage = suspect?.stage ?? null
    return this.judge(
      s.lifecycle,
      sample.timestamp_us,
      starved,
      `${sample.fleet}/${sample.instance}`,
      () => ({
        severity: sample.executor_busy < busyBase * 0.5 ? 'critical' : 'warning',
        fleet: sample.fleet,
        instance: sample.instance,
        model: s.spans.dominantModel(),
        stage,
        statistic: 'executor_busy',
        observed: sample.executor_busy,
        baseline: busyBase,
        threshold,
        summary:
          `${sample.instance}: executor busy ${pct(sample.executor_busy)} (baseline ${pct(busyBase)}) ` +
          `while ${sample.in_flight} requests are in flight (baseline ${inFlightBase.toFixed(0)}) ` +
          `and only ${sample.queue_depth} wait at the executor`,
        suspected_cause: suspect
          ? `requests wait before the executor: ${suspect.stage} takes ${ms(suspect.observedUs)} ` +
            `(baseline ${ms(suspect.baselineUs)}) — data/preprocessing starvation`
          : 'requests wait before the executor — data/preprocessing starvation',
        suggested_action:
          stage === 'preprocess'
            ? 'add preprocessing workers, move preprocessing off the request path, or check the data source it reads'
            : `look at the ${stage ?? 'pre-executor'} stage of this instance; the accelerator is waiting for it`,
        exemplar_request_ids: stage ? s.spans.exemplars(stage) : [],
      }),
      () => {
        s.busy.push(sample.executor_busy)
        s.inFlight.push(sample.in_flight)
      },
    )
  }
}

const pct = (x: number) => `${(x * 100).toFixed(0)}%`
const ms = (us: number) => `${(us / 1000).toFixed(1)} ms`

/**
 * A stage clearly slower than its baseline: the most-grown stage of a starved instance is only a
 * suspect, and noise on a fast stage must not veto a real starvation.
 */
function grew(s: { observedUs: number; baselineUs: number }): boolean {
  return (
    s.observedUs >= AFTER_EXECUTOR_GROWTH * Math.max(s.baselineUs, 1) &&
    s.observedUs - s.baselineUs >= AFTER_EXECUTOR_MIN_US
  )
}

/** how much slower than its baseline a stage after the executor must be to explain the pile-up… */
const AFTER_EXECUTOR_GROWTH = 3
/** …and by at least this much, µs (a 20 → 100 µs postprocess is noise, not a stall) */
const AFTER_EXECUTOR_MIN_US = 1000

/** stages a request passes after the executor has run it */
function isAfterExecutor(stage: Stage): boolean {
  return STAGES.indexOf(stage) > STAGES.indexOf('compute')
}
