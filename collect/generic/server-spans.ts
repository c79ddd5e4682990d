/**
 * Any service's OpenTelemetry server spans mapped onto breakid spans: one per SERVER span (an
 * incoming HTTP or gRPC request, per the semantic conventions), with the total from the span and a
 * stage duration from each child span the mapping table names. The table is configuration: by
 * default each of the contract's stage names maps to itself (so a service whose child spans are called
 * `preprocess`, `compute`, … needs nothing), and a child with a `breakid.stage` attribute names its
 * stage directly (breakid's own engine exports its spans that way).
 *
 *   model           first present of `modelAttributes` (default breakid.model, gen_ai.request.model),
 *                   else the resource's service.name
 *   model_version   first present of `modelVersionAttributes` (default breakid.model_version)
 *   request_id      breakid.request_id, else the span id
 *   status          http.response.status_code (or the older http.status_code) 5xx → server_error,
 *                   4xx → client_error; rpc.grpc.status_code: client codes → client_error, others
 *                   ≠ 0 → server_error; else span status ERROR → server_error
 *   error_class     error.type, else the status message (only when status is not ok)
 *   request_bytes   http.request.body.size      response_bytes   http.response.body.size
 *   stage durations the sum of the durations of the child (or deeper) spans mapped to that stage
 */
import { blankSpan, type Span } from '../../contract/records.ts'
import { isStage, STAGES, type Stage } from '../../contract/vocabulary.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { identityOf } from '../identity.ts'
import { type Attributes, epochMicros, microsBetween, type ReceivedSpan } from '../otlp/spans.ts'
import { SPAN_KIND, STATUS_CODE } from '../otlp/schema.ts'

export interface SpanMappingConfig {
  /** span attributes that name the model, first present wins */
  modelAttributes: readonly string[]
  modelVersionAttributes: readonly string[]
  /** child span name → breakid stage */
  stages: Readonly<Record<string, Stage>>
}

export function defaultSpanMapping(): SpanMappingConfig {
  return {
    modelAttributes: ['breakid.model', 'gen_ai.request.model'],
    modelVersionAttributes: ['breakid.model_version'],
    stages: Object.fromEntries(STAGES.map((s) => [s, s])) as Record<string, Stage>,
  }
}

/** A mapping from a config file: `{ modelAttributes?, modelVersionAttributes?, stages? }` over the defaults. */
export function parseSpanMapping(raw: unknown): SpanMappingConfig {
  const base = defaultSpanMapping()
  if (raw === undefined) return base
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new InvalidInputError('spanMapping: expected an object')
  const r = raw as Record<string, unknown>
  const strings = (v: unknown, name: string): string[] => {
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string' && s !== ''))
      throw new InvalidInputError(`spanMapping.${name}: expected a list of attribute names`)
    return v as string[]
  }
  const stages: Record<string, Stage> = { ...base.stages }
  if (r.stages !== undefined) {
    if (typeof r.stages !== 'object' || r.stages === null || Array.isArray(r.stages))
      throw new InvalidInputError('spanMapping.stages: expected { "<span name>": "<stage>" }')
    for (const [name, stage] of Object.entries(r.stages)) {
      if (!isStage(stage))
        throw new InvalidInputError(
          `spanMapping.stages.${name}: "${String(stage)}" is not one of ${STAGES.join(', ')}`,
        )
      stages[name] = stage
    }
  }
  return {
    modelAttributes:
      r.modelAttributes === undefined ? base.modelAttributes : strings(r.modelAttributes, 'modelAttributes'),
    modelVersionAttributes:
      r.modelVersionAttributes === undefined
        ? base.modelVersionAttributes
        : strings(r.modelVersionAttributes, 'modelVersionAttributes'),
    stages,
  }
}

export const isServerSpan = (span: ReceivedSpan) => span.kind === SPAN_KIND.server

/** The stage a (child) span stands for under `mapping`, if any. */
export function stageOf(span: ReceivedSpan, mapping: SpanMappingConfig): Stage | undefined {
  const named = mapping.stages[span.name]
  if (named) return named
  const attr = span.attributes['breakid.stage']
  return isStage(attr) ? attr : undefined
}

const first = (attrs: Attributes, keys: readonly string[]) => {
  for (const k of keys) if (attrs[k] !== undefined && attrs[k] !== '') return String(attrs[k])
  return undefined
}

const int32 = (v: unknown) =>
  typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.min(Math.floor(v), 2 ** 31 - 1) : 0

/** gRPC codes a client causes (CANCELLED, INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS,
 *  PERMISSION_DENIED, FAILED_PRECONDITION, OUT_OF_RANGE, UNAUTHENTICATED). */
const GRPC_CLIENT_CODES = new Set([1, 3, 5, 6, 7, 9, 11, 16])

function statusOf(server: ReceivedSpan): Pick<Span, 'status' | 'error_class'> {
  const a = server.attributes
  const http = a['http.response.status_code'] ?? a['http.status_code']
  const grpc = a['rpc.grpc.status_code']
  let status: Span['status'] = 'ok'
  if (typeof http === 'number' && http >= 500) status = 'server_error'
  else if (typeof http === 'number' && http >= 400) status = 'client_error'
  else if (typeof grpc === 'number' && grpc !== 0)
    status = GRPC_CLIENT_CODES.has(grpc) ? 'client_error' : 'server_error'
  else if (server.statusCode === STATUS_CODE.error) status = 'server_error'
  if (status === 'ok') return { status, error_class: null }
  const errorType = a['error.type']
  return { status, error_class: errorType !== undefined ? String(errorType) : server.statusMessage || null }
}

/** The breakid span of one server span and the stage spans found under it. */
export function mapServerSpan(
  server: ReceivedSpan,
  stageSpans: readonly ReceivedSpan[],
  mapping: SpanMappingConfig,
  defaultFleet: string,
): Span {
  const id = identityOf(server.resource, server.peer, defaultFleet)
  const a = server.attributes
  const span = blankSpan({
    timestamp_us: epochMicros(server.startNs),
    trace_id: server.traceId,
    span_id: server.spanId,
    request_id: first(a, ['breakid.request_id']) ?? server.spanId,
    fleet: id.fleet,
    host: id.host,
    instance: id.instance,
    model: first(a, mapping.modelAttributes) ?? String(server.resource['service.name'] ?? ''),
    model_version: first(a, mapping.modelVersionAttributes) ?? '',
    device: '',
    total_us: microsBetween(server.startNs, server.endNs),
    request_bytes: int32(a['http.request.body.size']),
    response_bytes: int32(a['http.response.body.size']),
    batch_size: int32(a['breakid.batch_size']),
    cache_hit: a['breakid.cache_hit'] === true,
    ...statusOf(server),
  })
  for (const child of stageSpans) {
    const stage = stageOf(child, mapping)
    if (stage) span[`${stage}_us`] += microsBetween(child.startNs, child.endNs)
  }
  return span
}
