/**
 * The one classifier of ClickHouse failures (after Vector's clickhouse/service.rs): what a failed
 * query or insert means, from the server's error code. The insert path and the query path decide
 * differently on what they may lose — an insert never drops rows on a guess, a query answers its user
 * at once — but both read the kind from here, so the same code is never "retriable" in one place and
 * "fatal" in another.
 */

export type ClickHouseFailureKind =
  /** the rows themselves are wrong (cannot parse, out of range, type mismatch): retrying cannot help */
  | 'bad_data'
  /** the query hit one of its own limits (rows read, result size, time, memory) */
  | 'limit'
  /** not now rather than not this: server overload, network, keeper, cancellation */
  | 'transient'
  /** any other server exception: the statement is wrong for this server (syntax, unknown column…) */
  | 'rejected'
  /** no answer from a server at all (connection refused, reset, timeout of the client) */
  | 'unreachable'

export interface ClickHouseFailure {
  kind: ClickHouseFailureKind
  /** the server's error code, when it answered */
  code?: string
  /** for `limit`: the setting that stopped the query */
  limit?: 'max_rows_to_read' | 'max_execution_time' | 'max_result_rows' | 'max_memory_usage'
}

const BAD_DATA = new Set([
  '6', // CANNOT_PARSE_TEXT
  '26', // CANNOT_PARSE_QUOTED_STRING
  '27', // CANNOT_PARSE_INPUT_ASSERTION_FAILED
  '36', // BAD_ARGUMENTS
  '38', // CANNOT_PARSE_DATE
  '41', // CANNOT_PARSE_DATETIME
  '53', // TYPE_MISMATCH
  '69', // ARGUMENT_OUT_OF_BOUND
  '70', // CANNOT_CONVERT_TYPE
  '72', // CANNOT_PARSE_NUMBER
  '117', // INCORRECT_DATA
  '130', // CANNOT_READ_ARRAY_FROM_TEXT
  '131', // TOO_LARGE_STRING_SIZE
])

const LIMITS: Record<string, NonNullable<ClickHouseFailure['limit']>> = {
  '158': 'max_rows_to_read', // TOO_MANY_ROWS
  '307': 'max_rows_to_read', // TOO_MANY_BYTES
  '159': 'max_execution_time', // TIMEOUT_EXCEEDED
  '160': 'max_execution_time', // TOO_SLOW
  '396': 'max_result_rows', // TOO_MANY_ROWS_OR_BYTES
  '241': 'max_memory_usage', // MEMORY_LIMIT_EXCEEDED (the query's own limit; see below)
}

const TRANSIENT = new Set([
  '202', // TOO_MANY_SIMULTANEOUS_QUERIES
  '209', // SOCKET_TIMEOUT
  '210', // NETWORK_ERROR
  '236', // ABORTED
  '241', // MEMORY_LIMIT_EXCEEDED of the whole server
  '242', // TABLE_IS_READ_ONLY (replica lost its keeper session)
  '252', // TOO_MANY_PARTS (merges catch up)
  '394', // QUERY_WAS_CANCELLED
  '425', // SYSTEM_ERROR
  '999', // KEEPER_EXCEPTION
  '1000', // POCO_EXCEPTION
])

/** The server's error code of an error, when a server (or chDB) answered with one. */
export function serverErrorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | undefined)?.code
  // chdb/connection ships its own copy of @clickhouse/client-common, so match the shape, not the class
  return (typeof code === 'string' || typeof code === 'number') && /^\d+$/.test(String(code))
    ? String(code)
    : undefined
}

export function classifyClickHouseFailure(err: unknown): ClickHouseFailure {
  const code = serverErrorCode(err)
  if (code === undefined) return { kind: 'unreachable' }
  if (BAD_DATA.has(code)) return { kind: 'bad_data', code }
  const limit = LIMITS[code]
  // 241 is also the whole server running out of memory; only the query's own limit is the query's fault
  if (limit && (code !== '241' || /for query|query memory limit/i.test((err as Error).message))) {
    return { kind: 'limit', code, limit }
  }
  if (TRANSIENT.has(code)) return { kind: 'transient', code }
  return { kind: 'rejected', code }
}
