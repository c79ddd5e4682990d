import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ErrorRateDetector } from '../../detectors/errors/detector.ts'
import type { Span } from '../../contract/records.ts'
import { series } from '../helpers/series.ts'
import { DetectorDriver, T0_US } from '../helpers/detector-driver.ts'

const T0 = T0_US

/**
 * `perSecond` spans a second; the step's error fraction (from the series) of them fail, spread evenly:
 * server errors of class `cls`, plus one in ten of them client errors `bad_shape`.
 */
function run(rates: number[], perSecond = 40, cls = 'OutOfMemory', d = new ErrorRateDetector(), from = 0) {
  const driver = new DetectorDriver(d, { startUs: T0 + from * 1e6 })
  let acc = 0
  for (const rate of rates) {
    const i = driver.step + from
    const spans: Partial<Span>[] = []
    for (let k = 0; k < perSecond; k++) {
      acc += rate
      const fail = acc >= 1
      if (fail) acc -= 1
      const client = fail && (i * perSecond + k) % 10 === 0
      spans.push({
        request_id: `req-${i * perSecond + k}`,
        timestamp_us: T0 + i * 1e6 + k * Math.floor(1e6 / perSecond),
        status: fail ? (client ? 'client_error' : 'server_error') : 'ok',
        error_class: fail ? (client ? 'bad_shape' : cls) : null,
      })
    }
    driver.tick({ spans, hw: false })
  }
  return driver.alerts.map((r) => ({ ...r.alert, step: r.step + from }))
}

/** `perSecond` spans a second, the first `errors[i]` of second i failing with server errors */
function runCounts(errors: number[], perSecond: number, d = new ErrorRateDetector()) {
  const driver = new DetectorDriver(d)
  for (const n of errors) {
    driver.tick({
      hw: false,
      spans: Array.from({ length: perSecond }, (_, k) => ({
        status: k < n ? ('server_error' as const) : ('ok' as const),
        error_class: k < n ? 'OutOfMemory' : null,
      })),
    })
  }
  return driver.alerts.map((r) => ({ ...r.alert, step: r.step }))
}

test('error rate: 1 % → 30 % fires, names the dominant class, and resolves', () => {
  const alerts = run(series('0.01x60 0.3x10 0.01x20'))
  assert.deepEqual(
    alerts.map((a) => [a.status, a.step]),
    [
      // bucket 60 is judged when 61 opens: its 5-bucket interval (56–60) is at ~7 % > 3 %, 14 errors
      // in 200 where ~2 are expected; pendingSamples 1 → fires on that first evaluation, at step 61
      ['firing', 61],
      // the last faulty bucket 69 leaves the interval when 74 closes (judged at 75): clear at 75–79,
      // resolveSamples 5 → resolves at 79
      ['resolved', 79],
    ],
  )
  const f = alerts[0]!
  assert.equal(f.type, 'error_rate_spike')
  assert.equal(f.dedup_key, 'error_rate_spike/test/engine-0/mlp')
  assert.ok(Math.abs(f.baseline - 0.01) < 0.002, `baseline ${f.baseline}`)
  assert.ok(Math.abs(f.threshold - 0.03) < 0.005, `threshold ${f.threshold}: max(3 × 1 %, 1 % + 2 %)`)
  assert.match(f.summary, /mostly OutOfMemory/)
  assert.equal(f.exemplar_request_ids.length, 3)
})

test('error rate: steady errors, a mild rise, a rise that is not significant, and a low-traffic handful stay quiet', () => {
  assert.deepEqual(run(series('0.05x120')), [], 'a steady 5 %')
  assert.deepEqual(run(series('0.01x60 0.025x30')), [], '1 % → 2.5 % is under max(3 × 1 %, 1 % + 2 %)')
  // 4 % is over the 3 % threshold, but 8 errors in 200 requests where 2 are expected happen by
  // chance with p ≈ 0.001 — far above 1e-5
  assert.deepEqual(run(series('0.01x60 0.04x30')), [], '1 % → 4 % at 40 req/s is not significant')
  assert.deepEqual(run(series('0x60 0.5x10'), 2), [], '2 requests a second: under 20 per interval')
})

test('error rate: an instance that never failed does not page on its first few errors, but does on a burst', () => {
  // 20 requests a second, 100 per 5-bucket interval, baseline 0 % (floored at 0.2 % for the test)
  assert.deepEqual(runCounts(series('0x60 2 0x20'), 20), [], '2 errors in a 5 s window')
  assert.deepEqual(runCounts(series('0x60 1 0 1 0x20'), 20), [], '2 errors spread over the window')
  // 4 errors in 100: minErrors (4) met and 4 % > max(3 × 0 %, 0 % + 2 %), yet at the 0.2 % floor
  // that many happen by chance with p ≈ 5e-5 > 1e-5. Without the floor a 0 % baseline would make
  // any error "impossible" (p = 0) and this would fire.
  assert.deepEqual(runCounts(series('0x60 4 0x20'), 20), [], '4 errors in a 5 s window')
  // a clear burst: 6 errors a second for 3 s; bucket 60 is judged when 61 opens and already holds
  // 6 of 100 (p ≈ 6e-8) → pendingSamples 1 fires at 61
  const burst = runCounts(series('0x60 6x3 0x20'), 20)
  assert.deepEqual(
    burst.map((a) => [a.status, a.step]),
    [
      ['firing', 61],
      // the last faulty bucket 62 leaves the interval when 67 closes (judged at 68): clear at 68–72,
      // resolveSamples 5 → resolves at 72
      ['resolved', 72],
    ],
  )
  assert.equal(burst[0]!.baseline, 0)
  assert.equal(burst[0]!.observed, 6 / 100)
})

test('error rate: a burst that flickers around the threshold stays one alert', () => {
  // 15 % bursts with a 12 s dip to 3.5 % between them. 3.5 % (7 errors in 200, p ≈ 0.004 at the 1 %
  // baseline) is no new spike (p ≥ 1e-5) — see the second run — but while firing it is still above
  // baseline + 1 % at p < 0.01, so the alert holds through the dip instead of resolving and firing again
  const alerts = run(series('0.01x60 0.15x5 0.035x12 0.15x5 0.01x20'))
  assert.deepEqual(
    alerts.map((a) => [a.status, a.step]),
    [
      // judged at 61 the interval 56–60 holds one 15 % bucket: ~8 errors in 200 (p ≈ 1e-3), not yet
      // a spike; at 62 two buckets hold ~14 (p < 1e-5) → pendingSamples 1 fires at 62
      ['firing', 62],
      // the last 15 % bucket is 81; it leaves the interval when 86 closes (judged at 87): clear 87–91
      ['resolved', 91],
    ],
  )
  assert.deepEqual(run(series('0.01x60 0.035x12 0.01x20')), [], 'the dip level alone is no spike')
})

test('error rate: nothing during warm-up', () => {
  assert.deepEqual(run(series('0.01x10 0.5x10')), [])
})

test('error rate: a critical spike when half the requests fail', () => {
  assert.equal(run(series('0x60 0.9x10'))[0]?.severity, 'critical')
})

test('error rate: state survives a restart mid-alert', () => {
  const s = series('0.01x60 0.3x10 0.01x20')
  const whole = run(s).map((a) => [a.status, a.step, a.id])
  const first = new ErrorRateDetector()
  const before = run(s.slice(0, 65), 40, 'OutOfMemory', first)
  const second = new ErrorRateDetector()
  second.importState(JSON.parse(JSON.stringify(first.exportState())))
  const after = run(s.slice(65), 40, 'OutOfMemory', second, 65)
  assert.deepEqual(
    [...before, ...after].map((a) => [a.status, a.step, a.id]),
    whole,
  )
})
