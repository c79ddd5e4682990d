/**
 * Batches telemetry records to the transport (Kafka or the embedded bus) off the request path.
 * Records are Avro-encoded on emit and flushed every `flushIntervalMs` or when `maxBatch` are waiting.
 *
 * Bounded: at most `maxBuffered` records wait (plus the one batch being sent). When full, the OLDEST
 * record is dropped and counted (`dropped`) — telemetry must never block or slow inference
 * (Prometheus' notifier does the same). A failed send is retried with backoff; a batch that still
 * fails goes back to the front of its buffer for the next flush.
 */
import type { Logger } from 'pino'
import type { HwSample, Span } from '../../ingest/contract/records.ts'
import { codecs, TOPICS } from '../../ingest/contract/topics.ts'
import { retry } from '../../ingest/retry.ts'
import type { Lifecycle, MessageProducer, OutgoingMessage } from '../../ingest/transport/transport.ts'

export interface EmitterOptions {
  producer: MessageProducer
  logger: Logger
  flushIntervalMs?: number
  maxBatch?: number
  maxBuffered?: number
}

export class TelemetryEmitter implements Lifecycle {
  sent = 0
  dropped = 0
  sendFailures = 0
  private buffers = new Map<string, OutgoingMessage[]>([
    [TOPICS.spans, []],
    [TOPICS.hw, []],
  ])
  private buffered = 0
  private timer: NodeJS.Timeout | undefined
  private flushing: Promise<void> | undefined
  private stopped = false
  private readonly flushIntervalMs: number
  private readonly maxBatch: number
  private readonly maxBuffered: number

  constructor(private readonly opts: EmitterOptions) {
    this.flushIntervalMs = opts.flushIntervalMs ?? 100
    this.maxBatch = opts.maxBatch ?? 1_000
    this.maxBuffered = opts.maxBuffered ?? 100_000
  }

  async start(): Promise<void> {
    await this.opts.producer.start()
    // a failed flush was logged in flushAll and its records kept; the timer tries again
    this.timer = setInterval(() => void this.flush().catch(() => {}), this.flushIntervalMs)
    this.timer.unref()
  }

  emitSpan(span: Span): void {
    this.push(TOPICS.spans, { key: span.instance, value: codecs.span.encode(span) })
  }

  emitHwSample(sample: HwSample): void {
    this.push(TOPICS.hw, { key: sample.instance, value: codecs.hw.encode(sample) })
  }

  private push(topic: string, message: OutgoingMessage): void {
    this.buffers.get(topic)!.push(message)
    this.buffered++
    this.trim()
    if (this.buffered >= this.maxBatch) void this.flush().catch(() => {})
  }

  /** Drops the oldest records of the fuller buffer until the bound holds. */
  private trim(): void {
    while (this.buffered > this.maxBuffered) {
      const fuller = [...this.buffers.values()].sort((a, b) => b.length - a.length)[0]!
      fuller.shift()
      this.buffered--
      this.dropped++
    }
  }

  /** Sends everything buffered now; concurrent calls share one flush. */
  flush(): Promise<void> {
    if (!this.flushing) {
      this.flushing = this.flushAll().finally(() => {
        this.flushing = undefined
      })
    }
    return this.flushing
  }

  private async flushAll(): Promise<void> {
    for (const [topic, buf] of this.buffers) {
      while (buf.length > 0) {
        // taken out of the buffer while in flight, so drop-oldest cannot touch a batch being sent
        const batch = buf.splice(0, this.maxBatch)
        this.buffered -= batch.length
        try {
          await retry(() => this.opts.producer.send(topic, batch), {
            retries: this.stopped ? 3 : 8,
            initialDelayMs: 100,
            maxDelayMs: 2_000,
            onRetry: (err) => {
              this.sendFailures++
              this.opts.logger.warn({ err, topic }, 'telemetry send failed; retrying')
            },
          })
        } catch (err) {
          buf.unshift(...batch)
          this.buffered += batch.length
          this.trim()
          this.opts.logger.error(
            { err, topic, records: batch.length },
            'telemetry send failed; keeping records',
          )
          throw err
        }
        this.sent += batch.length
      }
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    if (this.timer) clearInterval(this.timer)
    await this.flush().catch(() => {})
    await this.flush().catch(() => {})
    await this.opts.producer.stop()
  }
}
