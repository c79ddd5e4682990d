/**
 * Scale-out on the real broker: three `breakid ingest` and two `breakid detect` processes share six
 * partitions (one consumer group each), fed six instances of simulated telemetry (eval/scenarios.ts)
 * keyed by instance, with two injected faults. Mid-stream one ingest and one detect process are
 * killed (SIGKILL: no drain, no last checkpoint). Their partitions move to the survivors: ingest
 * replays uncommitted blocks with the same deduplication tokens, detect resumes the killed member's
 * instances from their last checkpoint. In the end every span is stored once and each fault is alerted
 * once (one alert id of its primary type on its instance, none elsewhere).
 *
 * Catching up a backlog (the killed member's partitions wait for the session timeout, 10 s, and are
 * replayed from its last checkpoint) feeds the detectors spans and samples of different seconds out of
 * order across the two topics, which the silence detector takes for silent instances: the faults
 * start after the survivor has caught up, and `instance_silent` is not asserted on.
 *
 * The store is a ClickHouse server shared by all five processes (ClickHouse's HTTP interface over chDB,
 * test/helpers/clickhouse-server.ts). The event times are the scenario's (2026-01-01), so the
 * processes keep data as long as they are told to (retention 3 650 days) instead of 7 days.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { KafkaTransport } from '../../bus/kafka.ts'
import { packContainer } from '../../contract/container.ts'
import { expectedTypes } from '../../eval/expected.ts'
import { codecs, TOPICS } from '../../contract/topics.ts'
import { groundTruth, type Scenario, simulate } from '../../eval/scenarios.ts'
import { type ClickHouse, openClickHouse } from '../../store/client.ts'
import { migrate } from '../../store/migrations.ts'
import { spawnClickHouseServer } from '../helpers/clickhouse-server.ts'
import { createTopics, kafkaBrokers, requireKafka } from '../helpers/kafka.ts'
import { type BreakidProcess, startBreakid } from '../helpers/processes.ts'
import { waitFor } from '../helpers/wait.ts'

const PARTITIONS = 6
let dir = ''
const running: BreakidProcess[] = []

before(async () => {
  await requireKafka()
  dir = await mkdtemp(join(tmpdir(), 'breakid-scale-out-'))
})

after(async () => {
  if (process.env.BREAKID_TEST_LOG) for (const p of running) console.error(p.output())
  for (const p of running) await p.kill('SIGKILL')
  await rm(dir, { recursive: true, force: true })
})

const scenario: Scenario = {
  name: 'scale-out',
  seed: 42,
  durationS: 330,
  instances: 6,
  baseRps: 120,
  noise: 0.05,
  load: { kind: 'steady' },
  faults: [
    { type: 'data_starvation', instance: 1, startS: 190, endS: 280, severity: 'high' },
    { type: 'error_burst', instance: 4, startS: 190, endS: 280, severity: 'high' },
  ],
  clean: false,
}

async function scalar(ch: ClickHouse, query: string): Promise<number> {
  const rs = await ch.client.query({ query, format: 'JSONEachRow' })
  const [row] = await rs.json<Record<string, string | number>>()
  return Number(Object.values(row!)[0])
}

test('3 ingest + 2 detect over 6 partitions, one of each killed: every span stored once, each fault alerted once', async () => {
  const prefix = `scale-${randomBytes(4).toString('hex')}-`
  await createTopics(
    kafkaBrokers(),
    Object.values(TOPICS).map((t) => prefix + t),
    PARTITIONS,
  )
  const server = await spawnClickHouseServer(join(dir, 'store'))
  const ch = openClickHouse({ url: server.url, dataDir: join(dir, 'unused'), database: 'scale' })
  await migrate(ch)
  const env = {
    KAFKA_BROKERS: kafkaBrokers().join(','),
    CLICKHOUSE_URL: server.url,
    BREAKID_TOPIC_PREFIX: prefix,
    BREAKID_DATABASE: 'scale',
    BREAKID_SPAN_RETENTION_DAYS: '3650',
    BREAKID_RETENTION_DAYS: '3650',
    BREAKID_LOG_LEVEL: process.env.BREAKID_TEST_PROCESS_LOG ?? 'info',
    // five services on one host: each its own free port for /metrics
    BREAKID_METRICS_PORT: '0',
  }
  const start = (command: 'ingest' | 'detect', i: number) => {
    const p = startBreakid([command, '--instance', `${command}-${i}`], env)
    running.push(p)
    return p
  }
  try {
    const ingests = [0, 1, 2].map((i) => start('ingest', i))
    const detects = [0, 1].map((i) => start('detect', i))
    for (const p of [...ingests, ...detects]) await p.waitForOutput(/"msg":"running"/)

    const transport = new KafkaTransport({ brokers: kafkaBrokers(), topicPrefix: prefix })
    const producer = transport.producer()
    await producer.start()
    const steps = [...simulate(scenario)]
    let spans = 0
    const send = async (from: number, to: number) => {
      for (const step of steps.slice(from, to)) {
        const byInstance = new Map<string, Buffer[]>()
        for (const s of step.spans) {
          const list = byInstance.get(s.instance) ?? []
          byInstance.set(s.instance, list)
          list.push(codecs.span.encode(s))
        }
        spans += step.spans.length
        // keyed by instance, as the engine sends them: one instance's records stay on one partition
        await producer.send(
          TOPICS.spans,
          [...byInstance].map(([key, records]) => ({ key, value: packContainer(records) })),
        )
        await producer.send(
          TOPICS.hw,
          step.hw.map((h) => ({ key: h.instance, value: codecs.hw.encode(h) })),
        )
        // ten simulated seconds a wall second: the consumers keep up, so spans and samples of the
        // same seconds reach the detectors together, as they do live (a backlog of one topic ahead of
        // the other looks like silence to the detectors)
        await new Promise((r) => setTimeout(r, 100))
      }
    }
    // the first 80 s of telemetry, then one ingest and one detect process die without a word; the
    // faults start at 190 s, after the survivors caught up (see the note on catching up below)
    await send(0, 80)
    await waitFor(async () => (await scalar(ch, 'SELECT count() FROM scale.spans')) > 0, {
      timeoutMs: 60_000,
      message: 'spans stored',
    })
    await ingests[1]!.kill('SIGKILL')
    await detects[1]!.kill('SIGKILL')
    await send(80, steps.length)
    await producer.stop()

    await waitFor(async () => (await scalar(ch, 'SELECT count() FROM scale.spans')) >= spans, {
      timeoutMs: 120_000,
      message: `all ${spans} spans stored`,
    }).catch(async (err) => {
      const stored = await scalar(ch, 'SELECT count() FROM scale.spans')
      throw new Error(`${(err as Error).message} (${stored} stored)`)
    })
    // detect drains into its last checkpoint; the alerts it published are stored by ingest
    assert.equal(await detects[0]!.kill('SIGTERM'), 0)
    const faults = groundTruth(scenario)
    await waitFor(
      async () => {
        for (const f of faults) {
          const n = await scalar(
            ch,
            `SELECT uniqExact(id) FROM scale.alerts WHERE type = '${expectedTypes(f.type).primary[0]}' AND instance = '${f.instance}'`,
          )
          if (n === 0) return false
        }
        return true
      },
      { timeoutMs: 60_000, message: 'the faults alerted' },
    )
    await new Promise((r) => setTimeout(r, 3_000)) // a late duplicate would arrive now
    for (const p of [ingests[0]!, ingests[2]!]) assert.equal(await p.kill('SIGTERM'), 0)

    assert.equal(await scalar(ch, 'SELECT count() FROM scale.spans'), spans, 'every span stored')
    assert.equal(await scalar(ch, 'SELECT uniqExact(trace_id) FROM scale.spans'), spans, '…once')
    assert.equal(await scalar(ch, 'SELECT sum(requests) FROM scale.spans_1m'), spans, '…in the rollups too')
    for (const f of faults) {
      const type = expectedTypes(f.type).primary[0]
      const ids = await scalar(
        ch,
        // one alert is one id: its firing and resolved rows collapse to the newest on merge
        `SELECT uniqExact(id) FROM scale.alerts WHERE type = '${type}' AND instance = '${f.instance}'`,
      )
      assert.equal(ids, 1, `${f.type} on ${f.instance}: one ${type} alert`)
      const elsewhere = await scalar(
        ch,
        `SELECT uniqExact(id) FROM scale.alerts WHERE type = '${type}' AND instance != '${f.instance}'`,
      )
      assert.equal(elsewhere, 0, `no ${type} alert on another instance`)
    }
  } finally {
    await ch.close()
    await server.stop()
  }
})
