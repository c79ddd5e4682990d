/**
 * How each topic's messages become rows of its table, one Native block at a time. Spans — nearly all
 * the volume — are read from their Avro bytes straight into columns (avro-native.ts); hardware
 * samples and alerts, a record a second per instance at most, are decoded with avsc and appended
 * from the objects; dead letters are built from the message and its headers.
 *
 * A record that cannot be stored is refused alone, with the reason and its own bytes, and named by
 * its message offset — `offset:index` for a record inside a container (contract/container.ts).
 */
import type { RecordCodec } from '../contract/codec.ts'
import { forEachRecord, isContainer } from '../contract/container.ts'
import { RECORD_SCHEMAS, olderPublishedSchemas } from '../contract/schemas.ts'
import { codecs, TOPICS } from '../contract/topics.ts'
import { RecordDecodeError } from '../core/errors.ts'
import type { IncomingMessage } from '../bus/transport.ts'
import { type NativeBlock, OutOfRangeError } from '../store/native.ts'
import {
  alertsTable,
  type DeadLetter,
  deadLettersTable,
  hwSamplesTable,
  SPAN_STATUSES,
  spansTable,
  type TableSpec,
} from '../store/tables.ts'
import { appendRecord, blockFor } from '../store/writer.ts'
import { AvroNativeTranscoder } from './avro-native.ts'

/** A record that goes to the dead-letter topic instead of its table. */
export interface Rejected {
  /** the message offset, `offset:index` for a record in a container */
  offset: string
  /** the record's own bytes (the rest of a container whose framing broke) */
  value: Buffer
  reason: string
  error: string
}

/** Rows under construction for one table. */
export interface RowBlock {
  readonly native: NativeBlock
  /**
   * Appends the records of a message (only record `only` when given); the ones that cannot be stored
   * go to `rejected` and leave the block as it was.
   */
  append(m: IncomingMessage, rejected: Rejected[], only?: number): void
  reset(): void
}

export interface Route {
  readonly table: TableSpec<unknown>
  /** a block from this route's pool (blocks compile their readers once and are reused) */
  acquire(): RowBlock
  release(block: RowBlock): void
}

const EMPTY = Buffer.alloc(0)

/** A valid breakid record of another type on this topic (e.g. a hardware sample among spans). */
function wrongType(codec: RecordCodec<unknown>, table: string, bytes: Buffer): string | undefined {
  const other = Object.values(codecs).find((c) => (c as unknown) !== codec && c.recognises(bytes))
  return other ? `a ${other.name} record on the ${table} topic` : undefined
}

/** The record at `index` of a message, as bytes (for a dead letter). */
export function recordBytes(value: Buffer, index: number): Buffer {
  let out = value
  forEachRecord(
    value,
    (i, start, end) => {
      if (i === index) out = value.subarray(start, end)
    },
    (i, start) => {
      if (i === index) out = value.subarray(start)
    },
  )
  return out
}

/** Walks a message's records, calling `add` for each and recording the refused ones. */
function eachRecord(
  m: IncomingMessage,
  codec: RecordCodec<unknown>,
  table: string,
  rejected: Rejected[],
  only: number | undefined,
  add: (value: Buffer, start: number, end: number) => RecordDecodeError | undefined,
): void {
  const value = m.value ?? EMPTY
  const container = isContainer(value)
  const offset = (i: number) => (container ? `${m.offset}:${i}` : m.offset)
  forEachRecord(
    value,
    (i, start, end) => {
      if (only !== undefined && i !== only) return
      const err = add(value, start, end)
      if (!err) return
      const bytes = value.subarray(start, end)
      const other = err.reason === 'unknown_schema' ? wrongType(codec, table, bytes) : undefined
      rejected.push({
        offset: offset(i),
        value: bytes,
        reason: other ? 'wrong_type' : err.reason,
        error: other ?? err.message,
      })
    },
    (i, start, why) => {
      if (only !== undefined && i !== only) return
      rejected.push({
        offset: offset(i),
        value: value.subarray(start),
        reason: 'truncated',
        error: `${codec.name}: record container ${why}`,
      })
    },
  )
}

/** Decodes a record with avsc (headers: a foreign writer's schema) and appends it; the refusal, if any. */
function appendDecoded<R>(
  codec: RecordCodec<R>,
  table: TableSpec<R>,
  native: NativeBlock,
  bytes: Buffer,
  headers: Record<string, string>,
): RecordDecodeError | undefined {
  let record: R
  try {
    record = codec.decode(bytes, headers)
  } catch (err) {
    if (err instanceof RecordDecodeError) return err
    throw err
  }
  try {
    appendRecord(native, table, record)
  } catch (err) {
    if (err instanceof OutOfRangeError)
      return new RecordDecodeError(`${codec.name}: ${err.message}`, 'out_of_range', err)
    throw err
  }
  return undefined
}

class Pool<B extends RowBlock> {
  private readonly free: B[] = []
  constructor(private readonly make: () => B) {}
  acquire(): B {
    return this.free.pop() ?? this.make()
  }
  release(b: B): void {
    b.reset()
    this.free.push(b)
  }
}

/** Spans: read from their bytes into the columns, no objects. */
function transcodedRoute<R>(
  codec: RecordCodec<R>,
  table: TableSpec<R>,
  writerSchemas: readonly object[],
): Route {
  const pool = new Pool<RowBlock>(() => {
    const native = blockFor(table)
    const t = new AvroNativeTranscoder(codec.name, table, native, writerSchemas as never, {
      status: SPAN_STATUSES,
    })
    return {
      native,
      append: (m, rejected, only) =>
        eachRecord(m, codec as RecordCodec<unknown>, table.name, rejected, only, (v, s, e) => {
          const err = t.append(v, s, e)
          // a foreign writer whose schema travels in the message's headers (contract/writers.ts):
          // decoded by that schema with avsc and appended from the object
          if (err?.reason !== 'unknown_schema' || Object.keys(m.headers).length === 0) return err
          return appendDecoded(codec, table, native, v.subarray(s, e), m.headers)
        }),
      reset: () => native.reset(),
    }
  })
  return {
    table: table as TableSpec<unknown>,
    acquire: () => pool.acquire(),
    release: (b) => pool.release(b),
  }
}

/** Decoded with avsc, appended from the objects (nested records and arrays). */
function decodedRoute<R>(codec: RecordCodec<R>, table: TableSpec<R>): Route {
  const pool = new Pool<RowBlock>(() => {
    const native = blockFor(table)
    return {
      native,
      append: (m, rejected, only) =>
        eachRecord(m, codec as RecordCodec<unknown>, table.name, rejected, only, (v, s, e) =>
          appendDecoded(codec, table, native, v.subarray(s, e), m.headers),
        ),
      reset: () => native.reset(),
    }
  })
  return {
    table: table as TableSpec<unknown>,
    acquire: () => pool.acquire(),
    release: (b) => pool.release(b),
  }
}

/** Dead letters: the refused record as the payload, where it came from and why in the headers. */
function deadLetterRoute(): Route {
  const pool = new Pool<RowBlock>(() => {
    const native = blockFor(deadLettersTable)
    return {
      native,
      append: (m) => {
        const row: DeadLetter = {
          received_at_us: m.timestampMs * 1000,
          source_topic: m.headers['breakid-source-topic'] ?? 'unknown',
          source_partition: Number(m.headers['breakid-source-partition'] ?? 0) || 0,
          source_offset: m.headers['breakid-source-offset'] ?? m.offset,
          reason: m.headers['breakid-reason'] ?? 'unknown',
          error: m.headers['breakid-error'] ?? '',
          payload: m.value ?? EMPTY,
        }
        appendRecord(native, deadLettersTable, row)
      },
      reset: () => native.reset(),
    }
  })
  return {
    table: deadLettersTable as TableSpec<unknown>,
    acquire: () => pool.acquire(),
    release: (b) => pool.release(b),
  }
}

/** The route of every topic ingest reads. */
export function ingestRoutes(): Map<string, Route> {
  return new Map<string, Route>([
    [
      TOPICS.spans,
      transcodedRoute(codecs.span, spansTable, [
        RECORD_SCHEMAS.span.schema,
        ...olderPublishedSchemas('span'),
      ]),
    ],
    [TOPICS.hw, decodedRoute(codecs.hw, hwSamplesTable)],
    [TOPICS.alerts, decodedRoute(codecs.alert, alertsTable)],
    [TOPICS.deadLetter, deadLetterRoute()],
  ])
}
