import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  baselinesFromJson,
  baselinesToJson,
  EwmaBaseline,
  RollingBaseline,
} from '../../detectors/baseline.ts'
import { alertGroupKey } from '../../contract/alerts.ts'
import { AlertLifecycle, type AlertEvidence } from '../../detectors/lifecycle.ts'
import { QueueGrowthDetector } from '../../detectors/queue-growth/detector.ts'
import type { Alert } from '../../contract/records.ts'
import { makeAlert, makeHwSample } from '../../contract/synthetic.ts'
import { series } from '../helpers/series.ts'

test('rolling baseline: robust centre and quantiles over the window, ready after warm-up', () => {
  const b = new RollingBaseline(5, 3)
  for (const v of series('1 2')) b.push(v)
  assert.equal(b.ready, false)
  for (const v of series('3 100 4 5')) b.push(v) // window keeps the last 5: 2 3 100 4 5
  assert.equal(b.ready, true)
  assert.deepEqual(b.ordered(), [2, 3, 100, 4, 5])
  assert.equal(b.median(), 4, 'one outlier does not move the centre')
  assert.equal(b.quantile(0), 2)
  assert.equal(b.quantile(1), 100)
  assert.equal(b.quantile(0.5), 4)
})

test('rolling baseline state round-trips through JSON, wrapped window included', () => {
  const b = new RollingBaseline(4, 3)
  for (const v of series('1 2 3 4 5 6')) b.push(v)
  const back = RollingBaseline.fromState(JSON.parse(JSON.stringify(b.toState())))
  assert.deepEqual(back.toState(), { window: 4, warmup: 3, seen: 6, values: [3, 4, 5, 6] })
  assert.equal(back.ready, true, 'a restored baseline needs no new warm-up')
  back.push(7)
  assert.deepEqual(back.ordered(), [4, 5, 6, 7], 'and keeps rolling in order')
  // a smaller configured window keeps the newest values; garbage gives an empty baseline
  assert.deepEqual(RollingBaseline.fromState(b.toState(), 2).ordered(), [5, 6])
  assert.equal(RollingBaseline.fromState({ values: 'x' }).count, 0)
})

test('EWMA follows a level shift gradually and round-trips', () => {
  const e = new EwmaBaseline(0.5, 2)
  for (const v of series('10x5')) e.push(v)
  assert.equal(e.mean(), 10)
  assert.equal(e.sigma(), 0)
  e.push(20)
  assert.equal(e.mean(), 15, 'alpha 0.5 moves half way')
  assert.ok(e.sigma() > 0)
  const back = EwmaBaseline.fromState(JSON.parse(JSON.stringify(e.toState())))
  assert.deepEqual(back.toState(), e.toState())
  assert.equal(back.ready, true)
  assert.equal(EwmaBaseline.fromState({}).ready, false)
  assert.throws(() => new EwmaBaseline(0))
})

const evidence: AlertEvidence = (({ id, status, starts_at_us, ends_at_us, updated_at_us, ...rest }) => rest)(
  makeAlert(),
)

test('a restored firing lifecycle resolves its original alert instead of firing again', () => {
  const lc = new AlertLifecycle({ pendingSamples: 2, resolveSamples: 2 })
  lc.observe(1, true, evidence)
  const firing = lc.observe(2, true, evidence)!
  const back = AlertLifecycle.fromState(JSON.parse(JSON.stringify(lc.toState())), {
    pendingSamples: 2,
    resolveSamples: 2,
  })
  assert.equal(back.state, 'firing')
  assert.equal(back.observe(3, true, evidence), undefined, 'still firing: no second firing record')
  assert.equal(back.observe(4, false), undefined)
  const resolved = back.observe(5, false)!
  assert.equal(resolved.status, 'resolved')
  assert.equal(resolved.id, firing.id)
  assert.equal(AlertLifecycle.fromState({ state: 'firing' }).state, 'inactive', 'firing without its alert')
})

test('fleet grouping: the same break on several instances shares one group key, its own dedup key', () => {
  const d = new QueueGrowthDetector()
  const fired: Alert[] = []
  for (const instance of ['engine-0', 'engine-1']) {
    const queue = series('2x15 4 8 12 16 20')
    const done = series('200x15 100x5')
    queue.forEach((q, i) => {
      fired.push(
        ...d.onHwSample(
          makeHwSample(i, { instance, queue_depth: q, completions: done[i]!, timestamp_us: i * 1e6 }),
        ),
      )
    })
  }
  assert.equal(fired.length, 2)
  assert.notEqual(fired[0]!.dedup_key, fired[1]!.dedup_key, 'each instance fires and resolves on its own')
  assert.equal(alertGroupKey(fired[0]!), alertGroupKey(fired[1]!))
  assert.equal(alertGroupKey(fired[0]!), 'queue_growth/test/queue_wait')
  assert.notEqual(alertGroupKey({ ...fired[0]!, fleet: 'other' }), alertGroupKey(fired[1]!))
})

test('named baselines: written each under its name as toState() writes it, restored with the given window', () => {
  const names = ['busy', 'arrivals'] as const
  const state = { busy: new RollingBaseline(4, 2), arrivals: new RollingBaseline(4, 2), other: 1 }
  for (const v of [1, 2, 3, 4, 5]) state.busy.push(v)
  state.arrivals.push(7)
  const json = JSON.parse(JSON.stringify(baselinesToJson(state, names)))
  // the shape detectors wrote by hand before: { busy: <toState>, arrivals: <toState> }
  assert.deepEqual(json, { busy: state.busy.toState(), arrivals: state.arrivals.toState() })
  const back = baselinesFromJson(json, names, 3, 1)
  assert.deepEqual(back.busy.ordered(), [3, 4, 5], 'the newest values of a smaller window')
  assert.equal(back.busy.ready, true)
  assert.deepEqual(back.arrivals.ordered(), [7])
  const empty = baselinesFromJson({ busy: 'unreadable' }, names, 3, 2)
  assert.equal(empty.busy.count, 0)
  assert.equal(empty.arrivals.count, 0)
  assert.equal(empty.arrivals.window, 3)
})
