/**
 * Open-loop load generator for any Open Inference Protocol endpoint. Requests are sent on a schedule
 * (constant or Poisson arrivals) whether or not earlier ones have answered, and latency is measured
 * from the *scheduled* send time, so a stalled server shows up as latency instead of hiding behind
 * fewer requests (no coordinated omission). Bounded by `durationMs` and `maxOutstanding`.
 */
import http from 'node:http'
import { InvalidInputError } from '../ingest/errors.ts'

export interface LoadgenOptions {
  /** e.g. http://127.0.0.1:8000/v2/models/mlp/infer */
  url: string
  /** request bodies to cycle through (JSON strings) */
  bodies: string[]
  ratePerSec: number
  durationMs: number
  arrival?: 'constant' | 'poisson'
  /** requests allowed in flight at once; beyond that a scheduled request is counted as dropped */
  maxOutstanding?: number
  timeoutMs?: number
  signal?: AbortSignal
  /** seeded so runs are repeatable */
  seed?: number
}

export interface LoadgenReport {
  sent: number
  ok: number
  /** status code → count (0 = connection error or timeout) */
  statuses: Record<string, number>
  droppedAtClient: number
  durationMs: number
  throughputPerSec: number
  latencyMs: { p50: number; p95: number; p99: number; p999: number; max: number }
}

export function isLoopback(url: string): boolean {
  const host = new URL(url).hostname
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
}

export async function runLoad(opts: LoadgenOptions): Promise<LoadgenReport> {
  if (!(opts.ratePerSec > 0) || !(opts.durationMs > 0))
    throw new InvalidInputError('rate and duration must be > 0')
  if (opts.bodies.length === 0) throw new InvalidInputError('loadgen needs at least one request body')
  const target = new URL(opts.url)
  const maxOutstanding = opts.maxOutstanding ?? 512
  const agent = new http.Agent({ keepAlive: true, maxSockets: maxOutstanding })
  const timeoutMs = opts.timeoutMs ?? 30_000
  const latencies: number[] = []
  const statuses: Record<string, number> = {}
  let sent = 0
  let outstanding = 0
  let dropped = 0
  let seed = opts.seed ?? 42
  const random = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31
    return seed / 2 ** 31
  }
  const gapMs = () =>
    opts.arrival === 'poisson' ? -Math.log(1 - random()) * (1000 / opts.ratePerSec) : 1000 / opts.ratePerSec
  const bodies = opts.bodies.map((b) => Buffer.from(b))

  const one = (scheduledAt: number, body: Buffer) =>
    new Promise<void>((resolve) => {
      outstanding++
      const done = (status: number) => {
        outstanding--
        latencies.push(performance.now() - scheduledAt)
        statuses[status] = (statuses[status] ?? 0) + 1
        resolve()
      }
      const req = http.request(
        target,
        {
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', 'content-length': body.length },
          timeout: timeoutMs,
        },
        (res) => {
          res.resume()
          res.on('end', () => done(res.statusCode ?? 0))
          res.on('error', () => done(0))
        },
      )
      req.on('timeout', () => req.destroy(new Error('timeout')))
      req.on('error', () => done(0))
      req.end(body)
    })

  const started = performance.now()
  const inflight = new Set<Promise<void>>()
  let next = started
  while (!opts.signal?.aborted) {
    const now = performance.now()
    if (next - started >= opts.durationMs) break
    if (next > now) {
      await new Promise((r) => setTimeout(r, Math.max(0, next - now)))
      continue
    }
    // catch up on every arrival that is due (timers are coarse); each keeps its own scheduled time
    while (next <= performance.now() && next - started < opts.durationMs) {
      if (outstanding >= maxOutstanding) dropped++
      else {
        const p = one(next, bodies[sent % bodies.length]!)
        inflight.add(p)
        void p.then(() => inflight.delete(p))
        sent++
      }
      next += gapMs()
    }
  }
  await Promise.all(inflight)
  agent.destroy()
  const durationMs = performance.now() - started
  latencies.sort((a, b) => a - b)
  const r2 = (x: number) => Math.round(x * 100) / 100
  return {
    sent,
    ok: statuses['200'] ?? 0,
    statuses,
    droppedAtClient: dropped,
    durationMs: Math.round(durationMs),
    throughputPerSec: r2(((statuses['200'] ?? 0) * 1000) / durationMs),
    latencyMs: {
      p50: r2(quantile(latencies, 0.5)),
      p95: r2(quantile(latencies, 0.95)),
      p99: r2(quantile(latencies, 0.99)),
      p999: r2(quantile(latencies, 0.999)),
      max: r2(latencies[latencies.length - 1] ?? 0),
    },
  }
}
