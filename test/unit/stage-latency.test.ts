import assert from 'node:assert/strict'
import { test } from 'node:test'
import { StageLatencyDetector } from '../../detectors/stage-latency/detector.ts'
import type { Alert, Span } from '../../ingest/contract/records.ts'
import type { Stage } from '../../ingest/contract/schemas.ts'
import { makeSpan } from '../helpers/records.ts'
import { series } from '../helpers/series.ts'

const T0 = 1_767_225_600_000_000

/**
 * One interval (1 s) per step: `perStep` spans whose stage durations are the series' value (µs,
 * + a little jitter). An alert is reported with the interval whose close raised it.
 */
function run(
  stages: Partial<Record<Stage, string>>,
  { model = 'mlp', perStep = 20, from = 0, d = new StageLatencyDetector() } = {},
) {
  const cols = Object.entries(stages).map(([s, notation]) => [s as Stage, series(notation)] as const)
  const n = cols[0]![1].length
  const out: (Alert & { step: number })[] = []
  let req = 0
  const feed = (step: number, k: number) => {
    const ts = T0 + (from + step) * 1e6 + k * 1000
    const over: Partial<Span> = { model, request_id: `req-${req}`, timestamp_us: ts }
    for (const [s, v] of cols) over[`${s}_us`] = v[step]! + (k % 5)
    for (const a of d.onSpan(makeSpan(req++, over)))
      out.push({ ...a, step: (a.updated_at_us - T0) / 1e6 - 1 - from })
  }
  for (let step = 0; step < n; step++) for (let k = 0; k < perStep; k++) feed(step, k)
  feed(n, 0) // closes the last interval
  return { at: out.map((a) => [a.status, a.stage, a.step]), alerts: out, d }
}

test('a stage that regresses fires after 3 intervals, names the stage, resolves after 3 clear', () => {
  const { at, alerts } = run({ preprocess: '50x15 40000x6 50x6', compute: '900x27' })
  assert.deepEqual(at, [
    ['firing', 'preprocess', 17], // regressed from interval 15, held 3 intervals
    ['resolved', 'preprocess', 23],
  ])
  const a = alerts[0]!
  assert.equal(a.type, 'stage_latency_regression')
  assert.equal(a.dedup_key, 'stage_latency_regression/test/engine-0/mlp/preprocess')
  assert.equal(a.baseline, 52)
  assert.equal(a.observed, 40002)
  assert.equal(a.threshold, 1052, 'max(3×52, 52+6σ, 52+1000 µs)')
  assert.equal(a.severity, 'critical')
  assert.equal(a.exemplar_request_ids.length, 3)
  assert.equal(a.statistic, 'preprocess_us_p50')
})

test('a 3× rise of a microsecond stage does not page (minimum increase 1 ms)', () => {
  assert.deepEqual(run({ serialize: '12x15 40x10' }).at, [])
})

test('a moderate rise (1.5×) and a one-interval spike do not fire', () => {
  assert.deepEqual(run({ compute: '9000x15 13500x10' }).at, [])
  assert.deepEqual(run({ compute: '9000x15 90000x2 9000x5' }).at, [])
})

test('a noisy stage needs more than 6σ: swings it has always had do not fire', () => {
  // interval medians cycle 2000…6000 µs: median 4000, σ ≈ 1483, so 3× (12 ms) is within 6σ (12.9 ms)
  const noisy = Array.from({ length: 15 }, (_, i) => String(2000 + (i % 5) * 1000)).join(' ')
  assert.deepEqual(run({ queue_wait: `${noisy} 12500x6` }).at, [])
  assert.deepEqual(
    run({ queue_wait: `${noisy} 40000x6` }).at.map((r) => r[0]),
    ['firing'],
    'far beyond the noise it fires',
  )
})

test('nothing fires during warm-up; intervals with too few requests are skipped', () => {
  assert.deepEqual(run({ preprocess: '50x3 40000x6' }).at, [])
  assert.deepEqual(run({ preprocess: '50x15 40000x6' }, { perStep: 4 }).at, [])
})

test('baselines are per model: one model regressing does not alert for another', () => {
  const d = new StageLatencyDetector()
  run({ compute: '900x20' }, { model: 'a', d })
  const { at, alerts } = run({ compute: '900x15 30000x5' }, { model: 'b', d })
  assert.deepEqual(at, [['firing', 'compute', 17]])
  assert.equal(alerts[0]!.model, 'b')
})

test('state round-trips: a restored detector detects without a new warm-up', () => {
  const warm = run({ preprocess: '50x15' }).d
  const restored = new StageLatencyDetector()
  restored.importState(JSON.parse(JSON.stringify(warm.exportState())) as Record<string, unknown>)
  // the restored detector continues; a cold one would be in warm-up for these 6 intervals
  assert.deepEqual(run({ preprocess: '40000x6' }, { d: restored, from: 15 }).at, [
    ['firing', 'preprocess', 2],
  ])
  assert.deepEqual(run({ preprocess: '40000x6' }).at, [], 'control: cold detector')
})
