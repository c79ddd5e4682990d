/**
 * Decoded OTLP trace requests flattened to one self-contained record per span: hex ids, nanosecond
 * times as bigint (epoch nanoseconds do not fit a double), attributes as plain values, and the
 * resource and instrumentation scope the span came with. Spans that break the OTLP data model
 * (trace id not 16 bytes or all zero, span id not 8 bytes or all zero, end before start) are rejected
 * one by one — the others of the request go on — and counted by reason for the partial-success answer.
 */
import type { AnyValue, ExportTraceServiceRequest, KeyValue, OtlpSpan } from './schema.ts'

export type AttrValue = string | number | boolean

export type Attributes = Readonly<Record<string, AttrValue>>

export interface SpanEventTime {
  name: string
  timeNs: bigint
}

export interface ReceivedSpan {
  traceId: string
  spanId: string
  /** '' for a root span */
  parentSpanId: string
  name: string
  kind: number
  startNs: bigint
  endNs: bigint
  attributes: Attributes
  events: SpanEventTime[]
  /** OTLP status code: 0 unset, 1 ok, 2 error */
  statusCode: number
  statusMessage: string
  resource: Attributes
  scope: string
  /** the address the export came from (for an instance name when the resource names none) */
  peer: string
}

export type SpanRejection = 'bad_trace_id' | 'bad_span_id' | 'bad_parent_span_id' | 'bad_times'

export interface FlattenedTraces {
  spans: ReceivedSpan[]
  rejected: Partial<Record<SpanRejection, number>>
  rejectedCount: number
}

export function attributeValue(v: AnyValue | undefined): AttrValue | undefined {
  if (!v) return undefined
  if (v.stringValue !== undefined) return v.stringValue
  if (v.boolValue !== undefined) return v.boolValue
  if (v.doubleValue !== undefined) return v.doubleValue
  if (v.intValue !== undefined) {
    const n = Number(v.intValue)
    // ids such as triton.trace_id are uint64: keep the exact digits when a double cannot hold them
    return Number.isSafeInteger(n) ? n : v.intValue
  }
  if (v.bytesValue !== undefined) return Buffer.from(v.bytesValue).toString('hex')
  if (v.arrayValue !== undefined) return JSON.stringify((v.arrayValue.values ?? []).map(attributeValue))
  if (v.kvlistValue !== undefined) return JSON.stringify(attributesOf(v.kvlistValue.values))
  return undefined
}

export function attributesOf(kvs: KeyValue[] | undefined): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {}
  for (const kv of kvs ?? []) {
    const value = attributeValue(kv.value)
    if (kv.key && value !== undefined) out[kv.key] = value
  }
  return out
}

const hex = (b: Uint8Array | undefined): string => (b ? Buffer.from(b).toString('hex') : '')
const isZero = (h: string) => /^0*$/.test(h)
const nanos = (s: string | undefined): bigint => (s ? BigInt(s) : 0n)

function check(span: OtlpSpan): SpanRejection | undefined {
  const trace = span.traceId?.length ?? 0
  const id = span.spanId?.length ?? 0
  const parent = span.parentSpanId?.length ?? 0
  if (trace !== 16 || isZero(hex(span.traceId))) return 'bad_trace_id'
  if (id !== 8 || isZero(hex(span.spanId))) return 'bad_span_id'
  if (parent !== 0 && parent !== 8) return 'bad_parent_span_id'
  const start = nanos(span.startTimeUnixNano)
  const end = nanos(span.endTimeUnixNano)
  if (start <= 0n || end < start) return 'bad_times'
  return undefined
}

export function flattenTraces(request: ExportTraceServiceRequest, peer: string): FlattenedTraces {
  const out: FlattenedTraces = { spans: [], rejected: {}, rejectedCount: 0 }
  for (const rs of request.resourceSpans ?? []) {
    const resource = attributesOf(rs.resource?.attributes)
    for (const ss of rs.scopeSpans ?? []) {
      const scope = ss.scope?.name ?? ''
      for (const span of ss.spans ?? []) {
        const why = check(span)
        if (why) {
          out.rejected[why] = (out.rejected[why] ?? 0) + 1
          out.rejectedCount++
          continue
        }
        const parentSpanId = hex(span.parentSpanId)
        out.spans.push({
          traceId: hex(span.traceId),
          spanId: hex(span.spanId),
          parentSpanId: isZero(parentSpanId) ? '' : parentSpanId,
          name: span.name ?? '',
          kind: span.kind ?? 0,
          startNs: nanos(span.startTimeUnixNano),
          endNs: nanos(span.endTimeUnixNano),
          attributes: attributesOf(span.attributes),
          events: (span.events ?? []).map((e) => ({ name: e.name ?? '', timeNs: nanos(e.timeUnixNano) })),
          statusCode: span.status?.code ?? 0,
          statusMessage: span.status?.message ?? '',
          resource,
          scope,
          peer,
        })
      }
    }
  }
  return out
}

/** Whole microseconds from `fromNs` to `toNs`, truncated (never negative). */
export function microsBetween(fromNs: bigint, toNs: bigint): number {
  return toNs > fromNs ? Number((toNs - fromNs) / 1000n) : 0
}

/** Epoch microseconds of an epoch-nanosecond time, truncated. */
export function epochMicros(ns: bigint): number {
  return Number(ns / 1000n)
}
