/**
 * `serialization_dominant`: decoding requests and encoding responses (deserialize_us + serialize_us)
 * take most of the request time, where they used to take little — a payload format change (JSON
 * tensors instead of binary), larger payloads, or a slow encoder.
 *
 * Evaluated per instance + model on event-time buckets of the span timestamps (`bucketMs`, 1 s): the
 * share of a bucket is Σ(deserialize_us + serialize_us) / Σ total_us over its spans (a ratio of sums,
 * so it weighs requests by their time). The baseline is the median share of the last
 * `baselineWindow` (60) buckets, frozen while an alert is pending or firing.
 *
 * Thresholds (defaults): dominant when all hold —
 * - at least `minSpans` (5) spans in the bucket and `warmupBuckets` (10) buckets of baseline
 * - share > `minShare` (0.25)                 a quarter of every request is spent on bytes, not inference
 * - share ≥ baseline × `minShareGrowth` (3)    …and it used to be a third of that or less
 * - held `pendingSamples` (2) buckets; clear `resolveSamples` (3) to resolve
 * Severity: critical when the share is ≥ 0.8.
 */
import type { Alert, Span } from '../../contract/records.ts'
import { RollingBaseline } from '../baseline.ts'
import { type Bucketed, BucketedModelDetector, type OptionsOf, setting, detectorKind } from '../detector.ts'
import { exemplarIds, RecentSpans } from '../recent-spans.ts'
import { fmtMs, fmtPct } from '../stats.ts'

export const SERIALIZATION = detectorKind(
  'serialization_dominant',
  {
    spans: ['instance', 'model', 'request_id', 'deserialize_us', 'serialize_us', 'total_us'],
    hw: [],
  },
  {
    bucketMs: setting.number(1000, 'event-time bucket between evaluations, ms', { min: 1 }),
    minSpans: setting.count(5, 'fewest spans in a bucket to judge it'),
    minShare: setting.ratio(0.25, '(de)serialization share of request time above this'),
    minShareGrowth: setting.number(3, '…and at least baseline share × this'),
    baselineWindow: setting.count(60, 'buckets in the share baseline'),
    warmupBuckets: setting.count(10, 'buckets before the baseline is used'),
  },
)
export type SerializationOptions = OptionsOf<typeof SERIALIZATION.settings>

/** a key's own fields (the kernel keeps its instance, model and open bucket) */
interface KeyState {
  /** the bucket's spans, for exemplars */
  spans: RecentSpans
  count: number
  deserUs: number
  serUs: number
  totalUs: number
  share: RollingBaseline
}

export class SerializationDominantDetector extends BucketedModelDetector<
  KeyState,
  typeof SERIALIZATION.settings
> {
  constructor(opts: SerializationOptions = {}) {
    super(SERIALIZATION, opts)
  }

  protected count(k: Bucketed<KeyState>, span: Span): void {
    k.spans.add(span)
    k.count++
    k.deserUs += span.deserialize_us
    k.serUs += span.serialize_us
    k.totalUs += span.total_us
  }

  protected judgeBucket(key: string, k: Bucketed<KeyState>, nowUs: number): Alert[] {
    const { count, deserUs, serUs, totalUs } = k
    const spans = k.spans.take()
    k.count = 0
    k.deserUs = 0
    k.serUs = 0
    k.totalUs = 0
    if (count < this.o.minSpans || totalUs <= 0) return []
    const share = (deserUs + serUs) / totalUs
    const base = k.share.median()
    const dominant =
      k.share.ready &&
      this.warm(key, nowUs) &&
      share > this.o.minShare &&
      share >= base * this.o.minShareGrowth
    const stage = deserUs >= serUs ? 'deserialize' : 'serialize'
    return this.judge(
      k.lifecycle,
      nowUs,
      dominant,
      key,
      () => ({
        severity: share >= 0.8 ? 'critical' : 'warning',
        fleet: k.fleet,
        instance: k.instance,
        model: k.model,
        stage,
        statistic: 'serialization_share',
        observed: share,
        baseline: base,
        threshold: Math.max(this.o.minShare, base * this.o.minShareGrowth),
        summary:
          `${k.instance}/${k.model}: (de)serialization takes ${fmtPct(share)} of request time ` +
          `(baseline ${fmtPct(base)}) — deserialize ${fmtMs(deserUs / count)}, serialize ` +
          `${fmtMs(serUs / count)} of ${fmtMs(totalUs / count)} per request over ${count} requests`,
        suspected_cause:
          stage === 'deserialize'
            ? 'decoding requests dominates: larger payloads or a slower format (e.g. JSON tensors instead of binary)'
            : 'encoding responses dominates: larger outputs or a slower format',
        suggested_action:
          'use the binary tensor extension of the inference protocol, trim payloads (fewer outputs, lower precision), or check for a client change',
        exemplar_request_ids: exemplarIds(spans, (s) => s.deserialize_us + s.serialize_us),
      }),
      () => k.share.push(share),
    )
  }

  protected ownFieldsToJson(k: KeyState): Record<string, unknown> {
    return { share: k.share.toState() }
  }

  protected ownFieldsFromJson(v: Record<string, unknown>): KeyState {
    return {
      spans: new RecentSpans('*', 256),
      count: 0,
      deserUs: 0,
      serUs: 0,
      totalUs: 0,
      share: RollingBaseline.fromState(v.share, this.o.baselineWindow, this.o.warmupBuckets),
    }
  }
}
