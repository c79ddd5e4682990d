/**
 * Recorded telemetry from a file: CSV with a header line, or NDJSON (one JSON object per line),
 * with a `timestamp` column (ISO 8601, or epoch seconds / milliseconds / microseconds /
 * nanoseconds — told apart by magnitude).
 *
 * - Columns named like a HwSample field (executor_busy, in_flight, queue_depth, rss_bytes, …) make
 *   the row a hardware sample; columns named like a Span field (total_us, preprocess_us, status,
 *   output_confidence, …) make it a span. Fields the file lacks get neutral
 *   defaults — a healthy, unremarkable engine (executor half busy, 10 req/s arriving and completing,
 *   nothing queued or in flight; span stages 0, `ok`, null statistics), constant, so no detector
 *   fires on data that is not there; an empty cell in a hardware column repeats the instance's last
 *   value. `interval_ms` is the series' own median sampling interval; the instance comes from an
 *   `instance` column or `--instance`.
 * - Every other numeric column is a series for the generic anomaly detector, named after the column
 *   and labelled with the row's fleet and instance.
 * - Rows whose timestamp does not parse, or CSV rows with the wrong number of fields, are skipped and
 *   counted (the first few are reported by line); the rest of the file is replayed. A value that is
 *   not a number in a numeric column is left out of that row and counted.
 *
 * The file is read into memory and sorted by time (stable), so unsorted exports replay correctly.
 */
import { readFileSync } from 'node:fs'
import { extname } from 'node:path'
import { HW_NUMERIC_FIELDS, SPAN_NUMERIC_FIELDS } from '../contract/fields.ts'
import { blankSpan, type HwSample, type Span, type SpanStatus, stagesUs } from '../contract/records.ts'
import { InvalidInputError } from '../core/errors.ts'

export const TIMESTAMP_COLUMNS = ['timestamp', 'timestamp_us', 'time', 'ts'] as const

const HW_NUMERIC = HW_NUMERIC_FIELDS
const SPAN_NUMERIC = SPAN_NUMERIC_FIELDS

/** string columns of either record; they never become series */
const STRING_FIELDS = new Set([
  'instance',
  'fleet',
  'host',
  'model',
  'model_version',
  'device',
  'trace_id',
  'span_id',
  'request_id',
  'batch_id',
  'status',
  'error_class',
  'cache_hit',
])

type HwField = (typeof HW_NUMERIC)[number]
type SpanField = (typeof SPAN_NUMERIC)[number]
const HW_SET = new Set<string>(HW_NUMERIC)
const SPAN_SET = new Set<string>(SPAN_NUMERIC)

export type ReplayEvent =
  | { kind: 'span'; timestampUs: number; span: Span }
  | { kind: 'hw'; timestampUs: number; sample: HwSample }
  /** a value of a column no record reads: for the generic anomaly detector */
  | { kind: 'point'; timestampUs: number; series: string; value: number; fleet: string; instance: string }

export interface SkippedRow {
  line: number
  reason: string
}

export interface FileReplayInput {
  events: ReplayEvent[]
  /** median interval between consecutive timestamps, µs (per instance, then the median of those) */
  intervalUs: number | null
  rows: number
  skipped: number
  /** the first few skipped rows */
  skippedExamples: SkippedRow[]
  /** values that were not numbers in a numeric column */
  badValues: number
  columns: { timestamp: string; hw: string[]; span: string[]; series: string[]; ignored: string[] }
  instances: string[]
}

export class ReplayInputError extends InvalidInputError {
  constructor(message: string, cause?: unknown) {
    super(message, cause, 'BREAKID_REPLAY_INPUT')
  }
}

export interface FileReplayOptions {
  /** instance for rows without an `instance` column. Default 'replay'. */
  instance?: string
  fleet?: string
  /** force the format instead of guessing from the extension / first character */
  format?: 'csv' | 'ndjson'
}

type RawRow = { line: number; values: Record<string, unknown> }

/** Splits one CSV line (RFC 4180 quoting, no embedded newlines). */
export function splitCsvLine(line: string): string[] {
  const out: string[] = []
  let cur = ''
  let quoted = false
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!
    if (quoted) {
      if (c === '"') {
        if (line[i + 1] === '"') {
          cur += '"'
          i++
        } else quoted = false
      } else cur += c
    } else if (c === '"') quoted = true
    else if (c === ',') {
      out.push(cur)
      cur = ''
    } else cur += c
  }
  out.push(cur)
  return out.map((v) => v.trim())
}

/**
 * A timestamp as epoch µs, or undefined. ISO 8601 (no zone = UTC) or an epoch number whose magnitude
 * says its unit: < 1e11 seconds, < 1e14 milliseconds, < 1e17 microseconds, else nanoseconds.
 */
export function parseTimestampUs(value: unknown): number | undefined {
  if (typeof value === 'number') return epochUs(value)
  if (typeof value !== 'string') return undefined
  const s = value.trim()
  if (s === '') return undefined
  if (/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(s)) return epochUs(Number(s))
  const m =
    /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i.exec(
      s,
    )
  if (!m) return undefined
  const [, y, mo, d, h = '0', mi = '0', sec = '0', frac = '', zone] = m as unknown as string[]
  const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(sec))
  if (!Number.isFinite(ms) || new Date(ms).getUTCDate() !== Number(d) || Number(h) > 23 || Number(mi) > 59)
    return undefined
  let offsetMin = 0
  if (zone && zone.toUpperCase() !== 'Z') {
    const z = /^([+-])(\d{2}):?(\d{2})?$/.exec(zone)!
    offsetMin = (z[1] === '-' ? -1 : 1) * (Number(z[2]) * 60 + Number(z[3] ?? 0))
  }
  return (ms - offsetMin * 60_000) * 1000 + Number((frac ?? '').padEnd(6, '0').slice(0, 6) || '0')
}

function epochUs(n: number): number | undefined {
  if (!Number.isFinite(n) || n < 0) return undefined
  if (n < 1e11) return Math.round(n * 1e6)
  if (n < 1e14) return Math.round(n * 1e3)
  if (n < 1e17) return Math.round(n)
  return Math.round(n / 1e3)
}

/** Median of the positive gaps between consecutive sorted timestamps; null with fewer than two. */
export function medianIntervalUs(sortedTimestampsUs: number[]): number | null {
  const gaps: number[] = []
  for (let i = 1; i < sortedTimestampsUs.length; i++) {
    const g = sortedTimestampsUs[i]! - sortedTimestampsUs[i - 1]!
    if (g > 0) gaps.push(g)
  }
  if (gaps.length === 0) return null
  gaps.sort((a, b) => a - b)
  return gaps[Math.floor(gaps.length / 2)]!
}

function toNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined
  if (typeof v === 'boolean') return v ? 1 : 0
  if (typeof v !== 'string' || v.trim() === '') return undefined
  const n = Number(v)
  return Number.isFinite(n) ? n : undefined
}

const isEmpty = (v: unknown) => v === undefined || v === null || (typeof v === 'string' && v.trim() === '')

function readRows(
  text: string,
  format: 'csv' | 'ndjson',
  skip: (line: number, reason: string) => void,
): { header: string[]; rows: RawRow[] } {
  const lines = text.split(/\r?\n/)
  const rows: RawRow[] = []
  if (format === 'ndjson') {
    const header = new Set<string>()
    lines.forEach((l, i) => {
      if (l.trim() === '') return
      let obj: unknown
      try {
        obj = JSON.parse(l)
      } catch {
        skip(i + 1, 'not valid JSON')
        return
      }
      if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
        skip(i + 1, 'not a JSON object')
        return
      }
      for (const k of Object.keys(obj)) header.add(k)
      rows.push({ line: i + 1, values: obj as Record<string, unknown> })
    })
    return { header: [...header], rows }
  }
  const first = lines.findIndex((l) => l.trim() !== '')
  if (first < 0) return { header: [], rows }
  const header = splitCsvLine(lines[first]!.replace(/^\uFEFF/, ''))
  for (let i = first + 1; i < lines.length; i++) {
    const l = lines[i]!
    if (l.trim() === '') continue
    const fields = splitCsvLine(l)
    if (fields.length !== header.length) {
      skip(i + 1, `${fields.length} fields, the header has ${header.length}`)
      continue
    }
    const values: Record<string, unknown> = {}
    header.forEach((h, c) => {
      values[h] = fields[c]
    })
    rows.push({ line: i + 1, values })
  }
  return { header, rows }
}

function guessFormat(path: string, text: string): 'csv' | 'ndjson' {
  const ext = extname(path).toLowerCase()
  if (ext === '.ndjson' || ext === '.jsonl' || ext === '.json') return 'ndjson'
  if (ext === '.csv') return 'csv'
  return text.trimStart().startsWith('{') ? 'ndjson' : 'csv'
}

export function readReplayFile(path: string, opts: FileReplayOptions = {}): FileReplayInput {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new ReplayInputError(`--file ${path}: ${(err as Error).message}`, err)
  }
  return parseReplayText(text, { ...opts, format: opts.format ?? guessFormat(path, text) }, path)
}

/** Parses file contents (see readReplayFile); `source` names the input in errors. */
export function parseReplayText(text: string, opts: FileReplayOptions, source = 'input'): FileReplayInput {
  const format = opts.format ?? (text.trimStart().startsWith('{') ? 'ndjson' : 'csv')
  const skippedExamples: SkippedRow[] = []
  let skipped = 0
  const skip = (line: number, reason: string) => {
    skipped++
    if (skippedExamples.length < 5) skippedExamples.push({ line, reason })
  }
  const { header, rows } = readRows(text, format, skip)
  const unreadable = skipped
  if (header.length === 0 && rows.length === 0 && skipped === 0) {
    throw new ReplayInputError(`${source}: empty input — expected a header line and rows (CSV) or JSON lines`)
  }
  const tsColumn = TIMESTAMP_COLUMNS.find((c) => header.includes(c))
  if (!tsColumn) {
    throw new ReplayInputError(
      `${source}: no timestamp column — expected one named ${TIMESTAMP_COLUMNS.join(' / ')} ` +
        `(ISO 8601 or epoch s/ms/µs); columns found: ${header.join(', ') || 'none'}`,
    )
  }
  if (rows.length === 0) {
    throw new ReplayInputError(
      `${source}: no data rows${skipped ? ` (${skipped} unreadable: ${describe(skippedExamples)})` : ''}`,
    )
  }
  // column roles: a column is numeric when more than half of its non-empty values are numbers
  const others = header.filter((h) => h !== tsColumn)
  const hwCols = others.filter((h) => HW_SET.has(h))
  const spanCols = others.filter(
    (h) => SPAN_SET.has(h) || ['status', 'request_id', 'error_class'].includes(h),
  )
  const seriesCols: string[] = []
  const ignored: string[] = []
  for (const h of others) {
    if (HW_SET.has(h) || SPAN_SET.has(h) || STRING_FIELDS.has(h)) continue
    let nums = 0
    let nonEmpty = 0
    for (const r of rows) {
      const v = r.values[h]
      if (isEmpty(v)) continue
      nonEmpty++
      if (toNumber(v) !== undefined) nums++
    }
    if (nonEmpty > 0 && nums / nonEmpty > 0.5) seriesCols.push(h)
    else ignored.push(h)
  }
  const fallbackInstance = opts.instance ?? 'replay'
  const fleet = opts.fleet ?? 'replay'
  let badValues = 0
  const num = (r: RawRow, col: string): number | undefined => {
    const v = r.values[col]
    if (isEmpty(v)) return undefined
    const n = toNumber(v)
    if (n === undefined) badValues++
    return n
  }
  type Parsed = { ts: number; row: RawRow; instance: string }
  const parsed: Parsed[] = []
  for (const r of rows) {
    const ts = parseTimestampUs(r.values[tsColumn])
    if (ts === undefined) {
      skip(r.line, `timestamp ${JSON.stringify(r.values[tsColumn] ?? null)} is not ISO 8601 or epoch`)
      continue
    }
    const inst = r.values.instance
    parsed.push({ ts, row: r, instance: isEmpty(inst) ? fallbackInstance : String(inst) })
  }
  if (parsed.length === 0) {
    throw new ReplayInputError(
      `${source}: none of ${rows.length} rows has a readable ${tsColumn} (${describe(skippedExamples)})`,
    )
  }
  parsed.sort((a, b) => a.ts - b.ts)
  const perInstance = new Map<string, number[]>()
  for (const p of parsed) {
    const list = perInstance.get(p.instance) ?? []
    list.push(p.ts)
    perInstance.set(p.instance, list)
  }
  const intervals = [...perInstance.values()]
    .map((ts) => medianIntervalUs(ts))
    .filter((x): x is number => x !== null)
    .sort((a, b) => a - b)
  const intervalUs = intervals.length ? intervals[Math.floor(intervals.length / 2)]! : null
  const intervalMs = Math.max(1, Math.round((intervalUs ?? 1e6) / 1000))

  const events: ReplayEvent[] = []
  const lastHw = new Map<string, Pick<HwSample, HwField>>()
  let seq = 0
  for (const { ts, row, instance } of parsed) {
    const str = (col: string, fallback: string) =>
      isEmpty(row.values[col]) ? fallback : String(row.values[col])
    const hasSpan = spanCols.some((c) => !isEmpty(row.values[c]))
    const hasHw = hwCols.some((c) => !isEmpty(row.values[c]))
    if (hasSpan) {
      const n = ++seq
      const span = blankSpan({
        timestamp_us: ts,
        trace_id: str('trace_id', n.toString(16).padStart(32, '0')),
        span_id: str('span_id', n.toString(16).padStart(16, '0')),
        request_id: str('request_id', `replay-${row.line}`),
        fleet: str('fleet', fleet),
        host: str('host', instance),
        instance,
        model: str('model', 'replay'),
        model_version: str('model_version', ''),
        device: str('device', 'cpu'),
        batch_id: str('batch_id', ''),
        batch_size: 1,
        status: spanStatus(row.values.status),
        error_class: isEmpty(row.values.error_class) ? null : String(row.values.error_class),
        cache_hit: row.values.cache_hit === true || row.values.cache_hit === 'true',
      })
      for (const c of SPAN_NUMERIC) {
        const v = num(row, c)
        if (v !== undefined) (span as unknown as Record<SpanField, number>)[c] = v
      }
      if (num(row, 'total_us') === undefined) {
        span.total_us = stagesUs(span)
      }
      events.push({ kind: 'span', timestampUs: ts, span })
    }
    if (hasHw) {
      // A field the file lacks is healthy and unremarkable, and constant, so no detector fires on
      // data that is not there; an empty cell repeats the instance's last value of that field.
      const perSecond = intervalMs / 1000
      const last: Pick<HwSample, HwField> = lastHw.get(instance) ?? {
        process_cpu: 0.5,
        rss_bytes: 0,
        heap_used_bytes: 0,
        event_loop_delay_p99_ms: 0,
        gc_ms: 0,
        queue_depth: 0,
        in_flight: 0,
        arrivals: Math.max(1, Math.round(10 * perSecond)),
        completions: Math.max(1, Math.round(10 * perSecond)),
        executor_busy: 0.5,
        interval_ms: intervalMs,
      }
      for (const c of HW_NUMERIC) {
        const v = num(row, c)
        if (v !== undefined) last[c] = v
      }
      lastHw.set(instance, last)
      const sample: HwSample = {
        timestamp_us: ts,
        fleet: str('fleet', fleet),
        host: str('host', instance),
        instance,
        ...last,
        devices: [],
      }
      events.push({ kind: 'hw', timestampUs: ts, sample })
    }
    for (const c of seriesCols) {
      const v = num(row, c)
      if (v !== undefined)
        events.push({
          kind: 'point',
          timestampUs: ts,
          series: c,
          value: v,
          fleet: str('fleet', fleet),
          instance,
        })
    }
  }
  return {
    events,
    intervalUs,
    rows: rows.length + unreadable,
    skipped,
    skippedExamples,
    badValues,
    columns: { timestamp: tsColumn, hw: hwCols, span: spanCols, series: seriesCols, ignored },
    instances: [...perInstance.keys()],
  }
}

function spanStatus(v: unknown): SpanStatus {
  const s = String(v ?? 'ok')
  if (s === 'client_error' || s === 'server_error') return s
  if (/^\d{3}$/.test(s)) return Number(s) >= 500 ? 'server_error' : Number(s) >= 400 ? 'client_error' : 'ok'
  return 'ok'
}

function describe(examples: SkippedRow[]): string {
  return examples.map((e) => `line ${e.line}: ${e.reason}`).join('; ')
}
