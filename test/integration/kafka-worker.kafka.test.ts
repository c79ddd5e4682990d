/**
 * The Kafka producer thread (bus/kafka-worker.ts) against a real broker: what the
 * emitter sends through it arrives on the broker byte for byte as RecordCodec.encode writes it (in
 * containers of one instance's records), keyed by instance, every record once; a send after stop is refused. Never skipped: without a broker it
 * fails.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { getPriority } from 'node:os'
import { before, test } from 'node:test'
import { TelemetryEmitter } from '../../engine/telemetry/emitter.ts'
import { KafkaWorkerProducer } from '../../bus/kafka-worker.ts'
import { decodeMessage } from '../../contract/container.ts'
import { codecs, TOPICS } from '../../contract/topics.ts'
import { createLogger } from '../../core/logger.ts'
import { KafkaTransport } from '../../bus/kafka.ts'
import { kafkaBrokers, requireKafka } from '../helpers/kafka.ts'
import { makeHwSample, makeSpan } from '../../contract/synthetic.ts'
import { waitFor } from '../helpers/wait.ts'

const logger = createLogger(process.env.BREAKID_TEST_LOG ?? 'silent')

before(async () => {
  await requireKafka()
})

test('records sent through the producer thread arrive once each, byte for byte, keyed by instance', async () => {
  const prefix = `kw-${randomBytes(4).toString('hex')}.`
  const kafka = new KafkaTransport({ brokers: kafkaBrokers(), logger, topicPrefix: prefix })
  await kafka.ensureTopics([TOPICS.spans, TOPICS.hw], 2)

  const producer = new KafkaWorkerProducer({
    brokers: kafkaBrokers(),
    topicPrefix: prefix,
    logLevel: 'silent',
  })
  const emitter = new TelemetryEmitter({ producer, logger, maxBatch: 200 })
  await emitter.start()
  // the producer thread alone runs at a lower priority (nice 10); every other thread keeps the process's
  const nice = threadNiceValues()
  const base = getPriority()
  const byValue = (a: number, b: number) => a - b
  assert.deepEqual(
    nice.sort(byValue),
    [...Array(nice.length - 1).fill(base), Math.max(base, 10)].sort(byValue),
  )
  const spans = Array.from({ length: 1_000 }, (_, i) =>
    makeSpan(i, { instance: `engine-${i % 3}`, trace_id: randomBytes(16).toString('hex') }),
  )
  const hw = [makeHwSample(0), makeHwSample(1, { instance: 'engine-1' })]
  for (const s of spans) emitter.emitSpan(s)
  for (const s of hw) emitter.emitHwSample(s)
  await emitter.stop() // flushes, then ends the producer thread
  assert.deepEqual([emitter.sent, emitter.dropped, emitter.invalid], [1_002, 0, 0])
  await assert.rejects(producer.send(TOPICS.spans, [{ key: 'x', value: Buffer.from('x') }]), /not running/)

  const got = new Map<string, { key: string; value: Buffer }[]>([
    [TOPICS.spans, []],
    [TOPICS.hw, []],
  ])
  const consumer = kafka.consumer({
    groupId: 'kw-check',
    topics: [TOPICS.spans, TOPICS.hw],
    handler: async (batch) => {
      // one entry per record: a message may be a container of one instance's records
      const codec = batch.topic === TOPICS.spans ? codecs.span : codecs.hw
      for (const m of batch.messages) {
        for (const r of decodeMessage<unknown>(codec, m.value!)) {
          assert.ifError(r.error)
          got.get(batch.topic)!.push({ key: m.key!.toString(), value: r.bytes })
        }
      }
    },
  })
  await consumer.start()
  try {
    await waitFor(() => got.get(TOPICS.spans)!.length >= spans.length && got.get(TOPICS.hw)!.length >= 2, {
      timeoutMs: 60_000,
      message: 'every record on the broker',
    })
  } finally {
    await consumer.stop()
  }
  const expected = new Map(spans.map((s) => [s.request_id, s]))
  const receivedSpans = got.get(TOPICS.spans)!
  assert.equal(receivedSpans.length, spans.length)
  for (const m of receivedSpans) {
    const span = expected.get(codecs.span.decode(m.value).request_id)
    assert.ok(span, 'a span that was sent')
    expected.delete(span.request_id)
    assert.ok(m.value.equals(codecs.span.encode(span)), `${span.request_id}: bytes differ`)
    assert.equal(m.key, span.instance)
  }
  assert.equal(expected.size, 0, 'every span once')
  const receivedHw = got.get(TOPICS.hw)!.map((m) => m.value)
  assert.equal(receivedHw.length, 2)
  for (const s of hw) assert.ok(receivedHw.some((v) => v.equals(codecs.hw.encode(s))))
})

/** the nice value of every thread of this process (Linux: field 19 of /proc/self/task/<tid>/stat) */
function threadNiceValues(): number[] {
  return readdirSync('/proc/self/task').map((tid) => {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])
  })
}
