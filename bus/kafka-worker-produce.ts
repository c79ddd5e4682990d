/**
 * kafkajs's produce request, encoded in one pass into one buffer of the exact size: the same bytes
 * (pinned against kafkajs's own encoder in test/unit/kafka-worker-produce.test.ts), without the
 * copies. Applied on the Kafka producer thread (kafka-worker.ts) only.
 *
 * Why: kafkajs 2.2.4 builds a produce request from nested Encoders — one per record, one for the
 * batch body, the batch, the record set, the partition, the topic and the request — each starting at
 * 512 zero-filled bytes and doubling (a new zero-filled buffer and a copy each time), every varint a
 * Buffer of its own, and the CRC-32C of the batch one table lookup per byte. A message's value is
 * copied about eight times and allocated larger each time: with 64-record containers at 4 000 spans/s
 * that was most of the producer thread's CPU, and the garbage (large external buffers) started a
 * full mark-compact of its heap every second. Here every size is known before a byte is written.
 *
 * What is replaced: the `encode` of produce requests v3–v7 (v4–v7 are v3 with another version number)
 * for uncompressed record batches whose messages carry no headers and no timestamps — what the
 * producer thread sends. Anything else (compression, headers, explicit timestamps, older versions)
 * keeps kafkajs's encoder. The body leaves room in front of it, and kafkajs's request framing (size,
 * api key and version, correlation id, client id: protocol/request.js, two more zero-filled copies of
 * the whole request) is written into that room instead (`framingInPlace`). From the container bytes
 * the emitter wrote to the socket, one copy: into this buffer, where the CRC is computed.
 */
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

/** kafkajs's 64-bit integer (a copy of long.js) */
interface KafkaLong {
  getHighBits(): number
  getLowBits(): number
}
interface LongClass {
  fromValue(value: unknown): KafkaLong
  fromInt(value: number): KafkaLong
}
/** kafkajs's Encoder: the request framing reads `buf` (to check it is one) and `buffer`/`size()`. */
interface KafkaEncoder {
  buf: Buffer
  offset: number
}
type EncoderClass = new (initialSize?: number) => KafkaEncoder

export interface ProduceMessage {
  key?: Buffer | string | null
  value: Buffer | string | null
  headers?: Record<string, unknown>
  timestamp?: unknown
}
export interface ProduceArgs {
  acks: number
  timeout: number
  compression?: number
  transactionalId?: string | null
  producerId?: unknown
  producerEpoch?: number
  topicData: {
    topic: string
    partitions: { partition: number | string; firstSequence?: number; messages: ProduceMessage[] }[]
  }[]
}
interface ProduceRequest {
  apiKey: number
  apiVersion: number
  encode(): Promise<KafkaEncoder>
}
type ProduceProtocol = (args: ProduceArgs) => { request: ProduceRequest; response: unknown }
interface ProduceDefinition {
  versions: string[]
  protocol(opts: { version: number }): ProduceProtocol
}

const Long = require('kafkajs/src/utils/long.js') as LongClass
const Encoder = require('kafkajs/src/protocol/encoder.js') as EncoderClass

const MAGIC_BYTE = 2
const TRANSACTIONAL_MASK = 16
const COMPRESSION_NONE = 0
/** produce requests from this version on carry v2 record batches (magic 2) and the transactional id */
const FIRST_VERSION = 3
const LAST_VERSION = 7

// ------------------------------------------------------------------ CRC-32C (Castagnoli), sliced by 8

/** eight 256-entry tables: table k maps a byte to its CRC contribution k bytes further on */
const CRC_TABLES = (() => {
  const t = new Int32Array(8 * 256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
    t[n] = c
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n]!
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff]! ^ (c >>> 8)
      t[k * 256 + n] = c
    }
  }
  return t
})()

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1

/**
 * CRC-32C of `buf[start, end)`, as kafkajs's `crc32C` computes it (and the broker checks), eight
 * bytes per step (slicing-by-8, read as two 32-bit words where the platform is little-endian) instead
 * of one: 0.65 against 2.4 ns per byte here.
 */
export function crc32c(buf: Uint8Array, start = 0, end = buf.length): number {
  const t = CRC_TABLES
  let crc = -1
  let i = start
  if (LITTLE_ENDIAN && end - start >= 16) {
    // bytes up to a 4-byte boundary of the underlying memory, then words
    while (((buf.byteOffset + i) & 3) !== 0) crc = t[(crc ^ buf[i++]!) & 0xff]! ^ (crc >>> 8)
    const words = new Int32Array(buf.buffer, buf.byteOffset + i, ((end - i) >>> 3) << 1)
    for (let w = 0; w < words.length; w += 2) {
      const a = crc ^ words[w]!
      const b = words[w + 1]!
      crc =
        t[7 * 256 + (a & 0xff)]! ^
        t[6 * 256 + ((a >>> 8) & 0xff)]! ^
        t[5 * 256 + ((a >>> 16) & 0xff)]! ^
        t[4 * 256 + (a >>> 24)]! ^
        t[3 * 256 + (b & 0xff)]! ^
        t[2 * 256 + ((b >>> 8) & 0xff)]! ^
        t[256 + ((b >>> 16) & 0xff)]! ^
        t[b >>> 24]!
    }
    i += words.length * 4
  }
  for (; i < end; i++) crc = t[(crc ^ buf[i]!) & 0xff]! ^ (crc >>> 8)
  return (crc ^ -1) >>> 0
}

// ------------------------------------------------------------------ varints as kafkajs writes them

const zigZag = (v: number) => (v << 1) ^ (v >> 31)

function uvarintSize(v: number): number {
  let bytes = 1
  while ((v & 0xffffff80) !== 0) {
    bytes++
    v >>>= 7
  }
  return bytes
}

function writeUVarInt(buf: Buffer, pos: number, v: number): number {
  while ((v & 0xffffff80) !== 0) {
    buf[pos++] = (v & 0x7f) | 0x80
    v >>>= 7
  }
  buf[pos++] = v & 0x7f
  return pos
}

const byteLengthOf = (v: Buffer | string) => (typeof v === 'string' ? Buffer.byteLength(v, 'utf8') : v.length)

/** a varint length and the bytes (kafkajs's writeVarIntBytes: -1 for null) */
function bytesFieldSize(v: Buffer | string | null | undefined): number {
  if (v == null) return 1
  const n = byteLengthOf(v)
  return uvarintSize(zigZag(n)) + n
}

function writeBytesField(buf: Buffer, pos: number, v: Buffer | string | null | undefined): number {
  if (v == null) return writeUVarInt(buf, pos, zigZag(-1))
  if (typeof v === 'string') {
    const n = Buffer.byteLength(v, 'utf8')
    pos = writeUVarInt(buf, pos, zigZag(n))
    return pos + buf.write(v, pos, n, 'utf8')
  }
  pos = writeUVarInt(buf, pos, zigZag(v.length))
  return pos + v.copy(buf, pos)
}

function writeInt64(buf: Buffer, pos: number, value: unknown): number {
  const long = Long.fromValue(value)
  buf.writeInt32BE(long.getHighBits(), pos)
  buf.writeInt32BE(long.getLowBits(), pos + 4)
  return pos + 8
}

/** kafkajs's writeString: int16 length (-1 for null), UTF-8 */
function stringSize(v: string | null | undefined): number {
  return v == null ? 2 : 2 + Buffer.byteLength(v, 'utf8')
}
function writeString(buf: Buffer, pos: number, v: string | null | undefined): number {
  if (v == null) {
    buf.writeInt16BE(-1, pos)
    return pos + 2
  }
  const n = Buffer.byteLength(v, 'utf8')
  buf.writeInt16BE(n, pos)
  return pos + 2 + buf.write(v, pos + 2, n, 'utf8')
}

// ------------------------------------------------------------------ the request body

/** the record body after its length varint: attributes, timestamp delta 0, offset delta, key, value, no headers */
function recordBodySize(offsetDelta: number, m: ProduceMessage): number {
  return 1 + 1 + uvarintSize(zigZag(offsetDelta)) + bytesFieldSize(m.key) + bytesFieldSize(m.value) + 1
}

/** v2 record batch header from the partition leader epoch through the record count */
const BATCH_HEADER_BYTES = 4 + 1 + 4 + 2 + 4 + 8 + 8 + 8 + 2 + 4 + 4

/** Whether the one-pass encoder writes what kafkajs would for these arguments. */
export function encodable(args: ProduceArgs): boolean {
  if ((args.compression ?? COMPRESSION_NONE) !== COMPRESSION_NONE) return false
  for (const topic of args.topicData) {
    for (const p of topic.partitions) {
      for (const m of p.messages) {
        if (m.timestamp != null) return false
        if (m.headers && Object.keys(m.headers).length > 0) return false
      }
    }
  }
  return true
}

/**
 * The produce request body (v3–v7: transactional id, acks, timeout, topics → partitions → one
 * uncompressed v2 record batch each), as kafkajs's v3 request encodes it for `encodable` arguments;
 * `now` stands for its Date.now() (the batch's first and max timestamp). The body is a view that
 * starts `headroom` bytes into its allocation, so the request's framing can go in front of it.
 */
export function encodeProduceBody(args: ProduceArgs, now = Date.now(), headroom = 0): Buffer {
  const transactionalId = args.transactionalId ?? null
  const producerId = args.producerId ?? Long.fromInt(-1)
  const producerEpoch = args.producerEpoch ?? 0
  // sizes first: one allocation, no growth
  let size = stringSize(transactionalId) + 2 + 4 + 4
  const batchBytes: number[] = []
  for (const topic of args.topicData) {
    size += stringSize(topic.topic) + 4
    for (const p of topic.partitions) {
      let records = 0
      p.messages.forEach((m, i) => {
        const body = recordBodySize(i, m)
        records += uvarintSize(zigZag(body)) + body
      })
      const batch = BATCH_HEADER_BYTES + records
      batchBytes.push(batch)
      size += 4 + 4 + 8 + 4 + batch
    }
  }
  // its own memory (not the shared pool) when there is room to frame it in front
  const buf =
    headroom > 0 ? Buffer.allocUnsafeSlow(headroom + size).subarray(headroom) : Buffer.allocUnsafe(size)
  let pos = writeString(buf, 0, transactionalId)
  pos = buf.writeInt16BE(args.acks, pos)
  pos = buf.writeInt32BE(args.timeout, pos)
  pos = buf.writeInt32BE(args.topicData.length, pos)
  let b = 0
  for (const topic of args.topicData) {
    pos = writeString(buf, pos, topic.topic)
    pos = buf.writeInt32BE(topic.partitions.length, pos)
    for (const p of topic.partitions) {
      const batch = batchBytes[b++]!
      pos = buf.writeInt32BE(p.partition as number, pos)
      pos = buf.writeInt32BE(8 + 4 + batch, pos) // the record set: first offset, length, batch
      pos = writeInt64(buf, pos, 0)
      pos = buf.writeInt32BE(batch, pos)
      pos = buf.writeInt32BE(0, pos) // partition leader epoch
      pos = buf.writeInt8(MAGIC_BYTE, pos)
      const crcAt = pos
      pos += 4
      const bodyAt = pos
      pos = buf.writeInt16BE(args.transactionalId ? TRANSACTIONAL_MASK : 0, pos)
      pos = buf.writeInt32BE(p.messages.length - 1, pos)
      pos = writeInt64(buf, pos, now)
      pos = writeInt64(buf, pos, now)
      pos = writeInt64(buf, pos, producerId)
      pos = buf.writeInt16BE(producerEpoch, pos)
      pos = buf.writeInt32BE(p.firstSequence ?? 0, pos)
      pos = buf.writeInt32BE(p.messages.length, pos)
      for (let i = 0; i < p.messages.length; i++) {
        const m = p.messages[i]!
        pos = writeUVarInt(buf, pos, zigZag(recordBodySize(i, m)))
        buf[pos++] = 0 // attributes
        buf[pos++] = 0 // timestamp delta: every record at the batch's timestamp
        pos = writeUVarInt(buf, pos, zigZag(i))
        pos = writeBytesField(buf, pos, m.key)
        pos = writeBytesField(buf, pos, m.value)
        buf[pos++] = 0 // no headers
      }
      buf.writeUInt32BE(crc32c(buf, bodyAt, pos), crcAt)
    }
  }
  if (pos !== size) throw new Error(`produce request: wrote ${pos} of ${size} bytes`)
  return buf
}

// ------------------------------------------------------------------ framing in place

/**
 * Marks an Encoder whose bytes are preceded by free room in their allocation: `room` bytes of `full`
 * before `full[room]`, where the encoder's bytes start.
 */
const HEADROOM = Symbol('breakid.headroom')
type RoomyEncoder = KafkaEncoder & { [HEADROOM]?: { full: Buffer; room: number } }

/**
 * Room left in front of a produce body for kafkajs's request framing (protocol/request.js: size,
 * api key, api version, correlation id, client id — 14 bytes and the client id); a longer client id
 * is framed by copying, as kafkajs does.
 */
const FRAMING_ROOM = 256

/** `body` as the kafkajs Encoder its request framing expects */
function asEncoder(body: Buffer, room: number): RoomyEncoder {
  const encoder: RoomyEncoder = new Encoder(0)
  encoder.buf = body
  encoder.offset = body.length
  if (room > 0) {
    encoder[HEADROOM] = { full: Buffer.from(body.buffer, body.byteOffset - room, room + body.length), room }
  }
  return encoder
}

/**
 * kafkajs frames every request in two more Encoders (protocol/request.js), each a zero-filled buffer
 * the size of the request and a copy of it. Where the payload has room in front, this writes the
 * framing encoder's few bytes into that room instead and the framing encoder takes over the
 * payload's memory: the same bytes, no copy. Every other use of writeEncoder is kafkajs's own.
 */
function framingInPlace(original: (this: KafkaEncoder, value: KafkaEncoder) => KafkaEncoder) {
  return function writeEncoder(this: RoomyEncoder, value: RoomyEncoder): KafkaEncoder {
    const roomy = value?.[HEADROOM]
    if (roomy === undefined || roomy.room < this.offset) return original.call(this, value)
    const at = roomy.room - this.offset
    this.buf.copy(roomy.full, at, 0, this.offset)
    const end = roomy.room + value.offset
    this.buf = roomy.full.subarray(at, end)
    this.offset = end - at
    this[HEADROOM] = { full: roomy.full, room: at }
    return this
  }
}

/**
 * Routes kafkajs's produce requests v3–v7 through `encodeProduceBody` where it applies. Idempotent;
 * false when this kafkajs is not the 2.2.x line the encoder was checked against.
 */
export function applyOnePassProduceEncoder(): boolean {
  const { version } = require('kafkajs/package.json') as { version: string }
  if (!version.startsWith('2.2.')) return false
  const produce = require('kafkajs/src/protocol/requests/produce/index.js') as ProduceDefinition & {
    onePass?: true
  }
  if (produce.onePass) return true
  const prototype = (Encoder as unknown as { prototype: { writeEncoder: ReturnType<typeof framingInPlace> } })
    .prototype
  prototype.writeEncoder = framingInPlace(prototype.writeEncoder)
  const original = produce.protocol.bind(produce)
  produce.protocol = ({ version: v }) => {
    const make = original({ version: v })
    if (v < FIRST_VERSION || v > LAST_VERSION) return make
    return (args) => {
      const built = make(args)
      if (encodable(args))
        built.request.encode = async () =>
          asEncoder(encodeProduceBody(args, Date.now(), FRAMING_ROOM), FRAMING_ROOM)
      return built
    }
  }
  produce.onePass = true
  return true
}

// ------------------------------------------------------------------ partitions by key, remembered

interface PartitionerArgs {
  topic: string
  partitionMetadata: unknown[]
  message: { key?: Buffer | string | null; partition?: number | null }
}
type Partitioner = (args: PartitionerArgs) => number
/** keys remembered; the producer thread's are the engine's instances, a handful */
const MAX_KEYS = 1024

/**
 * kafkajs's default partitioner (murmur2 of the key, as the Java client's) with each string key's
 * hash remembered: kafkajs computes it per message, 20-odd 64-bit Long objects for an 8-byte key,
 * and every message of the producer thread carries one of a few instance names. Same partition for
 * every key (test/unit/kafka-worker-produce.test.ts); messages without a string key, or with a
 * partition, are kafkajs's. Replaces `Partitioners.DefaultPartitioner` for producers created after
 * the call — on the producer thread, its one producer.
 */
export function rememberKeyPartitions(): boolean {
  const { version } = require('kafkajs/package.json') as { version: string }
  if (!version.startsWith('2.2.')) return false
  const partitioners = require('kafkajs').Partitioners as {
    DefaultPartitioner: (() => Partitioner) & { remembersKeys?: true }
  }
  if (partitioners.DefaultPartitioner.remembersKeys) return true
  const murmur2 = require('kafkajs/src/producer/partitioners/default/murmur2.js') as (key: string) => number
  const original = partitioners.DefaultPartitioner
  const remembering = () => {
    const fallback = original()
    const hashes = new Map<string, number>()
    return (args: PartitionerArgs): number => {
      const { key, partition } = args.message
      if (typeof key !== 'string' || (partition !== null && partition !== undefined)) return fallback(args)
      let hash = hashes.get(key)
      if (hash === undefined) {
        hash = murmur2(key)
        if (hashes.size < MAX_KEYS) hashes.set(key, hash)
      }
      return (hash & 0x7fffffff) % args.partitionMetadata.length
    }
  }
  partitioners.DefaultPartitioner = Object.assign(remembering, { remembersKeys: true as const })
  return true
}
