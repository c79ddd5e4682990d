import assert from 'node:assert/strict'
import { test } from 'node:test'
import { OutputDriftDetector } from '../../detectors/drift/output.ts'
import type { Alert } from '../../contract/records.ts'
import { series } from '../helpers/series.ts'
import { DetectorDriver, noise, T0_US } from '../helpers/detector-driver.ts'

/** 50 spans a second; output_confidence uniform in [c − 0.1, c + 0.1] for the step's c */
function run(conf: number[], seed = 1): (Alert & { step: number })[] {
  const driver = new DetectorDriver(new OutputDriftDetector(), { startUs: T0_US })
  const r = noise(seed)
  for (const c of conf) {
    driver.tick({
      spans: Array.from({ length: 50 }, () => ({ output_confidence: c - 0.1 + 0.2 * r() })),
      hw: false,
    })
  }
  return driver.alerts.map((x) => ({ ...x.alert, step: x.step }))
}

test('output drift: confidence falling from 0.9 to 0.6 fires and resolves when it returns', () => {
  const alerts = run(series('0.9x40 0.6x20 0.9x20'))
  assert.deepEqual(
    alerts.map((a) => [a.status, a.step]),
    [
      // bucket 40 judged at 41: the newest 60 values are 50 low + 10 high, D ≈ 0.83 at p ≪ 1e-6 (the
      // fast test); again at 42 — pendingSamples 2 → fires at 42
      ['firing', 42],
      // back at 60; D ≈ the low share of the 6-s recent window: 2 of 6 (bucket 63) still breach, 1 of 6
      // (bucket 64, judged at 65) does not — clear at 65–69, resolveSamples 5 → resolves at 69
      ['resolved', 69],
    ],
  )
  const f = alerts[0]!
  assert.equal(f.type, 'output_drift')
  assert.equal(f.statistic, 'ks_d(output_confidence)')
  assert.equal(f.stage, null)
  // at 42 the whole 300-value window (2 of 6 buckets low, D ≈ 0.33) breaches too, and its evidence is
  // reported: the median of that blend has fallen, not yet all the way to 0.6
  const m = /output_confidence distribution drifted — median (0\.\d+) \(baseline (0\.(9|89)\d*)\)/.exec(
    f.summary,
  )
  assert.ok(m, f.summary)
  assert.ok(Number(m[1]) < Number(m[2]) - 0.03, f.summary)
})

test('output drift: steady confidence and a 0.01 wobble stay quiet', () => {
  assert.deepEqual(run(series('0.9x120'), 2), [])
  assert.deepEqual(run(series('0.9x40 0.91x40 0.9x40'), 3), [])
})
