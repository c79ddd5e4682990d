/**
 * `breakid query`, `breakid queries`, `breakid sql`. chDB locks its data directory against other
 * processes, so while a `breakid up` runs these commands ask it over its HTTP query API (found in
 * up.json next to the data directory); otherwise they open the store themselves.
 */
import { existsSync, readFileSync } from 'node:fs'
import { DownstreamError, InvalidInputError } from '../../core/errors.ts'
import { formatResult, OUTPUT_FORMATS, type OutputFormat } from '../../queries/format.ts'
import { listQueries, type QueryResult, runNamedQuery, runSql } from '../../queries/runner.ts'
import type { Command } from '../command.ts'
import { type BreakidConfig, loadConfig } from '../../app/config.ts'
import { openClickHouse } from '../../store/client.ts'
import { queryLimits, readApiToken } from '../../app/access.ts'
import { openStore, upStatePath } from '../../app/store.ts'

export function outputFormat(value: unknown): OutputFormat {
  if ((OUTPUT_FORMATS as readonly unknown[]).includes(value)) return value as OutputFormat
  throw new InvalidInputError(`--format: expected one of ${OUTPUT_FORMATS.join(', ')}`)
}

/** The base URL of a running `breakid up` on this data directory, if there is one. */
export function runningUp(cfg: BreakidConfig): string | undefined {
  if (cfg.clickhouseUrl) return undefined
  const path = upStatePath(cfg.dataDir)
  if (!existsSync(path)) return undefined
  try {
    const { pid, url } = JSON.parse(readFileSync(path, 'utf8')) as { pid: number; url: string }
    process.kill(pid, 0) // throws when no such process: a stale file
    return url
  } catch {
    return undefined
  }
}

export async function viaRunningUp(
  cfg: BreakidConfig,
  url: string,
  path: string,
  body: unknown,
): Promise<QueryResult> {
  const token = readApiToken(cfg)
  const res = await fetch(`${url}${path}?format=result`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify(body),
  }).catch((err: unknown) => {
    throw new DownstreamError(`the running breakid up at ${url} did not answer: ${(err as Error).message}`)
  })
  const json = (await res.json()) as QueryResult & { error?: string }
  if (res.status >= 400 && res.status < 500) throw new InvalidInputError(json.error ?? `HTTP ${res.status}`)
  if (!res.ok) throw new DownstreamError(json.error ?? `HTTP ${res.status}`)
  return json
}

export async function withStore<T>(
  cfg: BreakidConfig,
  fn: (ch: Awaited<ReturnType<typeof openStore>>) => Promise<T>,
) {
  // a server is queried as it is (its reader user may not create tables); chDB gets its tables first
  const ch = cfg.clickhouseUrl
    ? openClickHouse({ url: cfg.clickhouseUrl, dataDir: cfg.dataDir, database: cfg.database })
    : await openStore(cfg)
  try {
    return await fn(ch)
  } finally {
    await ch.close()
  }
}

function parseParams(values: Record<string, unknown>): Record<string, string> {
  const params: Record<string, string> = {}
  for (const p of (values.param as string[] | undefined) ?? []) {
    const eq = p.indexOf('=')
    if (eq <= 0) throw new InvalidInputError(`--param: expected name=value, got "${p}"`)
    params[p.slice(0, eq)] = p.slice(eq + 1)
  }
  for (const k of ['from', 'to', 'model'] as const) if (values[k] !== undefined) params[k] = String(values[k])
  return params
}

export const query: Command = {
  summary: 'run a named bottleneck query (see "breakid queries")',
  usage:
    'breakid query <name> [--from=-1h] [--to=now] [--model NAME] [--param k=v ...] [--format table|json|csv|ndjson]',
  allowPositionals: true,
  options: {
    param: { type: 'string', multiple: true },
    from: { type: 'string' },
    to: { type: 'string' },
    model: { type: 'string' },
    format: { type: 'string', default: 'table' },
  },
  help: {
    param: 'query parameter name=value (repeatable); see "breakid queries" for each query\'s parameters',
    from: 'start of the time range: ISO 8601, epoch, or relative (--from=-15m; write relative times with =)',
    to: 'end of the time range (default now)',
    model: 'only this model',
    format: 'table (default), json, csv or ndjson',
  },
  async run({ values, positionals }) {
    const [name, ...extra] = positionals
    if (!name || extra.length > 0)
      throw new InvalidInputError('name exactly one query; "breakid queries" lists them')
    const cfg = loadConfig(values)
    const format = outputFormat(values.format)
    const params = parseParams(values)
    const up = runningUp(cfg)
    const result = up
      ? await viaRunningUp(cfg, up, `/api/queries/${encodeURIComponent(name)}`, params)
      : await withStore(cfg, (ch) => runNamedQuery(ch, name, params, { limits: queryLimits(cfg) }))
    process.stdout.write(formatResult(result, format) + '\n')
    return 0
  },
}

export const queries: Command = {
  summary: 'list the named queries and their parameters',
  usage: 'breakid queries',
  options: {},
  help: {},
  async run() {
    for (const q of listQueries()) {
      console.log(`${q.name}\n  ${q.description}`)
      for (const p of q.params) {
        console.log(
          `  --param ${p.name}=<${p.type}>${p.default !== undefined ? `  (default ${p.default})` : ''}`,
        )
      }
    }
    return 0
  },
}

export const sql: Command = {
  summary: 'run ad-hoc read-only SQL against the telemetry tables (allow-listed, limited)',
  usage: 'breakid sql "<SQL>" [--format table|json|csv|ndjson] [--limit 10000]',
  allowPositionals: true,
  options: { format: { type: 'string', default: 'table' }, limit: { type: 'string' } },
  help: { format: 'table (default), json, csv or ndjson', limit: 'most rows to print (default 10000)' },
  async run({ values, positionals }) {
    if (positionals.length !== 1) throw new InvalidInputError('pass the SQL as one quoted argument')
    const statement = positionals[0]!
    const cfg = loadConfig(values)
    const format = outputFormat(values.format)
    const limitRows = values.limit === undefined ? undefined : Number(values.limit)
    const up = runningUp(cfg)
    const result = up
      ? await viaRunningUp(cfg, up, '/api/sql', { sql: statement, limitRows })
      : await withStore(cfg, (ch) => runSql(ch, statement, { limitRows, limits: queryLimits(cfg) }))
    process.stdout.write(formatResult(result, format) + '\n')
    if (result.truncated) process.stderr.write(`(truncated to ${result.rows.length} rows)\n`)
    return 0
  },
}
