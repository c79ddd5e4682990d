/**
 * NVIDIA Triton's OpenTelemetry traces (`--trace-config mode=opentelemetry`) mapped onto one breakid
 * span per request.
 *
 * The shape, as Triton's server writes it (src/tracer.cc, src/tracer.h) and its own test checks it
 * (qa/L0_trace/opentelemetry_unittest.py):
 *
 *   InferRequest                  root span; timestamps captured outside the core, as events:
 *   │                             HTTP_RECV_START/END, INFER_RESPONSE_COMPLETE, HTTP_SEND_START/END
 *   │                             (gRPC: GRPC_WAITREAD_START/END, …, GRPC_SEND_START/END)
 *   └─ <model name>               one per model request: REQUEST_START, QUEUE_START, REQUEST_END;
 *      │                          attributes triton.model_name, triton.model_version (int),
 *      │                          triton.trace_id, triton.trace_parent_id, triton.request_id (if set)
 *      └─ compute                 COMPUTE_START, COMPUTE_INPUT_END, COMPUTE_OUTPUT_START, COMPUTE_END
 *
 * All spans are SERVER spans from the tracer named `triton-server`. An ensemble's span has no compute
 * child: its composing models' spans (each with its own compute) hang under it. A BLS model has its
 * own compute span and the models it calls under it (their time is inside its compute). Custom
 * backend activities add `CUSTOM_ACTIVITY…` spans, which are not stages. With context propagation
 * (Triton 24.01+) the root has the caller's span as parent, so the root is found by name, not by the
 * absence of a parent. A cancelled request's root has only its receive events.
 *
 * Stage mapping (durations are differences of event times, truncated to whole microseconds):
 *
 *   deserialize  = HTTP_RECV_START → HTTP_RECV_END   (gRPC: GRPC_WAITREAD_START → _END, which
 *                  includes waiting for the request to arrive — Triton's docs say the same)
 *   queue_wait   = QUEUE_START (model span) → COMPUTE_START (its compute span)
 *   preprocess   = COMPUTE_START → COMPUTE_INPUT_END        (Triton's "compute input")
 *   compute      = COMPUTE_INPUT_END → COMPUTE_OUTPUT_START (Triton's "compute infer")
 *   postprocess  = COMPUTE_OUTPUT_START → COMPUTE_END       (Triton's "compute output")
 *   serialize    = HTTP_SEND_START → HTTP_SEND_END (gRPC: GRPC_SEND_START → _END)
 *   total        = the root span, start to end
 *
 * The model-side stages come from the top model when it has a compute span (a plain model, or BLS);
 * for an ensemble they are summed over its composing models — exact for the usual sequential
 * pipeline, an overstatement when steps run in parallel.
 */
import { blankSpan, type Span } from '../../contract/records.ts'
import { identityOf } from '../identity.ts'
import { epochMicros, microsBetween, type ReceivedSpan } from '../otlp/spans.ts'

/** Names exactly as Triton writes them (tracer.h kTritonTracer, tracer.cc, TRITONSERVER activity strings). */
export const TRITON = {
  tracer: 'triton-server',
  rootSpan: 'InferRequest',
  computeSpan: 'compute',
  attr: {
    modelName: 'triton.model_name',
    modelVersion: 'triton.model_version',
    requestId: 'triton.request_id',
    traceId: 'triton.trace_id',
    traceParentId: 'triton.trace_parent_id',
  },
  event: {
    httpRecvStart: 'HTTP_RECV_START',
    httpRecvEnd: 'HTTP_RECV_END',
    httpSendStart: 'HTTP_SEND_START',
    httpSendEnd: 'HTTP_SEND_END',
    grpcReadStart: 'GRPC_WAITREAD_START',
    grpcReadEnd: 'GRPC_WAITREAD_END',
    grpcSendStart: 'GRPC_SEND_START',
    grpcSendEnd: 'GRPC_SEND_END',
    responseComplete: 'INFER_RESPONSE_COMPLETE',
    requestStart: 'REQUEST_START',
    queueStart: 'QUEUE_START',
    requestEnd: 'REQUEST_END',
    computeStart: 'COMPUTE_START',
    computeInputEnd: 'COMPUTE_INPUT_END',
    computeOutputStart: 'COMPUTE_OUTPUT_START',
    computeEnd: 'COMPUTE_END',
  },
} as const

const E = TRITON.event

/** True for a span Triton's tracer wrote (by its tracer name, or by a shape only Triton produces). */
export function isTritonSpan(span: ReceivedSpan): boolean {
  return (
    span.scope === TRITON.tracer ||
    span.name === TRITON.rootSpan ||
    TRITON.attr.modelName in span.attributes ||
    (span.name === TRITON.computeSpan && span.events.some((e) => e.name === E.computeStart))
  )
}

export const isTritonRoot = (span: ReceivedSpan) => span.name === TRITON.rootSpan

export function isModelSpan(span: ReceivedSpan): boolean {
  return TRITON.attr.modelName in span.attributes
}

export const isComputeSpan = (span: ReceivedSpan) => span.name === TRITON.computeSpan && !isModelSpan(span)

/** The spans of one trace held so far, by id and by parent. */
export interface SpanTree {
  byId: ReadonlyMap<string, ReceivedSpan>
  children(spanId: string): ReceivedSpan[]
}

function eventTime(span: ReceivedSpan | undefined, name: string): bigint | undefined {
  return span?.events.find((e) => e.name === name)?.timeNs
}

function between(span: ReceivedSpan | undefined, from: string, to: string, other?: ReceivedSpan): number {
  const a = eventTime(span, from)
  const b = eventTime(other ?? span, to)
  return a !== undefined && b !== undefined ? microsBetween(a, b) : 0
}

const modelChildren = (tree: SpanTree, s: ReceivedSpan) => tree.children(s.spanId).filter(isModelSpan)
const computeChild = (tree: SpanTree, s: ReceivedSpan) => tree.children(s.spanId).find(isComputeSpan)

/**
 * A model span whose stages are known: it has its compute span, or it is an ensemble whose composing
 * models (at least one) all are. Parts that never come (a cancelled request has no compute) leave
 * the request open until the assembler's wait ends.
 */
function closed(tree: SpanTree, model: ReceivedSpan): boolean {
  if (computeChild(tree, model)) return true
  const composing = modelChildren(tree, model)
  return composing.length > 0 && composing.every((m) => closed(tree, m))
}

/** The model spans (directly under the root) of a request. */
export function topModels(tree: SpanTree, root: ReceivedSpan): ReceivedSpan[] {
  return modelChildren(tree, root).sort((a, b) => (a.startNs < b.startNs ? -1 : 1))
}

/** Every part a request needs has arrived: its root, a model span and the compute spans under it. */
export function requestComplete(tree: SpanTree, root: ReceivedSpan): boolean {
  const models = topModels(tree, root)
  return models.length > 0 && models.every((m) => closed(tree, m))
}

/** The model spans whose own compute gives the stages: see the module comment. */
function stageSources(
  tree: SpanTree,
  model: ReceivedSpan,
): { model: ReceivedSpan; compute?: ReceivedSpan }[] {
  const compute = computeChild(tree, model)
  if (compute) return [{ model, compute }]
  const composing = modelChildren(tree, model)
  if (composing.length === 0) return [{ model }]
  return composing.flatMap((m) => stageSources(tree, m))
}

export interface TritonMapping {
  span: Span
  /** what was missing when the request was emitted ([] for a complete one) */
  missing: string[]
}

/**
 * The breakid span of one request. `root` is the InferRequest span, or — when it never came — the top
 * model span standing in for it (then deserialize/serialize are 0 and the total is the model's).
 */
export function mapTritonRequest(tree: SpanTree, root: ReceivedSpan, defaultFleet: string): TritonMapping {
  const missing: string[] = []
  const hasRoot = isTritonRoot(root)
  if (!hasRoot) missing.push('root')
  const models = hasRoot ? topModels(tree, root) : [root]
  const top = models[0]
  if (!top) missing.push('model')
  const id = identityOf(root.resource, root.peer, defaultFleet)
  const attr = top?.attributes ?? {}
  const span = blankSpan({
    timestamp_us: epochMicros(root.startNs),
    trace_id: root.traceId,
    span_id: root.spanId,
    request_id: String(attr[TRITON.attr.requestId] ?? root.spanId),
    fleet: id.fleet,
    host: id.host,
    instance: id.instance,
    model: String(attr[TRITON.attr.modelName] ?? top?.name ?? ''),
    model_version: attr[TRITON.attr.modelVersion] === undefined ? '' : String(attr[TRITON.attr.modelVersion]),
    // Triton's trace names no device and no batch: left unknown rather than guessed
    device: '',
    total_us: microsBetween(root.startNs, root.endNs),
  })
  if (hasRoot) {
    const http = eventTime(root, E.httpRecvStart) !== undefined
    span.deserialize_us = http
      ? between(root, E.httpRecvStart, E.httpRecvEnd)
      : between(root, E.grpcReadStart, E.grpcReadEnd)
    span.serialize_us = http
      ? between(root, E.httpSendStart, E.httpSendEnd)
      : between(root, E.grpcSendStart, E.grpcSendEnd)
  }
  for (const model of models) {
    for (const { model: m, compute } of stageSources(tree, model)) {
      if (!compute) {
        missing.push('compute')
        continue
      }
      span.queue_wait_us += between(m, E.queueStart, E.computeStart, compute)
      span.preprocess_us += between(compute, E.computeStart, E.computeInputEnd)
      span.compute_us += between(compute, E.computeInputEnd, E.computeOutputStart)
      span.postprocess_us += between(compute, E.computeOutputStart, E.computeEnd)
    }
  }
  const parts = [root, ...models.flatMap((m) => [m, ...tree.children(m.spanId)])]
  const failed = parts.find((p) => p.statusCode === 2)
  const sent =
    eventTime(root, E.httpSendStart) ??
    eventTime(root, E.grpcSendStart) ??
    eventTime(root, E.responseComplete)
  if (failed) {
    span.status = 'server_error'
    span.error_class = failed.statusMessage || 'error'
  } else if (hasRoot && sent === undefined) {
    // Triton's own test of a cancelled request sees only the receive events on the root
    span.status = 'client_error'
    span.error_class = 'cancelled'
  }
  return { span, missing }
}
