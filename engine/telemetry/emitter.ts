/**
 * Batches telemetry records to the transport (Kafka or the embedded bus) off the request path.
 *
 * The request path only appends the record object to a buffer (`emitSpan`: an array push and a
 * counter, no encoding, no allocation beyond the array slot). Encoding happens in the flush, every
 * `flushIntervalMs` or as soon as `maxBatch` records wait — started on a later turn of the event loop
 * (setImmediate), never inside the request that filled the batch. A flush encodes its batch into one
 * buffer with the contract's MessageWriter (contract/container.ts): each instance's records in
 * containers of up to `recordsPerMessage` per Kafka message, single-object records where a message
 * holds one. It hands the messages to the producer in sends of at most `maxSend` messages (a Kafka
 * producer can run on its own thread: kafka-worker.ts). A producer that lends memory
 * (MessageMemoryLender: the producer thread's shared buffers) gets its messages written there — no
 * copy to reach its thread — and each buffer back once every send of the batch settled, for the
 * next batch (a steady stream allocates no buffers).
 *
 * Encoding stays on the event loop, in the flush: handing the thread the span objects instead
 * (structured clone) costs the loop twice what encoding them does (1.55 against 0.78 µs per span,
 * measured on 400-span batches), and the thread would then encode them too.
 *
 * Records are encoded when they are flushed, so a record must not be changed after it was emitted
 * (the engine emits a span after its last stage is recorded).
 *
 * What is lost is counted by reason (`drops`, on the engine's /metrics) and logged, the first of each
 * reason per minute:
 * - `buffer_full`: at most `maxBuffered` records wait (plus the batch being sent); when full, the
 *   OLDEST record is dropped — telemetry must never block or slow inference (Prometheus' notifier
 *   does the same).
 * - `schema_mismatch`: a record its schema rejects is left out of its batch; the others go out.
 * - the broker's reason (`message_too_large`, …): a send the broker refuses for what it holds
 *   (MessageRefusedError, or any non-retriable error) is split in halves, then a refused container
 *   into its records, until the refused record stands alone; it goes to the dead letters (`deadLetters`,
 *   the last `deadLetterCapacity`, with the reason) and every record behind it flows on.
 *
 * A send that fails in a way that may heal (a broker that is down) is retried with backoff, each
 * failure counted by reason (`sendFailuresByReason`); a batch that still fails goes back to the front
 * of its buffer for the next flush, and the other topic's batch is still tried.
 */
import type { Logger } from 'pino'
import type { RecordCodec } from '../../contract/codec.ts'
import { MessageWriter, packContainer, recordsOf } from '../../contract/container.ts'
import type { HwSample, Span } from '../../contract/records.ts'
import { codecs, TOPICS } from '../../contract/topics.ts'
import { type Clock, systemClock } from '../../core/clock.ts'
import { BreakidError, isRetriable } from '../../core/errors.ts'
import { FirstPerInterval } from '../../core/log-limiter.ts'
import type { SpanProcessor } from '../span-processor.ts'
import { type RetryOptions, retry } from '../../core/retry.ts'
import type { MessageMemoryLender } from '../../bus/kafka-worker.ts'
import {
  type Lifecycle,
  type MessageProducer,
  MessageRefusedError,
  type OutgoingMessage,
} from '../../bus/transport.ts'

export interface EmitterOptions {
  producer: MessageProducer
  logger: Logger
  flushIntervalMs?: number
  /** records per flush batch (and the buffer size that starts a flush early). Default 1000. */
  maxBatch?: number
  /** most records waiting; beyond it the oldest is dropped. Default 100 000. */
  maxBuffered?: number
  /**
   * most messages per producer send. Default `maxBatch`: kafkajs costs more CPU per message in small
   * sends (measured 36–43 µs per message in sends of 250 against 23–28 µs in sends of 1000).
   */
  maxSend?: number
  /**
   * most records per Kafka message (contract/container.ts); 1 sends plain single-object
   * messages, one per record. Default 64: kafkajs and the broker cost per message, so containers
   * cut the Kafka path's CPU per record to 0.38× (bench/results/telemetry-producer-containers.json).
   */
  recordsPerMessage?: number
  /** backoff of a failed send. Default 8 retries (3 while stopping), 100 ms doubling to 2 s. */
  retry?: Pick<RetryOptions, 'retries' | 'initialDelayMs' | 'maxDelayMs'>
  /** dead letters kept for inspection (the oldest goes first). Default 100. */
  deadLetterCapacity?: number
  /** the clock of the once-a-minute log lines; tests step a manual one */
  clock?: Clock
}

/** A record the emitter gave up on because the broker refused it. */
export interface DeadLetter {
  topic: string
  /** the message key: the record's instance */
  key: string
  /** encoded size of the record, bytes */
  bytes: number
  /** why, as the drop is counted (`message_too_large`, …) */
  reason: string
  error: string
  /** a span's request id (first 64 characters), for finding it elsewhere */
  requestId?: string
  atMs: number
}

/** A record waiting for a flush; `instance` is the message key on both topics. */
type Pending = { instance: string; request_id?: string }

interface Stream<T extends Pending> {
  topic: string
  codec: RecordCodec<T>
  buffer: T[]
  /** running estimate of encoded bytes per record, to size a batch's buffer in one allocation */
  bytesPerRecord: number
}

/** A message of a batch: its bytes and how many of the batch's records (in order) it holds. */
interface Message extends OutgoingMessage {
  key: string
  records: number
}

/** Reason labels are bounded: at most this many distinct ones, then `other`. */
const MAX_REASONS = 32

export class TelemetryEmitter implements Lifecycle, SpanProcessor {
  sent = 0
  /** records dropped oldest-first because the buffer was full */
  dropped = 0
  /** failed send attempts (each retry of a send that then succeeded counts too) */
  sendFailures = 0
  /** records that could not be encoded (not valid against the schema): dropped, never sent */
  invalid = 0
  /** records the broker refused (dead-lettered) */
  refused = 0
  private readonly dropCounts = new Map<string, number>()
  private readonly failureCounts = new Map<string, number>()
  private readonly letters: DeadLetter[] = []
  private readonly spans: Stream<Span> = {
    topic: TOPICS.spans,
    codec: codecs.span,
    buffer: [],
    bytesPerRecord: 256,
  }
  private readonly hw: Stream<HwSample> = {
    topic: TOPICS.hw,
    codec: codecs.hw,
    buffer: [],
    bytesPerRecord: 256,
  }
  private readonly streams: Stream<Pending>[] = [
    this.spans as unknown as Stream<Pending>,
    this.hw as unknown as Stream<Pending>,
  ]
  private buffered = 0
  private timer: NodeJS.Timeout | undefined
  private flushing: Promise<void> | undefined
  private flushScheduled = false
  private stopped = false
  private readonly flushIntervalMs: number
  private readonly maxBatch: number
  private readonly maxBuffered: number
  private readonly maxSend: number
  private readonly recordsPerMessage: number
  private readonly deadLetterCapacity: number
  private readonly clock: Clock
  private readonly logLimiter: FirstPerInterval
  /** the producer's memory for message values, when it lends it (the producer thread's does) */
  private readonly lender: MessageMemoryLender | undefined

  constructor(private readonly opts: EmitterOptions) {
    this.flushIntervalMs = opts.flushIntervalMs ?? 100
    this.maxBatch = opts.maxBatch ?? 1_000
    this.maxBuffered = opts.maxBuffered ?? 100_000
    this.maxSend = opts.maxSend ?? this.maxBatch
    this.recordsPerMessage = Math.max(1, Math.floor(opts.recordsPerMessage ?? 64))
    this.deadLetterCapacity = opts.deadLetterCapacity ?? 100
    this.clock = opts.clock ?? systemClock
    this.logLimiter = new FirstPerInterval(this.clock)
    const p = opts.producer as Partial<MessageMemoryLender>
    this.lender =
      typeof p.borrow === 'function' && typeof p.giveBack === 'function'
        ? (p as MessageMemoryLender)
        : undefined
  }

  async start(): Promise<void> {
    await this.opts.producer.start()
    // a failed flush was logged in flushAll and its records kept; the timer tries again
    this.timer = setInterval(() => void this.flush().catch(() => {}), this.flushIntervalMs)
    this.timer.unref()
  }

  /** The request path: buffers the span (encoded at the next flush; do not change it afterwards). */
  emitSpan(span: Span): void {
    this.spans.buffer.push(span)
    this.pushed()
  }

  emitHwSample(sample: HwSample): void {
    this.hw.buffer.push(sample)
    this.pushed()
  }

  // the span processor (engine/span-processor.ts): the emitter is where spans and samples leave as Avro
  readonly processorName = 'avro'
  onEnd(span: Span): void {
    this.emitSpan(span)
  }
  onHwSample(sample: HwSample): void {
    this.emitHwSample(sample)
  }
  forceFlush(): Promise<void> {
    return this.flush()
  }
  /** `stop()`, once: a second call waits for the first */
  shutdown(): Promise<void> {
    this.shutdownPromise ??= this.stop()
    return this.shutdownPromise
  }
  private shutdownPromise: Promise<void> | undefined

  /** records waiting for a flush */
  get pending(): number {
    return this.buffered
  }

  /** records lost, by reason: `buffer_full`, `schema_mismatch`, or the broker's (`message_too_large`) */
  get drops(): ReadonlyMap<string, number> {
    return this.dropCounts
  }

  /** records lost for any reason (the sum of `drops`) */
  get lost(): number {
    let n = 0
    for (const v of this.dropCounts.values()) n += v
    return n
  }

  /** failed send attempts, by reason (the broker's error type, or the error's name) */
  get sendFailuresByReason(): ReadonlyMap<string, number> {
    return this.failureCounts
  }

  /** the last `deadLetterCapacity` records the broker refused, oldest first */
  get deadLetters(): readonly DeadLetter[] {
    return this.letters
  }

  private pushed(): void {
    if (++this.buffered > this.maxBuffered) this.trim()
    if (this.buffered >= this.maxBatch) this.scheduleFlush()
  }

  /** Drops the oldest records of the fuller buffer until the bound holds. */
  private trim(): void {
    while (this.buffered > this.maxBuffered) {
      const fuller = this.spans.buffer.length >= this.hw.buffer.length ? this.spans : this.hw
      fuller.buffer.shift()
      this.buffered--
      this.dropped++
      this.drop(fuller.topic, 'buffer_full', 'telemetry buffer full; dropping the oldest records')
    }
  }

  /** Counts one lost record and logs the first of its reason each minute. */
  private drop(topic: string, reason: string, message: string, fields: Record<string, unknown> = {}): void {
    const label = boundedLabel(this.dropCounts, reason)
    this.dropCounts.set(label, (this.dropCounts.get(label) ?? 0) + 1)
    const unlogged = this.logLimiter.admit(`drop:${label}`)
    if (unlogged !== undefined) {
      this.opts.logger.error({ ...fields, topic, reason: label, unloggedSinceLast: unlogged }, message)
    }
  }

  private sendFailed(topic: string, err: unknown, willRetry: boolean): void {
    this.sendFailures++
    const label = boundedLabel(this.failureCounts, failureReason(err))
    this.failureCounts.set(label, (this.failureCounts.get(label) ?? 0) + 1)
    const unlogged = this.logLimiter.admit(`send:${label}`)
    if (unlogged !== undefined) {
      this.opts.logger.warn(
        { err, topic, reason: label, unloggedSinceLast: unlogged },
        willRetry
          ? 'telemetry send failed; retrying'
          : 'telemetry send refused; isolating the refused record',
      )
    }
  }

  /** A flush on a later turn of the event loop: never inside the request that filled the batch. */
  private scheduleFlush(): void {
    if (this.flushScheduled || this.flushing) return
    this.flushScheduled = true
    setImmediate(() => {
      this.flushScheduled = false
      void this.flush().catch(() => {})
    })
  }

  /** Sends everything buffered now; concurrent calls share one flush. */
  flush(): Promise<void> {
    if (!this.flushing) {
      this.flushing = this.flushAll().finally(() => {
        this.flushing = undefined
        // records that arrived while the flush was sending: a full batch goes out now
        if (this.buffered >= this.maxBatch && !this.stopped) this.scheduleFlush()
      })
    }
    return this.flushing
  }

  /** Each topic on its own: a topic whose sends fail does not hold back the other's records. */
  private async flushAll(): Promise<void> {
    let failure: unknown
    for (const stream of this.streams) {
      try {
        await this.flushStream(stream)
      } catch (err) {
        failure ??= err
      }
    }
    if (failure !== undefined) throw failure
  }

  private async flushStream(stream: Stream<Pending>): Promise<void> {
    const buf = stream.buffer
    while (buf.length > 0) {
      // taken out of the buffer while in flight, so drop-oldest cannot touch a batch being sent
      const batch = buf.splice(0, this.maxBatch)
      this.buffered -= batch.length
      const { messages, memory } = this.encode(stream, batch)
      try {
        for (let i = 0; i < messages.length; i += this.maxSend) {
          const part = messages.length <= this.maxSend ? messages : messages.slice(i, i + this.maxSend)
          // each delivered or dead-lettered record leaves the front of `batch`: a batch that fails
          // half-way keeps only its unsent records
          await this.deliver(stream, part, batch)
        }
      } catch (err) {
        buf.unshift(...batch)
        this.buffered += batch.length
        this.trim()
        this.opts.logger.error(
          { err, topic: stream.topic, records: batch.length },
          'telemetry send failed; keeping records',
        )
        throw err
      } finally {
        // every send of these bytes settled: the lent memory serves the next batch
        if (this.lender) for (const b of memory) this.lender.giveBack(b)
      }
    }
  }

  /**
   * Sends `part` (the next messages of `batch`, in order), retrying what may heal. A refusal splits
   * the send in halves, a refused container into its records, until the refused record stands alone:
   * it is dead-lettered, and the rest are sent.
   */
  private async deliver(stream: Stream<Pending>, part: Message[], batch: Pending[]): Promise<void> {
    const retries = this.opts.retry?.retries ?? 8
    try {
      await retry(() => this.opts.producer.send(stream.topic, part), {
        retries: this.stopped ? Math.min(3, retries) : retries,
        initialDelayMs: this.opts.retry?.initialDelayMs ?? 100,
        maxDelayMs: this.opts.retry?.maxDelayMs ?? 2_000,
        onRetry: (err) => this.sendFailed(stream.topic, err, true),
      })
    } catch (err) {
      if (isRetriable(err)) {
        this.sendFailed(stream.topic, err, false)
        throw err
      }
      this.sendFailed(stream.topic, err, false)
      if (part.length > 1) {
        const half = Math.ceil(part.length / 2)
        await this.deliver(stream, part.slice(0, half), batch)
        await this.deliver(stream, part.slice(half), batch)
        return
      }
      const message = part[0]!
      if (message.records > 1) {
        for (const half of splitMessage(message)) await this.deliver(stream, [half], batch)
        return
      }
      this.deadLetter(stream, batch.shift()!, message, err)
      return
    }
    let records = 0
    for (const m of part) records += m.records
    this.sent += records
    batch.splice(0, records)
  }

  private deadLetter(stream: Stream<Pending>, record: Pending, message: Message, err: unknown): void {
    this.refused++
    const reason =
      err instanceof MessageRefusedError
        ? err.reason
        : err instanceof BreakidError
          ? err.code.toLowerCase()
          : 'refused'
    const letter: DeadLetter = {
      topic: stream.topic,
      key: message.key,
      bytes: message.value.length,
      reason,
      error: (err as Error).message,
      requestId: typeof record.request_id === 'string' ? record.request_id.slice(0, 64) : undefined,
      atMs: this.clock.now(),
    }
    this.letters.push(letter)
    if (this.letters.length > this.deadLetterCapacity) this.letters.shift()
    this.drop(stream.topic, reason, 'the broker refused a telemetry record; dead-lettered, the rest go on', {
      key: letter.key,
      bytes: letter.bytes,
      requestId: letter.requestId,
      error: letter.error,
    })
  }

  /**
   * The batch as messages, all written into one buffer (MessageWriter): the records grouped by
   * instance (the message key), each group in order and in containers of at most `recordsPerMessage`
   * (a group of one, or `recordsPerMessage: 1`, is a plain single-object message). A record the
   * schema rejects is left out; `batch` is rewritten to the records sent, in message order, so the
   * messages hold its records front to back.
   */
  private encode(stream: Stream<Pending>, batch: Pending[]): { messages: Message[]; memory: Buffer[] } {
    const groups = new Map<string, Pending[]>()
    for (const record of batch) {
      const group = groups.get(record.instance)
      if (group) group.push(record)
      else groups.set(record.instance, [record])
    }
    const messages: Message[] = []
    const perMessage = this.recordsPerMessage
    const lender = this.lender
    const writer = new MessageWriter(
      stream.codec,
      batch.length * stream.bytesPerRecord * 1.25 + 4096,
      lender ? (bytes) => lender.borrow(bytes) : undefined,
    )
    let kept = 0
    for (const [key, records] of groups) {
      for (let first = 0; first < records.length; first += perMessage) {
        const chunk = records.length - first
        writer.begin(perMessage > 1 && chunk > 1)
        for (let i = first; i < first + Math.min(chunk, perMessage); i++) {
          const record = records[i]!
          try {
            writer.add(record)
          } catch (err) {
            this.invalid++
            this.drop(
              stream.topic,
              'schema_mismatch',
              'telemetry record does not match its schema; dropped',
              {
                err,
                instance: record.instance,
              },
            )
            continue
          }
          batch[kept++] = record
        }
        const written = writer.end()
        if (written) messages.push({ key, value: written.value, records: written.records })
      }
    }
    batch.length = kept
    if (kept > 0) stream.bytesPerRecord = Math.max(32, writer.recordBytes / kept)
    return { messages, memory: writer.buffers }
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

/** A refused container in two: its records' own bytes, re-framed (a half of one is a plain record). */
function splitMessage(message: Message): Message[] {
  const records = recordsOf(message.value)
  const half = Math.ceil(records.length / 2)
  return [records.slice(0, half), records.slice(half)].map((part) => ({
    key: message.key,
    value: part.length === 1 ? part[0]! : packContainer(part),
    records: part.length,
  }))
}

/** Why a send failed, as a metric label: the broker's reason or error type, else the error's name. */
function failureReason(err: unknown): string {
  if (err instanceof MessageRefusedError) return err.reason
  const type = (err as { type?: unknown } | undefined)?.type
  if (typeof type === 'string') return type.toLowerCase()
  if (err instanceof BreakidError) return err.code.toLowerCase()
  return err instanceof Error ? err.name : 'unknown'
}

/** `reason` as a Prometheus label value: safe characters, and at most MAX_REASONS distinct ones. */
function boundedLabel(seen: ReadonlyMap<string, number>, reason: string): string {
  const label = reason.replace(/[^A-Za-z0-9_.:-]/g, '_').slice(0, 64) || 'unknown'
  return seen.has(label) || seen.size < MAX_REASONS - 1 ? label : 'other'
}
