import assert from 'node:assert/strict'
import { test } from 'node:test'
import { QueueGrowthDetector } from '../../detectors/queue-growth/detector.ts'
import type { Alert, HwSample } from '../../contract/records.ts'
import { makeHwSample, makeSpan } from '../../contract/synthetic.ts'
import { series } from '../helpers/series.ts'

const T0 = 1_767_225_600_000_000

/** one hw sample per second, fields given as series; returns [status, step] per alert */
function run(cols: Partial<Record<'queue_depth' | 'completions', string>>, d = new QueueGrowthDetector()) {
  const parsed = Object.entries(cols).map(([k, v]) => [k as keyof HwSample, series(v)] as const)
  const n = parsed[0]![1].length
  const alerts: (Alert & { step: number })[] = []
  for (let step = 0; step < n; step++) {
    d.onSpan(
      makeSpan(step, {
        request_id: `req-${step}`,
        queue_wait_us: 1000 + step,
        timestamp_us: T0 + step * 1e6,
      }),
    )
    const over: Partial<HwSample> = { timestamp_us: T0 + step * 1e6 }
    for (const [k, v] of parsed) Object.assign(over, { [k]: v[step] })
    for (const a of d.onHwSample(makeHwSample(step, over))) alerts.push({ ...a, step })
  }
  return { at: alerts.map((a) => [a.status, a.step]), alerts, d }
}

test('queue growing while completions fall fires, stays firing on a high plateau, resolves on drain', () => {
  const { at, alerts } = run({
    queue_depth: '2x15 4 8 12 16 20 24 28 28 28 2x6',
    completions: '200x15 100x9 200x6',
  })
  assert.deepEqual(at, [
    ['firing', 17], // the last 5 samples (12..16) never fall and grew 2 → 8, from step 16; held 2
    ['resolved', 26], // drained at step 24, clear 3
  ])
  const a = alerts[0]!
  assert.equal(a.type, 'queue_growth')
  assert.equal(a.statistic, 'completions')
  assert.equal(a.baseline, 200)
  assert.equal(a.threshold, 140)
  assert.equal(a.observed, 100)
  assert.equal(a.stage, 'queue_wait')
  assert.deepEqual(a.exemplar_request_ids, ['req-17', 'req-16', 'req-15'], 'longest queue waits')
})

test('a growing queue with steady completions is load, not a stall', () => {
  assert.deepEqual(run({ queue_depth: '2x15 4 8 12 16 20 24 28', completions: '200x22' }).at, [])
})

test('falling completions with a flat queue is a load drop, not a stall', () => {
  assert.deepEqual(run({ queue_depth: '2x22', completions: '200x15 50x7' }).at, [])
})

test('a queue that jitters up and down does not count as rising', () => {
  assert.deepEqual(run({ queue_depth: '2x15 10 4 12 6 14 8 16', completions: '200x15 100x7' }).at, [])
})

test('nothing fires during warm-up; state round-trips without a new warm-up', () => {
  assert.deepEqual(run({ queue_depth: '2x3 4 8 12 16 20 24', completions: '200x3 100x6' }).at, [])
  const warm = run({ queue_depth: '2x15', completions: '200x15' }).d
  const restored = new QueueGrowthDetector()
  restored.importState(JSON.parse(JSON.stringify(warm.exportState())) as Record<string, unknown>)
  // the restored recent queue depths (2 2 2 2 2) count: rising from step 1, fired at step 2
  assert.deepEqual(run({ queue_depth: '4 8 12 16 20 24', completions: '100x6' }, restored).at, [
    ['firing', 2],
  ])
  assert.deepEqual(run({ queue_depth: '4 8 12 16 20 24', completions: '100x6' }).at, [], 'control: cold')
})
