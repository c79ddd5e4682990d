/**
 * The whole pipeline over a real Apache Kafka broker (infra/kafka/kafka.sh, or KAFKA_BROKERS):
 * engine → Avro → Kafka → ingest + detect + notify → chDB + webhook. Known traffic in, exact counts
 * out, and exactly one alert for one injected fault. Never skipped: without a broker it fails.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { startReceiver } from '../../notify/receiver.ts'
import { StarvationDetector } from '../../detectors/starvation/detector.ts'
import { Engine } from '../../engine/engine.ts'
import { FaultSchedule } from '../../engine/faults.ts'
import { buildEngineApp } from '../../engine/http.ts'
import { runLoad } from '../../engine/loadgen.ts'
import { getModel, toKServeInputs } from '../../engine/models/zoo.ts'
import { TelemetryEmitter } from '../../engine/telemetry/emitter.ts'
import { KafkaWorkerProducer } from '../../bus/kafka-worker.ts'
import { type ClickHouse, openClickHouse } from '../../store/client.ts'
import { migrate } from '../../store/migrations.ts'
import { codecs, TOPICS } from '../../contract/topics.ts'
import { createLogger } from '../../core/logger.ts'
import { KafkaTransport } from '../../bus/kafka.ts'
import { loadConfig } from '../../app/config.ts'
import { startPipeline } from '../../app/pipeline.ts'
import { telemetryProducer } from '../../app/runtime.ts'
import { kafkaBrokers, requireKafka, testKafka } from '../helpers/kafka.ts'
import { makeHwSample, makeSpan } from '../../contract/synthetic.ts'
import { waitFor } from '../helpers/wait.ts'

const logger = createLogger(process.env.BREAKID_TEST_LOG ?? 'silent')
let ch: ClickHouse

before(async () => {
  await requireKafka()
  ch = openClickHouse({ dataDir: mkdtempSync(join(tmpdir(), 'breakid-e2e-')), database: 'e2e' })
  await migrate(ch)
})

after(async () => {
  await ch?.close()
})

async function scalar(sql: string): Promise<number> {
  const rs = await ch.client.query({ query: sql, format: 'JSONEachRow' })
  const rows = await rs.json<Record<string, string | number>>()
  return Number(Object.values(rows[0]!)[0])
}

function transport(prefix: string) {
  return new KafkaTransport({
    brokers: kafkaBrokers(),
    logger,
    topicPrefix: prefix,
    handlerRetryDelayMs: 100,
  })
}

test('N requests through the engine become exactly N spans in ClickHouse and one delivered alert', async () => {
  const prefix = `e2e-${randomBytes(4).toString('hex')}.`
  const kafka = transport(prefix)
  await kafka.ensureTopics(Object.values(TOPICS), 2)
  await ch.client.command({ query: 'TRUNCATE TABLE spans' })
  await ch.client.command({ query: 'TRUNCATE TABLE alerts' })

  const secret = 'e2e-secret'
  const receiver = await startReceiver({ secret })
  const pipeline = await startPipeline({
    transport: kafka,
    logger,
    clickhouse: ch,
    // 250 ms samples: the same detector, on a faster clock, so the test takes seconds, not minutes
    // (its event-time warm-up scaled with it: 2 s instead of 15)
    detectors: [new StarvationDetector({ warmupSamples: 8, warmupMs: 2000 })],
    routes: [{ url: receiver.url, secret }],
  })
  // Preprocessing slowed to 40 ms per request with 4 workers: 100 req/s of capacity for 150 req/s.
  const faults = new FaultSchedule([{ type: 'data_starvation', startMs: 4_000, endMs: 7_000, delayMs: 40 }])
  // the engine's producer as `breakid serve`/`up` pick it with Kafka configured: on its own thread
  const cfg = loadConfig(
    { 'kafka-brokers': kafkaBrokers().join(','), 'topic-prefix': prefix, 'log-level': 'silent' },
    {},
  )
  const producer = telemetryProducer(cfg, kafka)
  assert.ok(
    producer instanceof KafkaWorkerProducer,
    'with brokers configured the producer runs on its thread',
  )
  const emitter = new TelemetryEmitter({ producer, logger })
  const engine = new Engine({
    models: [{ name: 'mlp' }],
    modelCacheDir: '.cache/models',
    logger,
    emitter,
    faults,
    hwIntervalMs: 250,
    identity: { fleet: 'e2e', instance: 'engine-e2e' },
  })
  await engine.start()
  const app = buildEngineApp(engine)
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  try {
    const bodies = Array.from({ length: 4 }, (_, seed) =>
      JSON.stringify({ inputs: toKServeInputs(getModel('mlp').inputGenerator(seed, 1)) }),
    )
    const report = await runLoad({
      url: `${url}/v2/models/mlp/infer`,
      bodies,
      ratePerSec: 150,
      durationMs: 10_000,
    })
    const n = report.sent
    assert.equal(report.ok, n, `every request answered 200: ${JSON.stringify(report.statuses)}`)
    await app.close()
    await engine.stop() // flushes the last spans and hardware sample
    assert.equal(emitter.dropped, 0)

    await waitFor(async () => (await scalar('SELECT count() FROM spans')) >= n, {
      timeoutMs: 60_000,
      message: `${n} spans in ClickHouse`,
    })
    await waitFor(() => receiver.alerts.some((r) => r.alert?.status === 'resolved'), {
      timeoutMs: 30_000,
      message: 'the resolved alert at the webhook',
    })
    await pipeline.stop()

    // nothing lost, nothing doubled (raw count, before any merge could hide a duplicate)
    assert.equal(await scalar('SELECT count() FROM spans'), n)
    assert.equal(await scalar('SELECT uniqExact(request_id) FROM spans'), n)
    assert.equal((await scalar('SELECT count() FROM hw_samples')) > 30, true)

    const alerts = receiver.alerts.map((r) => r.alert!)
    assert.deepEqual(
      alerts.map((a) => [a.type, a.status]),
      [
        ['accelerator_starved', 'firing'],
        ['accelerator_starved', 'resolved'],
      ],
      'exactly one break: fired once, resolved once',
    )
    assert.equal(alerts[0]!.id, alerts[1]!.id)
    assert.equal(alerts[0]!.stage, 'preprocess')
    assert.ok(receiver.alerts.every((r) => r.signatureValid === true))
    const [fault] = faults.groundTruth()
    const startMs = alerts[0]!.starts_at_us / 1000
    assert.ok(
      startMs >= fault!.startEpochMs && startMs <= fault!.endEpochMs,
      `alert start ${new Date(startMs).toISOString()} inside the fault window`,
    )
    // and the alert was stored too (through the alerts topic and the ingest consumer)
    assert.equal(
      await scalar(`SELECT count() FROM alerts FINAL WHERE id = '${alerts[0]!.id}' AND status = 'resolved'`),
      1,
    )
  } finally {
    await app.close()
    await pipeline.stop()
    await receiver.stop()
  }
})

test('garbage records land in the dead-letter topic while every valid record around them is stored', async () => {
  const prefix = `dlq-${randomBytes(4).toString('hex')}.`
  const kafka = transport(prefix)
  await kafka.ensureTopics(Object.values(TOPICS))
  await ch.client.command({ query: 'TRUNCATE TABLE spans' })
  await ch.client.command({ query: 'TRUNCATE TABLE dead_letters' })

  // a foreign producer writes straight to the broker: valid spans with garbage between them
  const raw = testKafka('e2e-garbage').producer()
  await raw.connect()
  const valid = Array.from({ length: 200 }, (_, i) => makeSpan(i, { request_id: `dlq-${i}` }))
  const truncated = codecs.span.encode(makeSpan(999)).subarray(0, 40)
  const garbage = [
    Buffer.from('{"json":"is not avro"}'),
    randomBytes(64),
    truncated,
    codecs.hw.encode(makeHwSample(1)), // a valid record, but not a span
    Buffer.alloc(0),
  ]
  const messages = valid.map((s) => ({ key: s.instance, value: codecs.span.encode(s) }))
  for (const [i, g] of garbage.entries()) messages.splice(20 + i * 40, 0, { key: 'junk', value: g })
  await raw.send({ topic: `${prefix}${TOPICS.spans}`, messages })
  await raw.disconnect()

  const pipeline = await startPipeline({ transport: kafka, logger, clickhouse: ch })
  try {
    await waitFor(async () => (await scalar('SELECT count() FROM dead_letters')) >= garbage.length, {
      timeoutMs: 60_000,
      message: 'dead letters stored',
    })
    await waitFor(async () => (await scalar('SELECT count() FROM spans')) >= valid.length, {
      timeoutMs: 30_000,
      message: 'valid spans stored',
    })
  } finally {
    await pipeline.stop()
  }
  assert.equal(await scalar('SELECT count() FROM spans'), valid.length)
  assert.equal(await scalar("SELECT countIf(request_id LIKE 'dlq-%') FROM spans"), valid.length)
  assert.equal(await scalar('SELECT count() FROM dead_letters'), garbage.length)
  assert.equal(pipeline.ingester!.counters.total('dead_letters_total'), garbage.length)

  // the dead-letter topic itself holds the original bytes with the reason in headers
  const consumer = testKafka('e2e-dlq-reader').consumer({ groupId: `${prefix}reader` })
  const seen: { value: Buffer; reason: string }[] = []
  await consumer.connect()
  await consumer.subscribe({ topic: `${prefix}${TOPICS.deadLetter}`, fromBeginning: true })
  await consumer.run({
    eachMessage: async ({ message }) => {
      seen.push({
        value: message.value ?? Buffer.alloc(0),
        reason: String(message.headers?.['breakid-reason']),
      })
    },
  })
  await waitFor(() => seen.length >= garbage.length, {
    timeoutMs: 30_000,
    message: 'dead letters on the topic',
  })
  await consumer.disconnect()
  assert.deepEqual(
    seen.map((s) => s.value.toString('hex')).sort(),
    garbage.map((g) => g.toString('hex')).sort(),
  )
  assert.deepEqual(
    seen.map((s) => s.reason).sort(),
    ['malformed', 'not_single_object', 'not_single_object', 'not_single_object', 'wrong_type'].sort(),
  )
})
