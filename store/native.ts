/**
 * ClickHouse's `Native` format, written in JavaScript: one block of columns, each column's values
 * contiguous in the layout ClickHouse keeps in memory, so the server (or chDB) reads it with little
 * more than a copy. Measured in bench/ingest-formats.ts against JSON, RowBinary and Avro bodies.
 *
 * Block layout (no block info; the HTTP and `INSERT … FORMAT Native` layout):
 *
 *     varint columns, varint rows
 *     per column: string name, string type, data
 *
 * where a string is a varint length and its bytes, and data depends on the type: fixed-width
 * numbers little-endian, `String` a varint length and bytes per row, `FixedString(N)` N bytes per
 * row, `Nullable(T)` a byte per row (1 = null) then T's data with defaults in the null rows,
 * `Array(T)` the cumulative end offsets (UInt64) then T's data. `LowCardinality(T)` columns are sent
 * as T: ClickHouse converts on insert (the dictionary encoding would cost a hash per row here).
 *
 * Builders grow by doubling and are reused across blocks (`reset`), so a steady ingest allocates
 * nothing per row. A row that fails half-way is undone with `truncate(rows)`: every builder has at
 * most one value past `rows`.
 */

/** A growable byte buffer with the primitive writes the Native format needs. */
export class ByteSink {
  buf: Buffer
  pos = 0

  constructor(initial = 4096) {
    this.buf = Buffer.allocUnsafe(initial)
  }

  ensure(extra: number): void {
    if (this.pos + extra <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.pos + extra) size *= 2
    const next = Buffer.allocUnsafe(size)
    this.buf.copy(next, 0, 0, this.pos)
    this.buf = next
  }

  varint(n: number): void {
    this.ensure(10)
    while (n >= 0x80) {
      this.buf[this.pos++] = (n & 0x7f) | 0x80
      n = Math.floor(n / 128)
    }
    this.buf[this.pos++] = n
  }

  string(s: string): void {
    const len = Buffer.byteLength(s)
    this.varint(len)
    this.ensure(len)
    this.pos += this.buf.write(s, this.pos, 'utf8')
  }

  bytes(src: Uint8Array, start = 0, end = src.length): void {
    const len = end - start
    this.ensure(len)
    this.buf.set(src.subarray(start, end), this.pos)
    this.pos += len
  }

  /** the bytes written so far (a view: valid until the next write or reset) */
  view(): Buffer {
    return this.buf.subarray(0, this.pos)
  }
}

/** One column of a block under construction. */
export interface ColumnBuilder {
  readonly type: string
  rows: number
  /** append the column's default (0, '', empty array): what a null row holds under a Nullable */
  pushDefault(): void
  /** a JavaScript value of the column's type (the generic path from decoded records) */
  pushValue(value: unknown): void
  /** drop the values after the first `rows` (at most one: the row that failed) */
  truncate(rows: number): void
  /** the column's data in the Native layout */
  writeTo(out: ByteSink): void
  reset(): void
}

type NumericArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | BigInt64Array

/** A value a column cannot hold (a negative count, a duration past UInt32): the row is refused. */
export class OutOfRangeError extends RangeError {
  constructor(
    readonly type: string,
    readonly value: unknown,
  ) {
    super(`${String(value)} is out of range for ${type}`)
  }
}

/** Integer bounds of the fixed-width types; floats are unbounded. */
const INT_RANGE: Record<string, [number, number]> = {
  UInt8: [0, 255],
  Bool: [0, 1],
  Int8: [-128, 127],
  UInt16: [0, 65535],
  UInt32: [0, 4294967295],
  Int32: [-2147483648, 2147483647],
}

/** Fixed-width numbers held in a typed array. */
export class NumberBuilder implements ColumnBuilder {
  rows = 0
  values: NumericArray
  /** integer bounds (undefined for floats): `pushValue` refuses what is outside, `push` trusts */
  readonly range: [number, number] | undefined
  constructor(
    readonly type: string,
    private readonly make: (n: number) => Exclude<NumericArray, BigInt64Array>,
  ) {
    this.values = make(1024)
    this.range = INT_RANGE[type.startsWith('Enum8(') ? 'Int8' : type]
  }
  push(v: number): void {
    if (this.rows === this.values.length) this.grow()
    ;(this.values as Float64Array)[this.rows++] = v
  }
  pushDefault(): void {
    this.push(0)
  }
  pushValue(value: unknown): void {
    const v = typeof value === 'boolean' ? (value ? 1 : 0) : Number(value ?? 0)
    if (this.range && !(Number.isInteger(v) && v >= this.range[0] && v <= this.range[1])) {
      throw new OutOfRangeError(this.type, value)
    }
    this.push(v)
  }
  private grow(): void {
    const next = this.make(this.values.length * 2)
    next.set(this.values as Float64Array)
    this.values = next
  }
  truncate(rows: number): void {
    this.rows = Math.min(this.rows, rows)
  }
  writeTo(out: ByteSink): void {
    const v = this.values
    out.bytes(new Uint8Array(v.buffer, v.byteOffset, this.rows * v.BYTES_PER_ELEMENT))
  }
  reset(): void {
    this.rows = 0
  }
}

/**
 * Int64/UInt64/DateTime64: values up to 2^53 arrive as JavaScript numbers (microsecond times,
 * durations); they are split into two 32-bit halves here rather than going through BigInt per row.
 */
export class Int64Builder implements ColumnBuilder {
  rows = 0
  private words = new Uint32Array(2048)
  constructor(readonly type: string) {}
  push(v: number): void {
    if (this.rows * 2 === this.words.length) {
      const next = new Uint32Array(this.words.length * 2)
      next.set(this.words)
      this.words = next
    }
    // floor division keeps the low word in [0, 2^32) for negative values too (two's complement)
    const hi = Math.floor(v / 4294967296)
    const i = this.rows * 2
    this.words[i] = v - hi * 4294967296
    this.words[i + 1] = hi
    this.rows++
  }
  pushDefault(): void {
    this.push(0)
  }
  pushValue(value: unknown): void {
    const v = Number(value ?? 0)
    if (!Number.isSafeInteger(v) || (v < 0 && this.type === 'UInt64'))
      throw new OutOfRangeError(this.type, value)
    this.push(v)
  }
  truncate(rows: number): void {
    this.rows = Math.min(this.rows, rows)
  }
  writeTo(out: ByteSink): void {
    out.bytes(new Uint8Array(this.words.buffer, 0, this.rows * 8))
  }
  reset(): void {
    this.rows = 0
  }
}

/** A column whose rows are bytes appended to one buffer, written as they are (String, FixedString). */
abstract class BytesColumn implements ColumnBuilder {
  rows = 0
  readonly data = new ByteSink(16384)
  abstract readonly type: string
  abstract pushDefault(): void
  abstract pushValue(value: unknown): void
  abstract truncate(rows: number): void
  writeTo(out: ByteSink): void {
    out.bytes(this.data.buf, 0, this.data.pos)
  }
  reset(): void {
    this.rows = 0
    this.data.pos = 0
  }
}

export class StringBuilder extends BytesColumn {
  private lastStart = 0
  constructor(readonly type = 'String') {
    super()
  }
  /** append a UTF-8 string already in bytes */
  pushBytes(src: Buffer, start: number, end: number): void {
    const data = this.data
    const len = end - start
    this.lastStart = data.pos
    data.ensure(len + 5)
    const buf = data.buf
    let at = data.pos
    if (len < 0x80) buf[at++] = len
    else {
      let n = len
      while (n >= 0x80) {
        buf[at++] = (n & 0x7f) | 0x80
        n >>>= 7
      }
      buf[at++] = n
    }
    // short strings (names, ids) copy faster byte by byte than through a native call
    if (len <= 64) for (let i = start; i < end; i++) buf[at++] = src[i]!
    else at += src.copy(buf, at, start, end)
    data.pos = at
    this.rows++
  }
  push(s: string): void {
    this.lastStart = this.data.pos
    this.data.string(s)
    this.rows++
  }
  pushDefault(): void {
    this.push('')
  }
  pushValue(value: unknown): void {
    this.push(value === null || value === undefined ? '' : String(value))
  }
  truncate(rows: number): void {
    if (this.rows > rows) {
      this.data.pos = this.lastStart
      this.rows = rows
    }
  }
}

export class FixedStringBuilder extends BytesColumn {
  readonly type: string
  constructor(readonly width: number) {
    super()
    this.type = `FixedString(${width})`
  }
  /** reserve the next row's bytes and return where they start in `data.buf` */
  claim(): number {
    this.data.ensure(this.width)
    const at = this.data.pos
    this.data.pos += this.width
    this.rows++
    return at
  }
  pushDefault(): void {
    this.data.buf.fill(0, this.claim(), this.data.pos)
  }
  /** bytes as they are; a string as hex, which must spell exactly `width` bytes */
  pushValue(value: unknown): void {
    let b: Buffer
    if (Buffer.isBuffer(value)) b = value
    else {
      const hex = String(value ?? '')
      b = Buffer.from(hex, 'hex')
      if (hex.length !== this.width * 2 || b.length !== this.width)
        throw new OutOfRangeError(this.type, value)
    }
    if (b.length > this.width) throw new OutOfRangeError(this.type, value)
    const at = this.claim()
    this.data.buf.fill(0, at, this.data.pos)
    b.copy(this.data.buf, at)
  }
  truncate(rows: number): void {
    if (this.rows > rows) {
      this.data.pos -= (this.rows - rows) * this.width
      this.rows = rows
    }
  }
}

export class NullableBuilder<B extends ColumnBuilder> implements ColumnBuilder {
  rows = 0
  private nulls = new Uint8Array(1024)
  readonly type: string
  constructor(readonly inner: B) {
    this.type = `Nullable(${inner.type})`
  }
  /** marks the next row null or not; a non-null row's value is then pushed to `inner` */
  mark(isNull: boolean): void {
    if (this.rows === this.nulls.length) {
      const next = new Uint8Array(this.nulls.length * 2)
      next.set(this.nulls)
      this.nulls = next
    }
    this.nulls[this.rows++] = isNull ? 1 : 0
    if (isNull) this.inner.pushDefault()
  }
  pushDefault(): void {
    this.mark(true)
  }
  pushValue(value: unknown): void {
    const isNull = value === null || value === undefined
    this.mark(isNull)
    if (!isNull) this.inner.pushValue(value)
  }
  truncate(rows: number): void {
    this.rows = Math.min(this.rows, rows)
    this.inner.truncate(rows)
  }
  writeTo(out: ByteSink): void {
    out.bytes(this.nulls, 0, this.rows)
    this.inner.writeTo(out)
  }
  reset(): void {
    this.rows = 0
    this.inner.reset()
  }
}

export class ArrayBuilder implements ColumnBuilder {
  rows = 0
  private readonly ends = new Int64Builder('UInt64')
  private lastLength = 0
  readonly type: string
  constructor(readonly inner: ColumnBuilder) {
    this.type = `Array(${inner.type})`
  }
  pushDefault(): void {
    this.pushValue([])
  }
  pushValue(value: unknown): void {
    const items = Array.isArray(value) ? value : []
    for (const item of items) this.inner.pushValue(item)
    this.lastLength = items.length
    this.ends.push(this.inner.rows)
    this.rows++
  }
  truncate(rows: number): void {
    if (this.rows > rows) {
      this.rows = rows
      this.ends.truncate(rows)
      // an array row pushes its items before its end offset: drop them one by one
      for (let i = 0; i < this.lastLength; i++) this.inner.truncate(this.inner.rows - 1)
    }
  }
  writeTo(out: ByteSink): void {
    this.ends.writeTo(out)
    this.inner.writeTo(out)
  }
  reset(): void {
    this.rows = 0
    this.ends.reset()
    this.inner.reset()
  }
}

const FIXED: Record<string, (n: number) => Exclude<NumericArray, BigInt64Array>> = {
  UInt8: (n) => new Uint8Array(n),
  Bool: (n) => new Uint8Array(n),
  Int8: (n) => new Int8Array(n),
  UInt16: (n) => new Uint16Array(n),
  UInt32: (n) => new Uint32Array(n),
  Int32: (n) => new Int32Array(n),
  Float32: (n) => new Float32Array(n),
  Float64: (n) => new Float64Array(n),
}

/** The type a column is sent as: LowCardinality is converted by ClickHouse on insert. */
export function wireType(type: string): string {
  const lc = /^LowCardinality\((.*)\)$/.exec(type)
  return lc ? wireType(lc[1]!) : type
}

/** A builder for a ClickHouse column type (the wire type: see `wireType`). */
export function builderFor(type: string): ColumnBuilder {
  const t = wireType(type)
  const fixed = FIXED[t]
  if (fixed) return new NumberBuilder(t, fixed)
  if (t.startsWith('Enum8(')) return new NumberBuilder(t, FIXED.Int8!)
  if (t === 'Int64' || t === 'UInt64' || t.startsWith('DateTime64(')) return new Int64Builder(t)
  if (t === 'String') return new StringBuilder()
  const fs = /^FixedString\((\d+)\)$/.exec(t)
  if (fs) return new FixedStringBuilder(Number(fs[1]))
  const nullable = /^Nullable\((.*)\)$/.exec(t)
  if (nullable) return new NullableBuilder(builderFor(nullable[1]!))
  const array = /^Array\((.*)\)$/.exec(t)
  if (array) return new ArrayBuilder(builderFor(array[1]!))
  throw new Error(`no Native builder for column type ${type}`)
}

/** Named columns → one Native block. */
export class NativeBlock {
  readonly builders: ColumnBuilder[]
  private readonly out = new ByteSink(1 << 20)

  constructor(readonly columns: readonly { name: string; type: string }[]) {
    this.builders = columns.map((c) => builderFor(c.type))
  }

  get rows(): number {
    return this.builders[0]?.rows ?? 0
  }

  /** undo a row that failed half-way: every column back to `rows` values */
  truncate(rows: number): void {
    for (const b of this.builders) b.truncate(rows)
  }

  /**
   * The block's bytes: a view into a buffer this block reuses, valid until the next `encode` or
   * `reset` (copy it, or finish the insert, before building the next block into the same object).
   */
  encode(): Buffer {
    const rows = this.rows
    for (const [i, b] of this.builders.entries()) {
      if (b.rows !== rows) throw new Error(`column ${this.columns[i]!.name} has ${b.rows} of ${rows} rows`)
    }
    const out = this.out
    out.pos = 0
    out.varint(this.columns.length)
    out.varint(rows)
    for (const [i, c] of this.columns.entries()) {
      out.string(c.name)
      out.string(this.builders[i]!.type)
      this.builders[i]!.writeTo(out)
    }
    return out.view()
  }

  reset(): void {
    for (const b of this.builders) b.reset()
  }
}
