/**
 * `batch_underutilized`: the executor runs batches far smaller than the load allows — requests queue
 * in front of it, yet it takes them a few at a time (a batcher misconfigured to max batch 1, a
 * timeout of 0, a lock that serialises dispatch). Each batch costs a fixed overhead, so small batches
 * waste the accelerator exactly when it is needed most.
 *
 * Evaluated per instance on each hardware sample (it needs the sample's arrivals and queue depth),
 * over the spans of that instance since the previous sample; each batch counts once (by batch_id).
 * Spans from other producers: a span without a batch id counts as a batch of its own, one with batch
 * size 0 (unknown, e.g. from Triton's traces) is left out, so such an instance is never judged.
 *
 * What the load allows: `achievable = min(cap, max(arrivals/s × median queue wait, queue_depth))` —
 * the requests that arrive while one waits, or those already waiting — where `cap` is the option
 * `maxBatchSize`, else the largest batch seen in the last `baselineWindow` (300) samples (unknown,
 * ∞, while that is 1: a batcher stuck at 1 since start is still a finding).
 *
 * Thresholds (defaults): underutilised when all hold —
 * - at least `minBatches` (3) batches in the interval and queue_depth ≥ `minQueueDepth` (1)
 * - achievable ≥ `minAchievableBatch` (4)                       the load would fill real batches
 * - median batch size ≤ achievable × `maxFillRatio` (0.7)        …but batches stay well below that
 *   (a saturated batcher runs full batches, ratio ≈ 1; a healthy one has no backlog to batch)
 * - held `pendingSamples` (2) samples; clear `resolveSamples` (3) to resolve
 * Severity: critical when the median batch is 1 while ≥ 4 could be batched.
 */
import type { Alert, HwSample, Span } from '../../contract/records.ts'
import { RollingBaseline } from '../baseline.ts'
import { OneAlertDetector, type OneAlertState, type OptionsOf, setting, detectorKind } from '../detector.ts'
import { exemplarIds, RecentSpans } from '../recent-spans.ts'
import { median } from '../stats.ts'

export const BATCHING = detectorKind(
  'batch_underutilized',
  {
    spans: ['instance', 'model', 'batch_id', 'batch_size', 'queue_wait_us', 'request_id'],
    hw: ['arrivals', 'queue_depth', 'interval_ms'],
  },
  {
    maxBatchSize: setting.number(
      0,
      "the batcher's configured max batch size when known; 0: learned from the largest batches seen",
    ),
    minBatches: setting.count(3, 'fewest batches in a sample interval to judge it'),
    minQueueDepth: setting.number(1, 'fewest rows waiting at the executor'),
    minAchievableBatch: setting.number(4, 'the load must allow batches of at least this'),
    maxFillRatio: setting.ratio(0.7, 'median batch at most achievable × this'),
    baselineWindow: setting.count(300, 'samples of largest/median batch remembered'),
  },
)
export type BatchUnderutilizedOptions = OptionsOf<typeof BATCHING.settings>

interface InstanceState extends OneAlertState {
  instance: string
  /** the spans since the previous sample */
  spans: RecentSpans
  /** per-sample largest batch (the learned cap) */
  maxBatch: RollingBaseline
  /** per-sample median batch (the evidence's baseline) */
  medianBatch: RollingBaseline
}

export class BatchUnderutilizedDetector extends OneAlertDetector<InstanceState, typeof BATCHING.settings> {
  constructor(opts: BatchUnderutilizedOptions = {}) {
    super(BATCHING, opts)
  }

  private instance(key: string, instance: string, nowUs: number): InstanceState {
    return this.state(key, nowUs, () => this.newState(key, { instance }))
  }

  onSpan(span: Span): Alert[] {
    const s = this.instance(`${span.fleet}/${span.instance}`, span.instance, span.timestamp_us)
    s.spans.add(span)
    return []
  }

  onHwSample(sample: HwSample): Alert[] {
    const key = `${sample.fleet}/${sample.instance}`
    const s = this.instance(key, sample.instance, sample.timestamp_us)
    const spans = s.spans.take()
    const batches = new Map<string, number>()
    for (const sp of spans) {
      // foreign spans: a batch size of 0 is unknown (Triton's traces carry none), and a span that
      // names no batch counts as its own (collapsing them into one '' batch would hide every batch)
      if (sp.batch_size <= 0) continue
      batches.set(sp.batch_id === '' ? `\u0000${sp.span_id}` : sp.batch_id, sp.batch_size)
    }
    const sizes = [...batches.values()]
    const medBatch = median(sizes)
    const learnedCap = s.maxBatch.count > 0 ? s.maxBatch.quantile(1) : 1
    const cap =
      this.o.maxBatchSize > 0 ? this.o.maxBatchSize : learnedCap > 1 ? learnedCap : Number.POSITIVE_INFINITY
    const arrivalsPerS = sample.arrivals / Math.max(sample.interval_ms / 1000, 1e-3)
    const queueWaitS = median(spans.map((sp) => sp.queue_wait_us)) / 1e6
    const fromArrivals = Number.isFinite(queueWaitS) ? arrivalsPerS * queueWaitS : 0
    const achievable = Math.min(cap, Math.max(fromArrivals, sample.queue_depth))
    const limit = achievable * this.o.maxFillRatio
    const under =
      this.warm(key, sample.timestamp_us) &&
      sizes.length >= this.o.minBatches &&
      sample.queue_depth >= this.o.minQueueDepth &&
      achievable >= this.o.minAchievableBatch &&
      medBatch <= limit
    const baseMedian = s.medianBatch.count > 0 ? s.medianBatch.median() : Number.NaN
    return this.judge(
      s.lifecycle,
      sample.timestamp_us,
      under,
      key,
      () => ({
        severity: medBatch <= 1 ? 'critical' : 'warning',
        fleet: sample.fleet,
        instance: sample.instance,
        model: dominantModel(spans),
        stage: 'queue_wait',
        statistic: 'median_batch_size',
        observed: medBatch,
        baseline: Number.isFinite(baseMedian) ? baseMedian : 0,
        threshold: limit,
        summary:
          `${sample.instance}: median batch ${medBatch} while the load allows ~${achievable.toFixed(0)} ` +
          `(${arrivalsPerS.toFixed(0)} req/s × ${(queueWaitS * 1000).toFixed(1)} ms queue wait; ` +
          `${sample.queue_depth} queued${Number.isFinite(cap) ? `; max batch ${cap}` : ''})` +
          (Number.isFinite(baseMedian) ? `; baseline median batch ${baseMedian}` : ''),
        suspected_cause:
          'the batcher dispatches before batches fill: max batch size or batching timeout too small, or dispatch serialised',
        suggested_action:
          'check the dynamic batcher settings (max batch size, max queue delay) of this model; raise them to what the load and latency budget allow',
        exemplar_request_ids: exemplarIds(spans, (sp) => sp.queue_wait_us),
      }),
      () => {
        if (sizes.length === 0) return
        s.maxBatch.push(Math.max(...sizes))
        s.medianBatch.push(medBatch)
      },
    )
  }

  protected fieldsToJson(s: InstanceState): Record<string, unknown> {
    return {
      instance: s.instance,
      maxBatch: s.maxBatch.toState(),
      medianBatch: s.medianBatch.toState(),
    }
  }

  protected fieldsFromJson(v: Record<string, unknown>, key: string) {
    return {
      // snapshots from before the kernel keyed `<fleet>/<instance>` without the instance itself
      instance: typeof v.instance === 'string' ? v.instance : key.slice(key.indexOf('/') + 1),
      // the newest spans between two samples: enough for the batch statistics of a busy instance
      spans: new RecentSpans('*', 2048),
      maxBatch: RollingBaseline.fromState(v.maxBatch, this.o.baselineWindow, 1),
      medianBatch: RollingBaseline.fromState(v.medianBatch, this.o.baselineWindow, 1),
    }
  }
}

function dominantModel(spans: readonly Span[]): string {
  const counts = new Map<string, number>()
  for (const s of spans) counts.set(s.model, (counts.get(s.model) ?? 0) + 1)
  let best = '*'
  let n = 0
  for (const [m, c] of counts) {
    if (c > n) {
      best = m
      n = c
    }
  }
  return best
}
