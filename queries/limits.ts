/**
 * Limits on every query from this folder, named and ad-hoc, CLI and HTTP alike. ClickHouse enforces
 * them while the query runs, so a query that would read or return too much stops early with a
 * clear error instead of growing the process (`SELECT number FROM numbers(1e9)` once grew it to
 * 6 GB: the row limit was applied after the whole result was built).
 *
 * The defaults keep one query well under 1 GiB and a few seconds; app/config.ts makes each one
 * configurable (flags > environment > file > these defaults).
 */
import type { ClickHouseSettings } from '@clickhouse/client'
import { InvalidInputError } from '../core/errors.ts'

export interface QueryLimits {
  /** longest a query may run, seconds (`max_execution_time`); also bounds how long it holds a slot */
  maxExecutionTimeS: number
  /** memory one query may use, bytes (`max_memory_usage`) */
  maxMemoryBytes: number
  /** most rows a result may have; more is an error (`max_result_rows`, `result_overflow_mode = 'throw'`) */
  maxResultRows: number
  /** most bytes a result may have in memory (`max_result_bytes`) */
  maxResultBytes: number
  /** most rows a query may read from tables and table functions (`max_rows_to_read`) */
  maxRowsToRead: number
  /**
   * queries that run at once. Each holds a read-only chDB session (queries on one session run one
   * after another) and a libuv worker thread while it runs (4 in all by default, shared with
   * inserts and file I/O), so this stays below that pool.
   */
  concurrency: number
  /** queries that may wait for a slot; one more is refused at once (HTTP 503 with Retry-After) */
  queueLength: number
}

export const DEFAULT_QUERY_LIMITS: Readonly<QueryLimits> = Object.freeze({
  maxExecutionTimeS: 10,
  maxMemoryBytes: 256 * 1024 * 1024,
  maxResultRows: 100_000,
  maxResultBytes: 64 * 1024 * 1024,
  maxRowsToRead: 100_000_000,
  concurrency: 2,
  queueLength: 16,
})

/** The ClickHouse settings that enforce the limits, as a session or a request sets them. */
export function limitSettings(limits: QueryLimits): ClickHouseSettings {
  return {
    max_execution_time: limits.maxExecutionTimeS,
    timeout_overflow_mode: 'throw',
    max_memory_usage: String(limits.maxMemoryBytes),
    max_result_rows: String(limits.maxResultRows),
    max_result_bytes: String(limits.maxResultBytes),
    result_overflow_mode: 'throw',
    max_rows_to_read: String(limits.maxRowsToRead),
    read_overflow_mode: 'throw',
  }
}

/** Throws InvalidInputError naming the first limit that is not a positive number. */
export function checkLimits(limits: QueryLimits): QueryLimits {
  for (const [key, value] of Object.entries(limits) as [keyof QueryLimits, number][]) {
    const integer = key !== 'maxExecutionTimeS'
    const min = key === 'queueLength' ? 0 : Number.MIN_VALUE
    if (!Number.isFinite(value) || value < min || (integer && !Number.isSafeInteger(value))) {
      throw new InvalidInputError(
        `query limit ${key}: expected a ${key === 'queueLength' ? 'non-negative' : 'positive'} ${integer ? 'integer' : 'number'}, got ${value}`,
      )
    }
  }
  return limits
}
