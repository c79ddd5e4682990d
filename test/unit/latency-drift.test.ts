import assert from 'node:assert/strict'
import { test } from 'node:test'
import { LatencyDriftDetector } from '../../detectors/drift/latency.ts'
import type { Alert, Span } from '../../contract/records.ts'
import { makeSpan } from '../../contract/synthetic.ts'
import { mulberry32 } from '../../core/prng.ts'
import { series } from '../helpers/series.ts'
import { DetectorDriver, T0_US } from '../helpers/detector-driver.ts'

const T0 = T0_US
const PER_SECOND = 50

const prng = mulberry32

/**
 * One step per second, PER_SECOND spans each; `computeUs` is the step's typical compute time, every
 * span varies ±20 % around it (so the latency distribution has width), other stages fixed.
 */
function spans(computeUs: number[], seed = 1): Span[][] {
  const r = prng(seed)
  let req = 0
  return computeUs.map((c, i) =>
    Array.from({ length: PER_SECOND }, (_, k) => {
      const compute = Math.round(c * (0.8 + 0.4 * r()))
      const other = 20 + 40 + 500 + 15 + 12
      return makeSpan(req++, {
        timestamp_us: T0 + i * 1e6 + k * (1e6 / PER_SECOND),
        deserialize_us: 20,
        preprocess_us: 40,
        queue_wait_us: 500,
        compute_us: compute,
        postprocess_us: 15,
        serialize_us: 12,
        total_us: compute + other,
      })
    }),
  )
}

/** feeds the steps from `from` on through the driver (the spans carry their own timestamps) */
function run(d: LatencyDriftDetector, steps: Span[][], from = 0): (Alert & { step: number })[] {
  const driver = new DetectorDriver(d, { startUs: T0 + from * 1e6 })
  for (const ss of steps.slice(from)) driver.tick({ spans: ss, hw: false })
  return driver.alerts.map((r) => ({ ...r.alert, step: from + r.step }))
}

test('latency drift: a compute slowdown fires once, names compute, and resolves after recovery', () => {
  const alerts = run(new LatencyDriftDetector(), spans(series('10000x40 20000x20 10000x20')))
  assert.deepEqual(
    alerts.map((a) => [a.status, a.step]),
    [
      // bucket 40 (the first slow one) is judged when 41 opens: the newest 60 values are 50 slow + 10
      // fast, D ≈ 0.83 at p ≪ 1e-6 (the fast test); bucket 41 too — pendingSamples 2. Buckets hold
      // completions: the last requests of step 41 (arrived, 20 ms to go) complete in bucket 42, which
      // opens while step 41 is fed — fires at step 41
      ['firing', 41],
      // fast again from 60; the 6-s recent window holds 6 − j slow buckets when bucket 59 + j is judged
      // and D ≈ that share: 2 of 6 (0.33, bucket 63) still breach, 1 of 6 (bucket 64, judged at 65)
      // does not — clear at 65–69, resolveSamples 5 → resolves at 69
      ['resolved', 69],
    ],
  )
  const f = alerts[0]!
  assert.equal(f.type, 'latency_drift')
  assert.equal(f.dedup_key, 'latency_drift/test/engine-0/mlp/total_us')
  assert.equal(f.stage, 'compute')
  assert.equal(f.starts_at_us, T0 + 41 * 1e6, 'onset is the end of the first drifted bucket (40)')
  assert.ok(f.observed > 0.3 && f.threshold === 0.3)
  assert.equal(f.exemplar_request_ids.length, 3)
  assert.match(f.summary, /KS D .* PSI/)
})

test('latency drift: a drift in the tail names the stage that made it, not a median that moved a little', () => {
  // as under data starvation: from step 40, 40 % of requests wait 200 ms in preprocess (its median
  // does not move), while compute's median grows 10 %
  const steps = spans(series('10000x40 11000x20'), 3).map((ss, i) =>
    i < 40
      ? ss
      : ss.map((s, k) =>
          k % 5 < 2 ? { ...s, preprocess_us: s.preprocess_us + 200_000, total_us: s.total_us + 200_000 } : s,
        ),
  )
  const firing = run(new LatencyDriftDetector(), steps).filter((a) => a.status === 'firing')
  assert.equal(firing.length, 1)
  assert.equal(firing[0]!.stage, 'preprocess')
  assert.match(firing[0]!.suspected_cause, /preprocess stage moved most: mean/)
})

test('latency drift: fired by the newest values, its exemplars are from the drift, not older outliers', () => {
  const steps = spans(series('10000x40 20000x20'))
  // three very slow requests 2 s before the onset: still in the 6-s recent window when the alert fires
  const outliers = steps[38]!.slice(0, 3)
  for (const o of outliers) o.total_us = o.compute_us = 500_000
  const alerts = run(new LatencyDriftDetector(), steps)
  assert.deepEqual(
    alerts.map((a) => [a.status, a.step]),
    [['firing', 41]],
  )
  const ids = alerts[0]!.exemplar_request_ids
  const outlierIds = new Set(outliers.map((o) => o.request_id))
  const firstDrifted = 40 * PER_SECOND
  assert.equal(ids.length, 3)
  for (const id of ids) {
    assert.ok(!outlierIds.has(id), `${id} is an outlier from before the drift`)
    assert.ok(Number(id.slice('req-'.length)) >= firstDrifted, `${id} is from before the drift`)
  }
})

test('latency drift: requests getting faster is not a break', () => {
  assert.deepEqual(run(new LatencyDriftDetector(), spans(series('20000x40 10000x40'), 6)), [])
})

test('latency drift: stationary noise and a 5 % shift stay quiet', () => {
  assert.deepEqual(run(new LatencyDriftDetector(), spans(series('10000x120'), 2)), [])
  assert.deepEqual(run(new LatencyDriftDetector(), spans(series('10000x40 10500x40'), 3)), [])
})

test('latency drift: one slow second is not a drift (the newest values breach for one bucket; firing needs two)', () => {
  assert.deepEqual(run(new LatencyDriftDetector(), spans(series('10000x40 30000x1 10000x20'), 4)), [])
})

test('latency drift: nothing before the baseline is warm (500 baseline + 200 recent values)', () => {
  // 12 s × 50 = 600 spans: 300 recent, 300 baseline
  assert.deepEqual(run(new LatencyDriftDetector(), spans(series('10000x6 30000x6'), 5)), [])
})

test('latency drift: state survives a restart mid-alert', () => {
  const steps = spans(series('10000x40 20000x20 10000x20'))
  const whole = run(new LatencyDriftDetector(), steps).map((a) => [a.status, a.step, a.id])
  const first = new LatencyDriftDetector()
  const before = run(first, steps.slice(0, 50))
  const second = new LatencyDriftDetector()
  second.importState(JSON.parse(JSON.stringify(first.exportState())))
  const after = run(second, steps, 50)
  assert.deepEqual(
    [...before, ...after].map((a) => [a.status, a.step, a.id]),
    whole,
  )
})

test('latency drift: a shift a person would not notice stays quiet however significant (minimum 5 ms)', () => {
  // 4 ms → 5 ms is 25 % slower (over the 20 % ratio) and highly significant with 50 requests a second,
  // but 1 ms: on a busy host such a shift paged in `breakid up --no-fault` (3.7 → 4.3 ms median)
  assert.deepEqual(run(new LatencyDriftDetector(), spans(series('4000x40 5000x30'), 7)), [])
  // the same relative shift at 40 ms is 10 ms: it fires
  assert.deepEqual(
    run(new LatencyDriftDetector(), spans(series('40000x40 50000x30'), 7))
      .filter((a) => a.status === 'firing')
      .map((a) => a.type),
    ['latency_drift'],
  )
})
