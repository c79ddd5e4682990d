import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Inhibitor } from '../../detectors/inhibit.ts'
import type { Alert } from '../../contract/records.ts'
import { makeAlert } from '../../contract/synthetic.ts'

const S = 1_000_000
const at = (
  type: string,
  status: Alert['status'],
  startS: number,
  updatedS: number,
  over: Partial<Alert> = {},
) =>
  makeAlert({
    id: `${type}-${over.instance ?? 'engine-0'}-${over.stage ?? ''}-${startS}`,
    type,
    status,
    starts_at_us: startS * S,
    updated_at_us: updatedS * S,
    ends_at_us: status === 'resolved' ? updatedS * S : null,
    summary: `${type} ${over.stage ?? ''}`.trim(),
    stage: null,
    ...over,
  })

/** inhibitor contexts: host pressure pending on an instance, or nothing pending */
const pressuredOn = (instance: string) => (nowS: number) => ({
  pending: new Set([`host_contention/${instance}`]),
  nowUs: nowS * S,
})
const pressured = pressuredOn('engine-0')
const calm = (nowS: number) => ({ pending: new Set<string>(), nowUs: nowS * S })
const types = (r: { publish: Alert[] }) => r.publish.map((a) => `${a.type}:${a.status}`)

/** every published record as `type:status:stage[+related types]` */
function run(alerts: Alert[], inh = new Inhibitor()): string[] {
  return alerts.flatMap((a) =>
    inh.filter([a]).publish.map((p) => {
      const related = (p.related ?? []).map((r) => r.type)
      return `${p.type}:${p.status}:${p.stage}${related.length ? `+${related.join('+')}` : ''}`
    }),
  )
}

test('symptoms of a starvation episode ride on its alert: stored as related, neither paged nor resolved', () => {
  const published = run([
    at('accelerator_starved', 'firing', 10, 12, { stage: 'preprocess' }),
    at('stage_latency_regression', 'firing', 11, 13, { stage: 'preprocess' }),
    at('accelerator_starved', 'resolved', 10, 30, { stage: 'preprocess' }),
    // the backlog drains after the fault: queue wait regresses within the grace period
    at('stage_latency_regression', 'firing', 35, 37, { stage: 'queue_wait' }),
    at('stage_latency_regression', 'resolved', 11, 40, { stage: 'preprocess' }),
    at('stage_latency_regression', 'resolved', 35, 45, { stage: 'queue_wait' }),
  ])
  assert.deepEqual(published, [
    'accelerator_starved:firing:preprocess',
    // the root's record again with the symptom (same id and status: the notifier delivers it once)
    'accelerator_starved:firing:preprocess+stage_latency_regression',
    'accelerator_starved:resolved:preprocess+stage_latency_regression',
    'accelerator_starved:resolved:preprocess+stage_latency_regression+stage_latency_regression',
  ])
})

test('a batch-size fault explains the compute time its batches move (capped small, then full while draining)', () => {
  const published = run([
    at('batch_underutilized', 'firing', 40, 40, { stage: 'queue_wait' }),
    // live: the cap lifted and the backlog drained in batches of 8, each request's compute 2× its baseline
    at('stage_latency_regression', 'firing', 54, 54, { stage: 'compute' }),
    at('batch_underutilized', 'resolved', 40, 70, { stage: 'queue_wait' }),
  ])
  assert.deepEqual(published, [
    'batch_underutilized:firing:queue_wait',
    'batch_underutilized:firing:queue_wait+stage_latency_regression',
    'batch_underutilized:resolved:queue_wait+stage_latency_regression',
  ])
})

test('the related entry carries what a reader needs, and the update is never older than the record it replaces', () => {
  const inh = new Inhibitor()
  const root = at('accelerator_starved', 'firing', 10, 12, { stage: 'preprocess' })
  inh.filter([root])
  const drift = at('latency_drift', 'firing', 11, 14, { summary: 'total_us drifted' })
  const { publish, inhibited } = inh.filter([drift])
  assert.deepEqual(inhibited, [drift])
  assert.equal(publish.length, 1)
  assert.equal(publish[0]!.id, root.id)
  assert.deepEqual(publish[0]!.related, [
    { id: drift.id, type: 'latency_drift', stage: null, starts_at_us: 11 * S, summary: 'total_us drifted' },
  ])
  assert.ok(publish[0]!.updated_at_us >= root.updated_at_us)
})

test('chains: a symptom of a symptom rides on the root (host contention ⟹ stage regression ⟹ SLO)', () => {
  const published = run([
    at('host_contention', 'firing', 10, 13),
    at('stage_latency_regression', 'firing', 11, 13, { stage: 'compute' }),
    at('queue_growth', 'firing', 12, 14), // compute regression ⟹ queue growth, and contention ⟹ it too
    at('slo_p99_breach', 'firing', 12, 15),
  ])
  assert.deepEqual(published, [
    'host_contention:firing:null',
    'host_contention:firing:null+stage_latency_regression',
    'host_contention:firing:null+stage_latency_regression+queue_growth',
    'host_contention:firing:null+stage_latency_regression+queue_growth+slo_p99_breach',
  ])
})

test('stage-qualified order: (de)serialization dominating explains only those stages’ regressions', () => {
  const published = run([
    at('serialization_dominant', 'firing', 10, 12, { stage: 'serialize' }),
    at('stage_latency_regression', 'firing', 10, 12, { stage: 'serialize' }),
    at('stage_latency_regression', 'firing', 10, 12, { stage: 'compute' }),
  ])
  assert.deepEqual(published, [
    'serialization_dominant:firing:serialize',
    'serialization_dominant:firing:serialize+stage_latency_regression',
    'stage_latency_regression:firing:compute',
  ])
})

test('unrelated alerts pass: another type, another instance, or long after the grace period', () => {
  const published = run([
    at('accelerator_starved', 'firing', 10, 12, { stage: 'preprocess' }),
    at('memory_leak', 'firing', 11, 13, { stage: 'compute' }),
    at('stage_latency_regression', 'firing', 11, 13, { stage: 'preprocess', instance: 'engine-1' }),
    at('accelerator_starved', 'resolved', 10, 30, { stage: 'preprocess' }),
    at('stage_latency_regression', 'firing', 200, 202, { stage: 'preprocess' }),
  ])
  assert.deepEqual(published, [
    'accelerator_starved:firing:preprocess',
    'memory_leak:firing:compute',
    'stage_latency_regression:firing:preprocess',
    'accelerator_starved:resolved:preprocess',
    'stage_latency_regression:firing:preprocess',
  ])
})

test('no rules, no inhibition', () => {
  const inh = new Inhibitor([])
  const alerts = [
    at('accelerator_starved', 'firing', 10, 12, { stage: 'preprocess' }),
    at('stage_latency_regression', 'firing', 11, 13, { stage: 'preprocess' }),
  ]
  assert.equal(inh.filter(alerts).publish.length, 2)
})

test('a symptom that fires while its cause is pending waits, and rides on the cause when it fires', () => {
  const inh = new Inhibitor()
  const pending = (instance = 'engine-0') => ({
    pending: new Set([`accelerator_starved/${instance}`]),
    nowUs: 0,
  })
  const drift = at('latency_drift', 'firing', 10, 11)
  // the starvation detector is pending: the drift waits
  assert.deepEqual(inh.filter([drift], { ...pending(), nowUs: 11 * S }), { publish: [], inhibited: [] })
  assert.equal(inh.heldCount, 1)
  // still pending a second later; then the cause fires and the held symptom is kept from paging
  assert.deepEqual(inh.filter([], { ...pending(), nowUs: 12 * S }).publish, [])
  const starved = at('accelerator_starved', 'firing', 10, 12.5)
  const r = inh.filter([starved], { pending: new Set(), nowUs: 12.5 * S })
  assert.deepEqual(
    r.publish.map((a) => [a.type, (a.related ?? []).map((x) => x.type)]),
    [['accelerator_starved', ['latency_drift']]],
    'one record: the cause, with the held symptom in related',
  )
  assert.deepEqual(
    r.inhibited.map((a) => a.type),
    ['latency_drift'],
  )
  // its resolution is not delivered either
  assert.deepEqual(
    inh.filter([at('latency_drift', 'resolved', 10, 20)], { pending: new Set(), nowUs: 20 * S }).publish,
    [],
  )
  assert.equal(inh.heldCount, 0)
})

test('a held symptom is published when its cause clears without firing, or after maxHoldUs, with its resolution', () => {
  const inh = new Inhibitor(undefined, 5 * S)
  const pending = { pending: new Set(['accelerator_starved/engine-0']), nowUs: 11 * S }
  inh.filter([at('stage_latency_regression', 'firing', 10, 11)], pending)
  // the starvation condition cleared (no longer pending, never fired): the regression goes out
  const cleared = inh.filter([], { pending: new Set(), nowUs: 12 * S })
  assert.deepEqual(
    cleared.publish.map((a) => `${a.type}:${a.status}`),
    ['stage_latency_regression:firing'],
  )
  inh.filter([at('stage_latency_regression', 'resolved', 10, 13)], { pending: new Set(), nowUs: 13 * S })

  // pending for longer than maxHoldUs: published anyway, and a resolution that came while held follows it
  inh.filter([at('stage_latency_regression', 'firing', 130, 131)], { ...pending, nowUs: 131 * S })
  inh.filter([at('stage_latency_regression', 'resolved', 130, 133)], { ...pending, nowUs: 133 * S })
  assert.equal(inh.filter([], { ...pending, nowUs: 135 * S }).publish.length, 0)
  assert.deepEqual(
    inh.filter([], { ...pending, nowUs: 136.5 * S }).publish.map((a) => `${a.type}:${a.status}`),
    ['stage_latency_regression:firing', 'stage_latency_regression:resolved'],
  )
  // another instance's pending cause holds nothing here; a non-target type is never held
  const other = { pending: new Set(['accelerator_starved/engine-9']), nowUs: 240 * S }
  assert.equal(inh.filter([at('stage_latency_regression', 'firing', 240, 240)], other).publish.length, 1)
  const own = { pending: new Set(['accelerator_starved/engine-0']), nowUs: 241 * S }
  assert.equal(inh.filter([at('memory_leak', 'firing', 241, 241)], own).publish.length, 1)
  // held at shutdown: handed out, not lost
  inh.filter([at('queue_growth', 'firing', 242, 242)], { ...own, nowUs: 242 * S })
  assert.deepEqual(
    inh.releaseAll().publish.map((a) => a.type),
    ['queue_growth'],
  )
})

test('host contention is pending as soon as pressure rose: a latency symptom waits for its verdict', () => {
  const inh = new Inhibitor()
  const pressured = { pending: new Set(['host_contention/engine-0']), nowUs: 11 * S }
  const stage = at('stage_latency_regression', 'firing', 10, 11, { stage: 'compute' })
  assert.deepEqual(inh.filter([stage], pressured).publish, [])
  const hc = at('host_contention', 'firing', 9, 13)
  const r = inh.filter([hc], { pending: new Set(), nowUs: 13 * S })
  assert.deepEqual(
    r.publish.map((a) => [a.type, (a.related ?? []).map((x) => x.type)]),
    [['host_contention', ['stage_latency_regression']]],
  )
})

test('starvation outranks host contention: on a busy host the starved executor is the break', () => {
  assert.deepEqual(
    run([
      at('accelerator_starved', 'firing', 10, 12, { stage: 'preprocess' }),
      at('host_contention', 'firing', 11, 14),
    ]),
    ['accelerator_starved:firing:preprocess', 'accelerator_starved:firing:preprocess+host_contention'],
  )
})

test('a consequence-only alert waits a moment for a cause that is not even pending yet', () => {
  const inh = new Inhibitor()
  const none = (nowS: number) => ({ pending: new Set<string>(), nowUs: nowS * S })
  // latency drift first; the stage regression that explains it fires 2 s later
  assert.deepEqual(inh.filter([at('latency_drift', 'firing', 10, 11)], none(11)).publish, [])
  const r = inh.filter([at('stage_latency_regression', 'firing', 10, 13, { stage: 'postprocess' })], none(13))
  assert.deepEqual(
    r.publish.map((a) => [a.type, (a.related ?? []).map((x) => x.type)]),
    [['stage_latency_regression', ['latency_drift']]],
  )
  // with nothing to explain it (another instance), a drift pages after the 5 s wait
  const alone = at('latency_drift', 'firing', 100, 101, { instance: 'engine-1' })
  assert.deepEqual(inh.filter([alone], none(101)).publish, [])
  assert.deepEqual(inh.filter([], none(105)).publish, [])
  assert.deepEqual(
    inh.filter([], none(106)).publish.map((a) => a.type),
    ['latency_drift'],
  )
})

test('within one batch the cause is decided first, whatever the order the detectors raised them in', () => {
  const inh = new Inhibitor()
  const r = inh.filter(
    [
      at('stage_latency_regression', 'firing', 10, 12, { stage: 'serialize' }),
      at('serialization_dominant', 'firing', 10, 12, { stage: 'serialize' }),
    ],
    { pending: new Set(), nowUs: 12 * S },
  )
  assert.deepEqual(
    r.publish.map((a) => [a.type, (a.related ?? []).map((x) => x.type)]),
    [['serialization_dominant', ['stage_latency_regression']]],
  )
})

test('host pressure explains its latency symptoms for as long as it lasts, not 15 s', () => {
  const inh = new Inhibitor()

  // two busy loops all along: the drift fires at 20 s, host_contention confirms only at 61 s
  assert.deepEqual(types(inh.filter([at('latency_drift', 'firing', 20, 20)], pressured(20))), [])
  for (let t = 21; t <= 60; t++) assert.deepEqual(types(inh.filter([], pressured(t))), [])
  const confirmed = inh.filter([at('host_contention', 'firing', 55, 61)], pressured(61))
  assert.deepEqual(
    confirmed.publish.map((a) => [a.type, (a.related ?? []).map((x) => x.type)]),
    [['host_contention', ['latency_drift']]],
  )

  // a bursty neighbour: the SLO breach ends while the host is still under pressure — never paged,
  // and neither is its resolution when it arrives again later
  const slo = (status: Alert['status'], updatedS: number) =>
    at('slo_p99_breach', status, 100, updatedS, { instance: 'engine-1', stage: 'queue_wait' })
  const pressured1 = pressuredOn('engine-1')
  assert.deepEqual(types(inh.filter([slo('firing', 100)], pressured1(100))), [])
  const ended = inh.filter([slo('resolved', 130)], pressured1(130))
  assert.deepEqual(types(ended), [])
  assert.deepEqual(
    ended.inhibited.map((a) => a.status),
    ['firing', 'resolved'],
  )
  assert.deepEqual(types(inh.filter([slo('resolved', 130)], calm(131))), [])
  assert.equal(inh.heldCount, 0)
})

test('a symptom that outlives the pressure pages; one that ends within the settle time does not', () => {
  const inh = new Inhibitor()
  const q = (status: Alert['status'], updatedS: number) =>
    at('stage_latency_regression', status, 10, updatedS, { stage: 'queue_wait' })
  inh.filter([q('firing', 10)], pressured(10))
  assert.deepEqual(types(inh.filter([], pressured(40))), [])
  // the pressure was last seen at 40 s; still firing 30 s later: it was not the host's
  for (let t = 41; t < 70; t++) assert.deepEqual(types(inh.filter([], calm(t))), [])
  assert.deepEqual(types(inh.filter([], calm(70))), ['stage_latency_regression:firing'])

  // another instance (on engine-0 the regression delivered above would explain a drift)
  const d = (status: Alert['status'], updatedS: number) =>
    at('latency_drift', status, 200, updatedS, { instance: 'engine-2' })
  inh.filter([d('firing', 200)], pressuredOn('engine-2')(200))
  inh.filter([], calm(210))
  // resolved 10 s after the pressure ended: the tail of the same episode
  const r = inh.filter([d('resolved', 220)], calm(220))
  assert.deepEqual(types(r), [])
  assert.deepEqual(
    r.inhibited.map((a) => a.type),
    ['latency_drift', 'latency_drift'],
  )
})

test('pressure holds only pure consequences: a small-batch alert (a fault of its own) waits 15 s at most', () => {
  const inh = new Inhibitor()
  inh.filter([at('batch_underutilized', 'firing', 10, 10, { stage: 'queue_wait' })], pressured(10))
  assert.deepEqual(inh.filter([], pressured(25)).publish, [])
  assert.deepEqual(
    inh.filter([], pressured(26)).publish.map((a) => a.type),
    ['batch_underutilized'],
  )
})

test('at shutdown a symptom held for pressure is explained, not paged; other holds are handed out', () => {
  const inh = new Inhibitor()
  const ctx = {
    pending: new Set(['host_contention/engine-0', 'accelerator_starved/engine-1']),
    nowUs: 10 * S,
  }
  inh.filter([at('latency_drift', 'firing', 10, 10)], ctx)
  inh.filter([at('queue_growth', 'firing', 10, 10, { instance: 'engine-1' })], ctx)
  const out = inh.releaseAll()
  assert.deepEqual(
    out.publish.map((a) => `${a.type}/${a.instance}`),
    ['queue_growth/engine-1'],
  )
  assert.deepEqual(
    out.inhibited.map((a) => `${a.type}/${a.instance}`),
    ['latency_drift/engine-0'],
  )
})

test('a symptom dropped for pressure explains nothing after it: a real stall 20 s later pages', () => {
  const inh = new Inhibitor()
  // a neighbour's burst blocks the event loop; the alert ends while the host is still pressured
  inh.filter([at('event_loop_blocked', 'firing', 10, 10)], pressured(10))
  const dropped = inh.filter([at('event_loop_blocked', 'resolved', 10, 15)], pressured(15))
  assert.deepEqual(
    dropped.inhibited.map((a) => a.status),
    ['firing', 'resolved'],
  )
  // the pressure is gone; a postprocess stall (no symptom of the host) pages at once
  const stall = at('stage_latency_regression', 'firing', 35, 35, { stage: 'postprocess' })
  assert.deepEqual(types(inh.filter([stall], calm(35))), ['stage_latency_regression:firing'])
})

test('a pressure-held symptom is judged at its own end, not when its resolution is read', () => {
  const inh = new Inhibitor()
  inh.filter([at('latency_drift', 'firing', 10, 10)], pressured(10))
  inh.filter([], pressured(40))
  // it ended at 60 s, 20 s after the pressure was last seen, but that record is read only at 90 s
  const r = inh.filter([at('latency_drift', 'resolved', 10, 60)], calm(90))
  assert.deepEqual(types(r), [])
  assert.deepEqual(
    r.inhibited.map((a) => a.status),
    ['firing', 'resolved'],
  )
})

test('a handover publishes what was held for pressure: the next member never resolves an unpaged alert', () => {
  const inh = new Inhibitor()
  inh.filter([at('latency_drift', 'firing', 10, 10)], pressured(10))
  const out = inh.releaseAll(false)
  assert.deepEqual(types(out), ['latency_drift:firing'])
  assert.deepEqual(out.inhibited, [])
})
