/**
 * Batched inserts through @clickhouse/client. The body format is chosen by measurement
 * (bench/clickhouse-insert.ts; results in bench/results/): see DEFAULT_INSERT_FORMAT.
 */
import { Readable } from 'node:stream'
import type { DataFormat } from '@clickhouse/client'
import { DownstreamError, InvalidInputError } from '../core/errors.ts'
import type { ClickHouse } from './client.ts'
import type { TableSpec } from './tables.ts'

export type InsertFormat = 'JSONEachRow' | 'JSONCompactEachRow' | 'CSV'
export const INSERT_FORMATS: readonly InsertFormat[] = ['JSONEachRow', 'JSONCompactEachRow', 'CSV']
export const DEFAULT_INSERT_FORMAT: InsertFormat = 'JSONCompactEachRow'

/** ClickHouse error codes that mean the data itself is bad: retrying the same rows cannot help. */
const BAD_DATA_CODES = new Set(['6', '26', '27', '38', '41', '53', '69', '70', '72', '117', '130', '131'])

function csvField(v: unknown): string {
  if (v === null || v === undefined) return '\\N'
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : 'nan'
  if (typeof v === 'boolean') return v ? 'true' : 'false'
  if (Array.isArray(v)) return csvQuote(`[${v.map(arrayItem).join(',')}]`)
  return csvQuote(String(v))
}

function arrayItem(v: unknown): string {
  if (v === null || v === undefined) return 'NULL'
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  return `'${String(v).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`
}

function csvQuote(s: string): string {
  return /[",\n\r]/.test(s) || s === '' ? `"${s.replace(/"/g, '""')}"` : s
}

/** Encodes records as the insert body of one format. Exposed for the benchmark. */
export function encodeRows<R>(
  spec: TableSpec<R>,
  records: readonly R[],
  format: InsertFormat,
): unknown[] | string {
  switch (format) {
    case 'JSONEachRow':
      return records.map((r) => Object.fromEntries(spec.columns.map((c) => [c.name, c.value(r)])))
    case 'JSONCompactEachRow':
      return records.map((r) => spec.columns.map((c) => c.value(r)))
    case 'CSV': {
      let out = ''
      for (const r of records) out += spec.columns.map((c) => csvField(c.value(r))).join(',') + '\n'
      return out
    }
  }
}

export async function insertRecords<R>(
  ch: ClickHouse,
  spec: TableSpec<R>,
  records: readonly R[],
  format: InsertFormat = DEFAULT_INSERT_FORMAT,
): Promise<void> {
  if (records.length === 0) return
  const body = encodeRows(spec, records, format)
  try {
    await ch.client.insert({
      table: `${ch.database}.${spec.name}`,
      columns: spec.columns.map((c) => c.name) as [string, ...string[]],
      format: format as DataFormat,
      // @clickhouse/client takes arrays of rows for JSON formats and a stream for raw text formats
      values: typeof body === 'string' ? Readable.from([Buffer.from(body)], { objectMode: false }) : body,
    })
  } catch (err) {
    throw classifyClickHouseError(err, spec.name)
  }
}

/** One place decides whether a ClickHouse failure is worth a retry (cf. Vector's clickhouse service). */
export function classifyClickHouseError(err: unknown, what: string): Error {
  const code = (err as { code?: string | number }).code
  if (code !== undefined && BAD_DATA_CODES.has(String(code))) {
    return new InvalidInputError(`ClickHouse rejected rows for ${what}: ${(err as Error).message}`, err)
  }
  return new DownstreamError(
    `ClickHouse insert into ${what} failed: ${(err as Error).message}`,
    undefined,
    err,
  )
}
