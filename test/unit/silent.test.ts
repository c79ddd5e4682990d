import assert from 'node:assert/strict'
import { test } from 'node:test'
import { InstanceSilentDetector } from '../../detectors/silent/detector.ts'
import { makeHwSample, makeSpan } from '../../contract/synthetic.ts'
import { series } from '../helpers/series.ts'

const T0 = 1_767_225_600_000_000

/**
 * One step per second; `reports[instance]` is a series of 1 (sends a sample this step) or 0 (silent).
 * Returns [status, instance, step] per alert.
 */
function run(reports: Record<string, string>, every = 1, d = new InstanceSilentDetector()) {
  const rows = Object.entries(reports).map(([inst, s]) => [inst, series(s)] as const)
  const n = rows[0]![1].length
  const out: [string, string, number][] = []
  for (let step = 0; step < n; step++) {
    for (const [instance, r] of rows) {
      if (!r[step]) continue
      d.onSpan(
        makeSpan(step, {
          instance,
          request_id: `${instance}-req-${step}`,
          timestamp_us: T0 + step * every * 1e6,
        }),
      )
      for (const a of d.onHwSample(makeHwSample(step, { instance, timestamp_us: T0 + step * every * 1e6 }))) {
        out.push([a.status, a.instance, step])
      }
    }
  }
  return { out, d }
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
  const d = new InstanceSilentDetector()
  const alerts: ReturnType<InstanceSilentDetector['onHwSample']> = []
  const e0 = series('1x20')
  const e1 = series('1x8 0x12')
  for (let step = 0; step < 20; step++) {
    const ts = T0 + step * 1e6
    if (e1[step]) d.onSpan(makeSpan(step, { instance: 'engine-1', request_id: `r${step}`, timestamp_us: ts }))
    if (e1[step]) alerts.push(...d.onHwSample(makeHwSample(step, { instance: 'engine-1', timestamp_us: ts })))
    if (e0[step]) alerts.push(...d.onHwSample(makeHwSample(step, { instance: 'engine-0', timestamp_us: ts })))
  }
  const a = alerts[0]!
  assert.equal(a.type, 'instance_silent')
  assert.equal(a.severity, 'critical')
  assert.equal(a.baseline, 1000)
  assert.equal(a.threshold, 5000)
  assert.ok(a.observed > a.threshold)
  assert.deepEqual(a.exemplar_request_ids, ['r5', 'r6', 'r7'])
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

test('state round-trips: a restored detector still sees the silence it was tracking', () => {
  const { d } = run({ 'engine-0': '1x12', 'engine-1': '1x10 0x2' })
  const restored = new InstanceSilentDetector()
  restored.importState(JSON.parse(JSON.stringify(d.exportState())) as Record<string, unknown>)
  const alerts = [15, 16].flatMap((step) =>
    restored.onHwSample(makeHwSample(step, { instance: 'engine-0', timestamp_us: T0 + step * 1e6 })),
  )
  assert.deepEqual(
    alerts.map((a) => [a.status, a.instance]),
    [['firing', 'engine-1']],
  )
})
