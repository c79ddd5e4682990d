import assert from 'node:assert/strict'
import { test } from 'node:test'
import { BatchUnderutilizedDetector } from '../../detectors/batching/detector.ts'
import type { Alert } from '../../ingest/contract/records.ts'
import { makeHwSample, makeSpan } from '../helpers/records.ts'
import { series } from '../helpers/series.ts'

const T0 = 1_767_225_600_000_000

interface Step {
  batch: number
  queued: number
  waitMs: number
  arrivals: number
}

/** one hw sample per second, preceded by 40 spans of that second in batches of `batch` */
function run(steps: Step[], d = new BatchUnderutilizedDetector(), from = 0): (Alert & { step: number })[] {
  const out: (Alert & { step: number })[] = []
  let req = from * 40
  steps.forEach((s, j) => {
    const i = j + from
    for (let k = 0; k < 40; k++) {
      const id = req++
      d.onSpan(
        makeSpan(id, {
          timestamp_us: T0 + i * 1e6 + k * 20_000,
          batch_size: s.batch,
          batch_id: `b-${i}-${Math.floor(k / s.batch)}`,
          queue_wait_us: s.waitMs * 1000 + (k % 5),
        }),
      )
    }
    const sample = makeHwSample(i, {
      timestamp_us: T0 + i * 1e6,
      queue_depth: s.queued,
      arrivals: s.arrivals,
    })
    for (const a of d.onHwSample(sample)) out.push({ ...a, step: i })
  })
  return out
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
      ['firing', 22], // condition from 20, held 3 samples
      ['resolved', 30], // clear from 28, 3 samples
    ],
  )
  const f = alerts[0]!
  assert.equal(f.type, 'batch_underutilized')
  assert.equal(f.observed, 1)
  assert.equal(f.baseline, 8)
  assert.equal(f.threshold, 2, 'achievable min(cap 8, max(200/s × 50 ms, 20)) × 0.25')
  assert.equal(f.severity, 'critical')
  assert.equal(f.stage, 'queue_wait')
  assert.equal(f.exemplar_request_ids.length, 3)
})

test('batching: full batches under overload, and size-1 batches with nothing queued, stay quiet', () => {
  assert.deepEqual(
    run(steps('8x30', '2x10 70x20', '5x10 200x20', '200x10 2000x20')),
    [],
    'overload at max batch',
  )
  assert.deepEqual(run(steps('8x10 1x20', '2x10 0x20', '1x30', '10x30')), [], 'low load: nothing to batch')
})

test('batching: a batcher stuck at 1 from the start is still found while work queues', () => {
  const alerts = run(steps('1x20', '0x5 30x15', '1x5 100x15', '300x20'))
  assert.deepEqual(
    alerts.map((a) => [a.status, a.step]),
    [['firing', 7]],
  )
  assert.match(alerts[0]!.summary, /median batch 1 while the load allows ~30/)
})

test('batching: an explicit maxBatchSize caps what the load allows', () => {
  // max batch 4: batches of 2 are half full, not a quarter
  const d = new BatchUnderutilizedDetector({ maxBatchSize: 4 })
  assert.deepEqual(run(steps('2x20', '20x20', '50x20', '200x20'), d), [])
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
