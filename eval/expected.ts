/**
 * Which alert types detect which fault: the one table to edit when a detector lands or is renamed
 * (then rerun `breakid eval`).
 *
 * - `primary`: the detectors whose job is this break. Only they count for recall and delay.
 * - `symptoms`: detectors that are right to fire during this break too (the latency SLO during a
 *   stall, the generic anomaly detector on a metric the break moves). Their alerts in the fault's
 *   window are not false alerts, but they do not make the break "detected".
 *
 * Any other alert — a type not listed for the fault, another instance, outside the window — is a
 * false alert.
 */
import type { EvalFaultType } from './scenarios.ts'

export interface ExpectedTypes {
  primary: readonly string[]
  symptoms: readonly string[]
}

/** symptoms of any break that slows requests down */
const SLOWER = ['stage_latency_regression', 'latency_drift', 'slo_p99_breach', 'anomaly'] as const

export const EXPECTED_ALERT_TYPES: Readonly<Record<EvalFaultType, ExpectedTypes>> = Object.freeze({
  data_starvation: {
    primary: ['accelerator_starved'],
    // a preprocessing backlog that overflows refuses requests (429): a real error spike
    symptoms: [...SLOWER, 'queue_growth', 'error_rate_spike'],
  },
  stage_stall: {
    primary: ['stage_latency_regression'],
    // a stalled deserialize stage is (de)serialization dominating request time, literally
    symptoms: [...SLOWER, 'queue_growth', 'event_loop_blocked', 'serialization_dominant'],
  },
  input_drift: { primary: ['input_drift'], symptoms: ['anomaly'] },
  output_drift: { primary: ['output_drift'], symptoms: ['anomaly'] },
  memory_leak: { primary: ['memory_leak'], symptoms: ['anomaly'] },
  batch_size_misconfig: {
    primary: ['batch_underutilized'],
    symptoms: [...SLOWER, 'queue_growth'],
  },
  error_burst: { primary: ['error_rate_spike'], symptoms: ['latency_drift', 'anomaly'] },
  slow_serialization: {
    primary: ['serialization_dominant'],
    symptoms: [...SLOWER, 'event_loop_blocked'],
  },
})

export function expectedTypes(type: EvalFaultType): ExpectedTypes {
  return EXPECTED_ALERT_TYPES[type]
}
