/**
 * Where compared requests come from: a selection (`run:<id>` or `FROM..TO`) read through the named
 * query `run-spans` (queries/sql/run-spans.sql), by whatever runs named queries — the store itself or
 * a running `breakid up`'s query API.
 */
import { InvalidInputError } from '../core/errors.ts'
import { isRunId } from '../contract/run-id.ts'
import type { QueryResult } from '../queries/runner.ts'
import { COMPARED_STAGES, type ComparedStage, type HostSample, type RequestRecord } from './compare.ts'

/** Runs a named query with parameters as strings (runNamedQuery, or the HTTP query API). */
export type NamedQuery = (name: string, params: Record<string, string>) => Promise<QueryResult>

/** What a user named: one run, or a time range. */
export interface Selection {
  /** as written, for reports */
  label: string
  /** the run-spans parameters that select it */
  params: { run: string; from: string; to: string }
}

/** Times accepted by the named queries: ISO 8601, epoch, `now`, relative (`-2h`). */
export function parseSelection(text: string): Selection {
  const t = text.trim()
  if (t.startsWith('run:')) {
    const run = t.slice(4)
    if (!isRunId(run)) throw new InvalidInputError(`"${text}": "${run}" is not a run id`)
    // every time: a run is named by its id alone
    return { label: t, params: { run, from: '0', to: 'now+1d' } }
  }
  const parts = t.split('..')
  if (parts.length !== 2 || parts[0]!.trim() === '' || parts[1]!.trim() === '') {
    throw new InvalidInputError(
      `"${text}" is neither run:<id> nor FROM..TO (e.g. run:main-123, or 2026-11-27T10:00Z..2026-11-27T10:05Z, or -2h..-1h)`,
    )
  }
  return { label: t, params: { run: '', from: parts[0]!.trim(), to: parts[1]!.trim() } }
}

/**
 * Most requests read per selection; a larger run is sampled deterministically by the query. The
 * default query limits allow 100 000 result rows (queries/limits.ts).
 */
export const MAX_REQUESTS_PER_SELECTION = 100_000

/** The requests of a selection, by column name (the query's column order may change). */
export async function readRequests(
  query: NamedQuery,
  selection: Selection,
  opts: { model?: string; limit?: number } = {},
): Promise<RequestRecord[]> {
  const result = await query('run-spans', {
    ...selection.params,
    model: opts.model ?? '',
    limit: String(opts.limit ?? MAX_REQUESTS_PER_SELECTION),
  })
  const col = (name: string) => {
    const i = result.columns.findIndex((c) => c.name === name)
    if (i < 0) throw new Error(`query run-spans has no column ${name}`)
    return i
  }
  const model = col('model')
  const status = col('status')
  const ts = col('timestamp_us')
  const hit = col('cache_hit')
  const batch = col('batch_size')
  const stages = COMPARED_STAGES.map((s) => [s, col(`${s}_us`)] as const)
  return result.rows.map((row) => {
    const durations = {} as Record<ComparedStage, number>
    for (const [s, i] of stages) durations[s] = Number(row[i])
    return {
      model: String(row[model]),
      status: String(row[status]),
      timestamp_us: Number(row[ts]),
      cache_hit: row[hit] === true || row[hit] === 1 || row[hit] === 'true',
      batch_size: Number(row[batch]),
      durations_us: durations,
    }
  })
}

/** The hardware samples of a selection (for the contention check), through the named query run-host. */
export async function readHostSamples(query: NamedQuery, selection: Selection): Promise<HostSample[]> {
  const result = await query('run-host', selection.params)
  const i = (name: string) => result.columns.findIndex((c) => c.name === name)
  const [ts, pc, hc, cpus] = [i('timestamp_us'), i('process_cpu'), i('host_cpu'), i('host_cpus')]
  if (ts < 0 || pc < 0 || hc < 0)
    throw new Error('query run-host lacks timestamp_us, process_cpu or host_cpu')
  return result.rows.map((row) => ({
    timestamp_us: Number(row[ts]),
    process_cpu: Number(row[pc]),
    host_cpu: row[hc] === null || row[hc] === undefined ? null : Number(row[hc]),
    host_cpus: cpus < 0 || row[cpus] === null || row[cpus] === undefined ? null : Number(row[cpus]),
  }))
}

/** Requests and hardware samples of a selection. */
export async function readRun(
  query: NamedQuery,
  selection: Selection,
  opts: { model?: string; limit?: number } = {},
): Promise<{ requests: RequestRecord[]; host: HostSample[] }> {
  return {
    requests: await readRequests(query, selection, opts),
    host: await readHostSamples(query, selection),
  }
}
