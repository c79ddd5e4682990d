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

/**
 * ClickHouse error codes that say "not now" rather than "not this query": memory and time limits,
 * too many queries, network and keeper trouble, cancellation.
 */
const TRANSIENT_CODES = new Set([
  '159', // TIMEOUT_EXCEEDED
  '160', // TOO_SLOW
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
