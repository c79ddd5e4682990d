/**
 * The ingest path end to end: fleet-generator spans, packed in containers of 64 per instance as the
 * engine sends them, are produced to the real broker first; then an ingest process — the real
 * Ingester on the Kafka transport, writing into chDB with the rollup views — consumes them all. It
 * prints one JSON line: spans per CPU-second of the ingest process (user + system, chDB's threads
 * included, from the first fetch to the last commit), spans per wall second, cores used, peak RSS, and
 * the broker's CPU over the same time. The stored count must equal the produced count.
 *
 * With --floor it also measures the parts alone, each in its own process: Kafka fetch (a consumer
 * that only counts records), the conversion (records → Native blocks, no insert) and chDB's insert
 * of ready blocks (no Kafka) — what the remaining cost is made of.
 *
 * Run: KAFKA_BROKERS=127.0.0.1:9192 node --import tsx bench/ingest.ts [--spans 2000000] [--partitions 6] [--floor]
 */
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { parseArgs } from 'node:util'
import pino from 'pino'
import { Kafka, logLevel, Partitioners } from 'kafkajs'
import '../bus/kafkajs-idle-fix.ts'
import { KafkaTransport } from '../bus/kafka.ts'
import { packContainer } from '../contract/container.ts'
import { FleetGenerator } from '../contract/synthetic.ts'
import { codecs, TOPICS } from '../contract/topics.ts'
import { machineInfo } from '../core/machine.ts'
import { Ingester } from '../ingest/ingester.ts'
import { ingestRoutes } from '../ingest/routes.ts'
import { openClickHouse } from '../store/client.ts'
import { migrate } from '../store/migrations.ts'

const { values: args } = parseArgs({
  options: {
    spans: { type: 'string', default: '2000000' },
    partitions: { type: 'string', default: '6' },
    'block-rows': { type: 'string', default: '100000' },
    floor: { type: 'boolean', default: false },
    child: { type: 'string' },
    prefix: { type: 'string' },
    out: { type: 'string', default: join(import.meta.dirname, 'results', 'ingest.json') },
  },
})
const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9192').split(',')
const SPANS = Number(args.spans)
const BLOCK_ROWS = Number(args['block-rows'])

const cpuS = () => {
  const c = process.cpuUsage()
  return (c.user + c.system) / 1e6
}

/** What a child process reports: its CPU and wall time over the measured part, and its peak RSS. */
interface ChildReport {
  cpu_s: number
  wall_s: number
  spans: number
  stored?: number
  peak_rss_mb: number
}

function report(r: Omit<ChildReport, 'peak_rss_mb'>): void {
  process.stdout.write(
    `${JSON.stringify({ ...r, peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024) })}\n`,
  )
}

/** The ingest process: consume everything the parent produced into a fresh chDB store. */
async function childIngest(prefix: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'breakid-bench-ingest-'))
  const ch = openClickHouse({ dataDir: dir, database: 'bench' })
  await migrate(ch)
  const transport = new KafkaTransport({ brokers, topicPrefix: prefix, clientId: 'bench-ingest' })
  const logger = pino({ level: 'warn' })
  const ingester = new Ingester({ transport, clickhouse: ch, logger, blockRows: BLOCK_ROWS })
  const c0 = cpuS()
  const t0 = performance.now()
  await ingester.start()
  while (
    ingester.counters.get('rows_stored_total', { table: 'spans' }) < SPANS ||
    ingester.blocksInFlight > 0
  ) {
    await new Promise((r) => setTimeout(r, 50))
  }
  const cpu = cpuS() - c0
  const wall = (performance.now() - t0) / 1000
  await ingester.stop()
  const rs = await ch.client.query({ query: 'SELECT count() AS n FROM bench.spans', format: 'JSONEachRow' })
  const [{ n }] = (await rs.json<{ n: string }>()) as [{ n: string }]
  report({ cpu_s: cpu, wall_s: wall, spans: SPANS, stored: Number(n) })
  await ch.close()
  // chDB may still be finishing a merge in it: the directory goes with the process, best effort
  process.once('exit', () => rmSync(dir, { recursive: true, force: true, maxRetries: 3 }))
}

/** Floor: Kafka fetch alone — a consumer of the same topic that only counts the records. */
async function childFetch(prefix: string): Promise<void> {
  const kafka = new Kafka({ clientId: 'bench-fetch', brokers, logLevel: logLevel.WARN })
  const consumer = kafka.consumer({
    groupId: `${prefix}fetch-only`,
    maxBytesPerPartition: 8 * 1024 * 1024,
    maxBytes: 32 * 1024 * 1024,
    maxWaitTimeInMs: 200,
  })
  await consumer.connect()
  await consumer.subscribe({ topic: prefix + TOPICS.spans, fromBeginning: true })
  let records = 0
  const c0 = cpuS()
  const t0 = performance.now()
  let done: () => void = () => {}
  const finished = new Promise<void>((r) => {
    done = r
  })
  await consumer.run({
    eachBatchAutoResolve: true,
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) records += m.value!.readUInt32BE(4)
      if (records >= SPANS) done()
    },
  })
  await finished
  report({ cpu_s: cpuS() - c0, wall_s: (performance.now() - t0) / 1000, spans: records })
  await consumer.disconnect()
}

/** Floor: conversion alone, and chDB's insert of the converted blocks alone, over the same messages. */
async function childConvertAndInsert(): Promise<void> {
  const messages = makeMessages()
  const route = ingestRoutes().get(TOPICS.spans)!
  const dir = mkdtempSync(join(tmpdir(), 'breakid-bench-floor-'))
  const ch = openClickHouse({ dataDir: dir, database: 'bench' })
  await migrate(ch)
  // one block reused, as the ingester's pool does; each full block's bytes kept for the insert phase
  const bodies: Buffer[] = []
  const block = route.acquire()
  const c0 = cpuS()
  const t0 = performance.now()
  for (const [i, value] of messages.entries()) {
    block.append(
      { topic: TOPICS.spans, partition: 0, offset: String(i), key: null, value, headers: {}, timestampMs: 0 },
      [],
    )
    if (block.native.rows >= BLOCK_ROWS || i === messages.length - 1) {
      bodies.push(Buffer.from(block.native.encode()))
      block.reset()
    }
  }
  const convert = { cpu_s: cpuS() - c0, wall_s: (performance.now() - t0) / 1000 }
  const columns = route.table.columns.map((c) => `\`${c.name}\``).join(', ')
  const c1 = cpuS()
  const t1 = performance.now()
  for (const [i, body] of bodies.entries()) {
    const r = await ch.client.exec({
      query: `INSERT INTO bench.spans (${columns}) FORMAT Native`,
      values: Readable.from([body], { objectMode: false }),
      clickhouse_settings: { insert_deduplication_token: `floor/${i}` },
    })
    for await (const _ of r.stream) {
    }
  }
  const insert = { cpu_s: cpuS() - c1, wall_s: (performance.now() - t1) / 1000 }
  process.stdout.write(`${JSON.stringify({ convert, insert, spans: SPANS })}\n`)
  await ch.close()
  process.once('exit', () => rmSync(dir, { recursive: true, force: true, maxRetries: 3 }))
}

/** The engine's messages: containers of up to 64 spans of one instance, keyed by the instance. */
function makeMessages(keys?: string[]): Buffer[] {
  const gen = new FleetGenerator({ seed: 11 })
  const open = new Map<string, Buffer[]>()
  const out: Buffer[] = []
  const flush = (instance: string, list: Buffer[]) => {
    out.push(packContainer(list))
    keys?.push(instance)
    open.set(instance, [])
  }
  for (let i = 0; i < SPANS; i++) {
    const s = gen.next()
    const list = open.get(s.instance) ?? []
    open.set(s.instance, list)
    list.push(codecs.span.encode(s))
    if (list.length === 64) flush(s.instance, list)
  }
  for (const [instance, list] of open) if (list.length > 0) flush(instance, list)
  return out
}

async function produce(prefix: string): Promise<void> {
  const transport = new KafkaTransport({ brokers, topicPrefix: prefix })
  await transport.ensureTopics(Object.values(TOPICS), Number(args.partitions))
  const keys: string[] = []
  const messages = makeMessages(keys)
  const kafka = new Kafka({ clientId: 'bench-producer', brokers, logLevel: logLevel.WARN })
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  // a record batch per partition stays under the broker's 1 MiB message size: 48 containers a send
  const sends: Promise<unknown>[] = []
  for (let i = 0; i < messages.length; i += 48) {
    sends.push(
      producer.send({
        topic: prefix + TOPICS.spans,
        acks: -1,
        messages: messages.slice(i, i + 48).map((value, j) => ({ key: keys[i + j]!, value })),
      }),
    )
    if (sends.length === 8) await Promise.all(sends.splice(0))
  }
  await Promise.all(sends)
  await producer.disconnect()
}

/** The broker's CPU seconds so far (the JVM whose command line runs kafka.Kafka), if it is on this host. */
function brokerCpuS(): number | undefined {
  const tick = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('kafka.Kafka')) continue
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      return (Number(fields[11]) + Number(fields[12])) / tick
    } catch {}
  }
  return undefined
}

function runChild(mode: string, prefix: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        import.meta.filename,
        '--child',
        mode,
        '--prefix',
        prefix,
        '--spans',
        String(SPANS),
        '--block-rows',
        String(BLOCK_ROWS),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'], env: process.env },
    )
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
    })
    child.on('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? ''
      if (code !== 0 || !line.startsWith('{')) reject(new Error(`${mode} child exited ${code}: ${out}`))
      else resolve(JSON.parse(line) as Record<string, unknown>)
    })
  })
}

if (args.child === 'ingest') await childIngest(args.prefix!)
else if (args.child === 'fetch') await childFetch(args.prefix!)
else if (args.child === 'convert-insert') await childConvertAndInsert()
else {
  const prefix = `bench-ingest-${Date.now().toString(36)}-`
  const load0 = loadavg()[0]!
  const tp = performance.now()
  await produce(prefix)
  const produceS = (performance.now() - tp) / 1000
  const b0 = brokerCpuS()
  const ingest = (await runChild('ingest', prefix)) as unknown as ChildReport
  const b1 = brokerCpuS()
  if (ingest.stored !== SPANS) throw new Error(`stored ${ingest.stored} of ${SPANS} spans`)
  const result = {
    bench: 'ingest',
    spans: SPANS,
    stored: ingest.stored,
    spans_per_cpu_second: Math.round(SPANS / ingest.cpu_s),
    spans_per_second: Math.round(SPANS / ingest.wall_s),
    cores_used: Number((ingest.cpu_s / ingest.wall_s).toFixed(2)),
    peak_rss_mb: ingest.peak_rss_mb,
    ingest_cpu_s: Number(ingest.cpu_s.toFixed(2)),
    broker_cpu_s: b0 === undefined || b1 === undefined ? null : Number((b1 - b0).toFixed(2)),
  }
  console.log(JSON.stringify(result))
  const floor: Record<string, unknown> = {}
  if (args.floor) {
    const fetch = (await runChild('fetch', prefix)) as unknown as ChildReport
    const ci = (await runChild('convert-insert', prefix)) as { convert: ChildReport; insert: ChildReport }
    const perSpan = (r: { cpu_s: number }) => Number(((r.cpu_s * 1e6) / SPANS).toFixed(3))
    Object.assign(floor, {
      kafka_fetch_us_per_span: perSpan(fetch),
      convert_us_per_span: perSpan(ci.convert),
      chdb_insert_us_per_span: perSpan(ci.insert),
      ingest_us_per_span: Number(((ingest.cpu_s * 1e6) / SPANS).toFixed(3)),
    })
    console.log(JSON.stringify({ bench: 'ingest-floor', ...floor }))
  }
  const record = {
    ...result,
    options: {
      partitions: Number(args.partitions),
      block_rows: BLOCK_ROWS,
      records_per_message: 64,
      brokers,
    },
    produce_s: Number(produceS.toFixed(1)),
    floor: args.floor ? floor : undefined,
    note: `measured from the ingest process's first fetch to its last commit; load average ${load0.toFixed(1)} at start on a machine shared with other work`,
    peers_spans_per_core_second: {
      otel_collector_clickhouse_exporter: 137_000,
      rotel: 462_000,
      clickhouse_kafka_engine_per_consumer: 262_000,
    },
    machine: machineInfo(),
  }
  const previous = existsSync(args.out!)
    ? (JSON.parse(readFileSync(args.out!, 'utf8')) as { runs?: unknown[] })
    : {}
  writeFileSync(
    args.out!,
    `${JSON.stringify({ bench: 'ingest', runs: [...(previous.runs ?? []), record] }, null, 2)}\n`,
  )
}
