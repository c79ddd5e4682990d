/**
 * The faults breakid can inject (engine/faults.ts) and simulate (eval/), defined once: what each
 * does, its parameters with defaults and ranges, where it shows up in the telemetry, and the alert
 * type whose job it is to find it — the one page an incident of that kind should send.
 */
import type { AlertType } from './vocabulary.ts'

/** Stages a `stage_stall` can stall (the ones the engine runs on its own code). */
export const STALL_STAGES = ['preprocess', 'postprocess', 'serialize'] as const
export type StallStage = (typeof STALL_STAGES)[number]

/** Every parameter any fault takes; which ones a type accepts is in its `params`. */
export interface FaultParams {
  /** data_starvation, stage_stall, slow_serialization: extra time per request, ms */
  delayMs?: number
  /** stage_stall: the stage that stalls */
  stage?: StallStage
  /** input_drift: added to every input value, in units of the request's input standard deviation */
  shift?: number
  /** output_drift: weight of the uniform distribution mixed in (0..1); slow_serialization: extra stringify passes */
  factor?: number
  /** memory_leak: bytes retained per request */
  bytesPerRequest?: number
  /** memory_leak: most bytes retained at once (the leak is bounded so a long window cannot OOM the host) */
  maxBytes?: number
  /** batch_size_misconfig: most rows per batch while the window is active */
  maxBatchSize?: number
  /** error_burst: fraction of requests that fail (0..1) */
  rate?: number
}

export type NumberParam = { kind: 'number'; default: number; min: number; max?: number; integer?: boolean }
export type StageParam = { kind: 'stage'; default: StallStage }
export type ParamSpec = NumberParam | StageParam

const MIB = 1024 * 1024

interface FaultDefinition {
  /** what the engine does while the fault is active */
  effect: string
  /** parameters with defaults and ranges; the first is the one the flag shorthand `type@s-e:N` sets */
  params: Readonly<Partial<Record<keyof FaultParams, ParamSpec>>>
  /** the telemetry fields it moves */
  showsUpIn: string
  /** the alert type that should page for it */
  primaryAlert: AlertType
}

export const FAULTS = {
  data_starvation: {
    effect: 'every request holds a preprocessing worker `delayMs` longer',
    params: { delayMs: { kind: 'number', default: 50, min: 0, max: 600_000 } },
    showsUpIn: 'preprocess_us, in_flight up, executor_busy down',
    primaryAlert: 'accelerator_starved',
  },
  stage_stall: {
    effect: '`stage` (preprocess, postprocess, serialize) waits `delayMs`',
    params: {
      delayMs: { kind: 'number', default: 100, min: 0, max: 600_000 },
      stage: { kind: 'stage', default: 'postprocess' },
    },
    showsUpIn: "that stage's duration",
    primaryAlert: 'stage_latency_regression',
  },
  input_drift: {
    effect: "adds `shift` × the request's input σ to every FP32 input value",
    params: { shift: { kind: 'number', default: 1.5, min: -1_000, max: 1_000 } },
    showsUpIn: 'input_mean',
    primaryAlert: 'input_drift',
  },
  output_drift: {
    effect: 'mixes each output row toward uniform: (1−f)·p + f/width',
    params: { factor: { kind: 'number', default: 0.5, min: 0, max: 1 } },
    showsUpIn: 'output_confidence',
    primaryAlert: 'output_drift',
  },
  memory_leak: {
    effect: 'retains JS heap per request; released when the window ends',
    params: {
      bytesPerRequest: { kind: 'number', default: 256 * 1024, min: 8, max: 256 * MIB, integer: true },
      maxBytes: { kind: 'number', default: 512 * MIB, min: 8, max: 64 * 1024 * MIB, integer: true },
    },
    showsUpIn: 'rss_bytes, heap_used_bytes',
    primaryAlert: 'memory_leak',
  },
  batch_size_misconfig: {
    effect: 'the dynamic batcher runs batches of at most `maxBatchSize`',
    params: { maxBatchSize: { kind: 'number', default: 1, min: 1, max: 65_536, integer: true } },
    showsUpIn: 'batch_size, queue_depth',
    primaryAlert: 'batch_underutilized',
  },
  error_burst: {
    effect: 'that fraction of requests fails with 500 InjectedFaultError',
    params: { rate: { kind: 'number', default: 0.5, min: 0, max: 1 } },
    showsUpIn: 'status, error_class',
    primaryAlert: 'error_rate_spike',
  },
  slow_serialization: {
    effect: 'serialization re-stringifies `factor` extra times, waits `delayMs`',
    params: {
      delayMs: { kind: 'number', default: 0, min: 0, max: 600_000 },
      factor: { kind: 'number', default: 100, min: 0, max: 10_000, integer: true },
    },
    showsUpIn: 'serialize_us',
    primaryAlert: 'serialization_dominant',
  },
} as const satisfies Record<string, FaultDefinition>

export type FaultType = keyof typeof FAULTS
export const FAULT_TYPES = Object.keys(FAULTS) as FaultType[]

export function isFaultType(t: unknown): t is FaultType {
  return typeof t === 'string' && Object.hasOwn(FAULTS, t)
}

/** Parameters each fault type accepts, with defaults and ranges. */
export function faultParamSpecs(type: FaultType): Readonly<Partial<Record<keyof FaultParams, ParamSpec>>> {
  return FAULTS[type].params
}
