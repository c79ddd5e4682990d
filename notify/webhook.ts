/**
 * One webhook delivery attempt: render the alert, sign it, POST it with a time limit, and turn every
 * failure into an error that says whether retrying can help. `classifyFailure` is the only place that
 * decides retriable vs permanent (after OpenTelemetry's is-export-retryable): the notifier just obeys.
 *
 * Redirects are not followed: a signed alert must reach the configured URL or fail, never be re-sent
 * to wherever a 3xx points. The bodies are ./bodies.ts; `url` is a plain http(s) URL (a route's
 * `<format>+` prefix is stripped by ./routes.ts).
 */
import type { Alert } from '../contract/records.ts'
import { BreakidError, DownstreamError } from '../core/errors.ts'
import { type BodyContext, renderBody, type WebhookFormat } from './bodies.ts'
import { DEFAULT_TIMEOUT_MS, parseWebhookUrl, redactUrl } from './routes.ts'
import { sign } from './signature.ts'

export const IDEMPOTENCY_HEADER = 'Idempotency-Key'

// eval/ and replay/ format alert times with it
export { isoFromMicros } from './bodies.ts'

export interface DeliverOptions extends BodyContext {
  /** signs the request (X-Breakid-Timestamp, X-Breakid-Signature) when set */
  secret?: string
  /** one attempt, connect to last body byte. Default 5000. */
  timeoutMs?: number
  /** default 'json' */
  format?: WebhookFormat
  /** clock for the signature timestamp and HTTP-date Retry-After (tests). Default Date.now. */
  nowMs?: () => number
}

/**
 * Why one attempt failed, as counted per route (`failures_total{reason}`): a handful of values, so
 * the label's cardinality stays bounded whatever receivers answer.
 */
export type FailureReason = 'timeout' | 'connection' | 'http_408' | 'http_429' | 'http_5xx' | 'http_rejected'

export interface DeliveryResult {
  status: number
}

/** A receiver that refused the alert for good (4xx other than 408/429, a redirect). Never retriable. */
export class WebhookRejectedError extends BreakidError {
  readonly reason: FailureReason = 'http_rejected'
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message, { code: 'BREAKID_WEBHOOK_REJECTED' })
  }
}

/** A receiver that may come back: down, overloaded, slow (a DownstreamError with the reason). */
export class WebhookUnavailableError extends DownstreamError {
  constructor(
    message: string,
    readonly reason: Exclude<FailureReason, 'http_rejected'>,
    retryAfterMs?: number,
    cause?: unknown,
  ) {
    super(message, retryAfterMs, cause, 'BREAKID_WEBHOOK_UNAVAILABLE')
  }
}

/** The counted reason of any error deliver() threw. */
export function failureReason(err: unknown): FailureReason | 'other' {
  if (err instanceof WebhookRejectedError || err instanceof WebhookUnavailableError) return err.reason
  return 'other'
}

// ---------------------------------------------------------------------------------------------------
// Failure classification

/**
 * Statuses worth retrying: the receiver is overloaded, restarting or behind a proxy that lost it.
 * 5xx beyond the usual four (e.g. a CDN's 520–524) are transient too; only 501 and 505 say the
 * receiver will never accept this request, and those are permanent like any other 4xx.
 */
const PERMANENT_5XX = new Set([501, 505])
export function isRetriableStatus(status: number): boolean {
  if (status === 408 || status === 429) return true
  return status >= 500 && status <= 599 && !PERMANENT_5XX.has(status)
}

/** `Retry-After` as delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(
  value: string | null | undefined,
  nowMs: number = Date.now(),
): number | undefined {
  if (value === null || value === undefined) return undefined
  const v = value.trim()
  if (/^\d+$/.test(v)) return Number(v) * 1000
  const at = Date.parse(v)
  if (Number.isNaN(at)) return undefined
  return Math.max(0, at - nowMs)
}

export type DeliveryFailure =
  | { kind: 'response'; status: number; retryAfter: string | null; bodyExcerpt: string }
  | { kind: 'exception'; error: unknown; timeoutMs: number }

function describeException(error: unknown): string {
  if (error instanceof DOMException && error.name === 'TimeoutError') return 'timed out'
  if (error instanceof Error) {
    const cause = error.cause as { code?: unknown; message?: unknown } | undefined
    const detail = typeof cause?.code === 'string' ? cause.code : cause?.message
    return typeof detail === 'string' ? `${error.message} (${detail})` : error.message
  }
  return String(error)
}

/** The one place that decides whether a failed attempt is retried. */
export function classifyFailure(
  target: string,
  failure: DeliveryFailure,
  nowMs: number = Date.now(),
): WebhookUnavailableError | WebhookRejectedError {
  if (failure.kind === 'exception') {
    // Refused/reset connections, DNS failures and timeouts: the receiver may come back.
    const why = describeException(failure.error)
    const timedOut = why === 'timed out'
    const suffix = timedOut ? ` after ${failure.timeoutMs} ms` : ''
    return new WebhookUnavailableError(
      `webhook ${target}: ${why}${suffix}`,
      timedOut ? 'timeout' : 'connection',
      undefined,
      failure.error,
    )
  }
  const excerpt = failure.bodyExcerpt ? `: ${failure.bodyExcerpt}` : ''
  const message = `webhook ${target} answered HTTP ${failure.status}${excerpt}`
  if (isRetriableStatus(failure.status)) {
    const reason = failure.status === 408 ? 'http_408' : failure.status === 429 ? 'http_429' : 'http_5xx'
    return new WebhookUnavailableError(message, reason, parseRetryAfter(failure.retryAfter, nowMs))
  }
  return new WebhookRejectedError(message, failure.status)
}

// ---------------------------------------------------------------------------------------------------
// Delivery

const EXCERPT_CHARS = 200

/**
 * One attempt. Resolves on 2xx; otherwise throws WebhookUnavailableError (a retriable
 * DownstreamError, with the server's Retry-After in `retryAfterMs`) or WebhookRejectedError /
 * InvalidInputError (permanent).
 */
export async function deliver(url: string, alert: Alert, opts: DeliverOptions = {}): Promise<DeliveryResult> {
  const target = parseWebhookUrl(url)
  const format = opts.format ?? 'json'
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const now = opts.nowMs ?? Date.now
  const body = renderBody(alert, format, opts)
  const headers: Record<string, string> = {
    'Content-Type': 'application/json; charset=utf-8',
    'User-Agent': 'breakid-notify',
    [IDEMPOTENCY_HEADER]: `${alert.id}:${alert.status}`,
  }
  if (opts.secret !== undefined) Object.assign(headers, sign(opts.secret, body, Math.floor(now() / 1000)))
  const where = redactUrl(url)
  let failure: DeliveryFailure
  try {
    // The timeout covers the response body too: a receiver that stalls mid-body cannot hold us.
    const res = await fetch(target, {
      method: 'POST',
      headers,
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    })
    if (res.ok) {
      await res.body?.cancel() // free the connection for keep-alive without reading a reply we ignore
      return { status: res.status }
    }
    const text = await res.text()
    failure = {
      kind: 'response',
      status: res.status,
      retryAfter: res.headers.get('retry-after'),
      bodyExcerpt: text.slice(0, EXCERPT_CHARS).replace(/\s+/g, ' ').trim(),
    }
  } catch (error) {
    failure = { kind: 'exception', error, timeoutMs }
  }
  throw classifyFailure(where, failure, now())
}
