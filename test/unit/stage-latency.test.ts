import assert from 'node:assert/strict'
import { test } from 'node:test'
import { StageLatencyDetector } from '../../detectors/stage-latency/detector.ts'
import type { Alert, Span } from '../../contract/records.ts'
import type { Stage } from '../../contract/vocabulary.ts'
import { DetectorDriver, T0_US, assertAlert } from '../helpers/detector-driver.ts'

/** the interval (1 s step) an alert's evaluation closed */
const interval = (a: Alert, from = 0) => (a.updated_at_us - T0_US) / 1e6 - 1 - from

/**
 * One interval (1 s) per step: `perStep` spans whose stage durations are the series' value (µs,
 * + a little jitter); one more span closes the last interval. An alert is reported with the
 * interval whose close raised it.
 */
function run(
  stages: Partial<Record<Stage, string>>,
  { model = 'mlp', perStep = 20, from = 0, d = new StageLatencyDetector() } = {},
) {
  const driver = new DetectorDriver(d, { model, startUs: T0_US + from * 1e6 })
  const table = Object.fromEntries(Object.entries(stages).map(([s, notation]) => [`span.${s}_us`, notation]))
  const jitter = (_i: number, k: number, columns: Partial<Span>) => {
    const over: Partial<Span> = {}
    for (const s of Object.keys(stages) as Stage[]) over[`${s}_us`] = columns[`${s}_us`]! + (k % 5)
    return over
  }
  driver.run(table, { spansPerStep: perStep, span: jitter, hw: () => ({}) })
  driver.tick({ spans: 1, hw: false }) // closes the last interval
  const alerts = driver.alerts.map((r) => ({ ...r.alert, step: interval(r.alert, from) }))
  return { at: alerts.map((a) => [a.status, a.stage, a.step]), alerts, d }
}

test('a stage that regresses fires after 2 intervals, names the stage, resolves after 3 clear', () => {
  const { at, alerts } = run({ preprocess: '50x15 40000x6 50x6', compute: '900x27' })
  assert.deepEqual(at, [
    // regressed from interval 15; pendingSamples 2 → breaching at 15 and 16, fires at 16
    ['firing', 'preprocess', 16],
    // clear from interval 21; resolveSamples 3 → clear at 21, 22, 23, resolves at 23
    ['resolved', 'preprocess', 23],
  ])
  const a = alerts[0]!
  assertAlert(a, {
    type: 'stage_latency_regression',
    dedup_key: 'stage_latency_regression/test/engine-0/mlp/preprocess',
    baseline: 52,
    observed: 40002,
  })
  assert.equal(a.threshold, 1052, 'max(1.5×52, 52+6σ, 52+1000 µs)')
  assert.equal(a.severity, 'critical')
  assert.equal(a.exemplar_request_ids.length, 3)
  assert.equal(a.statistic, 'preprocess_us_p50')
})

test('a 3× rise of a microsecond stage does not page (minimum increase 1 ms)', () => {
  assert.deepEqual(run({ serialize: '12x15 40x10' }).at, [])
})

test('a moderate rise (1.3×) and a one-interval spike do not fire; 1.6× does', () => {
  // threshold max(1.5 × 9002, 9002 + 6σ (σ ≈ 0: the medians do not vary), 9002 + 1000) = 13503
  assert.deepEqual(run({ compute: '9000x15 11700x10' }).at, [], '1.3×')
  // pendingSamples 2: one breaching interval goes back to inactive
  assert.deepEqual(run({ compute: '9000x15 90000x1 9000x5' }).at, [], 'one-interval spike')
  assert.deepEqual(
    run({ compute: '9000x15 14400x10' }).at,
    [['firing', 'compute', 16]],
    '1.6×: regressed from interval 15, fires at 16',
  )
})

test('queue_wait keeps the 3× ratio: doubling under load does not page, tripling does', () => {
  // queue_wait 5 ms → 10 ms: 2× is over the 1.5× of other stages but under queueWaitRatio 3
  assert.deepEqual(run({ queue_wait: '5000x15 10000x10' }).at, [], 'queue_wait 2×')
  assert.deepEqual(
    run({ compute: '5000x15 10000x10' }).at,
    [['firing', 'compute', 16]],
    'compute 2× does fire',
  )
  assert.deepEqual(
    run({ queue_wait: '5000x15 16000x10' }).at,
    [['firing', 'queue_wait', 16]],
    'queue_wait 3.2× fires',
  )
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
  assert.deepEqual(at, [['firing', 'compute', 16]]) // regressed from 15, pendingSamples 2
  assert.equal(alerts[0]!.model, 'b')
})

test('state round-trips: a restored detector detects without a new warm-up', () => {
  const warm = run({ preprocess: '50x15' }).d
  const restored = new StageLatencyDetector()
  restored.importState(JSON.parse(JSON.stringify(warm.exportState())) as Record<string, unknown>)
  // the restored detector continues; a cold one would be in warm-up for these 6 intervals.
  // Regressed from the first one (0), pendingSamples 2 → fires at 1
  assert.deepEqual(run({ preprocess: '40000x6' }, { d: restored, from: 15 }).at, [
    ['firing', 'preprocess', 1],
  ])
  assert.deepEqual(run({ preprocess: '40000x6' }).at, [], 'control: cold detector')
})

test('failed requests (later stages 0) neither fire nor poison the baseline', () => {
  // 20 requests an interval. In a failing interval 3 of 5 fail in preprocess after a 40 ms timeout:
  // status server_error, the stages after preprocess never ran and read 0.
  const feed = (d: StageLatencyDetector, plan: ('ok' | 'failing')[], computeUs: (step: number) => number) => {
    const driver = new DetectorDriver(d)
    const span = (step: number, k: number): Partial<Span> => {
      const fail = plan[step] === 'failing' && k % 5 < 3
      const ok = {
        preprocess_us: 50 + (k % 5),
        queue_wait_us: 500 + (k % 5),
        compute_us: computeUs(step) + (k % 5),
      }
      const failed = {
        preprocess_us: 40_000,
        queue_wait_us: 0,
        compute_us: 0,
        postprocess_us: 0,
        serialize_us: 0,
      }
      return {
        status: fail ? 'server_error' : 'ok',
        error_class: fail ? 'Timeout' : null,
        ...(fail ? failed : ok),
      }
    }
    for (let step = 0; step <= plan.length; step++) {
      const n = step < plan.length ? 20 : 1
      driver.tick({ spans: Array.from({ length: n }, (_, k) => span(step, k)), hw: false })
    }
    return driver.alerts.map((r) => ({ ...r.alert, step: interval(r.alert) }))
  }
  const plan = (notation: string) =>
    notation.split(' ').flatMap((p) => {
      const [what, n] = p.split('x') as ['ok' | 'failing', string]
      return Array.from({ length: Number(n) }, () => what)
    })

  // after warm-up: counted, the failures would make preprocess's median 40 ms (fire) and compute's 0
  assert.deepEqual(
    feed(new StageLatencyDetector(), plan('okx15 failingx6 okx6'), () => 9000),
    [],
    'a failure burst is the error-rate detector’s to report',
  )
  // in warm-up: counted, they would teach compute a baseline of 0 and then page on the healthy 9 ms.
  // Ignored, the baseline is the successful requests' 9 ms, and a real regression from interval 25
  // is still found on time (pendingSamples 2 → fires at 26) against that baseline
  const alerts = feed(new StageLatencyDetector(), plan('failingx15 okx15'), (step) =>
    step >= 25 ? 30_000 : 9000,
  )
  assert.deepEqual(
    alerts.map((a) => [a.status, a.stage, a.step]),
    [['firing', 'compute', 26]],
  )
  assert.ok(alerts[0]!.baseline >= 9000 && alerts[0]!.baseline <= 9004, `baseline ${alerts[0]!.baseline}`)
})
