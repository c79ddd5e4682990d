/**
 * Where telemetry leaves the engine: span processors, after OpenTelemetry's SpanProcessor
 * (onStart/onEnd on the request path, forceFlush, idempotent shutdown). The Avro emitter
 * (telemetry/emitter.ts), the /metrics recorder (telemetry/metrics-recorder.ts) and the OTLP exporter
 * (telemetry/otlp.ts) are processors; the engine calls one `MultiSpanProcessor` over them and nothing
 * else for telemetry.
 *
 * Two additions to OpenTelemetry's contract, both optional: `start()` (breakid's components start and
 * stop; the Avro emitter connects its producer there) and `onHwSample()` (the hardware samples go out
 * the way spans do).
 */
import type { Logger } from 'pino'
import type { HwSample, Span } from '../contract/records.ts'
import { FirstPerInterval } from '../core/log-limiter.ts'

/**
 * What a processor learns beyond the span record: the caller's span (the `traceparent` parent id),
 * which the Avro record does not carry, so an exported span is the caller's child, not a new root.
 */
export interface SpanTraceContext {
  parentSpanId?: string
}

export interface SpanProcessor {
  /** label of its failures on /metrics (`breakid_telemetry_processor_errors_total{processor}`) */
  readonly processorName: string
  /** before the first span: connect, open (optional) */
  start?(): Promise<void>
  /** a request's span was created; the pipeline fills it in afterwards (optional) */
  onStart?(span: Span, trace: SpanTraceContext): void
  /**
   * A finished span. Runs on the request path: must not block, and must not change the span (the
   * Avro emitter encodes it later). A throw is caught, counted and logged; the request is answered.
   */
  onEnd(span: Span, trace: SpanTraceContext): void
  /** a hardware sample (optional) */
  onHwSample?(sample: HwSample): void
  /** exports everything buffered so far */
  forceFlush(): Promise<void>
  /** flushes and releases; a second call does nothing more (and resolves when the first has) */
  shutdown(): Promise<void>
}

/**
 * A span observer as a processor: a function called with each finished span, nothing to flush or
 * shut down (tests and benchmarks that collect spans).
 */
export type SpanObserver = (span: Span, trace: SpanTraceContext) => void

export function observerProcessor(observe: SpanObserver, processorName = 'observer'): SpanProcessor {
  return {
    processorName,
    onEnd: observe,
    forceFlush: async () => {},
    shutdown: async () => {},
  }
}

/**
 * Fans every call out to its processors in order. A processor that throws (or rejects) does not fail
 * the request nor keep the others from their call: the failure is counted by processor name
 * (`failures`), and logged once a minute per processor and call. After shutdown, spans and samples
 * are ignored (as in OpenTelemetry). `start()` is the one call whose failure propagates: an engine
 * whose telemetry cannot start does not serve.
 */
export class MultiSpanProcessor implements SpanProcessor {
  readonly processorName = 'multi'
  /** failed calls by processor name */
  readonly failures = new Map<string, number>()
  private readonly processors: readonly SpanProcessor[]
  private readonly logLimiter = new FirstPerInterval()
  private shutdownPromise: Promise<void> | undefined

  constructor(
    processors: readonly SpanProcessor[],
    private readonly logger?: Logger,
  ) {
    this.processors = [...processors]
  }

  async start(): Promise<void> {
    for (const p of this.processors) await p.start?.()
  }

  onStart(span: Span, trace: SpanTraceContext): void {
    if (this.shutdownPromise) return
    for (const p of this.processors) {
      if (!p.onStart) continue
      try {
        p.onStart(span, trace)
      } catch (err) {
        this.failed(p, 'onStart', err)
      }
    }
  }

  onEnd(span: Span, trace: SpanTraceContext): void {
    if (this.shutdownPromise) return
    for (const p of this.processors) {
      try {
        p.onEnd(span, trace)
      } catch (err) {
        this.failed(p, 'onEnd', err)
      }
    }
  }

  onHwSample(sample: HwSample): void {
    if (this.shutdownPromise) return
    for (const p of this.processors) {
      if (!p.onHwSample) continue
      try {
        p.onHwSample(sample)
      } catch (err) {
        this.failed(p, 'onHwSample', err)
      }
    }
  }

  /** One processor after the other, in order: the Avro emitter's flush is not raced by the others. */
  async forceFlush(): Promise<void> {
    for (const p of this.processors) {
      try {
        await p.forceFlush()
      } catch (err) {
        this.failed(p, 'forceFlush', err)
      }
    }
  }

  shutdown(): Promise<void> {
    this.shutdownPromise ??= (async () => {
      for (const p of this.processors) {
        try {
          await p.shutdown()
        } catch (err) {
          this.failed(p, 'shutdown', err)
        }
      }
    })()
    return this.shutdownPromise
  }

  /** failed calls, all processors together */
  get failureCount(): number {
    let n = 0
    for (const v of this.failures.values()) n += v
    return n
  }

  private failed(p: SpanProcessor, call: string, err: unknown): void {
    this.failures.set(p.processorName, (this.failures.get(p.processorName) ?? 0) + 1)
    const unlogged = this.logLimiter.admit(`${p.processorName}.${call}`)
    if (unlogged !== undefined) {
      this.logger?.error(
        { err, processor: p.processorName, call, unlogged },
        'span processor failed (the request was answered)',
      )
    }
  }
}
