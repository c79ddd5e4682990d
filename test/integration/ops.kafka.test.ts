/**
 * The ops endpoints against a real Kafka broker: the consumer lag on /metrics comes from the broker
 * (committed group offsets against high watermarks, per partition) and moves with the record
 * counters while a service runs. First in-process with a known backlog on two partitions, then the
 * `breakid ingest`, `detect` and `notify` commands as separate processes, scraped over HTTP as
 * Prometheus (or curl) would. Never skipped: without a broker it fails.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer as createHttpServer } from 'node:http'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { after, before, test } from 'node:test'
import { OpsServer } from '../../app/ops.ts'
import { KafkaTransport } from '../../bus/kafka.ts'
import { encodeContainer } from '../../contract/container.ts'
import { makeAlert, makeHwSample, makeSpan } from '../../contract/synthetic.ts'
import { codecs, TOPICS } from '../../contract/topics.ts'
import { createLogger } from '../../core/logger.ts'
import { Ingester } from '../../ingest/ingester.ts'
import { startReceiver } from '../../notify/receiver.ts'
import { type ClickHouse, openClickHouse } from '../../store/client.ts'
import { migrate } from '../../store/migrations.ts'
import { kafkaBrokers, requireKafka, uniqueTopic } from '../helpers/kafka.ts'
import { type Exposition, parseExposition, value } from '../helpers/prometheus.ts'
import { waitFor } from '../helpers/wait.ts'

const ROOT = resolve(import.meta.dirname, '../..')
const logger = createLogger(process.env.BREAKID_TEST_LOG ?? 'silent')
let dir = ''

before(async () => {
  await requireKafka()
  dir = await mkdtemp(join(tmpdir(), 'breakid-ops-kafka-'))
})

after(async () => {
  await rm(dir, { recursive: true, force: true })
})

function transport(prefix: string): KafkaTransport {
  return new KafkaTransport({
    brokers: kafkaBrokers(),
    logger,
    topicPrefix: prefix,
    handlerRetryDelayMs: 100,
  })
}

/** `n` spans from `from` in containers of 10, alternating two instances (keys) across partitions */
async function sendSpans(kafka: KafkaTransport, from: number, n: number): Promise<void> {
  const producer = kafka.producer()
  await producer.start()
  try {
    for (let i = 0; i < n; i += 10) {
      const instance = `engine-${(i / 10) % 2}`
      const spans = Array.from({ length: Math.min(10, n - i) }, (_, j) =>
        makeSpan(from + i + j, { instance, request_id: `req-${from + i + j}` }),
      )
      await producer.send(TOPICS.spans, [{ key: instance, value: encodeContainer(codecs.span, spans) }])
    }
    await producer.send(TOPICS.hw, [{ key: 'engine-0', value: codecs.hw.encode(makeHwSample(from)) }])
  } finally {
    await producer.stop()
  }
}

/** ops endpoints of `breakid collect` processes */
const collectBases = new Set<string>()

async function scrape(base: string): Promise<Exposition> {
  const res = await fetch(`${base}/metrics`)
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
  // collect's counters are not described (untyped); every other family must have HELP and TYPE
  return parseExposition(await res.text(), { allowUntyped: collectBases.has(base) })
}

const lagSamples = (e: Exposition, group: string, topic: string) =>
  e.samples.filter(
    (s) => s.name === 'breakid_consumer_lag_messages' && s.labels.group === group && s.labels.topic === topic,
  )
const totalLag = (e: Exposition, group: string, topic: string) =>
  lagSamples(e, group, topic).reduce((sum, s) => sum + s.value, 0)
/** a counter that may not have a series yet */
const counter = (e: Exposition, name: string, labels: Record<string, string>) =>
  e.samples.some((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    ? value(e, name, labels)
    : 0

test('in-process: lag per partition from the broker, before and while the ingester consumes', async () => {
  const prefix = `${uniqueTopic('ops')}.`
  const kafka = transport(prefix)
  await kafka.ensureTopics(Object.values(TOPICS), 2)
  await sendSpans(kafka, 0, 60) // 6 containers over two keys
  const ch: ClickHouse = openClickHouse({ dataDir: join(dir, 'inproc'), database: 'ops' })
  await migrate(ch)
  const ingester = new Ingester({ transport: kafka, clickhouse: ch, logger })
  const ops = new OpsServer({ logger, service: 'ingest' })
  ops.register(ingester.counters)
  ops.watchClickHouse(ch)
  ops.watchConsumer(kafka, ingester.consumer)
  ops.markStarted()
  const base = await ops.listen('127.0.0.1', 0)
  try {
    // nothing committed yet: each partition's lag is its whole log
    let e = await scrape(base)
    const partitions = lagSamples(e, 'breakid-ingest', TOPICS.spans)
    assert.deepEqual(partitions.map((s) => s.labels.partition).sort(), ['0', '1'])
    for (const p of partitions) {
      const high = value(e, 'breakid_consumer_high_watermark', {
        group: 'breakid-ingest',
        topic: TOPICS.spans,
        partition: p.labels.partition!,
      })
      assert.equal(p.value, high, `partition ${p.labels.partition}: lag = high watermark before any commit`)
    }
    assert.equal(totalLag(e, 'breakid-ingest', TOPICS.spans), 6)
    assert.equal(totalLag(e, 'breakid-ingest', TOPICS.hw), 1)
    const notReady = await fetch(`${base}/readyz`)
    assert.equal(notReady.status, 503)
    assert.equal(
      ((await notReady.json()) as { failed: Record<string, string> }).failed['consumer breakid-ingest'],
      'consumer idle',
    )

    await ingester.start()
    await waitFor(
      async () => {
        e = await scrape(base)
        return (
          counter(e, 'breakid_ingest_rows_stored_total', { table: 'spans' }) === 60 &&
          totalLag(e, 'breakid-ingest', TOPICS.spans) === 0 &&
          totalLag(e, 'breakid-ingest', TOPICS.hw) === 0
        )
      },
      { timeoutMs: 30_000, intervalMs: 200, message: '60 spans stored and the lag back to 0' },
    )
    assert.equal((await fetch(`${base}/readyz`)).status, 200)
    assert.equal(value(e, 'breakid_ingest_records_consumed_total', { topic: TOPICS.spans }), 60)

    await sendSpans(kafka, 60, 40)
    await waitFor(
      async () => {
        e = await scrape(base)
        return (
          counter(e, 'breakid_ingest_rows_stored_total', { table: 'spans' }) === 100 &&
          totalLag(e, 'breakid-ingest', TOPICS.spans) === 0
        )
      },
      { timeoutMs: 30_000, intervalMs: 200, message: '40 more spans stored' },
    )
    const highs = e.samples
      .filter((s) => s.name === 'breakid_consumer_high_watermark' && s.labels.topic === TOPICS.spans)
      .reduce((sum, s) => sum + s.value, 0)
    assert.equal(highs, 10, 'ten containers in the log')
    assert.equal(value(e, 'breakid_consumer_lag_read_errors_total', {}), 0)
  } finally {
    await ingester.stop()
    await ops.close()
    await kafka.close()
    await ch.close()
  }
})

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address() as { port: number }
  await new Promise((r) => server.close(r))
  return port
}

interface Service {
  name: string
  base: string
  child: ChildProcess
  output: string[]
}

async function startService(
  name: string,
  env: Record<string, string>,
  args: string[] = [],
): Promise<Service> {
  const port = await freePort()
  const output: string[] = []
  const child = spawn(process.execPath, ['bin/breakid.mjs', name, ...args], {
    cwd: ROOT,
    env: {
      ...process.env,
      KAFKA_BROKERS: kafkaBrokers().join(','),
      BREAKID_METRICS_PORT: String(port),
      BREAKID_DATA_DIR: join(dir, name),
      BREAKID_LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  child.stdout!.on('data', (d) => output.push(String(d)))
  child.stderr!.on('data', (d) => output.push(String(d)))
  return { name, base: `http://127.0.0.1:${port}`, child, output }
}

async function stopService(s: Service): Promise<number | null> {
  if (s.child.exitCode !== null) return s.child.exitCode
  const exited = new Promise<number | null>((r) => s.child.once('exit', (code) => r(code)))
  s.child.kill('SIGTERM')
  return exited
}

/** scrapes until `done` holds, failing with the service's own output if it never does */
async function until(s: Service, message: string, done: (e: Exposition) => boolean): Promise<Exposition> {
  let last: Exposition | undefined
  try {
    await waitFor(
      async () => {
        if (s.child.exitCode !== null) throw new Error(`${s.name} exited with ${s.child.exitCode}`)
        try {
          last = await scrape(s.base)
        } catch (err) {
          if ((err as { cause?: { code?: string } }).cause?.code === 'ECONNREFUSED') return false // starting
          throw err
        }
        return done(last)
      },
      { timeoutMs: 60_000, intervalMs: 200, message: `${s.name}: ${message}` },
    )
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- ${s.name} output ---\n${s.output.join('')}`)
  }
  return last!
}

test('breakid ingest, detect, notify and collect serve /metrics whose lag and counters move during a run', async () => {
  const prefix = `${uniqueTopic('ops-cli')}.`
  const kafka = transport(prefix)
  await kafka.ensureTopics(Object.values(TOPICS), 2)
  await sendSpans(kafka, 0, 50)
  // the receiver refuses (500) until the test has seen the notifier stuck behind it
  let accepting = false
  const receiver = await startReceiver({
    onAlert: () => {
      if (!accepting) throw new Error('not accepting yet')
    },
  })
  const alerts = kafka.producer()
  await alerts.start()
  await alerts.send(
    TOPICS.alerts,
    [1, 2].map((i) => ({
      key: 'k',
      value: codecs.alert.encode(makeAlert({ id: `ops-${i}`, dedup_key: `d-${i}` })),
    })),
  )
  await alerts.stop()

  // a Prometheus endpoint for collect to scrape (not a Triton or DCGM page: the scrapes are counted,
  // no hardware sample comes of it)
  const page = createHttpServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' })
    res.end('# TYPE up gauge\nup 1\n')
  })
  await new Promise<void>((r) => page.listen(0, '127.0.0.1', r))
  const pageUrl = `http://127.0.0.1:${(page.address() as { port: number }).port}/metrics`
  const otlpPort = await freePort()

  const env = { BREAKID_TOPIC_PREFIX: prefix }
  const services = await Promise.all([
    startService('ingest', env),
    startService('detect', env),
    startService('notify', { ...env, BREAKID_WEBHOOK_URLS: receiver.url }),
    startService('collect', env, [
      '--otlp-port',
      String(otlpPort),
      '--scrape',
      `t=${pageUrl}`,
      '--scrape-interval',
      '200ms',
    ]),
  ])
  const [ingest, detect, notify, collect] = services as [Service, Service, Service, Service]
  collectBases.add(collect.base)
  let codes: (number | null)[] = []
  try {
    const ready = async (s: Service) =>
      waitFor(async () => (await fetch(`${s.base}/readyz`).catch(() => undefined))?.status === 200, {
        timeoutMs: 60_000,
        intervalMs: 200,
        message: `${s.name} ready`,
      })

    // notify: both alerts wait behind the refusing receiver, so its lag holds at 2 while retries climb
    let e = await until(
      notify,
      'retries counted while the lag holds',
      (x) =>
        counter(x, 'breakid_notify_retries_total', { route: 'route-0' }) >= 2 &&
        totalLag(x, 'breakid-notify', TOPICS.alerts) === 2,
    )
    assert.equal(counter(e, 'breakid_notify_delivered_total', { route: 'route-0' }), 0)
    accepting = true
    e = await until(
      notify,
      'both alerts delivered and the lag back to 0',
      (x) =>
        counter(x, 'breakid_notify_delivered_total', { route: 'route-0' }) === 2 &&
        totalLag(x, 'breakid-notify', TOPICS.alerts) === 0,
    )
    await ready(notify)

    e = await until(
      ingest,
      '50 spans stored, lag 0',
      (x) =>
        counter(x, 'breakid_ingest_rows_stored_total', { table: 'spans' }) === 50 &&
        totalLag(x, 'breakid-ingest', TOPICS.spans) === 0,
    )
    await ready(ingest)
    e = await until(
      detect,
      '50 spans evaluated, lag 0',
      (x) =>
        counter(x, 'breakid_detect_records_total', { topic: TOPICS.spans }) === 50 &&
        totalLag(x, 'breakid-detect', TOPICS.spans) === 0,
    )
    await ready(detect)

    // more records while they run: the counters move on
    await sendSpans(kafka, 50, 30)
    await until(
      ingest,
      '80 spans stored, lag 0',
      (x) =>
        counter(x, 'breakid_ingest_rows_stored_total', { table: 'spans' }) === 80 &&
        totalLag(x, 'breakid-ingest', TOPICS.spans) === 0,
    )
    e = await until(
      detect,
      '80 spans evaluated, lag 0',
      (x) =>
        counter(x, 'breakid_detect_records_total', { topic: TOPICS.spans }) === 80 &&
        totalLag(x, 'breakid-detect', TOPICS.spans) === 0,
    )
    assert.equal(value(e, 'breakid_service_info', { service: 'detect' }), 1)
    assert.equal((await fetch(`${detect.base}/healthz`)).status, 200)

    // collect consumes nothing: its counters are the scrapes it made and the OTLP requests it took
    const scrapes = (x: Exposition) => counter(x, 'breakid_collect_scrapes', { result: 'ok' })
    e = await until(collect, 'scrapes counted', (x) => scrapes(x) >= 1)
    const before = scrapes(e)
    await until(collect, 'more scrapes while it runs', (x) => scrapes(x) > before)
    const otlp = await fetch(`http://127.0.0.1:${otlpPort}/v1/traces`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ resourceSpans: [] }),
    })
    assert.equal(otlp.status, 200)
    await until(
      collect,
      'the OTLP request counted',
      (x) => counter(x, 'breakid_collect_otlp_requests', { signal: 'traces', status: '200' }) === 1,
    )
    await ready(collect)
  } finally {
    codes = await Promise.all(services.map(stopService))
    await receiver.stop()
    await new Promise((r) => page.close(r))
    await kafka.close()
  }
  for (const [i, code] of codes.entries()) {
    assert.equal(code, 0, `${services[i]!.name} exits 0 on SIGTERM\n${services[i]!.output.join('')}`)
  }
})
