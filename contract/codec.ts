/**
 * Avro single-object encoding of breakid records: `C3 01`, the 8-byte CRC-64-AVRO fingerprint of the
 * writer schema, then the Avro binary body. The reader keeps every writer schema it knows by
 * fingerprint and resolves each to its own (newest) schema, so old and new writers share a topic.
 */
import avro from 'avsc'
import type { Schema, Type } from 'avsc'
import { RecordDecodeError } from '../core/errors.ts'
import { fingerprintBytes } from './fingerprint.ts'
import type { AvroSchemaJson } from './schemas.ts'

const MAGIC = Buffer.from([0xc3, 0x01])
const HEADER_BYTES = MAGIC.length + 8

interface Writer {
  key: string
  resolver: ReturnType<Type['createResolver']>
}

export class RecordCodec<T> {
  readonly type: Type
  readonly fingerprint: Buffer
  private readonly writers = new Map<string, Writer>()

  /**
   * @param readerSchema the newest schema: what `encode` writes and `decode` returns.
   * @param olderWriterSchemas every earlier published version, still readable.
   */
  constructor(
    readonly name: string,
    readerSchema: AvroSchemaJson,
    olderWriterSchemas: readonly AvroSchemaJson[] = [],
  ) {
    this.type = avro.Type.forSchema(readerSchema as Schema)
    this.fingerprint = fingerprintBytes(canonicalForm(this.type))
    for (const schema of [readerSchema, ...olderWriterSchemas]) {
      const writer = avro.Type.forSchema(schema as Schema)
      const key = fingerprintBytes(canonicalForm(writer)).toString('hex')
      this.writers.set(key, { key, resolver: this.type.createResolver(writer) })
    }
  }

  encode(record: T): Buffer {
    const body = this.type.toBuffer(record)
    return Buffer.concat([MAGIC, this.fingerprint, body], HEADER_BYTES + body.length)
  }

  /**
   * Writes `record` at `pos` of `buf`: the same bytes as `encode(record)`, without allocating. Returns
   * the end position, or a negative number (minus at least the bytes missing) when `buf` is too
   * small. Throws, writing nothing past `pos` that matters, when the schema rejects the record.
   */
  encodeInto(record: T, buf: Buffer, pos: number): number {
    // the body needs at least a byte: asking for 64 more spares a second try for most records
    if (buf.length - pos < HEADER_BYTES) return buf.length - pos - HEADER_BYTES - 64
    buf[pos] = MAGIC[0]!
    buf[pos + 1] = MAGIC[1]!
    this.fingerprint.copy(buf, pos + 2)
    return this.type.encode(record, buf, pos + HEADER_BYTES)
  }

  /** Throws RecordDecodeError (non-retriable) for anything that is not one of our records. */
  decode(buf: Buffer): T {
    if (buf.length < HEADER_BYTES || buf[0] !== MAGIC[0] || buf[1] !== MAGIC[1]) {
      throw new RecordDecodeError(
        `${this.name}: not an Avro single-object record (${buf.length} bytes, header ${buf.subarray(0, 2).toString('hex')})`,
        'not_single_object',
      )
    }
    const key = buf.subarray(2, HEADER_BYTES).toString('hex')
    const writer = this.writers.get(key)
    if (!writer) {
      throw new RecordDecodeError(`${this.name}: unknown writer schema fingerprint ${key}`, 'unknown_schema')
    }
    try {
      return this.type.fromBuffer(buf.subarray(HEADER_BYTES), writer.resolver) as T
    } catch (err) {
      throw new RecordDecodeError(
        `${this.name}: malformed record body: ${(err as Error).message}`,
        'malformed',
        err,
      )
    }
  }

  /** True when the message header names one of this codec's writer schemas. */
  recognises(buf: Buffer): boolean {
    return buf.length >= HEADER_BYTES && this.writers.has(buf.subarray(2, HEADER_BYTES).toString('hex'))
  }
}

/** avsc's `schema()` without attributes is the Parsing Canonical Form (no doc, defaults, aliases). */
export function canonicalForm(type: Type): string {
  return JSON.stringify(type.schema())
}
