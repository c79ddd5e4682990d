/**
 * `breakid up` runs the collector too: its startup lines say where OTLP/HTTP listens, spans sent there
 * during the run are stored next to the engine's own and counted in the summary; a port the user named
 * that is taken ends the command with a clear error (exit 2) instead of running without it.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { after, test } from 'node:test'
import { ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api'
import { hr, OtelJs, toProtobuf } from '../helpers/otel-js.ts'

const ROOT = resolve(import.meta.dirname, '../..')
const dir = mkdtempSync(join(tmpdir(), 'breakid-up-collect-'))
after(() => rmSync(dir, { recursive: true, force: true }))

function embeddedEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env }
  for (const k of ['KAFKA_BROKERS', 'CLICKHOUSE_URL', 'BREAKID_CONFIG', 'OTEL_EXPORTER_OTLP_ENDPOINT'])
    delete env[k]
  return env
}

/** Runs `breakid up` with `args`; `onLine` sees each stdout line as it comes. */
function up(args: string[], onLine: (line: string) => void = () => {}) {
  const child = spawn(
    process.execPath,
    [join(ROOT, 'bin/breakid.mjs'), 'up', '--data-dir', join(dir, 'data'), '--log-level', 'warn', ...args],
    { cwd: ROOT, env: embeddedEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  )
  const stdout: string[] = []
  let stderr = ''
  let buffered = ''
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString()
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl)
      buffered = buffered.slice(nl + 1)
      stdout.push(line)
      onLine(line)
    }
  })
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  const timer = setTimeout(() => child.kill('SIGKILL'), 180_000)
  return new Promise<{ code: number | null; stdout: string[]; stderr: string }>((r) =>
    child.once('exit', (code) => {
      clearTimeout(timer)
      r({ code, stdout, stderr })
    }),
  )
}

/** Five server spans of a foreign service, each with preprocess and compute children. */
function foreignSpans(): Buffer {
  const otel = new OtelJs({ 'service.name': 'ranker', 'service.instance.id': 'ranker-1' })
  const tracer = otel.tracer('ranker.http')
  const t0 = BigInt(Date.now()) * 1_000_000n
  for (let i = 0; i < 5; i++) {
    const at = (us: number) => hr(t0 + BigInt(i * 10_000 + us) * 1000n)
    const server = tracer.startSpan(
      'POST /v1/rank',
      { kind: SpanKind.SERVER, startTime: at(0), attributes: { 'http.response.status_code': 200 } },
      ROOT_CONTEXT,
    )
    const ctx = trace.setSpan(ROOT_CONTEXT, server)
    tracer.startSpan('preprocess', { startTime: at(100) }, ctx).end(at(400))
    tracer.startSpan('compute', { startTime: at(400) }, ctx).end(at(2400))
    server.end(at(2500))
  }
  return toProtobuf(otel.take())
}

test('breakid up starts the collector, says where it listens, and stores what it receives', {
  timeout: 240_000,
}, async () => {
  let posted: Promise<number> | undefined
  const run = await up(
    ['--duration', '6s', '--rate', '20', '--no-fault', '--model', 'mlp', '--port', '0', '--otlp-port', '0'],
    (line) => {
      const m =
        /^breakid up: collector OTLP\/HTTP (http:\/\/127\.0\.0\.1:\d+)\/v1\/traces and \/v1\/metrics$/.exec(
          line,
        )
      if (m && !posted) {
        posted = fetch(`${m[1]}/v1/traces`, {
          method: 'POST',
          body: new Uint8Array(foreignSpans()),
          headers: { 'content-type': 'application/x-protobuf' },
        }).then((res) => res.status)
      }
    },
  )
  assert.equal(run.code, 0, run.stderr)
  assert.ok(posted, `no collector line in:\n${run.stdout.join('\n')}`)
  assert.equal(await posted, 200)
  const summary = run.stdout.find((l) => l.startsWith('spans emitted'))!
  const [, emitted, stored] = /^spans emitted (\d+), stored (\d+)/.exec(summary)!
  assert.equal(Number(stored), Number(emitted) + 5, summary)
  assert.ok(
    run.stdout.includes(
      'collector: 5 foreign spans (5 generic, 0 Triton), 0 hardware samples, 1 OTLP requests, 0 scrapes',
    ),
    run.stdout.join('\n'),
  )
})

test('an --otlp-port that is taken is a clear error, not a silent run without the collector', {
  timeout: 240_000,
}, async () => {
  const blocker = createServer()
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r))
  const port = (blocker.address() as { port: number }).port
  try {
    const run = await up(['--duration', '2s', '--no-fault', '--model', 'mlp', '--otlp-port', String(port)])
    assert.equal(run.code, 2)
    assert.match(run.stderr, new RegExp(`--otlp-port ${port} is in use`))
  } finally {
    blocker.close()
  }
})
