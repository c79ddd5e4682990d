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
    ...over,
  })

function run(alerts: Alert[]): string[] {
  const inh = new Inhibitor()
  return alerts.flatMap((a) => inh.filter([a]).publish.map((p) => `${p.type}:${p.status}:${p.stage}`))
}

test('symptoms of a starvation episode are suppressed, firing and resolved alike', () => {
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
    'accelerator_starved:resolved:preprocess',
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

test('a symptom that fires while its cause is pending waits, and is suppressed when the cause fires', () => {
  const inh = new Inhibitor()
  const pending = (instance = 'engine-0') => ({
    pending: new Set([`accelerator_starved/${instance}`]),
    nowUs: 0,
  })
  const drift = at('latency_drift', 'firing', 10, 11)
  // the starvation detector is pending: the drift waits
  assert.deepEqual(inh.filter([drift], { ...pending(), nowUs: 11 * S }), { publish: [], inhibited: [] })
  assert.equal(inh.heldCount, 1)
  // still pending a second later; then the cause fires and the held symptom is suppressed
  assert.deepEqual(inh.filter([], { ...pending(), nowUs: 12 * S }).publish, [])
  const starved = at('accelerator_starved', 'firing', 10, 12.5)
  const r = inh.filter([starved], { pending: new Set(), nowUs: 12.5 * S })
  assert.deepEqual(
    r.publish.map((a) => a.type),
    ['accelerator_starved'],
  )
  assert.deepEqual(
    r.inhibited.map((a) => a.type),
    ['latency_drift'],
  )
  // its resolution is suppressed too
  assert.deepEqual(
    inh.filter([at('latency_drift', 'resolved', 10, 20)], { pending: new Set(), nowUs: 20 * S }).publish,
    [],
  )
  assert.equal(inh.heldCount, 0)
})

test('a held symptom is published when its cause clears without firing, or after maxHoldUs, with its resolution', () => {
  const inh = new Inhibitor(undefined, 5 * S)
  const pending = { pending: new Set(['accelerator_starved/engine-0']), nowUs: 11 * S }
  inh.filter([at('latency_drift', 'firing', 10, 11)], pending)
  // the starvation condition cleared (no longer pending, never fired): the drift goes out
  const cleared = inh.filter([], { pending: new Set(), nowUs: 12 * S })
  assert.deepEqual(
    cleared.publish.map((a) => `${a.type}:${a.status}`),
    ['latency_drift:firing'],
  )

  // pending for longer than maxHoldUs: published anyway, and a resolution that came while held follows it
  inh.filter([at('stage_latency_regression', 'firing', 30, 31)], { ...pending, nowUs: 31 * S })
  inh.filter([at('stage_latency_regression', 'resolved', 30, 33)], { ...pending, nowUs: 33 * S })
  assert.equal(inh.filter([], { ...pending, nowUs: 35 * S }).publish.length, 0)
  assert.deepEqual(
    inh.filter([], { ...pending, nowUs: 36.5 * S }).publish.map((a) => `${a.type}:${a.status}`),
    ['stage_latency_regression:firing', 'stage_latency_regression:resolved'],
  )
  // another instance's pending cause holds nothing here; a non-target type is never held
  const other = { pending: new Set(['accelerator_starved/engine-9']), nowUs: 40 * S }
  assert.equal(inh.filter([at('latency_drift', 'firing', 40, 40)], other).publish.length, 1)
  const own = { pending: new Set(['accelerator_starved/engine-0']), nowUs: 41 * S }
  assert.equal(inh.filter([at('memory_leak', 'firing', 41, 41)], own).publish.length, 1)
  // held at shutdown: handed out, not lost
  inh.filter([at('slo_p99_breach', 'firing', 42, 42)], { ...own, nowUs: 42 * S })
  assert.deepEqual(
    inh.releaseAll().map((a) => a.type),
    ['slo_p99_breach'],
  )
})
