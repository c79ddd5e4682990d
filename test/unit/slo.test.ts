import assert from 'node:assert/strict'
import { test } from 'node:test'
import { type SloOptions, SloP99Detector } from '../../detectors/slo/detector.ts'
import { series } from '../helpers/series.ts'
import { DetectorDriver, T0_US } from '../helpers/detector-driver.ts'

/**
 * 100 spans a second from engine-0 (fast) and 100 from engine-1, whose compute time (ms) per step
 * comes from the series; the other stages take 10 ms.
 */
function run(computeMs: number[], opts: SloOptions = {}, d = new SloP99Detector(opts), from = 0) {
  const driver = new DetectorDriver(d, { startUs: T0_US + from * 1e6 })
  for (const c of computeMs) {
    driver.tick({
      hw: false,
      spans: Array.from({ length: 200 }, (_, k) => {
        const slowOne = k % 2 === 1
        const compute = (slowOne ? c : 20) * 1000 + k
        return {
          instance: slowOne ? 'engine-1' : 'engine-0',
          compute_us: compute,
          total_us: compute + 10_000,
        }
      }),
    })
  }
  return driver.alerts.map((r) => ({ ...r.alert, step: r.step + from }))
}

test('slo: p99 over 500 ms fires per model, names the slow instance and stage, resolves', () => {
  const alerts = run(series('20x40 800x10 20x40'))
  assert.deepEqual(
    alerts.map((a) => [a.status, a.step]),
    [
      ['firing', 43], // bucket 40 (half the requests at 810 ms) judged when 41 opens, held 3 buckets
      ['resolved', 82], // the 30-s window drops the last slow second (49) with bucket 79 (judged at 80), 3 buckets
    ],
  )
  const f = alerts[0]!
  assert.equal(f.type, 'slo_p99_breach')
  assert.equal(f.dedup_key, 'slo_p99_breach/test/mlp')
  assert.equal(f.instance, 'engine-1')
  assert.equal(f.stage, 'compute')
  assert.equal(f.threshold, 500_000)
  assert.ok(f.observed > 800_000)
  assert.ok(f.baseline < 40_000, 'p99 before the breach')
  assert.equal(f.severity, 'warning', 'critical is kept for p99 above twice the SLO')
  assert.equal(f.exemplar_request_ids.length, 3)
})

test('slo: per-model overrides and the default', () => {
  assert.deepEqual(
    run(series('20x40 800x10 20x5'), { sloP99MsByModel: { mlp: 1000 } }),
    [],
    'mlp may take 1 s',
  )
  assert.equal(run(series('20x40 800x10'), { sloP99Ms: 2000, sloP99MsByModel: { cnn: 100 } }).length, 0)
  assert.equal(run(series('20x40 1200x10'))[0]?.severity, 'critical')
})

test('slo: under the SLO, a couple of slow requests, and too few requests stay quiet', () => {
  assert.deepEqual(run(series('400x60')), [], 'p99 410 ms < 500 ms')
  const driver = new DetectorDriver(new SloP99Detector({ minSpans: 100 }))
  // 10 requests a second for 5 s, all slow: under minSpans in the 30-s window until second 10
  for (let i = 0; i < 5; i++)
    driver.tick({ hw: false, spans: Array.from({ length: 10 }, () => ({ total_us: 900_000 })) })
  assert.deepEqual(driver.alerts, [])
})

test('slo: state survives a restart mid-alert (the window refills; the alert neither repeats nor resolves early)', () => {
  const s = series('20x40 800x40')
  const whole = run(s).map((a) => [a.status, a.step, a.id])
  assert.deepEqual(
    whole.map((a) => a[0]),
    ['firing'],
  )
  const first = new SloP99Detector()
  const before = run(s.slice(0, 50), {}, first)
  const second = new SloP99Detector()
  second.importState(JSON.parse(JSON.stringify(first.exportState())))
  const after = run(s.slice(50), {}, second, 50)
  assert.deepEqual(
    [...before, ...after].map((a) => [a.status, a.step, a.id]),
    whole,
  )
})
