/**
 * How query failures reach people. The server answering with an exception means the query or its
 * input is wrong (syntax, unknown table or column, a write on the read-only path): that is
 * `InvalidInputError` with the server's own message, never retried. Resource limits, cancellations
 * and transport failures may heal, so they are `DownstreamError`.
 */
import { DownstreamError, InvalidInputError } from '../core/errors.ts'
import { type ClickHouseFailure, classifyClickHouseFailure } from '../store/errors.ts'

/** A named query that does not exist; HTTP answers 404. */
export class UnknownQueryError extends InvalidInputError {
  override readonly code = 'BREAKID_UNKNOWN_QUERY'
  constructor(
    readonly queryName: string,
    known: readonly string[],
  ) {
    super(`unknown query '${queryName}'; known queries: ${known.join(', ')}`)
  }
}

/** Ad-hoc SQL that reaches for something outside the allow-list (sql-guard.ts); HTTP answers 400. */
export class RefusedSqlError extends InvalidInputError {
  override readonly code = 'BREAKID_SQL_REFUSED'
  constructor(
    /** what was refused, e.g. `function file`, `table system.users`, `SETTINGS` */
    readonly refused: string,
    message: string,
  ) {
    super(message)
  }
}

/**
 * A query stopped by one of its limits (limits.ts): too many rows read or returned, too long, too
 * much memory. The query asked for too much, so it is not retried; HTTP answers 400.
 */
export class QueryLimitError extends InvalidInputError {
  override readonly code = 'BREAKID_QUERY_LIMIT'
}

/** Every query slot and queue place is taken; HTTP answers 503 with Retry-After. */
export class QueryBusyError extends DownstreamError {
  override readonly code = 'BREAKID_QUERY_BUSY'
}

/** The query was cancelled: its client went away or the server is shutting down; HTTP answers 503. */
export class QueryCancelledError extends DownstreamError {
  override readonly code = 'BREAKID_QUERY_CANCELLED'
}

/** The configuration that raises each limit (app/config.ts), for the error message. */
const LIMIT_SETTINGS: Record<NonNullable<ClickHouseFailure['limit']>, string> = {
  max_rows_to_read: 'max_rows_to_read (queryMaxRowsToRead, --query-max-rows-to-read)',
  max_execution_time: 'max_execution_time (queryMaxExecutionTimeS, --query-max-execution-time)',
  max_result_rows:
    'max_result_rows / max_result_bytes (queryMaxResultRows, queryMaxResultBytes, --query-max-result-rows, --query-max-result-bytes)',
  max_memory_usage: 'max_memory_usage (queryMaxMemoryBytes, --query-max-memory)',
}

/** Longest server message passed on; "Expected one of: …" lists can run to kilobytes. */
const MAX_MESSAGE_CHARS = 1500

export function serverMessage(err: Error): string {
  let msg = err.message.trim()
  if (msg.length > MAX_MESSAGE_CHARS) msg = `${msg.slice(0, MAX_MESSAGE_CHARS)}…`
  const type = (err as { type?: string }).type
  return type ? `${msg} (${type})` : msg
}

/**
 * One place turns a failed query into a breakid error (`what` says which query, for the message),
 * from the one ClickHouse classifier (store/errors.ts): a limit is the query asking too much, a
 * rejected or bad-data query is the user's to fix, the rest may heal.
 */
export function toQueryError(err: unknown, what: string): Error {
  if (err instanceof InvalidInputError || err instanceof DownstreamError) return err
  const failure = classifyClickHouseFailure(err)
  const message = err instanceof Error ? serverMessage(err) : String(err)
  if (failure.kind === 'limit') {
    return new QueryLimitError(
      `${what} stopped by a limit: ${message}. Narrow the query (time range, LIMIT, ` +
        `fewer columns) or raise ${LIMIT_SETTINGS[failure.limit!]}`,
      err,
    )
  }
  if (failure.kind === 'rejected' || failure.kind === 'bad_data') {
    const hint = failure.code === '164' ? 'queries here are read-only: ' : ''
    return new InvalidInputError(`${what}: ${hint}${message}`, err)
  }
  return new DownstreamError(`${what} failed: ${message}`, undefined, err)
}
