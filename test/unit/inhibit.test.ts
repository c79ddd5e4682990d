import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Inhibitor } from '../../detectors/inhibit.ts'
import type { Alert } from '../../ingest/contract/records.ts'
import { makeAlert } from '../helpers/records.ts'

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
