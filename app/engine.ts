/**
 * The engine as every command and benchmark builds it: `engineFromConfig` puts together the models,
 * the fault schedule, the Avro telemetry emitter on the configured transport and, when an OTLP
 * endpoint is configured, the OTLP exporter as a span processor. `serve`, `up`, `experiment` and the
 * benchmarks that run an engine build it here, so they differ only in the settings they pass.
 */
import type { Logger } from 'pino'
import type { Transport } from '../bus/transport.ts'
import type { BatcherOptions } from '../engine/batcher.ts'
import { Engine, type ModelSpec } from '../engine/engine.ts'
import { FaultSchedule, type FaultWindow } from '../engine/faults.ts'
import type { PreprocessOptions } from '../engine/preprocess.ts'
import type { SpanProcessor } from '../engine/span-processor.ts'
import type { TelemetryEmitter } from '../engine/telemetry/emitter.ts'
import { OtlpSpanExporter } from '../engine/telemetry/otlp.ts'
import type { BreakidConfig } from './config.ts'
import { telemetryEmitter } from './runtime.ts'

/** What one engine serves and how, besides the shared configuration. */
export interface EngineSettings {
  models: ModelSpec[]
  /** fault windows, from the start of serving (default none) */
  faults?: FaultWindow[]
  batching?: BatcherOptions
  preprocess?: PreprocessOptions
  /** result cache capacity in entries (default 0: off) */
  cacheEntries?: number
  /** the run id on every span and sample (default null) */
  runId?: string | null
  /** share of ordinary requests exported over OTLP when `otlpEndpoint` is configured (default 0.1) */
  otlpSampleRatio?: number
  /** false: no spans or hardware samples (a benchmark's control). Default true. */
  telemetry?: boolean
  /** hardware sample period, ms (default the sampler's) */
  hwIntervalMs?: number
}

/** The configuration an engine reads: the shared part (BreakidConfig's fields) and its settings. */
export type EngineConfig = Pick<
  BreakidConfig,
  | 'modelCacheDir'
  | 'fleet'
  | 'instance'
  | 'executionProvider'
  | 'otlpEndpoint'
  | 'kafkaBrokers'
  | 'topicPrefix'
  | 'logLevel'
  | 'recordsPerMessage'
> &
  EngineSettings

export interface EngineDeps {
  transport: Transport
  logger: Logger
  /** the Avro emitter; default: the configured one on `transport` (runtime.ts `telemetryEmitter`) */
  emitter?: TelemetryEmitter
  /** more span processors, after the OTLP exporter */
  spanProcessors?: SpanProcessor[]
}

/** An engine, not started (`engine.start()`, or `enginePlugin` with `manageEngine`). */
export function engineFromConfig(cfg: EngineConfig, deps: EngineDeps): Engine {
  const otlp = cfg.otlpEndpoint
    ? new OtlpSpanExporter({ endpoint: cfg.otlpEndpoint, sampleRatio: cfg.otlpSampleRatio })
    : undefined
  return new Engine({
    models: cfg.models,
    modelCacheDir: cfg.modelCacheDir,
    logger: deps.logger,
    emitter: deps.emitter ?? telemetryEmitter(cfg, deps.transport, deps.logger),
    spanProcessors: [...(otlp ? [otlp] : []), ...(deps.spanProcessors ?? [])],
    faults: new FaultSchedule(cfg.faults ?? []),
    identity: { fleet: cfg.fleet, instance: cfg.instance },
    executor: { executionProvider: cfg.executionProvider },
    batching: cfg.batching,
    preprocess: cfg.preprocess,
    cacheEntries: cfg.cacheEntries,
    runId: cfg.runId,
    telemetry: cfg.telemetry,
    hwIntervalMs: cfg.hwIntervalMs,
  })
}
