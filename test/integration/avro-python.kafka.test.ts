/**
 * A foreign producer on the real Kafka broker: Python's fastavro writes records from the published
 * `.avsc` files and the framing of contract/README.md, confluent-kafka (librdkafka) produces them
 * (a venv under .venv/, created on first run). Records whose writer schema is a compatible evolution
 * (an added defaulted field, sent in the `breakid.writer-schema` header) and v1 records are stored by
 * the ingester and read by the detector consumer; records of an incompatible writer (a required field
 * of another type) are dead-lettered with a reason naming the field. Never skipped: without a broker
 * it fails.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { KafkaTransport } from '../../bus/kafka.ts'
import { startPipeline } from '../../app/pipeline.ts'
import type { HwSample, Span } from '../../contract/records.ts'
import { AVSC_DIR } from '../../contract/schemas.ts'
import { codecs, TOPICS } from '../../contract/topics.ts'
import { createLogger } from '../../core/logger.ts'
import type { Detector } from '../../detectors/detector.ts'
import { type ClickHouse, openClickHouse } from '../../store/client.ts'
import { migrate } from '../../store/migrations.ts'
import { kafkaBrokers, requireKafka } from '../helpers/kafka.ts'
import { pythonVenv, runPython } from '../helpers/python-venv.ts'
import { waitFor } from '../helpers/wait.ts'

const logger = createLogger(process.env.BREAKID_TEST_LOG ?? 'silent')

interface Sent {
  evolved: string[]
  v1: string[]
  incompatible: string[]
  hw: number
  fingerprints: Record<'evolved' | 'v1' | 'incompatible', string>
}

/** What the detector consumer hands its detectors. */
class Seen implements Detector {
  readonly type = 'seen'
  spans: Span[] = []
  samples: HwSample[] = []
  onSpan(span: Span) {
    this.spans.push(span)
    return []
  }
  onHwSample(sample: HwSample) {
    this.samples.push(sample)
    return []
  }
}

let python = ''
let dataDir = ''
let ch: ClickHouse

before(async () => {
  await requireKafka()
  python = await pythonVenv(
    'avro',
    ['fastavro==1.13.1', 'confluent-kafka==2.16.1'],
    'fastavro, confluent_kafka',
  )
  dataDir = mkdtempSync(join(tmpdir(), 'breakid-avro-python-'))
  ch = openClickHouse({ dataDir, database: 'foreign' })
  await migrate(ch)
})

after(async () => {
  await ch?.close()
  if (dataDir) rmSync(dataDir, { recursive: true, force: true })
})

async function rows<T>(query: string): Promise<T[]> {
  const rs = await ch.client.query({ query, format: 'JSONEachRow' })
  return rs.json<T>()
}

test('fastavro records of an evolved writer are stored and detected; an incompatible writer is dead-lettered', async () => {
  const prefix = `avro-py-${randomBytes(4).toString('hex')}.`
  const kafka = new KafkaTransport({
    brokers: kafkaBrokers(),
    logger,
    topicPrefix: prefix,
    handlerRetryDelayMs: 100,
  })
  await kafka.ensureTopics(Object.values(TOPICS))
  const seen = new Seen()
  const pipeline = await startPipeline({ transport: kafka, logger, clickhouse: ch, detectors: [seen] })
  try {
    const out = await runPython(python, join(import.meta.dirname, 'avro-python/produce.py'), [
      kafkaBrokers().join(','),
      prefix,
      AVSC_DIR,
    ])
    const sent = JSON.parse(out) as Sent
    // fastavro's fingerprint of the published v1 schema is the one breakid pins
    assert.equal(sent.fingerprints.v1, 'f0c1d775f9f5edf1')
    const stored = sent.evolved.length + sent.v1.length
    const ingest = pipeline.ingester!.counters
    await waitFor(
      () =>
        ingest.get('rows_stored_total', { table: 'spans' }) >= stored &&
        ingest.get('rows_stored_total', { table: 'hw_samples' }) >= sent.hw &&
        ingest.get('rows_stored_total', { table: 'dead_letters' }) >= sent.incompatible.length,
      { timeoutMs: 60_000, message: 'the foreign records stored or dead-lettered' },
    )
    await waitFor(() => seen.spans.length >= stored && seen.samples.length >= sent.hw, {
      timeoutMs: 30_000,
      message: 'the detectors to read them',
    })

    // stored, once each, with what the writer wrote (and v2's default where v1 had no field)
    const spans = await rows<{
      request_id: string
      run_id: string | null
      total_us: string
      batch_size: number
    }>('SELECT request_id, run_id, total_us, batch_size FROM spans ORDER BY request_id')
    assert.deepEqual(
      spans.map((r) => r.request_id),
      [...sent.evolved, ...sent.v1].sort(),
    )
    assert.ok(spans.every((r) => r.run_id === null && r.batch_size === 0))
    assert.equal(
      Number(spans.find((r) => r.request_id === 'py-evolved-3')!.total_us),
      2203,
      'the evolved writer body read field by field',
    )
    const hw = await rows<{ instance: string; executor_busy: number }>(
      'SELECT instance, executor_busy FROM hw_samples',
    )
    assert.deepEqual(
      hw,
      Array.from({ length: sent.hw }, () => ({ instance: 'py-producer-1', executor_busy: 0.5 })),
    )

    // the incompatible writer's records: dead-lettered, the reason naming the field
    const dead = await rows<{ source_topic: string; reason: string; error: string }>(
      'SELECT source_topic, reason, error FROM dead_letters ORDER BY source_offset',
    )
    assert.equal(dead.length, sent.incompatible.length)
    for (const d of dead) {
      assert.equal(d.source_topic, TOPICS.spans)
      assert.equal(d.reason, 'incompatible_schema')
      assert.match(d.error, new RegExp(`writer schema ${sent.fingerprints.incompatible}.*field total_us`))
    }
    assert.equal(ingest.get('dead_letters_total', { topic: TOPICS.spans, reason: 'incompatible_schema' }), 2)
    assert.equal(ingest.total('dead_letters_total'), 2, 'nothing else dead-lettered')

    // the detector consumer read the same records, through the same learned writers
    assert.deepEqual(seen.spans.map((s) => s.request_id).sort(), [...sent.evolved, ...sent.v1].sort())
    assert.equal(seen.samples[0]!.devices[0]!.device, 'GPU-py-0')
    const detect = pipeline.detector!.counters
    assert.equal(detect.get('decode_errors_total', { topic: TOPICS.spans, reason: 'incompatible_schema' }), 2)
    assert.ok(codecs.span.writers.learnedCount >= 1 && codecs.hw.writers.learnedCount >= 1)
  } finally {
    await pipeline.stop()
    await kafka.close()
  }
})
