/**
 * Record containers: several records of one key (one instance) in one Kafka message.
 *
 * Why: kafkajs and the broker spend their CPU per message far more than per byte. With one span per
 * message the Kafka path cost the engine's process 63.5 µs of CPU per span, with containers of up to
 * 64 24.1 µs (bench/results/telemetry-producer-containers.json); containers of 50 gave 4.7× the producer's and
 * 1.9× the consumer's records/s at the same end-to-end latency (bench/results/kafka-batching.json).
 *
 * Layout (integers are unsigned 32-bit big-endian):
 *
 *     'B' 'K' 'C' 0x01            magic and version: an Avro single-object record starts C3 01 instead
 *     count                       records in the container
 *     count × (length, record)    each record in Avro single-object encoding (codec.ts)
 *
 * A message holding one single-object record (no container) stays valid on every topic: readers
 * accept both, so old writers and `recordsPerMessage: 1` keep working. The count and the lengths let a
 * reader reject one bad record (unknown schema, malformed body) and keep the others of its message; a
 * container whose framing is broken (cut short, lengths past its end) keeps the records before the
 * break and returns the rest as one undecodable piece.
 */
import { RecordDecodeError } from '../core/errors.ts'
import type { MessageHeaders, RecordCodec } from './codec.ts'

export const CONTAINER_MAGIC = Buffer.from([0x42, 0x4b, 0x43, 0x01])
/** magic + count */
export const CONTAINER_HEADER_BYTES = 8
/** the length before each record */
export const CONTAINER_LENGTH_BYTES = 4

export function isContainer(value: Buffer): boolean {
  return (
    value.length >= CONTAINER_MAGIC.length &&
    value[0] === CONTAINER_MAGIC[0] &&
    value[1] === CONTAINER_MAGIC[1] &&
    value[2] === CONTAINER_MAGIC[2] &&
    value[3] === CONTAINER_MAGIC[3]
  )
}

/** One record of a message: decoded, or the reason it could not be (with its bytes, to dead-letter). */
export type MessageRecord<T> =
  | { index: number; bytes: Buffer; record: T; error?: undefined }
  | { index: number; bytes: Buffer; record?: undefined; error: RecordDecodeError }

/**
 * Every record of a message value, in order: a container's records, or the message itself when it
 * is a single record. `index` is the record's position in its container (0 for a single record).
 * Never throws for bad bytes: a record that cannot be decoded comes back with its error. Pass the
 * message's `headers`: a foreign writer's schema travels in them (writers.ts).
 */
export function decodeMessage<T>(
  codec: RecordCodec<T>,
  value: Buffer,
  headers?: MessageHeaders,
): MessageRecord<T>[] {
  if (!isContainer(value)) return [decodeOne(codec, value, 0, headers)]
  const out: MessageRecord<T>[] = []
  const broken = (at: number, why: string): MessageRecord<T>[] => {
    const error = new RecordDecodeError(`${codec.name}: record container ${why}`, 'truncated')
    out.push({ index: out.length, bytes: value.subarray(at), error })
    return out
  }
  if (value.length < CONTAINER_HEADER_BYTES)
    return broken(0, `cut short in its header (${value.length} bytes)`)
  const count = value.readUInt32BE(4)
  let pos = CONTAINER_HEADER_BYTES
  for (let i = 0; i < count; i++) {
    if (value.length - pos < CONTAINER_LENGTH_BYTES) {
      return broken(pos, `cut short: ${i} of ${count} records before its end (${value.length} bytes)`)
    }
    const length = value.readUInt32BE(pos)
    const start = pos + CONTAINER_LENGTH_BYTES
    if (length > value.length - start) {
      return broken(pos, `record ${i} of ${count} claims ${length} bytes, ${value.length - start} are left`)
    }
    out.push(decodeOne(codec, value.subarray(start, start + length), i, headers))
    pos = start + length
  }
  if (pos !== value.length) return broken(pos, `has ${value.length - pos} bytes after its ${count} records`)
  return out
}

function decodeOne<T>(
  codec: RecordCodec<T>,
  bytes: Buffer,
  index: number,
  headers: MessageHeaders | undefined,
): MessageRecord<T> {
  try {
    return { index, bytes, record: codec.decode(bytes, headers) }
  } catch (err) {
    if (!(err instanceof RecordDecodeError)) throw err
    return { index, bytes, error: err }
  }
}

/** The records of a message, throwing the first decode error (tests, tools that trust their input). */
export function decodeRecords<T>(codec: RecordCodec<T>, value: Buffer, headers?: MessageHeaders): T[] {
  return decodeMessage(codec, value, headers).map((r) => {
    if (r.error) throw r.error
    return r.record
  })
}

/** A container of `records` (MessageWriter writes the same bytes into one shared buffer). */
export function encodeContainer<T>(codec: RecordCodec<T>, records: readonly T[]): Buffer {
  return packContainer(records.map((r) => codec.encode(r)))
}

/**
 * The records of a message as their single-object bytes (views of `value`), by framing alone:
 * a container's records, or the message itself. Throws RecordDecodeError when a container's framing
 * is broken. What a writer needs to split a message the broker refused into smaller ones.
 */
export function recordsOf(value: Buffer): Buffer[] {
  if (!isContainer(value)) return [value]
  const fail = (why: string) => {
    throw new RecordDecodeError(`record container ${why}`, 'truncated')
  }
  if (value.length < CONTAINER_HEADER_BYTES) fail(`cut short in its header (${value.length} bytes)`)
  const count = value.readUInt32BE(4)
  const out: Buffer[] = []
  let pos = CONTAINER_HEADER_BYTES
  for (let i = 0; i < count; i++) {
    if (value.length - pos < CONTAINER_LENGTH_BYTES) fail(`cut short: ${i} of ${count} records`)
    const length = value.readUInt32BE(pos)
    const start = pos + CONTAINER_LENGTH_BYTES
    if (length > value.length - start) fail(`record ${i} of ${count} claims ${length} bytes`)
    out.push(value.subarray(start, start + length))
    pos = start + length
  }
  if (pos !== value.length) fail(`has ${value.length - pos} bytes after its ${count} records`)
  return out
}

/** A message a MessageWriter finished: its bytes and how many records it holds. */
export interface WrittenMessage {
  /** a view of the writer's buffer: valid as long as the caller keeps it */
  value: Buffer
  records: number
}

/**
 * Writes messages — containers, or single records — back to back into one buffer, each record
 * encoded in place (RecordCodec.encodeInto): the bytes `encodeContainer` and `RecordCodec.encode`
 * produce, without a Buffer per record. Encoding a batch this way costs ~1.9 µs per span against ~6 µs
 * for `encode` (which allocates, zero-fills and concatenates two Buffers per record). When the buffer
 * is full a larger one takes over (the message being written moves with it; finished messages keep
 * their views of the old one), so size `bytesHint` to the batch.
 *
 * `allocate` supplies the buffers (default `Buffer.allocUnsafe`): a writer whose messages go to
 * another thread writes into buffers that thread can read without a copy (kafka-worker.ts lends
 * them); `buffers` lists every buffer it took, for the caller to give back once the messages are sent.
 */
export class MessageWriter<T> {
  private buf: Buffer
  /** every buffer this writer allocated, the first one included */
  readonly buffers: Buffer[] = []
  private pos = 0
  /** where the message being written starts */
  private start = 0
  private container = false
  private count = 0
  /** bytes of every record written (framing included): for the next batch's size estimate */
  recordBytes = 0

  constructor(
    private readonly codec: RecordCodec<T>,
    bytesHint = 4096,
    private readonly allocate: (bytes: number) => Buffer = Buffer.allocUnsafe,
  ) {
    this.buf = this.take(Math.max(64, Math.ceil(bytesHint)))
  }

  private take(bytes: number): Buffer {
    const buf = this.allocate(bytes)
    this.buffers.push(buf)
    return buf
  }

  /** Starts the next message: a container when `container`, else a message of one record. */
  begin(container: boolean): void {
    this.start = this.pos
    this.count = 0
    this.container = container
    if (container) {
      this.reserve(CONTAINER_HEADER_BYTES)
      CONTAINER_MAGIC.copy(this.buf, this.pos)
      this.pos += CONTAINER_HEADER_BYTES
    }
  }

  /**
   * Appends a record to the message. Throws what the codec throws for a record its schema rejects;
   * the message is then as it was before the call.
   */
  add(record: T): void {
    if (!this.container && this.count === 1) throw new Error('a message without a container holds one record')
    const prefix = this.container ? CONTAINER_LENGTH_BYTES : 0
    this.reserve(prefix + 64)
    let end = this.codec.encodeInto(record, this.buf, this.pos + prefix)
    if (end < 0) {
      // avsc answered minus the bytes missing: room for this record at least, then again
      this.reserve(this.buf.length - this.pos - end + 4096)
      end = this.codec.encodeInto(record, this.buf, this.pos + prefix)
    }
    if (this.container) this.buf.writeUInt32BE(end - this.pos - prefix, this.pos)
    this.recordBytes += end - this.pos
    this.pos = end
    this.count++
  }

  /** Ends the message; undefined (and nothing written) when no record was added. */
  end(): WrittenMessage | undefined {
    if (this.count === 0) {
      this.pos = this.start
      return undefined
    }
    if (this.container) this.buf.writeUInt32BE(this.count, this.start + CONTAINER_MAGIC.length)
    return { value: this.buf.subarray(this.start, this.pos), records: this.count }
  }

  /** at least `bytes` free after `pos`: else a new buffer, with the message written so far moved */
  private reserve(bytes: number): void {
    if (this.buf.length - this.pos >= bytes) return
    const written = this.pos - this.start
    const next = this.take(Math.max(bytes, this.buf.length) * 2 + written)
    this.buf.copy(next, 0, this.start, this.pos)
    this.pos = written
    this.start = 0
    this.buf = next
  }
}

/** A container of records already in single-object encoding. */
export function packContainer(encoded: readonly Buffer[]): Buffer {
  const parts: Buffer[] = [CONTAINER_MAGIC, u32(encoded.length)]
  for (const bytes of encoded) parts.push(u32(bytes.length), bytes)
  return Buffer.concat(parts)
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4)
  b.writeUInt32BE(n)
  return b
}

/**
 * The records of a message value as byte ranges, without decoding them (ingest reads the bytes
 * straight into columns): `record(index, start, end)` for each, in order, and `broken(index, start,
 * why)` once for a container whose framing breaks, covering its unreadable rest. A message that is
 * not a container is one record, index 0.
 */
export function forEachRecord(
  value: Buffer,
  record: (index: number, start: number, end: number) => void,
  broken: (index: number, start: number, why: string) => void,
): void {
  if (!isContainer(value)) {
    record(0, 0, value.length)
    return
  }
  if (value.length < CONTAINER_HEADER_BYTES) {
    broken(0, 0, `cut short in its header (${value.length} bytes)`)
    return
  }
  const count = value.readUInt32BE(4)
  let pos = CONTAINER_HEADER_BYTES
  for (let i = 0; i < count; i++) {
    if (value.length - pos < CONTAINER_LENGTH_BYTES) {
      broken(i, pos, `cut short: ${i} of ${count} records before its end (${value.length} bytes)`)
      return
    }
    const length = value.readUInt32BE(pos)
    const start = pos + CONTAINER_LENGTH_BYTES
    if (length > value.length - start) {
      broken(i, pos, `record ${i} of ${count} claims ${length} bytes, ${value.length - start} are left`)
      return
    }
    record(i, start, start + length)
    pos = start + length
  }
  if (pos !== value.length) broken(count, pos, `has ${value.length - pos} bytes after its ${count} records`)
}
