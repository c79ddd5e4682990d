/**
 * Avro single-object encoding of breakid records: `C3 01`, the 8-byte CRC-64-AVRO fingerprint of the
 * writer schema (little-endian), then the Avro binary body. The reader resolves every writer schema
 * it knows by fingerprint — each published version, and those learned from the
 * `breakid.writer-schema` message header (writers.ts) — to its own (newest) schema, so old, new and
 * foreign writers share a topic.
 */
import avro from 'avsc'
import type { Schema, Type } from 'avsc'
import { RecordDecodeError } from '../core/errors.ts'
import type { AvroSchemaJson } from './schemas.ts'
import { fingerprintOf, WRITER_SCHEMA_HEADER, WriterSchemas } from './writers.ts'

export { canonicalForm } from './writers.ts'

const MAGIC = Buffer.from([0xc3, 0x01])
const HEADER_BYTES = MAGIC.length + 8

/** The headers of the message a record came in (only `breakid.writer-schema` is read). */
export type MessageHeaders = Readonly<Record<string, string>>

export class RecordCodec<T> {
  readonly type: Type
  readonly fingerprint: Buffer
  readonly writers: WriterSchemas

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
    this.fingerprint = fingerprintOf(this.type)
    const published = [readerSchema, ...olderWriterSchemas].map((s) => avro.Type.forSchema(s as Schema))
    this.writers = new WriterSchemas(name, this.type, published)
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

  /**
   * Throws RecordDecodeError (non-retriable) for anything that is not one of our records. `headers`:
   * the message's, whose `breakid.writer-schema` names a writer this reader has not seen.
   */
  decode(buf: Buffer, headers?: MessageHeaders): T {
    if (buf.length < HEADER_BYTES || buf[0] !== MAGIC[0] || buf[1] !== MAGIC[1]) {
      throw new RecordDecodeError(
        `${this.name}: not an Avro single-object record (${buf.length} bytes, header ${buf.subarray(0, 2).toString('hex')})`,
        'not_single_object',
      )
    }
    const key = buf.subarray(2, HEADER_BYTES).toString('hex')
    const writer = this.writers.find(key, headers?.[WRITER_SCHEMA_HEADER])
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

  /** True when the record header names a writer schema this codec reads (published or learned). */
  recognises(buf: Buffer): boolean {
    return buf.length >= HEADER_BYTES && this.writers.known(buf.subarray(2, HEADER_BYTES).toString('hex'))
  }
}
