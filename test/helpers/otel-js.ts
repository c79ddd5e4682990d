/**
 * Real-shaped OTLP payloads for the collector's tests, made by the official OpenTelemetry JS SDK and
 * serialized by its own OTLP serializers (@opentelemetry/otlp-transformer) — an encoder we did not
 * write, so decoding them tests our decoder against the project's own.
 *
 * `tritonRequest` lays out the three spans Triton writes per request (collect/triton/trace.ts) with
 * explicit nanosecond event times, and returns the stage durations they must map to.
 */
import assert from 'node:assert/strict'
import type { Span } from '../../contract/records.ts'
import { STAGES } from '../../contract/vocabulary.ts'
import { type Attributes, type HrTime, ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api'
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer'
import { resourceFromAttributes } from '@opentelemetry/resources'
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base'

export const hr = (ns: bigint): HrTime => [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)]

export class OtelJs {
  readonly exporter = new InMemorySpanExporter()
  private readonly provider: BasicTracerProvider

  constructor(resource: Attributes) {
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes(resource),
      spanProcessors: [new SimpleSpanProcessor(this.exporter)],
    })
  }

  tracer(scope: string) {
    return this.provider.getTracer(scope)
  }

  /** Spans finished so far, and forget them. */
  take(): ReadableSpan[] {
    const spans = this.exporter.getFinishedSpans()
    this.exporter.reset()
    return [...spans]
  }
}

export const toProtobuf = (spans: ReadableSpan[]): Buffer =>
  Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!)

export const toJson = (spans: ReadableSpan[]): Buffer =>
  Buffer.from(JsonTraceSerializer.serializeRequest(spans)!)

export interface TritonExpectation {
  traceId: string
  rootSpanId: string
  model: string
  requestId: string
  timestampUs: number
  deserializeUs: number
  queueWaitUs: number
  preprocessUs: number
  computeUs: number
  postprocessUs: number
  serializeUs: number
  totalUs: number
}

/** Asserts that `span` carries the stage durations and the total of `e`, µs. */
export function assertDurations(span: Span, e: TritonExpectation): void {
  assert.deepEqual(Object.fromEntries([...STAGES, 'total' as const].map((st) => [st, span[`${st}_us`]])), {
    deserialize: e.deserializeUs,
    preprocess: e.preprocessUs,
    queue_wait: e.queueWaitUs,
    compute: e.computeUs,
    postprocess: e.postprocessUs,
    serialize: e.serializeUs,
    total: e.totalUs,
  })
}

const us = (a: bigint, b: bigint) => Number((b - a) / 1000n)

/**
 * One Triton request over HTTP starting at `t0` (epoch ns). Offsets are in ns and deliberately not
 * whole microseconds, so the truncation rule is exercised.
 */
export function tritonRequest(
  otel: OtelJs,
  t0: bigint,
  opts: { model?: string; requestId?: string; grpc?: boolean; cancelled?: boolean } = {},
): { expected: TritonExpectation } {
  const model = opts.model ?? 'resnet50'
  const tracer = otel.tracer('triton-server')
  const t = (offsetNs: number) => t0 + BigInt(offsetNs)
  const recv = opts.grpc ? ['GRPC_WAITREAD_START', 'GRPC_WAITREAD_END'] : ['HTTP_RECV_START', 'HTTP_RECV_END']
  const sendEv = opts.grpc ? ['GRPC_SEND_START', 'GRPC_SEND_END'] : ['HTTP_SEND_START', 'HTTP_SEND_END']
  const ev = {
    recvStart: t(10_250),
    recvEnd: t(55_777),
    requestStart: t(81_003),
    queueStart: t(90_499),
    computeStart: t(1_337_061),
    inputEnd: t(1_502_999),
    outputStart: t(4_120_001),
    computeEnd: t(4_300_500),
    requestEnd: t(4_330_000),
    responseComplete: t(4_331_000),
    sendStart: t(4_400_123),
    sendEnd: t(4_471_900),
    end: t(4_480_042),
  }
  const root = tracer.startSpan('InferRequest', { kind: SpanKind.SERVER, startTime: hr(t0) }, ROOT_CONTEXT)
  root.addEvent(recv[0]!, hr(ev.recvStart))
  root.addEvent(recv[1]!, hr(ev.recvEnd))
  const rootCtx = trace.setSpan(ROOT_CONTEXT, root)
  const requestId = opts.requestId ?? `req-${t0}`
  const modelSpan = tracer.startSpan(
    model,
    {
      kind: SpanKind.SERVER,
      startTime: hr(ev.requestStart),
      attributes: {
        'triton.model_name': model,
        'triton.model_version': 1,
        'triton.trace_id': 1,
        'triton.trace_parent_id': 0,
        'triton.request_id': requestId,
      },
    },
    rootCtx,
  )
  modelSpan.addEvent('REQUEST_START', hr(ev.requestStart))
  modelSpan.addEvent('QUEUE_START', hr(ev.queueStart))
  if (!opts.cancelled) {
    const compute = tracer.startSpan(
      'compute',
      { kind: SpanKind.SERVER, startTime: hr(ev.computeStart) },
      trace.setSpan(ROOT_CONTEXT, modelSpan),
    )
    compute.addEvent('COMPUTE_START', hr(ev.computeStart))
    compute.addEvent('COMPUTE_INPUT_END', hr(ev.inputEnd))
    compute.addEvent('COMPUTE_OUTPUT_START', hr(ev.outputStart))
    compute.addEvent('COMPUTE_END', hr(ev.computeEnd))
    compute.end(hr(ev.computeEnd))
  }
  modelSpan.addEvent('REQUEST_END', hr(ev.requestEnd))
  modelSpan.end(hr(ev.requestEnd))
  if (!opts.cancelled) {
    root.addEvent('INFER_RESPONSE_COMPLETE', hr(ev.responseComplete))
    root.addEvent(sendEv[0]!, hr(ev.sendStart))
    root.addEvent(sendEv[1]!, hr(ev.sendEnd))
  }
  root.end(hr(ev.end))
  const ctx = root.spanContext()
  return {
    expected: {
      traceId: ctx.traceId,
      rootSpanId: ctx.spanId,
      model,
      requestId,
      timestampUs: Number(t0 / 1000n),
      deserializeUs: us(ev.recvStart, ev.recvEnd),
      queueWaitUs: opts.cancelled ? 0 : us(ev.queueStart, ev.computeStart),
      preprocessUs: opts.cancelled ? 0 : us(ev.computeStart, ev.inputEnd),
      computeUs: opts.cancelled ? 0 : us(ev.inputEnd, ev.outputStart),
      postprocessUs: opts.cancelled ? 0 : us(ev.outputStart, ev.computeEnd),
      serializeUs: opts.cancelled ? 0 : us(ev.sendStart, ev.sendEnd),
      totalUs: us(t0, ev.end),
    },
  }
}
