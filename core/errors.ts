/**
 * Every error breakid raises on purpose, in one table (after fastify's coded errors and kafkajs'
 * `retriable`): each code says the HTTP status it is answered with and whether retrying can help.
 * A retriable error (a broker or server that is down, a full queue) is retried with backoff or
 * answered 429/503 with Retry-After; a non-retriable one (bad input) is counted, dead-lettered or
 * answered with a 4xx, and never retried. Error classes name a code of this table and take both
 * answers from it, so two parts of the code cannot answer differently for the same error
 * (test/unit/errors.test.ts counts the table).
 */

interface ErrorCodeSpec {
  httpStatus: number
  retriable: boolean
  meaning: string
}

export const ERROR_CODES = {
  // input
  BREAKID_INVALID_INPUT: { httpStatus: 400, retriable: false, meaning: 'invalid flags, parameters or body' },
  BREAKID_BINARY_BODY: { httpStatus: 400, retriable: false, meaning: 'a malformed binary tensor body' },
  BREAKID_BAD_ENCODING: { httpStatus: 400, retriable: false, meaning: 'a body that does not decompress' },
  BREAKID_INVALID_RUN_ID: {
    httpStatus: 400,
    retriable: false,
    meaning: 'a breakid-run-id header that is not one',
  },
  BREAKID_OTLP_DECODE: { httpStatus: 400, retriable: false, meaning: 'an OTLP payload that does not decode' },
  BREAKID_REPLAY_INPUT: { httpStatus: 400, retriable: false, meaning: 'a replay file that cannot be read' },
  BREAKID_SQL_REFUSED: { httpStatus: 400, retriable: false, meaning: 'ad-hoc SQL outside the allow-list' },
  BREAKID_QUERY_LIMIT: { httpStatus: 400, retriable: false, meaning: 'a query stopped by one of its limits' },
  BREAKID_UNAUTHORIZED: {
    httpStatus: 401,
    retriable: false,
    meaning: 'a control endpoint without the token',
  },
  BREAKID_UNKNOWN_MODEL: { httpStatus: 404, retriable: false, meaning: 'a model that is not served' },
  BREAKID_UNKNOWN_QUERY: { httpStatus: 404, retriable: false, meaning: 'a named query that does not exist' },
  BREAKID_BODY_TOO_LARGE: { httpStatus: 413, retriable: false, meaning: 'a body over the size limit' },
  BREAKID_UNSUPPORTED_MEDIA_TYPE: {
    httpStatus: 415,
    retriable: false,
    meaning: 'a body type the route does not take',
  },
  // records on the bus (never answered over HTTP; dead-lettered with the reason)
  BREAKID_DECODE_NOT_SINGLE_OBJECT: {
    httpStatus: 400,
    retriable: false,
    meaning: 'not Avro single-object encoding',
  },
  BREAKID_DECODE_UNKNOWN_SCHEMA: {
    httpStatus: 400,
    retriable: false,
    meaning: 'a writer schema nobody published',
  },
  BREAKID_DECODE_BAD_WRITER_SCHEMA: {
    httpStatus: 400,
    retriable: false,
    meaning: 'a writer-schema header that does not fit',
  },
  BREAKID_DECODE_INCOMPATIBLE_SCHEMA: {
    httpStatus: 400,
    retriable: false,
    meaning: 'a writer schema that does not resolve',
  },
  BREAKID_DECODE_MALFORMED: {
    httpStatus: 400,
    retriable: false,
    meaning: 'a record body that does not decode',
  },
  BREAKID_DECODE_WRONG_TYPE: { httpStatus: 400, retriable: false, meaning: 'a record of another type' },
  BREAKID_DECODE_TRUNCATED: { httpStatus: 400, retriable: false, meaning: 'a container cut short' },
  BREAKID_DECODE_OUT_OF_RANGE: {
    httpStatus: 400,
    retriable: false,
    meaning: 'a value its table cannot hold (a negative count, an id that is not hex)',
  },
  BREAKID_MESSAGE_REFUSED: {
    httpStatus: 413,
    retriable: false,
    meaning: 'a record the broker refuses (too large)',
  },
  // load: come back later
  BREAKID_QUEUE_FULL: { httpStatus: 429, retriable: true, meaning: "the model's batch queue is full" },
  BREAKID_PREPROCESS_BACKLOG: {
    httpStatus: 429,
    retriable: true,
    meaning: 'the preprocessing backlog is full',
  },
  BREAKID_MODEL_LOADS_BUSY: { httpStatus: 429, retriable: true, meaning: 'too many model loads at once' },
  BREAKID_COLLECT_BUSY: {
    httpStatus: 503,
    retriable: true,
    meaning: 'the collector has too many records in flight',
  },
  BREAKID_QUERY_BUSY: {
    httpStatus: 503,
    retriable: true,
    meaning: 'every query slot and queue place is taken',
  },
  BREAKID_QUERY_CANCELLED: {
    httpStatus: 503,
    retriable: true,
    meaning: 'the client left or the server is closing',
  },
  BREAKID_DEADLINE_EXCEEDED: {
    httpStatus: 504,
    retriable: false,
    meaning: "the request's queue deadline passed",
  },
  // downstreams
  BREAKID_DOWNSTREAM: {
    httpStatus: 503,
    retriable: true,
    meaning: 'a server or broker failed in a way that may heal',
  },
  BREAKID_WEBHOOK_UNAVAILABLE: {
    httpStatus: 503,
    retriable: true,
    meaning: 'a webhook receiver is down or busy',
  },
  BREAKID_WEBHOOK_REJECTED: {
    httpStatus: 502,
    retriable: false,
    meaning: 'a webhook receiver refused the alert for good',
  },
  BREAKID_NOTIFY_YIELD: {
    httpStatus: 503,
    retriable: true,
    meaning: 'the notifier hands a batch back to be redelivered',
  },
  // ours
  BREAKID_INJECTED_FAULT: {
    httpStatus: 500,
    retriable: false,
    meaning: 'an error_burst fault failed the request',
  },
  BREAKID_INTERNAL: { httpStatus: 500, retriable: false, meaning: 'a bug: logged with its stack' },
} as const satisfies Record<string, ErrorCodeSpec>

export type ErrorCode = keyof typeof ERROR_CODES

export class BreakidError extends Error {
  readonly code: ErrorCode
  constructor(message: string, opts: { code: ErrorCode; cause?: unknown }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = new.target.name
    this.code = opts.code
  }

  get retriable(): boolean {
    return ERROR_CODES[this.code].retriable
  }

  get httpStatus(): number {
    return ERROR_CODES[this.code].httpStatus
  }
}

export type RecordDecodeReason =
  | 'not_single_object'
  | 'unknown_schema'
  | 'bad_writer_schema'
  | 'incompatible_schema'
  | 'malformed'
  | 'wrong_type'
  | 'truncated'
  /** decoded, but a value its table cannot hold (a negative count, an id that is not hex) */
  | 'out_of_range'

/** A Kafka record that is not a breakid record of a known schema. Never retriable. */
export class RecordDecodeError extends BreakidError {
  constructor(
    message: string,
    readonly reason: RecordDecodeReason,
    cause?: unknown,
  ) {
    super(message, { code: `BREAKID_DECODE_${reason.toUpperCase()}` as ErrorCode, cause })
  }
}

/** Invalid user input (CLI flags, query parameters, request bodies). Never retriable. */
export class InvalidInputError extends BreakidError {
  constructor(message: string, cause?: unknown, code: ErrorCode = 'BREAKID_INVALID_INPUT') {
    super(message, { code, cause })
  }
}

/** A downstream that failed in a way that may heal (connection refused, 5xx, timeouts). */
export class DownstreamError extends BreakidError {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
    cause?: unknown,
    code: ErrorCode = 'BREAKID_DOWNSTREAM',
  ) {
    super(message, { code, cause })
  }
}

export function isRetriable(err: unknown): boolean {
  if (err instanceof BreakidError) return err.retriable
  // Errors we did not classify (network errors from libraries) are assumed transient; bad input is
  // always raised as a non-retriable BreakidError by our own code.
  return true
}

/** What fastify and other libraries put on their own errors. */
interface LibraryError {
  statusCode?: number
  validation?: unknown
}

/**
 * The HTTP status an error is answered with: the table's for ours; fastify's own 4xx (a body that is
 * not JSON, over the body limit, failing the route's schema) as fastify says; anything else is a bug
 * (500).
 */
export function httpStatusOf(err: unknown): number {
  if (err instanceof BreakidError) return err.httpStatus
  const lib = err as LibraryError | undefined
  if (lib?.validation) return 400
  const status = lib?.statusCode
  return status !== undefined && status >= 400 && status < 500 ? status : 500
}

/**
 * The JSON body of an error answer, `{ error, code }`: our message and code; a library's 4xx message
 * as it is; for a 500 a fixed text, since a bug's message may show internals (it is logged instead).
 */
export function errorBody(err: unknown): { error: string; code: string } {
  const status = httpStatusOf(err)
  if (status >= 500 && !(err instanceof BreakidError))
    return { error: 'internal error', code: 'BREAKID_INTERNAL' }
  return { error: (err as Error)?.message ?? String(err), code: errorCodeOf(err) }
}

/** Our code for any error: its own, or the one of the table that answers with the same status. */
export function errorCodeOf(err: unknown): ErrorCode {
  if (err instanceof BreakidError) return err.code
  const status = httpStatusOf(err)
  if (status === 413) return 'BREAKID_BODY_TOO_LARGE'
  if (status === 415) return 'BREAKID_UNSUPPORTED_MEDIA_TYPE'
  if (status === 401) return 'BREAKID_UNAUTHORIZED'
  if (status === 404) return 'BREAKID_INVALID_INPUT'
  return status < 500 ? 'BREAKID_INVALID_INPUT' : 'BREAKID_INTERNAL'
}
