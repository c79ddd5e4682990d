/**
 * One record the broker refuses must not stall telemetry (issue 11, item 5), against a real broker:
 * the engine's spans topic is created with `max.message.bytes` = 64 KiB, the engine serves `mlp` and
 * sends telemetry through the Kafka producer thread as `serve` and `up` do, and a span far over the
 * limit is forced into its emitter between two runs of requests. Every span of both runs and a
 * hardware sample taken afterwards reach the broker; the refused span is dead-lettered and counted on
 * /metrics. Never skipped: without a broker it fails.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { Engine } from '../../engine/engine.ts'
import { buildEngineApp } from '../../engine/http.ts'
import { getModel, toKServeInputs } from '../../engine/models/zoo.ts'
import { TelemetryEmitter } from '../../engine/telemetry/emitter.ts'
import { KafkaWorkerProducer } from '../../bus/kafka-worker.ts'
import { KafkaTransport } from '../../bus/kafka.ts'
import { decodeRecords } from '../../contract/container.ts'
import { makeSpan } from '../../contract/synthetic.ts'
import { codecs, TOPICS } from '../../contract/topics.ts'
import { createLogger } from '../../core/logger.ts'
import { MODEL_CACHE_DIR } from '../helpers/engine-harness.ts'
import { kafkaBrokers, requireKafka, testKafka } from '../helpers/kafka.ts'
import { waitFor } from '../helpers/wait.ts'

const logger = createLogger(process.env.BREAKID_TEST_LOG ?? 'silent')
const MAX_MESSAGE_BYTES = 64 * 1024
const prefix = `refused-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}.`

let engine: Engine
let app: FastifyInstance

before(async () => {
  await requireKafka()
  const admin = testKafka('breakid-test-admin').admin()
  await admin.connect()
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        {
          topic: prefix + TOPICS.spans,
          numPartitions: 1,
          replicationFactor: 1,
          configEntries: [{ name: 'max.message.bytes', value: String(MAX_MESSAGE_BYTES) }],
        },
        { topic: prefix + TOPICS.hw, numPartitions: 1, replicationFactor: 1 },
      ],
    })
  } finally {
    await admin.disconnect()
  }
  const emitter = new TelemetryEmitter({
    producer: new KafkaWorkerProducer({ brokers: kafkaBrokers(), topicPrefix: prefix, logLevel: 'silent' }),
    logger,
  })
  engine = new Engine({
    models: [{ name: 'mlp' }],
    modelCacheDir: MODEL_CACHE_DIR,
    logger,
    emitter,
    identity: { fleet: 'test', host: 'host-k', instance: 'engine-k' },
    hwIntervalMs: 3_600_000,
  })
  await engine.start()
  app = buildEngineApp(engine)
})
after(async () => {
  await app?.close()
  await engine?.stop()
})

async function infer(n: number): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < n; i++) {
    const res = await app.inject({
      method: 'POST',
      url: '/v2/models/mlp/infer',
      payload: { inputs: toKServeInputs(getModel('mlp').inputGenerator(i, 1)) },
    })
    assert.equal(res.statusCode, 200, res.body)
    ids.push((res.json() as { id: string }).id)
  }
  return ids
}

test('a span the broker refuses is dead-lettered and counted; every span after it and the hardware samples arrive', async () => {
  const before = await infer(20)
  await engine.telemetry.flush()
  const oversize = makeSpan(0, { instance: 'engine-k', request_id: `oversize-${'x'.repeat(200_000)}` })
  engine.telemetry.emitSpan(oversize)
  const afterIds = await infer(40)
  const sample = await engine.sampler.tick()
  await engine.telemetry.flush()

  assert.equal(engine.telemetry.refused, 1)
  assert.equal(engine.telemetry.pending, 0, 'nothing left waiting')
  const letter = engine.telemetry.deadLetters[0]!
  assert.equal(letter.reason, 'message_too_large')
  assert.equal(letter.topic, TOPICS.spans)
  assert.ok(letter.requestId?.startsWith('oversize-'))
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  assert.match(metrics, /^breakid_telemetry_records_dropped_total\{reason="message_too_large"\} 1$/m)
  assert.match(metrics, /^breakid_telemetry_send_failures_total\{reason="message_too_large"\} [1-9]\d*$/m)

  const spans: string[] = []
  let hwSamples = 0
  const reader = new KafkaTransport({ brokers: kafkaBrokers(), logger, topicPrefix: prefix }).consumer({
    groupId: 'refused-check',
    topics: [TOPICS.spans, TOPICS.hw],
    handler: async (batch) => {
      for (const m of batch.messages) {
        if (batch.topic === TOPICS.hw) hwSamples += decodeRecords(codecs.hw, m.value!).length
        else spans.push(...decodeRecords(codecs.span, m.value!).map((s) => s.request_id))
      }
    },
  })
  await reader.start()
  try {
    await waitFor(() => spans.length >= before.length + afterIds.length && hwSamples >= 1, {
      timeoutMs: 60_000,
      message: 'every span and the hardware sample on the broker',
    })
  } finally {
    await reader.stop()
  }
  assert.deepEqual(spans, [...before, ...afterIds], 'every span once, in order, none of them lost')
  assert.ok(hwSamples >= 1 && sample.instance === 'engine-k')
})
