/**
 * The store as every command opens it (re-exported by app/runtime.ts). Kept apart from the transport
 * and the engine's telemetry so that a command needing only ClickHouse can load only this (CLI
 * start-up: bench/results/query.json).
 */
import { dirname, join } from 'node:path'
import type { Logger } from 'pino'
import { retry } from '../core/retry.ts'
import { type ClickHouse, openClickHouse } from '../store/client.ts'
import { migrate } from '../store/migrations.ts'
import type { BreakidConfig } from './config.ts'

/**
 * Opens ClickHouse and brings its schema up to date, with the configured retention. With
 * `waitForServer` a server that is down (or still starting) is waited for — with backoff, a log line
 * per attempt, until SIGINT/SIGTERM — instead of failing the command: a consumer started before its
 * database catches up once it is there.
 */
export async function openStore(
  cfg: BreakidConfig,
  opts: { waitForServer?: { logger: Logger } } = {},
): Promise<ClickHouse> {
  const ch = openClickHouse({ url: cfg.clickhouseUrl, dataDir: cfg.dataDir, database: cfg.database })
  const retention = { spanDays: cfg.spanRetentionDays, days: cfg.retentionDays }
  const wait = opts.waitForServer
  if (!wait || !ch.url) {
    await migrate(ch, { retention })
    return ch
  }
  const abort = new AbortController()
  const onSignal = () => abort.abort()
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    await retry(() => migrate(ch, { retention }), {
      retries: Number.POSITIVE_INFINITY,
      initialDelayMs: 1_000,
      maxDelayMs: 30_000,
      signal: abort.signal,
      onRetry: (err, attempt, delayMs) =>
        wait.logger.warn(
          { err: (err as Error).message, attempt, retryInMs: Math.round(delayMs) },
          `ClickHouse at ${redactUrl(ch.url!)} is not reachable; waiting for it`,
        ),
    })
  } catch (err) {
    await ch.close()
    throw err
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
  return ch
}

/** A URL without its password, for logs. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return 'the configured URL'
  }
}

/** Where a running `breakid up` says how to reach it (its pid and query API URL). */
export function upStatePath(dataDir: string): string {
  return join(dirname(dataDir), 'up.json')
}
