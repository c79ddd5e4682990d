import assert from 'node:assert/strict'
import { test } from 'node:test'
import { IdleNoLoadDetector } from '../../detectors/idle/detector.ts'
import { DetectorDriver, assertAlert } from '../helpers/detector-driver.ts'

/** one hw sample per second, fields in series notation */
function run(table: Record<string, string>, d = new DetectorDriver(new IdleNoLoadDetector())) {
  d.run(table)
  return d
}

/** a driver for a detector restored from `from`, continuing its clock */
const continued = (from: DetectorDriver, detector: IdleNoLoadDetector) =>
  new DetectorDriver(detector, { startUs: from.at(from.step) })

test('idle with no load fires after 30 samples (info) and resolves 5 samples after load returns', () => {
  const d = run({
    executor_busy: '0.6x15 0.02x40 0.6x6',
    arrivals: '200x15 3x40 200x6',
    in_flight: '4x15 0x40 4x6',
  })
  assert.deepEqual(d.transitions(), [
    ['firing', 44], // idle from step 15, held 30 samples
    ['resolved', 59],
  ])
  const a = d.alerts[0]!.alert
  assertAlert(a, {
    type: 'accelerator_idle_no_load',
    severity: 'info',
    baseline: 0.6,
    threshold: 0.15,
    observed: 0.02,
  })
})

test('a shorter idle spell (a lull) does not fire', () => {
  assert.deepEqual(run({ executor_busy: '0.6x15 0.02x25 0.6x10', arrivals: '200x15 3x25 200x10' }).alerts, [])
})

test('idle executor with work in flight is starvation, not over-provisioning', () => {
  assert.deepEqual(
    run({ executor_busy: '0.6x15 0.02x40', arrivals: '200x15 3x40', in_flight: '4x15 60x40' }).alerts,
    [],
  )
})

test('busy falling with arrivals steady (a faster executor) does not fire', () => {
  assert.deepEqual(run({ executor_busy: '0.6x15 0.1x40', arrivals: '200x55' }).alerts, [])
})

test('an instance that was never loaded still counts (busy < 0.05, under 1 arrival/s), after the warm-up', () => {
  // idle from the first sample; judged from step 15 (15 s seen), held 30 samples
  assert.deepEqual(run({ executor_busy: '0.01x50', arrivals: '0x50' }).transitions(), [['firing', 44]])
})

test('state round-trips: a restored detector keeps its loaded baseline', () => {
  const warm = run({ executor_busy: '0.6x15', arrivals: '200x15' })
  const restored = new IdleNoLoadDetector()
  restored.importState(
    JSON.parse(JSON.stringify(warm.detectors[0]!.exportState!())) as Record<string, unknown>,
  )
  // 0.1 busy with 20 arrivals: idle against the restored baseline (0.6 / 200), not for a cold one
  const table = { executor_busy: '0.1x35', arrivals: '20x35' }
  assert.deepEqual(run(table, continued(warm, restored)).transitions(), [['firing', 29]])
  assert.deepEqual(run(table).alerts, [], 'control: cold')
})
