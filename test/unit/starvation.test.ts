import assert from 'node:assert/strict'
import { test } from 'node:test'
import { StarvationDetector } from '../../detectors/starvation/detector.ts'
import { DetectorDriver, T0_US } from '../helpers/detector-driver.ts'

/** One hw sample per second, each after 20 spans of that second (preprocess µs varying by span). */
function run(table: {
  busy: string
  inFlight: string
  queued: string
  preprocessUs: string
  postprocessUs?: string
}) {
  const d = new DetectorDriver(new StarvationDetector())
  d.run(
    {
      executor_busy: table.busy,
      in_flight: table.inFlight,
      queue_depth: table.queued,
      'span.preprocess_us': table.preprocessUs,
      ...(table.postprocessUs ? { 'span.postprocess_us': table.postprocessUs } : {}),
    },
    { spansPerStep: 20, span: (_i, k) => ({ total_us: 1500 + k }) },
  )
  return d
}

test('starvation: fires once when busy drops while work piles up, resolves when it recovers', () => {
  const d = run({
    busy: '0.5x16 0.25x6 0.5x6', // executor busy fraction (as measured in breakid up: 0.47 → 0.25)
    inFlight: '3x16   60x6   3x6', // requests in flight
    queued: '1x16   0x6    1x6', // rows waiting at the executor
    preprocessUs: '50x16  40000x6 50x6', // preprocess µs
  })
  assert.deepEqual(d.transitions(), [
    ['firing', 17], // condition from step 16, held 2 samples
    ['resolved', 24], // clear from step 22, 3 samples
  ])
  const firing = d.alerts[0]!.alert
  assert.equal(firing.type, 'accelerator_starved')
  assert.equal(firing.stage, 'preprocess', 'blames the stage that grew')
  assert.equal(
    firing.starts_at_us,
    T0_US + 17 * 1e6,
    'starts at the sample that first breached (end of step 16)',
  )
  assert.ok(firing.baseline === 0.5 && firing.observed === 0.25)
  assert.equal(firing.exemplar_request_ids.length, 3)
  assert.equal(firing.severity, 'warning', 'critical is kept for busy below half its baseline')
  assert.equal(d.alerts[1]!.alert.resolve_reason, 'cleared')
})

/** a starvation's hardware signature (idle executor, work piling up, none at the executor) */
const STARVED = {
  busy: '0.5x16 0.25x6 0.5x6',
  inFlight: '3x16 60x6 3x6',
  queued: '1x16 0x6 1x6',
  preprocessUs: '50x28',
}

test('requests piled up after the executor (a postprocess stall) are that stage, not starvation', () => {
  assert.deepEqual(run({ ...STARVED, postprocessUs: '50x16 40000x6 50x6' }).alerts, [])
})

test('noise on a fast stage after the executor does not veto a real starvation', () => {
  assert.deepEqual(
    run({ ...STARVED, postprocessUs: '20x16 100x6 20x6' }).alerts.map((a) => a.alert.type),
    ['accelerator_starved', 'accelerator_starved'],
  )
})

test('idle with no pending work is not starvation (that is over-provisioning)', () => {
  assert.deepEqual(
    run({ busy: '0.6x16 0.05x8', inFlight: '3x16 1x8', queued: '1x24', preprocessUs: '50x24' }).alerts,
    [],
  )
})

test('a busy drop without a backlog does not fire', () => {
  assert.deepEqual(
    run({ busy: '0.6x16 0.2x8', inFlight: '3x24', queued: '1x24', preprocessUs: '50x24' }).alerts,
    [],
  )
})

test('a backlog waiting AT the executor is overload, not starvation', () => {
  const overload = { inFlight: '3x16 80x8', queued: '1x16 70x8', preprocessUs: '50x24' }
  assert.deepEqual(run({ busy: '0.6x16 0.7x8', ...overload }).alerts, [])
  // even if the busy fraction reads low (e.g. a slower batch shape), a full executor queue is not starvation
  assert.deepEqual(run({ busy: '0.6x16 0.3x8', ...overload }).alerts, [])
})

test('a backlog while the executor is saturated does not fire', () => {
  assert.deepEqual(
    run({ busy: '0.7x16 0.95x8', inFlight: '3x16 80x8', queued: '1x16 2x8', preprocessUs: '50x24' }).alerts,
    [],
  )
})

test('nothing fires during warm-up: neither before 10 samples of baseline nor in the first 15 s', () => {
  assert.deepEqual(
    run({ busy: '0.6x3 0.1x6', inFlight: '3x3 60x6', queued: '1x3 0x6', preprocessUs: '50x9' }).alerts,
    [],
  )
  // the baselines are ready after 10 samples, but the instance has been seen for only 12 s
  assert.deepEqual(
    run({ busy: '0.6x10 0.1x3', inFlight: '3x10 60x3', queued: '1x10 0x3', preprocessUs: '50x13' }).alerts,
    [],
  )
})

test('a one-sample dip does not fire (hold time)', () => {
  assert.deepEqual(
    run({
      busy: '0.6x16 0.1x1 0.6x5',
      inFlight: '3x16 60x1 3x5',
      queued: '1x16 0x1 1x5',
      preprocessUs: '50x22',
    }).alerts,
    [],
  )
})

test('shutdown resolves a firing alert (reason shutdown) and leaves nothing half-held', () => {
  const d = run({
    busy: '0.5x16 0.25x4',
    inFlight: '3x16 60x4',
    queued: '1x16 0x4',
    preprocessUs: '50x16 40000x4',
  })
  assert.deepEqual(d.transitions(), [['firing', 17]])
  const closed = d.shutdown()
  assert.deepEqual(
    closed.map((r) => [r.alert.status, r.alert.resolve_reason, r.alert.id]),
    [['resolved', 'shutdown', d.alerts[0]!.alert.id]],
  )
  const state = d.detectors[0]!.exportState!() as { keys: Record<string, { lifecycle: { state: string } }> }
  assert.equal(state.keys['engine-0']!.lifecycle.state, 'inactive')
  assert.deepEqual(d.shutdown(), [], 'closing twice resolves nothing twice')
})
