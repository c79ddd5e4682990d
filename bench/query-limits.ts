/**
 * What the query limits and the pool cost and bound, measured end to end (not a test):
 *
 * 1. `breakid sql "<query>"` as its own process (the CLI opening chDB, as a user runs it) for a
 *    plain query and for queries that ask for too much: wall time, exit status, the error line,
 *    and the process's peak RSS (VmHWM from /proc, polled) — `SELECT number FROM numbers(1e10)`
 *    once grew the process to 6 GB in 28 s.
 * 2. The HTTP query API with a slow query in flight: latency of `SELECT 1` alone and meanwhile,
 *    the time from the slow query's client hanging up to the engine dropping the query, and how
 *    long `close()` takes with a slow query in flight.
 *
 *   node --import tsx bench/query-limits.ts      → bench/results/query-limits.json
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import { machineInfo } from '../core/machine.ts'
import { queriesPlugin } from '../queries/http.ts'
import { DEFAULT_QUERY_LIMITS } from '../queries/limits.ts'
import { openClickHouse } from '../store/client.ts'
import { migrate } from '../store/migrations.ts'

const BIN = fileURLToPath(new URL('../bin/breakid.mjs', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'breakid-bench-limits-'))

interface CliRun {
  sql: string
  exitCode: number | null
  wallMs: number
  peakRssMiB: number
  output: string
}

function vmHwmKiB(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) : 0
  } catch {
    return 0
  }
}

/** Runs the CLI on its own data directory; polls its peak RSS every 20 ms until it exits. */
function runCli(sql: string, dataDir: string): Promise<CliRun> {
  return new Promise((resolve) => {
    const started = performance.now()
    const child = spawn(process.execPath, [BIN, 'sql', sql, '--data-dir', dataDir, '--format', 'csv'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    let peak = 0
    child.stdout.on('data', (c) => {
      if (output.length < 2000) output += c
    })
    child.stderr.on('data', (c) => {
      if (output.length < 2000) output += c
    })
    const poll = setInterval(() => {
      peak = Math.max(peak, vmHwmKiB(child.pid!))
    }, 20)
    // the last sample before exit: the kernel keeps VmHWM until the process is reaped
    child.on('exit', () => peak === 0 || clearInterval(poll))
    child.on('close', (exitCode) => {
      clearInterval(poll)
      resolve({
        sql,
        exitCode,
        wallMs: Math.round(performance.now() - started),
        peakRssMiB: Math.round(peak / 1024),
        output: output.trim().split('\n').slice(-1)[0]!.slice(0, 300),
      })
    })
  })
}

const cli: CliRun[] = []
for (const sql of [
  'SELECT count() FROM spans',
  'SELECT number FROM numbers(1e10)',
  'SELECT number FROM numbers(1e9)',
  'SELECT number FROM numbers(5e7)',
  'SELECT length(groupArray(toString(number))) FROM numbers(9e7)',
  "SELECT file('/etc/passwd')",
]) {
  const run = await runCli(sql, join(dir, 'cli-data'))
  cli.push(run)
  console.log(
    `${run.wallMs} ms, peak RSS ${run.peakRssMiB} MiB, exit ${run.exitCode}: ${sql}\n    ${run.output}`,
  )
}

// ----- HTTP: a slow query and its neighbours -----
const ch = openClickHouse({ dataDir: join(dir, 'http-data'), database: 'breakid_bench' })
await migrate(ch)
const app = Fastify()
await app.register(queriesPlugin, { ch, limits: { ...DEFAULT_QUERY_LIMITS, maxExecutionTimeS: 600 } })
const base = await app.listen({ host: '127.0.0.1', port: 0 })
const SLOW =
  "SELECT count() FROM numbers(100000) AS a, numbers(100000) AS b WHERE sipHash64(a.number, b.number) = 1 AND 'bench' != ''"

function post(sql: string, signal?: AbortSignal): Promise<{ status: number; ms: number }> {
  return new Promise((resolve) => {
    const started = performance.now()
    const body = JSON.stringify({ sql })
    const req = request(`${base}/api/sql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    })
    req.on('response', (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }))
    })
    req.on('error', () => resolve({ status: 0, ms: performance.now() - started }))
    signal?.addEventListener('abort', () => req.destroy())
    req.end(body)
  })
}

async function slowRunning(): Promise<boolean> {
  const rs = await ch.client.query({
    query:
      "SELECT count() AS n FROM system.processes WHERE startsWith(query, '/* breakid-query') AND position(query, 'sipHash64') > 0",
    format: 'JSONEachRow',
  })
  return Number((await rs.json<{ n: string }>())[0]!.n) > 0
}

async function until(condition: () => Promise<boolean>, limitMs = 60_000): Promise<number> {
  const started = performance.now()
  while (!(await condition())) {
    if (performance.now() - started > limitMs) throw new Error('condition not reached')
    await new Promise((r) => setTimeout(r, 5))
  }
  return performance.now() - started
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const fastAlone: number[] = []
for (let i = 0; i < 20; i++) fastAlone.push((await post('SELECT 1')).ms)

const hangUp = new AbortController()
const abandoned = post(SLOW, hangUp.signal)
await until(slowRunning)
const fastDuring: number[] = []
for (let i = 0; i < 20; i++) fastDuring.push((await post('SELECT 1')).ms)
hangUp.abort()
const killMs = await until(async () => !(await slowRunning()))
await abandoned

void post(SLOW)
await until(slowRunning)
const closeStarted = performance.now()
await app.close()
const closeMs = performance.now() - closeStarted
await until(async () => !(await slowRunning()))

const http = {
  fastAloneMedianMs: Number(median(fastAlone).toFixed(1)),
  fastDuringSlowMedianMs: Number(median(fastDuring).toFixed(1)),
  ratio: Number((median(fastDuring) / median(fastAlone)).toFixed(2)),
  disconnectToKilledMs: Math.round(killMs),
  closeWithSlowInFlightMs: Math.round(closeMs),
}
console.log(JSON.stringify(http, null, 2))

writeFileSync(
  fileURLToPath(new URL('./results/query-limits.json', import.meta.url)),
  `${JSON.stringify({ machine: machineInfo(), limits: DEFAULT_QUERY_LIMITS, cli, http }, null, 2)}\n`,
)
await ch.close()
rmSync(dir, { recursive: true, force: true })
process.exit(0)
