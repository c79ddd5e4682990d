/**
 * Runs named queries (queries/sql/*.sql, typed parameters bound by the server) and ad-hoc SQL, both
 * read-only (readonly.ts), and returns columns with their ClickHouse types plus rows of values.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ClickHouse } from '../store/client.ts'
import { InvalidInputError } from '../core/errors.ts'
import { serverErrorCode, toQueryError, UnknownQueryError } from './errors.ts'
import { parseQueryFile, type QueryDefinition, resolveParams } from './params.ts'
import { readOnlyTarget } from './readonly.ts'
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
  /** keep at most this many rows; the rest are not read (default: all for named queries) */
  limitRows?: number
  /** epoch ms that relative times (`-1h`, `now`) count from; default: the clock */
  nowMs?: number
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
  const result = await execute(ch, def.sql, bound, checkLimit(opts.limitRows), `query ${name}`)
  return { ...result, query: name, params: shown }
}

/**
 * Runs one ad-hoc read-only statement (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS). Writes are
 * refused by the server's `readonly = 1`; plain non-reads get a clear error before anything is sent.
 */
export async function runSql(ch: ClickHouse, sql: string, opts: RunOptions = {}): Promise<QueryResult> {
  const limitRows = checkLimit(opts.limitRows ?? DEFAULT_SQL_LIMIT_ROWS)
  precheckSql(sql)
  const statement = await canonicalStatement(ch, sql)
  return execute(ch, statement, {}, limitRows, 'SQL')
}

function checkLimit(limitRows: number | undefined): number | undefined {
  if (limitRows === undefined) return undefined
  if (!Number.isSafeInteger(limitRows) || limitRows < 1) {
    throw new InvalidInputError(`limitRows must be a positive integer, got ${limitRows}`)
  }
  return limitRows
}

/**
 * The statement as ClickHouse parses it: one statement (the parser refuses more), comments gone.
 * That rendering is what runs, so what was checked is what executes.
 */
async function canonicalStatement(ch: ClickHouse, sql: string): Promise<string> {
  const { client, settings } = await readOnlyTarget(ch)
  let formatted: string
  try {
    const rs = await client.query({
      query: 'SELECT formatQuery({sql:String}) AS formatted',
      query_params: { sql },
      format: 'JSONEachRow',
      clickhouse_settings: settings,
    })
    const [row] = await rs.json<{ formatted: string }>()
    formatted = row?.formatted ?? ''
  } catch (err) {
    // servers older than 23.10 lack formatQuery: fall back to the text as given, still read-only
    if (serverErrorCode(err) === '46') return sql.trim().replace(/;+\s*$/, '')
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
  return formatted
}

async function execute(
  ch: ClickHouse,
  query: string,
  params: Record<string, string>,
  limitRows: number | undefined,
  what: string,
): Promise<QueryResult> {
  const { client, settings } = await readOnlyTarget(ch)
  try {
    const rs = await client.query({
      query,
      query_params: params,
      format: 'JSONCompactEachRowWithNamesAndTypes',
      clickhouse_settings: settings,
    })
    let names: string[] | undefined
    let types: string[] | undefined
    const rows: unknown[][] = []
    let truncated = false
    // streamed, so a server stops sending once the limit is reached (chDB has buffered it already)
    read: for await (const batch of rs.stream()) {
      for (const row of batch) {
        const values = row.json<unknown[]>()
        if (!names) names = values as string[]
        else if (!types) types = values as string[]
        else if (limitRows !== undefined && rows.length >= limitRows) {
          truncated = true
          break read
        } else rows.push(values)
      }
    }
    rs.close()
    const columns = (names ?? []).map((name, i) => ({ name, type: types?.[i] ?? 'String' }))
    return { columns, rows: rows.map((r) => normalizeRow(r, columns)), truncated }
  } catch (err) {
    throw toQueryError(err, what)
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
