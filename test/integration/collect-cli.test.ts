/**
 * `breakid collect` as a user runs it: a real process in embedded mode (no Kafka: in-process bus,
 * ingest into chDB, detectors), the official OpenTelemetry Python SDK and OTLP/HTTP protobuf exporter
 * sending a few hundred server spans and Triton-shaped requests to it, and `breakid sql` — another
 * process — counting them through the running collector's query API (chDB locks its data directory, so
 * the CLI finds the running process in up.json). Every request is stored once.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { after, before, test } from 'node:test'
import { upStatePath } from '../../app/runtime.ts'
import { pythonVenv, runPython } from '../helpers/python-venv.ts'
import { waitFor } from '../helpers/wait.ts'

const ROOT = resolve(import.meta.dirname, '../..')
const CLI = join(ROOT, 'bin/breakid.mjs')
const GENERIC = 300
const TRITON = 40

/** The environment of a user without Kafka or a ClickHouse server configured. */
function embeddedEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    BREAKID_LOG_LEVEL: 'info',
    // the spans' event times are fixed (2025-12-06): kept as long as the store is told to, not 7 days
    BREAKID_SPAN_RETENTION_DAYS: '3650',
    BREAKID_RETENTION_DAYS: '3650',
  }
  for (const k of ['KAFKA_BROKERS', 'CLICKHOUSE_URL', 'BREAKID_CONFIG', 'OTEL_EXPORTER_OTLP_ENDPOINT'])
    delete env[k]
  return env
}

let python = ''
let dir = ''
let collector: ChildProcess | undefined

before(async () => {
  python = await pythonVenv(
    'otel',
    ['opentelemetry-sdk==1.45.2', 'opentelemetry-exporter-otlp-proto-http==1.45.2'],
    'opentelemetry.exporter.otlp.proto.http.trace_exporter',
  )
  dir = mkdtempSync(join(tmpdir(), 'breakid-collect-cli-'))
})

after(() => {
  if (collector && collector.exitCode === null) collector.kill('SIGKILL')
  if (dir) rmSync(dir, { recursive: true, force: true })
})

/** Starts `breakid collect`; resolves with its OTLP and query URLs from its 'collecting' log line. */
async function startCollect(dataDir: string): Promise<{ otlp: string; queries: string; logs: string[] }> {
  const child = spawn(
    process.execPath,
    [CLI, 'collect', '--otlp-port', '0', '--query-port', '0', '--data-dir', dataDir, '--fleet', 'cli'],
    { cwd: ROOT, env: embeddedEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  )
  collector = child
  const logs: string[] = []
  return new Promise((resolvePromise, reject) => {
    let buffered = ''
    child.stderr!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString()
      let nl = buffered.indexOf('\n')
      while (nl >= 0) {
        const line = buffered.slice(0, nl)
        buffered = buffered.slice(nl + 1)
        logs.push(line)
        try {
          const entry = JSON.parse(line) as { msg?: string; otlp?: string; queries?: string }
          if (entry.msg?.startsWith('collecting'))
            resolvePromise({ otlp: entry.otlp!, queries: entry.queries!, logs })
        } catch {
          // not a log line
        }
        nl = buffered.indexOf('\n')
      }
    })
    child.once('exit', (code) => reject(new Error(`breakid collect exited ${code}: ${logs.join('\n')}`)))
  })
}

async function countViaApi(queries: string, token: string): Promise<number> {
  const res = await fetch(`${queries}/api/sql?format=json`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ sql: 'SELECT count() AS n FROM spans' }),
  })
  const rows = (await res.json()) as { n: string | number }[]
  return Number(rows[0]?.n ?? 0)
}

test('spans from the OpenTelemetry Python SDK are all stored, and breakid sql counts them while collect runs', {
  timeout: 900_000,
}, async () => {
  const dataDir = join(dir, 'data')
  const { otlp, queries } = await startCollect(dataDir)
  assert.match(otlp, /^http:\/\/127\.0\.0\.1:\d+$/)
  assert.deepEqual(JSON.parse(readFileSync(upStatePath(dataDir), 'utf8')), {
    pid: collector!.pid,
    url: queries,
  })

  const sent = JSON.parse(
    await runPython(python, join(import.meta.dirname, 'otel-python/send_spans.py'), [
      otlp,
      String(GENERIC),
      String(TRITON),
    ]),
  ) as { generic: { trace_id: string }[]; triton: { trace_id: string }[] }
  assert.equal(sent.generic.length + sent.triton.length, GENERIC + TRITON)

  // stored asynchronously (bus → ingest → chDB): wait, bounded, for the rows to be there
  // the query API takes the token collect generated into its data directory (breakid sql reads it too)
  const token = readFileSync(join(dataDir, 'api-token'), 'utf8').trim()
  const unauthorized = await fetch(`${queries}/api/sql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sql: 'SELECT 1' }),
  })
  assert.equal(unauthorized.status, 401, 'no token, no SQL')
  await waitFor(async () => (await countViaApi(queries, token)) >= GENERIC + TRITON, {
    timeoutMs: 60_000,
    intervalMs: 250,
    message: 'the spans stored',
  })
  // the oracle: the CLI a user types, in another process, against the running collector
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [
      CLI,
      'sql',
      "SELECT count() AS spans, uniqExact(trace_id) AS traces, countIf(model = 'ranker-v3') AS generic FROM spans",
      '--format',
      'json',
      '--data-dir',
      dataDir,
    ],
    { cwd: ROOT, env: embeddedEnv(), timeout: 120_000 },
  )
  const [row] = JSON.parse(stdout) as {
    spans: string | number
    traces: string | number
    generic: string | number
  }[]
  assert.deepEqual(
    [Number(row!.spans), Number(row!.traces), Number(row!.generic)],
    [GENERIC + TRITON, GENERIC + TRITON, GENERIC],
    'every request stored once',
  )
  const { stdout: ids } = await promisify(execFile)(
    process.execPath,
    [
      CLI,
      'sql',
      'SELECT trace_id_hex AS trace_id FROM spans ORDER BY trace_id',
      '--format',
      'csv',
      '--data-dir',
      dataDir,
    ],
    { cwd: ROOT, env: embeddedEnv(), timeout: 120_000 },
  )
  const stored = ids
    .trim()
    .split(/\r?\n/)
    .slice(1)
    .map((l) => l.replaceAll('"', ''))
  assert.deepEqual(stored, [...sent.generic, ...sent.triton].map((s) => s.trace_id).sort())

  // SIGTERM drains and stops cleanly, and the state file goes with the process
  const exited = new Promise<number | null>((r) => collector!.once('exit', (code) => r(code)))
  collector!.kill('SIGTERM')
  assert.equal(await exited, 0)
  assert.equal(existsSync(upStatePath(dataDir)), false)
  assert.equal(existsSync(join(dataDir, 'api-token')), false, 'the generated token goes with the process')
})
