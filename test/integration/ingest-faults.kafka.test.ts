/**
 * `breakid ingest` processes against the real broker and a ClickHouse server that misbehaves
 * (test/helpers/clickhouse-server.ts: ClickHouse's HTTP interface over chDB in its own process):
 *
 * - killed while its inserts hang, replayed by a new process while ClickHouse hangs again, joined
 *   by a second member mid-hang (a rebalance while inserts are in flight): every span stored once,
 *   in the spans and in the rollups (issue 11.9: 12.6 % of rows doubled before);
 * - started while ClickHouse is down: it says so, waits, and stores everything once it is up.
 *
 * That the row counts would see a double is shown by the control tests of test/unit/ingester.test.ts
 * (a replay that cuts its blocks elsewhere stores the rows twice).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { KafkaTransport } from '../../bus/kafka.ts'
import { packContainer } from '../../contract/container.ts'
import { FleetGenerator } from '../../contract/synthetic.ts'
import { codecs, TOPICS } from '../../contract/topics.ts'
import { type ClickHouse, openClickHouse } from '../../store/client.ts'
import { migrate } from '../../store/migrations.ts'
import { spawnClickHouseServer } from '../helpers/clickhouse-server.ts'
import { createTopics, kafkaBrokers, requireKafka } from '../helpers/kafka.ts'
import { type BreakidProcess, startBreakid } from '../helpers/processes.ts'
import { waitFor } from '../helpers/wait.ts'

let dir = ''
const running: BreakidProcess[] = []

before(async () => {
  await requireKafka()
  dir = await mkdtemp(join(tmpdir(), 'breakid-ingest-faults-'))
})

after(async () => {
  if (process.env.BREAKID_TEST_LOG) for (const p of running) console.error(p.output())
  for (const p of running) await p.kill('SIGKILL')
  await rm(dir, { recursive: true, force: true })
})

/** `count` fleet spans in containers of up to 64 per instance, keyed by instance, onto the prefix's spans topic. */
async function produceSpans(prefix: string, gen: FleetGenerator, count: number): Promise<void> {
  const transport = new KafkaTransport({ brokers: kafkaBrokers(), topicPrefix: prefix })
  const producer = transport.producer()
  await producer.start()
  const byInstance = new Map<string, Buffer[]>()
  for (let i = 0; i < count; i++) {
    const s = gen.next()
    const list = byInstance.get(s.instance) ?? []
    byInstance.set(s.instance, list)
    list.push(codecs.span.encode(s))
  }
  const messages = [...byInstance].flatMap(([key, records]) => {
    const out = []
    for (let i = 0; i < records.length; i += 64)
      out.push({ key, value: packContainer(records.slice(i, i + 64)) })
    return out
  })
  for (let i = 0; i < messages.length; i += 40) await producer.send(TOPICS.spans, messages.slice(i, i + 40))
  await producer.stop()
}

/** Whether a table exists (asked without naming its database, which may not exist yet either). */
async function exists(ch: ClickHouse, table: string): Promise<boolean> {
  const server = openClickHouse({ url: ch.url!, dataDir: join(dir, 'unused'), database: 'default' })
  const rs = await server.client.query({
    query: 'SELECT count() > 0 AS e FROM system.tables WHERE database = {db:String} AND name = {t:String}',
    query_params: { db: ch.database, t: table },
    format: 'JSONEachRow',
  })
  const [r] = await rs.json<{ e: number | boolean }>()
  await server.close()
  return Boolean(Number(r?.e))
}

function ingest(prefix: string, clickhouseUrl: string, database: string): BreakidProcess {
  const p = startBreakid(['ingest'], {
    KAFKA_BROKERS: kafkaBrokers().join(','),
    CLICKHOUSE_URL: clickhouseUrl,
    BREAKID_TOPIC_PREFIX: prefix,
    BREAKID_DATABASE: database,
    BREAKID_LOG_LEVEL: 'info',
    // several ingest processes on one host: each its own free port for /metrics
    BREAKID_METRICS_PORT: '0',
  })
  running.push(p)
  return p
}

async function counts(ch: ClickHouse): Promise<{ rows: number; ids: number; rolled: number }> {
  const rs = await ch.client.query({
    query: `SELECT toString(count()) AS rows, toString(uniqExact(trace_id)) AS ids,
                   toString((SELECT sum(requests) FROM ${ch.database}.spans_1m)) AS rolled FROM ${ch.database}.spans`,
    format: 'JSONEachRow',
  })
  const [r] = await rs.json<{ rows: string; ids: string; rolled: string }>()
  return { rows: Number(r!.rows), ids: Number(r!.ids), rolled: Number(r!.rolled) }
}

test('killed during a hung ClickHouse, replayed, rebalanced mid-hang: every span stored once', async () => {
  const prefix = `faults-${randomBytes(4).toString('hex')}-`
  await createTopics(
    kafkaBrokers(),
    Object.values(TOPICS).map((t) => prefix + t),
    2,
  )
  const server = await spawnClickHouseServer(join(dir, 'hung'))
  const ch = openClickHouse({ url: server.url, dataDir: join(dir, 'unused'), database: 'faults' })
  try {
    // now, not a fixed past date: the store keeps raw spans for 7 days
    const gen = new FleetGenerator({
      instances: 12,
      rpsPerInstance: 200,
      seed: 21,
      startUs: Date.now() * 1000,
    })
    await produceSpans(prefix, gen, 12_000)
    await migrate(ch) // the schema first: its bookkeeping insert would hang below too

    // 1. inserts run but their answers never come; the ingester is killed with blocks in flight
    const { inserts: before } = await server.control({ hangInserts: 'after' })
    const first = ingest(prefix, server.url, 'faults')
    await waitFor(async () => (await server.control()).inserts >= before + 2, {
      timeoutMs: 60_000,
      message: 'inserts reached ClickHouse',
    })
    await first.kill('SIGKILL')
    assert.ok((await counts(ch)).rows > 0, 'rows were stored whose offsets were never committed')

    // 2. ClickHouse now hangs before inserting; a new process replays the uncommitted range and
    //    waits longer than the group's session timeout (10 s) without losing its partitions
    await server.control({ hangInserts: 'before' })
    const second = ingest(prefix, server.url, 'faults')
    await waitFor(async () => (await server.control()).held >= 1, {
      timeoutMs: 60_000,
      message: 'an insert held',
    })
    await new Promise((r) => setTimeout(r, 12_000))
    await produceSpans(prefix, gen, 6_000)

    // 3. a second member joins while inserts hang: a rebalance with blocks in flight
    const third = ingest(prefix, server.url, 'faults')
    await new Promise((r) => setTimeout(r, 5_000))
    await server.control({ hangInserts: 'none' })

    await waitFor(async () => (await counts(ch)).rows >= 18_000, {
      timeoutMs: 90_000,
      message: 'all spans stored',
    })
    // a late duplicate would land after the last block: give the members time to settle
    await new Promise((r) => setTimeout(r, 4_000))
    assert.equal(await second.kill('SIGTERM'), 0)
    assert.equal(await third.kill('SIGTERM'), 0)
    assert.deepEqual(await counts(ch), { rows: 18_000, ids: 18_000, rolled: 18_000 })
  } finally {
    await ch.close()
    await server.stop()
  }
})

test('started while ClickHouse is down: it says so, waits, then stores everything', async () => {
  const prefix = `down-${randomBytes(4).toString('hex')}-`
  await createTopics(
    kafkaBrokers(),
    Object.values(TOPICS).map((t) => prefix + t),
    1,
  )
  await produceSpans(prefix, new FleetGenerator({ instances: 4, seed: 5, startUs: Date.now() * 1000 }), 2_000)
  // a free port, with nothing listening on it yet
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port
      s.close(() => resolve(p))
    })
  })
  const url = `http://127.0.0.1:${port}`
  const p = ingest(prefix, url, 'down')
  await p.waitForOutput(/ClickHouse at http:\/\/127\.0\.0\.1:\d+\/ is not reachable; waiting for it/)
  await new Promise((r) => setTimeout(r, 2_000))
  assert.equal(p.child.exitCode, null, 'still running, not exited 1')
  const server = await spawnClickHouseServer(join(dir, 'down'), port)
  const ch = openClickHouse({ url, dataDir: join(dir, 'unused'), database: 'down' })
  try {
    // the ingester creates the tables once the server is up; until then there is nothing to count
    const stored = async () => ((await exists(ch, 'spans_1m')) ? (await counts(ch)).rows : 0)
    await waitFor(async () => (await stored()) >= 2_000, {
      timeoutMs: 90_000,
      message: 'spans stored once ClickHouse is up',
    })
    assert.equal(await p.kill('SIGTERM'), 0)
    assert.deepEqual(await counts(ch), { rows: 2_000, ids: 2_000, rolled: 2_000 })
  } finally {
    await ch.close()
    await server.stop()
  }
})
