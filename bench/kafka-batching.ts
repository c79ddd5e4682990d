/**
 * Should a Kafka message carry one telemetry record or a container of records from one writer?
 * Against the real broker (127.0.0.1:9092, or KAFKA_BROKERS), side by side in one run:
 *
 *   - 1 record per message and containers of 10, 50 and 200 records per message (the contract's
 *     container, contract/container.ts: magic, u32 count, per record u32 length + the Avro
 *     single-object record; the emitter's default is 64),
 *   - each with kafkajs compression off and GZIP.
 *
 * Throughput (interleaved rounds, same spans in every mode): the producer sends 1000 records per
 * `send` (the emitter's maxBatch) sequentially, idempotent, acks -1, maxInFlightRequests 1, as
 * bus/kafka.ts does; a fresh consumer group then reads the topic from the beginning with
 * eachBatch, decoding every record with codecs.span.decode and committing per batch like the transport.
 * Bytes: the sum of message values, and the partition's log size on the broker (what went on the wire,
 * compressed where gzip is on) when the broker's log dir is readable here.
 *
 * Latency: records are emitted at a steady rate into a copy of the emitter's policy (flush every 100 ms
 * or at 1000 buffered records; at a flush the records are packed into containers of up to N), stamped
 * with the emit time in timestamp_us; the consumer (already joined) records decode time - emit time.
 *
 * Run: node --import tsx bench/kafka-batching.ts [records] [rounds] [latencySeconds] [ratePerS]
 * Only topics and groups named bench-kbatch-<run id>-* are created, and they are deleted at the end.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  CompressionTypes,
  type Consumer,
  Kafka,
  logLevel,
  type Message,
  Partitioners,
  type Producer,
} from 'kafkajs'
import '../bus/kafkajs-idle-fix.ts'
import type { Span } from '../contract/records.ts'
import { decodeRecords, packContainer } from '../contract/container.ts'
import { codecs } from '../contract/topics.ts'
import { makeSpan } from '../contract/synthetic.ts'
import { machineInfo } from '../core/machine.ts'

const records = Number(process.argv[2] ?? 50_000)
const rounds = Number(process.argv[3] ?? 3)
const latencySeconds = Number(process.argv[4] ?? 3)
const latencyRate = Number(process.argv[5] ?? 2_000)
const SEND_RECORDS = 1_000 // the emitter's maxBatch: records per producer.send
const FLUSH_MS = 100 // the emitter's flush interval
const LATENCY_WARMUP_S = 0.5 // latency samples of the first half second are dropped
const KEY = 'engine-0' // one writer: every message keyed by its instance
const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',').map((b) => b.trim())
const runId = `${Date.now().toString(36)}-${process.pid}`
const prefix = `bench-kbatch-${runId}-`

interface Mode {
  name: string
  perMessage: number
  gzip: boolean
}
const MODES: Mode[] = [1, 10, 50, 200].flatMap((perMessage) =>
  [false, true].map((gzip) => ({
    name: `${perMessage === 1 ? '(a) 1' : `(b) ${perMessage}`} rec/msg${gzip ? ' gzip' : ''}`,
    perMessage,
    gzip,
  })),
)

/** The Kafka messages for up to SEND_RECORDS encoded records, for one mode. */
function toMessages(recs: readonly Buffer[], perMessage: number): Message[] {
  if (perMessage === 1) return recs.map((value) => ({ key: KEY, value }))
  const out: Message[] = []
  for (let i = 0; i < recs.length; i += perMessage)
    out.push({ key: KEY, value: packContainer(recs.slice(i, i + perMessage)) })
  return out
}

/** Decodes every record of a message value (a container or one record, as ingest does); returns how many. */
function decodeValue(value: Buffer, each: (span: Span) => void): number {
  const spans = decodeRecords(codecs.span, value)
  for (const span of spans) each(span)
  return spans.length
}

// ---------- kafka plumbing (same settings as bus/kafka.ts) ----------

const kafka = new Kafka({
  clientId: 'breakid-bench',
  brokers,
  connectionTimeout: 3_000,
  requestTimeout: 30_000,
  retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 5_000 },
  logLevel: logLevel.WARN,
})
const admin = kafka.admin()
const producer: Producer = kafka.producer({
  createPartitioner: Partitioners.DefaultPartitioner,
  idempotent: true,
  maxInFlightRequests: 1,
})
const createdTopics: string[] = []
const createdGroups: string[] = []

async function newTopic(name: string): Promise<string> {
  const topic = prefix + name
  await admin.createTopics({
    waitForLeaders: true,
    timeout: 10_000,
    topics: [{ topic, numPartitions: 1, replicationFactor: 1 }],
  })
  createdTopics.push(topic)
  return topic
}

function send(topic: string, messages: Message[], gzip: boolean): Promise<unknown> {
  return producer.send({
    topic,
    acks: -1,
    compression: gzip ? CompressionTypes.GZIP : CompressionTypes.None,
    messages,
  })
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
}
const r2 = (x: number) => Math.round(x * 100) / 100
const r1 = (x: number) => Math.round(x * 10) / 10

const nowMs = () => performance.timeOrigin + performance.now()
const nowUs = () => Math.round(nowMs() * 1000)

/** The broker's log dir, when this machine can read it (the bench runs next to infra/kafka). */
function brokerLogDir(): string | undefined {
  const runDir = process.env.BREAKID_KAFKA_DIR ?? join(import.meta.dirname, '..', 'infra', 'kafka', 'run')
  const props = join(runDir, 'server.properties')
  if (!existsSync(props)) return undefined
  const line = readFileSync(props, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('log.dirs='))
  const dir = line?.slice('log.dirs='.length).split(',')[0]?.trim()
  return dir && existsSync(dir) ? dir : undefined
}
const logDir = brokerLogDir()

/** Bytes of the topic's partition 0 log segments on the broker (record batches as produced). */
function logBytes(topic: string): number | null {
  if (!logDir) return null
  const dir = join(logDir, `${topic}-0`)
  if (!existsSync(dir)) return null
  return readdirSync(dir)
    .filter((f) => f.endsWith('.log'))
    .reduce((sum, f) => sum + statSync(join(dir, f)).size, 0)
}

interface RunningConsumer {
  consumer: Consumer
  joined: Promise<number> // time of GROUP_JOIN (ms)
  done: Promise<number> // time the last expected record was decoded (ms)
  setExpected(n: number): void
}

/**
 * A consumer group reading `topic` from the beginning, as the transport does: eachBatch, resolve and
 * commit after the whole batch was handled. Calls onSpan for every decoded record.
 */
async function startConsumer(topic: string, onSpan: (span: Span) => void): Promise<RunningConsumer> {
  const groupId = `${topic}-g`
  createdGroups.push(groupId)
  const consumer = kafka.consumer({
    groupId,
    sessionTimeout: 10_000,
    heartbeatInterval: 1_000,
    maxWaitTimeInMs: 200,
    retry: { retries: 10 },
  })
  let expected = Number.POSITIVE_INFINITY
  let decoded = 0
  let finish: (t: number) => void = () => {}
  const done = new Promise<number>((resolve) => {
    finish = resolve
  })
  const joined = new Promise<number>((resolve) => {
    consumer.on(consumer.events.GROUP_JOIN, () => resolve(nowMs()))
  })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  await consumer.run({
    eachBatchAutoResolve: false,
    autoCommit: false,
    eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary, heartbeat }) => {
      if (batch.messages.length === 0) return
      for (const m of batch.messages) decoded += decodeValue(m.value!, onSpan)
      resolveOffset(batch.lastOffset())
      await commitOffsetsIfNecessary({
        topics: [
          {
            topic: batch.topic,
            partitions: [
              { partition: batch.partition, offset: (BigInt(batch.lastOffset()) + 1n).toString() },
            ],
          },
        ],
      })
      await heartbeat()
      if (decoded >= expected) finish(nowMs())
    },
  })
  return {
    consumer,
    joined,
    done,
    setExpected(n: number) {
      expected = n
      if (decoded >= expected) finish(nowMs())
    },
  }
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms)
  })
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
}

// ---------- throughput ----------

interface Acc {
  produceS: number
  consumeS: number
  joinMs: number[]
  records: number
  messages: number
  valueBytes: number
  logBytes: number | null
  latencies: number[]
  latencyMessages: number
  latencyRecords: number
  latencyCpuMs: number
  produceRoundRps: number[]
  consumeRoundRps: number[]
  latencyRoundP50: number[]
}
const acc = new Map<string, Acc>(
  MODES.map((m) => [
    m.name,
    {
      produceS: 0,
      consumeS: 0,
      joinMs: [],
      records: 0,
      messages: 0,
      valueBytes: 0,
      logBytes: 0,
      latencies: [],
      latencyMessages: 0,
      latencyRecords: 0,
      latencyCpuMs: 0,
      produceRoundRps: [],
      consumeRoundRps: [],
      latencyRoundP50: [],
    },
  ]),
)

const spans = Array.from({ length: records }, (_, i) => makeSpan(i))
const encoded = spans.map((s) => codecs.span.encode(s))
const expectedChecksum = spans.reduce((sum, s) => sum + s.total_us, 0)

async function throughputRound(mode: Mode, round: number): Promise<void> {
  const a = acc.get(mode.name)!
  const topic = await newTopic(`tp-r${round}-n${mode.perMessage}${mode.gzip ? '-gz' : ''}`)
  let messages = 0
  let valueBytes = 0
  const t0 = performance.now()
  for (let i = 0; i < records; i += SEND_RECORDS) {
    const msgs = toMessages(encoded.slice(i, i + SEND_RECORDS), mode.perMessage)
    messages += msgs.length
    for (const m of msgs) valueBytes += (m.value as Buffer).length
    await send(topic, msgs, mode.gzip)
  }
  const produceS = (performance.now() - t0) / 1000
  a.produceS += produceS
  a.produceRoundRps.push(Math.round(records / produceS))

  let checksum = 0
  const tStart = nowMs()
  const c = await startConsumer(topic, (s) => {
    checksum += s.total_us
  })
  c.setExpected(records)
  const [joinedAt, doneAt] = await within(Promise.all([c.joined, c.done]), 60_000, `consume ${topic}`)
  await c.consumer.disconnect()
  if (checksum !== expectedChecksum) throw new Error(`${mode.name}: decoded records differ from produced`)
  a.consumeS += (doneAt - joinedAt) / 1000
  a.consumeRoundRps.push(Math.round(records / ((doneAt - joinedAt) / 1000)))
  a.joinMs.push(joinedAt - tStart)
  a.records += records
  a.messages += messages
  a.valueBytes += valueBytes
  const lb = logBytes(topic)
  a.logBytes = lb === null || a.logBytes === null ? null : a.logBytes + lb
}

// ---------- latency ----------

/**
 * The emitter's policy (engine/telemetry/emitter.ts): buffer encoded records, flush every FLUSH_MS or at
 * SEND_RECORDS buffered; a flush keeps sending while records are waiting, so under steady load the next
 * send leaves as soon as the previous one is acked. Containers are packed at the flush: a record never
 * waits for its container to fill, a container holds what arrived since the last send (up to N).
 */
class Emitter {
  private buf: Buffer[] = []
  private flushing: Promise<void> | undefined
  private timer: NodeJS.Timeout | undefined
  messages = 0
  constructor(
    private readonly topic: string,
    private readonly mode: Mode,
  ) {}
  start(): void {
    this.timer = setInterval(() => void this.flush(), FLUSH_MS)
  }
  push(rec: Buffer): void {
    this.buf.push(rec)
    if (this.buf.length >= SEND_RECORDS) void this.flush()
  }
  flush(): Promise<void> {
    if (!this.flushing) {
      this.flushing = this.flushAll().finally(() => {
        this.flushing = undefined
      })
    }
    return this.flushing
  }
  private async flushAll(): Promise<void> {
    while (this.buf.length > 0) {
      const msgs = toMessages(this.buf.splice(0, SEND_RECORDS), this.mode.perMessage)
      this.messages += msgs.length
      await send(this.topic, msgs, this.mode.gzip)
    }
  }
  async stop(): Promise<void> {
    clearInterval(this.timer)
    await this.flush()
    await this.flush()
  }
}

async function latencyRound(mode: Mode, round: number): Promise<void> {
  const a = acc.get(mode.name)!
  const topic = await newTopic(`lat-r${round}-n${mode.perMessage}${mode.gzip ? '-gz' : ''}`)
  const total = Math.round(latencyRate * latencySeconds)
  const warm = Math.round(latencyRate * LATENCY_WARMUP_S)
  const lat: number[] = []
  let seen = 0
  const c = await startConsumer(topic, (s) => {
    const ms = (nowUs() - s.timestamp_us) / 1000
    if (seen++ >= warm) lat.push(ms)
  })
  await within(c.joined, 30_000, `join ${topic}`)
  await sleep(300) // let the first (empty) fetch go out
  c.setExpected(total)

  const emitter = new Emitter(topic, mode)
  const cpu0 = process.cpuUsage()
  emitter.start()
  let emitted = 0
  const t0 = performance.now()
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * latencyRate))
      for (; emitted < due; emitted++) {
        const span = makeSpan(emitted)
        span.timestamp_us = nowUs()
        emitter.push(codecs.span.encode(span))
      }
      if (emitted >= total) {
        clearInterval(tick)
        resolve()
      }
    }, 2)
  })
  await emitter.stop()
  await within(c.done, 30_000, `latency consume ${topic}`)
  const cpu = process.cpuUsage(cpu0)
  await c.consumer.disconnect()
  a.latencyCpuMs += (cpu.user + cpu.system) / 1000
  a.latencyRoundP50.push(
    r1(
      quantile(
        [...lat].sort((x, y) => x - y),
        0.5,
      ),
    ),
  )
  a.latencies.push(...lat)
  a.latencyMessages += emitter.messages
  a.latencyRecords += total
}

// ---------- run ----------

const tRun = performance.now()
await admin.connect()
await producer.connect()
try {
  for (let round = 0; round < rounds; round++) {
    // rotate the start so no mode always runs first in a round
    for (let j = 0; j < MODES.length; j++) await throughputRound(MODES[(j + round) % MODES.length]!, round)
    console.error(
      `throughput round ${round + 1}/${rounds} done at ${r1((performance.now() - tRun) / 1000)} s`,
    )
  }
  for (let round = 0; round < rounds; round++) {
    for (let j = 0; j < MODES.length; j++) await latencyRound(MODES[(j + round) % MODES.length]!, round)
    console.error(`latency round ${round + 1}/${rounds} done at ${r1((performance.now() - tRun) / 1000)} s`)
  }
} finally {
  await producer.disconnect().catch(() => {})
  if (createdTopics.length > 0) await admin.deleteTopics({ topics: createdTopics }).catch(() => {})
  if (createdGroups.length > 0) await admin.deleteGroups(createdGroups).catch(() => {})
  await admin.disconnect().catch(() => {})
}

const base = acc.get(MODES[0]!.name)!
const baseProd = base.records / base.produceS
const baseCons = base.records / base.consumeS
const baseLog = base.logBytes === null ? null : base.logBytes / base.records
const results = MODES.map((mode) => {
  const a = acc.get(mode.name)!
  const prod = a.records / a.produceS
  const cons = a.records / a.consumeS
  const logPerRec = a.logBytes === null ? null : a.logBytes / a.records
  const sorted = [...a.latencies].sort((x, y) => x - y)
  return {
    mode: mode.name,
    records_per_message: mode.perMessage,
    gzip: mode.gzip,
    produce_records_per_s: Math.round(prod),
    produce_vs_a: r2(prod / baseProd),
    consume_records_per_s: Math.round(cons),
    consume_vs_a: r2(cons / baseCons),
    value_bytes_per_record: r1(a.valueBytes / a.records),
    log_bytes_per_record: logPerRec === null ? null : r1(logPerRec),
    log_bytes_vs_a: logPerRec === null || baseLog === null ? null : r2(logPerRec / baseLog),
    messages_per_round: a.messages / rounds,
    consumer_join_ms: a.joinMs.map(Math.round),
    latency_samples: sorted.length,
    latency_records_per_message: r1(a.latencyRecords / a.latencyMessages),
    latency_p50_ms: r1(quantile(sorted, 0.5)),
    latency_p90_ms: r1(quantile(sorted, 0.9)),
    latency_p99_ms: r1(quantile(sorted, 0.99)),
    latency_max_ms: r1(sorted.at(-1) ?? Number.NaN),
    client_cpu_ms_per_1k_records_at_rate: r1((a.latencyCpuMs / a.latencyRecords) * 1000),
    produce_records_per_s_by_round: a.produceRoundRps,
    consume_records_per_s_by_round: a.consumeRoundRps,
    latency_p50_ms_by_round: a.latencyRoundP50,
  }
})

console.table(
  results.map((r) => ({
    mode: r.mode,
    'prod rec/s': r.produce_records_per_s,
    'prod ×a': r.produce_vs_a,
    'cons rec/s': r.consume_records_per_s,
    'cons ×a': r.consume_vs_a,
    'value B/rec': r.value_bytes_per_record,
    'log B/rec': r.log_bytes_per_record,
    'log ×a': r.log_bytes_vs_a,
    'lat rec/msg': r.latency_records_per_message,
    'p50 ms': r.latency_p50_ms,
    'p99 ms': r.latency_p99_ms,
    'cpu ms/1k': r.client_cpu_ms_per_1k_records_at_rate,
  })),
)
const wallS = r1((performance.now() - tRun) / 1000)
console.log(`wall ${wallS} s`)

const report = {
  bench: 'kafka-batching',
  question:
    'one Avro single-object span per Kafka message, or a container of N spans from one writer per message',
  broker: {
    brokers,
    kafkajs: '2.2.4',
    producer: 'idempotent, acks -1, maxInFlightRequests 1',
    partitions: 1,
  },
  framing:
    'contract/container.ts: magic BKC\\x01, u32 BE record count, then per record u32 BE length + Avro single-object bytes',
  throughput: {
    records_per_round: records,
    rounds,
    records_per_send: SEND_RECORDS,
    produce: 'sequential sends, first send to last ack; records pre-encoded (same cost in every mode)',
    consume:
      'fresh consumer group from the beginning, eachBatch, decode every record, commit per batch; ' +
      'timed from GROUP_JOIN to the last record decoded',
    bytes: 'value_bytes = sum of message values; log_bytes = partition log size on the broker',
  },
  latency: {
    rate_per_s: latencyRate,
    seconds_per_round: latencySeconds,
    rounds,
    warmup_dropped_s: LATENCY_WARMUP_S,
    emitter: `flush every ${FLUSH_MS} ms or at ${SEND_RECORDS} buffered records; containers packed at flush`,
    measured: 'emit (encode) time stamped in timestamp_us -> record decoded in the consumer (same process)',
    client_cpu:
      'process CPU (producer + consumer, one process; broker excluded) from the first emit until the ' +
      'last record was decoded, per 1000 records',
  },
  wall_s: wallS,
  machine: machineInfo(),
  results,
}
writeFileSync(
  join(import.meta.dirname, 'results', 'kafka-batching.json'),
  JSON.stringify(report, null, 2) + '\n',
)
