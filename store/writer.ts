/**
 * Inserts through @clickhouse/client, on a server and on chDB alike: every insert is one block in
 * ClickHouse's Native format (store/native.ts), sent as `INSERT INTO t (…) FORMAT Native` with the
 * block as the body. Chosen by measurement against JSON, RowBinary and Avro bodies in
 * bench/ingest-formats.ts (results in bench/results/ingest-formats.json).
 *
 * An insert may carry a deduplication token: ClickHouse drops a block whose token it has seen among
 * the table's last inserts (tables.ts DEDUP_WINDOW_BLOCKS), and the materialized views fed by it
 * drop their part too. The ingester derives tokens from Kafka offsets, so a block inserted again
 * after a crash or a rebalance is stored once.
 */
import { Readable } from 'node:stream'
import { DownstreamError, InvalidInputError } from '../core/errors.ts'
import type { ClickHouse } from './client.ts'
import { classifyClickHouseFailure } from './errors.ts'
import { ident } from './client.ts'
import { NativeBlock, OutOfRangeError } from './native.ts'
import type { TableSpec } from './tables.ts'

export interface InsertOptions {
  /** `insert_deduplication_token`: ClickHouse stores a block with a token it has seen once */
  token?: string
}

/** A Native block for a table's columns (LowCardinality sent as its inner type). */
export function blockFor<R>(spec: TableSpec<R>): NativeBlock {
  return new NativeBlock(spec.columns.map((c) => ({ name: c.name, type: c.type })))
}

/**
 * Appends one decoded record. A value the column cannot hold throws OutOfRangeError and leaves the
 * block as it was before the call.
 */
export function appendRecord<R>(block: NativeBlock, spec: TableSpec<R>, record: R): void {
  const rows = block.rows
  try {
    for (let i = 0; i < spec.columns.length; i++) block.builders[i]!.pushValue(spec.columns[i]!.value(record))
  } catch (err) {
    block.truncate(rows)
    throw err
  }
}

/** Inserts a block (no-op when empty). The block must not change until this resolves. */
export async function insertBlock<R>(
  ch: ClickHouse,
  spec: TableSpec<R>,
  block: NativeBlock,
  opts: InsertOptions = {},
): Promise<void> {
  if (block.rows === 0) return
  const columns = block.columns.map((c) => ident(c.name)).join(', ')
  try {
    const result = await ch.client.exec({
      query: `INSERT INTO ${ident(ch.database)}.${ident(spec.name)} (${columns}) FORMAT Native`,
      values: Readable.from([block.encode()], { objectMode: false }),
      clickhouse_settings: opts.token ? { insert_deduplication_token: opts.token } : {},
    })
    // the answer to an insert is empty; read it to the end so the connection is free again
    for await (const _ of result.stream) {
    }
  } catch (err) {
    throw classifyClickHouseError(err, spec.name)
  }
}

/** Inserts decoded records as one block. A record a column cannot hold fails the whole call. */
export async function insertRecords<R>(
  ch: ClickHouse,
  spec: TableSpec<R>,
  records: readonly R[],
  opts: InsertOptions = {},
): Promise<void> {
  if (records.length === 0) return
  const block = blockFor(spec)
  for (const r of records) {
    try {
      appendRecord(block, spec, r)
    } catch (err) {
      if (err instanceof OutOfRangeError) throw new InvalidInputError(`${spec.name}: ${err.message}`, err)
      throw err
    }
  }
  await insertBlock(ch, spec, block, opts)
}

/**
 * An insert failure as a breakid error: rows ClickHouse calls bad are not retriable (dead-lettered);
 * everything else is retried, since dropping rows on a guess would lose data (store/errors.ts).
 */
export function classifyClickHouseError(err: unknown, what: string): Error {
  if (err instanceof InvalidInputError || err instanceof DownstreamError) return err
  if (classifyClickHouseFailure(err).kind === 'bad_data') {
    return new InvalidInputError(`ClickHouse rejected rows for ${what}: ${(err as Error).message}`, err)
  }
  return new DownstreamError(
    `ClickHouse insert into ${what} failed: ${(err as Error).message}`,
    undefined,
    err,
  )
}
