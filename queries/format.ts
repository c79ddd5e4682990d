/**
 * Renders query results for people (`table`) and programs (`json`, `ndjson`, `csv`). Only the table
 * rounds numbers; the machine formats keep every value as the query returned it.
 */
import type { QueryResult } from './runner.ts'

export type OutputFormat = 'table' | 'json' | 'ndjson' | 'csv'
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['table', 'json', 'ndjson', 'csv']

export const CONTENT_TYPES: Record<OutputFormat, string> = {
  table: 'text/plain; charset=utf-8',
  json: 'application/json; charset=utf-8',
  ndjson: 'application/x-ndjson; charset=utf-8',
  csv: 'text/csv; charset=utf-8',
}

export interface TableOptions {
  /** longer cells are cut with '…' (default 60 characters) */
  maxCellWidth?: number
  /** decimals kept for floating-point columns (default 3) */
  maxDecimals?: number
}

type Result = Pick<QueryResult, 'columns' | 'rows'> & { truncated?: boolean }

export function formatResult(result: Result, format: OutputFormat, opts: TableOptions = {}): string {
  switch (format) {
    case 'table':
      return toTable(result, opts)
    case 'json':
      return toJson(result)
    case 'ndjson':
      return toNdjson(result)
    case 'csv':
      return toCsv(result)
  }
}

/** Column names made unique (`x`, `x_2`), so `SELECT 1, 1` still gives one key per column. */
export function uniqueNames(result: Result): string[] {
  const seen = new Map<string, number>()
  return result.columns.map((c) => {
    const n = (seen.get(c.name) ?? 0) + 1
    seen.set(c.name, n)
    return n === 1 ? c.name : `${c.name}_${n}`
  })
}

/** Rows as objects keyed by column name. */
export function toObjects(result: Result): Record<string, unknown>[] {
  const names = uniqueNames(result)
  return result.rows.map((row) => Object.fromEntries(names.map((name, i) => [name, row[i] ?? null])))
}

/** A JSON array of objects. */
export function toJson(result: Result): string {
  return JSON.stringify(toObjects(result))
}

/** One JSON object per line, each line ended by `\n`. */
export function toNdjson(result: Result): string {
  return toObjects(result)
    .map((o) => `${JSON.stringify(o)}\n`)
    .join('')
}

/** RFC 4180: header line, CRLF line ends, fields with `"`, `,`, CR or LF quoted, `"` doubled. NULL is empty. */
export function toCsv(result: Result): string {
  const lines = [result.columns.map((c) => csvField(c.name))]
  for (const row of result.rows) lines.push(row.map((v) => csvField(plainText(v))))
  return lines.map((l) => `${l.join(',')}\r\n`).join('')
}

function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}

/** A value as text without rounding: NULL as '', arrays, maps and tuples as JSON. */
function plainText(v: unknown): string {
  if (v === null || v === undefined) return ''
  if (typeof v === 'string') return v
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v)
  return JSON.stringify(v)
}

const NUMERIC = /^(?:U?Int\d+|Float\d+|Decimal(?:\d+)?(?:\(.*\))?|BFloat16)$/
const FLOAT = /^(?:Float\d+|BFloat16)$/

function baseType(type: string): string {
  const m = /^(?:Nullable|LowCardinality)\((.*)\)$/.exec(type)
  return m ? baseType(m[1]!) : type
}

/**
 * An aligned text table: numbers right-aligned, floating-point columns rounded to at most
 * `maxDecimals` and padded to the same number of decimals so the points line up; NULL shown as
 * NULL; control characters escaped so each row stays on one line. Ends with a row count.
 */
export function toTable(result: Result, opts: TableOptions = {}): string {
  const maxCellWidth = opts.maxCellWidth ?? 60
  const maxDecimals = opts.maxDecimals ?? 3
  const names = result.columns.map((c) => c.name)
  const cells: string[][] = result.rows.map(() => [])
  const rightAligned: boolean[] = []
  result.columns.forEach((col, i) => {
    const type = baseType(col.type)
    const values = result.rows.map((r) => r[i])
    const numeric =
      NUMERIC.test(type) || (values.length > 0 && values.every((v) => v === null || typeof v === 'number'))
    rightAligned.push(numeric)
    const texts =
      FLOAT.test(type) || (numeric && values.some((v) => typeof v === 'number' && !Number.isInteger(v)))
        ? floatColumn(values, maxDecimals)
        : values.map(cellText)
    texts.forEach((t, r) => {
      cells[r]!.push(truncate(t, maxCellWidth))
    })
  })
  const widths = names.map((n, i) => Math.max(n.length, ...cells.map((row) => row[i]!.length)))
  const pad = (text: string, i: number) =>
    rightAligned[i] ? text.padStart(widths[i]!) : text.padEnd(widths[i]!)
  const line = (row: string[]) =>
    row
      .map((t, i) => pad(t, i))
      .join('  ')
      .trimEnd()
  const out = [line(names.map((n) => truncate(n, maxCellWidth))), line(widths.map((w) => '-'.repeat(w)))]
  for (const row of cells) out.push(line(row))
  const n = result.rows.length
  out.push(`(${n} row${n === 1 ? '' : 's'}${result.truncated ? `, truncated at ${n}` : ''})`)
  return `${out.join('\n')}\n`
}

function cellText(v: unknown): string {
  if (v === null || v === undefined) return 'NULL'
  const text = typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v)
  let out = ''
  for (const ch of text) {
    const code = ch.charCodeAt(0)
    out +=
      code >= 0x20 && code !== 0x7f ? ch : (CONTROL_ESCAPES[ch] ?? `\\x${code.toString(16).padStart(2, '0')}`)
  }
  return out
}

const CONTROL_ESCAPES: Record<string, string> = { '\n': '\\n', '\t': '\\t', '\r': '\\r' }

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, Math.max(1, max - 1))}…` : text
}

/**
 * Rounds a column to at most `maxDecimals`, then shows every value with the most decimals any of
 * them still needs, so 1.5 and 2.25 print as 1.50 and 2.25. Magnitudes a fixed notation would
 * mangle (below 10^-maxDecimals but not zero, or 10^15 and above) use exponent notation.
 */
function floatColumn(values: unknown[], maxDecimals: number): string[] {
  const decimalsNeeded = (n: number) => {
    const fixed = n.toFixed(maxDecimals).replace(/0+$/, '')
    return fixed.length - fixed.indexOf('.') - 1
  }
  const special = (n: number) =>
    !Number.isFinite(n) || (n !== 0 && Math.abs(n) < 10 ** -maxDecimals) || Math.abs(n) >= 1e15
  let decimals = 0
  for (const v of values) {
    if (typeof v === 'number' && !special(v)) decimals = Math.max(decimals, decimalsNeeded(v))
  }
  return values.map((v) => {
    if (typeof v !== 'number') return cellText(v)
    if (!Number.isFinite(v)) return String(v)
    if (special(v)) return v.toExponential(2)
    return v.toFixed(decimals)
  })
}
