/**
 * The OTLP message types, loaded with protobufjs from the OpenTelemetry project's own `.proto` files
 * (vendored under ./vendor/opentelemetry-proto, release and licence in its README.md) — nothing here is hand-written
 * but `google.rpc.Status`, which OTLP/HTTP answers failures with and which lives in googleapis, not in
 * opentelemetry-proto.
 *
 * protobufjs converts field names to lowerCamelCase, which is also OTLP/JSON's key spelling, so one
 * reflection serves both encodings.
 */
import { join } from 'node:path'
import protobuf from 'protobufjs'

const PROTO_DIR = join(import.meta.dirname, 'vendor', 'opentelemetry-proto')

function loadRoot(): protobuf.Root {
  const root = new protobuf.Root()
  // imports are written relative to the repository root of opentelemetry-proto
  root.resolvePath = (_origin, target) => join(PROTO_DIR, target)
  root.loadSync([
    'opentelemetry/proto/collector/trace/v1/trace_service.proto',
    'opentelemetry/proto/collector/metrics/v1/metrics_service.proto',
  ])
  // google/rpc/status.proto: `int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3`.
  // `details` is left out: we never send any, and a reader skips absent fields.
  const status = new protobuf.Type('Status')
    .add(new protobuf.Field('code', 1, 'int32'))
    .add(new protobuf.Field('message', 2, 'string'))
  root.define('google.rpc').add(status)
  root.resolveAll()
  return root
}

const root = loadRoot()

export const OTLP_TYPES = {
  traceRequest: root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest'),
  traceResponse: root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse'),
  metricsRequest: root.lookupType('opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest'),
  metricsResponse: root.lookupType('opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceResponse'),
  status: root.lookupType('google.rpc.Status'),
} as const

/** The `AnyValue` of an attribute, as decoded (int64 as a decimal string, bytes as a Buffer). */
export interface AnyValue {
  stringValue?: string
  boolValue?: boolean
  intValue?: string
  doubleValue?: number
  arrayValue?: { values?: AnyValue[] }
  kvlistValue?: { values?: KeyValue[] }
  bytesValue?: Uint8Array
}

export interface KeyValue {
  key?: string
  value?: AnyValue
}

export interface Resource {
  attributes?: KeyValue[]
}

export interface InstrumentationScope {
  name?: string
  version?: string
}

export interface SpanEvent {
  timeUnixNano?: string
  name?: string
  attributes?: KeyValue[]
}

export interface OtlpSpan {
  traceId?: Uint8Array
  spanId?: Uint8Array
  parentSpanId?: Uint8Array
  name?: string
  kind?: number
  startTimeUnixNano?: string
  endTimeUnixNano?: string
  attributes?: KeyValue[]
  events?: SpanEvent[]
  status?: { message?: string; code?: number }
}

export interface ExportTraceServiceRequest {
  resourceSpans?: {
    resource?: Resource
    scopeSpans?: { scope?: InstrumentationScope; spans?: OtlpSpan[] }[]
  }[]
}

export interface NumberDataPoint {
  attributes?: KeyValue[]
  startTimeUnixNano?: string
  timeUnixNano?: string
  asDouble?: number
  asInt?: string
}

export interface OtlpMetric {
  name?: string
  unit?: string
  gauge?: { dataPoints?: NumberDataPoint[] }
  /** aggregationTemporality: 1 delta, 2 cumulative */
  sum?: { dataPoints?: NumberDataPoint[]; aggregationTemporality?: number; isMonotonic?: boolean }
  histogram?: { dataPoints?: unknown[] }
  exponentialHistogram?: { dataPoints?: unknown[] }
  summary?: { dataPoints?: unknown[] }
}

export interface ExportMetricsServiceRequest {
  resourceMetrics?: {
    resource?: Resource
    scopeMetrics?: { scope?: InstrumentationScope; metrics?: OtlpMetric[] }[]
  }[]
}

/** OTLP `SpanKind` values (trace.proto). */
export const SPAN_KIND = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 } as const
/** OTLP `Status.StatusCode` values (trace.proto). */
export const STATUS_CODE = { unset: 0, ok: 1, error: 2 } as const
