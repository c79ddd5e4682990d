/**
 * Recorded telemetry from ClickHouse: spans and hw_samples of a time range, each read in pages
 * (keyset pagination on the sort key, `pageRows` rows a page) through the read-only query path
 * (queries/runner.ts `runSql`), and merged into one event-time order — a sample after the spans
 * that arrived up to its timestamp. Memory stays at two pages whatever the range.
 */
import type { ClickHouse } from '../store/client.ts'
import { hwSamplesTable, spansTable } from '../store/tables.ts'
import { HW_NUMERIC_FIELDS, SPAN_NUMERIC_FIELDS } from '../contract/fields.ts'
import type { DeviceSample, HwSample, Span } from '../contract/records.ts'
import { runSql } from '../queries/runner.ts'
import type { ReplayEvent } from './file-source.ts'

export interface ClickHouseRangeOptions {
  fromUs: number
  toUs: number
  /** only this instance */
  instance?: string
  /** rows per page. Default 10 000. */
  pageRows?: number
}

const sqlString = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`
const micros = (us: number) => `fromUnixTimestamp64Micro(toInt64(${Math.round(us)}), 'UTC')`

type Row = Record<string, unknown>

async function* pages(
  ch: ClickHouse,
  table: string,
  columns: string[],
  tieColumn: string,
  opts: ClickHouseRangeOptions,
): AsyncGenerator<Row> {
  const pageRows = opts.pageRows ?? 10_000
  let after: { ts: number; tie: string } | undefined
  for (;;) {
    const where = [
      `timestamp >= ${micros(opts.fromUs)}`,
      `timestamp < ${micros(opts.toUs)}`,
      ...(opts.instance ? [`instance = ${sqlString(opts.instance)}`] : []),
      ...(after ? [`(timestamp, ${tieColumn}) > (${micros(after.ts)}, ${sqlString(after.tie)})`] : []),
    ]
    const sql =
      `SELECT toUnixTimestamp64Micro(timestamp) AS timestamp_us, ${columns.join(', ')} ` +
      `FROM ${table} WHERE ${where.join(' AND ')} ORDER BY timestamp, ${tieColumn} LIMIT ${pageRows}`
    const res = await runSql(ch, sql, { limitRows: pageRows })
    const names = res.columns.map((c) => c.name)
    for (const values of res.rows) {
      const row: Row = {}
      names.forEach((n, i) => {
        row[n] = values[i]
      })
      yield row
    }
    if (res.rows.length < pageRows) return
    const last = res.rows[res.rows.length - 1]!
    after = { ts: Number(last[0]), tie: String(last[names.indexOf(tieColumn)]) }
  }
}

const nums = <T>(row: Row, keys: readonly string[], into: T): T => {
  for (const k of keys) {
    const v = row[k]
    ;(into as Record<string, unknown>)[k] = v === null ? null : typeof v === 'string' ? Number(v) : v
  }
  return into
}

function toSpan(row: Row): Span {
  const span = { ...row, timestamp_us: Number(row.timestamp_us) } as unknown as Span
  return nums(row, SPAN_NUMERIC_FIELDS, span)
}

function toHwSample(row: Row): HwSample {
  const arr = (k: string) => (Array.isArray(row[`device_${k}`]) ? (row[`device_${k}`] as unknown[]) : [])
  const devices: DeviceSample[] = arr('device').map((d, i) => ({
    device: String(d),
    utilization: (arr('utilization')[i] as number | null) ?? null,
    memory_used_bytes: arr('memory_used_bytes')[i] == null ? null : Number(arr('memory_used_bytes')[i]),
    memory_total_bytes: arr('memory_total_bytes')[i] == null ? null : Number(arr('memory_total_bytes')[i]),
    power_w: (arr('power_w')[i] as number | null) ?? null,
    temperature_c: (arr('temperature_c')[i] as number | null) ?? null,
  }))
  const sample = {
    timestamp_us: Number(row.timestamp_us),
    fleet: String(row.fleet),
    host: String(row.host),
    instance: String(row.instance),
    devices,
  } as HwSample
  return nums(row, HW_NUMERIC_FIELDS, sample)
}

/** Spans and hardware samples of [fromUs, toUs) in event-time order. */
export async function* clickhouseEvents(
  ch: ClickHouse,
  opts: ClickHouseRangeOptions,
): AsyncGenerator<ReplayEvent> {
  // each column as the record holds it (hex ids, not their stored bytes)
  const select = (cols: { name: string; read?: string }[]) =>
    cols
      .filter((c) => c.name !== 'timestamp')
      .map((c) => (c.read ? `${c.read} AS \`${c.name}\`` : `\`${c.name}\``))
  const spanCols = select(spansTable.columns)
  const hwCols = select(hwSamplesTable.columns)
  const spans = pages(ch, 'spans', spanCols, 'request_id', opts)
  const hw = pages(ch, 'hw_samples', hwCols, 'instance', opts)
  let nextSpan = await spans.next()
  let nextHw = await hw.next()
  while (!nextSpan.done || !nextHw.done) {
    const spanTs = nextSpan.done ? Number.POSITIVE_INFINITY : Number(nextSpan.value.timestamp_us)
    const hwTs = nextHw.done ? Number.POSITIVE_INFINITY : Number(nextHw.value.timestamp_us)
    if (spanTs <= hwTs && !nextSpan.done) {
      yield { kind: 'span', timestampUs: spanTs, span: toSpan(nextSpan.value) }
      nextSpan = await spans.next()
    } else if (!nextHw.done) {
      yield { kind: 'hw', timestampUs: hwTs, sample: toHwSample(nextHw.value) }
      nextHw = await hw.next()
    }
  }
}
