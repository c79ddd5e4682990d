/**
 * OTLP decoding: payloads encoded by the official OpenTelemetry JS serializers (protobuf and JSON)
 * decode to the same spans, OTLP/JSON's deviations from the proto3 mapping are honoured, and bad
 * payloads fail with a path.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  decodeMetricsRequest,
  decodeTraceRequest,
  encodeTraceResponse,
  OtlpDecodeError,
} from '../../collect/otlp/decode.ts'
import { OTLP_TYPES } from '../../collect/otlp/schema.ts'
import { flattenTraces, microsBetween } from '../../collect/otlp/spans.ts'
import { OtelJs, toJson, toProtobuf, tritonRequest } from '../helpers/otel-js.ts'

const T0 = 1_765_000_000_123_456_789n

function tritonBatch() {
  const otel = new OtelJs({ 'service.name': 'triton-inference-server' })
  const { expected } = tritonRequest(otel, T0)
  return { spans: otel.take(), expected }
}

describe('OTLP decoding', () => {
  it('protobuf and JSON from the official serializers decode to the same spans', () => {
    const { spans, expected } = tritonBatch()
    const fromProto = flattenTraces(decodeTraceRequest(toProtobuf(spans), 'protobuf'), '10.0.0.5')
    const fromJson = flattenTraces(decodeTraceRequest(toJson(spans), 'json'), '10.0.0.5')
    assert.equal(fromProto.spans.length, 3)
    assert.equal(fromProto.rejectedCount, 0)
    assert.deepEqual(fromJson.spans, fromProto.spans)
    const root = fromProto.spans.find((s) => s.name === 'InferRequest')!
    assert.equal(root.traceId, expected.traceId)
    assert.equal(root.spanId, expected.rootSpanId)
    assert.equal(root.parentSpanId, '')
    assert.equal(root.kind, 2)
    assert.equal(root.scope, 'triton-server')
    assert.equal(root.resource['service.name'], 'triton-inference-server')
    assert.equal(root.startNs, T0) // nanoseconds survive exactly (a double would not hold them)
    const model = fromProto.spans.find((s) => s.name === 'resnet50')!
    assert.equal(model.parentSpanId, root.spanId)
    assert.equal(model.attributes['triton.model_version'], 1)
    assert.equal(model.attributes['triton.request_id'], expected.requestId)
    assert.deepEqual(
      model.events.map((e) => e.name),
      ['REQUEST_START', 'QUEUE_START', 'REQUEST_END'],
    )
  })

  it('OTLP/JSON: hex ids, enum names or numbers, int64 as strings or numbers, NaN/Infinity doubles', () => {
    const body = {
      resourceSpans: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'svc' } }] },
          scopeSpans: [
            {
              scope: { name: 's' },
              spans: [
                {
                  traceId: '5B8EFFF798038103D269B633813FC60C', // case-insensitive hex
                  spanId: 'eee19b7ec3c1b174',
                  name: 'a',
                  kind: 'SPAN_KIND_SERVER',
                  startTimeUnixNano: '1000000000000001',
                  endTimeUnixNano: 2000000000000000, // a number is accepted where a double holds it exactly
                  attributes: [
                    { key: 'n', value: { intValue: '9007199254740993' } }, // over 2^53: kept exact
                    { key: 'd', value: { doubleValue: 'NaN' } },
                    { key: 'i', value: { doubleValue: '-Infinity' } },
                  ],
                  status: { code: 2, message: 'boom' },
                  unknownFutureField: { anything: true },
                  dropped_attributes_count: 'snake_case keys are unknown fields: ignored',
                },
              ],
            },
          ],
        },
      ],
    }
    const req = decodeTraceRequest(Buffer.from(JSON.stringify(body)), 'json')
    const [span] = flattenTraces(req, '::ffff:127.0.0.1').spans
    assert.ok(span)
    assert.equal(span.traceId, '5b8efff798038103d269b633813fc60c')
    assert.equal(span.kind, 2)
    assert.equal(span.startNs, 1000000000000001n)
    assert.equal(span.endNs, 2000000000000000n)
    assert.equal(span.attributes.n, '9007199254740993')
    assert.ok(Number.isNaN(span.attributes.d))
    assert.equal(span.attributes.i, Number.NEGATIVE_INFINITY)
    assert.equal(span.statusCode, 2)
  })

  it('undecodable payloads fail with the path of the bad value', () => {
    const bad = (body: string) => () => decodeTraceRequest(Buffer.from(body), 'json')
    assert.throws(
      bad('{"resourceSpans": {}}'),
      (e: Error) => e instanceof OtlpDecodeError && /resourceSpans: expected an array/.test(e.message),
    )
    assert.throws(
      bad('{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}'),
      /spans\[0\]\.traceId: expected hex/,
    )
    assert.throws(
      bad('{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SERVER"}]}]}]}'),
      /kind: expected an integer/,
    )
    assert.throws(
      bad('{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":1.5}]}]}]}'),
      /64-bit integer/,
    )
    assert.throws(bad('not json'), OtlpDecodeError)
    assert.throws(
      () => decodeTraceRequest(Buffer.from([0x0a, 0xff, 0xff, 0xff]), 'protobuf'),
      OtlpDecodeError,
    )
  })

  it('an empty body is an empty request', () => {
    assert.deepEqual(decodeTraceRequest(Buffer.alloc(0), 'protobuf'), {})
    assert.deepEqual(decodeMetricsRequest(Buffer.alloc(0), 'json'), {})
  })

  it('malformed spans are rejected one by one, the rest kept', () => {
    const { spans } = tritonBatch()
    const req = decodeTraceRequest(toProtobuf(spans), 'protobuf')
    const list = req.resourceSpans![0]!.scopeSpans![0]!.spans!
    list[0]!.traceId = Buffer.alloc(16) // all zero: invalid
    list[1]!.endTimeUnixNano = '1' // ends before it starts
    const flat = flattenTraces(req, 'x')
    assert.equal(flat.spans.length, 1)
    assert.deepEqual(flat.rejected, { bad_trace_id: 1, bad_times: 1 })
  })

  it('partial success answers encode in both encodings', () => {
    const proto = encodeTraceResponse('protobuf', { rejected: 3, message: 'why' })
    const decoded = OTLP_TYPES.traceResponse.toObject(OTLP_TYPES.traceResponse.decode(proto), {
      longs: Number,
    })
    assert.deepEqual(decoded, { partialSuccess: { rejectedSpans: 3, errorMessage: 'why' } })
    assert.deepEqual(JSON.parse(encodeTraceResponse('json', { rejected: 3, message: 'why' }).toString()), {
      partialSuccess: { rejectedSpans: '3', errorMessage: 'why' },
    })
    assert.equal(encodeTraceResponse('protobuf').length, 0) // full success: partial_success unset
  })

  it('microsecond durations truncate the nanosecond difference', () => {
    assert.equal(microsBetween(1_000n, 2_999n), 1)
    assert.equal(microsBetween(5_000n, 4_000n), 0)
  })
})
