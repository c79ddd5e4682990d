/**
 * Per-model Prometheus metrics with Triton's names, recorded from finished spans (a span observer) so
 * /metrics and the span stream count the same requests:
 *
 *   nv_inference_request_success / _failure        counters, requests by model and version
 *   nv_inference_count                             counter, rows inferred (sum of batch sizes of the
 *                                                  executions, cache hits excluded — as Triton counts)
 *   nv_inference_exec_count                        counter, model executions (distinct batches)
 *   nv_inference_request_duration_us               counter, cumulative total µs of successful requests
 *   nv_inference_queue_duration_us                 counter, cumulative queue wait µs (successful)
 *   nv_inference_compute_input_duration_us         counter, cumulative preprocess µs (successful, computed)
 *   nv_inference_compute_infer_duration_us         counter, cumulative compute µs (successful, computed:
 *                                                  cache hits excluded, as Triton counts)
 *   nv_inference_compute_output_duration_us        counter, cumulative postprocess µs (successful, computed)
 *   breakid_request_duration_us / _queue_duration_us / _compute_duration_us
 *                                                  histograms of successful requests, µs
 *   breakid_batch_size                             histogram of rows per execution
 *   breakid_executor_busy_ratio                    gauge, time inside model execution / wall time over
 *                                                  the last sampling interval (default 1 s)
 *
 * Label cardinality is bounded: the engine folds model names outside its zoo into `_unknown` before a
 * span is made, and past `maxModels` distinct names (a second line of defence) new names fold here too.
 *
 * Triton's compute input/infer/output are breakid's preprocess/compute/postprocess stages: the same
 * table the collector reads Triton with (collect/README.md), so a scraped breakid engine reads as its
 * own spans do. The same counters answer Triton's statistics extension (`statistics()`).
 *
 * A batch is recognised by its batch id: the ids of the last `recentBatches` (4096) batches per model
 * version are remembered, so an execution is counted once however many of its requests finish.
 * Everything here is O(buckets) per span and allocates nothing after the first span of a model.
 */
import type { Span } from '../../contract/records.ts'
import { type Labels, type MetricFamily, renderFamilies, type Sample } from '../../core/metrics.ts'
import type { SpanProcessor } from '../span-processor.ts'

/**
 * The model label (and span model name) of requests to a model that does not exist: every name a
 * client invents folds into this one value.
 */
export const UNKNOWN_MODEL_LABEL = '_unknown'

/** µs buckets of the duration histograms: 100 µs .. 10 s */
export const DURATION_BUCKETS_US = [
  100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
  10_000_000,
] as const
export const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128] as const

/** One executor's cumulative counters (ModelExecutor.busyUs / batches). */
export interface ExecutorReading {
  model: string
  version: string
  busyUs: number
}

export interface MetricsRecorderOptions {
  /** the executors' cumulative busy µs, read every `busyIntervalMs` */
  executors: () => ExecutorReading[]
  /** busy-ratio sampling period, ms. Default 1000. */
  busyIntervalMs?: number
  /** batch ids remembered per model version to count each execution once. Default 4096. */
  recentBatches?: number
  /** distinct model names with series of their own; later ones fold into `_unknown`. Default 64. */
  maxModels?: number
}

/** `{ count, ns }`: Triton's $duration_stat */
export interface DurationStat {
  count: number
  ns: number
}

/** Triton's statistics extension `$model_stat` (docs/protocol/extension_statistics.md). */
export interface TritonModelStat {
  name: string
  version: string
  last_inference: number
  inference_count: number
  execution_count: number
  inference_stats: Record<
    'success' | 'fail' | 'queue' | 'compute_input' | 'compute_infer' | 'compute_output' | 'cache_hit',
    DurationStat
  >
  batch_stats: {
    batch_size: number
    compute_input: DurationStat
    compute_infer: DurationStat
    compute_output: DurationStat
  }[]
}

class Histogram {
  /** per-bucket (not cumulative) counts; the last slot is +Inf */
  readonly counts: Float64Array
  sum = 0
  count = 0
  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1)
  }
  observe(v: number): void {
    let i = 0
    while (i < this.bounds.length && v > this.bounds[i]!) i++
    this.counts[i]!++
    this.sum += v
    this.count++
  }
}

/** One batch size's executions (Triton's batch_stats). */
interface BatchSizeStats {
  executions: number
  inputUs: number
  inferUs: number
  outputUs: number
}

interface ModelStats {
  labels: Labels
  success: number
  failure: number
  /** total µs of failed requests */
  failureUs: number
  cacheHits: number
  /** successful requests computed (not answered from the cache) */
  computed: number
  lastInferenceMs: number
  inferenceCount: number
  execCount: number
  requestUs: number
  queueUs: number
  inputUs: number
  computeUs: number
  outputUs: number
  byBatchSize: Map<number, BatchSizeStats>
  request: Histogram
  queue: Histogram
  compute: Histogram
  batchSize: Histogram
  /** the batch ids of the last `recentBatches` executions, to count each execution once */
  recentBatches: Set<string>
  /**
   * the same ids in the order they came, a ring: the slot to overwrite next holds the oldest. (Taking
   * the oldest from the Set's iterator instead walked the deleted entries at its front on every new
   * batch until the Set rehashed: 1.2 µs per span at batch size 1.)
   */
  batchRing: (string | undefined)[]
  batchRingAt: number
}

const labelsOf = (model: string, version: string): Labels => ({ model, version })

export class MetricsRecorder implements SpanProcessor {
  readonly processorName = 'metrics'
  /** model → version → stats (nested, so the request path builds no key string) */
  private readonly stats = new Map<string, Map<string, ModelStats>>()
  private readonly busy = new Map<string, { labels: Labels; ratio: number }>()
  private lastBusy = new Map<string, number>()
  /** when the last busy sample was taken (the baseline of the next ratio); undefined before the first */
  private lastBusyAtMs: number | undefined
  private readonly timer: NodeJS.Timeout
  private readonly recentBatches: number
  private readonly maxModels: number

  constructor(private readonly opts: MetricsRecorderOptions) {
    this.recentBatches = Math.max(1, opts.recentBatches ?? 4096)
    this.maxModels = opts.maxModels ?? 64
    this.timer = setInterval(() => this.sampleBusy(), opts.busyIntervalMs ?? 1_000)
    this.timer.unref()
  }

  /** The span observer. */
  readonly observe = (span: Span): void => {
    let model = span.model
    let version = span.model_version
    let versions = this.stats.get(model)
    if (!versions && this.stats.size >= this.maxModels) {
      model = UNKNOWN_MODEL_LABEL
      version = ''
      versions = this.stats.get(model)
    }
    if (!versions) {
      versions = new Map()
      this.stats.set(model, versions)
    }
    let s = versions.get(version)
    if (!s) {
      s = {
        labels: labelsOf(model, version),
        success: 0,
        failure: 0,
        failureUs: 0,
        cacheHits: 0,
        computed: 0,
        lastInferenceMs: 0,
        inferenceCount: 0,
        execCount: 0,
        requestUs: 0,
        queueUs: 0,
        inputUs: 0,
        computeUs: 0,
        outputUs: 0,
        byBatchSize: new Map(),
        request: new Histogram(DURATION_BUCKETS_US),
        queue: new Histogram(DURATION_BUCKETS_US),
        compute: new Histogram(DURATION_BUCKETS_US),
        batchSize: new Histogram(BATCH_SIZE_BUCKETS),
        recentBatches: new Set(),
        batchRing: new Array(this.recentBatches).fill(undefined),
        batchRingAt: 0,
      }
      versions.set(version, s)
    }
    s.lastInferenceMs = Math.max(s.lastInferenceMs, Math.floor(span.timestamp_us / 1000))
    if (span.status !== 'ok') {
      s.failure++
      s.failureUs += span.total_us
      return
    }
    s.success++
    s.requestUs += span.total_us
    s.queueUs += span.queue_wait_us
    // compute counts requests the model ran, as Triton's does: a cache hit ran nothing
    if (span.cache_hit) s.cacheHits++
    else {
      s.computed++
      s.inputUs += span.preprocess_us
      s.computeUs += span.compute_us
      s.outputUs += span.postprocess_us
    }
    s.request.observe(span.total_us)
    s.queue.observe(span.queue_wait_us)
    s.compute.observe(span.compute_us)
    if (!span.cache_hit && span.batch_id !== '' && !s.recentBatches.has(span.batch_id)) {
      const oldest = s.batchRing[s.batchRingAt]
      if (oldest !== undefined) s.recentBatches.delete(oldest)
      s.batchRing[s.batchRingAt] = span.batch_id
      s.batchRingAt = (s.batchRingAt + 1) % s.batchRing.length
      s.recentBatches.add(span.batch_id)
      s.execCount++
      s.inferenceCount += span.batch_size
      s.batchSize.observe(span.batch_size)
      // bounded by the batcher's largest batch size
      let b = s.byBatchSize.get(span.batch_size)
      if (!b) {
        b = { executions: 0, inputUs: 0, inferUs: 0, outputUs: 0 }
        s.byBatchSize.set(span.batch_size, b)
      }
      b.executions++
      b.inputUs += span.preprocess_us
      b.inferUs += span.compute_us
      b.outputUs += span.postprocess_us
    }
  }

  /**
   * Triton's statistics extension `$model_stat` of one model version (zeros for one that served no
   * request yet). Durations in ns, from the µs recorded.
   */
  statistics(name: string, version: string): TritonModelStat {
    const s = this.stats.get(name)?.get(version)
    const d = (count: number, us: number) => ({ count, ns: us * 1000 })
    if (!s) {
      const zero = d(0, 0)
      return {
        name,
        version,
        last_inference: 0,
        inference_count: 0,
        execution_count: 0,
        inference_stats: {
          success: zero,
          fail: zero,
          queue: zero,
          compute_input: zero,
          compute_infer: zero,
          compute_output: zero,
          cache_hit: zero,
        },
        batch_stats: [],
      }
    }
    return {
      name,
      version,
      last_inference: s.lastInferenceMs,
      inference_count: s.inferenceCount,
      execution_count: s.execCount,
      inference_stats: {
        success: d(s.success, s.requestUs),
        fail: d(s.failure, s.failureUs),
        queue: d(s.success, s.queueUs),
        compute_input: d(s.computed, s.inputUs),
        compute_infer: d(s.computed, s.computeUs),
        compute_output: d(s.computed, s.outputUs),
        cache_hit: d(s.cacheHits, 0),
      },
      batch_stats: [...s.byBatchSize]
        .sort(([a], [b]) => a - b)
        .map(([batchSize, b]) => ({
          batch_size: batchSize,
          compute_input: d(b.executions, b.inputUs),
          compute_infer: d(b.executions, b.inferUs),
          compute_output: d(b.executions, b.outputUs),
        })),
    }
  }

  /** Updates the busy ratios: executor µs gained since the last sample over the wall µs in between. */
  sampleBusy(nowMs = performance.now()): void {
    const wallUs = this.lastBusyAtMs === undefined ? 0 : (nowMs - this.lastBusyAtMs) * 1000
    if (this.lastBusyAtMs !== undefined && wallUs <= 0) return
    const next = new Map<string, number>()
    for (const e of this.opts.executors()) {
      const key = `${e.model}\u0000${e.version}`
      next.set(key, e.busyUs)
      const before = this.lastBusy.get(key)
      // a model loaded since the last sample has no baseline yet: its first ratio comes next time
      if (before === undefined || wallUs <= 0) continue
      this.busy.set(key, {
        labels: labelsOf(e.model, e.version),
        ratio: Math.min(1, Math.max(0, (e.busyUs - before) / wallUs)),
      })
    }
    for (const key of this.busy.keys()) if (!next.has(key)) this.busy.delete(key)
    this.lastBusy = next
    this.lastBusyAtMs = nowMs
  }

  stop(): void {
    clearInterval(this.timer)
  }

  // the span processor (engine/span-processor.ts): /metrics and the span stream count the same requests
  onEnd(span: Span): void {
    this.observe(span)
  }
  async forceFlush(): Promise<void> {}
  async shutdown(): Promise<void> {
    this.stop()
  }

  /** Prometheus text exposition (format 0.0.4) of everything recorded; ends with a newline. */
  render(): string {
    return renderFamilies(this.families())
  }

  /** Everything recorded as metric families (core/metrics.ts renders them). */
  families(): MetricFamily[] {
    const all = [...this.stats.values()].flatMap((versions) => [...versions.values()])
    const families: MetricFamily[] = []
    const counter = (name: string, help: string, value: (s: ModelStats) => number) => {
      families.push({
        name,
        type: 'counter',
        help,
        samples: all.map((s) => ({ name, labels: s.labels, value: value(s) })),
      })
    }
    const histogram = (name: string, help: string, pick: (s: ModelStats) => Histogram) => {
      const samples: Sample[] = []
      for (const s of all) {
        const h = pick(s)
        let cumulative = 0
        h.bounds.forEach((le, i) => {
          cumulative += h.counts[i]!
          samples.push({ name: `${name}_bucket`, labels: { ...s.labels, le: String(le) }, value: cumulative })
        })
        samples.push({ name: `${name}_bucket`, labels: { ...s.labels, le: '+Inf' }, value: h.count })
        samples.push({ name: `${name}_sum`, labels: s.labels, value: h.sum })
        samples.push({ name: `${name}_count`, labels: s.labels, value: h.count })
      }
      families.push({ name, type: 'histogram', help, samples })
    }
    counter('nv_inference_request_success', 'Number of successful inference requests', (s) => s.success)
    counter('nv_inference_request_failure', 'Number of failed inference requests', (s) => s.failure)
    counter(
      'nv_inference_count',
      'Number of inferences performed (rows; cache hits excluded)',
      (s) => s.inferenceCount,
    )
    counter('nv_inference_exec_count', 'Number of model executions performed (batches)', (s) => s.execCount)
    counter(
      'nv_inference_request_duration_us',
      'Cumulative inference request duration of successful requests in microseconds',
      (s) => s.requestUs,
    )
    counter(
      'nv_inference_queue_duration_us',
      'Cumulative inference queuing duration of successful requests in microseconds',
      (s) => s.queueUs,
    )
    counter(
      'nv_inference_compute_input_duration_us',
      'Cumulative compute input duration (preprocess) of successful requests in microseconds',
      (s) => s.inputUs,
    )
    counter(
      'nv_inference_compute_infer_duration_us',
      'Cumulative compute inference duration of successful requests in microseconds',
      (s) => s.computeUs,
    )
    counter(
      'nv_inference_compute_output_duration_us',
      'Cumulative compute output duration (postprocess) of successful requests in microseconds',
      (s) => s.outputUs,
    )
    histogram(
      'breakid_request_duration_us',
      'Request duration of successful requests, microseconds',
      (s) => s.request,
    )
    histogram('breakid_queue_duration_us', 'Queue wait of successful requests, microseconds', (s) => s.queue)
    histogram(
      'breakid_compute_duration_us',
      'Compute time of successful requests, microseconds',
      (s) => s.compute,
    )
    histogram('breakid_batch_size', 'Rows per model execution', (s) => s.batchSize)
    families.push({
      name: 'breakid_executor_busy_ratio',
      type: 'gauge',
      help: 'Time inside model execution / wall time over the last sampling interval',
      samples: [...this.busy.values()].map((b) => ({
        name: 'breakid_executor_busy_ratio',
        labels: b.labels,
        value: b.ratio,
      })),
    })
    return families
  }
}
