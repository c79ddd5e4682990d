/**
 * Triton's and NVIDIA DCGM exporter's metrics turned into breakid hardware samples, one per instance
 * per scrape round (the Triton page and the DCGM page of one server share an instance, so both land in
 * one sample). Counters become rates between two rounds: the first round of an instance only records
 * values; a counter that went down was reset (the server restarted) and contributes its new value, as
 * Prometheus' rate() does; a series seen for the first time contributes from its next round.
 *
 * | field              | from                                                                      |
 * |--------------------|---------------------------------------------------------------------------|
 * | interval_ms        | time between the two rounds                                               |
 * | completions        | Δ nv_inference_request_success + Δ nv_inference_request_failure            |
 * | queue_depth        | Σ nv_inference_pending_request_count (requests waiting for an executor)   |
 * | arrivals           | completions + (queue_depth − previous queue_depth), at least 0            |
 * | in_flight          | Σ Δ nv_inference_request_duration_us / interval (Little's law: the mean    |
 * |                    | number of requests inside the server), at least queue_depth               |
 * | executor_busy      | Σ_model Δ(compute_input + compute_infer + compute_output)_us ×             |
 * |                    | Δexec_count / Δrequest_success, / interval, capped at 1 — Triton adds a    |
 * |                    | batch's compute time once per request in it, the ratio undoes that;       |
 * |                    | without Triton counters: the mean device utilization                      |
 * | devices[].utilization | DCGM_FI_PROF_GR_ENGINE_ACTIVE, else DCGM_FI_DEV_GPU_UTIL / 100,         |
 * |                    | else nv_gpu_utilization (0..1)                                             |
 * | devices[].memory_used_bytes  | DCGM_FI_DEV_FB_USED × 2^20 (MiB), else nv_gpu_memory_used_bytes  |
 * | devices[].memory_total_bytes | DCGM FB_USED + FB_FREE + FB_RESERVED (MiB), else                 |
 * |                    | nv_gpu_memory_total_bytes                                                 |
 * | devices[].power_w  | DCGM_FI_DEV_POWER_USAGE, else nv_gpu_power_usage (watts)                   |
 * | devices[].temperature_c | DCGM_FI_DEV_GPU_TEMP                                                  |
 * | process fields     | 0: neither exporter reports the serving process's CPU, RSS, heap or GC    |
 *
 * Devices are keyed by GPU UUID (DCGM `UUID`, Triton `gpu_uuid`), with `/mig<GPU_I_ID>` for a MIG
 * instance. Ensembles count twice in the request counters (the ensemble and its composing models);
 * `models` restricts the Triton sums to the models named, when that matters.
 *
 * `acceleratorModels` names the models that run on the accelerator when others do not (a Python or
 * CPU preprocessing model in an ensemble or BLS pipeline, the ensemble itself, whose "compute" is the
 * whole pipeline's time): only their compute is executor_busy and only their pending requests are
 * queue_depth, while every model's requests still count in in_flight. Without it a CPU model's
 * backlog reads as a backlog at the executor (overload), and a starved GPU as a busy one.
 */
import type { DeviceSample, HwSample } from '../../contract/records.ts'
import { type ExpositionFormat, type Labels, type MetricFamily, seriesOf } from './parse.ts'

/** One value of one series, the unit every source (scrape or OTLP metrics) is reduced to. */
export interface MetricPoint {
  name: string
  labels: Labels
  value: number
  kind: 'counter' | 'gauge'
}

/** The counters and gauges of a parsed exposition (histograms and summaries are not used). */
export function pointsOf(families: readonly MetricFamily[], _format?: ExpositionFormat): MetricPoint[] {
  const out: MetricPoint[] = []
  for (const f of families) {
    const kind =
      f.type === 'counter'
        ? 'counter'
        : f.type === 'gauge' || f.type === 'untyped' || f.type === 'unknown'
          ? 'gauge'
          : undefined
    if (!kind) continue
    for (const p of seriesOf(f))
      if (p.value !== undefined) out.push({ name: f.name, labels: p.labels, value: p.value, kind })
  }
  return out
}

export const TRITON_METRICS = {
  success: 'nv_inference_request_success',
  failure: 'nv_inference_request_failure',
  execCount: 'nv_inference_exec_count',
  requestDuration: 'nv_inference_request_duration_us',
  computeInput: 'nv_inference_compute_input_duration_us',
  computeInfer: 'nv_inference_compute_infer_duration_us',
  computeOutput: 'nv_inference_compute_output_duration_us',
  pending: 'nv_inference_pending_request_count',
  gpuUtilization: 'nv_gpu_utilization',
  gpuMemoryUsed: 'nv_gpu_memory_used_bytes',
  gpuMemoryTotal: 'nv_gpu_memory_total_bytes',
  gpuPower: 'nv_gpu_power_usage',
} as const

export const DCGM_METRICS = {
  grEngineActive: 'DCGM_FI_PROF_GR_ENGINE_ACTIVE',
  gpuUtil: 'DCGM_FI_DEV_GPU_UTIL',
  fbUsed: 'DCGM_FI_DEV_FB_USED',
  fbFree: 'DCGM_FI_DEV_FB_FREE',
  fbReserved: 'DCGM_FI_DEV_FB_RESERVED',
  power: 'DCGM_FI_DEV_POWER_USAGE',
  gpuTemp: 'DCGM_FI_DEV_GPU_TEMP',
} as const

const MIB = 1024 * 1024
const T = TRITON_METRICS
const D = DCGM_METRICS

interface InstanceState {
  atMs: number
  counters: Map<string, number>
  pending: number
}

export interface HardwareMapperOptions {
  /** Triton models whose counters count; default all */
  models?: readonly string[]
  /** Triton models that run on the accelerator (executor_busy, queue_depth); default all counted */
  acceleratorModels?: readonly string[]
}

const keyOf = (p: MetricPoint) =>
  `${p.name}{${Object.keys(p.labels)
    .sort()
    .map((k) => `${k}=${p.labels[k]}`)
    .join(',')}}`

const finite = (v: number | undefined): number | null => (v !== undefined && Number.isFinite(v) ? v : null)

export class HardwareMapper {
  private readonly state = new Map<string, InstanceState>()
  private readonly models?: ReadonlySet<string>
  private readonly accelerator?: ReadonlySet<string>

  constructor(opts: HardwareMapperOptions = {}) {
    const set = (names?: readonly string[]) => (names && names.length > 0 ? new Set(names) : undefined)
    this.models = set(opts.models)
    this.accelerator = set(opts.acceleratorModels)
  }

  /** Instances with remembered counter state (bounded by the scrape targets configured). */
  get instances(): number {
    return this.state.size
  }

  /**
   * One round of an instance's points, taken at `atMs`. Returns its hardware sample, or undefined on
   * its first round (no interval yet) or when the clock did not move.
   */
  observe(
    identity: { fleet: string; host: string; instance: string },
    points: readonly MetricPoint[],
    atMs: number,
  ): HwSample | undefined {
    const prev = this.state.get(identity.instance)
    const counters = new Map<string, number>()
    const delta = new Map<string, number>() // per series key
    for (const p of points) {
      if (p.kind !== 'counter' || !Number.isFinite(p.value)) continue
      const key = keyOf(p)
      counters.set(key, p.value)
      const before = prev?.counters.get(key)
      if (before !== undefined) delta.set(key, p.value >= before ? p.value - before : p.value)
    }
    const inModel = (p: MetricPoint) => !this.models || this.models.has(p.labels.model ?? '')
    const onAccelerator = (p: MetricPoint) =>
      inModel(p) && (!this.accelerator || this.accelerator.has(p.labels.model ?? ''))
    const sumDelta = (name: string, filter: (p: MetricPoint) => boolean = inModel) =>
      points.filter((p) => p.name === name && filter(p)).reduce((s, p) => s + (delta.get(keyOf(p)) ?? 0), 0)
    const pending = points
      .filter((p) => p.name === T.pending && onAccelerator(p) && Number.isFinite(p.value))
      .reduce((s, p) => s + p.value, 0)
    this.state.set(identity.instance, { atMs, counters, pending })
    if (!prev || atMs <= prev.atMs) return undefined

    const intervalMs = atMs - prev.atMs
    const intervalUs = intervalMs * 1000
    const completions = sumDelta(T.success) + sumDelta(T.failure)
    const hasTriton = points.some((p) => p.name === T.success)

    // per model: its compute time once per execution rather than once per request
    let busyUs = 0
    const models = new Set(
      points.filter((p) => p.name === T.success && onAccelerator(p)).map((p) => p.labels.model ?? ''),
    )
    for (const model of models) {
      const of = (p: MetricPoint) => (p.labels.model ?? '') === model
      const compute =
        sumDelta(T.computeInput, of) + sumDelta(T.computeInfer, of) + sumDelta(T.computeOutput, of)
      const requests = sumDelta(T.success, of)
      const executions = sumDelta(T.execCount, of)
      busyUs +=
        requests > 0 && executions > 0 ? (compute * Math.min(executions, requests)) / requests : compute
    }
    const devices = devicesOf(points)
    const utilizations = devices.map((d) => d.utilization).filter((u): u is number => u !== null)
    const executorBusy = hasTriton
      ? Math.min(1, busyUs / intervalUs)
      : utilizations.length > 0
        ? utilizations.reduce((a, b) => a + b, 0) / utilizations.length
        : 0
    const inServer = Math.round(sumDelta(T.requestDuration) / intervalUs)
    const int = (n: number) => Math.max(0, Math.min(2 ** 31 - 1, Math.round(n)))
    return {
      timestamp_us: Math.round(atMs * 1000),
      fleet: identity.fleet,
      host: identity.host,
      instance: identity.instance,
      interval_ms: int(intervalMs),
      process_cpu: 0,
      rss_bytes: 0,
      heap_used_bytes: 0,
      event_loop_delay_p99_ms: 0,
      gc_ms: 0,
      queue_depth: int(pending),
      in_flight: int(Math.max(inServer, pending)),
      arrivals: int(completions + pending - prev.pending),
      completions: int(completions),
      executor_busy: Math.max(0, executorBusy),
      devices,
    }
  }

  /** Forgets an instance (a target removed). */
  forget(instance: string): void {
    this.state.delete(instance)
  }
}

/** GPU rows of DCGM and Triton gauges, merged per device. */
export function devicesOf(points: readonly MetricPoint[]): DeviceSample[] {
  interface Acc {
    grActive?: number
    dcgmUtil?: number
    tritonUtil?: number
    fbUsed?: number
    fbFree?: number
    fbReserved?: number
    tritonUsed?: number
    tritonTotal?: number
    dcgmPower?: number
    tritonPower?: number
    temp?: number
  }
  const acc = new Map<string, Acc>()
  const at = (device: string) => {
    let a = acc.get(device)
    if (!a) {
      a = {}
      acc.set(device, a)
    }
    return a
  }
  for (const p of points) {
    if (p.kind !== 'gauge') continue
    const dcgmId = p.labels.UUID
      ? p.labels.UUID + (p.labels.GPU_I_ID ? `/mig${p.labels.GPU_I_ID}` : '')
      : undefined
    const tritonId = p.labels.gpu_uuid
    const v = p.value
    if (dcgmId) {
      const a = at(dcgmId)
      if (p.name === D.grEngineActive) a.grActive = v
      else if (p.name === D.gpuUtil) a.dcgmUtil = v / 100
      else if (p.name === D.fbUsed) a.fbUsed = v
      else if (p.name === D.fbFree) a.fbFree = v
      else if (p.name === D.fbReserved) a.fbReserved = v
      else if (p.name === D.power) a.dcgmPower = v
      else if (p.name === D.gpuTemp) a.temp = v
    } else if (tritonId && p.name.startsWith('nv_gpu_')) {
      const a = at(tritonId)
      if (p.name === T.gpuUtilization) a.tritonUtil = v
      else if (p.name === T.gpuMemoryUsed) a.tritonUsed = v
      else if (p.name === T.gpuMemoryTotal) a.tritonTotal = v
      else if (p.name === T.gpuPower) a.tritonPower = v
    }
  }
  const bytes = (n: number | null) => (n === null ? null : Math.round(n))
  return [...acc.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([device, a]) => {
      const dcgmTotal =
        a.fbUsed !== undefined && a.fbFree !== undefined
          ? (a.fbUsed + a.fbFree + (a.fbReserved ?? 0)) * MIB
          : undefined
      const util = finite(a.grActive) ?? finite(a.dcgmUtil) ?? finite(a.tritonUtil)
      return {
        device,
        utilization: util === null ? null : Math.min(1, Math.max(0, util)),
        memory_used_bytes: bytes(
          finite(a.fbUsed !== undefined ? a.fbUsed * MIB : undefined) ?? finite(a.tritonUsed),
        ),
        memory_total_bytes: bytes(finite(dcgmTotal) ?? finite(a.tritonTotal)),
        power_w: finite(a.dcgmPower) ?? finite(a.tritonPower),
        temperature_c: finite(a.temp),
      }
    })
    .filter((d) => Object.values(d).some((v) => v !== null && typeof v === 'number'))
}
