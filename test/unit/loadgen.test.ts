/**
 * The open-loop load generator against a tiny local HTTP server (node:http on 127.0.0.1, port 0):
 * counts and statuses, client-side drops, a stalled server showing up as latency (no coordinated
 * omission), progress callbacks; and the arrival schedules as pure functions (counts per window).
 */
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import {
  type ArrivalOptions,
  arrivalSchedule,
  expectedArrivals,
  isLoopback,
  type LoadgenProgress,
  rateAt,
  runLoad,
} from '../../engine/loadgen.ts'
import { InvalidInputError } from '../../core/errors.ts'

/** How the test server answers one request, by the `seq` in its body. */
type Behaviour = (seq: number, res: http.ServerResponse) => void

interface TestServer {
  url: string
  /** requests received, by seq */
  received: number[]
  setBehaviour(b: Behaviour): void
  close(): Promise<void>
}

const answer =
  (status: number): Behaviour =>
  (_seq, res) =>
    res.writeHead(status, { 'content-type': 'application/json' }).end('{}')

async function startServer(): Promise<TestServer> {
  let behaviour: Behaviour = answer(200)
  const received: number[] = []
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const seq = (JSON.parse(Buffer.concat(chunks).toString()) as { seq: number }).seq
      received.push(seq)
      behaviour(seq, res)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/v2/models/mlp/infer`,
    received,
    setBehaviour(b) {
      behaviour = b
      received.length = 0
    },
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** Distinct bodies `{"seq": i}`: request i carries seq i (bodies cycle in send order). */
const bodies = (n: number) => Array.from({ length: n }, (_, seq) => JSON.stringify({ seq }))

describe('runLoad against a local server', () => {
  let server: TestServer
  before(async () => {
    server = await startServer()
  })
  after(async () => {
    await server.close()
  })

  test('constant arrivals: every scheduled request is sent once and counted by status', async () => {
    // every 5th request fails: the status counts must say so
    server.setBehaviour((seq, res) => answer(seq % 5 === 4 ? 503 : 200)(seq, res))
    const report = await runLoad({ url: server.url, bodies: bodies(100), ratePerSec: 100, durationMs: 1000 })
    assert.equal(report.arrival, 'constant')
    assert.equal(report.scheduled, 100, 'the schedule: 100/s for 1 s')
    assert.equal(report.sent, 100)
    assert.equal(report.droppedAtClient, 0)
    assert.deepEqual(report.statuses, { '200': 80, '503': 20 })
    assert.equal(report.ok, 80)
    assert.deepEqual(
      [...server.received].sort((a, b) => a - b),
      Array.from({ length: 100 }, (_, i) => i),
      'each body sent exactly once',
    )
    assert.ok(report.throughputPerSec > 0)
    const l = report.latencyMs
    assert.ok(
      l.p50 <= l.p95 && l.p95 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max + 0.01,
      JSON.stringify(l),
    )
  })

  test('a stalled server shows up as latency from the scheduled send time; the schedule does not slow down', async () => {
    // requests 30..79 are held until request 80 arrives; request 80 cannot be sent before its
    // scheduled time (800 ms), so request i's latency is at least (80 − i) × 10 ms
    const held: http.ServerResponse[] = []
    server.setBehaviour((seq, res) => {
      if (seq >= 30 && seq < 80) held.push(res)
      else {
        if (seq >= 80) for (const r of held.splice(0)) answer(200)(0, r)
        answer(200)(seq, res)
      }
    })
    const report = await runLoad({ url: server.url, bodies: bodies(150), ratePerSec: 100, durationMs: 1500 })
    assert.equal(report.sent, 150, 'open loop: the stall did not hold back later requests')
    assert.equal(report.ok, 150)
    // the earliest held request waited ≥ 500 ms; the 8 slowest (top 5 %) each ≥ 430 ms
    assert.ok(report.latencyMs.max >= 500, `max ${report.latencyMs.max} ms`)
    assert.ok(report.latencyMs.p95 >= 400, `p95 ${report.latencyMs.p95} ms`)
    // a closed-loop client would have seen one slow request; here a third of them are slow
    assert.ok(report.latencyMs.p50 < report.latencyMs.p95)
  })

  test('requests sent late (the client stalled) count their delay: latency is from the scheduled time', async () => {
    server.setBehaviour(answer(200))
    // block this process's event loop for 300 ms shortly after the run starts: the requests due
    // meanwhile go out late, in a catch-up burst, and answer fast — measured from the actual send
    // they would look fast (coordinated omission); from the schedule, they waited up to 300 ms
    const BLOCK_MS = 300
    setTimeout(() => {
      const end = performance.now() + BLOCK_MS
      while (performance.now() < end) {}
    }, 50)
    const report = await runLoad({ url: server.url, bodies: bodies(100), ratePerSec: 100, durationMs: 1000 })
    assert.equal(report.sent, 100, 'every request due during the block was still sent')
    assert.ok(report.latencyMs.max >= BLOCK_MS - 20, `max ${report.latencyMs.max} ms`)
    // ~30 requests were due during the block; the slowest 5 each waited over 200 ms
    assert.ok(report.latencyMs.p95 >= 200, `p95 ${report.latencyMs.p95} ms`)
  })

  test('beyond maxOutstanding, due requests are dropped at the client and counted; timeouts are status 0', async () => {
    server.setBehaviour(() => {}) // never answers
    const report = await runLoad({
      url: server.url,
      bodies: bodies(50),
      ratePerSec: 100,
      durationMs: 500,
      maxOutstanding: 3,
      timeoutMs: 300,
    })
    assert.equal(report.scheduled, 50)
    assert.equal(report.sent + report.droppedAtClient, 50)
    assert.ok(report.droppedAtClient > 0, 'some requests were due while 3 were outstanding')
    assert.ok(report.sent >= 3)
    assert.equal(report.ok, 0)
    assert.deepEqual(report.statuses, { '0': report.sent }, 'every sent request timed out')
  })

  test('progress is reported while the run lasts', async () => {
    server.setBehaviour(answer(200))
    const seen: LoadgenProgress[] = []
    const report = await runLoad({
      url: server.url,
      bodies: bodies(10),
      ratePerSec: 50,
      durationMs: 1000,
      progressIntervalMs: 200,
      onProgress: (p) => seen.push(p),
    })
    assert.ok(seen.length >= 2, `${seen.length} progress calls`)
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]!.sent >= seen[i - 1]!.sent)
    assert.ok(seen.at(-1)!.sent <= report.sent)
    assert.ok(seen.some((p) => p.ok > 0))
  })

  test('bursty: the burst is sent, and the run lasts its duration through the silence', async () => {
    server.setBehaviour(answer(200))
    const report = await runLoad({
      url: server.url,
      bodies: bodies(100),
      ratePerSec: 100,
      durationMs: 1000,
      arrival: 'bursty',
      burstFactor: 4,
      burstPeriodMs: 1000,
    })
    assert.equal(report.arrival, 'bursty')
    assert.equal(report.sent, 100, 'a 250 ms burst at 400/s')
    assert.equal(report.ok, 100)
    assert.ok(report.durationMs >= 1000, `the run stopped at ${report.durationMs} ms, before its duration`)
  })

  test('an aborted run stops early and still reports', async () => {
    server.setBehaviour(answer(200))
    const ctl = new AbortController()
    setTimeout(() => ctl.abort(), 200)
    const report = await runLoad({
      url: server.url,
      bodies: bodies(10),
      ratePerSec: 100,
      durationMs: 60_000,
      signal: ctl.signal,
    })
    assert.ok(report.sent > 0 && report.sent < 6000, `sent ${report.sent}`)
    assert.equal(report.ok, report.sent)
  })

  test('bad options are InvalidInputError', async () => {
    const base = { url: server.url, bodies: bodies(1), ratePerSec: 10, durationMs: 100 }
    await assert.rejects(runLoad({ ...base, ratePerSec: 0 }), InvalidInputError)
    await assert.rejects(runLoad({ ...base, bodies: [] }), InvalidInputError)
    await assert.rejects(runLoad({ ...base, arrival: 'bursty', burstFactor: 0.5 }), /burst factor/)
    await assert.rejects(runLoad({ ...base, arrival: 'diurnal', minRatePerSec: 20 }), /min rate/)
    await assert.rejects(runLoad({ ...base, arrival: 'weekly' as 'constant' }), /not one of/)
  })
})

describe('arrival schedules (pure)', () => {
  /** arrivals of `opts` per window of `windowMs` */
  function countsPerWindow(opts: ArrivalOptions, windowMs: number): number[] {
    const counts = new Array<number>(Math.ceil(opts.durationMs / windowMs)).fill(0)
    let last = -1
    for (const t of arrivalSchedule(opts)) {
      assert.ok(t > last && t < opts.durationMs, `increasing and inside the run: ${t}`)
      last = t
      counts[Math.floor(t / windowMs)]!++
    }
    return counts
  }

  test('constant: evenly spaced, exactly rate × duration', () => {
    const times = [...arrivalSchedule({ ratePerSec: 200, durationMs: 1000 })]
    assert.equal(times.length, 200)
    for (let i = 1; i < times.length; i++) assert.ok(Math.abs(times[i]! - times[i - 1]! - 5) < 1e-9)
  })

  test('poisson: seeded and repeatable, count near rate × duration, gaps not all equal', () => {
    const opts: ArrivalOptions = { arrival: 'poisson', ratePerSec: 500, durationMs: 10_000, seed: 7 }
    const a = [...arrivalSchedule(opts)]
    assert.deepEqual(a, [...arrivalSchedule(opts)], 'same seed, same schedule')
    assert.notDeepEqual(a, [...arrivalSchedule({ ...opts, seed: 8 })])
    // 5000 expected; the Poisson standard deviation is ~71
    assert.ok(Math.abs(a.length - 5000) < 300, `${a.length} arrivals`)
    const gaps = a.slice(1).map((t, i) => t - a[i]!)
    const mean = gaps.reduce((x, y) => x + y, 0) / gaps.length
    const sd = Math.sqrt(gaps.reduce((x, g) => x + (g - mean) ** 2, 0) / gaps.length)
    // exponential gaps: standard deviation ≈ mean (constant would be 0)
    assert.ok(sd > 0.8 * mean && sd < 1.2 * mean, `gap mean ${mean}, sd ${sd}`)
  })

  test('bursty: each period opens with a burst at factor × rate, then silence; mean rate preserved', () => {
    const opts: ArrivalOptions = {
      arrival: 'bursty',
      ratePerSec: 100,
      durationMs: 4000,
      burstFactor: 4,
      burstPeriodMs: 1000,
    }
    // windows of 250 ms: the burst (first quarter of each second) carries the whole second's 100
    assert.deepEqual(countsPerWindow(opts, 250), [100, 0, 0, 0, 100, 0, 0, 0, 100, 0, 0, 0, 100, 0, 0, 0])
    assert.equal(rateAt(opts, 100), 400)
    assert.equal(rateAt(opts, 600), 0)
    // factor 1 is constant load
    assert.deepEqual(countsPerWindow({ ...opts, burstFactor: 1 }, 250), new Array(16).fill(25))
  })

  test('diurnal: counts per window follow the sine from the min rate to the peak and back', () => {
    const opts: ArrivalOptions = {
      arrival: 'diurnal',
      ratePerSec: 200,
      minRatePerSec: 20,
      periodMs: 8000,
      durationMs: 8000,
    }
    const counts = countsPerWindow(opts, 1000)
    counts.forEach((n, i) => {
      const want = expectedArrivals(opts, (i + 1) * 1000) - expectedArrivals(opts, i * 1000)
      assert.ok(Math.abs(n - want) <= 1, `window ${i}: ${n} arrivals, expected ${want.toFixed(1)}`)
    })
    // trough at the ends, peak in the middle, symmetric
    assert.ok(counts[0]! < counts[1]! && counts[1]! < counts[2]! && counts[2]! < counts[3]!, counts.join(' '))
    assert.ok(
      Math.abs(counts[3]! - counts[4]!) <= 1 && Math.abs(counts[0]! - counts[7]!) <= 1,
      counts.join(' '),
    )
    // a whole period carries the mean of min and max: (20 + 200) / 2 per second
    assert.ok(Math.abs(counts.reduce((a, b) => a + b, 0) - 880) <= 1)
    assert.equal(rateAt(opts, 0), 20)
    assert.equal(rateAt(opts, 4000), 200)
  })

  test('only loopback targets count as local', () => {
    assert.ok(isLoopback('http://127.0.0.1:8000'))
    assert.ok(isLoopback('http://localhost:1'))
    assert.ok(isLoopback('http://[::1]:8000'))
    assert.ok(!isLoopback('http://10.0.0.1:8000'))
    assert.ok(!isLoopback('http://example.com'))
  })
})
