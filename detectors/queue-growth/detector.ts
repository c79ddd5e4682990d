/**
 * Queue growth while throughput falls (pipeline stall): the executor queue keeps growing while
 * completions drop — requests arrive but the pipeline behind the queue no longer drains them.
 * A growing queue with steady completions is a load increase (the starvation and latency detectors
 * see its consequences); falling completions with an empty queue is a load drop.
 *
 * Thresholds (defaults):
 * - onset: queue_depth non-decreasing over the last `risingSamples` (5) samples, grown by at least
 *   `minGrowth` (5) over them, and above its baseline + `minGrowth`
 * - and completions < `throughputDropRatio` (0.7) × their baseline
 * - while firing, the condition holds as long as the queue stays above baseline + `minGrowth` and
 *   completions stay below the ratio (a queue that stopped growing at a high level is still stalled)
 * - held for `pendingSamples` (2) samples; clear for `resolveSamples` (3) to resolve
 * - baselines of queue depth and completions: `baselineWindow` (60) samples, ready after
 *   `warmupSamples` (10), frozen while pending or firing
 * - severity critical when completions fall below 30 % of baseline, else warning
 */
import type { Alert, HwSample } from '../../contract/records.ts'
import { type Baselines, baselinesFromJson, baselinesToJson } from '../baseline.ts'
import { InstanceSampleDetector, type OptionsOf, setting, detectorKind } from '../detector.ts'
import type { AlertLifecycle } from '../lifecycle.ts'
import { RecentSpans } from '../recent-spans.ts'

export const QUEUE_GROWTH = detectorKind(
  'queue_growth',
  {
    spans: ['instance', 'model', 'request_id', 'queue_wait_us'],
    hw: ['queue_depth', 'completions'],
  },
  {
    risingSamples: setting.count(5, 'samples over which the queue must not shrink', 2),
    minGrowth: setting.number(5, 'rows the queue must grow by over them, and stand above its baseline by'),
    throughputDropRatio: setting.ratio(0.7, 'completions below this share of their baseline'),
    baselineWindow: setting.count(60, 'samples in the queue and completions baselines'),
    warmupSamples: setting.count(10, 'samples before the baselines are used'),
  },
)
export type QueueGrowthOptions = OptionsOf<typeof QUEUE_GROWTH.settings>

const BASELINES = ['queue', 'completions'] as const

interface InstanceState extends Baselines<typeof BASELINES> {
  lifecycle: AlertLifecycle
  recentQueue: number[]
  /** the newest spans of the instance (bounded), for the model and exemplars */
  spans: RecentSpans
}

export class QueueGrowthDetector extends InstanceSampleDetector<InstanceState, typeof QUEUE_GROWTH.settings> {
  constructor(opts: QueueGrowthOptions = {}) {
    super(QUEUE_GROWTH, opts)
  }

  protected fieldsToJson(s: InstanceState): Record<string, unknown> {
    return {
      ...baselinesToJson(s, BASELINES),
      recentQueue: s.recentQueue,
      model: s.spans.model,
    }
  }

  protected fieldsFromJson(raw: Record<string, unknown>) {
    return {
      ...baselinesFromJson(raw, BASELINES, this.o.baselineWindow, this.o.warmupSamples),
      recentQueue: Array.isArray(raw.recentQueue)
        ? raw.recentQueue.filter((x): x is number => typeof x === 'number').slice(-this.o.risingSamples)
        : [],
      spans: new RecentSpans(typeof raw.model === 'string' ? raw.model : '*'),
    }
  }

  onHwSample(sample: HwSample): Alert[] {
    const s = this.state(sample.instance, sample.timestamp_us)
    s.recentQueue.push(sample.queue_depth)
    if (s.recentQueue.length > this.o.risingSamples) s.recentQueue.shift()
    const queueBase = s.queue.median()
    const doneBase = s.completions.median()
    const threshold = doneBase * this.o.throughputDropRatio
    const ready = s.queue.ready && s.completions.ready && this.warm(sample.instance, sample.timestamp_us)
    const elevated = sample.queue_depth > queueBase + this.o.minGrowth
    const draining = sample.completions < threshold
    const rq = s.recentQueue
    const rising =
      rq.length === this.o.risingSamples &&
      rq.every((q, i) => i === 0 || q >= rq[i - 1]!) &&
      rq[rq.length - 1]! - rq[0]! >= this.o.minGrowth
    const stalled = ready && elevated && draining && (rising || s.lifecycle.state === 'firing')
    return this.judge(
      s.lifecycle,
      sample.timestamp_us,
      stalled,
      `${sample.fleet}/${sample.instance}`,
      () => ({
        severity: sample.completions < doneBase * 0.3 ? 'critical' : 'warning',
        fleet: sample.fleet,
        instance: sample.instance,
        model: s.spans.model,
        stage: 'queue_wait',
        statistic: 'completions',
        observed: sample.completions,
        baseline: doneBase,
        threshold,
        summary:
          `${sample.instance}: queue grew ${rq[0]} → ${sample.queue_depth} (baseline ${queueBase.toFixed(0)}) ` +
          `while completions fell to ${sample.completions} per interval (baseline ${doneBase.toFixed(0)})`,
        suspected_cause:
          'the executor stopped draining its queue: a hung or much slower model execution, ' +
          'a stuck batch, or a device error',
        suggested_action:
          'check the executor of this instance (device health, errors, stuck batches) and shed or ' +
          'reroute load until it drains; restart the instance if execution is hung',
        exemplar_request_ids: s.spans.exemplars((x) => x.queue_wait_us),
      }),
      () => {
        s.queue.push(sample.queue_depth)
        s.completions.push(sample.completions)
      },
    )
  }
}
