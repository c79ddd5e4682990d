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
import type { Type } from 'avsc'
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
 * for `encode` (which allocates, zero-fills and concatenates two Buffers per record); a span schema's
 * writer compiled for it (`compiledEncoder`) halves what is left. When the buffer
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

  /** RecordCodec.encodeInto, compiled for the schema where it can be (compiledEncoder) */
  private readonly encodeInto: EncodeInto<T>

  constructor(
    codec: RecordCodec<T>,
    bytesHint = 4096,
    private readonly allocate: (bytes: number) => Buffer = Buffer.allocUnsafe,
  ) {
    this.encodeInto = compiledEncoder(codec) ?? ((record, buf, pos) => codec.encodeInto(record, buf, pos))
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
    let end = this.encodeInto(record, this.buf, this.pos + prefix)
    if (end < 0) {
      // the encoder answered minus the bytes missing: room for this record at least, then again
      this.reserve(this.buf.length - this.pos - end + 4096)
      end = this.encodeInto(record, this.buf, this.pos + prefix)
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

// ------------------------------------------------------------------ a writer compiled for the schema

/** RecordCodec.encodeInto's contract: the end position, or minus at least the bytes missing */
type EncodeInto<T> = (record: T, buf: Buffer, pos: number) => number

/** avsc's parsed types, as far as the compiler reads them */
interface ParsedType {
  typeName: string
  fields?: { name: string; type: ParsedType; defaultValue(): unknown }[]
  types?: ParsedType[]
  symbols?: string[]
}

/** the bytes of a single-object record before its body: C3 01 and the schema fingerprint (codec.ts) */
const SINGLE_OBJECT_HEADER_BYTES = 10

const compiled = new WeakMap<object, EncodeInto<never> | null>()

/**
 * `codec.encodeInto` as a function compiled for its schema — the same bytes, the same records
 * refused — for a record of primitive, enum and nullable-primitive fields (a span); undefined for any
 * other schema, which keeps avsc's writer. Why: avsc writes each field through its type's `_write`
 * (a check, then a Tap method; strings measured with Buffer.byteLength), 1.0 µs per span; this
 * writes them inline, short ASCII strings without asking their UTF-8 length: 0.55 µs
 * (test/unit/container-writer.test.ts checks it against avsc on edge values and invalid records).
 */
export function compiledEncoder<T>(codec: RecordCodec<T>): EncodeInto<T> | undefined {
  let fn = compiled.get(codec)
  if (fn === undefined) {
    fn = compileRecordWriter(codec.type as unknown as ParsedType, codec.fingerprint) ?? null
    compiled.set(codec, fn)
  }
  return (fn ?? undefined) as EncodeInto<T> | undefined
}

/** The bytes of a union branch, by the JS type the value must have (avsc's value buckets). */
const BUCKETS: Record<string, string> = {
  boolean: 'boolean',
  int: 'number',
  long: 'number',
  double: 'number',
  string: 'string',
}

function compileRecordWriter(type: ParsedType, fingerprint: Buffer): EncodeInto<unknown> | undefined {
  if (type.typeName !== 'record' || !type.fields) return undefined
  const consts: unknown[] = []
  const ref = (x: unknown) => `k${consts.push(x) - 1}`
  /** the checks and writes of a value `v` of type `t`, and the most bytes it can take */
  const field = (t: ParsedType, v: string): { code: string; bound: string } | undefined => {
    const fail = `${ref(refusal(t))}(${v})`
    switch (t.typeName) {
      case 'boolean':
        return { code: `if (typeof ${v} !== 'boolean') ${fail}\nbuf[p++] = ${v} ? 1 : 0\n`, bound: '1' }
      case 'int':
        return { code: `if (${v} !== (${v} | 0)) ${fail}\np = writeLong(buf, p, ${v})\n`, bound: '5' }
      case 'long':
        return {
          code: `if (typeof ${v} !== 'number' || ${v} % 1 !== 0 || !(${v} >= -9007199254740990 && ${v} <= 9007199254740990)) ${fail}\np = writeLong(buf, p, ${v})\n`,
          bound: '10',
        }
      case 'double':
        return {
          code: `if (typeof ${v} !== 'number') ${fail}\nbuf.writeDoubleLE(${v}, p)\np += 8\n`,
          bound: '8',
        }
      case 'string':
        return {
          code: `if (typeof ${v} !== 'string') ${fail}\np = writeString(buf, p, ${v})\n`,
          bound: `(typeof ${v} === 'string' ? ${v}.length * 3 + 5 : 0)`,
        }
      case 'enum': {
        const index = ref(new Map(t.symbols!.map((sym, i) => [sym, i])))
        return {
          code: `{ const i = ${index}.get(${v}); if (i === undefined) ${fail}\np = writeLong(buf, p, i) }\n`,
          bound: '5',
        }
      }
      case 'union:unwrapped': {
        const branches = t.types!
        const nullAt = branches.findIndex((b) => b.typeName === 'null')
        if (branches.length !== 2 || nullAt < 0) return undefined
        const other = branches[1 - nullAt]!
        const bucket = BUCKETS[other.typeName]
        const inner = bucket === undefined ? undefined : field(other, v)
        if (!inner) return undefined
        return {
          code: `if (${v} === null) buf[p++] = ${nullAt * 2}\nelse {\nif (typeof ${v} !== '${bucket}') ${fail}\nbuf[p++] = ${(1 - nullAt) * 2}\n${inner.code}}\n`,
          bound: `1 + ${inner.bound}`,
        }
      }
      default:
        return undefined
    }
  }
  let read = ''
  let write = ''
  const bounds: string[] = [String(SINGLE_OBJECT_HEADER_BYTES)]
  for (const [i, f] of type.fields.entries()) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(f.name)) return undefined
    const v = `f${i}`
    const w = field(f.type, v)
    if (!w) return undefined
    read += `const ${v} = r.${f.name}\n`
    const fallback = f.defaultValue()
    if (fallback === undefined) {
      write += w.code
      bounds.push(w.bound)
    } else {
      // avsc writes a field's default when the record lacks it
      const bytes = (f.type as unknown as Type).toBuffer(fallback)
      write += `if (${v} === undefined) { buf.set(${ref(bytes)}, p); p += ${bytes.length} } else {\n${w.code}}\n`
      bounds.push(`(${v} === undefined ? ${bytes.length} : ${w.bound})`)
    }
  }
  const source = `return function encodeInto(r, buf, pos) {
if (r === null || typeof r !== 'object') ${ref(refusal(type))}(r)
${read}const room = ${bounds.join(' + ')}
if (buf.length - pos < room) return buf.length - pos - room
let p = pos
buf[p++] = 0xc3
buf[p++] = 0x01
${[...fingerprint].map((b) => `buf[p++] = ${b}`).join('\n')}
${write}return p
}`
  const args = consts.map((_, i) => `k${i}`)
  return new Function('writeLong', 'writeString', ...args, source)(
    writeLong,
    writeString,
    ...consts,
  ) as EncodeInto<unknown>
}

/** what avsc throws for a value its type does not take */
function refusal(t: ParsedType): (value: unknown) => never {
  return (value) => {
    throw new Error(`invalid ${t.typeName}: ${JSON.stringify(value) ?? String(value)}`)
  }
}

/** an Avro long (zig-zag varint), as avsc writes it: integer arithmetic below 2^30, float above */
function writeLong(buf: Buffer, p: number, n: number): number {
  if (n >= -1073741824 && n < 1073741824) {
    let m = n >= 0 ? n << 1 : (~n << 1) | 1
    while (m > 0x7f) {
      buf[p++] = (m & 0x7f) | 0x80
      m >>>= 7
    }
    buf[p++] = m
    return p
  }
  let f = n >= 0 ? n * 2 : -n * 2 - 1
  while (f >= 128) {
    buf[p++] = (f & 0x7f) | 0x80
    f = Math.floor(f / 128)
  }
  buf[p++] = f
  return p
}

/**
 * An Avro string as avsc writes it: its UTF-8 length, then its bytes — a short ASCII string without
 * asking its length natively, the rest as avsc's Tap.writeString does (its own UTF-8 loop up to 64
 * bytes, which writes a lone surrogate as its three bytes where Buffer#write would write U+FFFD).
 */
function writeString(buf: Buffer, p: number, s: string): number {
  const n = s.length
  if (n < 64) {
    const start = p + 1
    let i = 0
    for (; i < n; i++) {
      const c = s.charCodeAt(i)
      if (c >= 0x80) break
      buf[start + i] = c
    }
    if (i === n) {
      buf[p] = n << 1
      return start + n
    }
  }
  const len = Buffer.byteLength(s)
  p = writeLong(buf, p, len)
  if (len > 64) return p + buf.write(s, p, len, 'utf8')
  for (let i = 0; i < n; i++) {
    let c1 = s.charCodeAt(i)
    const c2 = (c1 & 0xfc00) === 0xd800 ? s.charCodeAt(i + 1) : 0
    if (c1 < 0x80) buf[p++] = c1
    else if (c1 < 0x800) {
      buf[p++] = (c1 >> 6) | 0xc0
      buf[p++] = (c1 & 0x3f) | 0x80
    } else if ((c1 & 0xfc00) === 0xd800 && (c2 & 0xfc00) === 0xdc00) {
      c1 = 0x10000 + ((c1 & 0x03ff) << 10) + (c2 & 0x03ff)
      i++
      buf[p++] = (c1 >> 18) | 0xf0
      buf[p++] = ((c1 >> 12) & 0x3f) | 0x80
      buf[p++] = ((c1 >> 6) & 0x3f) | 0x80
      buf[p++] = (c1 & 0x3f) | 0x80
    } else {
      buf[p++] = (c1 >> 12) | 0xe0
      buf[p++] = ((c1 >> 6) & 0x3f) | 0x80
      buf[p++] = (c1 & 0x3f) | 0x80
    }
  }
  return p
}
