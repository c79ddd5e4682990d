/**
 * The collector over real HTTP on loopback: OTLP/HTTP answers as the specification says (200 with or
 * without partial success, 400, 413, 415, 503, each in the request's encoding), gzip bodies, records
 * on the embedded bus in the contract's encoding, and stop() draining open traces.
 */
import assert from 'node:assert/strict'
import { gzipSync } from 'node:zlib'
import { afterEach, describe, it } from 'node:test'
import pino from 'pino'
import { Collector, type CollectorOptions } from '../../collect/collector.ts'
import { OTLP_TYPES } from '../../collect/otlp/schema.ts'
import { EmbeddedBus } from '../../bus/embedded-bus.ts'
import type { MessageProducer } from '../../bus/transport.ts'
import { BusRecords } from '../helpers/bus-records.ts'
import { assertDurations, OtelJs, toJson, toProtobuf, tritonRequest } from '../helpers/otel-js.ts'

const T0 = 1_765_000_000_000_000_000n
const logger = pino({ level: 'silent' })
const running: { stop(): Promise<void> }[] = []

afterEach(async () => {
  for (const r of running.splice(0).reverse()) await r.stop()
})

async function start(opts: Partial<CollectorOptions> = {}, producer?: MessageProducer) {
  const bus = new EmbeddedBus()
  const records = new BusRecords(bus)
  await records.start()
  const collector = new Collector({ producer: producer ?? bus.producer(), logger, otlpPort: 0, ...opts })
  await collector.start()
  running.push(records, collector)
  const post = (path: string, body: Buffer, headers: Record<string, string>) =>
    fetch(`${collector.otlpUrl}${path}`, { method: 'POST', body: new Uint8Array(body), headers })
  return { bus, records, collector, post }
}

const PROTO = { 'content-type': 'application/x-protobuf' }
const JSON_CT = { 'content-type': 'application/json' }

function tritonSpans(n = 1) {
  const otel = new OtelJs({ 'service.name': 'triton-inference-server' })
  const expected = Array.from(
    { length: n },
    (_, i) => tritonRequest(otel, T0 + BigInt(i) * 5_000_000n).expected,
  )
  return { spans: otel.take(), expected }
}

async function statusOf(res: Response) {
  const body = Buffer.from(await res.arrayBuffer())
  const ct = res.headers.get('content-type')
  if (ct === 'application/json') return JSON.parse(body.toString()) as { code: number; message: string }
  return OTLP_TYPES.status.toObject(OTLP_TYPES.status.decode(body)) as { code: number; message: string }
}

describe('OTLP/HTTP receiver', () => {
  it('accepts Triton spans in separate protobuf exports and puts one span per request on the bus', async () => {
    const { post, records, collector } = await start()
    const { spans, expected } = tritonSpans(3)
    for (const name of ['compute', 'resnet50', 'InferRequest']) {
      const res = await post('/v1/traces', toProtobuf(spans.filter((s) => s.name === name)), PROTO)
      assert.equal(res.status, 200)
      assert.equal(res.headers.get('content-type'), 'application/x-protobuf')
      assert.equal((await res.arrayBuffer()).byteLength, 0) // full success: partial_success unset
    }
    await records.drained()
    assert.equal(records.spans.length, 3)
    for (const e of expected) {
      const s = records.spans.find((x) => x.trace_id === e.traceId)!
      assertDurations(s, e)
      assert.equal(s.instance, '127.0.0.1')
    }
    assert.equal(
      collector.counters.get('otlp_requests', { signal: 'traces', encoding: 'protobuf', status: '200' }),
      3,
    )
    assert.equal(collector.counters.get('records_sent', { topic: 'breakid.spans.v1' }), 3)
  })

  it('answers partial success in JSON when some spans are malformed, gzip bodies accepted', async () => {
    const { post, records } = await start()
    const { spans } = tritonSpans(1)
    const json = JSON.parse(toJson(spans).toString())
    json.resourceSpans[0].scopeSpans[0].spans.push({ traceId: '00', spanId: 'abcd', name: 'broken' })
    const res = await post('/v1/traces', gzipSync(Buffer.from(JSON.stringify(json))), {
      ...JSON_CT,
      'content-encoding': 'gzip',
    })
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('content-type'), 'application/json')
    const body = (await res.json()) as { partialSuccess: { rejectedSpans: string; errorMessage: string } }
    assert.equal(body.partialSuccess.rejectedSpans, '1')
    assert.match(body.partialSuccess.errorMessage, /bad trace id/)
    await records.drained()
    assert.equal(records.spans.length, 1) // the good request still made it
  })

  it('400 for undecodable bodies, 413 over the limit (also after gunzip), 415 for other types and encodings', async () => {
    const { post, collector } = await start({ bodyLimitBytes: 64 * 1024 })
    let res = await post('/v1/traces', Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f]), PROTO)
    assert.equal(res.status, 400)
    assert.equal((await statusOf(res)).code, 3)
    res = await post('/v1/traces', Buffer.from('{"resourceSpans":7}'), JSON_CT)
    assert.equal(res.status, 400)
    assert.match((await statusOf(res)).message, /resourceSpans: expected an array/)
    res = await post('/v1/traces', Buffer.alloc(70 * 1024), PROTO)
    assert.equal(res.status, 413)
    res = await post('/v1/traces', gzipSync(Buffer.alloc(1024 * 1024)), {
      ...PROTO,
      'content-encoding': 'gzip',
    })
    assert.equal(res.status, 413)
    assert.match((await statusOf(res)).message, /after gunzip/)
    res = await post('/v1/traces', gzipSync(Buffer.from('x')).subarray(0, 5), {
      ...PROTO,
      'content-encoding': 'gzip',
    })
    assert.equal(res.status, 400)
    res = await post('/v1/traces', Buffer.from('x'), { 'content-type': 'text/plain' })
    assert.equal(res.status, 415)
    res = await post('/v1/traces', Buffer.from('x'), { ...JSON_CT, 'content-encoding': 'br' })
    assert.equal(res.status, 415)
    assert.equal(res.headers.get('content-type'), 'application/json')
    res = await post('/v1/traces', Buffer.alloc(0), PROTO)
    assert.equal(res.status, 200) // an empty request is a success
    assert.equal(
      collector.counters.get('otlp_requests', { signal: 'traces', encoding: 'protobuf', status: '413' }),
      2,
    )
  })

  it('503 with Retry-After while the in-flight bound is reached; the refused export is not consumed', async () => {
    let release: () => void = () => {}
    const gate = new Promise<void>((r) => {
      release = r
    })
    const bus = new EmbeddedBus()
    let sending = false
    const slow: MessageProducer = {
      start: async () => {},
      stop: async () => {},
      send: async (topic, messages) => {
        sending = true
        await gate
        await bus.producer().send(topic, messages)
      },
    }
    const { post, collector } = await start({ maxPendingRecords: 1 }, slow)
    const a = tritonSpans(1)
    const b = tritonSpans(1)
    const first = post('/v1/traces', toProtobuf(a.spans), PROTO)
    for (let i = 0; i < 400 && !sending; i++) await new Promise((r) => setTimeout(r, 5))
    assert.ok(sending, 'the first export reached the producer')
    const refused = await post('/v1/traces', toProtobuf(b.spans), PROTO)
    assert.equal(refused.status, 503)
    assert.equal(refused.headers.get('retry-after'), '1')
    assert.equal(collector.counters.get('sink_refused'), 3)
    release()
    assert.equal((await first).status, 200)
    const retried = await post('/v1/traces', toProtobuf(b.spans), PROTO)
    assert.equal(retried.status, 200)
    assert.equal(collector.counters.get('assembled', { kind: 'triton' }), 2) // nothing was lost to the refusal
    assert.equal(collector.counters.get('late_parts'), 0)
  })

  it('maps OTLP metrics (DCGM gauges pushed by a collector) to hardware samples', async () => {
    const { post, records } = await start()
    const body = (atSec: number, util: number) =>
      Buffer.from(
        JSON.stringify({
          resourceMetrics: [
            {
              resource: {
                attributes: [{ key: 'service.instance.id', value: { stringValue: 'gpu-node-1' } }],
              },
              scopeMetrics: [
                {
                  metrics: [
                    {
                      name: 'DCGM_FI_DEV_GPU_UTIL',
                      gauge: {
                        dataPoints: [
                          {
                            timeUnixNano: String(BigInt(atSec) * 1_000_000_000n),
                            asInt: String(util),
                            attributes: [
                              { key: 'UUID', value: { stringValue: 'GPU-abc' } },
                              { key: 'gpu', value: { stringValue: '0' } },
                            ],
                          },
                          { timeUnixNano: '1', attributes: [] }, // no value: rejected
                        ],
                      },
                    },
                  ],
                },
              ],
            },
          ],
        }),
      )
    let res = await post('/v1/metrics', body(1_765_000_000, 80), JSON_CT)
    assert.equal(res.status, 200)
    assert.equal(
      ((await res.json()) as { partialSuccess: { rejectedDataPoints: string } }).partialSuccess
        .rejectedDataPoints,
      '1',
    )
    res = await post('/v1/metrics', body(1_765_000_010, 40), JSON_CT)
    assert.equal(res.status, 200)
    await records.drained()
    assert.equal(records.hw.length, 1)
    const [s] = records.hw
    assert.equal(s!.instance, 'gpu-node-1')
    assert.equal(s!.interval_ms, 10_000)
    assert.deepEqual(
      s!.devices.map((d) => [d.device, d.utilization]),
      [['GPU-abc', 0.4]],
    )
    assert.equal(s!.executor_busy, 0.4)
  })

  it('stop() emits the requests still waiting for parts, counted incomplete', async () => {
    const { post, records, collector } = await start()
    const { spans } = tritonSpans(2)
    await post('/v1/traces', toProtobuf(spans.filter((s) => s.name !== 'compute')), PROTO)
    assert.equal(collector.assembler.pendingSpans, 4)
    await records.drained()
    assert.equal(records.spans.length, 0)
    await collector.stop()
    await records.drained()
    assert.equal(records.spans.length, 2)
    assert.equal(collector.assembler.pendingSpans, 0)
    assert.equal(collector.counters.get('incomplete', { kind: 'triton', missing: 'compute' }), 2)
  })
})
