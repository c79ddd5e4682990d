/**
 * What a command needs to reach stored data or a running `up`/`serve` — the query limits, the API
 * token, the cost figure — without the engine, the telemetry or Kafka: `breakid query`, `sql`,
 * `report` and `compare` load this, not app/runtime.ts, so they start faster.
 */
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pricesParam } from '../compare/cost.ts'
import type { CostFigure } from '../dashboard/plugin.ts'
import type { QueryLimits } from '../queries/limits.ts'
import type { BreakidConfig } from './config.ts'

/** The query limits of the configuration, as queries/ takes them. */
export function queryLimits(cfg: BreakidConfig): QueryLimits {
  return {
    maxExecutionTimeS: cfg.queryMaxExecutionTimeS,
    maxMemoryBytes: cfg.queryMaxMemoryBytes,
    maxResultRows: cfg.queryMaxResultRows,
    maxResultBytes: cfg.queryMaxResultBytes,
    maxRowsToRead: cfg.queryMaxRowsToRead,
    concurrency: cfg.queryConcurrency,
    queueLength: cfg.queryQueueLength,
  }
}

/** Where `serve` and `up` write the token they generated, and where the CLI reads it. */
export function apiTokenPath(dataDir: string): string {
  return join(dataDir, 'api-token')
}

export interface ApiToken {
  token: string
  /** the file it was written to; undefined when it came from the configuration */
  path?: string
  /** for a 401's message: where a client finds the token */
  hint: string
}

/**
 * The control endpoints' token: the configured one, else a new random one written to
 * `<dataDir>/api-token`, readable by this user only (mode 0600; an old file is replaced, not
 * reused, so its mode cannot linger).
 */
export function resolveApiToken(cfg: BreakidConfig): ApiToken {
  if (cfg.apiToken) return { token: cfg.apiToken, hint: 'the configured --api-token / BREAKID_API_TOKEN' }
  const token = randomBytes(32).toString('base64url')
  const path = apiTokenPath(cfg.dataDir)
  mkdirSync(cfg.dataDir, { recursive: true })
  rmSync(path, { force: true })
  writeFileSync(path, `${token}\n`, { mode: 0o600, flag: 'wx' })
  return { token, path, hint: `generated for this run in ${path}` }
}

/** The token a CLI command sends to a running `up`: the configured one, else the file it wrote. */
export function readApiToken(cfg: BreakidConfig): string | undefined {
  if (cfg.apiToken) return cfg.apiToken
  try {
    return readFileSync(apiTokenPath(cfg.dataDir), 'utf8').trim() || undefined
  } catch {
    return undefined
  }
}

/** The dashboard's and the report's cost figure (the run-cost query), when pricing is configured. */
export function costFigure(cfg: BreakidConfig): CostFigure | undefined {
  if (!cfg.pricing) return undefined
  return { query: 'run-cost', params: { prices: pricesParam(cfg.pricing) }, currency: cfg.pricing.currency }
}
