/**
 * The Kafka → ClickHouse writer over the embedded bus and real chDB. chDB binds one data directory per
 * process, so the file shares one in a temporary directory; every test writes its own database.
 *
 * The oracles count rows, not inserts: merges are stopped on the tables under test so a doubled row
 * stays visible (ReplacingMergeTree would otherwise collapse it on a background merge and hide it).
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { Readable } from 'node:stream'
import type { ClickHouseClient } from '@clickhouse/client'
import { type ClickHouse, openClickHouse } from '../../store/client.ts'
import { migrate } from '../../store/migrations.ts'
import { spansTable } from '../../store/tables.ts'
import { insertRecords } from '../../store/writer.ts'
import type { Alert, HwSample, Span } from '../../contract/records.ts'
import { encodeContainer, packContainer } from '../../contract/container.ts'
import { RecordCodec } from '../../contract/codec.ts'
import { AVSC_DIR, avscFileName } from '../../contract/schemas.ts'
import { codecs, TOPICS } from '../../contract/topics.ts'
import { INGEST_GROUP, Ingester } from '../../ingest/ingester.ts'
import { createLogger } from '../../core/logger.ts'
import { EmbeddedBus } from '../../bus/embedded-bus.ts'
import type { IncomingMessage, MessageProducer } from '../../bus/transport.ts'
import { makeAlert, makeHwSample, makeSpan } from '../../contract/synthetic.ts'
import { waitFor } from '../helpers/wait.ts'

const logger = createLogger('silent')
const T0_US = 1_767_225_600_000_000 // 2026-01-01T00:00:00Z
const TABLES = ['spans', 'hw_samples', 'alerts', 'dead_letters']

let dataDir = ''
before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'breakid-ingester-'))
})
after(async () => {
  await rm(dataDir, { recursive: true, force: true })
})

interface Pipeline {
  ch: ClickHouse
  bus: EmbeddedBus
  ingester: Ingester
  producer: MessageProducer
  /** waits until the ingester committed everything published so far, dead letters included */
  settled(): Promise<void>
  stop(): Promise<void>
}

/** A fresh database, migrated, with merges stopped, and an ingester writing into it. */
async function startPipeline(database: string, wrap?: (ch: ClickHouse) => ClickHouse): Promise<Pipeline> {
  const ch = openClickHouse({ dataDir, database })
  await migrate(ch)
  for (const t of TABLES) await ch.client.command({ query: `SYSTEM STOP MERGES ${database}.${t}` })
  const bus = new EmbeddedBus({ retryDelayMs: 10 })
  // blocks go out 20 ms after their first record instead of 1 s: the tests wait less
  const ingester = new Ingester({
    transport: bus,
    clickhouse: wrap ? wrap(ch) : ch,
    logger,
    maxDelayMs: 20,
    retryDelayMs: 10,
  })
  await ingester.start()
  const producer = bus.producer()
  await producer.start()
  return {
    ch,
    bus,
    ingester,
    producer,
    async settled() {
      // dead letters are produced while the source topics are handled, so they drain last
      for (const t of [TOPICS.spans, TOPICS.hw, TOPICS.alerts, TOPICS.deadLetter]) {
        await bus.drained(t, INGEST_GROUP)
      }
    },
    async stop() {
      await ingester.stop()
      await ch.close()
    },
  }
}

async function select<T>(ch: ClickHouse, query: string): Promise<T[]> {
  const rs = await ch.client.query({ query, format: 'JSONEachRow' })
  return rs.json<T>()
}

async function count(ch: ClickHouse, table: string, where = '1'): Promise<number> {
  const [row] = await select<{ n: string }>(
    ch,
    `SELECT toString(count()) AS n FROM ${ch.database}.${table} WHERE ${where}`,
  )
  return Number(row!.n)
}

const span = (i: number, over: Partial<Span> = {}) =>
  // odd microseconds so a millisecond round trip would show
  makeSpan(i, { timestamp_us: T0_US + i * 1_001 + 123, request_id: `req-${i}`, ...over })

function sendRecords<R>(
  producer: MessageProducer,
  topic: string,
  encode: (r: R) => Buffer,
  records: R[],
): Promise<void> {
  return producer.send(
    topic,
    records.map((r) => ({ key: 'engine-0', value: encode(r) })),
  )
}

test('spans, hardware samples and alerts land in ClickHouse exactly, to the microsecond', async () => {
  const p = await startPipeline('ingest_exact')
  try {
    const spans = Array.from({ length: 50 }, (_, i) =>
      span(i, {
        status: i % 10 === 3 ? 'server_error' : 'ok',
        error_class: i % 10 === 3 ? 'OrtError' : null,
        input_mean: i % 5 === 0 ? null : i / 8,
        compute_us: 10_000 + i,
      }),
    )
    const hw = Array.from({ length: 10 }, (_, i) =>
      makeHwSample(i, {
        timestamp_us: T0_US + i * 1_000_000 + 999_999,
        executor_busy: i / 10,
        devices: [
          {
            device: 'gpu0:NVIDIA H100 80GB HBM3',
            utilization: 0.5,
            memory_used_bytes: 78_112 * 1024 * 1024,
            memory_total_bytes: 81_559 * 1024 * 1024,
            power_w: i % 2 === 0 ? null : 650.5,
            temperature_c: 70,
          },
          {
            device: 'gpu1:NVIDIA H100 80GB HBM3',
            utilization: null,
            memory_used_bytes: 0,
            memory_total_bytes: 81_559 * 1024 * 1024,
            power_w: 71.25,
            temperature_c: null,
          },
        ],
      }),
    )
    const alerts: Alert[] = [
      makeAlert({ id: 'a-1', starts_at_us: T0_US + 1, updated_at_us: T0_US + 1 }),
      makeAlert({ id: 'a-2', status: 'resolved', ends_at_us: T0_US + 5_000_017, updated_at_us: T0_US + 5 }),
      makeAlert({ id: 'a-3', stage: null, exemplar_request_ids: [] }),
    ]
    // several sends, interleaved across topics
    for (let k = 0; k < 5; k++) {
      await sendRecords(
        p.producer,
        TOPICS.spans,
        (r) => codecs.span.encode(r),
        spans.slice(k * 10, k * 10 + 10),
      )
      await sendRecords(p.producer, TOPICS.hw, (r) => codecs.hw.encode(r), hw.slice(k * 2, k * 2 + 2))
    }
    await sendRecords(p.producer, TOPICS.alerts, (r) => codecs.alert.encode(r), alerts)
    await p.settled()

    const db = p.ch.database
    assert.equal(await count(p.ch, 'spans'), 50)
    assert.equal(await count(p.ch, 'hw_samples'), 10)
    assert.equal(await count(p.ch, 'alerts'), 3)
    assert.equal(await count(p.ch, 'dead_letters'), 0)

    const storedSpans = await select<Record<string, unknown>>(
      p.ch,
      `SELECT request_id, toString(toUnixTimestamp64Micro(timestamp)) AS ts, trace_id_hex AS trace_id, status, error_class,
              toUInt32(compute_us) AS compute_us, input_mean, cache_hit
       FROM ${db}.spans ORDER BY timestamp`,
    )
    assert.deepEqual(
      storedSpans,
      spans.map((s) => ({
        request_id: s.request_id,
        ts: String(s.timestamp_us),
        trace_id: s.trace_id,
        status: s.status,
        error_class: s.error_class,
        compute_us: s.compute_us,
        input_mean: s.input_mean,
        cache_hit: s.cache_hit,
      })),
    )

    const storedHw = await select<Record<string, unknown>>(
      p.ch,
      `SELECT toString(toUnixTimestamp64Micro(timestamp)) AS ts, executor_busy, device_device, device_power_w,
              device_utilization, device_temperature_c, arrayMap(x -> toString(x), device_memory_used_bytes) AS mem
       FROM ${db}.hw_samples ORDER BY timestamp`,
    )
    assert.deepEqual(
      storedHw,
      hw.map((s: HwSample) => ({
        ts: String(s.timestamp_us),
        executor_busy: s.executor_busy,
        device_device: s.devices.map((d) => d.device),
        device_power_w: s.devices.map((d) => d.power_w),
        device_utilization: s.devices.map((d) => d.utilization),
        device_temperature_c: s.devices.map((d) => d.temperature_c),
        mem: s.devices.map((d) => String(d.memory_used_bytes)),
      })),
    )

    const storedAlerts = await select<Record<string, unknown>>(
      p.ch,
      `SELECT id, status, stage, toString(toUnixTimestamp64Micro(starts_at)) AS starts,
              if(isNull(ends_at), NULL, toString(toUnixTimestamp64Micro(assumeNotNull(ends_at)))) AS ends,
              exemplar_request_ids
       FROM ${db}.alerts ORDER BY id`,
    )
    assert.deepEqual(
      storedAlerts,
      alerts.map((a) => ({
        id: a.id,
        status: a.status,
        stage: a.stage,
        starts: String(a.starts_at_us),
        ends: a.ends_at_us === null ? null : String(a.ends_at_us),
        exemplar_request_ids: a.exemplar_request_ids,
      })),
    )

    const c = p.ingester.counters
    assert.equal(c.get('rows_stored_total', { table: 'spans' }), 50)
    assert.equal(c.get('rows_stored_total', { table: 'hw_samples' }), 10)
    assert.equal(c.get('rows_stored_total', { table: 'alerts' }), 3)
    assert.equal(c.total('dead_letters_total'), 0)
    assert.equal(c.total('batch_retries_total'), 0)
  } finally {
    await p.stop()
  }
})

/**
 * A second group on the dead-letter topic, joined before anything is published: the embedded bus
 * releases messages once every group it knows has committed them.
 */
async function readDeadLetters(p: Pipeline) {
  const dlq: IncomingMessage[] = []
  const reader = p.bus.consumer({
    groupId: 'test-dlq-reader',
    topics: [TOPICS.deadLetter],
    handler: async (batch) => {
      dlq.push(...batch.messages)
    },
  })
  await reader.start()
  return { dlq, reader }
}

test('garbage is dead-lettered with its reason and offset; every valid record around it is stored', async () => {
  const p = await startPipeline('ingest_garbage')
  const { dlq, reader } = await readDeadLetters(p)
  try {
    const valid = (i: number) => ({
      kind: 'valid' as const,
      value: codecs.span.encode(span(i)),
      id: `req-${i}`,
    })
    const bad = (value: Buffer, reason: string | string[]) => ({ kind: 'bad' as const, value, reason })
    const encoded = codecs.span.encode(span(99))
    const spansTopic = [
      valid(0),
      bad(Buffer.from('definitely not avro'), 'not_single_object'),
      valid(1),
      bad(encoded.subarray(0, encoded.length - 6), 'malformed'), // truncated
      valid(2),
      // a single-object header whose fingerprint names no schema we know
      bad(
        Buffer.concat([encoded.subarray(0, 2), Buffer.alloc(8, 0xab), encoded.subarray(10)]),
        'unknown_schema',
      ),
      valid(3),
      // a hardware sample on the spans topic: its fingerprint is not a span writer's
      bad(codecs.hw.encode(makeHwSample(0)), ['unknown_schema', 'wrong_type']),
      valid(4),
      bad(Buffer.concat([codecs.span.encode(span(98)), Buffer.from([1, 2, 3])]), 'malformed'), // trailing bytes
      bad(Buffer.alloc(0), 'not_single_object'),
      valid(5),
    ]
    await p.producer.send(
      TOPICS.spans,
      spansTopic.map((m) => ({ key: 'engine-0', value: m.value })),
    )
    // and a span where hardware samples belong, between two good ones
    const hwTopic = [
      { kind: 'valid' as const, value: codecs.hw.encode(makeHwSample(1)) },
      bad(codecs.span.encode(span(7)), ['unknown_schema', 'wrong_type']),
      { kind: 'valid' as const, value: codecs.hw.encode(makeHwSample(2)) },
    ]
    await p.producer.send(
      TOPICS.hw,
      hwTopic.map((m) => ({ key: 'engine-0', value: m.value })),
    )
    await p.settled()

    // the expected dead letters, in source offset order (one partition, offsets from 0)
    const expected = [
      ...spansTopic.map((m, offset) => ({ ...m, topic: TOPICS.spans, offset: String(offset) })),
      ...hwTopic.map((m, offset) => ({ ...m, topic: TOPICS.hw, offset: String(offset) })),
    ].filter((m) => m.kind === 'bad')
    const reasonOk = (want: string | string[], got: string | undefined) =>
      (Array.isArray(want) ? want : [want]).includes(got ?? '')

    // every valid record stored, once
    const ids = await select<{ request_id: string }>(
      p.ch,
      `SELECT request_id FROM ${p.ch.database}.spans ORDER BY request_id`,
    )
    assert.deepEqual(
      ids.map((r) => r.request_id),
      spansTopic.flatMap((m) => (m.kind === 'valid' ? [m.id] : [])),
    )
    assert.equal(await count(p.ch, 'hw_samples'), 2)

    // every bad one on the dead-letter topic, with headers naming where it came from and why
    await waitFor(() => dlq.length >= expected.length, { message: 'the dead letters' })
    assert.equal(dlq.length, expected.length, 'one dead letter per bad record, no more')
    // the two source topics are consumed side by side, so only the order within a topic is promised:
    // group the letters by topic (a stable sort keeps each topic's arrival order, which must be offsets)
    const topicRank = (m: IncomingMessage) => (m.headers['breakid-source-topic'] === TOPICS.spans ? 0 : 1)
    const received = [...dlq].sort((a, b) => topicRank(a) - topicRank(b))
    for (const [i, want] of expected.entries()) {
      const got = received[i]!
      assert.equal(got.headers['breakid-source-topic'], want.topic, `dead letter ${i}`)
      assert.equal(got.headers['breakid-source-partition'], '0')
      assert.equal(got.headers['breakid-source-offset'], want.offset, `dead letter ${i}`)
      assert.ok(
        reasonOk(want.reason, got.headers['breakid-reason']),
        `${i}: ${got.headers['breakid-reason']}`,
      )
      assert.ok((got.headers['breakid-error'] ?? '').length > 0, 'an error message')
      assert.equal(got.key?.toString(), `${want.topic}/0/${want.offset}`)
      assert.deepEqual(got.value, want.value, 'the original bytes, untouched')
    }

    // ...and in the dead_letters table
    const stored = await select<{
      source_topic: string
      source_offset: string
      reason: string
      payload: string
    }>(
      p.ch,
      `SELECT source_topic, source_offset, reason, payload_base64 AS payload
       FROM ${p.ch.database}.dead_letters ORDER BY source_topic DESC, toUInt64(source_offset)`,
    )
    assert.equal(stored.length, expected.length)
    for (const [i, want] of expected.entries()) {
      assert.equal(stored[i]!.source_topic, want.topic)
      assert.equal(stored[i]!.source_offset, want.offset)
      assert.ok(reasonOk(want.reason, stored[i]!.reason), stored[i]!.reason)
      assert.equal(stored[i]!.payload, want.value.toString('base64'))
    }

    const c = p.ingester.counters
    assert.equal(c.total('dead_letters_total'), expected.length)
    assert.equal(c.get('dead_letters_total', { topic: TOPICS.spans, reason: 'not_single_object' }), 2)
    assert.equal(c.get('dead_letters_total', { topic: TOPICS.spans, reason: 'malformed' }), 2)
    assert.equal(c.get('rows_stored_total', { table: 'dead_letters' }), expected.length)
    assert.equal(c.get('rows_stored_total', { table: 'spans' }), 6)
  } finally {
    await reader.stop()
    await p.stop()
  }
})

test('a container with bad records: each is dead-lettered alone as offset:index, its good records are stored', async () => {
  const p = await startPipeline('ingest_containers')
  const { dlq, reader } = await readDeadLetters(p)
  try {
    const unknown = codecs.span.encode(span(50))
    unknown.writeBigUInt64LE(12345n, 2)
    const good = [10, 11].map((i) => codecs.span.encode(span(i)))
    const withBadRecord = packContainer([good[0]!, unknown, good[1]!])
    const whole = encodeContainer(codecs.span, [span(12), span(13), span(14)])
    const cut = whole.subarray(0, whole.length - 20) // record 2 of 3 cut short
    await p.producer.send(TOPICS.spans, [
      { key: 'engine-0', value: withBadRecord },
      { key: 'engine-0', value: cut },
      { key: 'engine-0', value: codecs.span.encode(span(15)) },
    ])
    await p.settled()

    const ids = await select<{ request_id: string }>(
      p.ch,
      `SELECT request_id FROM ${p.ch.database}.spans ORDER BY request_id`,
    )
    assert.deepEqual(
      ids.map((r) => r.request_id),
      ['req-10', 'req-11', 'req-12', 'req-13', 'req-15'],
    )
    await waitFor(() => dlq.length >= 2, { message: 'the dead letters' })
    assert.deepEqual(
      dlq.map((m) => [m.headers['breakid-source-offset'], m.headers['breakid-reason']]),
      [
        ['0:1', 'unknown_schema'],
        ['1:2', 'truncated'],
      ],
    )
    assert.ok(dlq[0]!.value!.equals(unknown), 'the rejected record alone, untouched')
    const rest = dlq[1]!.value!
    assert.ok(
      rest.length > 0 && cut.subarray(cut.length - rest.length).equals(rest),
      'the unreadable rest of the container',
    )
    const stored = await select<{ source_offset: string; reason: string }>(
      p.ch,
      `SELECT source_offset, reason FROM ${p.ch.database}.dead_letters ORDER BY source_offset`,
    )
    assert.deepEqual(
      stored.map((r) => [r.source_offset, r.reason]),
      [
        ['0:1', 'unknown_schema'],
        ['1:2', 'truncated'],
      ],
    )
    assert.equal(p.ingester.counters.get('rows_stored_total', { table: 'spans' }), 5)
    assert.equal(p.ingester.counters.total('dead_letters_total'), 2)
  } finally {
    await reader.stop()
    await p.stop()
  }
})

/**
 * Wraps the client so inserts misbehave on demand, and records the rows of every insert that
 * ClickHouse accepted (read from the Native block's header: columns, then rows).
 */
function flakyInserts(opts: {
  /** how many inserts throw a connection error before reaching ClickHouse */
  failBefore?: number
  /** how many inserts throw a connection error after ClickHouse accepted them (the ack is lost) */
  failAfter?: number
}) {
  const state = { failBefore: opts.failBefore ?? 0, failAfter: opts.failAfter ?? 0, attempts: 0, rows: 0 }
  const wrap = (ch: ClickHouse): ClickHouse => {
    const client = new Proxy(ch.client, {
      get(target, prop) {
        if (prop === 'exec') {
          return async (params: Parameters<ClickHouseClient['exec']>[0]) => {
            if (!('values' in params)) return target.exec(params)
            state.attempts++
            const lost = () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })
            if (state.failBefore > 0) {
              state.failBefore--
              throw lost()
            }
            const chunks: Buffer[] = []
            for await (const c of params.values as AsyncIterable<Buffer>) chunks.push(Buffer.from(c))
            const body = Buffer.concat(chunks)
            const result = await target.exec({ ...params, values: Readable.from([body]) })
            // varint columns (< 128 here), then varint rows
            let rows = 0
            for (let i = 1, shift = 0; ; i++, shift += 7) {
              rows += (body[i]! & 0x7f) * 2 ** shift
              if (!(body[i]! & 0x80)) break
            }
            state.rows += rows
            if (state.failAfter > 0) {
              state.failAfter--
              throw lost()
            }
            return result
          }
        }
        const v = Reflect.get(target, prop, target)
        return typeof v === 'function' ? v.bind(target) : v
      },
    })
    return { ...ch, client }
  }
  return { state, wrap }
}

test('an insert that fails transiently is retried: nothing lost, nothing doubled', async () => {
  const flaky = flakyInserts({ failBefore: 2 })
  const p = await startPipeline('ingest_retry', flaky.wrap)
  try {
    const spans = Array.from({ length: 30 }, (_, i) => span(i))
    await sendRecords(p.producer, TOPICS.spans, (r) => codecs.span.encode(r), spans)
    await p.settled()
    assert.equal(flaky.state.attempts, 3, 'two failures, then the same batch again')
    assert.equal(flaky.state.rows, 30)
    assert.equal(await count(p.ch, 'spans'), 30, 'every row once (merges are stopped: a double would show)')
    const [distinct] = await select<{ n: number }>(
      p.ch,
      `SELECT toUInt32(uniqExact(request_id)) AS n FROM ${p.ch.database}.spans`,
    )
    assert.equal(distinct!.n, 30)
    assert.equal(p.ingester.counters.get('batch_retries_total', { topic: TOPICS.spans }), 2)
    assert.equal(p.ingester.counters.get('rows_stored_total', { table: 'spans' }), 30)
  } finally {
    await p.stop()
  }
})

test('a lost acknowledgement: the block is sent again with the same token and stored once', async () => {
  // ClickHouse accepted the insert but the answer was lost, so the at-least-once ingester sends the
  // block again. Its deduplication token (derived from the offsets) makes ClickHouse drop the repeat.
  const flaky = flakyInserts({ failAfter: 1 })
  const p = await startPipeline('ingest_lost_ack', flaky.wrap)
  try {
    const spans = Array.from({ length: 30 }, (_, i) => span(i))
    await sendRecords(p.producer, TOPICS.spans, (r) => codecs.span.encode(r), spans)
    await p.settled()
    assert.equal(flaky.state.rows, 60, 'the block went to ClickHouse twice')
    assert.equal(
      await count(p.ch, 'spans'),
      30,
      'and is stored once (merges are stopped: a double would show)',
    )
    assert.equal(await count(p.ch, 'spans_1m'), 1)
    const [rolled] = await select<{ n: number }>(
      p.ch,
      `SELECT toUInt32(sum(requests)) AS n FROM ${p.ch.database}.spans_1m`,
    )
    assert.equal(rolled!.n, 30, 'the rollup counted it once too')
  } finally {
    await p.stop()
  }
})

test('control: the same rows under another token are stored twice, and the row count sees it', async () => {
  // proves the oracle above can fail: without the token's match ClickHouse keeps both copies
  const p = await startPipeline('ingest_control')
  try {
    const spans = Array.from({ length: 30 }, (_, i) => span(i))
    await insertRecords(p.ch, spansTable, spans, { token: 'spans/0/0-0' })
    await insertRecords(p.ch, spansTable, spans, { token: 'spans/0/0-0 again' })
    assert.equal(await count(p.ch, 'spans'), 60)
  } finally {
    await p.stop()
  }
})

test('a record ClickHouse rejects as bad data is dead-lettered instead of blocking the topic', async () => {
  const p = await startPipeline('ingest_poison')
  try {
    const records = [span(0), span(1, { batch_size: -1 }), span(2)]
    await sendRecords(p.producer, TOPICS.spans, (r) => codecs.span.encode(r), records)
    const drained = p.settled().then(() => true)
    const bounded = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 1_500).unref())
    assert.ok(await Promise.race([drained, bounded]), 'the spans topic drains')
    assert.equal(await count(p.ch, 'spans'), 2)
    assert.equal(await count(p.ch, 'dead_letters'), 1)
  } finally {
    await p.stop()
  }
})

test('records of every published writer schema land in the same block, missing fields as null', async () => {
  const p = await startPipeline('ingest_writers')
  try {
    const v1Schema = JSON.parse(readFileSync(join(AVSC_DIR, avscFileName('span', 1)), 'utf8'))
    const v1 = new RecordCodec<Span>('span', v1Schema)
    const old = (({ run_id: _, ...rest }) => rest as Span)(span(0))
    await p.producer.send(TOPICS.spans, [
      {
        key: 'engine-0',
        value: packContainer([v1.encode(old), codecs.span.encode(span(1, { run_id: 'r-7' }))]),
      },
    ])
    await p.settled()
    const stored = await select<{ request_id: string; run_id: string | null; compute_us: number }>(
      p.ch,
      `SELECT request_id, run_id, toUInt32(compute_us) AS compute_us FROM ${p.ch.database}.spans ORDER BY request_id`,
    )
    assert.deepEqual(stored, [
      { request_id: 'req-0', run_id: null, compute_us: old.compute_us },
      { request_id: 'req-1', run_id: 'r-7', compute_us: span(1).compute_us },
    ])
  } finally {
    await p.stop()
  }
})

/**
 * An ingester that "crashes" with a block in flight: ClickHouse stored the block, the answer never
 * came, and the ingester stops without committing. What the next one does with the partition decides
 * whether the rows are doubled.
 */
async function crashAfterInsert(database: string, forgetCuts: boolean) {
  const ch = openClickHouse({ dataDir, database })
  await migrate(ch)
  await ch.client.command({ query: `SYSTEM STOP MERGES ${database}.spans` })
  const bus = new EmbeddedBus({ retryDelayMs: 10 })
  const hung = new Proxy(ch.client, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target)
      if (prop !== 'exec') return typeof v === 'function' ? v.bind(target) : v
      return async (params: Parameters<ClickHouseClient['exec']>[0]) => {
        await target.exec(params) // stored…
        return new Promise(() => {}) // …and the acknowledgement never arrives
      }
    },
  })
  const first = new Ingester({
    transport: bus,
    clickhouse: { ...ch, client: hung },
    logger,
    blockRows: 25,
    maxDelayMs: 60_000,
    drainTimeoutMs: 200,
  })
  await first.start()
  const producer = bus.producer()
  await producer.send(
    TOPICS.spans,
    Array.from({ length: 50 }, (_, i) => ({ key: 'engine-0', value: codecs.span.encode(span(i)) })),
  )
  await waitFor(async () => (await count(ch, 'spans')) >= 25, { message: 'the first block stored' })
  await first.stop()
  const probe = bus.streamingConsumer({
    groupId: INGEST_GROUP,
    topics: [TOPICS.spans],
    onBatch: async () => {},
  })
  const committed = await probe.committed({ topic: TOPICS.spans, partition: 0 })
  if (forgetCuts) {
    await probe.start()
    await probe.commit({ topic: TOPICS.spans, partition: 0 }, committed.offset ?? '0', '')
    await probe.stop()
  }
  // the next ingester cuts its blocks at 40 rows, unless told where the previous one cut
  const second = new Ingester({ transport: bus, clickhouse: ch, logger, blockRows: 40, maxDelayMs: 20 })
  await second.start()
  await bus.drained(TOPICS.spans, INGEST_GROUP)
  await second.stop()
  const stored = await count(ch, 'spans')
  await ch.close()
  return { committed, stored }
}

test('a block in flight at a crash is cut the same way again and stored once', async () => {
  const { committed, stored } = await crashAfterInsert('ingest_crash', false)
  assert.equal(committed.offset, '0', 'nothing was committed')
  // both blocks were sealed in one batch, so both cuts were noted before the first insert
  assert.equal(committed.metadata, 'breakid-ingest/1 cuts=25,50', 'but the cuts were noted before the insert')
  assert.equal(stored, 50)
})

test('control: without the noted cut the replay cuts elsewhere and the rows are doubled', async () => {
  const { stored } = await crashAfterInsert('ingest_crash_control', true)
  assert.equal(stored, 75, 'the replayed block [0, 40) repeats rows 0–24')
})
