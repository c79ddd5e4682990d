/**
 * Record containers: several records of one key (one instance) in one Kafka message.
 *
 * Why: kafkajs and the broker spend their CPU per message far more than per byte. With one span per
 * message the Kafka path cost the engine's process 63.5 µs of CPU per span, with containers of up to
 * 64 24.1 µs (bench/results/telemetry-producer.json); containers of 50 gave 4.7× the producer's and
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
import type { RecordCodec } from './codec.ts'

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
 * Never throws for bad bytes: a record that cannot be decoded comes back with its error.
 */
export function decodeMessage<T>(codec: RecordCodec<T>, value: Buffer): MessageRecord<T>[] {
  if (!isContainer(value)) return [decodeOne(codec, value, 0)]
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
    out.push(decodeOne(codec, value.subarray(start, start + length), i))
    pos = start + length
  }
  if (pos !== value.length) return broken(pos, `has ${value.length - pos} bytes after its ${count} records`)
  return out
}

function decodeOne<T>(codec: RecordCodec<T>, bytes: Buffer, index: number): MessageRecord<T> {
  try {
    return { index, bytes, record: codec.decode(bytes) }
  } catch (err) {
    if (!(err instanceof RecordDecodeError)) throw err
    return { index, bytes, error: err }
  }
}

/** The records of a message, throwing the first decode error (tests, tools that trust their input). */
export function decodeRecords<T>(codec: RecordCodec<T>, value: Buffer): T[] {
  return decodeMessage(codec, value).map((r) => {
    if (r.error) throw r.error
    return r.record
  })
}

/** A container of `records` (the emitter writes the same bytes into one buffer per flush). */
export function encodeContainer<T>(codec: RecordCodec<T>, records: readonly T[]): Buffer {
  return packContainer(records.map((r) => codec.encode(r)))
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
