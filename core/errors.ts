/**
 * Error classes shared by every component. Like kafkajs' errors, each says whether retrying can help:
 * a retriable error (a broker or server that is down) is retried with backoff; a non-retriable one
 * (bad input) is counted, dead-lettered or answered with a 4xx, and never retried.
 */
export class BreakidError extends Error {
  readonly retriable: boolean
  readonly code: string
  constructor(message: string, opts: { code: string; retriable: boolean; cause?: unknown }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = new.target.name
    this.code = opts.code
    this.retriable = opts.retriable
  }
}

/** A Kafka record that is not a breakid record of a known schema. Never retriable. */
export class RecordDecodeError extends BreakidError {
  constructor(
    message: string,
    readonly reason:
      | 'not_single_object'
      | 'unknown_schema'
      | 'bad_writer_schema'
      | 'incompatible_schema'
      | 'malformed'
      | 'wrong_type'
      | 'truncated',
    cause?: unknown,
  ) {
    super(message, { code: `BREAKID_DECODE_${reason.toUpperCase()}`, retriable: false, cause })
  }
}

/** Invalid user input (CLI flags, query parameters, request bodies). Never retriable. */
export class InvalidInputError extends BreakidError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'BREAKID_INVALID_INPUT', retriable: false, cause })
  }
}

/** A downstream that failed in a way that may heal (connection refused, 5xx, timeouts). */
export class DownstreamError extends BreakidError {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
    cause?: unknown,
  ) {
    super(message, { code: 'BREAKID_DOWNSTREAM', retriable: true, cause })
  }
}

export function isRetriable(err: unknown): boolean {
  if (err instanceof BreakidError) return err.retriable
  // Errors we did not classify (network errors from libraries) are assumed transient; bad input is
  // always raised as a non-retriable BreakidError by our own code.
  return true
}
