/**
 * Which alert types are right to fire during which fault. The primary type — the detector whose job
 * the break is — comes from the fault's definition (contract/faults.ts); this table adds the
 * symptoms: detectors that are right to fire during the break too (the latency SLO during a stall,
 * the generic anomaly detector on a metric the break moves). Their alerts in the fault's window are
 * not false alerts, but they do not make the break "detected", and under strict scoring each one
 * that reached a person is an extra page.
 *
 * Any other alert — a type not listed for the fault, another instance, outside the window — is a
 * false alert.
 */
import { FAULTS, type FaultType } from '../contract/faults.ts'
import type { AlertType } from '../contract/vocabulary.ts'
import type { Condition } from './scenarios.ts'

export interface ExpectedTypes {
  primary: readonly AlertType[]
  symptoms: readonly AlertType[]
}

/** symptoms of any break that slows requests down */
const SLOWER = [
  'stage_latency_regression',
  'latency_drift',
  'slo_p99_breach',
  'host_contention',
  'anomaly',
] as const satisfies readonly AlertType[]

const SYMPTOMS: Readonly<Record<FaultType, readonly AlertType[]>> = {
  // a preprocessing backlog that overflows refuses requests (429): a real error spike
  data_starvation: [...SLOWER, 'queue_growth', 'error_rate_spike'],
  // a stalled deserialize stage is (de)serialization dominating request time, literally
  stage_stall: [...SLOWER, 'queue_growth', 'event_loop_blocked', 'serialization_dominant'],
  input_drift: ['anomaly'],
  output_drift: ['anomaly'],
  memory_leak: ['anomaly'],
  batch_size_misconfig: [...SLOWER, 'queue_growth'],
  error_burst: ['latency_drift', 'anomaly'],
  slow_serialization: [...SLOWER, 'event_loop_blocked'],
}

/** a neighbour taking the CPUs slows every CPU-bound stage, the loop and the executor */
const NEIGHBOUR_SYMPTOMS: readonly AlertType[] = [
  ...SLOWER,
  'queue_growth',
  'event_loop_blocked',
  'serialization_dominant',
  'batch_underutilized',
]

export function expectedTypes(type: Condition): ExpectedTypes {
  if (type === 'noisy_neighbour') {
    return {
      primary: ['host_contention'],
      symptoms: NEIGHBOUR_SYMPTOMS.filter((t) => t !== 'host_contention'),
    }
  }
  const primary = FAULTS[type].primaryAlert
  return { primary: [primary], symptoms: SYMPTOMS[type].filter((t) => t !== primary) }
}

/** The table as a whole, for the report. */
export const EXPECTED_ALERT_TYPES: Readonly<Record<Condition, ExpectedTypes>> = Object.fromEntries(
  ([...Object.keys(FAULTS), 'noisy_neighbour'] as Condition[]).map((t) => [t, expectedTypes(t)]),
) as Record<Condition, ExpectedTypes>
