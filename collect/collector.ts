/**
 * `breakid collect` as a component: the OTLP/HTTP receiver, the trace assembler, the Prometheus
 * scraper and the sink to the bus, started and stopped together.
 *
 * Data paths:
 *   POST /v1/traces  → flatten (reject malformed spans) → assembler → spans → sink → breakid.spans.v1
 *   POST /v1/metrics → points → hardware mapper → samples → sink → breakid.hw.v1
 *   --scrape URLs    → parser → points → hardware mapper → samples → sink → breakid.hw.v1
 *   every `sweepIntervalMs` (1 s): traces whose wait ran out → spans → sink
 *
 * stop() closes the HTTP server (answering the requests in progress), stops the scraper, closes every
 * open trace (emitted with what it has, counted) and sends what that produced before the producer
 * stops. Counters (`counters`, also at GET /metrics on the receiver's port, prefix breakid_collect):
 * otlp_requests{signal,encoding,status}, spans_received, spans_rejected{reason}, spans_ignored,
 * spans_duplicate, late_parts, assembled{kind}, incomplete{kind,missing}, evicted,
 * closed_open_traces{reason}, dropped{reason}, metric_points_received, metric_points_rejected,
 * scrapes{result,format}, scrape_bad_lines, hw_samples{source}, records_sent{topic},
 * send_retries{topic}, sink_refused.
 */
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { HwSample, Span } from '../contract/records.ts'
import { Counters } from '../core/metrics.ts'
import type { Lifecycle, MessageProducer } from '../bus/transport.ts'
import { TraceAssembler } from './assembler.ts'
import { defaultSpanMapping, type SpanMappingConfig } from './generic/server-spans.ts'
import { OtlpMetricsConverter } from './otlp/metrics.ts'
import { flattenTraces } from './otlp/spans.ts'
import { HardwareMapper } from './prometheus/hardware.ts'
import { type ScrapeTarget, Scraper } from './prometheus/scraper.ts'
import { buildOtlpApp } from './receiver.ts'
import { RecordSink } from './sink.ts'

export interface CollectorOptions {
  producer: MessageProducer
  logger: Logger
  /** fleet for telemetry that names none. Default "default". */
  fleet?: string
  /** OTLP/HTTP port; 0 picks a free one; null runs no receiver. Default 4318. */
  otlpPort?: number | null
  /** listen address. Default 127.0.0.1 (give 0.0.0.0 to take telemetry from other hosts). */
  otlpHost?: string
  bodyLimitBytes?: number
  scrape?: readonly ScrapeTarget[]
  scrapeIntervalMs?: number
  /** Triton models whose counters count in hardware samples (default all) */
  tritonModels?: readonly string[]
  /** Triton models that run on the accelerator: executor_busy and queue_depth (default all) */
  acceleratorModels?: readonly string[]
  spanMapping?: SpanMappingConfig
  /** assembler: wait for late parts (ms, default 30 000) and most parts held (default 200 000) */
  maxWaitMs?: number
  maxPendingSpans?: number
  sweepIntervalMs?: number
  recordsPerMessage?: number
  maxPendingRecords?: number
  now?: () => number
  fetch?: typeof fetch
}

export class Collector implements Lifecycle {
  readonly counters = new Counters('breakid_collect')
  readonly assembler: TraceAssembler
  readonly scraper: Scraper
  private readonly sink: RecordSink
  private readonly otlpMetrics: OtlpMetricsConverter
  private readonly otlpHardware: HardwareMapper
  private readonly fleet: string
  private readonly now: () => number
  private app: FastifyInstance | undefined
  private sweeper: NodeJS.Timeout | undefined
  private background = new Set<Promise<void>>()
  private started = false
  private stopped = false

  constructor(private readonly opts: CollectorOptions) {
    this.fleet = opts.fleet ?? 'default'
    this.now = opts.now ?? Date.now
    this.sink = new RecordSink({
      producer: opts.producer,
      counters: this.counters,
      logger: opts.logger,
      recordsPerMessage: opts.recordsPerMessage,
      maxPendingRecords: opts.maxPendingRecords,
    })
    this.assembler = new TraceAssembler({
      mapping: opts.spanMapping ?? defaultSpanMapping(),
      fleet: this.fleet,
      counters: this.counters,
      now: this.now,
      maxWaitMs: opts.maxWaitMs,
      maxSpans: opts.maxPendingSpans,
    })
    this.otlpMetrics = new OtlpMetricsConverter(this.fleet)
    this.otlpHardware = new HardwareMapper({
      models: opts.tritonModels,
      acceleratorModels: opts.acceleratorModels,
    })
    this.scraper = new Scraper({
      targets: opts.scrape ?? [],
      fleet: this.fleet,
      counters: this.counters,
      logger: opts.logger.child({ c: 'scrape' }),
      intervalMs: opts.scrapeIntervalMs,
      mapper: new HardwareMapper({ models: opts.tritonModels, acceleratorModels: opts.acceleratorModels }),
      now: this.now,
      fetch: opts.fetch,
      onSamples: (samples) => this.sink.send([], samples),
    })
  }

  /** The receiver's address once started (`http://host:port`), if it runs. */
  get otlpUrl(): string | undefined {
    const addr = this.app?.server.address() as AddressInfo | null | undefined
    if (!addr) return undefined
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
    return `http://${host}:${addr.port}`
  }

  async start(): Promise<void> {
    if (this.started) return
    this.started = true
    await this.sink.start()
    if (this.opts.otlpPort !== null) {
      this.app = buildOtlpApp({
        counters: this.counters,
        logger: this.opts.logger.child({ c: 'otlp' }),
        bodyLimitBytes: this.opts.bodyLimitBytes,
        handlers: {
          traces: (request, peer) => this.onTraces(request, peer),
          metrics: (request, peer) => this.onMetrics(request, peer),
        },
      })
      await this.app.listen({ port: this.opts.otlpPort ?? 4318, host: this.opts.otlpHost ?? '127.0.0.1' })
    }
    await this.scraper.start()
    this.sweeper = setInterval(
      () => this.sendInBackground(this.assembler.sweep()),
      this.opts.sweepIntervalMs ?? 1000,
    )
    this.sweeper.unref()
  }

  /** Closes open traces whose wait is over now (the timer does this every sweepIntervalMs). */
  async sweep(): Promise<void> {
    await this.sendSpans(this.assembler.sweep())
  }

  private async onTraces(
    request: Parameters<typeof flattenTraces>[0],
    peer: string,
  ): Promise<{ rejected: number; message: string } | undefined> {
    const flat = flattenTraces(request, peer)
    this.sink.admit(flat.spans.length)
    const c = this.counters
    c.inc('spans_received', flat.spans.length + flat.rejectedCount)
    for (const [reason, n] of Object.entries(flat.rejected)) c.inc('spans_rejected', n, { reason })
    await this.sendSpans(this.assembler.add(flat.spans), true)
    if (flat.rejectedCount === 0) return undefined
    return {
      rejected: flat.rejectedCount,
      message: `rejected ${Object.entries(flat.rejected)
        .map(([r, n]) => `${n} (${r.replaceAll('_', ' ')})`)
        .join(
          ', ',
        )}: trace ids must be 16 non-zero bytes, span ids 8, and a span must not end before it starts`,
    }
  }

  private async onMetrics(
    request: Parameters<OtlpMetricsConverter['flatten']>[0],
    peer: string,
  ): Promise<{ rejected: number; message: string } | undefined> {
    const flat = this.otlpMetrics.flatten(request, peer, this.now())
    this.sink.admit(flat.batches.length)
    this.counters.inc('metric_points_received', flat.points)
    if (flat.rejected > 0) this.counters.inc('metric_points_rejected', flat.rejected)
    const samples: HwSample[] = []
    for (const b of flat.batches) {
      const sample = this.otlpHardware.observe(b.identity, b.points, b.atMs)
      if (sample) samples.push(sample)
    }
    if (samples.length > 0) {
      this.counters.inc('hw_samples', samples.length, { source: 'otlp' })
      await this.sink.send([], samples)
    }
    if (flat.rejected === 0) return undefined
    return {
      rejected: flat.rejected,
      message: `rejected ${flat.rejected} number data points without a value`,
    }
  }

  /** Sends spans; on the request path errors go to the caller (503), elsewhere they are counted. */
  private async sendSpans(spans: Span[], throwErrors = false): Promise<void> {
    if (spans.length === 0) return
    try {
      await this.sink.send(spans, [])
    } catch (err) {
      // the request's parts are consumed: a retried export would find them late, so count the loss
      this.counters.inc('dropped', spans.length, { reason: 'send_failed' })
      if (throwErrors) throw err
      this.opts.logger.error({ err, spans: spans.length }, 'collect: spans could not be sent; dropped')
    }
  }

  private sendInBackground(spans: Span[]): void {
    if (spans.length === 0) return
    const p = this.sendSpans(spans).finally(() => this.background.delete(p))
    this.background.add(p)
  }

  /** Drains: answers requests in progress, closes open traces, sends what remains. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopped || !this.started) return
    this.stopped = true
    if (this.sweeper) clearInterval(this.sweeper)
    await this.app?.close()
    await this.scraper.stop()
    await this.sendSpans(this.assembler.flush())
    await Promise.all(this.background)
    await this.sink.stop()
  }
}
