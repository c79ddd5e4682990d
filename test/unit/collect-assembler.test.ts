/**
 * The trace assembler: parts of one request in any order and in separate exports, late parts, the
 * bounded wait (injected clock) and the bound on held parts; Triton's ensembles, cancelled requests
 * and gRPC; generic server spans with stage children.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api'
import { TraceAssembler } from '../../collect/assembler.ts'
import { defaultSpanMapping, parseSpanMapping } from '../../collect/generic/server-spans.ts'
import { decodeTraceRequest } from '../../collect/otlp/decode.ts'
import { flattenTraces, type ReceivedSpan } from '../../collect/otlp/spans.ts'
import type { Span } from '../../contract/records.ts'
import { Counters } from '../../core/metrics.ts'
import {
  assertDurations,
  hr,
  OtelJs,
  type TritonExpectation,
  toProtobuf,
  tritonRequest,
} from '../helpers/otel-js.ts'

const T0 = 1_765_000_000_000_000_000n
const PEER = '10.1.2.3'

function setup(opts: { maxWaitMs?: number; maxSpans?: number } = {}) {
  let nowMs = 0
  const counters = new Counters('t')
  const asm = new TraceAssembler({
    mapping: defaultSpanMapping(),
    fleet: 'f',
    counters,
    now: () => nowMs,
    ...opts,
  })
  return { asm, counters, advance: (ms: number) => (nowMs += ms) }
}

/** Spans through the real wire path: official serializer → protobuf → our decoder. */
function received(spans: Parameters<typeof toProtobuf>[0]): ReceivedSpan[] {
  return flattenTraces(decodeTraceRequest(toProtobuf(spans), 'protobuf'), PEER).spans
}

function byName(spans: ReceivedSpan[], name: string): ReceivedSpan[] {
  return spans.filter((s) => s.name === name)
}

function assertStages(span: Span, e: TritonExpectation) {
  assert.equal(span.trace_id, e.traceId)
  assert.equal(span.span_id, e.rootSpanId)
  assert.equal(span.model, e.model)
  assert.equal(span.request_id, e.requestId)
  assert.equal(span.timestamp_us, e.timestampUs)
  assertDurations(span, e)
}

/** a span's durations, µs: deserialize, queue wait, preprocess, compute, postprocess, serialize, total */
function durations(span: Span): number[] {
  return [
    span.deserialize_us,
    span.queue_wait_us,
    span.preprocess_us,
    span.compute_us,
    span.postprocess_us,
    span.serialize_us,
    span.total_us,
  ]
}

describe('trace assembler: Triton', () => {
  it('assembles one request whose three spans arrive in separate exports, in any order', () => {
    for (const order of [
      ['compute', 'InferRequest', 'resnet50'],
      ['InferRequest', 'resnet50', 'compute'],
      ['resnet50', 'compute', 'InferRequest'],
    ]) {
      const { asm, counters } = setup()
      const otel = new OtelJs({ 'service.name': 'triton-inference-server' })
      const { expected } = tritonRequest(otel, T0)
      const spans = received(otel.take())
      const out: Span[] = []
      for (const [i, name] of order.entries()) {
        const got = asm.add(byName(spans, name!))
        if (i < 2) assert.equal(got.length, 0, `emitted before its last part (${order.join(',')})`)
        out.push(...got)
      }
      assert.equal(out.length, 1)
      assertStages(out[0]!, expected)
      assert.equal(out[0]!.model_version, '1')
      assert.equal(out[0]!.status, 'ok')
      assert.equal(out[0]!.instance, PEER) // Triton names no instance: its address does
      assert.equal(out[0]!.fleet, 'f')
      assert.equal(asm.pendingSpans, 0)
      assert.equal(counters.get('assembled', { kind: 'triton' }), 1)
      assert.equal(counters.total('incomplete'), 0)
    }
  })

  it('interleaves many requests across batches and maps each to the microsecond', () => {
    const { asm } = setup()
    const otel = new OtelJs({ 'service.name': 'triton-inference-server', 'service.instance.id': 'triton-a' })
    const expectations = new Map<string, TritonExpectation>()
    for (let i = 0; i < 40; i++) {
      const { expected } = tritonRequest(otel, T0 + BigInt(i) * 7_000_003n, {
        model: i % 2 ? 'bert' : 'resnet50',
      })
      expectations.set(expected.traceId, expected)
    }
    const spans = received(otel.take())
    // three batches, each holding one kind of part of every request, roots first
    const out = [
      ...asm.add(byName(spans, 'InferRequest')),
      ...asm.add(spans.filter((s) => s.name === 'compute')),
      ...asm.add(spans.filter((s) => s.name === 'bert' || s.name === 'resnet50')),
    ]
    assert.equal(out.length, 40)
    for (const span of out) {
      assertStages(span, expectations.get(span.trace_id)!)
      assert.equal(span.instance, 'triton-a')
    }
  })

  it('maps the gRPC events to deserialize and serialize', () => {
    const { asm } = setup()
    const otel = new OtelJs({})
    const { expected } = tritonRequest(otel, T0, { grpc: true })
    const [span] = asm.add(received(otel.take()))
    assert.ok(span)
    assertStages(span, expected)
    assert.ok(span.deserialize_us > 0 && span.serialize_us > 0)
  })

  it('closes a request whose compute never comes after the wait, as cancelled and incomplete', () => {
    const { asm, counters, advance } = setup({ maxWaitMs: 30_000 })
    const otel = new OtelJs({})
    const { expected } = tritonRequest(otel, T0, { cancelled: true })
    assert.deepEqual(asm.add(received(otel.take())), [])
    advance(29_999)
    assert.deepEqual(asm.sweep(), [])
    advance(1)
    const [span] = asm.sweep()
    assert.ok(span)
    assertStages(span, expected)
    assert.equal(span.status, 'client_error')
    assert.equal(span.error_class, 'cancelled')
    assert.equal(counters.get('incomplete', { kind: 'triton', missing: 'compute' }), 1)
    assert.equal(asm.pendingSpans, 0)
    assert.equal(asm.openTraces, 0)
  })

  it('emits from the model span when the root never comes, and counts it', () => {
    const { asm, counters, advance } = setup({ maxWaitMs: 1000 })
    const otel = new OtelJs({})
    const { expected } = tritonRequest(otel, T0)
    const spans = received(otel.take()).filter((s) => s.name !== 'InferRequest')
    assert.deepEqual(asm.add(spans), [])
    advance(1000)
    const [span] = asm.sweep()
    assert.ok(span)
    assert.equal(span.model, 'resnet50')
    assert.equal(span.queue_wait_us, expected.queueWaitUs)
    assert.equal(span.compute_us, expected.computeUs)
    assert.equal(span.deserialize_us, 0)
    assert.equal(counters.get('incomplete', { kind: 'triton', missing: 'root' }), 1)
  })

  it('drops a part that arrives after its request went out, and counts it late', () => {
    const { asm, counters, advance } = setup({ maxWaitMs: 1000 })
    const otel = new OtelJs({})
    tritonRequest(otel, T0)
    const spans = received(otel.take())
    asm.add(spans.filter((s) => s.name !== 'compute'))
    advance(1000)
    assert.equal(asm.sweep().length, 1) // emitted without its compute
    assert.deepEqual(asm.add(byName(spans, 'compute')), [])
    assert.equal(counters.get('late_parts'), 1)
    assert.equal(asm.pendingSpans, 0) // not held as the start of a new trace
  })

  it('holds at most maxSpans parts: the oldest open trace is closed early and counted', () => {
    const { asm, counters } = setup({ maxSpans: 4 })
    const otel = new OtelJs({})
    for (let i = 0; i < 3; i++) tritonRequest(otel, T0 + BigInt(i) * 10_000_000n, { requestId: `r${i}` })
    const spans = received(otel.take())
    // roots and model spans only: no request can complete
    const parts = spans.filter((s) => s.name !== 'compute')
    const out = asm.add(parts)
    assert.ok(asm.pendingSpans <= 4, `held ${asm.pendingSpans}`)
    assert.equal(counters.get('evicted'), 1)
    assert.equal(out.length, 1)
    assert.equal(out[0]!.request_id, 'r0') // the oldest
    assert.equal(counters.get('incomplete', { kind: 'triton', missing: 'compute' }), 1)
  })

  it('sums the composing models of an ensemble', () => {
    const { asm } = setup()
    const otel = new OtelJs({})
    const tracer = otel.tracer('triton-server')
    const at = (us: number) => hr(T0 + BigInt(us) * 1000n)
    const root = tracer.startSpan('InferRequest', { kind: SpanKind.SERVER, startTime: at(0) }, ROOT_CONTEXT)
    root.addEvent('HTTP_RECV_START', at(1))
    root.addEvent('HTTP_RECV_END', at(11))
    const ens = tracer.startSpan(
      'pipeline',
      {
        kind: SpanKind.SERVER,
        startTime: at(20),
        attributes: {
          'triton.model_name': 'pipeline',
          'triton.model_version': 1,
          'triton.trace_parent_id': 0,
        },
      },
      trace.setSpan(ROOT_CONTEXT, root),
    )
    ens.addEvent('QUEUE_START', at(21))
    const step = (name: string, start: number) => {
      const m = tracer.startSpan(
        name,
        {
          kind: SpanKind.SERVER,
          startTime: at(start),
          attributes: { 'triton.model_name': name, 'triton.trace_parent_id': 1 },
        },
        trace.setSpan(ROOT_CONTEXT, ens),
      )
      m.addEvent('QUEUE_START', at(start + 1))
      const c = tracer.startSpan(
        'compute',
        { kind: SpanKind.SERVER, startTime: at(start + 5) },
        trace.setSpan(ROOT_CONTEXT, m),
      )
      c.addEvent('COMPUTE_START', at(start + 5))
      c.addEvent('COMPUTE_INPUT_END', at(start + 7))
      c.addEvent('COMPUTE_OUTPUT_START', at(start + 17))
      c.addEvent('COMPUTE_END', at(start + 20))
      c.end(at(start + 20))
      m.end(at(start + 21))
    }
    step('tokenize', 30)
    step('bert', 60)
    ens.end(at(90))
    root.addEvent('HTTP_SEND_START', at(95))
    root.addEvent('HTTP_SEND_END', at(99))
    root.end(at(100))
    const spans = received(otel.take())
    // the composing models' spans come last: the ensemble must wait for them
    assert.deepEqual(asm.add(spans.filter((s) => s.name === 'InferRequest' || s.name === 'pipeline')), [])
    const [span] = asm.add(spans.filter((s) => s.name !== 'InferRequest' && s.name !== 'pipeline'))
    assert.ok(span)
    assert.equal(span.model, 'pipeline')
    assert.deepEqual(durations(span), [10, 4 + 4, 2 + 2, 10 + 10, 3 + 3, 4, 100])
  })
})

describe('trace assembler: generic server spans', () => {
  function service() {
    const otel = new OtelJs({
      'service.name': 'ranker',
      'service.instance.id': 'ranker-1',
      'host.name': 'node-7',
    })
    const tracer = otel.tracer('app')
    const at = (us: number) => hr(T0 + BigInt(us) * 1000n)
    const server = tracer.startSpan(
      'POST /v1/rank',
      {
        kind: SpanKind.SERVER,
        startTime: at(0),
        attributes: {
          'http.response.status_code': 503,
          'error.type': 'Overloaded',
          'breakid.model': 'ranker-v3',
          'http.request.body.size': 2048,
        },
      },
      ROOT_CONTEXT,
    )
    const ctx = trace.setSpan(ROOT_CONTEXT, server)
    const child = (name: string, a: number, b: number, kind = SpanKind.INTERNAL) =>
      tracer.startSpan(name, { kind, startTime: at(a) }, ctx).end(at(b))
    child('preprocess', 5, 25)
    child('featurize', 25, 40) // a name the user maps to preprocess
    child('compute', 40, 90)
    child('GET redis', 90, 95, SpanKind.CLIENT) // not a stage: not held
    server.end(at(100))
    return received(otel.take())
  }

  it('maps the server span, its stage children and its semantic-convention attributes', () => {
    const counters = new Counters('t')
    const asm = new TraceAssembler({
      mapping: parseSpanMapping({ stages: { featurize: 'preprocess' } }),
      fleet: 'f',
      counters,
    })
    const [span, ...rest] = asm.add(service())
    assert.equal(rest.length, 0)
    assert.ok(span)
    assert.equal(span.model, 'ranker-v3')
    assert.equal(span.instance, 'ranker-1')
    assert.equal(span.host, 'node-7')
    assert.equal(span.status, 'server_error')
    assert.equal(span.error_class, 'Overloaded')
    assert.equal(span.request_bytes, 2048)
    assert.equal(span.preprocess_us, 20 + 15)
    assert.equal(span.compute_us, 50)
    assert.equal(span.total_us, 100)
    assert.equal(counters.get('spans_ignored'), 1)
    assert.equal(asm.pendingSpans, 0)
  })

  it('a stage span after its server span is late; one without a server span is dropped as orphan', () => {
    const { asm, counters, advance } = setup({ maxWaitMs: 1000 })
    const spans = service()
    const server = spans.filter((s) => s.kind === 2)
    const children = spans.filter((s) => s.kind !== 2)
    assert.equal(asm.add(server).length, 1)
    asm.add(children)
    // preprocess and compute; featurize is no stage under the default mapping, redis is a client span
    assert.equal(counters.get('late_parts'), 2)
    assert.equal(counters.get('spans_ignored'), 2)
    const other = service().filter((s) => s.name === 'compute')
    asm.add(other)
    advance(1000)
    assert.deepEqual(asm.sweep(), [])
    assert.equal(counters.get('dropped', { reason: 'orphan' }), 1)
  })

  it('rejects a mapping to a stage the contract does not have', () => {
    assert.throws(() => parseSpanMapping({ stages: { x: 'warmup' } }), /not one of deserialize/)
  })
})
