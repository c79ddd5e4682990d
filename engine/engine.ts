/**
 * The inference engine: loaded models (executor + dynamic batcher each), the preprocessing pool,
 * fault schedule and telemetry (spans, hardware samples). `handleInfer` is the request pipeline and
 * times every stage; http.ts puts it behind the Open Inference Protocol.
 */
import { hostname } from 'node:os'
import type { Logger } from 'pino'
import { blankSpan, type Span, type SpanStatus } from '../contract/records.ts'
import { BreakidError, errorBody, httpStatusOf } from '../core/errors.ts'
import type { Lifecycle } from '../bus/transport.ts'
import type { BatcherOptions } from './batcher.ts'
import { ResultCache } from './cache.ts'
import type { ExecutorOptions } from './executor.ts'
import { FaultSchedule, InjectedFaultError } from './faults.ts'
import { type PreprocessOptions, PreprocessPool } from './preprocess.ts'
import {
  MultiSpanProcessor,
  observerProcessor,
  type SpanObserver,
  type SpanProcessor,
  type SpanTraceContext,
} from './span-processor.ts'
import type { TelemetryEmitter } from './telemetry/emitter.ts'
import { MetricsRecorder, UNKNOWN_MODEL_LABEL } from './telemetry/metrics-recorder.ts'
import { HwSampler } from './telemetry/hw-sampler.ts'
import { randomIds } from './telemetry/ids.ts'
import { HostProbe } from './telemetry/host-probe.ts'
import { NvidiaSmi } from './telemetry/nvidia-smi.ts'
import {
  type LoadedModel,
  type ModelLease,
  ModelRegistry,
  type ModelSpec,
  UnknownModelError,
} from './registry.ts'
import { isModelName } from './models/zoo.ts'
import { summarize, type Tensor } from './tensors.ts'
import { renderInferResponse } from './v2-binary.ts'
import { toTensors } from './v2-request.ts'
import type { V2InferRequest } from './v2-types.ts'

export type { LoadedModel, ModelSpec, SpanObserver, SpanProcessor, SpanTraceContext }
export { UNKNOWN_MODEL_LABEL, UnknownModelError }

export interface EngineOptions {
  models: ModelSpec[]
  modelCacheDir: string
  logger: Logger
  emitter: TelemetryEmitter
  identity?: Partial<{ fleet: string; host: string; instance: string }>
  faults?: FaultSchedule
  batching?: BatcherOptions
  preprocess?: PreprocessOptions
  executor?: ExecutorOptions
  hwIntervalMs?: number
  /** most rows one request may carry */
  maxRowsPerRequest?: number
  /**
   * Where telemetry leaves the engine besides the Avro `emitter` and the /metrics recorder (the OTLP
   * exporter): called in this order after those two; the engine shuts them down in `stop()`.
   */
  spanProcessors?: SpanProcessor[]
  /**
   * Functions called with every finished span after the processors (tests and benchmarks that collect
   * spans): processors with nothing to flush (span-processor.ts `observerProcessor`).
   */
  spanObservers?: SpanObserver[]
  /** false: no spans or hardware samples are emitted (the telemetry-overhead benchmark's control) */
  telemetry?: boolean
  /** result cache capacity in entries; 0 (default) turns the cache off */
  cacheEntries?: number
  /**
   * The run every span and hardware sample is tagged with (`run_id`), until changed through
   * `engine.runId`; a request's `breakid-run-id` header overrides it for that request. Default null.
   */
  runId?: string | null
}

export interface InferResult {
  status: number
  /** JSON, or (binary tensor extension) a JSON header followed by binary output data */
  body: string | Buffer
  /** binary responses only: bytes of the JSON header, for Inference-Header-Content-Length */
  headerLength?: number
  span: Span
}

/** What the HTTP layer knows about a request when it arrives. */
export interface RequestMeta {
  /** process.hrtime.bigint() at arrival */
  arrivalNs: bigint
  arrivalEpochUs: number
  requestBytes: number
  traceparent?: string
  /** the request's own run id (a validated `breakid-run-id` header); default: the engine's */
  runId?: string
}

/** W3C trace context: `00-<32 hex trace id>-<16 hex parent id>-<flags>` */
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/

/** The caller's span id of a valid `traceparent` (an all-zero id is invalid in W3C trace context). */
function parentSpanIdOf(traceparent: RegExpExecArray | null): string | undefined {
  const id = traceparent?.[2]
  return id && id !== '0000000000000000' ? id : undefined
}

export class Engine implements Lifecycle {
  readonly identity: { fleet: string; host: string; instance: string }
  readonly faults: FaultSchedule
  /** every loaded model version; `models` is its newest-version-per-name view */
  readonly registry: ModelRegistry
  readonly cache: ResultCache
  readonly preprocess: PreprocessPool
  readonly sampler: HwSampler
  /** Triton-named per-model counters and histograms for /metrics, fed by every finished span */
  readonly metrics: MetricsRecorder
  /**
   * Every span processor, in order: the Avro emitter, the /metrics recorder, `spanProcessors`, then the
   * `spanObservers`. The one way telemetry leaves the engine; its `failures` are on /metrics.
   */
  readonly processors: MultiSpanProcessor
  /**
   * The run id stamped on spans and hardware samples (null: outside a named run). Mutable, so one
   * engine can move from a warm-up run to the measured run without reloading its models.
   */
  runId: string | null
  arrivals = 0
  completions = 0
  inFlight = 0
  readonly errors = new Map<string, number>()

  constructor(private readonly opts: EngineOptions) {
    this.identity = {
      fleet: opts.identity?.fleet ?? 'default',
      host: opts.identity?.host ?? hostname(),
      instance: opts.identity?.instance ?? `${hostname()}-${process.pid}`,
    }
    this.runId = opts.runId ?? null
    this.faults = opts.faults ?? new FaultSchedule()
    this.registry = new ModelRegistry({
      modelCacheDir: opts.modelCacheDir,
      logger: opts.logger,
      instance: this.identity.instance,
      executor: opts.executor,
      // batch_size_misconfig: the fault schedule caps the batch size while its window is active
      batching: { maxBatchSizeOverride: () => this.faults.maxBatchSizeOverride(), ...opts.batching },
    })
    this.cache = new ResultCache(opts.cacheEntries)
    this.metrics = new MetricsRecorder({
      executors: () =>
        this.registry
          .live()
          .map((m) => ({ model: m.meta.name, version: m.meta.version, busyUs: m.executor.busyUs })),
    })
    this.processors = new MultiSpanProcessor(
      [
        opts.emitter,
        this.metrics,
        ...(opts.spanProcessors ?? []),
        ...(opts.spanObservers ?? []).map((observe) => observerProcessor(observe)),
      ],
      opts.logger,
    )
    this.preprocess = new PreprocessPool(this.faults, opts.preprocess)
    this.sampler = new HwSampler({
      identity: this.identity,
      intervalMs: opts.hwIntervalMs,
      gpu: new NvidiaSmi(),
      host: new HostProbe(),
      runId: () => this.runId,
      emit: (s) => {
        if (opts.telemetry !== false) this.processors.onHwSample(s)
      },
      gauges: {
        queueDepth: () => this.registry.live().reduce((n, m) => n + m.batcher.depth, 0),
        inFlight: () => this.inFlight,
        arrivals: () => this.arrivals,
        completions: () => this.completions,
        executorBusyUs: () => this.registry.executorBusyUs,
      },
    })
  }

  async start(): Promise<void> {
    for (const spec of this.opts.models) await this.registry.load(spec)
    await this.processors.start()
    await this.sampler.start()
    this.faults.startClock()
  }

  /** Stops taking work, answers what is queued, then flushes telemetry. */
  async stop(): Promise<void> {
    await this.registry.drainAll()
    await this.sampler.stop()
    await this.sampler.tick().catch(() => {})
    await this.processors.shutdown()
    await this.registry.close()
  }

  /** Exports what every span processor holds now (the Avro emitter first). */
  forceFlush(): Promise<void> {
    return this.processors.forceFlush()
  }

  /** Where spans and hardware samples leave the engine (its counters are on /metrics). */
  get telemetry(): TelemetryEmitter {
    return this.opts.emitter
  }

  /** The newest ready version of each model, by name (metrics, gauges, `breakid up`). */
  get models(): ReadonlyMap<string, LoadedModel> {
    return this.registry.newest()
  }

  /** Loads a model version while serving; requests without a version go to the newest. */
  loadModel(spec: ModelSpec): Promise<LoadedModel> {
    return this.registry.load(spec)
  }

  /** Drains and unloads one version (or all of the model's); its cached results go with it. */
  async unloadModel(name: string, version?: string): Promise<string[]> {
    const unloaded = await this.registry.unload(name, version)
    for (const v of unloaded) this.cache.invalidate(name, v)
    return unloaded
  }

  /** A span with the request's identity and trace context; the pipeline fills in the stages. */
  private newSpan(model: string, requestId: string, meta: RequestMeta, trace: RegExpExecArray | null): Span {
    const loaded = this.registry.get(model)
    return blankSpan({
      timestamp_us: meta.arrivalEpochUs,
      trace_id: trace?.[1] ?? randomIds.traceId(),
      span_id: randomIds.spanId(),
      request_id: requestId,
      ...this.identity,
      // a name outside the zoo cannot be served: folded, so invented names add no labels or stored names
      model: isModelName(model) ? model : UNKNOWN_MODEL_LABEL,
      model_version: loaded?.meta.version ?? '',
      device: loaded?.executor.device ?? 'cpu',
      request_bytes: meta.requestBytes,
      run_id: meta.runId ?? this.runId,
    })
  }

  /**
   * Records a request the HTTP layer refused before the pipeline (unparseable JSON, schema, body
   * limit), so error rates in the telemetry see every failed request, not only the parsed ones.
   */
  recordRejected(modelName: string, errorClass: string, status: number, meta: RequestMeta): Span {
    this.arrivals++
    this.completions++
    const [span, trace] = this.startSpan(modelName, randomIds.requestId(), meta)
    span.status = status >= 500 ? 'server_error' : 'client_error'
    span.error_class = errorClass
    span.total_us = Number((process.hrtime.bigint() - meta.arrivalNs) / 1000n)
    span.deserialize_us = span.total_us
    this.finish(span, trace)
    return span
  }

  /** Every span leaves through here: to the span processors (Kafka or the bus, /metrics, OTLP, ...). */
  private finish(span: Span, trace: SpanTraceContext): void {
    if (this.opts.telemetry === false) return
    this.processors.onEnd(span, trace)
  }

  /** A request's span, created and handed to the processors' `onStart`. */
  private startSpan(model: string, requestId: string, meta: RequestMeta): [Span, SpanTraceContext] {
    // parsed once: the trace id goes into the span, the parent span id to the processors
    const traceparent = meta.traceparent ? TRACEPARENT.exec(meta.traceparent) : null
    const span = this.newSpan(model, requestId, meta, traceparent)
    const trace: SpanTraceContext = { parentSpanId: parentSpanIdOf(traceparent) }
    if (this.opts.telemetry !== false) this.processors.onStart(span, trace)
    return [span, trace]
  }

  countError(code: string): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1)
  }

  /**
   * The request pipeline. `arrivalNs` is when the request arrived and `parsedNs` when its body was
   * parsed (both from process.hrtime.bigint), so deserialization is part of the span.
   */
  async handleInfer(
    modelName: string,
    body: V2InferRequest,
    meta: RequestMeta & {
      parsedNs: bigint
      version?: string
      /** the body after the JSON header (binary tensor extension) */
      binary?: Buffer
    },
  ): Promise<InferResult> {
    this.arrivals++
    this.inFlight++
    this.faults.onRequest() // memory_leak
    // the client's own id when it sends one (bounded by the body schema), else a fresh UUIDv7
    const requestId = body.id ?? randomIds.requestId()
    const [span, trace] = this.startSpan(modelName, requestId, meta)
    const us = (from: bigint, to: bigint) => Number((to - from) / 1000n)
    let status = 200
    let responseBody: string | Buffer
    let headerLength: number | undefined
    // held from routing until the answer, so an unload of this version waits for this request
    let lease: ModelLease | undefined
    try {
      lease = this.registry.acquire(modelName, meta.version)
      if (!lease) {
        const what = meta.version === undefined ? modelName : `${modelName} version ${meta.version}`
        throw new UnknownModelError(
          what,
          this.registry.index().flatMap((e) => (e.state === 'READY' ? [`${e.name}@${e.version}`] : [])),
        )
      }
      const model = lease.model
      span.model_version = model.meta.version
      span.device = model.executor.device
      const tensors = toTensors(model.meta, body, this.opts.maxRowsPerRequest ?? 64, meta.binary)
      const tPre = process.hrtime.bigint()
      span.deserialize_us = us(meta.arrivalNs, tPre)
      this.faults.injectError() // error_burst

      const cacheKey = this.cache.enabled
        ? this.cache.key(model.meta.name, model.meta.version, tensors)
        : undefined
      const cached = cacheKey === undefined ? undefined : this.cache.get(cacheKey)
      let tDone: bigint
      let resultOutputs: Tensor[]
      if (cached) {
        // a hit skips the preprocessing pool, the queue and the executor; drift statistics still apply
        span.cache_hit = true
        const stats = summarize(tensors[0]!.data)
        span.input_mean = stats.mean
        span.input_std = stats.std
        tDone = process.hrtime.bigint()
        span.preprocess_us = us(tPre, tDone)
        this.cache.recordHit(model.meta.name, span.preprocess_us)
        resultOutputs = cached
      } else {
        const stats = await this.preprocess.run(tensors)
        span.input_mean = stats.mean
        span.input_std = stats.std
        const tQueued = process.hrtime.bigint()
        span.preprocess_us = us(tPre, tQueued)

        // stats.inputs: what preprocessing made of them (input_drift shifts them)
        const result = await model.batcher.enqueue(stats.inputs)
        tDone = process.hrtime.bigint()
        span.queue_wait_us = result.queueWaitUs
        span.compute_us = result.computeUs
        span.batch_id = result.batchId
        span.batch_size = result.batchSize
        resultOutputs = result.outputs
        // not under input_drift: those outputs answer the shifted inputs, not the ones in the key
        if (cacheKey !== undefined && stats.inputs === tensors) {
          this.cache.set(cacheKey, result.outputs)
          this.cache.recordMiss(model.meta.name, us(tPre, tDone))
        }
      }

      resultOutputs = this.faults.driftOutputs(resultOutputs) // output_drift
      // stage_stall; awaited only when there is a wait: an await of nothing yields to batch mates,
      // whose serialization then lands in this request's postprocess time (faults.ts)
      const stalled = this.faults.stall('postprocess')
      if (stalled) await stalled
      const first = resultOutputs[0]!
      const out = summarize(first.data)
      span.output_mean = out.mean
      span.output_confidence = confidence(first.data as Float32Array, first.shape)
      const tPost = process.hrtime.bigint()
      span.postprocess_us = us(tDone, tPost)

      const rendered = renderInferResponse(
        { model_name: modelName, model_version: model.meta.version, id: requestId },
        resultOutputs,
        body,
      )
      responseBody = rendered.body
      headerLength = rendered.headerLength
      // slow_serialization, stage_stall; awaited only when there is a wait (as above)
      const slowed = this.faults.serializeOverhead(rendered.body)
      if (slowed) await slowed
      span.serialize_us = us(tPost, process.hrtime.bigint())
    } catch (err) {
      status = httpStatusOf(err)
      // 429 (queue or backlog full) is the server's overload, not the client's mistake
      span.status = status >= 500 || status === 429 ? 'server_error' : 'client_error'
      span.error_class = err instanceof BreakidError ? err.code : (err as Error).name
      this.countError(span.error_class)
      // injected failures are expected by whoever scheduled them: not worth an error log each
      if (status >= 500 && !(err instanceof InjectedFaultError)) {
        this.opts.logger.error({ err, requestId }, 'inference failed')
      }
      responseBody = JSON.stringify(errorBody(err))
    } finally {
      lease?.release()
    }
    span.response_bytes = Buffer.byteLength(responseBody)
    span.total_us = us(meta.arrivalNs, process.hrtime.bigint())
    this.inFlight--
    this.completions++
    this.finish(span, trace)
    return { status, body: responseBody, headerLength, span }
  }
}

/** Mean over rows of the largest class probability (output confidence, for drift). */
function confidence(data: Float32Array, shape: number[]): number | null {
  const rows = shape[0] ?? 0
  if (rows === 0 || shape.length !== 2) return null
  const width = data.length / rows
  let sum = 0
  for (let r = 0; r < rows; r++) {
    let max = Number.NEGATIVE_INFINITY
    for (let c = 0; c < width; c++) max = Math.max(max, data[r * width + c]!)
    sum += max
  }
  return sum / rows
}

export type { SpanStatus }
