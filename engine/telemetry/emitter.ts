/**
 * Batches telemetry records to the transport (Kafka or the embedded bus) off the request path.
 *
 * The request path only appends the record object to a buffer (`emitSpan`: an array push and a
 * counter, no encoding, no allocation beyond the array slot). Encoding happens in the flush, every
 * `flushIntervalMs` or as soon as `maxBatch` records wait — started on a later turn of the event loop
 * (setImmediate), never inside the request that filled the batch. A flush Avro-encodes its batch into
 * one buffer (single-object encoding: `C3 01`, the writer schema's fingerprint, the body — the same
 * bytes `RecordCodec.encode` produces), packs each instance's records into containers of up to
 * `recordsPerMessage` per Kafka message (contract/container.ts) and hands the messages to the
 * producer in sends of at most `maxSend` messages (a Kafka producer can run on its own thread:
 * kafka-worker.ts). Encoding a batch into one buffer costs ~1.9 µs per span
 * against ~6 µs for `RecordCodec.encode` (which allocates, zero-fills and concatenates two Buffers
 * per record).
 *
 * Records are encoded when they are flushed, so a record must not be changed after it was emitted
 * (the engine emits a span after its last stage is recorded). A record that cannot be encoded is
 * dropped, counted (`invalid`) and logged; the others of its batch go out.
 *
 * Bounded: at most `maxBuffered` records wait (plus the one batch being sent). When full, the OLDEST
 * record is dropped and counted (`dropped`) — telemetry must never block or slow inference
 * (Prometheus' notifier does the same). A failed send is retried with backoff; a batch that still
 * fails goes back to the front of its buffer for the next flush.
 */
import type { Logger } from 'pino'
import type { RecordCodec } from '../../contract/codec.ts'
import type { HwSample, Span } from '../../contract/records.ts'
import { CONTAINER_HEADER_BYTES, CONTAINER_LENGTH_BYTES, CONTAINER_MAGIC } from '../../contract/container.ts'
import { codecs, TOPICS } from '../../contract/topics.ts'
import { retry } from '../../core/retry.ts'
import type { Lifecycle, MessageProducer, OutgoingMessage } from '../../bus/transport.ts'

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
   * cut the Kafka path's CPU per record to 0.38× (bench/results/telemetry-producer.json).
   */
  recordsPerMessage?: number
}

/** Avro single-object encoding header: the marker and the 8-byte fingerprint follow. */
const MAGIC_0 = 0xc3
const MAGIC_1 = 0x01
const HEADER_BYTES = 10

/** A record waiting for a flush; `instance` is the message key on both topics. */
type Pending = { instance: string }

interface Stream<T extends Pending> {
  topic: string
  codec: RecordCodec<T>
  buffer: T[]
  /** running estimate of encoded bytes per record, to size a batch's buffer in one allocation */
  bytesPerRecord: number
}

export class TelemetryEmitter implements Lifecycle {
  sent = 0
  dropped = 0
  sendFailures = 0
  /** records that could not be encoded (not valid against the schema): dropped, never sent */
  invalid = 0
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

  constructor(private readonly opts: EmitterOptions) {
    this.flushIntervalMs = opts.flushIntervalMs ?? 100
    this.maxBatch = opts.maxBatch ?? 1_000
    this.maxBuffered = opts.maxBuffered ?? 100_000
    this.maxSend = opts.maxSend ?? this.maxBatch
    this.recordsPerMessage = Math.max(1, Math.floor(opts.recordsPerMessage ?? 64))
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

  /** records waiting for a flush */
  get pending(): number {
    return this.buffered
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

  private async flushAll(): Promise<void> {
    for (const stream of this.streams) {
      const buf = stream.buffer
      while (buf.length > 0) {
        // taken out of the buffer while in flight, so drop-oldest cannot touch a batch being sent
        const batch = buf.splice(0, this.maxBatch)
        this.buffered -= batch.length
        const { messages, counts } = this.encode(stream, batch)
        try {
          for (let i = 0; i < messages.length; i += this.maxSend) {
            const part = messages.length <= this.maxSend ? messages : messages.slice(i, i + this.maxSend)
            let records = 0
            for (let k = i; k < i + part.length; k++) records += counts[k]!
            await retry(() => this.opts.producer.send(stream.topic, part), {
              retries: this.stopped ? 3 : 8,
              initialDelayMs: 100,
              maxDelayMs: 2_000,
              onRetry: (err) => {
                this.sendFailures++
                this.opts.logger.warn({ err, topic: stream.topic }, 'telemetry send failed; retrying')
              },
            })
            // counted per send: a batch that fails half-way keeps only its unsent records
            this.sent += records
            batch.splice(0, records)
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
        }
      }
    }
  }

  /**
   * The batch as messages, all encoded into one buffer (`subarray`s of it; a new buffer when it is
   * full): the records grouped by instance (the message key), each group in order and in containers
   * of at most `recordsPerMessage` (a group of one, or `recordsPerMessage: 1`, is a plain
   * single-object message). A record the schema rejects is left out; `batch` is rewritten to the
   * records sent, in message order, so `counts[i]` records of it belong to `messages[i]`.
   */
  private encode<T extends Pending>(
    stream: Stream<T>,
    batch: T[],
  ): { messages: OutgoingMessage[]; counts: number[] } {
    const groups = new Map<string, T[]>()
    for (const record of batch) {
      const group = groups.get(record.instance)
      if (group) group.push(record)
      else groups.set(record.instance, [record])
    }
    const messages: OutgoingMessage[] = []
    const counts: number[] = []
    const perMessage = this.recordsPerMessage
    let slab = Buffer.allocUnsafe(Math.ceil(batch.length * stream.bytesPerRecord * 1.25) + 4096)
    let pos = 0
    let start = 0 // where the message being written starts in `slab`
    /** at least `bytes` free after `pos`: else a new buffer, with the message written so far moved */
    const reserve = (bytes: number) => {
      if (slab.length - pos >= bytes) return
      const next = Buffer.allocUnsafe(Math.max(bytes, slab.length) * 2 + (pos - start))
      slab.copy(next, 0, start, pos)
      pos -= start
      start = 0
      slab = next
    }
    let kept = 0
    let bytes = 0
    for (const [key, records] of groups) {
      for (let first = 0; first < records.length; first += perMessage) {
        const chunk = records.length - first
        const inContainer = perMessage > 1 && chunk > 1
        const size = Math.min(chunk, perMessage)
        start = pos
        if (inContainer) {
          reserve(CONTAINER_HEADER_BYTES)
          CONTAINER_MAGIC.copy(slab, pos)
          pos += CONTAINER_HEADER_BYTES
        }
        let n = 0
        for (let i = first; i < first + size; i++) {
          const record = records[i]!
          const prefix = inContainer ? CONTAINER_LENGTH_BYTES : 0
          let end: number
          try {
            reserve(prefix + HEADER_BYTES + 64)
            end = encodeInto(stream.codec, record, slab, pos + prefix)
            if (end < 0) {
              // avsc answered minus the bytes missing: room for this record at least, then again
              reserve(slab.length - pos - end + 4096)
              end = encodeInto(stream.codec, record, slab, pos + prefix)
            }
          } catch (err) {
            this.invalid++
            this.opts.logger.error(
              { err, topic: stream.topic, instance: record.instance },
              'telemetry record does not match its schema; dropped',
            )
            continue
          }
          if (inContainer) slab.writeUInt32BE(end - pos - prefix, pos)
          bytes += end - pos
          pos = end
          batch[kept++] = record
          n++
        }
        if (n === 0) {
          pos = start
          continue
        }
        if (inContainer) slab.writeUInt32BE(n, start + CONTAINER_MAGIC.length)
        messages.push({ key, value: slab.subarray(start, pos) })
        counts.push(n)
      }
    }
    batch.length = kept
    if (kept > 0) stream.bytesPerRecord = Math.max(32, bytes / kept)
    return { messages, counts }
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

/**
 * Writes `record` in single-object encoding at `pos`: the same bytes as `codec.encode(record)`.
 * Returns the end position, or a negative number (minus the bytes missing) when `buf` is too small.
 */
function encodeInto<T>(codec: RecordCodec<T>, record: T, buf: Buffer, pos: number): number {
  if (buf.length - pos < HEADER_BYTES) return buf.length - pos - HEADER_BYTES - 64
  buf[pos] = MAGIC_0
  buf[pos + 1] = MAGIC_1
  codec.fingerprint.copy(buf, pos + 2)
  return codec.type.encode(record, buf, pos + HEADER_BYTES)
}
