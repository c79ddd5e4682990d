/**
 * The ops endpoints (app/ops.ts) and the one Prometheus renderer (core/metrics.ts): the renderer's
 * format rules; /healthz, /readyz and /metrics of a real ingest + detect pipeline on the embedded bus
 * and chDB, driven with fastify inject — lag and counters move as records arrive and are stored.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { observePipeline, OpsServer } from '../../app/ops.ts'
import { defaultDetectors, startPipeline } from '../../app/pipeline.ts'
import { EmbeddedBus } from '../../bus/embedded-bus.ts'
import type { ConsumerState, MessageConsumer } from '../../bus/transport.ts'
import { encodeContainer } from '../../contract/container.ts'
import { makeHwSample, makeSpan } from '../../contract/synthetic.ts'
import { codecs, TOPICS } from '../../contract/topics.ts'
import { createLogger } from '../../core/logger.ts'
import { Counters, Histogram, renderFamilies } from '../../core/metrics.ts'
import { Ingester } from '../../ingest/ingester.ts'
import { type ClickHouse, openClickHouse } from '../../store/client.ts'
import { migrate } from '../../store/migrations.ts'
import { checkHistogram, type Exposition, parseExposition, value } from '../helpers/prometheus.ts'
import { waitFor } from '../helpers/wait.ts'

const logger = createLogger('silent')

describe('renderFamilies', () => {
  test('HELP and TYPE once per family, merged sources, escaped label values', () => {
    const text = renderFamilies([
      {
        name: 'x_total',
        type: 'counter',
        help: 'first\nline',
        samples: [{ name: 'x_total', labels: { path: 'a"b\\c\nd' }, value: 1 }],
      },
      {
        name: 'x_total',
        type: 'counter',
        help: 'ignored',
        samples: [{ name: 'x_total', labels: {}, value: 2 }],
      },
      { name: 'g', type: 'gauge', help: 'g', samples: [{ name: 'g', labels: {}, value: Number.NaN }] },
    ])
    assert.equal(
      text,
      [
        '# HELP x_total first\\nline',
        '# TYPE x_total counter',
        'x_total{path="a\\"b\\\\c\\nd"} 1',
        'x_total 2',
        '# HELP g g',
        '# TYPE g gauge',
        'g NaN',
        '',
      ].join('\n'),
    )
    parseExposition(text)
  })

  test('one name with two types, or names Prometheus rejects, throw instead of rendering', () => {
    const fam = (name: string, type: 'counter' | 'gauge') => ({ name, type, help: 'h', samples: [] })
    assert.throws(() => renderFamilies([fam('a', 'counter'), fam('a', 'gauge')]), /both counter and gauge/)
    assert.throws(() => renderFamilies([fam('a-b', 'gauge')]), /invalid metric name/)
    assert.throws(
      () =>
        renderFamilies([
          { name: 'a', type: 'gauge', help: 'h', samples: [{ name: 'a', labels: { 'x-y': '1' }, value: 1 }] },
        ]),
      /invalid label name/,
    )
    const untyped = { name: 'a', samples: [] }
    assert.throws(() => renderFamilies([untyped, fam('a', 'gauge')]), /both untyped and gauge/)
  })

  test('counters, gauges and histograms of a component', () => {
    const c = new Counters('breakid_t')
      .describe('rows_total', 'counter', 'Rows')
      .describe('depth', 'gauge', 'Depth')
    c.inc('rows_total', 3, { table: 'spans' })
    c.inc('rows_total', 2, { table: 'spans' })
    c.inc('rows_total', 1, { table: 'alerts' })
    c.set('depth', 7)
    assert.equal(c.get('rows_total', { table: 'spans' }), 5)
    assert.equal(c.total('rows_total'), 6)
    assert.deepEqual(c.snapshot(), {
      'rows_total{table="spans"}': 5,
      'rows_total{table="alerts"}': 1,
      depth: 7,
    })
    const h = new Histogram('breakid_t_seconds', 'Latency', [0.01, 0.1, 1])
    for (const v of [0.005, 0.05, 0.05, 5]) h.observe(v, { table: 'spans' })
    const e = parseExposition(renderFamilies([...c.collect(), ...h.collect()]))
    assert.equal(e.types.get('breakid_t_rows_total'), 'counter')
    assert.equal(e.types.get('breakid_t_depth'), 'gauge')
    assert.equal(value(e, 'breakid_t_rows_total', { table: 'spans' }), 5)
    const hist = checkHistogram(e, 'breakid_t_seconds', { table: 'spans' })
    assert.deepEqual(
      hist.buckets.map((b) => [b.labels.le, b.value]),
      [
        ['0.01', 1],
        ['0.1', 3],
        ['1', 3],
        ['+Inf', 4],
      ],
    )
    assert.equal(hist.sum, 5.105)
  })
})

/** A consumer whose state the test sets: how the ops server maps each state, nothing else. */
function consumerIn(state: ConsumerState): MessageConsumer {
  return {
    state,
    groupId: 'g',
    topics: [TOPICS.alerts],
    committedMessages: 0,
    commit: async () => {},
    start: async () => {},
    stop: async () => {},
  }
}

describe('ops endpoints', () => {
  let dir = ''
  let ch: ClickHouse

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'breakid-ops-'))
    ch = openClickHouse({ dataDir: dir, database: 'breakid_ops' })
    await migrate(ch)
  })

  after(async () => {
    await ch?.close()
    await rm(dir, { recursive: true, force: true })
  })

  test('liveness fails only when a consumer crashed; readiness needs a start and a consuming consumer', async () => {
    const bus = new EmbeddedBus()
    const ops = new OpsServer({ logger, service: 'notify' })
    const get = async (url: string) => {
      const r = await ops.app.inject({ method: 'GET', url })
      return { code: r.statusCode, body: r.json() as { status: string; failed: Record<string, string> } }
    }
    try {
      assert.deepEqual(await get('/readyz'), {
        code: 503,
        body: { status: 'unavailable', failed: { service: 'starting' } },
      })
      const c = consumerIn('joining')
      ops.watchConsumer(bus, c)
      ops.markStarted()
      assert.deepEqual((await get('/readyz')).body.failed, { 'consumer g': 'consumer joining' })
      assert.equal((await get('/healthz')).code, 200)
      ;(c as { state: ConsumerState }).state = 'consuming'
      assert.deepEqual(await get('/readyz'), { code: 200, body: { status: 'ok', failed: {} } })
      ;(c as { state: ConsumerState }).state = 'crashed'
      assert.equal((await get('/readyz')).code, 503)
      const live = await get('/healthz')
      assert.equal(live.code, 503)
      assert.match(live.body.failed['consumer g']!, /crashed/)
      // a check that hangs is a failure after the timeout, not a hung probe
      const slow = new OpsServer({ logger, service: 'ingest', checkTimeoutMs: 50 })
      slow.addReadinessCheck('hangs', () => new Promise<undefined>(() => {}))
      slow.markStarted()
      const r = await slow.app.inject({ method: 'GET', url: '/readyz' })
      assert.equal(r.statusCode, 503)
      assert.match(r.json().failed.hangs, /no answer within 50 ms/)
      await slow.close()
    } finally {
      await ops.close()
    }
  })

  test('ingest + detect on the embedded bus: lag and counters move as records are stored', async () => {
    let bus = new EmbeddedBus()
    await bus.ensureTopics(Object.values(TOPICS))
    const send = async (from: number, n: number) => {
      const producer = bus.producer()
      const spans = Array.from({ length: n }, (_, i) => makeSpan(from + i))
      // containers of 10 spans: the lag counts messages, the record counters count records
      for (let i = 0; i < n; i += 10) {
        await producer.send(TOPICS.spans, [
          { key: 'engine-0', value: encodeContainer(codecs.span, spans.slice(i, i + 10)) },
        ])
      }
      await producer.send(TOPICS.hw, [{ key: 'engine-0', value: codecs.hw.encode(makeHwSample(from)) }])
      // a record that is not ours: dead-lettered with its reason
      await producer.send(TOPICS.spans, [{ key: null, value: Buffer.from('not avro') }])
    }
    await send(0, 100)

    const ops = new OpsServer({ logger, service: 'ingest' })
    const scrape = async (): Promise<Exposition> => {
      const r = await ops.app.inject({ method: 'GET', url: '/metrics' })
      assert.equal(r.statusCode, 200)
      assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/)
      return parseExposition(r.body)
    }
    const lag = (e: Exposition, group: string, topic: string) =>
      value(e, 'breakid_consumer_lag_messages', { group, topic, partition: '0' })

    // before the pipeline runs, the lag of its group is the whole backlog (10 containers + 1 garbage)
    const early = new Ingester({ transport: bus, clickhouse: ch, logger })
    ops.watchConsumer(bus, early.consumer)
    let e = await scrape()
    assert.equal(lag(e, 'breakid-ingest', TOPICS.spans), 11)
    assert.equal(lag(e, 'breakid-ingest', TOPICS.hw), 1)
    assert.equal(value(e, 'breakid_consumer_consuming', { group: 'breakid-ingest' }), 0)
    assert.equal(value(e, 'breakid_service_info', { service: 'ingest' }), 1)

    // A running pipeline on a fresh bus, the records sent once both groups read: on the embedded bus
    // a group that has not polled yet keeps nothing, and the detectors restore state before polling.
    bus = new EmbeddedBus()
    const pipeline = await startPipeline({
      transport: bus,
      logger,
      clickhouse: ch,
      detectors: defaultDetectors(),
    })
    const ready = new OpsServer({ logger, service: 'ingest' })
    observePipeline(ready, pipeline, bus, ch)
    ready.markStarted()
    await waitFor(() => pipeline.detector!.consumer.state === 'consuming', { message: 'detectors reading' })
    await send(0, 100)
    try {
      const rows = (x: Exposition) => value(x, 'breakid_ingest_rows_stored_total', { table: 'spans' })
      await waitFor(
        async () => {
          const r = await ready.app.inject({ method: 'GET', url: '/metrics' })
          e = parseExposition(r.body)
          return (
            e.samples.some(
              (s) => s.name === 'breakid_ingest_rows_stored_total' && s.labels.table === 'spans',
            ) &&
            rows(e) === 100 &&
            lag(e, 'breakid-ingest', TOPICS.spans) === 0 &&
            lag(e, 'breakid-detect', TOPICS.spans) === 0
          )
        },
        { message: 'the first 100 spans stored and both groups caught up' },
      )
      assert.equal((await ready.app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200)
      assert.equal(value(e, 'breakid_ingest_records_consumed_total', { topic: TOPICS.spans }), 101)
      assert.equal(
        value(e, 'breakid_ingest_dead_letters_total', { topic: TOPICS.spans, reason: 'not_single_object' }),
        1,
      )
      assert.ok(checkHistogram(e, 'breakid_ingest_insert_duration_seconds', { table: 'spans' }).count >= 1)
      assert.equal(value(e, 'breakid_detect_records_total', { topic: TOPICS.spans }), 100)
      assert.equal(
        value(e, 'breakid_detect_evaluations_total', { detector: 'stage_latency_regression' }),
        100,
      )
      assert.equal(value(e, 'breakid_consumer_consuming', { group: 'breakid-detect' }), 1)
      assert.ok(value(e, 'process_resident_memory_bytes', {}) > 0)

      await send(100, 50)
      await waitFor(
        async () => {
          e = parseExposition((await ready.app.inject({ method: 'GET', url: '/metrics' })).body)
          return rows(e) === 150 && lag(e, 'breakid-ingest', TOPICS.spans) === 0
        },
        { message: '50 more spans stored' },
      )
      assert.equal(
        value(e, 'breakid_consumer_high_watermark', {
          group: 'breakid-ingest',
          topic: TOPICS.spans,
          partition: '0',
        }),
        17,
      )
      assert.equal(value(e, 'breakid_detect_records_total', { topic: TOPICS.spans }), 150)
    } finally {
      await pipeline.stop()
      await ops.close()
    }
    const stopped = await ready.app.inject({ method: 'GET', url: '/readyz' })
    assert.equal(stopped.statusCode, 503)
    assert.equal(stopped.json().failed['consumer breakid-ingest'], 'consumer stopped')
    await ready.close()
  })
})
