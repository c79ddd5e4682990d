/**
 * Runs named queries (queries/sql/*.sql, typed parameters bound by the server) and ad-hoc SQL, both
 * read-only (readonly.ts), and returns columns with their ClickHouse types plus rows of values.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { DataFormat } from '@clickhouse/client'
import type { ClickHouse } from '../store/client.ts'
import { InvalidInputError } from '../core/errors.ts'
import { serverErrorCode } from '../store/errors.ts'
import { RefusedSqlError, toQueryError, UnknownQueryError } from './errors.ts'
import type { QueryLimits } from './limits.ts'
import { parseQueryFile, type QueryDefinition, resolveParams } from './params.ts'
import { type QuerySlot, readOnlyPool } from './readonly.ts'
import { checkStatement, cteNames, guardPolicy, parseExplainAst, type Token } from './sql-guard.ts'
import { checkFormatted, cleanParseMessage, precheckSql } from './statement.ts'

export interface Column {
  name: string
  /** ClickHouse type, e.g. `UInt64`, `Nullable(Float64)`, `DateTime64(6, 'UTC')` */
  type: string
}

export interface QueryResult {
  columns: Column[]
  rows: unknown[][]
  /** true when more rows existed than `limitRows` */
  truncated: boolean
}

export interface NamedQueryResult extends QueryResult {
  query: string
  /** every parameter as it was used (defaults filled in, times as ISO 8601 UTC) */
  params: Record<string, string>
}

export interface RunOptions {
  /** keep at most this many rows and mark the result truncated (default: all for named queries) */
  limitRows?: number
  /** epoch ms that relative times (`-1h`, `now`) count from; default: the clock */
  nowMs?: number
  /** limits of the query and of the pool it waits in (default: DEFAULT_QUERY_LIMITS) */
  limits?: QueryLimits
  /** cancels the query (waiting or running): the caller went away or the server is closing */
  signal?: AbortSignal
}

/** Rows kept by `runSql` when the caller does not say. */
export const DEFAULT_SQL_LIMIT_ROWS = 10_000

const SQL_DIR = fileURLToPath(new URL('./sql/', import.meta.url))
let catalog: Map<string, QueryDefinition> | undefined

/** Reads every `.sql` file of a folder; a bad file throws, naming it. */
export function loadQueries(dir: string = SQL_DIR): Map<string, QueryDefinition> {
  const defs = new Map<string, QueryDefinition>()
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort()) {
    const source = join(dir, file)
    const def = parseQueryFile(readFileSync(source, 'utf8'), source)
    if (`${def.name}.sql` !== file) throw new Error(`${source}: name '${def.name}' does not match the file`)
    defs.set(def.name, def)
  }
  return defs
}

function queries(): Map<string, QueryDefinition> {
  catalog ??= loadQueries()
  return catalog
}

/** The named queries, by name. */
export function listQueries(): QueryDefinition[] {
  return [...queries().values()]
}

export function getQuery(name: string): QueryDefinition {
  const def = queries().get(name)
  if (!def) throw new UnknownQueryError(name, [...queries().keys()])
  return def
}

/** Runs a named query with user-supplied parameter strings (validated, defaults applied). */
export async function runNamedQuery(
  ch: ClickHouse,
  name: string,
  params: Readonly<Record<string, string>> = {},
  opts: RunOptions = {},
): Promise<NamedQueryResult> {
  const def = getQuery(name)
  const resolved = resolveParams(def, params, opts.nowMs ?? Date.now())
  const bound: Record<string, string> = {}
  const shown: Record<string, string> = {}
  for (const [key, v] of Object.entries(resolved)) {
    bound[key] = v.bound
    shown[key] = v.display
  }
  const limitRows = checkLimit(opts.limitRows)
  const result = await readOnlyPool(ch, opts.limits).withSlot(opts.signal, (slot) =>
    execute(slot, def.sql, bound, limitRows, `query ${name}`),
  )
  return { ...result, query: name, params: shown }
}

/**
 * Runs one ad-hoc read-only statement (SELECT, WITH, SHOW TABLES, DESCRIBE, EXPLAIN, EXISTS) after
 * the allow-list check of sql-guard.ts: only the project's tables and pure functions. Writes are
 * also refused by the server's `readonly = 1`; plain non-reads get a clear error before anything is
 * sent.
 */
export async function runSql(ch: ClickHouse, sql: string, opts: RunOptions = {}): Promise<QueryResult> {
  const limitRows = checkLimit(opts.limitRows ?? DEFAULT_SQL_LIMIT_ROWS)
  precheckSql(sql)
  return readOnlyPool(ch, opts.limits).withSlot(opts.signal, async (slot) => {
    const statement = await checkedStatement(slot, sql)
    return execute(slot, statement, {}, limitRows, 'SQL')
  })
}

/** Checks ad-hoc SQL without running it: throws what runSql would refuse, else returns the statement. */
export async function checkSql(ch: ClickHouse, sql: string, opts: RunOptions = {}): Promise<string> {
  precheckSql(sql)
  return readOnlyPool(ch, opts.limits).withSlot(opts.signal, (slot) => checkedStatement(slot, sql))
}

function checkLimit(limitRows: number | undefined): number | undefined {
  if (limitRows === undefined) return undefined
  if (!Number.isSafeInteger(limitRows) || limitRows < 1) {
    throw new InvalidInputError(`limitRows must be a positive integer, got ${limitRows}`)
  }
  return limitRows
}

/**
 * The statement as ClickHouse parses it, checked against the allow-list: one statement (the parser
 * refuses more), comments gone. That rendering is what runs, so what was checked is what executes.
 */
async function checkedStatement(slot: QuerySlot, sql: string): Promise<string> {
  const { client, settings, database } = slot.target
  let formatted: string
  let tokens: Token[]
  try {
    // bound as a parameter, so the user's text is data here: nothing of it executes
    const rs = await slot.run((abort_signal) =>
      client.query({
        query: 'SELECT formatQuery({sql:String}) AS formatted, tokenizeQuery(formatted) AS tokens',
        query_params: { sql },
        format: 'JSONEachRow',
        clickhouse_settings: settings,
        abort_signal,
      }),
    )
    type RawToken = { begin: number | string; end: number | string; type: string }
    const [row] = await rs.json<{ formatted: string; tokens: RawToken[] }>()
    formatted = row?.formatted ?? ''
    tokens = (row?.tokens ?? []).map((t) => [Number(t.begin), Number(t.end), t.type])
  } catch (err) {
    // formatQuery came in 23.10 and tokenizeQuery later: without them there is no parser check, so no ad-hoc SQL
    if (serverErrorCode(err) === '46') {
      throw new InvalidInputError(
        'ad-hoc SQL needs a ClickHouse whose parser it can ask (formatQuery, tokenizeQuery; 25.x or later): upgrade the server',
        err,
      )
    }
    if (serverErrorCode(err) === '62') {
      const message = cleanParseMessage((err as Error).message)
      if (/Multi-statements are not allowed/.test(message)) {
        throw new InvalidInputError('one statement at a time: remove the ";" and what follows it', err)
      }
      throw new InvalidInputError(`SQL: ${message} (SYNTAX_ERROR)`, err)
    }
    throw toQueryError(err, 'SQL')
  }
  checkFormatted(formatted)
  const rows: string[] = []
  try {
    // EXPLAIN AST parses and executes nothing; the canonical text is one statement (formatQuery said so)
    await readRows(slot, `EXPLAIN AST ${formatted}`, {}, 'JSONEachRow', (line) => {
      rows.push((JSON.parse(line) as { explain: string }).explain)
      return true
    })
  } catch (err) {
    // EXPLAIN applies the statement's SETTINGS clause, which the read-only session refuses
    if (serverErrorCode(err) === '164') {
      throw new RefusedSqlError(
        'SETTINGS',
        "SQL refused: a SETTINGS clause is not allowed: breakid's read-only session and limits fix the settings (see README: Security model)",
      )
    }
    throw toQueryError(err, 'SQL')
  }
  checkStatement(
    { canonical: formatted, ast: parseExplainAst(rows), ctes: cteNames(formatted, tokens) },
    guardPolicy(database),
  )
  return formatted
}

async function execute(
  slot: QuerySlot,
  query: string,
  params: Record<string, string>,
  limitRows: number | undefined,
  what: string,
): Promise<QueryResult> {
  let names: string[] | undefined
  let types: string[] | undefined
  const rows: unknown[][] = []
  let truncated = false
  try {
    // the tag lets a cancelled query be found and killed (readonly.ts)
    await readRows(slot, `${slot.tag}\n${query}`, params, 'JSONCompactEachRowWithNamesAndTypes', (line) => {
      const values = JSON.parse(line) as unknown[]
      if (!names) names = values as string[]
      else if (!types) types = values as string[]
      else if (limitRows !== undefined && rows.length >= limitRows) {
        truncated = true
        return false
      } else rows.push(values)
      return true
    })
  } catch (err) {
    throw toQueryError(err, what)
  }
  const columns = (names ?? []).map((name, i) => ({ name, type: types?.[i] ?? 'String' }))
  return { columns, rows: rows.map((r) => normalizeRow(r, columns)), truncated }
}

/**
 * Runs `query` exactly as given and hands each output line to `onLine` until it returns false.
 * exec rather than query: query() appends `FORMAT …` to the text, which a statement such as
 * `EXPLAIN AST SELECT 1` parses into the statement it explains; `default_format` chooses the
 * output instead (on chDB it becomes an option of the call, not a SET on the read-only session).
 * Streamed, so a server stops sending once `onLine` has enough (chDB has buffered it already).
 */
async function readRows(
  slot: QuerySlot,
  query: string,
  params: Record<string, string>,
  format: DataFormat,
  onLine: (line: string) => boolean,
): Promise<void> {
  const { client, settings } = slot.target
  const result = await slot.run((abort_signal) =>
    client.exec({
      query,
      query_params: params,
      clickhouse_settings: { ...settings, default_format: format },
      abort_signal,
    }),
  )
  const decoder = new TextDecoder()
  let pending = ''
  try {
    for await (const chunk of result.stream as AsyncIterable<Buffer>) {
      pending += decoder.decode(chunk, { stream: true })
      let newline = pending.indexOf('\n')
      while (newline >= 0) {
        const line = pending.slice(0, newline)
        pending = pending.slice(newline + 1)
        if (line !== '' && !onLine(line)) return
        newline = pending.indexOf('\n')
      }
    }
    pending += decoder.decode()
    if (pending !== '') onLine(pending)
  } finally {
    result.stream.destroy()
  }
}

const WIDE_INT = /^(?:U?Int(?:64|128|256))$/

function unwrap(type: string): string {
  const m = /^(?:Nullable|LowCardinality)\((.*)\)$/.exec(type)
  return m ? unwrap(m[1]!) : type
}

/** 64-bit integers arrive as strings (exact); those a double holds exactly become numbers. */
function normalizeValue(value: unknown, type: string): unknown {
  const t = unwrap(type)
  if (WIDE_INT.test(t)) {
    if (typeof value === 'string' && /^-?\d+$/.test(value)) {
      const n = Number(value)
      return Number.isSafeInteger(n) ? n : value
    }
    return value
  }
  const array = /^Array\((.*)\)$/.exec(t)
  if (array && Array.isArray(value)) return value.map((v) => normalizeValue(v, array[1]!))
  return value
}

function normalizeRow(row: unknown[], columns: Column[]): unknown[] {
  return row.map((v, i) => normalizeValue(v, columns[i]?.type ?? 'String'))
}
