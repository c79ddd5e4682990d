import assert from 'node:assert/strict'
import { test } from 'node:test'
import { StarvationDetector } from '../../detectors/starvation/detector.ts'
import type { Alert } from '../../contract/records.ts'
import { makeHwSample, makeSpan } from '../../contract/synthetic.ts'
import { series } from '../helpers/series.ts'

interface Step {
  busy: number
  inFlight: number
  queued: number
  preprocessUs: number
}

/** Feeds one hw sample per second, each preceded by 20 spans of that second. */
function run(steps: Step[]): { alerts: Alert[]; at: (Alert & { step: number })[] } {
  const d = new StarvationDetector()
  const at: (Alert & { step: number })[] = []
  let req = 0
  steps.forEach((s, i) => {
    for (let k = 0; k < 20; k++) {
      d.onSpan(makeSpan(req++, { preprocess_us: s.preprocessUs + k, timestamp_us: 1e15 + i * 1e6 + k }))
    }
    for (const a of d.onHwSample(
      makeHwSample(i, {
        executor_busy: s.busy,
        in_flight: s.inFlight,
        queue_depth: s.queued,
        timestamp_us: 1e15 + i * 1e6,
      }),
    )) {
      at.push({ ...a, step: i })
    }
  })
  return { alerts: at, at }
}

function steps(busy: string, inFlight: string, queued: string, preprocessUs: string): Step[] {
  const b = series(busy)
  const f = series(inFlight)
  const a = series(queued)
  const p = series(preprocessUs)
  assert.equal(new Set([b.length, f.length, a.length, p.length]).size, 1, 'series lengths differ')
  return b.map((busyV, i) => ({ busy: busyV, inFlight: f[i]!, queued: a[i]!, preprocessUs: p[i]! }))
}

test('starvation: fires once when busy drops while work piles up, resolves when it recovers', () => {
  const { at } = run(
    steps(
      '0.5x15 0.25x6 0.5x6', // executor busy fraction (as measured in breakid up: 0.47 → 0.25)
      '3x15   60x6   3x6', // requests in flight
      '1x15   0x6    1x6', // rows waiting at the executor
      '50x15  40000x6 50x6', // preprocess µs
    ),
  )
  assert.deepEqual(
    at.map((a) => [a.status, a.step]),
    [
      ['firing', 16], // condition from step 15, held 2 samples
      ['resolved', 23], // clear from step 21, 3 samples
    ],
  )
  const firing = at[0]!
  assert.equal(firing.type, 'accelerator_starved')
  assert.equal(firing.stage, 'preprocess', 'blames the stage that grew')
  assert.equal(firing.starts_at_us, 1e15 + 15 * 1e6)
  assert.ok(firing.baseline === 0.5 && firing.observed === 0.25)
  assert.equal(firing.exemplar_request_ids.length, 3)
  assert.equal(firing.severity, 'warning', 'critical is kept for busy below half its baseline')
})

test('idle with no pending work is not starvation (that is over-provisioning)', () => {
  assert.deepEqual(run(steps('0.6x15 0.05x8', '3x15 1x8', '1x23', '50x23')).at, [])
})

test('a busy drop without a backlog does not fire', () => {
  assert.deepEqual(run(steps('0.6x15 0.2x8', '3x23', '1x23', '50x23')).at, [])
})

test('a backlog waiting AT the executor is overload, not starvation', () => {
  assert.deepEqual(run(steps('0.6x15 0.7x8', '3x15 80x8', '1x15 70x8', '50x23')).at, [])
  // even if the busy fraction reads low (e.g. a slower batch shape), a full executor queue is not starvation
  assert.deepEqual(run(steps('0.6x15 0.3x8', '3x15 80x8', '1x15 70x8', '50x23')).at, [])
})

test('a backlog while the executor is saturated does not fire', () => {
  assert.deepEqual(run(steps('0.7x15 0.95x8', '3x15 80x8', '1x15 2x8', '50x23')).at, [])
})

test('nothing fires during warm-up', () => {
  assert.deepEqual(run(steps('0.6x3 0.1x6', '3x3 60x6', '1x3 0x6', '50x9')).at, [])
})

test('a one-sample dip does not fire (hold time)', () => {
  assert.deepEqual(run(steps('0.6x15 0.1x1 0.6x5', '3x15 60x1 3x5', '1x15 0x1 1x5', '50x21')).at, [])
})
