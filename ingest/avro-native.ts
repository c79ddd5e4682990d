/**
 * Avro single-object records → columns of a Native block, without building JavaScript objects: each
 * field is read from the record's bytes straight into its column (strings copied as bytes, hex ids
 * parsed into their bytes, enums as their index). Chosen over decoding with avsc and encoding the
 * objects, and over handing ClickHouse the Avro itself, by bench/ingest-formats.ts (results and the
 * per-span costs in bench/results/ingest-formats.json).
 *
 * Schema resolution follows the Avro specification for what the contract allows (fields added with
 * defaults): a reader compiled per writer schema, found by the fingerprint in the record's header,
 * reads the writer's fields in the writer's order, skips fields the table does not store, and gives
 * the columns the writer does not know their default (null). So records of every published version
 * land in the same block.
 *
 * The reader of a writer schema is generated JavaScript, one straight line of field reads (as avsc
 * generates its decoders): a closure per field cost about as much as avsc's whole decode, the
 * generated reader a fraction of it (bench/results/ingest-formats.json). The code is built only from
 * the schemas and the table spec of this repository, never from record bytes.
 *
 * Only flat records (primitives, enums, unions of null and one type) are compiled; the constructor
 * throws `Unsupported` for other schemas and the ingester decodes those records with avsc instead
 * (hardware samples, alerts).
 */
import avro from 'avsc'
import { RecordDecodeError } from '../core/errors.ts'
import { canonicalForm } from '../contract/codec.ts'
import { fingerprintBytes } from '../contract/fingerprint.ts'
import type { AvroSchemaJson } from '../contract/schemas.ts'
import {
  type ColumnBuilder,
  FixedStringBuilder,
  Int64Builder,
  type NativeBlock,
  NullableBuilder,
  NumberBuilder,
  StringBuilder,
} from '../store/native.ts'
import type { TableSpec } from '../store/tables.ts'

/** single-object header: C3 01 + 8-byte fingerprint */
const HEADER_BYTES = 10

/** hex digit → value, 255 for anything else */
const HEX = new Uint8Array(256).fill(255)
for (let i = 0; i < 10; i++) HEX[48 + i] = i
for (let i = 0; i < 6; i++) {
  HEX[65 + i] = 10 + i
  HEX[97 + i] = 10 + i
}

/** A field that cannot be stored: bytes that are not Avro, or a value outside what its column holds. */
export class FieldError extends Error {
  constructor(
    message: string,
    readonly reason: 'malformed' | 'out_of_range' = 'malformed',
  ) {
    super(message)
  }
}

/** A schema the transcoder cannot read field by field (nested records, arrays, maps). */
export class Unsupported extends Error {}

type AvroType = string | { type: string; symbols?: string[]; logicalType?: string } | AvroType[]

function typeName(t: AvroType): string {
  if (typeof t === 'string') return t
  if (Array.isArray(t)) return 'union'
  return t.type
}

/** Reads a zigzag varint (an Avro int or long) into `v`; exact to 2^53 as avsc is. */
const READ_LONG = `
    v = 0; k = 0
    do { byte = b[p++]; v |= (byte & 127) << k; k += 7 } while ((byte & 128) && k < 28)
    if (byte & 128) {
      f = v >>> 0; scale = 268435456
      do { byte = b[p++]; f += (byte & 127) * scale; scale *= 128 } while (byte & 128)
      v = (f % 2 ? -(f + 1) : f) / 2
    } else v = (v >> 1) ^ -(v & 1)`

/** Builds the generated reader's source; values it needs (builders, tables) become its parameters. */
class ReaderSource {
  readonly names: string[] = []
  readonly values: unknown[] = []
  body = ''

  bind(prefix: string, value: unknown): string {
    const name = `${prefix}${this.names.length}`
    this.names.push(name)
    this.values.push(value)
    return name
  }

  fail(message: string, reason: 'malformed' | 'out_of_range'): string {
    return `throw new FieldError(${message}, '${reason}')`
  }

  /** code moving past a value of type `t` */
  skip(t: AvroType): string {
    switch (typeName(t)) {
      case 'null':
        return ''
      case 'boolean':
        return 'p += 1'
      case 'int':
      case 'long':
      case 'enum':
        return READ_LONG
      case 'float':
        return 'p += 4'
      case 'double':
        return 'p += 8'
      case 'string':
      case 'bytes':
        return `${READ_LONG}\n    if (v < 0) ${this.fail("'negative length'", 'malformed')}\n    p += v`
      case 'union': {
        const branches = (t as AvroType[]).map((br, i) => `if (v === ${i}) {\n${this.skip(br)}\n    }`)
        return `${READ_LONG}\n    ${branches.join(' else ')} else ${this.fail("'union branch ' + v", 'malformed')}`
      }
      default:
        throw new Unsupported(`type ${typeName(t)}`)
    }
  }

  /** code reading a value of writer type `t` into the column whose wire builder is `col` */
  read(
    t: AvroType,
    col: ColumnBuilder,
    convert: 'hex' | undefined,
    readerEnum: readonly string[] | undefined,
  ): string {
    // a record cut short is malformed, whatever the field it ends in would have held
    return `if (p >= end) ${this.fail("'record cut short'", 'malformed')}\n${this.readValue(t, col, convert, readerEnum)}`
  }

  private readValue(
    t: AvroType,
    col: ColumnBuilder,
    convert: 'hex' | undefined,
    readerEnum: readonly string[] | undefined,
  ): string {
    const name = typeName(t)
    if (name === 'union') return this.readUnion(t as AvroType[], col, convert, readerEnum)
    if (col instanceof NullableBuilder) {
      const n = this.bind('N', col)
      return `${n}.mark(false)\n${this.read(t, col.inner, convert, readerEnum)}`
    }
    const c = this.bind('B', col)
    if (col instanceof FixedStringBuilder && convert === 'hex' && name === 'string') {
      const w = col.width
      return `${READ_LONG}
    if (v > 0 && p + v > end) ${this.fail("'record cut short'", 'malformed')}
    if (v !== ${w * 2}) ${this.fail(`'expected ${w * 2} hex digits, got ' + v + ' bytes'`, 'out_of_range')}
    at = ${c}.claim(); out = ${c}.data.buf; bad = 0
    for (i = 0; i < ${w}; i++) {
      hi = HEX[b[p + 2 * i]]; lo = HEX[b[p + 2 * i + 1]]
      bad |= hi | lo
      out[at + i] = (hi << 4) | lo
    }
    p += ${w * 2}
    if (bad & 240) ${this.fail("'not a hex string'", 'out_of_range')}`
    }
    if (col instanceof StringBuilder && (name === 'string' || name === 'bytes')) {
      return `${READ_LONG}
    if (v < 0 || p + v > end) ${this.fail("'string past the end of the record'", 'malformed')}
    ${c}.pushBytes(b, p, p + v)
    p += v`
    }
    if (col instanceof Int64Builder && (name === 'long' || name === 'int')) {
      const check =
        col.type === 'UInt64'
          ? `\n    if (v < 0) ${this.fail(`v + ' is out of range for UInt64'`, 'out_of_range')}`
          : ''
      return `${READ_LONG}${check}\n    ${c}.push(v)`
    }
    if (col instanceof NumberBuilder) {
      if (name === 'enum') {
        // writer symbol index → the reader's value, by symbol name (the Avro rule)
        const symbols = (t as { symbols: string[] }).symbols
        const map = this.bind(
          'E',
          Int32Array.from(symbols, (s) => readerEnum?.indexOf(s) ?? -1),
        )
        return `${READ_LONG}
    if (!(v >= 0 && v < ${symbols.length}) || ${map}[v] < 0) ${this.fail(`'enum symbol ' + v + ' unknown to the table'`, 'out_of_range')}
    ${c}.push(${map}[v])`
      }
      if (name === 'boolean') return `${c}.push(b[p++] === 1 ? 1 : 0)`
      if (col.range && (name === 'int' || name === 'long')) {
        const [min, max] = col.range
        return `${READ_LONG}
    if (v < ${min} || v > ${max}) ${this.fail(`v + ' is out of range for ${col.type}'`, 'out_of_range')}
    ${c}.push(v)`
      }
      if (!col.range && name === 'double') return `${c}.push(b.readDoubleLE(p))\n    p += 8`
      if (!col.range && name === 'float') return `${c}.push(b.readFloatLE(p))\n    p += 4`
    }
    throw new Unsupported(`Avro ${name} into ${col.type}`)
  }

  private readUnion(
    branches: AvroType[],
    col: ColumnBuilder,
    convert: 'hex' | undefined,
    readerEnum: readonly string[] | undefined,
  ): string {
    const nullAt = branches.findIndex((br) => typeName(br) === 'null')
    const values = branches.map((br, i) => [br, i] as const).filter(([br]) => typeName(br) !== 'null')
    if (values.length !== 1 || branches.length > 2)
      throw new Unsupported('a union of more than null and one type')
    const [valueType, valueAt] = values[0]!
    if (col instanceof NullableBuilder) {
      const n = this.bind('N', col)
      return `${READ_LONG}
    if (v === ${valueAt}) {
      ${n}.mark(false)
${this.read(valueType, col.inner, convert, readerEnum)}
    } else if (v === ${nullAt}) ${n}.mark(true)
    else ${this.fail("'union branch ' + v", 'malformed')}`
    }
    return `${READ_LONG}
    if (v === ${valueAt}) {
${this.read(valueType, col, convert, readerEnum)}
    } else if (v === ${nullAt}) ${this.fail("'null for a column that cannot be null'", 'out_of_range')}
    else ${this.fail("'union branch ' + v", 'malformed')}`
  }

  /** `(b, p, end) => position after the record` */
  compile(): (b: Buffer, p: number, end: number) => number {
    const source = `return function readRecord(b, p, end) {
    let v, k, byte, f, scale, at, out, bad, i, hi, lo
${this.body}
    return p
  }`
    const factory = new Function('FieldError', 'HEX', ...this.names, source) as (
      ...args: unknown[]
    ) => (b: Buffer, p: number, end: number) => number
    return factory(FieldError, HEX, ...this.values)
  }
}

interface CompiledWriter {
  fingerprint: Buffer
  read: (b: Buffer, p: number, end: number) => number
}

export class AvroNativeTranscoder<R> {
  private readonly writers: CompiledWriter[] = []
  private last: CompiledWriter | undefined

  /**
   * @param writerSchemas every schema records may be written with (current and published)
   * @param enums reader symbols of enum columns, by column name (the order the table's Enum8 uses)
   */
  constructor(
    readonly name: string,
    readonly spec: TableSpec<R>,
    readonly block: NativeBlock,
    writerSchemas: readonly AvroSchemaJson[],
    enums: Record<string, readonly string[]> = {},
  ) {
    const byField = new Map(spec.columns.map((c, i) => [c.field as string | undefined, i]))
    for (const schema of writerSchemas) {
      const type = avro.Type.forSchema(schema as avro.Schema)
      const fields = (schema as { fields: { name: string; type: AvroType }[] }).fields
      const src = new ReaderSource()
      const used = new Set<number>()
      const steps: string[] = []
      for (const f of fields) {
        const i = byField.get(f.name)
        if (i === undefined) {
          steps.push(`    // ${f.name}: not stored\n${src.skip(f.type)}`)
          continue
        }
        used.add(i)
        const c = spec.columns[i]!
        steps.push(
          `    // ${f.name} → ${c.name}\n${src.read(f.type, block.builders[i]!, c.convert, enums[c.name])}`,
        )
      }
      for (const [i, c] of spec.columns.entries()) {
        if (used.has(i)) continue
        const col = block.builders[i]!
        if (!(col instanceof NullableBuilder)) {
          throw new Unsupported(`column ${c.name} has no field in a writer schema and cannot be null`)
        }
        steps.push(`    // ${c.name}: not in this writer's schema\n    ${src.bind('D', col)}.pushDefault()`)
      }
      src.body = steps.join('\n')
      this.writers.push({ fingerprint: fingerprintBytes(canonicalForm(type)), read: src.compile() })
    }
  }

  /**
   * Appends the record in `bytes[start, end)` (single-object encoding) as one row. Returns undefined,
   * or the reason the record was refused; a refused record leaves the block as it was.
   */
  append(bytes: Buffer, start: number, end: number): RecordDecodeError | undefined {
    if (end - start < HEADER_BYTES || bytes[start] !== 0xc3 || bytes[start + 1] !== 0x01) {
      return new RecordDecodeError(
        `${this.name}: not an Avro single-object record (${end - start} bytes)`,
        'not_single_object',
      )
    }
    const writer = this.writerOf(bytes, start + 2)
    if (!writer) {
      return new RecordDecodeError(
        `${this.name}: unknown writer schema fingerprint ${bytes.subarray(start + 2, start + HEADER_BYTES).toString('hex')}`,
        'unknown_schema',
      )
    }
    const rows = this.block.rows
    let error: unknown
    try {
      const p = writer.read(bytes, start + HEADER_BYTES, end)
      if (p !== end)
        error = new FieldError(p > end ? 'record cut short' : `${end - p} bytes after the record`)
    } catch (err) {
      // a RangeError from reading a number past the buffer is a cut record too
      error = err
    }
    if (error === undefined) return undefined
    this.block.truncate(rows)
    const reason = error instanceof FieldError ? error.reason : 'malformed'
    return new RecordDecodeError(
      `${this.name}: ${reason === 'malformed' ? 'malformed record body: ' : ''}${(error as Error).message}`,
      reason,
      error,
    )
  }

  private writerOf(b: Buffer, at: number): CompiledWriter | undefined {
    const last = this.last
    if (last && sameFingerprint(last.fingerprint, b, at)) return last
    for (const w of this.writers) {
      if (sameFingerprint(w.fingerprint, b, at)) {
        this.last = w
        return w
      }
    }
    return undefined
  }
}

function sameFingerprint(fp: Buffer, b: Buffer, at: number): boolean {
  return b.readUInt32LE(at) === fp.readUInt32LE(0) && b.readUInt32LE(at + 4) === fp.readUInt32LE(4)
}
