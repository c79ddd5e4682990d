/**
 * The writer schemas a reader resolves: every version breakid published (known by fingerprint from
 * the start), and the schemas of writers it has never seen, learned from the message header
 * `breakid.writer-schema`. That header is how a foreign producer (another language's Avro library,
 * no schema registry) writes a compatible evolution — an added field with a default, a field removed
 * that had one — and still gets its records read rather than dead-lettered.
 *
 * A learned schema is trusted only as far as the Avro specification's own rules go:
 * - its Parsing Canonical Form must have the fingerprint the record carries (a header naming another
 *   schema is refused, `bad_writer_schema`), so a reader never decodes bytes with a schema they were
 *   not written with;
 * - it must resolve against the reader's schema (Avro schema resolution, avsc `createResolver`);
 *   otherwise every record with its fingerprint is refused, `incompatible_schema`, with the field and
 *   the reason named.
 * Both outcomes are cached by fingerprint, the `MAX_LEARNED_WRITERS` (64) most recently used of each
 * (least recently used forgotten first), so a header is parsed once per writer, not per record, and a
 * producer cycling through schemas costs a bounded amount of memory. CRC-64 is no signature: anyone
 * who may produce to a topic can already write garbage to it, and this adds nothing they could not.
 */
import avro from 'avsc'
import type { Schema, Type } from 'avsc'
import { RecordDecodeError } from '../core/errors.ts'
import { fingerprintBytes } from './fingerprint.ts'

/** Kafka message header: the writer schema (Avro schema JSON, UTF-8) of the message's records. */
export const WRITER_SCHEMA_HEADER = 'breakid.writer-schema'
/** a header longer than this is refused unread (the span schema is ~2 KiB) */
export const MAX_WRITER_SCHEMA_BYTES = 64 * 1024
/** writers learned (and writers refused) remembered per record type */
export const MAX_LEARNED_WRITERS = 64

type Resolver = ReturnType<Type['createResolver']>

export interface Writer {
  /** the fingerprint, hex, as the record header carries it */
  key: string
  resolver: Resolver
}

/** avsc's `schema()` without attributes is the Parsing Canonical Form (no doc, defaults, aliases). */
export function canonicalForm(type: Type): string {
  return JSON.stringify(type.schema())
}

export function fingerprintOf(type: Type): Buffer {
  return fingerprintBytes(canonicalForm(type))
}

/** A bounded map whose least recently used entry goes first when it is full. */
class Recent<V> {
  private readonly map = new Map<string, V>()
  constructor(private readonly max: number) {}
  get(key: string): V | undefined {
    const v = this.map.get(key)
    if (v !== undefined) {
      this.map.delete(key)
      this.map.set(key, v)
    }
    return v
  }
  set(key: string, v: V): void {
    this.map.delete(key)
    this.map.set(key, v)
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value as string)
  }
  get size(): number {
    return this.map.size
  }
}

export class WriterSchemas {
  private readonly published = new Map<string, Writer>()
  private readonly learned: Recent<Writer>
  private readonly refused: Recent<RecordDecodeError>
  /** the last header parsed: a container's records share it */
  private lastHeader: { text: string; type: Type; key: string } | undefined

  constructor(
    private readonly name: string,
    private readonly reader: Type,
    publishedWriters: readonly Type[],
    maxLearned = MAX_LEARNED_WRITERS,
  ) {
    for (const writer of publishedWriters) {
      const key = fingerprintOf(writer).toString('hex')
      this.published.set(key, { key, resolver: reader.createResolver(writer) })
    }
    this.learned = new Recent(maxLearned)
    this.refused = new Recent(maxLearned)
  }

  /** writers learned from headers and remembered now */
  get learnedCount(): number {
    return this.learned.size
  }

  /** True when records with this fingerprint are read without a header. */
  known(key: string): boolean {
    return this.published.has(key) || this.learned.get(key) !== undefined
  }

  /**
   * The writer of a record whose header carries fingerprint `key`: a published one, one learned
   * before, or the one `headerSchema` (the message's `breakid.writer-schema` header) describes.
   * Throws RecordDecodeError: `unknown_schema` (no header), `bad_writer_schema` (a header that is not
   * an Avro schema or not the record's), `incompatible_schema` (it does not resolve to ours).
   */
  find(key: string, headerSchema: string | undefined): Writer {
    const writer = this.published.get(key) ?? this.learned.get(key)
    if (writer) return writer
    const refused = this.refused.get(key)
    if (refused) throw refused
    if (headerSchema === undefined) {
      throw new RecordDecodeError(
        `${this.name}: unknown writer schema fingerprint ${key} (a producer with a schema breakid did not ` +
          `publish sends it in the "${WRITER_SCHEMA_HEADER}" message header)`,
        'unknown_schema',
      )
    }
    const parsed = this.parse(headerSchema)
    if (parsed.key !== key) {
      throw new RecordDecodeError(
        `${this.name}: the "${WRITER_SCHEMA_HEADER}" header's schema has fingerprint ${parsed.key}, the record ${key}`,
        'bad_writer_schema',
      )
    }
    let resolver: Resolver
    try {
      resolver = this.reader.createResolver(parsed.type)
    } catch (err) {
      const error = new RecordDecodeError(
        `${this.name}: writer schema ${key} is incompatible with ours: ${incompatibility(this.reader, parsed.type, err)}`,
        'incompatible_schema',
        err,
      )
      this.refused.set(key, error)
      throw error
    }
    const learned = { key, resolver }
    this.learned.set(key, learned)
    return learned
  }

  private parse(text: string): { type: Type; key: string } {
    if (this.lastHeader?.text === text) return this.lastHeader
    const bad = (why: string, cause?: unknown) =>
      new RecordDecodeError(
        `${this.name}: the "${WRITER_SCHEMA_HEADER}" header ${why}`,
        'bad_writer_schema',
        cause,
      )
    if (Buffer.byteLength(text) > MAX_WRITER_SCHEMA_BYTES) {
      throw bad(`is over ${MAX_WRITER_SCHEMA_BYTES} bytes`)
    }
    let type: Type
    try {
      type = avro.Type.forSchema(JSON.parse(text) as Schema)
    } catch (err) {
      // a syntax error, a schema avsc refuses, or nesting deep enough to overflow the stack
      throw bad(`is not an Avro schema: ${(err as Error).message}`, err)
    }
    this.lastHeader = { text, type, key: fingerprintOf(type).toString('hex') }
    return this.lastHeader
  }
}

type RecordLike = Type & {
  fields: { name: string; aliases: string[]; type: Type; defaultValue(): unknown }[]
}
const isRecord = (t: Type): t is RecordLike => t.typeName === 'record' || t.typeName === 'error'

/**
 * Which field makes `writer` unreadable as `reader`: avsc says only "cannot read "string" as "long"",
 * so the fields of the two records are resolved one by one to name the first that fails.
 */
function incompatibility(reader: Type, writer: Type, err: unknown): string {
  const message = (err as Error).message
  if (!isRecord(reader) || !isRecord(writer)) return message
  if (reader.name !== writer.name && !(reader.aliases ?? []).includes(writer.name ?? '')) {
    return `the writer's record is ${writer.name}, ours ${reader.name} (${message})`
  }
  for (const field of reader.fields) {
    const names = [field.name, ...field.aliases]
    const theirs = writer.fields.find((f) => names.includes(f.name))
    if (!theirs) {
      if (field.defaultValue() === undefined) return `field ${field.name} is missing and has no default here`
      continue
    }
    try {
      field.type.createResolver(theirs.type)
    } catch (e) {
      return `field ${field.name}: ${(e as Error).message}`
    }
  }
  return message
}
