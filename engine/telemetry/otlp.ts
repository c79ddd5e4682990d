/**
 * Exports requests as OTLP traces over HTTP (`@opentelemetry/exporter-trace-otlp-http`, OTLP/JSON to
 * `<endpoint>/v1/traces`). Each kept request becomes a SERVER span — trace id and span id are the
 * breakid span's own, so a client that sent a W3C `traceparent` finds the request in its trace and the
 * `traceparent` response header names this very span — with one INTERNAL child per pipeline stage
 * (deserialize, preprocess, queue_wait, compute, postprocess, serialize). Child times are
 * reconstructed from the arrival (`timestamp_us`) and the stage durations laid end to end in pipeline
 * order; time no stage accounts for (handoffs between stages) shows up as the gap after the last child.
 *
 * Sampling (decided on the request path, so it must be cheap):
 *   1. errors (status ≠ ok) are always kept;
 *   2. slow requests are always kept: `total_us` above the rolling p99 of the last `slowWindow` (1000)
 *      requests of the same model. The threshold is recomputed every `slowRecomputeEvery` (256) spans
 *      by sorting a ring of recent totals (~1 µs per span amortized; ~3 µs at every 64), and is not
 *      applied before `slowMinSamples` (100) have been seen;
 *   3. the rest with probability `sampleRatio` (default 0.1), decided by the trace id (its last 8 hex
 *      digits as a fraction of 2^32), so every service sampling by trace id keeps the same traces.
 *
 * Export is off the request path: `observe` only pushes the span onto a bounded queue (`maxQueueSize`,
 * default 2048). When it is full the OLDEST span is dropped and counted (`dropped`) — tracing must never
 * hold up inference. A timer (every `scheduledDelayMs`, default 1000) or a full batch
 * (`maxExportBatchSize`, default 512) starts an export; one export runs at a time, OTLP objects are
 * built only then. `forceFlush()` exports everything queued; `shutdown()` flushes and closes the
 * exporter; both are safe to call twice.
 */
import { type Attributes, type HrTime, SpanKind, SpanStatusCode } from '@opentelemetry/api'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { type Resource, resourceFromAttributes } from '@opentelemetry/resources'
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base'
import type { Span } from '../../contract/records.ts'
import type { SpanProcessor, SpanTraceContext } from '../span-processor.ts'
import { STAGES } from '../../contract/vocabulary.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { randomIds } from './ids.ts'

export interface OtlpExportOptions {
  /**
   * Collector base URL (as OTEL_EXPORTER_OTLP_ENDPOINT: `/v1/traces` is appended) or the full traces
   * URL when it already ends in `/v1/traces`.
   */
  endpoint?: string
  /** share of ordinary requests kept, 0..1. Default 0.1. Errors and slow requests are always kept. */
  sampleRatio?: number
  /** most spans waiting for export; beyond it the oldest is dropped. Default 2048. */
  maxQueueSize?: number
  /** most requests per OTLP request. Default 512. */
  maxExportBatchSize?: number
  /** export period, ms. Default 1000. */
  scheduledDelayMs?: number
  /** per-export timeout, ms. Default 10000. */
  exportTimeoutMs?: number
  /** requests per model in the rolling window behind the slow threshold. Default 1000. */
  slowWindow?: number
  /** the slow threshold is this quantile of the window. Default 0.99. */
  slowQuantile?: number
  /** no slow-keeping before this many requests of a model were seen. Default 100. */
  slowMinSamples?: number
  /** recompute the threshold every this many requests. Default 256. */
  slowRecomputeEvery?: number
  /** the exporter to use instead of OTLP/HTTP (tests, other protocols) */
  exporter?: SpanExporter
  /** `service.name` on the resource. Default breakid-engine. */
  serviceName?: string
}

export type SampleReason = 'error' | 'slow' | 'ratio'

interface Queued {
  span: Span
  reason: SampleReason
  /** the caller's span (traceparent), the server span's parent */
  parentSpanId?: string
}

/** Rolling high quantile of one model's `total_us`. */
class SlowThreshold {
  private readonly ring: Float64Array
  private n = 0
  private next = 0
  private sinceRecompute = 0
  threshold = Number.POSITIVE_INFINITY

  constructor(
    size: number,
    private readonly quantile: number,
    private readonly minSamples: number,
    private readonly recomputeEvery: number,
  ) {
    this.ring = new Float64Array(size)
  }

  /** Is `totalUs` above the threshold of the requests before it? Then records it. */
  observe(totalUs: number): boolean {
    const slow = totalUs > this.threshold
    this.ring[this.next] = totalUs
    this.next = (this.next + 1) % this.ring.length
    if (this.n < this.ring.length) this.n++
    if (++this.sinceRecompute >= this.recomputeEvery && this.n >= this.minSamples) {
      this.sinceRecompute = 0
      const sorted = this.ring.slice(0, this.n).sort()
      this.threshold = sorted[Math.min(this.n - 1, Math.floor(this.quantile * this.n))]!
    }
    return slow
  }
}

/** [seconds, nanoseconds] of an epoch time in µs */
function hrTime(epochUs: number): HrTime {
  const s = Math.floor(epochUs / 1e6)
  return [s, Math.round((epochUs - s * 1e6) * 1000)]
}

/** `<endpoint>/v1/traces`, unless the endpoint already names the traces path */
export function tracesUrl(endpoint: string): string {
  const trimmed = endpoint.replace(/\/+$/, '')
  return trimmed.endsWith('/v1/traces') ? trimmed : `${trimmed}/v1/traces`
}

export class OtlpSpanExporter implements SpanProcessor {
  readonly processorName = 'otlp'
  /** spans handed to the exporter and acknowledged */
  exported = 0
  /** spans lost: dropped from the full queue (oldest first) */
  dropped = 0
  /** spans whose export failed after the exporter's own retries */
  failed = 0
  /** requests seen / kept, by reason */
  seen = 0
  readonly kept: Record<SampleReason, number> = { error: 0, slow: 0, ratio: 0 }

  private readonly exporter: SpanExporter
  private readonly ratioCutoff: number
  private readonly maxQueueSize: number
  private readonly maxExportBatchSize: number
  private readonly thresholds = new Map<string, SlowThreshold>()
  private queue: Queued[] = []
  private exporting: Promise<void> | undefined
  private exportScheduled = false
  private readonly timer: NodeJS.Timeout
  private shutdownPromise: Promise<void> | undefined
  private readonly resources = new Map<string, Resource>()
  private readonly scope = { name: 'breakid.engine', version: '0.1.0' }

  constructor(private readonly opts: OtlpExportOptions) {
    const ratio = opts.sampleRatio ?? 0.1
    if (!(ratio >= 0 && ratio <= 1)) throw new RangeError(`OTLP sample ratio ${ratio} is not in 0..1`)
    this.ratioCutoff = Math.floor(ratio * 2 ** 32)
    this.maxQueueSize = opts.maxQueueSize ?? 2048
    this.maxExportBatchSize = Math.min(opts.maxExportBatchSize ?? 512, this.maxQueueSize)
    if (opts.exporter) this.exporter = opts.exporter
    else {
      if (!opts.endpoint) throw new RangeError('OTLP export needs an endpoint')
      this.exporter = new OTLPTraceExporter({
        url: tracesUrl(opts.endpoint),
        timeoutMillis: opts.exportTimeoutMs ?? 10_000,
      })
    }
    this.timer = setInterval(() => this.scheduleExport(), opts.scheduledDelayMs ?? 1_000)
    this.timer.unref()
  }

  /** The span processor's call: sampling decision and an enqueue, nothing more. */
  onEnd(span: Span, trace?: SpanTraceContext): void {
    this.observe(span, trace)
  }

  /** `onEnd` as a function (EngineOptions.spanObservers) */
  readonly observe = (span: Span, trace?: SpanTraceContext): void => {
    if (this.shutdownPromise) return
    this.seen++
    const reason = this.sample(span)
    if (!reason) return
    this.kept[reason]++
    this.queue.push({ span, reason, parentSpanId: trace?.parentSpanId })
    if (this.queue.length > this.maxQueueSize) {
      this.queue.shift()
      this.dropped++
    }
    if (this.queue.length >= this.maxExportBatchSize) this.scheduleExport()
  }

  /** Why this span is kept, or undefined when it is not. */
  sample(span: Span): SampleReason | undefined {
    let window = this.thresholds.get(span.model)
    if (!window) {
      window = new SlowThreshold(
        this.opts.slowWindow ?? 1_000,
        this.opts.slowQuantile ?? 0.99,
        this.opts.slowMinSamples ?? 100,
        this.opts.slowRecomputeEvery ?? 256,
      )
      this.thresholds.set(span.model, window)
    }
    const slow = window.observe(span.total_us)
    if (span.status !== 'ok') return 'error'
    if (slow) return 'slow'
    return traceIdFraction(span.trace_id) < this.ratioCutoff ? 'ratio' : undefined
  }

  /** current slow threshold of a model, µs (Infinity until enough requests were seen) */
  slowThresholdUs(model: string): number {
    return this.thresholds.get(model)?.threshold ?? Number.POSITIVE_INFINITY
  }

  get queued(): number {
    return this.queue.length
  }

  /** Exports everything queued now (waits for an export already running). */
  async forceFlush(): Promise<void> {
    while (this.exporting || this.queue.length > 0) {
      await (this.exporting ?? this.exportBatch())
    }
    await this.exporter.forceFlush?.()
  }

  /** Stops taking spans, exports what is queued, closes the exporter. Safe to call twice. */
  shutdown(): Promise<void> {
    this.shutdownPromise ??= (async () => {
      clearInterval(this.timer)
      await this.forceFlush().catch(() => {})
      await this.exporter.shutdown()
    })()
    return this.shutdownPromise
  }

  /** Starts an export on a later turn of the event loop, never inside the request that filled the batch. */
  private scheduleExport(): void {
    if (this.exportScheduled || this.exporting || this.queue.length === 0) return
    this.exportScheduled = true
    setImmediate(() => {
      this.exportScheduled = false
      if (!this.exporting && this.queue.length > 0) void this.exportBatch()
    })
  }

  private exportBatch(): Promise<void> {
    const batch = this.queue.splice(0, this.maxExportBatchSize)
    const otlp = batch.flatMap((q) => this.toReadableSpans(q))
    this.exporting = new Promise<void>((resolve) => {
      this.exporter.export(otlp, (result) => {
        // ExportResultCode.SUCCESS is 0
        if (result.code === 0) this.exported += batch.length
        else this.failed += batch.length
        resolve()
      })
    }).finally(() => {
      this.exporting = undefined
      // a backlog that built up during the export goes out now, not a timer period later
      if (this.queue.length >= this.maxExportBatchSize) this.scheduleExport()
    })
    return this.exporting
  }

  private resourceFor(span: Span): Resource {
    const key = `${span.fleet}\u0000${span.host}\u0000${span.instance}`
    let r = this.resources.get(key)
    if (!r) {
      r = resourceFromAttributes({
        'service.name': this.opts.serviceName ?? 'breakid-engine',
        'service.namespace': span.fleet,
        'service.instance.id': span.instance,
        'host.name': span.host,
      })
      this.resources.set(key, r)
    }
    return r
  }

  /** The server span and its stage children. */
  toReadableSpans({ span, reason, parentSpanId }: Queued): ReadableSpan[] {
    const resource = this.resourceFor(span)
    const startUs = span.timestamp_us
    const endUs = startUs + span.total_us
    const traceId = span.trace_id
    const serverContext = { traceId, spanId: span.span_id, traceFlags: 1 }
    const attributes: Attributes = {
      'breakid.request_id': span.request_id,
      'breakid.model': span.model,
      'breakid.model_version': span.model_version,
      'breakid.device': span.device,
      'breakid.batch_id': span.batch_id,
      'breakid.batch_size': span.batch_size,
      'breakid.status': span.status,
      'breakid.cache_hit': span.cache_hit,
      'breakid.request_bytes': span.request_bytes,
      'breakid.response_bytes': span.response_bytes,
      'breakid.sampled_by': reason,
    }
    if (span.error_class !== null) attributes['error.type'] = span.error_class
    const out: ReadableSpan[] = [
      this.readable({
        name: `infer ${span.model}`,
        kind: SpanKind.SERVER,
        context: serverContext,
        // the caller's span (from its traceparent): this request is its child, not a new root
        parent: parentSpanId ? { traceId, spanId: parentSpanId, traceFlags: 1, isRemote: true } : undefined,
        startUs,
        endUs,
        attributes,
        // HTTP semantic conventions: a server span is an error for 5xx-like failures only
        error: span.status === 'server_error' ? (span.error_class ?? 'server_error') : undefined,
        resource,
      }),
    ]
    const ids = randomIds.hex(8 * STAGES.length)
    let at = startUs
    STAGES.forEach((stage, i) => {
      const durationUs = span[`${stage}_us` as const]
      const stageStart = Math.min(at, endUs)
      const stageEnd = Math.min(stageStart + durationUs, endUs)
      at = stageStart + durationUs
      out.push(
        this.readable({
          name: stage,
          kind: SpanKind.INTERNAL,
          context: { traceId, spanId: ids.slice(i * 16, i * 16 + 16), traceFlags: 1 },
          parent: serverContext,
          startUs: stageStart,
          endUs: stageEnd,
          attributes: { 'breakid.stage': stage, 'breakid.duration_us': durationUs },
          resource,
        }),
      )
    })
    return out
  }

  private readable(s: {
    name: string
    kind: SpanKind
    context: { traceId: string; spanId: string; traceFlags: number }
    parent?: { traceId: string; spanId: string; traceFlags: number; isRemote?: boolean }
    startUs: number
    endUs: number
    attributes: Attributes
    error?: string
    resource: Resource
  }): ReadableSpan {
    return {
      name: s.name,
      kind: s.kind,
      spanContext: () => s.context,
      parentSpanContext: s.parent,
      startTime: hrTime(s.startUs),
      endTime: hrTime(s.endUs),
      duration: hrTime(s.endUs - s.startUs),
      status: s.error ? { code: SpanStatusCode.ERROR, message: s.error } : { code: SpanStatusCode.UNSET },
      attributes: s.attributes,
      links: [],
      events: [],
      ended: true,
      resource: s.resource,
      instrumentationScope: this.scope,
      droppedAttributesCount: 0,
      droppedEventsCount: 0,
      droppedLinksCount: 0,
    }
  }
}

/** The trace id's last 8 hex digits as an unsigned 32-bit number (W3C: the random part of the id). */
export function traceIdFraction(traceId: string): number {
  const v = Number.parseInt(traceId.slice(-8), 16)
  return Number.isNaN(v) ? 0 : v
}

/** `--otlp-sample-ratio`: a number from 0 (errors and slow requests only) to 1 (every request). */
export function parseSampleRatio(value: unknown, flag = 'otlp-sample-ratio'): number {
  const n = Number(value)
  if (value === undefined || value === '' || !Number.isFinite(n) || n < 0 || n > 1) {
    throw new InvalidInputError(`--${flag}: "${value}" is not a number from 0 to 1`)
  }
  return n
}
