/**
 * Which detector works on which telemetry source. Every source arrives as the same records, but a
 * foreign source fills only some fields (collect/README.md): Triton's traces carry no batch, no
 * exporter reports the serving process's memory or event loop, OpenTelemetry spans have stages only
 * where child spans name them. A detector whose fields a source leaves at 0/null stays silent on it
 * (it never fires on the defaults). The README's table is rendered from here
 * (test/unit/detector-sources.test.ts checks it), and `breakid detectors` can show the same column.
 */
import type { AlertType } from '../contract/vocabulary.ts'

export const TELEMETRY_SOURCES = {
  engine: "breakid's engine (its own spans and hardware samples)",
  otlp_spans: 'OpenTelemetry SERVER spans of any service (breakid collect, /v1/traces)',
  triton_traces: "Triton's OpenTelemetry traces (InferRequest → model → compute)",
  triton_dcgm_metrics: "Triton's /metrics and the DCGM exporter (scraped, or OTLP /v1/metrics)",
} as const
export type TelemetrySource = keyof typeof TELEMETRY_SOURCES

/** `true`: works; `false`: the source lacks the fields; a string: works, within that limit. */
export type Support = boolean | string

export const DETECTOR_SOURCES: Record<AlertType, Record<TelemetrySource, Support>> = {
  accelerator_starved: {
    engine: true,
    otlp_spans: 'names the stage, with samples from metrics',
    triton_traces: 'names the stage, with samples from metrics',
    triton_dcgm_metrics: 'Triton counters; `--accelerator-models` for CPU/ensemble pipelines',
  },
  accelerator_idle_no_load: {
    engine: true,
    otlp_spans: false,
    triton_traces: false,
    triton_dcgm_metrics: 'Triton counters; DCGM alone: GPU utilisation only, load unknown',
  },
  instance_silent: { engine: true, otlp_spans: true, triton_traces: true, triton_dcgm_metrics: true },
  stage_latency_regression: {
    engine: true,
    otlp_spans: 'stages the child spans name',
    triton_traces: true,
    triton_dcgm_metrics: false,
  },
  queue_growth: {
    engine: true,
    otlp_spans: false,
    triton_traces: false,
    triton_dcgm_metrics: 'Triton counters',
  },
  event_loop_blocked: { engine: true, otlp_spans: false, triton_traces: false, triton_dcgm_metrics: false },
  latency_drift: { engine: true, otlp_spans: true, triton_traces: true, triton_dcgm_metrics: false },
  input_drift: { engine: true, otlp_spans: false, triton_traces: false, triton_dcgm_metrics: false },
  output_drift: { engine: true, otlp_spans: false, triton_traces: false, triton_dcgm_metrics: false },
  memory_leak: { engine: true, otlp_spans: false, triton_traces: false, triton_dcgm_metrics: false },
  batch_underutilized: { engine: true, otlp_spans: false, triton_traces: false, triton_dcgm_metrics: false },
  serialization_dominant: {
    engine: true,
    otlp_spans: '(de)serialize child spans',
    triton_traces: 'HTTP/gRPC receive and send',
    triton_dcgm_metrics: false,
  },
  slo_p99_breach: { engine: true, otlp_spans: true, triton_traces: true, triton_dcgm_metrics: false },
  error_rate_spike: { engine: true, otlp_spans: true, triton_traces: true, triton_dcgm_metrics: false },
  host_contention: {
    engine: "the host probe's PSI and cgroup fields, the engine's run-queue wait",
    otlp_spans: false,
    triton_traces: false,
    triton_dcgm_metrics: false,
  },
  anomaly: {
    engine: 'GPU temperature and power where nvidia-smi reports them',
    otlp_spans: false,
    triton_traces: false,
    triton_dcgm_metrics: 'GPU temperature and power',
  },
}

const cell = (s: Support) => (s === true ? '✓' : s === false ? '–' : s)

/** The README's table: one row per alert type, one column per source. */
export function detectorSourcesTable(): string {
  const sources = Object.keys(TELEMETRY_SOURCES) as TelemetrySource[]
  const header = `| alert type | ${sources.map((s) => `\`${s}\``).join(' | ')} |`
  const rule = `| --- | ${sources.map(() => '---').join(' | ')} |`
  const rows = (Object.entries(DETECTOR_SOURCES) as [AlertType, Record<TelemetrySource, Support>][]).map(
    ([type, by]) => `| \`${type}\` | ${sources.map((s) => cell(by[s])).join(' | ')} |`,
  )
  return [header, rule, ...rows].join('\n')
}
