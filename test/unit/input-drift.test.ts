import assert from 'node:assert/strict'
import { test } from 'node:test'
import { InputDriftDetector } from '../../detectors/drift/input.ts'
import type { Alert } from '../../contract/records.ts'
import { series } from '../helpers/series.ts'
import { DetectorDriver, noise, T0_US } from '../helpers/detector-driver.ts'

/** 50 spans a second; input_mean uniform in [m − 0.5, m + 0.5] for the step's m; input_std ~1 ± 0.1 */
function run(
  means: number[],
  opts: { nullEvery?: number; seed?: number; detector?: InputDriftDetector } = {},
): (Alert & { step: number })[] {
  const driver = new DetectorDriver(opts.detector ?? new InputDriftDetector(), { startUs: T0_US })
  const r = noise(opts.seed ?? 1)
  let req = 0
  for (const m of means) {
    const spans = Array.from({ length: 50 }, () => {
      const isNull = opts.nullEvery !== undefined && req++ % opts.nullEvery === 0
      return { input_mean: isNull ? null : m - 0.5 + r(), input_std: isNull ? null : 0.9 + 0.2 * r() }
    })
    driver.tick({ spans, hw: false })
  }
  return driver.alerts.map((x) => ({ ...x.alert, step: x.step }))
}

test('input drift: a shift of input_mean fires on that statistic only, and resolves', () => {
  const alerts = run(series('0x40 0.6x20 0x20'))
  assert.deepEqual(
    alerts.map((a) => [a.status, a.step, a.statistic]),
    [
      // bucket 40 (the first shifted one) is judged when 41 opens: the newest 60 values are 50 shifted
      // + 10 old, D ≈ 0.5 at p ≪ 1e-6 (the fast test); bucket 41 judged at 42 likewise — pendingSamples
      // 2 → fires at 42
      ['firing', 42, 'ks_d(input_mean)'],
      // back at 60. The 300-value (6 s) recent window holds 6 − j shifted buckets when bucket 59 + j is
      // judged; with the uniform inputs overlapping, D ≈ share × 0.6 drops under 0.3 once only 2 of 6
      // are shifted (bucket 63, judged at 64): clear at 64–68, resolveSamples 5 → resolves at 68
      ['resolved', 68, 'ks_d(input_mean)'],
    ],
  )
  assert.equal(alerts[0]!.type, 'input_drift')
  assert.equal(alerts[0]!.dedup_key, 'input_drift/test/engine-0/mlp/input_mean')
  assert.equal(alerts[0]!.severity, 'warning')
})

test('input drift: the same inputs stay quiet; spans without input statistics are skipped', () => {
  assert.deepEqual(run(series('0x120'), { seed: 2 }), [])
  assert.deepEqual(run(series('0x120'), { seed: 3, nullEvery: 3 }), [])
  // with a third of the spans null the shift is still found, a little later
  const alerts = run(series('0x60 0.6x20'), { seed: 4, nullEvery: 3 })
  assert.equal(alerts[0]?.status, 'firing')
})

test('input drift: a small shift (a tenth of the spread) stays quiet', () => {
  assert.deepEqual(run(series('0x40 0.1x60'), { seed: 5 }), [])
})

test('input drift: a sharp shift fires within two buckets thanks to the newest-values test', () => {
  const means = series('0x40 0.8x20')
  // with the fast test: bucket 40 (the first shifted one) already breaches when judged at 41 — the
  // newest 60 values are 50 shifted + 10 old — and again at 42: pendingSamples 2 → fires at 42
  assert.deepEqual(
    run(means, { seed: 6 }).map((a) => [a.status, a.step]),
    [['firing', 42]],
  )
  // the whole 300-value (6 s) window alone has D ≈ share × 0.8: 2 of 6 buckets shifted (0.27) is not
  // enough, 3 of 6 (0.4, bucket 42 judged at 43) is; held to 44 — two buckets later
  const fullOnly = new InputDriftDetector({ fastSamples: Number.POSITIVE_INFINITY })
  assert.deepEqual(
    run(means, { seed: 6, detector: fullOnly }).map((a) => [a.status, a.step]),
    [['firing', 44]],
  )
})
