/**
 * A Triton server's and a DCGM exporter's metrics as a scenario drives them: per-model counters that
 * advance by what happened in an interval, gauges set as they are, rendered as the pages the two
 * exporters serve (Prometheus text, the families and labels of test/fixtures/prometheus) or as an
 * OTLP metrics request — what an OpenTelemetry Collector's prometheus receiver forwards — serialized
 * by the official OpenTelemetry JS serializer.
 */
import { ValueType } from '@opentelemetry/api'
import { ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { AggregationTemporality, DataPointType, type ResourceMetrics } from '@opentelemetry/sdk-metrics'
import { hr } from './otel-js.ts'

/** What one model did during an interval (Triton credits a batch's compute to every request in it). */
export interface ModelInterval {
  requests: number
  executions: number
  /** Σ over requests of: request duration, queue wait, compute input/infer/output (µs) */
  requestUs: number
  queueUs?: number
  computeInputUs?: number
  computeInferUs?: number
  computeOutputUs?: number
  /** requests waiting at the end of the interval (a gauge) */
  pending: number
}

export interface GpuState {
  uuid: string
  /** 0..1 */
  utilization: number
  fbUsedMiB: number
  fbFreeMiB: number
  powerW: number
  temperatureC: number
}

interface Point {
  name: string
  help: string
  kind: 'counter' | 'gauge'
  labels: Record<string, string>
  value: number
}

const COUNTERS = {
  success: ['nv_inference_request_success', 'Number of successful inference requests, all batch sizes'],
  failure: ['nv_inference_request_failure', 'Number of failed inference requests, all batch sizes'],
  count: ['nv_inference_count', 'Number of inferences performed (does not include cached requests)'],
  exec: [
    'nv_inference_exec_count',
    'Number of model executions performed (does not include cached requests)',
  ],
  request: ['nv_inference_request_duration_us', 'Cumulative inference request duration in microseconds'],
  queue: ['nv_inference_queue_duration_us', 'Cumulative inference queuing duration in microseconds'],
  input: ['nv_inference_compute_input_duration_us', 'Cumulative compute input duration in microseconds'],
  infer: ['nv_inference_compute_infer_duration_us', 'Cumulative compute inference duration in microseconds'],
  output: [
    'nv_inference_compute_output_duration_us',
    'Cumulative inference compute output duration in microseconds',
  ],
} as const

export class TritonMetrics {
  private readonly totals = new Map<string, Record<keyof typeof COUNTERS, number>>()
  private readonly pending = new Map<string, number>()
  gpus: GpuState[] = []

  /** Adds what `model` did during the interval to its counters. */
  advance(model: string, i: ModelInterval): void {
    const t = this.totals.get(model) ?? {
      success: 0,
      failure: 0,
      count: 0,
      exec: 0,
      request: 0,
      queue: 0,
      input: 0,
      infer: 0,
      output: 0,
    }
    t.success += i.requests
    t.count += i.requests
    t.exec += i.executions
    t.request += i.requestUs
    t.queue += i.queueUs ?? 0
    t.input += i.computeInputUs ?? 0
    t.infer += i.computeInferUs ?? 0
    t.output += i.computeOutputUs ?? 0
    this.totals.set(model, t)
    this.pending.set(model, i.pending)
  }

  /** Triton's own families (counters, pending gauge, nv_gpu_* gauges). */
  tritonPoints(): Point[] {
    const out: Point[] = []
    for (const [key, [name, help]] of Object.entries(COUNTERS)) {
      for (const [model, t] of this.totals) {
        const value = t[key as keyof typeof COUNTERS]
        out.push({ name, help, kind: 'counter', labels: { model, version: '1' }, value })
      }
    }
    for (const [model, value] of this.pending) {
      out.push({
        name: 'nv_inference_pending_request_count',
        help: 'Instantaneous number of pending requests awaiting execution per-model.',
        kind: 'gauge',
        labels: { model, version: '1' },
        value,
      })
    }
    for (const g of this.gpus) {
      const labels = { gpu_uuid: g.uuid }
      out.push({
        name: 'nv_gpu_utilization',
        help: 'GPU utilization rate [0.0 - 1.0)',
        kind: 'gauge',
        labels,
        value: g.utilization,
      })
      out.push({
        name: 'nv_gpu_power_usage',
        help: 'GPU power usage in watts',
        kind: 'gauge',
        labels,
        value: g.powerW,
      })
    }
    return out
  }

  /** The DCGM exporter's families of the default counters file. */
  dcgmPoints(): Point[] {
    return this.gpus.flatMap((g, i) => {
      const labels = {
        gpu: String(i),
        UUID: g.uuid,
        pci_bus_id: `00000000:0${i}:00.0`,
        device: `nvidia${i}`,
        modelName: 'NVIDIA H100 80GB HBM3',
        Hostname: 'triton-a',
      }
      const gauge = (name: string, help: string, value: number): Point => ({
        name,
        help,
        kind: 'gauge',
        labels,
        value,
      })
      return [
        gauge('DCGM_FI_DEV_GPU_UTIL', 'GPU utilization (in %).', Math.round(g.utilization * 100)),
        gauge('DCGM_FI_PROF_GR_ENGINE_ACTIVE', 'Ratio of time the graphics engine is active.', g.utilization),
        gauge('DCGM_FI_DEV_FB_USED', 'Framebuffer memory used (in MiB).', g.fbUsedMiB),
        gauge('DCGM_FI_DEV_FB_FREE', 'Framebuffer memory free (in MiB).', g.fbFreeMiB),
        gauge('DCGM_FI_DEV_POWER_USAGE', 'Power draw (in W).', g.powerW),
        gauge('DCGM_FI_DEV_GPU_TEMP', 'GPU temperature (in C).', g.temperatureC),
      ]
    })
  }

  tritonPage(): string {
    return page(this.tritonPoints())
  }

  dcgmPage(): string {
    return page(this.dcgmPoints())
  }

  /**
   * Both exporters' points as one OTLP metrics request (protobuf), as a Collector scraping them
   * sends it: counters as cumulative monotonic sums, gauges as gauges, stamped `atNs`.
   */
  otlpRequest(resource: Record<string, string>, atNs: bigint, startNs: bigint): Buffer {
    const byName = groupByName([...this.tritonPoints(), ...this.dcgmPoints()])
    const metrics: ResourceMetrics = {
      resource: resourceFromAttributes(resource),
      scopeMetrics: [
        {
          scope: { name: 'otelcol/prometheusreceiver', version: '0.120.0' },
          metrics: [...byName].map(([name, ps]) => ({
            descriptor: { name, description: ps[0]!.help, unit: '', valueType: ValueType.DOUBLE },
            aggregationTemporality: AggregationTemporality.CUMULATIVE,
            ...(ps[0]!.kind === 'counter'
              ? { dataPointType: DataPointType.SUM as const, isMonotonic: true }
              : { dataPointType: DataPointType.GAUGE as const }),
            dataPoints: ps.map((p) => ({
              startTime: hr(startNs),
              endTime: hr(atNs),
              attributes: p.labels,
              value: p.value,
            })),
          })),
        },
      ],
    }
    return Buffer.from(ProtobufMetricsSerializer.serializeRequest(metrics)!)
  }
}

/** The text exposition: one HELP/TYPE per family, its series together, values as Triton prints them. */
function page(points: Point[]): string {
  const lines: string[] = []
  for (const [name, family] of groupByName(points)) {
    lines.push(`# HELP ${name} ${family[0]!.help}`, `# TYPE ${name} ${family[0]!.kind}`)
    for (const p of family) {
      const labels = Object.entries(p.labels)
        .map(([k, v]) => `${k}="${v}"`)
        .join(',')
      lines.push(`${name}{${labels}} ${p.value.toFixed(6)}`)
    }
  }
  return `${lines.join('\n')}\n`
}

function groupByName(points: Point[]): Map<string, Point[]> {
  const byName = new Map<string, Point[]>()
  for (const p of points) byName.set(p.name, [...(byName.get(p.name) ?? []), p])
  return byName
}
