/**
 * The closed-loop load generator (each worker sends when answered) against a local HTTP server, its
 * coordinated-omission correction on recorded latencies (HdrHistogram's expected-interval copy), the
 * sweep levels parser, and sweeps with injected runners (order, discarded warm-ups, early stop).
 */
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import {
  coordinatedOmissionSummary,
  type LoadgenReport,
  newHistogram,
  parseLevels,
  runClosedLoop,
  runSweep,
} from '../../engine/loadgen.ts'
import { RUN_ID_HEADER } from '../../contract/run-id.ts'

describe('closed loop against a local server', () => {
  let server: http.Server
  let url = ''
  let inFlight = 0
  let maxInFlight = 0
  let received = 0
  const runIds = new Set<string>()
  before(async () => {
    // answers in rounds: held until 3 are waiting (or 20 ms passed, for the run's last round), so a
    // loop of 3 workers does reach 3 in flight, and a 4th would show
    let waiting: (() => void)[] = []
    const release = () => {
      const round = waiting
      waiting = []
      for (const answer of round) answer()
    }
    server = http.createServer((req, res) => {
      inFlight++
      maxInFlight = Math.max(maxInFlight, inFlight)
      const seq = ++received
      runIds.add(String(req.headers[RUN_ID_HEADER]))
      req.resume()
      req.on('end', () => {
        waiting.push(() => {
          inFlight--
          res.writeHead(seq % 10 === 0 ? 503 : 200).end('{}')
        })
        if (waiting.length >= 3) release()
        else setTimeout(release, 20)
      })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v2/models/mlp/infer`
  })
  after(async () => {
    server.closeAllConnections()
    await new Promise<void>((r) => server.close(() => r()))
  })

  test('never more than `concurrency` requests in flight; every request answered and counted', async () => {
    const report = await runClosedLoop({
      url,
      bodies: ['{}'],
      concurrency: 3,
      durationMs: 300,
      runId: 'closed-1',
    })
    assert.equal(report.mode, 'closed')
    assert.equal(maxInFlight, 3)
    assert.ok(report.sent > 3)
    assert.equal(report.sent, received)
    assert.equal(
      Object.values(report.statuses).reduce((a, b) => a + b, 0),
      report.sent,
    )
    assert.ok((report.statuses['503'] ?? 0) > 0 && report.ok < report.sent)
    assert.deepEqual([...runIds], ['closed-1'])
    // the default expected interval is the measured median: the correction leaves the median alone
    assert.equal(report.expectedIntervalMs, report.latencyUncorrectedMs.p50)
  })

  test('bad options are refused', async () => {
    await assert.rejects(
      runClosedLoop({ url, bodies: ['{}'], concurrency: 0, durationMs: 10 }),
      /concurrency/,
    )
    await assert.rejects(
      runClosedLoop({ url, bodies: ['{}'], concurrency: 1, durationMs: 10, expectedIntervalMs: 0 }),
      /expected interval/,
    )
  })
})

describe('coordinated-omission correction', () => {
  test('one 100 ms stall among 1 ms answers: the corrected p99 holds the waits it held back', () => {
    const h = newHistogram()
    for (let i = 0; i < 99; i++) h.recordValue(1000)
    h.recordValue(100_000)
    const { corrected, uncorrected } = coordinatedOmissionSummary(h, 1000, 100)
    // uncorrected: 99 of 100 answers took 1 ms
    assert.ok(uncorrected.p99 < 1.1, `p99 ${uncorrected.p99}`) // 1 ms, to the histogram's precision
    // corrected: the stall adds 99 ms, 98 ms, … 1 ms (the requests a worker would have sent): of 199
    // values, 100 are 1 ms and the rest climb to 100 ms, so p50 stays at 1 ms and p99 is near 99 ms
    assert.ok(corrected.p50 < 1.1, `p50 ${corrected.p50}`)
    assert.ok(corrected.p99 >= 97 && corrected.p99 <= 100, `p99 ${corrected.p99}`)
    assert.ok(corrected.mean > 20 && uncorrected.mean < 2.1)
    h.destroy()
  })

  test('no stall longer than the expected interval: nothing to correct', () => {
    const h = newHistogram()
    for (let i = 0; i < 100; i++) h.recordValue(900 + i)
    const { corrected, uncorrected } = coordinatedOmissionSummary(h, 1000, 1)
    assert.deepEqual(corrected, uncorrected)
    h.destroy()
  })
})

describe('sweep levels', () => {
  test('lists and start:end:step ranges', () => {
    assert.deepEqual(parseLevels('50,100,200', 'rates'), [50, 100, 200])
    assert.deepEqual(parseLevels('1:16:3', 'concurrency', { integer: true }), [1, 4, 7, 10, 13, 16])
    assert.deepEqual(parseLevels('1:4', 'concurrency', { integer: true }), [1, 2, 3, 4])
    assert.deepEqual(parseLevels('0.5:1.5:0.5', 'rates'), [0.5, 1, 1.5])
  })
  test('mistakes are named', () => {
    assert.throws(() => parseLevels('10:1', 'rates'), /rates: "10:1" ends before it starts/)
    assert.throws(() => parseLevels('1,x', 'rates'), /needs numbers > 0/)
    assert.throws(() => parseLevels('1.5', 'concurrency', { integer: true }), /whole numbers/)
    assert.throws(() => parseLevels('1:1000:1', 'rates'), /1 to 100 levels/)
  })
})

describe('sweep', () => {
  const fake = (p99ByLevel: Record<number, number>) => {
    const calls: { kind: string; level: number; durationMs: number; runId?: string }[] = []
    const report = (level: number): LoadgenReport => ({
      arrival: 'constant',
      scheduled: 1,
      sent: 1,
      ok: 1,
      statuses: { 200: 1 },
      droppedAtClient: 0,
      durationMs: 1,
      throughputPerSec: level,
      latencyMs: { p50: 1, p95: 1, p99: p99ByLevel[level] ?? 1, p999: 1, max: 1, mean: 1 },
    })
    return {
      calls,
      runners: {
        open: async (o: { ratePerSec: number; durationMs: number; runId?: string }) => {
          calls.push({ kind: 'open', level: o.ratePerSec, durationMs: o.durationMs, runId: o.runId })
          return report(o.ratePerSec)
        },
        closed: async (o: { concurrency: number; durationMs: number; runId?: string }) => {
          calls.push({ kind: 'closed', level: o.concurrency, durationMs: o.durationMs, runId: o.runId })
          return {
            ...report(o.concurrency),
            mode: 'closed' as const,
            concurrency: o.concurrency,
            expectedIntervalMs: 1,
            latencyUncorrectedMs: report(1).latencyMs,
          }
        },
      },
    }
  }

  test('levels in order, each warm-up sent and discarded under its own run id', async () => {
    const f = fake({})
    const result = await runSweep(
      {
        mode: 'rate',
        levels: [10, 20],
        durationMs: 1000,
        warmupMs: 200,
        url: 'http://127.0.0.1:1',
        bodies: ['{}'],
        runId: (level) => `sweep-r${level}`,
      },
      f.runners as never,
    )
    assert.deepEqual(f.calls, [
      { kind: 'open', level: 10, durationMs: 200, runId: 'sweep-r10.warmup' },
      { kind: 'open', level: 10, durationMs: 1000, runId: 'sweep-r10' },
      { kind: 'open', level: 20, durationMs: 200, runId: 'sweep-r20.warmup' },
      { kind: 'open', level: 20, durationMs: 1000, runId: 'sweep-r20' },
    ])
    assert.deepEqual(
      result.levels.map((l) => [l.level, l.report.throughputPerSec]),
      [
        [10, 10],
        [20, 20],
      ],
    )
    assert.equal(result.stoppedEarly, false)
  })

  test('concurrency sweep stops after the first level past the latency limit', async () => {
    const f = fake({ 1: 5, 2: 8, 4: 60, 8: 200 })
    const result = await runSweep(
      {
        mode: 'concurrency',
        levels: [1, 2, 4, 8],
        durationMs: 100,
        latencyLimitMs: 50,
        url: 'x',
        bodies: ['{}'],
      },
      f.runners as never,
    )
    assert.deepEqual(
      result.levels.map((l) => l.level),
      [1, 2, 4],
    )
    assert.equal(result.stoppedEarly, true)
    assert.ok(f.calls.every((c) => c.kind === 'closed'))
  })
})
