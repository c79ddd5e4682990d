/**
 * OTLP/HTTP payloads in and out: binary protobuf and OTLP/JSON, both decoded to the same plain objects
 * (the shapes in ./schema.ts: int64 and fixed64 as decimal strings, enums as numbers, bytes as
 * Buffers) so the mapping code never knows which encoding arrived.
 *
 * OTLP/JSON is the proto3 JSON mapping with OTLP's deviations (opentelemetry-proto
 * docs/specification.md, "JSON Protobuf Encoding"): `traceId`/`spanId`/`parentSpanId` are hex, not
 * base64; keys are lowerCamelCase only (a snake_case key is an unknown field, and unknown fields are
 * ignored); enums are integers — names are accepted too, as the proto3 mapping allows; 64-bit integers
 * arrive as decimal strings or numbers; doubles may be "NaN", "Infinity", "-Infinity". A value of the
 * wrong JSON type anywhere makes the whole payload undecodable (HTTP 400), with its path in the error.
 */
import protobuf from 'protobufjs'
import { InvalidInputError } from '../../core/errors.ts'
import { type ExportMetricsServiceRequest, type ExportTraceServiceRequest, OTLP_TYPES } from './schema.ts'

export type OtlpEncoding = 'protobuf' | 'json'

/** A payload that cannot be decoded as the message it claims to be: the whole request gets HTTP 400. */
export class OtlpDecodeError extends InvalidInputError {
  constructor(message: string, cause?: unknown) {
    super(message, cause, 'BREAKID_OTLP_DECODE')
  }
}

/** The encoding named by a Content-Type header, or undefined for anything else (HTTP 415). */
export function encodingOf(contentType: string | undefined): OtlpEncoding | undefined {
  const mime = contentType?.split(';')[0]?.trim().toLowerCase()
  if (mime === 'application/x-protobuf') return 'protobuf'
  if (mime === 'application/json') return 'json'
  return undefined
}

export const CONTENT_TYPE: Record<OtlpEncoding, string> = {
  protobuf: 'application/x-protobuf',
  json: 'application/json',
}

const TO_OBJECT: protobuf.IConversionOptions = { longs: String, enums: Number, defaults: false }

function decode(type: protobuf.Type, body: Buffer, encoding: OtlpEncoding): unknown {
  if (body.length === 0) return {}
  if (encoding === 'protobuf') {
    let message: protobuf.Message
    try {
      message = type.decode(body)
    } catch (err) {
      throw new OtlpDecodeError(`not a protobuf ${type.name}: ${(err as Error).message}`, err)
    }
    return type.toObject(message, TO_OBJECT)
  }
  let json: unknown
  try {
    json = JSON.parse(body.toString('utf8'))
  } catch (err) {
    throw new OtlpDecodeError(`not JSON: ${(err as Error).message}`, err)
  }
  return fromJson(type, json, '$')
}

export function decodeTraceRequest(body: Buffer, encoding: OtlpEncoding): ExportTraceServiceRequest {
  return decode(OTLP_TYPES.traceRequest, body, encoding) as ExportTraceServiceRequest
}

export function decodeMetricsRequest(body: Buffer, encoding: OtlpEncoding): ExportMetricsServiceRequest {
  return decode(OTLP_TYPES.metricsRequest, body, encoding) as ExportMetricsServiceRequest
}

/** Bytes fields that OTLP/JSON writes as hex, in every message that has them. */
const HEX_FIELDS = new Set(['traceId', 'spanId', 'parentSpanId'])
const INT64 = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64'])
const INT32 = new Set(['int32', 'uint32', 'sint32', 'fixed32', 'sfixed32'])

function fail(path: string, what: string, got: unknown): never {
  const shown = typeof got === 'string' ? JSON.stringify(got.slice(0, 40)) : JSON.stringify(got)
  throw new OtlpDecodeError(`${path}: expected ${what}, got ${shown?.slice(0, 60) ?? typeof got}`)
}

function fromJson(type: protobuf.Type, json: unknown, path: string): Record<string, unknown> {
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    fail(path, `a ${type.name} object`, json)
  const src = json as Record<string, unknown>
  const out: Record<string, unknown> = {}
  for (const field of type.fieldsArray) {
    const raw = src[field.name]
    if (raw === undefined || raw === null) continue
    const at = `${path}.${field.name}`
    if (field.repeated) {
      if (!Array.isArray(raw)) fail(at, 'an array', raw)
      out[field.name] = raw.map((v, i) => fieldValue(field, v, `${at}[${i}]`))
    } else {
      out[field.name] = fieldValue(field, raw, at)
    }
  }
  return out
}

function fieldValue(field: protobuf.Field, v: unknown, path: string): unknown {
  const resolved = field.resolvedType
  if (resolved instanceof protobuf.Enum) {
    if (typeof v === 'number' && Number.isInteger(v)) return v
    if (typeof v === 'string' && v in resolved.values) return resolved.values[v]
    return fail(path, `an integer (enum ${resolved.name})`, v)
  }
  if (resolved instanceof protobuf.Type) return fromJson(resolved, v, path)
  const t = field.type
  if (t === 'string') return typeof v === 'string' ? v : fail(path, 'a string', v)
  if (t === 'bool') return typeof v === 'boolean' ? v : fail(path, 'true or false', v)
  if (t === 'double' || t === 'float') {
    if (typeof v === 'number') return v
    if (v === 'NaN') return Number.NaN
    if (v === 'Infinity') return Number.POSITIVE_INFINITY
    if (v === '-Infinity') return Number.NEGATIVE_INFINITY
    if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v)
    return fail(path, 'a number', v)
  }
  if (INT64.has(t)) {
    if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v)
    if (typeof v === 'string' && /^-?\d{1,20}$/.test(v)) return BigInt(v).toString()
    return fail(path, 'a 64-bit integer (number or decimal string)', v)
  }
  if (INT32.has(t)) {
    const n = typeof v === 'string' && /^-?\d{1,10}$/.test(v) ? Number(v) : v
    if (typeof n === 'number' && Number.isInteger(n)) return n
    return fail(path, 'a 32-bit integer', v)
  }
  if (t === 'bytes') {
    if (typeof v !== 'string') return fail(path, 'a string', v)
    if (HEX_FIELDS.has(field.name)) {
      if (!/^(?:[0-9a-fA-F]{2})*$/.test(v)) return fail(path, 'hex digits', v)
      return Buffer.from(v, 'hex')
    }
    if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(v)) return fail(path, 'base64', v)
    return Buffer.from(v, 'base64')
  }
  return fail(path, `a ${t}`, v)
}

export interface PartialSuccess {
  rejected: number
  message: string
}

function encodeResponse(
  type: protobuf.Type,
  rejectedKey: 'rejectedSpans' | 'rejectedDataPoints',
  encoding: OtlpEncoding,
  partial?: PartialSuccess,
): Buffer {
  // the specification: leave partial_success unset on full success
  const body = partial
    ? { partialSuccess: { [rejectedKey]: partial.rejected, errorMessage: partial.message } }
    : {}
  if (encoding === 'json') {
    // proto3 JSON writes int64 as a decimal string
    const json = partial
      ? { partialSuccess: { [rejectedKey]: String(partial.rejected), errorMessage: partial.message } }
      : {}
    return Buffer.from(JSON.stringify(json))
  }
  return Buffer.from(type.encode(type.fromObject(body)).finish())
}

export function encodeTraceResponse(encoding: OtlpEncoding, partial?: PartialSuccess): Buffer {
  return encodeResponse(OTLP_TYPES.traceResponse, 'rejectedSpans', encoding, partial)
}

export function encodeMetricsResponse(encoding: OtlpEncoding, partial?: PartialSuccess): Buffer {
  return encodeResponse(OTLP_TYPES.metricsResponse, 'rejectedDataPoints', encoding, partial)
}

/** google.rpc.Code values used in failure answers. */
export const RPC_CODE = { invalidArgument: 3, resourceExhausted: 8, unavailable: 14, internal: 13 } as const

/** The `google.rpc.Status` body OTLP/HTTP requires on every 4xx and 5xx. */
export function encodeStatus(encoding: OtlpEncoding, code: number, message: string): Buffer {
  if (encoding === 'json') return Buffer.from(JSON.stringify({ code, message }))
  const type = OTLP_TYPES.status
  return Buffer.from(type.encode(type.fromObject({ code, message })).finish())
}
