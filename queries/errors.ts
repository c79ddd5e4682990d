/**
 * How query failures reach people. The server answering with an exception means the query or its
 * input is wrong (syntax, unknown table or column, a write on the read-only path): that is
 * `InvalidInputError` with the server's own message, never retried. Resource limits, cancellations
 * and transport failures may heal, so they are `DownstreamError`.
 */
import { DownstreamError, InvalidInputError } from '../core/errors.ts'

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

/**
 * ClickHouse error codes of a query stopped by its own limits, with the setting behind each and the
 * configuration that raises it (app/config.ts).
 */
const LIMIT_CODES: Record<string, string> = {
  '158': 'max_rows_to_read (queryMaxRowsToRead, --query-max-rows-to-read)', // TOO_MANY_ROWS
  '307': 'max_rows_to_read (queryMaxRowsToRead, --query-max-rows-to-read)', // TOO_MANY_BYTES
  '159': 'max_execution_time (queryMaxExecutionTimeS, --query-max-execution-time)', // TIMEOUT_EXCEEDED
  '160': 'max_execution_time (queryMaxExecutionTimeS, --query-max-execution-time)', // TOO_SLOW
  '396':
    'max_result_rows / max_result_bytes (queryMaxResultRows, queryMaxResultBytes, --query-max-result-rows, --query-max-result-bytes)', // TOO_MANY_ROWS_OR_BYTES
  '241': 'max_memory_usage (queryMaxMemoryBytes, --query-max-memory)', // MEMORY_LIMIT_EXCEEDED
}

/**
 * ClickHouse error codes that say "not now" rather than "not this query": memory pressure of the
 * whole server, too many queries, network and keeper trouble, cancellation.
 */
const TRANSIENT_CODES = new Set([
  '202', // TOO_MANY_SIMULTANEOUS_QUERIES
  '209', // SOCKET_TIMEOUT
  '210', // NETWORK_ERROR
  '236', // ABORTED
  '241', // MEMORY_LIMIT_EXCEEDED
  '242', // TABLE_IS_READ_ONLY (replica lost its keeper session)
  '394', // QUERY_WAS_CANCELLED
  '425', // SYSTEM_ERROR
  '999', // KEEPER_EXCEPTION
  '1000', // POCO_EXCEPTION
])

/** Longest server message passed on; "Expected one of: …" lists can run to kilobytes. */
const MAX_MESSAGE_CHARS = 1500

interface ServerError {
  code: string
  type?: string
  message: string
}

function asServerError(err: unknown): ServerError | undefined {
  if (!(err instanceof Error)) return undefined
  const code = (err as { code?: unknown }).code
  // chdb/connection ships its own copy of @clickhouse/client-common, so match the shape, not the class
  if ((typeof code === 'string' || typeof code === 'number') && /^\d+$/.test(String(code))) {
    return { code: String(code), type: (err as { type?: string }).type, message: err.message }
  }
  return undefined
}

export function serverMessage(err: ServerError): string {
  let msg = err.message.trim()
  if (msg.length > MAX_MESSAGE_CHARS) msg = `${msg.slice(0, MAX_MESSAGE_CHARS)}…`
  return err.type ? `${msg} (${err.type})` : msg
}

/** One place turns a failed query into a breakid error; `what` says which query, for the message. */
export function toQueryError(err: unknown, what: string): Error {
  if (err instanceof InvalidInputError || err instanceof DownstreamError) return err
  const server = asServerError(err)
  const limit = server && LIMIT_CODES[server.code]
  // 241 is also the whole server running out of memory; only the query's own limit is the query's fault
  if (limit && (server.code !== '241' || /for query|query memory limit/i.test(server.message))) {
    return new QueryLimitError(
      `${what} stopped by a limit: ${serverMessage(server)}. Narrow the query (time range, LIMIT, ` +
        `fewer columns) or raise ${limit}`,
      err,
    )
  }
  if (server && !TRANSIENT_CODES.has(server.code)) {
    const hint = server.code === '164' ? 'queries here are read-only: ' : ''
    return new InvalidInputError(`${what}: ${hint}${serverMessage(server)}`, err)
  }
  const message = server ? serverMessage(server) : (err as Error)?.message
  return new DownstreamError(`${what} failed: ${message ?? String(err)}`, undefined, err)
}

/** The ClickHouse error code of an error, if it came from the server. */
export function serverErrorCode(err: unknown): string | undefined {
  return asServerError(err)?.code
}
