/** TypeScript shapes of the Avro records in ./schemas.ts (kept in step by test/unit/contract.test.ts). */
import { type ResolveReason, STAGES } from './vocabulary.ts'

export type SpanStatus = 'ok' | 'client_error' | 'server_error'

export interface Span {
  timestamp_us: number
  trace_id: string
  span_id: string
  request_id: string
  fleet: string
  host: string
  instance: string
  model: string
  model_version: string
  device: string
  batch_id: string
  batch_size: number
  status: SpanStatus
  error_class: string | null
  cache_hit: boolean
  request_bytes: number
  response_bytes: number
  deserialize_us: number
  preprocess_us: number
  queue_wait_us: number
  compute_us: number
  postprocess_us: number
  serialize_us: number
  total_us: number
  input_mean: number | null
  input_std: number | null
  output_mean: number | null
  output_confidence: number | null
  /** v2; absent (null) in records of older writers */
  run_id?: string | null
}

/** What identifies a span; everything else starts empty and is filled in as the request moves on. */
export type SpanIdentity = Pick<
  Span,
  'timestamp_us' | 'trace_id' | 'span_id' | 'request_id' | 'fleet' | 'host' | 'instance' | 'model'
>

/** A span before any stage has run: no batch, status ok, every duration 0, no summary statistics. */
export function blankSpan(identity: SpanIdentity & Partial<Span>): Span {
  return {
    model_version: '',
    device: 'cpu',
    batch_id: '',
    batch_size: 0,
    status: 'ok',
    error_class: null,
    cache_hit: false,
    request_bytes: 0,
    response_bytes: 0,
    deserialize_us: 0,
    preprocess_us: 0,
    queue_wait_us: 0,
    compute_us: 0,
    postprocess_us: 0,
    serialize_us: 0,
    total_us: 0,
    input_mean: null,
    input_std: null,
    output_mean: null,
    output_confidence: null,
    ...identity,
  }
}

type PressureField = `psi_${'cpu' | 'memory' | 'io'}_${'some' | 'full'}_${'avg10' | 'total_us'}`

/** Pressure stall information of a host where no task ever waited (every PSI field 0). */
export const NO_PRESSURE: Readonly<Record<PressureField, number>> = Object.freeze(
  Object.fromEntries(
    (['cpu', 'memory', 'io'] as const)
      .flatMap((r) =>
        (['some', 'full'] as const).flatMap((k) => [`psi_${r}_${k}_avg10`, `psi_${r}_${k}_total_us`]),
      )
      .map((f) => [f, 0]),
  ) as Record<PressureField, number>,
)

/** The sum of a span's stage durations, µs: its total where the producer measured none. */
export function stagesUs(span: Span): number {
  return STAGES.reduce((total, stage) => total + span[`${stage}_us`], 0)
}

/** The device sample of a host's CPU, which reports no utilization, memory, power or temperature of its own. */
export function cpuDevice(): DeviceSample {
  return {
    device: 'cpu',
    utilization: null,
    memory_used_bytes: null,
    memory_total_bytes: null,
    power_w: null,
    temperature_c: null,
  }
}

export interface DeviceSample {
  device: string
  utilization: number | null
  memory_used_bytes: number | null
  memory_total_bytes: number | null
  power_w: number | null
  temperature_c: number | null
}

export interface HwSample {
  timestamp_us: number
  fleet: string
  host: string
  instance: string
  interval_ms: number
  process_cpu: number
  rss_bytes: number
  heap_used_bytes: number
  event_loop_delay_p99_ms: number
  gc_ms: number
  queue_depth: number
  in_flight: number
  arrivals: number
  completions: number
  executor_busy: number
  devices: DeviceSample[]
  // v2 (null where the platform does not report them, and in records of older writers)
  run_id?: string | null
  host_cpu?: number | null
  host_cpus?: number | null
  psi_cpu_some_avg10?: number | null
  psi_cpu_some_total_us?: number | null
  psi_cpu_full_avg10?: number | null
  psi_cpu_full_total_us?: number | null
  psi_memory_some_avg10?: number | null
  psi_memory_some_total_us?: number | null
  psi_memory_full_avg10?: number | null
  psi_memory_full_total_us?: number | null
  psi_io_some_avg10?: number | null
  psi_io_some_total_us?: number | null
  psi_io_full_avg10?: number | null
  psi_io_full_total_us?: number | null
  cgroup_cpu_limit?: number | null
  cgroup_nr_throttled?: number | null
  cgroup_throttled_us?: number | null
  process_cpu_wait?: number | null
}

export type Severity = 'info' | 'warning' | 'critical'
export type AlertStatus = 'firing' | 'resolved'

export interface Alert {
  id: string
  type: string
  severity: Severity
  status: AlertStatus
  dedup_key: string
  fleet: string
  instance: string
  model: string
  stage: string | null
  starts_at_us: number
  ends_at_us: number | null
  updated_at_us: number
  statistic: string
  observed: number
  baseline: number
  threshold: number
  summary: string
  suspected_cause: string
  suggested_action: string
  exemplar_request_ids: string[]
  // v2
  run_id?: string | null
  /** set on resolved records: why it resolved */
  resolve_reason?: ResolveReason | null
  /** symptoms of this break that other detectors raised, delivered with it instead of paging */
  related?: RelatedAlert[]
}

export interface RelatedAlert {
  id: string
  type: string
  stage: string | null
  starts_at_us: number
  summary: string
}
