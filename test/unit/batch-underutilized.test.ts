import assert from 'node:assert/strict'
import { test } from 'node:test'
import { RollingBaseline } from '../../detectors/baseline.ts'
import { BatchUnderutilizedDetector } from '../../detectors/batching/detector.ts'
import type { Alert } from '../../contract/records.ts'
import { series } from '../helpers/series.ts'
import { DetectorDriver, T0_US } from '../helpers/detector-driver.ts'

interface Step {
  batch: number
  queued: number
  waitMs: number
  arrivals: number
}

/** one hw sample per second, preceded by 40 spans of that second in batches of `batch` */
function run(steps: Step[], d = new BatchUnderutilizedDetector(), from = 0): (Alert & { step: number })[] {
  const driver = new DetectorDriver(d, { startUs: T0_US + from * 1e6 })
  for (const s of steps) {
    const i = driver.step + from
    driver.tick({
      spans: Array.from({ length: 40 }, (_, k) => ({
        batch_size: s.batch,
        batch_id: `b-${i}-${Math.floor(k / s.batch)}`,
        queue_wait_us: s.waitMs * 1000 + (k % 5),
      })),
      hw: { queue_depth: s.queued, arrivals: s.arrivals },
    })
  }
  return driver.alerts.map((r) => ({ ...r.alert, step: r.step + from }))
}

function steps(batch: string, queued: string, waitMs: string, arrivals: string): Step[] {
  const b = series(batch)
  const q = series(queued)
  const w = series(waitMs)
  const a = series(arrivals)
  assert.equal(new Set([b.length, q.length, w.length, a.length]).size, 1, 'series lengths differ')
  return b.map((batch, i) => ({ batch, queued: q[i]!, waitMs: w[i]!, arrivals: a[i]! }))
}

test('batching: batches collapse to 1 while requests queue — fires, then resolves', () => {
  const alerts = run(
    steps(
      '8x20 1x8  8x6', // batch size
      '2x20 20x8 2x6', // rows queued at the executor
      '5x20 50x8 5x6', // queue wait, ms
      '200x34', // arrivals per second
    ),
  )
  assert.deepEqual(
    alerts.map((a) => [a.status, a.step]),
    [
      // condition from step 20; pendingSamples 2 → breaching at 20 and 21, fires at 20 + 2 − 1 = 21
      ['firing', 21],
      // batches are full again from step 28; resolveSamples 3 → clear at 28, 29, 30, resolves at 30
      ['resolved', 30],
    ],
  )
  const f = alerts[0]!
  assert.equal(f.type, 'batch_underutilized')
  assert.equal(f.observed, 1)
  assert.equal(f.baseline, 8)
  assert.equal(f.threshold, 8 * 0.7, 'achievable min(cap 8, max(200/s × 50 ms, 20)) × 0.7')
  assert.equal(f.severity, 'critical')
  assert.equal(f.stage, 'queue_wait')
  assert.equal(f.exemplar_request_ids.length, 3)
})

test('batching: full or three-quarter-full batches under load, and size-1 batches with nothing queued, stay quiet', () => {
  assert.deepEqual(
    run(steps('8x30', '2x10 70x20', '5x10 200x20', '200x10 2000x20')),
    [],
    'overload at max batch',
  )
  assert.deepEqual(run(steps('8x10 1x20', '2x10 0x20', '1x30', '10x30')), [], 'low load: nothing to batch')
  // batches of 6 under a learned cap of 8 with work queued are 75 % full: above the 0.7 fill ratio
  assert.deepEqual(
    run(steps('8x10 6x20', '2x10 20x20', '5x10 50x20', '200x30')),
    [],
    'three-quarter-full batches',
  )
})

test('batching: a batcher stuck at 1 from the start is still found while work queues, after the warm-up', () => {
  const alerts = run(steps('1x25', '0x5 30x20', '1x5 100x20', '300x25'))
  // work queues from step 5, judged from step 14 (the end of its interval is 15 s after the first
  // span); pendingSamples 2 → breaching at 14 and 15, fires at 15
  assert.deepEqual(
    alerts.map((a) => [a.status, a.step]),
    [['firing', 15]],
  )
  assert.match(alerts[0]!.summary, /median batch 1 while the load allows ~30/)
})

test('batching: an explicit maxBatchSize caps what the load allows', () => {
  // the load alone would allow min(∞, max(200/s × 50 ms, 20)) = 20 rows; the cap of 4 makes it 4.
  // batches of 3 are 75 % full: above the 0.7 fill ratio (limit 2.8), quiet
  // (warm-up off: the cap, not the warm-up, is what this test is about)
  const capped = new BatchUnderutilizedDetector({ maxBatchSize: 4, warmupMs: 0 })
  assert.deepEqual(run(steps('3x20', '20x20', '50x20', '200x20'), capped), [])
  // batches of 2 are half full: under the limit of 2.8, found (fires on step 1, the second breaching
  // sample with pendingSamples 2), and the threshold is the capped 4 × 0.7, not 20 × 0.7
  const half = run(
    steps('2x20', '20x20', '50x20', '200x20'),
    new BatchUnderutilizedDetector({ maxBatchSize: 4, warmupMs: 0 }),
  )
  assert.deepEqual(
    half.map((a) => [a.status, a.step]),
    [['firing', 1]],
  )
  assert.equal(half[0]!.threshold, 4 * 0.7)
  assert.equal(half[0]!.severity, 'warning', 'batches of 2 are not the critical batch-of-1 case')
})

test('batching: state survives a restart mid-alert', () => {
  const s = steps('8x20 1x8 8x6', '2x20 20x8 2x6', '5x20 50x8 5x6', '200x34')
  const whole = run(s).map((a) => [a.status, a.step, a.id])
  const first = new BatchUnderutilizedDetector()
  const before = run(s.slice(0, 24), first)
  const second = new BatchUnderutilizedDetector()
  second.importState(JSON.parse(JSON.stringify(first.exportState())))
  const after = run(s.slice(24), second, 24)
  assert.deepEqual(
    [...before, ...after].map((a) => [a.status, a.step, a.id]),
    whole,
  )
})

test('foreign spans: no batch id counts each request on its own; an unknown batch size (0) is ignored', () => {
  const foreign = (batchSize: number, d = new BatchUnderutilizedDetector()) => {
    const driver = new DetectorDriver(d)
    for (let i = 0; i < 30; i++) {
      const stuck = i >= 20 // from step 20 requests queue while the server still runs them one by one
      driver.tick({
        spans: Array.from({ length: 40 }, () => ({
          batch_size: batchSize,
          batch_id: '', // a producer that knows the batch size but names no batch
          device: '',
          queue_wait_us: (stuck ? 50 : 5) * 1000,
        })),
        hw: { queue_depth: stuck ? 20 : 0, arrivals: 200 },
      })
    }
    return { out: driver.alerts.map((r) => r.alert), d }
  }
  // batch size 1 while 20 wait: the same finding as the engine's own spans give (one batch per request)
  const one = foreign(1)
  assert.deepEqual(
    one.out.map((a) => [a.status, a.observed, a.severity]),
    [['firing', 1, 'critical']],
  )
  // Triton's traces carry no batch: nothing fires, and no batch size of 0 is learned as a baseline
  const unknown = foreign(0)
  assert.deepEqual(unknown.out, [])
  const state = unknown.d.exportState().keys as Record<string, { maxBatch: unknown; medianBatch: unknown }>
  const empty = new RollingBaseline(300, 1).toState()
  assert.deepEqual([state['test/engine-0']!.maxBatch, state['test/engine-0']!.medianBatch], [empty, empty])
})
