import assert from 'node:assert/strict'
import { test } from 'node:test'
import { QueueGrowthDetector } from '../../detectors/queue-growth/detector.ts'
import { DetectorDriver, assertAlert } from '../helpers/detector-driver.ts'

/** one hw sample per second after one span (queue wait growing by step) */
function run(table: Record<string, string>, d = new DetectorDriver(new QueueGrowthDetector())) {
  d.run(table, { spansPerStep: 1, span: (i) => ({ request_id: `req-${i}`, queue_wait_us: 1000 + i }) })
  return d
}

test('queue growing while completions fall fires, stays firing on a high plateau, resolves on drain', () => {
  const d = run({
    queue_depth: '2x15 4 8 12 16 20 24 28 28 28 2x6',
    completions: '200x15 100x9 200x6',
  })
  assert.deepEqual(d.transitions(), [
    ['firing', 17], // the last 5 samples (12..16) never fall and grew 2 → 8, from step 16; held 2
    ['resolved', 26], // drained at step 24, clear 3
  ])
  const a = d.alerts[0]!.alert
  assertAlert(a, {
    type: 'queue_growth',
    statistic: 'completions',
    baseline: 200,
    threshold: 140,
    observed: 100,
    stage: 'queue_wait',
  })
  assert.deepEqual(a.exemplar_request_ids, ['req-17', 'req-16', 'req-15'], 'longest queue waits')
})

test('a growing queue with steady completions is load, not a stall', () => {
  assert.deepEqual(run({ queue_depth: '2x15 4 8 12 16 20 24 28', completions: '200x22' }).alerts, [])
})

test('falling completions with a flat queue is a load drop, not a stall', () => {
  assert.deepEqual(run({ queue_depth: '2x22', completions: '200x15 50x7' }).alerts, [])
})

test('a queue that jitters up and down does not count as rising', () => {
  assert.deepEqual(run({ queue_depth: '2x15 10 4 12 6 14 8 16', completions: '200x15 100x7' }).alerts, [])
})

test('nothing fires during warm-up; state round-trips without a new warm-up', () => {
  assert.deepEqual(run({ queue_depth: '2x3 4 8 12 16 20 24', completions: '200x3 100x6' }).alerts, [])
  const warm = run({ queue_depth: '2x15', completions: '200x15' })
  const restored = new QueueGrowthDetector()
  restored.importState(
    JSON.parse(JSON.stringify(warm.detectors[0]!.exportState!())) as Record<string, unknown>,
  )
  // the restored recent queue depths (2 2 2 2 2) count: rising from step 1, fired at step 2
  const stall = { queue_depth: '4 8 12 16 20 24', completions: '100x6' }
  const after = new DetectorDriver(restored, { startUs: warm.at(warm.step) })
  assert.deepEqual(run(stall, after).transitions(), [['firing', 2]])
  assert.deepEqual(run(stall).alerts, [], 'control: cold')
})
