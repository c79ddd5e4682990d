import assert from 'node:assert/strict'
import { test } from 'node:test'
import { IdleNoLoadDetector } from '../../detectors/idle/detector.ts'
import type { Alert, HwSample } from '../../contract/records.ts'
import { makeHwSample } from '../../contract/synthetic.ts'
import { series } from '../helpers/series.ts'

const T0 = 1_767_225_600_000_000

type Col = 'executor_busy' | 'arrivals' | 'in_flight'

function run(cols: Partial<Record<Col, string>>, d = new IdleNoLoadDetector()) {
  const parsed = Object.entries(cols).map(([k, v]) => [k as keyof HwSample, series(v)] as const)
  const n = parsed[0]![1].length
  const alerts: (Alert & { step: number })[] = []
  for (let step = 0; step < n; step++) {
    const over: Partial<HwSample> = { timestamp_us: T0 + step * 1e6 }
    for (const [k, v] of parsed) Object.assign(over, { [k]: v[step] })
    for (const a of d.onHwSample(makeHwSample(step, over))) alerts.push({ ...a, step })
  }
  return { at: alerts.map((a) => [a.status, a.step]), alerts, d }
}

test('idle with no load fires after 30 samples (info) and resolves 5 samples after load returns', () => {
  const { at, alerts } = run({
    executor_busy: '0.6x15 0.02x40 0.6x6',
    arrivals: '200x15 3x40 200x6',
    in_flight: '4x15 0x40 4x6',
  })
  assert.deepEqual(at, [
    ['firing', 44], // idle from step 15, held 30 samples
    ['resolved', 59],
  ])
  const a = alerts[0]!
  assert.equal(a.type, 'accelerator_idle_no_load')
  assert.equal(a.severity, 'info')
  assert.equal(a.baseline, 0.6)
  assert.equal(a.threshold, 0.15)
  assert.equal(a.observed, 0.02)
})

test('a shorter idle spell (a lull) does not fire', () => {
  assert.deepEqual(run({ executor_busy: '0.6x15 0.02x25 0.6x10', arrivals: '200x15 3x25 200x10' }).at, [])
})

test('idle executor with work in flight is starvation, not over-provisioning', () => {
  assert.deepEqual(
    run({ executor_busy: '0.6x15 0.02x40', arrivals: '200x15 3x40', in_flight: '4x15 60x40' }).at,
    [],
  )
})

test('busy falling with arrivals steady (a faster executor) does not fire', () => {
  assert.deepEqual(run({ executor_busy: '0.6x15 0.1x40', arrivals: '200x55' }).at, [])
})

test('an instance that was never loaded still counts (busy < 0.05, under 1 arrival/s)', () => {
  assert.deepEqual(run({ executor_busy: '0.01x45', arrivals: '0x45' }).at, [['firing', 39]])
})

test('state round-trips: a restored detector keeps its loaded baseline', () => {
  const warm = run({ executor_busy: '0.6x15', arrivals: '200x15' }).d
  const restored = new IdleNoLoadDetector()
  restored.importState(JSON.parse(JSON.stringify(warm.exportState())) as Record<string, unknown>)
  // 0.1 busy with 20 arrivals: idle against the restored baseline (0.6 / 200), not for a cold one
  assert.deepEqual(run({ executor_busy: '0.1x35', arrivals: '20x35' }, restored).at, [['firing', 29]])
  assert.deepEqual(run({ executor_busy: '0.1x35', arrivals: '20x35' }).at, [], 'control: cold')
})
