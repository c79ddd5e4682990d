import assert from 'node:assert/strict'
import { test } from 'node:test'
import { InstanceSilentDetector } from '../../detectors/silent/detector.ts'
import { series } from '../helpers/series.ts'
import { DetectorDriver, assertAlert } from '../helpers/detector-driver.ts'

/**
 * One step per `every` seconds; `reports[instance]` is a series of 1 (sends a span and a sample this
 * step) or 0 (silent). Returns [status, instance, step] per alert.
 */
function run(
  reports: Record<string, string>,
  every = 1,
  d = new DetectorDriver(new InstanceSilentDetector(), { stepMs: every * 1000 }),
) {
  const rows = Object.entries(reports).map(([inst, s]) => [inst, series(s)] as const)
  const n = rows[0]![1].length
  for (let step = 0; step < n; step++) {
    const live = rows.filter(([, r]) => r[step]).map(([instance]) => instance)
    d.tick({
      spans: live.map((instance) => ({ instance, request_id: `${instance}-req-${d.step}` })),
      hw: live.map((instance) => ({ instance })),
    })
  }
  return { out: d.alerts.map((r) => [r.alert.status, r.alert.instance, r.step]), d }
}

test('an instance that goes silent fires after 5 of its intervals, resolves when it reports again', () => {
  const { out } = run({
    'engine-0': '1x25',
    'engine-1': '1x10 0x8 1x7', // last sample at step 9, back at step 18
  })
  assert.deepEqual(out, [
    ['firing', 'engine-1', 15], // silent 6 s > 5 × 1 s, seen on engine-0's sample
    ['resolved', 'engine-1', 18],
  ])
})

test('evidence: silence vs its own interval, the threshold, and its last requests', () => {
  const { d } = run({ 'engine-0': '1x20', 'engine-1': '1x8 0x12' })
  const a = d.alerts[0]!.alert
  assertAlert(a, { type: 'instance_silent', severity: 'critical', baseline: 1000, threshold: 5000 })
  assert.ok(a.observed > a.threshold)
  assert.deepEqual(a.exemplar_request_ids, ['engine-1-req-5', 'engine-1-req-6', 'engine-1-req-7'])
  assert.equal(a.dedup_key, 'instance_silent/test/engine-1')
})

test('gaps shorter than the threshold, and silence during warm-up, do not fire', () => {
  assert.deepEqual(run({ 'engine-0': '1x30', 'engine-1': '1x10 0x4 1x6 0x3 1x7' }).out, [])
  assert.deepEqual(run({ 'engine-0': '1x30', 'engine-1': '1x3 0x27' }).out, [], 'only 2 intervals learned')
})

test('the interval is learned per instance: a 60 s sampler is judged against 60 s, not 10 s', () => {
  // every step is 10 s; engine-1 reports every 6th step (60 s)
  const { out } = run(
    { 'engine-0': '1x60', 'engine-1': '1 0x5 1 0x5 1 0x5 1 0x5 1 0x5 1 0x5 1 0x5 1 0x17' },
    10,
  )
  // last sample at step 42 (420 s); silent > 5 × 60 s = 300 s from step 73 on — beyond the run
  assert.deepEqual(out, [])
  // last sample at step 36 (360 s): silent > 300 s from step 67 (670 s)
  const longer = run({ 'engine-0': '1x80', 'engine-1': '1 0x5 1 0x5 1 0x5 1 0x5 1 0x5 1 0x5 1 0x43' }, 10)
  assert.deepEqual(longer.out, [['firing', 'engine-1', 67]])
})

test('an instance gone longer than forgetAfterMs resolves stale and is forgotten', () => {
  const d = new DetectorDriver(new InstanceSilentDetector({ forgetAfterMs: 20_000 }))
  const { out } = run({ 'engine-0': '1x40', 'engine-1': '1x10 0x30' }, 1, d)
  assert.deepEqual(out, [
    ['firing', 'engine-1', 15],
    ['resolved', 'engine-1', 30], // silent 21 s > 20 s: gone
  ])
  assert.equal(d.alerts[1]!.alert.resolve_reason, 'stale')
  const keys = (d.detectors[0]!.exportState!() as { keys: Record<string, unknown> }).keys
  assert.deepEqual(Object.keys(keys), ['engine-0'])
})

test('state restored after a long stop does not page for the instances of the previous run', () => {
  const before = run({ 'engine-0': '1x12', 'engine-1': '1x12' })
  const restored = new InstanceSilentDetector()
  restored.importState(
    JSON.parse(JSON.stringify(before.d.detectors[0]!.exportState!())) as Record<string, unknown>,
  )
  // an hour later a new run reports as engine-2 only: engine-0 and engine-1 are gone, not silent
  const later = new DetectorDriver(restored, { startUs: before.d.at(before.d.step) + 3600e6 })
  assert.deepEqual(run({ 'engine-2': '1x20' }, 1, later).out, [])
})

test('state round-trips: a restored detector still sees the silence it was tracking', () => {
  const { d } = run({ 'engine-0': '1x12', 'engine-1': '1x10 0x2' })
  const restored = new InstanceSilentDetector()
  restored.importState(JSON.parse(JSON.stringify(d.detectors[0]!.exportState!())) as Record<string, unknown>)
  const after = new DetectorDriver(restored, { startUs: d.at(d.step) })
  const { out } = run({ 'engine-0': '1x4' }, 1, after)
  assert.deepEqual(
    out.map(([status, instance]) => [status, instance]),
    [['firing', 'engine-1']],
  )
})
