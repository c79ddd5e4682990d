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
import { type Detector, keyedState } from '../detector.ts'
import { AlertLifecycle, type LifecycleOptions } from '../lifecycle.ts'
import { EventTimeBuckets, entriesOf, fmtMs, fmtPct, num } from '../stats.ts'

export interface SerializationOptions extends LifecycleOptions {
  bucketMs?: number
  minSpans?: number
  minShare?: number
  minShareGrowth?: number
  baselineWindow?: number
  warmupBuckets?: number
}

/** spans kept per bucket for exemplars (the newest) */
const EXEMPLAR_POOL = 256

interface KeyState {
  fleet: string
  instance: string
  model: string
  buckets: EventTimeBuckets
  spans: Span[]
  count: number
  deserUs: number
  serUs: number
  totalUs: number
  share: RollingBaseline
  lifecycle: AlertLifecycle
}

export class SerializationDominantDetector implements Detector {
  readonly type = 'serialization_dominant'
  private readonly o: Required<SerializationOptions>
  private readonly keys = new Map<string, KeyState>()

  constructor(opts: SerializationOptions = {}) {
    this.o = {
      bucketMs: 1000,
      minSpans: 5,
      minShare: 0.25,
      minShareGrowth: 3,
      baselineWindow: 60,
      warmupBuckets: 10,
      pendingSamples: 2,
      resolveSamples: 3,
      ...opts,
    }
  }

  private state(key: string, span: { fleet: string; instance: string; model: string }): KeyState {
    let k = this.keys.get(key)
    if (!k) {
      k = {
        fleet: span.fleet,
        instance: span.instance,
        model: span.model,
        buckets: new EventTimeBuckets(this.o.bucketMs * 1000),
        spans: [],
        count: 0,
        deserUs: 0,
        serUs: 0,
        totalUs: 0,
        share: new RollingBaseline(this.o.baselineWindow, this.o.warmupBuckets),
        lifecycle: new AlertLifecycle(this.o),
      }
      this.keys.set(key, k)
    }
    return k
  }

  onSpan(span: Span): Alert[] {
    const key = `${span.fleet}/${span.instance}/${span.model}`
    const k = this.state(key, span)
    const closedAtUs = k.buckets.place(span.timestamp_us)
    const out: Alert[] = []
    if (closedAtUs !== undefined) {
      const a = this.evaluate(key, k, closedAtUs)
      if (a) out.push(a)
    }
    if (k.spans.length >= EXEMPLAR_POOL) k.spans.shift()
    k.spans.push(span)
    k.count++
    k.deserUs += span.deserialize_us
    k.serUs += span.serialize_us
    k.totalUs += span.total_us
    return out
  }

  private evaluate(key: string, k: KeyState, nowUs: number): Alert | undefined {
    const { count, deserUs, serUs, totalUs, spans } = k
    k.spans = []
    k.count = 0
    k.deserUs = 0
    k.serUs = 0
    k.totalUs = 0
    if (count < this.o.minSpans || totalUs <= 0) return undefined
    const share = (deserUs + serUs) / totalUs
    const base = k.share.median()
    const dominant = k.share.ready && share > this.o.minShare && share >= base * this.o.minShareGrowth
    const stage = deserUs >= serUs ? 'deserialize' : 'serialize'
    const alert = k.lifecycle.observe(
      nowUs,
      dominant,
      dominant
        ? {
            type: this.type,
            severity: share >= 0.8 ? 'critical' : 'warning',
            dedup_key: `${this.type}/${key}`,
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
            exemplar_request_ids: [...spans]
              .sort((a, b) => b.deserialize_us + b.serialize_us - (a.deserialize_us + a.serialize_us))
              .slice(0, 3)
              .map((s) => s.request_id),
          }
        : undefined,
    )
    if (!k.lifecycle.active) k.share.push(share)
    return alert
  }

  exportState(): Record<string, unknown> {
    const keys = keyedState(this.keys, (k) => ({
      fleet: k.fleet,
      instance: k.instance,
      model: k.model,
      openBucket: Number.isFinite(k.buckets.open) ? k.buckets.open : null,
      share: k.share.toState(),
      lifecycle: k.lifecycle.toState(),
    }))
    return { version: 1, keys }
  }

  importState(state: Record<string, unknown>): void {
    for (const [key, v] of entriesOf(state.keys)) {
      const k = this.state(key, {
        fleet: String(v.fleet ?? ''),
        instance: String(v.instance ?? ''),
        model: String(v.model ?? ''),
      })
      k.buckets.open = num(v.openBucket, Number.NEGATIVE_INFINITY)
      k.share = RollingBaseline.fromState(v.share, this.o.baselineWindow, this.o.warmupBuckets)
      k.lifecycle = AlertLifecycle.fromState(v.lifecycle, this.o)
    }
  }
}
