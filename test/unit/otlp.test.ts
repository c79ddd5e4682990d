/**
 * OTLP trace export against a real local OTLP/HTTP receiver (node:http on 127.0.0.1, POST /v1/traces,
 * the exporter's OTLP/JSON decoded as sent): the server span and its stage children with their
 * reconstructed times, errors and slow requests always kept, the sampling ratio honoured by trace id,
 * the bounded queue dropping its oldest, and the engine's traceparent joining up end to end.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { loadConfig } from '../../app/config.ts'
import { testEngine } from '../helpers/engine-harness.ts'
import { buildEngineApp } from '../../engine/http.ts'
import { getModel, toKServeInputs } from '../../engine/models/zoo.ts'
import {
  OtlpSpanExporter,
  parseSampleRatio,
  type OtlpExportOptions,
  traceIdFraction,
  tracesUrl,
} from '../../engine/telemetry/otlp.ts'
import { STAGES } from '../../contract/vocabulary.ts'
import { makeSpan } from '../../contract/synthetic.ts'
import { waitFor } from '../helpers/wait.ts'

interface OtlpAttr {
  key: string
  value: { stringValue?: string; intValue?: number | string; boolValue?: boolean; doubleValue?: number }
}
interface OtlpSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  startTimeUnixNano: string
  endTimeUnixNano: string
  attributes: OtlpAttr[]
  status: { code: number; message?: string }
}
interface Received {
  spans: OtlpSpan[]
  resources: OtlpAttr[][]
  requests: number
  contentTypes: string[]
}

/** A minimal OTLP/HTTP collector: accepts POST /v1/traces with OTLP/JSON and keeps every span. */
async function startReceiver(): Promise<{
  url: string
  got: Received
  reset(): void
  close(): Promise<void>
}> {
  const got: Received = { spans: [], resources: [], requests: 0, contentTypes: [] }
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end()
        return
      }
      got.requests++
      got.contentTypes.push(String(req.headers['content-type']))
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceSpans: { resource: { attributes: OtlpAttr[] }; scopeSpans: { spans: OtlpSpan[] }[] }[]
      }
      for (const rs of body.resourceSpans) {
        got.resources.push(rs.resource.attributes)
        for (const ss of rs.scopeSpans) got.spans.push(...ss.spans)
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    got,
    reset() {
      got.spans.length = 0
      got.resources.length = 0
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  }
}

const attr = (s: OtlpSpan, key: string) => {
  const v = s.attributes.find((a) => a.key === key)?.value
  if (!v) return undefined
  return v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.boolValue ?? v.doubleValue))
}
/** the requests' SERVER spans (a root, or the child of the caller's span from its traceparent) */
const servers = (got: Received) => got.spans.filter((s) => s.name.startsWith('infer '))
/** deterministic, uniformly spread trace ids */
const traceId = (i: number) => createHash('sha256').update(`trace-${i}`).digest('hex').slice(0, 32)

describe('OTLP trace export', () => {
  let rx: Awaited<ReturnType<typeof startReceiver>>
  const exporters: OtlpSpanExporter[] = []
  const make = (opts: Partial<OtlpExportOptions>) => {
    const e = new OtlpSpanExporter({ endpoint: rx.url, scheduledDelayMs: 60_000, ...opts })
    exporters.push(e)
    return e
  }
  before(async () => {
    rx = await startReceiver()
  })
  after(async () => {
    for (const e of exporters) await e.shutdown()
    await rx.close()
  })

  test('configuration: --otlp-endpoint > BREAKID_OTLP_ENDPOINT > OTEL_EXPORTER_OTLP_ENDPOINT; ratio 0..1', () => {
    assert.equal(loadConfig({}, {}).otlpEndpoint, undefined)
    assert.equal(
      loadConfig({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel:4318' }).otlpEndpoint,
      'http://otel:4318',
    )
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel:4318', BREAKID_OTLP_ENDPOINT: 'http://b:4318' }
    assert.equal(loadConfig({}, env).otlpEndpoint, 'http://b:4318')
    assert.equal(loadConfig({ 'otlp-endpoint': 'http://flag:4318' }, env).otlpEndpoint, 'http://flag:4318')
    assert.throws(() => loadConfig({ 'otlp-endpoint': 'grpc://x:4317' }, {}), /expected http/)
    assert.equal(parseSampleRatio('0'), 0)
    assert.equal(parseSampleRatio('0.1'), 0.1)
    assert.equal(parseSampleRatio('1'), 1)
    for (const bad of ['1.5', '-0.1', 'x', '']) assert.throws(() => parseSampleRatio(bad), /from 0 to 1/)
  })

  test('the endpoint gets /v1/traces appended unless it names it', () => {
    assert.equal(tracesUrl('http://c:4318'), 'http://c:4318/v1/traces')
    assert.equal(tracesUrl('http://c:4318/'), 'http://c:4318/v1/traces')
    assert.equal(tracesUrl('http://c:4318/v1/traces'), 'http://c:4318/v1/traces')
  })

  test('a server span per request with one child per stage, laid end to end from the arrival', async () => {
    rx.reset()
    const exp = make({ sampleRatio: 1 })
    const span = makeSpan(3, { batch_id: 'b-7', batch_size: 5, request_bytes: 321, response_bytes: 99 })
    exp.observe(span)
    await exp.forceFlush()
    assert.equal(rx.got.contentTypes.at(-1), 'application/json')
    assert.equal(rx.got.spans.length, 1 + STAGES.length)
    const [server] = servers(rx.got)
    assert.ok(server)
    assert.equal(server.traceId, span.trace_id)
    assert.equal(server.spanId, span.span_id)
    assert.equal(server.kind, 2, 'SERVER (OTLP kind 2)')
    assert.equal(server.name, 'infer mlp')
    assert.equal(BigInt(server.startTimeUnixNano), BigInt(span.timestamp_us) * 1000n)
    assert.equal(BigInt(server.endTimeUnixNano), BigInt(span.timestamp_us + span.total_us) * 1000n)
    assert.equal(attr(server, 'breakid.model'), 'mlp')
    assert.equal(attr(server, 'breakid.model_version'), '1')
    assert.equal(attr(server, 'breakid.batch_id'), 'b-7')
    assert.equal(attr(server, 'breakid.batch_size'), 5)
    assert.equal(attr(server, 'breakid.status'), 'ok')
    assert.equal(attr(server, 'breakid.cache_hit'), false)
    assert.equal(attr(server, 'breakid.request_bytes'), 321)
    assert.equal(attr(server, 'breakid.response_bytes'), 99)
    assert.equal(attr(server, 'breakid.request_id'), span.request_id)
    assert.equal(attr(server, 'error.type'), undefined)
    assert.equal(server.status.code, 0)
    const resource = rx.got.resources.at(-1)!
    assert.equal(resource.find((a) => a.key === 'service.instance.id')?.value.stringValue, 'engine-0')

    const children = rx.got.spans.filter((s) => s.parentSpanId === span.span_id)
    assert.deepEqual(
      children.map((c) => c.name),
      [...STAGES],
    )
    let at = BigInt(span.timestamp_us) * 1000n
    for (const c of children) {
      assert.equal(c.traceId, span.trace_id)
      assert.equal(c.kind, 1, 'INTERNAL')
      assert.match(c.spanId, /^[0-9a-f]{16}$/)
      assert.notEqual(c.spanId, span.span_id)
      const durUs = span[`${c.name as (typeof STAGES)[number]}_us` as const]
      assert.equal(BigInt(c.startTimeUnixNano), at, `${c.name} starts where the previous stage ended`)
      assert.equal(BigInt(c.endTimeUnixNano) - BigInt(c.startTimeUnixNano), BigInt(durUs) * 1000n, c.name)
      assert.ok(BigInt(c.endTimeUnixNano) <= BigInt(server.endTimeUnixNano), `${c.name} inside its parent`)
      at = BigInt(c.endTimeUnixNano)
    }
    assert.equal(new Set(children.map((c) => c.spanId)).size, STAGES.length)
  })

  test('errors are always exported, even at sample ratio 0', async () => {
    rx.reset()
    const exp = make({ sampleRatio: 0 })
    const errorIds = new Set<string>()
    for (let i = 0; i < 300; i++) {
      const failed = i % 60 === 7
      const s = makeSpan(i, {
        trace_id: traceId(i),
        total_us: 1500, // all equally fast: none is slow
        ...(failed
          ? { status: i % 120 === 7 ? 'server_error' : 'client_error', error_class: 'BREAKID_QUEUE_FULL' }
          : {}),
      })
      if (failed) errorIds.add(s.request_id)
      exp.observe(s)
    }
    await exp.forceFlush()
    const got = servers(rx.got)
    assert.deepEqual(new Set(got.map((s) => String(attr(s, 'breakid.request_id')))), errorIds)
    for (const s of got) {
      assert.equal(attr(s, 'error.type'), 'BREAKID_QUEUE_FULL')
      assert.equal(attr(s, 'breakid.sampled_by'), 'error')
      // server errors are ERROR spans; client errors keep status unset (HTTP semantic conventions)
      assert.equal(s.status.code, attr(s, 'breakid.status') === 'server_error' ? 2 : 0)
    }
    assert.equal(exp.kept.error, errorIds.size)
    assert.equal(exp.exported, errorIds.size)
  })

  test('the sampling ratio is honoured, decided by the trace id', async () => {
    rx.reset()
    const ratio = 0.25
    const exp = make({ sampleRatio: ratio, maxQueueSize: 10_000 })
    const spans = Array.from({ length: 4000 }, (_, i) =>
      makeSpan(i, { trace_id: traceId(i), total_us: 1500 }),
    )
    for (const s of spans) exp.observe(s)
    await exp.forceFlush()
    const expected = spans.filter((s) => traceIdFraction(s.trace_id) < ratio * 2 ** 32).map((s) => s.trace_id)
    const got = servers(rx.got).map((s) => s.traceId)
    assert.deepEqual(new Set(got), new Set(expected), 'exactly the traces whose id falls under the ratio')
    assert.equal(got.length, expected.length)
    // binomial(4000, 0.25): sd ≈ 27, so ±150 fails only if the decision ignores the ratio
    assert.ok(Math.abs(got.length - 1000) < 150, `kept ${got.length} of 4000 at ratio ${ratio}`)
    assert.equal(exp.kept.ratio, got.length)
  })

  test('the slowest requests are kept: above the rolling p99 of their model', async () => {
    rx.reset()
    const exp = make({ sampleRatio: 0, slowWindow: 500, slowMinSamples: 100, slowRecomputeEvery: 10 })
    const slowIds = new Set<string>()
    for (let i = 0; i < 1000; i++) {
      // ordinary requests spread over 1000..1999 µs; every 200th takes 50 ms (under 1 % of the window)
      const slow = i >= 200 && i % 200 === 50
      const s = makeSpan(i, { trace_id: traceId(i), total_us: slow ? 50_000 : 1000 + ((i * 37) % 1000) })
      if (slow) slowIds.add(s.request_id)
      exp.observe(s)
    }
    // the same totals under another model have their own window: its first requests are not "slow"
    exp.observe(makeSpan(5000, { model: 'cnn', trace_id: traceId(5000), total_us: 50_000 }))
    await exp.forceFlush()
    const threshold = exp.slowThresholdUs('mlp')
    assert.ok(threshold >= 1900 && threshold < 50_000, `p99 threshold ${threshold} µs`)
    const got = servers(rx.got)
    const gotSlow = new Set(
      got
        .filter((s) => attr(s, 'breakid.sampled_by') === 'slow')
        .map((s) => String(attr(s, 'breakid.request_id'))),
    )
    for (const id of slowIds) assert.ok(gotSlow.has(id), `${id} kept as slow`)
    // at most ~1 % of the ordinary ones are above a p99 threshold
    assert.ok(
      gotSlow.size - slowIds.size <= 15,
      `${gotSlow.size - slowIds.size} ordinary requests kept as slow`,
    )
    assert.ok(!got.some((s) => attr(s, 'breakid.model') === 'cnn'), 'cnn has no threshold yet')
  })

  test('a full queue drops its oldest spans and counts them; flush and shutdown are idempotent', async () => {
    rx.reset()
    const exp = make({ sampleRatio: 1, maxQueueSize: 10, maxExportBatchSize: 10 })
    // synchronously, in one turn of the event loop: no export can start in between
    for (let i = 0; i < 25; i++) exp.observe(makeSpan(i))
    assert.equal(exp.queued, 10)
    assert.equal(exp.dropped, 15)
    await exp.forceFlush()
    await exp.forceFlush()
    assert.deepEqual(
      servers(rx.got).map((s) => attr(s, 'breakid.request_id')),
      Array.from({ length: 10 }, (_, i) => `req-${15 + i}`),
    )
    await exp.shutdown()
    await exp.shutdown()
    exp.observe(makeSpan(99))
    assert.equal(exp.queued, 0, 'nothing is taken after shutdown')
    assert.equal(exp.exported, 10)
  })

  test('a collector that rejects the batch: counted as failed, flush still returns', async () => {
    const rejecting = http.createServer((req, res) => {
      req.resume()
      req.on('end', () => res.writeHead(400, { 'content-type': 'application/json' }).end('{}'))
    })
    await new Promise<void>((r) => rejecting.listen(0, '127.0.0.1', r))
    try {
      const { port } = rejecting.address() as AddressInfo
      const exp = make({ endpoint: `http://127.0.0.1:${port}`, sampleRatio: 1 })
      for (let i = 0; i < 3; i++) exp.observe(makeSpan(i))
      await exp.forceFlush()
      assert.equal(exp.failed, 3)
      assert.equal(exp.exported, 0)
      assert.equal(exp.queued, 0, 'a rejected batch is not retried forever')
    } finally {
      await new Promise<void>((r) => rejecting.close(() => r()))
    }
  })

  test('exports on its own timer, off the request path', async () => {
    rx.reset()
    const exp = make({ sampleRatio: 1, scheduledDelayMs: 20 })
    exp.observe(makeSpan(1))
    assert.equal(rx.got.spans.length, 0, 'observe does not export synchronously')
    await waitFor(() => exp.exported === 1, { message: 'the timed export' })
    assert.equal(servers(rx.got).length, 1)
  })

  test('end to end: the engine span joins the client traceparent and is exported with its stages', async () => {
    rx.reset()
    const exp = make({ sampleRatio: 1 })
    const engine = testEngine({ spanObservers: [exp.observe] })
    await engine.start()
    const app = buildEngineApp(engine)
    try {
      const clientTrace = '4bf92f3577b34da6a3ce929d0e0e4736'
      const res = await app.inject({
        method: 'POST',
        url: '/v2/models/mlp/infer',
        headers: { traceparent: `00-${clientTrace}-00f067aa0ba902b7-01` },
        payload: { inputs: toKServeInputs(getModel('mlp').inputGenerator(1, 2)) },
      })
      assert.equal(res.statusCode, 200)
      const bad = await app.inject({ method: 'POST', url: '/v2/models/mlp/infer', payload: { inputs: [] } })
      assert.equal(bad.statusCode, 400)
      await exp.forceFlush()
      const [server] = servers(rx.got).filter((s) => s.traceId === clientTrace)
      assert.ok(server, 'the server span carries the client trace id')
      assert.equal(server.parentSpanId, '00f067aa0ba902b7', "a child of the client's span, not a root")
      const header = String(res.headers.traceparent)
      assert.equal(
        header,
        `00-${clientTrace}-${server.spanId}-01`,
        'the response traceparent names the exported span',
      )
      const children = rx.got.spans.filter((s) => s.parentSpanId === server.spanId)
      assert.deepEqual(
        children.map((c) => c.name),
        [...STAGES],
      )
      assert.ok(
        BigInt(children.find((c) => c.name === 'compute')!.endTimeUnixNano) >
          BigInt(children.find((c) => c.name === 'compute')!.startTimeUnixNano),
        'compute took time',
      )
      const rejected = servers(rx.got).filter((s) => attr(s, 'breakid.status') === 'client_error')
      assert.equal(rejected.length, 1)
      assert.ok(!rejected[0]!.parentSpanId, 'without a traceparent the server span is a root')
    } finally {
      await app.close()
      await engine.stop()
    }
  })
})
