/**
 * Cause over symptom, end to end on simulated telemetry: the live detector set behind the causal
 * inhibitor, as the detector consumer runs them. Before the causal order one stage stall paged up to
 * six times in `breakid eval` (stage regression, latency drift, serialization, SLO, …).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { type FaultType, FAULTS } from '../../contract/faults.ts'
import { buildDetectors } from '../../detectors/registry.ts'
import { SCENARIO_EPOCH_US, type Scenario, type ScenarioFault, simulate } from '../../eval/scenarios.ts'
import { DetectorDriver } from '../helpers/detector-driver.ts'

function scenario(type: FaultType, fault: Partial<ScenarioFault> = {}): Scenario {
  return {
    name: `causal-${type}`,
    seed: 7,
    durationS: 300,
    instances: 1,
    baseRps: 120,
    noise: 0.1,
    load: { kind: 'steady' },
    faults: [{ type, instance: 0, startS: 180, endS: 240, severity: 'high', ...fault }],
    clean: false,
  }
}

function pagesOf(s: Scenario): { raised: string[]; paged: string[] } {
  const d = new DetectorDriver(buildDetectors(), { inhibit: true, startUs: SCENARIO_EPOCH_US })
  for (const step of simulate(s)) d.tick({ spans: step.spans, hw: step.hw })
  const raised = [...new Set(d.alerts.filter((r) => r.alert.status === 'firing').map((r) => r.alert.type))]
  return { raised, paged: d.pagedTypes() }
}

test('a postprocess stall pages once: the stage regression, with the latency symptoms as related', () => {
  const { raised, paged } = pagesOf(scenario('stage_stall', { stage: 'postprocess' }))
  assert.ok(raised.length >= 2, `several detectors saw it: ${raised}`)
  assert.deepEqual(paged, [FAULTS.stage_stall.primaryAlert])
})

test('a data starvation pages once: accelerator_starved', () => {
  const { raised, paged } = pagesOf(scenario('data_starvation'))
  assert.ok(raised.length >= 2, `several detectors saw it: ${raised}`)
  assert.deepEqual(paged, [FAULTS.data_starvation.primaryAlert])
})
