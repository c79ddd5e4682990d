/**
 * Where collected records leave: the bus's producer, on the engine's own topics (`breakid.spans.v1`,
 * `breakid.hw.v1`) in the contract's encoding — Avro single-object records, several records of one
 * instance per message in the contract's container (keyed by instance, like the engine's emitter) —
 * so ingest, detectors and queries cannot tell foreign telemetry from the engine's.
 *
 * `send` resolves once the producer has the records (Kafka acknowledged them, or the embedded bus
 * appended them), so the OTLP receiver answers 200 only for data that is on the bus. Transient send
 * failures are retried with backoff (a few attempts, a 10 s deadline), then the error goes to the
 * caller.
 *
 * Bounded: at most `maxPendingRecords` (default 50 000) records are in flight at once. The receiver
 * calls `admit(n)` before it consumes a request; when the bound is reached it throws SinkFullError
 * (retriable) and the receiver answers 503 with Retry-After, which OTLP exporters honour, instead of
 * queueing without limit. Admission happens before the assembler sees a request's spans, so a refused
 * export loses nothing: its retry is processed whole. `send` itself never refuses.
 */
import type { Logger } from 'pino'
import type { RecordCodec } from '../contract/codec.ts'
import { packContainer } from '../contract/container.ts'
import type { HwSample, Span } from '../contract/records.ts'
import { codecs, TOPICS } from '../contract/topics.ts'
import { BreakidError } from '../core/errors.ts'
import type { Counters } from '../core/metrics.ts'
import { retry } from '../core/retry.ts'
import type { MessageProducer, OutgoingMessage } from '../bus/transport.ts'

export class SinkFullError extends BreakidError {
  constructor(pending: number, limit: number) {
    super(`collector busy: ${pending} records in flight (limit ${limit})`, {
      code: 'BREAKID_COLLECT_BUSY',
    })
  }
}

export interface RecordSinkOptions {
  producer: MessageProducer
  counters: Counters
  logger: Logger
  /** most records per Kafka message (contract container). Default 64, as the engine. */
  recordsPerMessage?: number
  maxPendingRecords?: number
}

export class RecordSink {
  private inFlight = 0
  private readonly perMessage: number
  private readonly maxPending: number

  constructor(private readonly opts: RecordSinkOptions) {
    this.perMessage = Math.max(1, Math.floor(opts.recordsPerMessage ?? 64))
    this.maxPending = opts.maxPendingRecords ?? 50_000
  }

  get pending(): number {
    return this.inFlight
  }

  start(): Promise<void> {
    return this.opts.producer.start()
  }

  stop(): Promise<void> {
    return this.opts.producer.stop()
  }

  /** Throws SinkFullError when `n` more records would exceed the bound (one request always fits). */
  admit(n: number): void {
    if (this.inFlight > 0 && this.inFlight + n > this.maxPending) {
      this.opts.counters.inc('sink_refused', n)
      throw new SinkFullError(this.inFlight, this.maxPending)
    }
  }

  async send(spans: readonly Span[], hw: readonly HwSample[]): Promise<void> {
    const n = spans.length + hw.length
    if (n === 0) return
    this.inFlight += n
    try {
      await Promise.all([
        this.sendAll(TOPICS.spans, codecs.span, spans),
        this.sendAll(TOPICS.hw, codecs.hw, hw),
      ])
    } finally {
      this.inFlight -= n
    }
  }

  private async sendAll<T extends { instance: string }>(
    topic: string,
    codec: RecordCodec<T>,
    records: readonly T[],
  ): Promise<void> {
    if (records.length === 0) return
    const byInstance = new Map<string, Buffer[]>()
    for (const r of records) {
      let encoded: Buffer
      try {
        encoded = codec.encode(r)
      } catch (err) {
        // a mapping bug, not bad input: counted and logged, the other records go on
        this.opts.counters.inc('dropped', 1, { reason: 'invalid_record' })
        this.opts.logger.error({ err, topic }, 'collected record does not match its schema; dropped')
        continue
      }
      const group = byInstance.get(r.instance)
      if (group) group.push(encoded)
      else byInstance.set(r.instance, [encoded])
    }
    const messages: OutgoingMessage[] = []
    const counts: number[] = []
    for (const [key, encoded] of byInstance) {
      for (let i = 0; i < encoded.length; i += this.perMessage) {
        const chunk = encoded.slice(i, i + this.perMessage)
        messages.push({ key, value: chunk.length === 1 ? chunk[0]! : packContainer(chunk) })
        counts.push(chunk.length)
      }
    }
    if (messages.length === 0) return
    await retry(() => this.opts.producer.send(topic, messages), {
      retries: 4,
      initialDelayMs: 100,
      maxDelayMs: 2_000,
      deadlineMs: 10_000,
      onRetry: (err) => {
        this.opts.counters.inc('send_retries', 1, { topic })
        this.opts.logger.warn({ err, topic }, 'collect: send failed; retrying')
      },
    })
    this.opts.counters.inc(
      'records_sent',
      counts.reduce((a, b) => a + b, 0),
      { topic },
    )
  }
}
