import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ErrorRateDetector } from '../../detectors/errors/detector.ts'
import type { Alert } from '../../ingest/contract/records.ts'
import { makeSpan } from '../helpers/records.ts'
import { series } from '../helpers/series.ts'

const T0 = 1_767_225_600_000_000

/**
 * `perSecond` spans a second; the step's error fraction (from the series) of them fail, spread evenly:
 * server errors of class `cls`, plus one in ten of them client errors `bad_shape`.
 */
function run(rates: number[], perSecond = 40, cls = 'OutOfMemory', d = new ErrorRateDetector(), from = 0) {
  const out: (Alert & { step: number })[] = []
  let acc = 0
  rates.forEach((rate, j) => {
    const i = j + from
    for (let k = 0; k < perSecond; k++) {
      acc += rate
      const fail = acc >= 1
      if (fail) acc -= 1
      const client = fail && (i * perSecond + k) % 10 === 0
      const span = makeSpan(i * perSecond + k, {
        timestamp_us: T0 + i * 1e6 + k * Math.floor(1e6 / perSecond),
        status: fail ? (client ? 'client_error' : 'server_error') : 'ok',
        error_class: fail ? (client ? 'bad_shape' : cls) : null,
      })
      for (const a of d.onSpan(span)) out.push({ ...a, step: i })
    }
  })
  return out
}

test('error rate: 1 % → 30 % fires, names the dominant class, and resolves', () => {
  const alerts = run(series('0.01x60 0.3x10 0.01x20'))
  assert.deepEqual(
    alerts.map((a) => [a.status, a.step]),
    [
      ['firing', 62], // bucket 60 judged when 61 opens (5-bucket interval at 7 %), held 2 buckets
      ['resolved', 77], // the 5-bucket interval is clear of the fault from bucket 74 (judged at 75), 3 buckets
    ],
  )
  const f = alerts[0]!
  assert.equal(f.type, 'error_rate_spike')
  assert.equal(f.dedup_key, 'error_rate_spike/test/engine-0/mlp')
  assert.ok(Math.abs(f.baseline - 0.01) < 0.002, `baseline ${f.baseline}`)
  assert.ok(Math.abs(f.threshold - 0.06) < 0.01, 'max(5 × 1 %, 1 % + 5 %)')
  assert.match(f.summary, /mostly OutOfMemory/)
  assert.equal(f.exemplar_request_ids.length, 3)
})

test('error rate: steady errors, a mild rise, and a low-traffic handful stay quiet', () => {
  assert.deepEqual(run(series('0.05x120')), [], 'a steady 5 %')
  assert.deepEqual(run(series('0.01x60 0.04x30')), [], '1 % → 4 % is under baseline + 5 %')
  assert.deepEqual(run(series('0x60 0.5x10'), 2), [], '2 requests a second: under 20 per interval')
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
