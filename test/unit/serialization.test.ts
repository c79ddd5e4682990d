import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SerializationDominantDetector } from '../../detectors/serialization/detector.ts'
import type { Alert } from '../../contract/records.ts'
import { series } from '../helpers/series.ts'
import { DetectorDriver, T0_US } from '../helpers/detector-driver.ts'

const T0 = T0_US
const OTHER_US = 1000

/** 20 spans a second; deserialize_us per step from the series, serialize 12 µs, other stages 1 ms */
function run(
  deserUs: number[],
  d = new SerializationDominantDetector(),
  from = 0,
): (Alert & { step: number })[] {
  const driver = new DetectorDriver(d, { startUs: T0 + from * 1e6 })
  for (const de of deserUs) {
    const i = driver.step + from
    driver.tick({
      hw: false,
      spans: Array.from({ length: 20 }, (_, k) => ({
        request_id: `req-${i * 20 + k}`,
        deserialize_us: de + k,
        serialize_us: 12,
        total_us: de + k + 12 + OTHER_US,
      })),
    })
  }
  return driver.alerts.map((r) => ({ ...r.alert, step: r.step + from }))
}

test('serialization: deserialize growing to 75 % of request time fires, names the stage, resolves', () => {
  const alerts = run(series('20x20 3000x8 20x8'))
  assert.equal(alerts[1]!.resolve_reason, 'cleared')
  assert.deepEqual(
    alerts.map((a) => [a.status, a.step]),
    [
      // bucket 20 is judged when bucket 21 opens (step 21), bucket 21 at step 22: pendingSamples 2 →
      // fires at 22
      ['firing', 22],
      // bucket 28 is the first clear one (judged at 29); clear at 29, 30, 31: resolveSamples 3 → 31
      ['resolved', 31],
    ],
  )
  const f = alerts[0]!
  assert.equal(f.type, 'serialization_dominant')
  assert.equal(f.stage, 'deserialize')
  assert.equal(f.starts_at_us, T0 + 21e6, 'onset at the end of the first dominated bucket')
  assert.ok(f.observed > 0.7 && f.baseline < 0.05, `${f.observed} vs ${f.baseline}`)
  assert.equal(f.threshold, 0.25, 'max(minShare 0.25, baseline ~4 % × 3)')
  assert.deepEqual(
    f.exemplar_request_ids,
    ['req-439', 'req-438', 'req-437'],
    'the slowest (de)serializations of bucket 21, the one that made it fire',
  )
})

test('serialization: a share that was always high, grows but stays under a quarter, or less than triples, is quiet', () => {
  // share = (deserialize + ~9.5 µs jitter + 12 µs serialize) / (that + 1 ms of other stages)
  assert.deepEqual(run(series('2000x40')), [], 'always ~67 %: a steady state, not a break')
  assert.deepEqual(run(series('20x20 250x20')), [], '~4 % → ~21 %: more than triples, but under a quarter')
  assert.deepEqual(run(series('150x20 600x20')), [], '~15 % → ~38 %: over a quarter, but only ×2.6')
  // the positive control of the two above: ~4 % → ~38 % is over a quarter and more than triples
  assert.deepEqual(
    run(series('20x20 600x20')).map((a) => [a.status, a.step]),
    [['firing', 22]],
    '~4 % → ~38 %',
  )
})

test('serialization: nothing during warm-up, nothing on one slow bucket', () => {
  assert.deepEqual(run(series('20x5 3000x5')), [])
  assert.deepEqual(run(series('20x20 3000x1 20x10')), [])
})

test('serialization: state survives a restart mid-alert', () => {
  const s = series('20x20 3000x8 20x8')
  const whole = run(s).map((a) => [a.status, a.step, a.id])
  const first = new SerializationDominantDetector()
  const before = run(s.slice(0, 25), first)
  const second = new SerializationDominantDetector()
  second.importState(JSON.parse(JSON.stringify(first.exportState())))
  const after = run(s.slice(25), second, 25)
  assert.deepEqual(
    [...before, ...after].map((a) => [a.status, a.step, a.id]),
    whole,
  )
})
