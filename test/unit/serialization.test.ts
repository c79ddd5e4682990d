import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SerializationDominantDetector } from '../../detectors/serialization/detector.ts'
import type { Alert } from '../../ingest/contract/records.ts'
import { makeSpan } from '../helpers/records.ts'
import { series } from '../helpers/series.ts'

const T0 = 1_767_225_600_000_000
const OTHER_US = 1000

/** 20 spans a second; deserialize_us per step from the series, serialize 12 µs, other stages 1 ms */
function run(
  deserUs: number[],
  d = new SerializationDominantDetector(),
  from = 0,
): (Alert & { step: number })[] {
  const out: (Alert & { step: number })[] = []
  deserUs.forEach((de, j) => {
    const i = j + from
    for (let k = 0; k < 20; k++) {
      const span = makeSpan(i * 20 + k, {
        timestamp_us: T0 + i * 1e6 + k * 50_000,
        deserialize_us: de + k,
        serialize_us: 12,
        total_us: de + k + 12 + OTHER_US,
      })
      for (const a of d.onSpan(span)) out.push({ ...a, step: i })
    }
  })
  return out
}

test('serialization: deserialize growing to 75 % of request time fires, names the stage, resolves', () => {
  const alerts = run(series('20x20 3000x8 20x8'))
  assert.deepEqual(
    alerts.map((a) => [a.status, a.step]),
    [
      ['firing', 23], // bucket 20 judged when bucket 21 opens, held 3 buckets
      ['resolved', 31], // bucket 28 is clear, 3 buckets
    ],
  )
  const f = alerts[0]!
  assert.equal(f.type, 'serialization_dominant')
  assert.equal(f.stage, 'deserialize')
  assert.equal(f.starts_at_us, T0 + 21e6, 'onset at the end of the first dominated bucket')
  assert.ok(f.observed > 0.7 && f.baseline < 0.05, `${f.observed} vs ${f.baseline}`)
  assert.equal(f.threshold, 0.5)
  assert.deepEqual(
    f.exemplar_request_ids,
    ['req-459', 'req-458', 'req-457'],
    'the slowest (de)serializations of bucket 22',
  )
})

test('serialization: a share that was always high, or grows but stays under half, is quiet', () => {
  assert.deepEqual(run(series('2000x40')), [], 'always ~67 %: a steady state, not a break')
  assert.deepEqual(run(series('20x20 600x20')), [], 'grows to ~38 %')
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
