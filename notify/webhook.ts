/**
 * One webhook delivery attempt: render the alert, sign it, POST it with a time limit, and turn every
 * failure into an error that says whether retrying can help. `classifyFailure` is the only place that
 * decides retriable vs permanent (after OpenTelemetry's is-export-retryable): the notifier just obeys.
 *
 * Redirects are not followed: a signed alert must reach the configured URL or fail, never be re-sent
 * to wherever a 3xx points.
 */
import type { AlertGroup } from './groups.ts'
import type { Alert } from '../contract/records.ts'
import { BreakidError, DownstreamError, InvalidInputError } from '../core/errors.ts'
import { sign } from './signature.ts'

export type WebhookFormat = 'json' | 'slack'

export const IDEMPOTENCY_HEADER = 'Idempotency-Key'
export const DEFAULT_TIMEOUT_MS = 5_000

export interface DeliverOptions {
  /** signs the request (X-Breakid-Timestamp, X-Breakid-Signature) when set */
  secret?: string
  /** one attempt, connect to last body byte. Default 5000. */
  timeoutMs?: number
  /** default 'json' */
  format?: WebhookFormat
  /** clock for the signature timestamp and HTTP-date Retry-After (tests). Default Date.now. */
  nowMs?: () => number
  /** the fleet group the alert belongs to (notify/groups.ts), sent along in the body */
  group?: AlertGroup
}

export interface DeliveryResult {
  status: number
}

/** A receiver that refused the alert for good (4xx other than 408/429, a redirect). Never retriable. */
export class WebhookRejectedError extends BreakidError {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message, { code: 'BREAKID_WEBHOOK_REJECTED', retriable: false })
  }
}

// ---------------------------------------------------------------------------------------------------
// Bodies

/** The alert as sent in the 'json' format: the record plus readable times. */
export type WebhookAlert = Alert & { starts_at: string; ends_at: string | null }

export interface JsonWebhookBody {
  version: 1
  alert: WebhookAlert
  /** the same break on other instances of the fleet, when the notifier knows it */
  group?: AlertGroup
}

export function isoFromMicros(us: number): string {
  return new Date(Math.floor(us / 1000)).toISOString()
}

export function jsonBody(alert: Alert, group?: AlertGroup): JsonWebhookBody {
  return {
    version: 1,
    alert: {
      ...alert,
      starts_at: isoFromMicros(alert.starts_at_us),
      ends_at: alert.ends_at_us === null ? null : isoFromMicros(alert.ends_at_us),
    },
    ...(group ? { group } : {}),
  }
}

/** " · also firing on 2 other instances of eu-1" when the break is not this instance's alone */
function groupNote(alert: Alert, group: AlertGroup | undefined): string {
  const others = group?.firing_instances.filter((i) => i !== alert.instance).length ?? 0
  return others > 0
    ? ` · also firing on ${others} other instance${others === 1 ? '' : 's'} of ${alert.fleet}`
    : ''
}

interface SlackText {
  type: 'mrkdwn' | 'plain_text'
  text: string
}
export type SlackBlock =
  | { type: 'section'; text: SlackText; fields?: SlackText[] }
  | { type: 'context'; elements: SlackText[] }

/** Slack incoming-webhook payload: `text` is the notification line, `blocks` the message body. */
export interface SlackBody {
  text: string
  blocks: SlackBlock[]
}

function num(x: number): string {
  return Number.isFinite(x) ? String(Number(x.toPrecision(4))) : String(x)
}

/** instance/model/stage, the stage left out when the alert has none */
function location(alert: Alert): string {
  return [alert.instance, alert.model, alert.stage].filter((s) => s !== null && s !== '').join('/')
}

/** One readable line: `[CRITICAL] FIRING accelerator_starved on engine-0/mlp/preprocess: executor_busy 0.1 vs baseline 0.6 (threshold 0.3)` */
export function summaryLine(alert: Alert): string {
  return (
    `[${alert.severity.toUpperCase()}] ${alert.status.toUpperCase()} ${alert.type} on ${location(alert)}: ` +
    `${alert.statistic} ${num(alert.observed)} vs baseline ${num(alert.baseline)} (threshold ${num(alert.threshold)})`
  )
}

/** Slack mrkdwn treats &, < and > as control characters; everything user-supplied is escaped. */
function esc(s: string): string {
  return s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;')
}

/** Slack rejects a section text over 3000 characters and a field over 2000. */
function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`
}

const SLACK_ICON: Record<Alert['severity'], string> = {
  critical: ':red_circle:',
  warning: ':large_orange_circle:',
  info: ':large_blue_circle:',
}

export function slackBody(alert: Alert, group?: AlertGroup): SlackBody {
  const line = summaryLine(alert)
  const icon = alert.status === 'resolved' ? ':white_check_mark:' : SLACK_ICON[alert.severity]
  const field = (label: string, value: string): SlackText => ({
    type: 'mrkdwn',
    text: clip(`*${label}*\n${esc(value)}`, 2000),
  })
  const times =
    `started ${isoFromMicros(alert.starts_at_us)}` +
    (alert.ends_at_us === null ? '' : `, ended ${isoFromMicros(alert.ends_at_us)}`)
  const exemplars = alert.exemplar_request_ids.slice(0, 5).join(', ')
  return {
    text: clip(line, 3000),
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: clip(`${icon} *${esc(line)}*`, 3000) } },
      {
        type: 'section',
        text: { type: 'mrkdwn', text: clip(esc(alert.summary || alert.type), 3000) },
        fields: [
          field('Instance', alert.instance),
          field('Model', alert.model),
          field('Stage', alert.stage ?? '—'),
          field(
            alert.statistic,
            `observed ${num(alert.observed)} vs baseline ${num(alert.baseline)} (threshold ${num(alert.threshold)})`,
          ),
          field('Suspected cause', alert.suspected_cause || '—'),
          field('Suggested action', alert.suggested_action || '—'),
        ],
      },
      {
        type: 'context',
        elements: [
          {
            type: 'mrkdwn',
            text: clip(
              esc(
                `alert ${alert.id} · ${alert.fleet} · ${times}${exemplars ? ` · e.g. ${exemplars}` : ''}` +
                  groupNote(alert, group),
              ),
              3000,
            ),
          },
        ],
      },
    ],
  }
}

export function renderBody(alert: Alert, format: WebhookFormat, group?: AlertGroup): string {
  return JSON.stringify(format === 'slack' ? slackBody(alert, group) : jsonBody(alert, group))
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
): DownstreamError | WebhookRejectedError {
  if (failure.kind === 'exception') {
    // Refused/reset connections, DNS failures and timeouts: the receiver may come back.
    const why = describeException(failure.error)
    const suffix = why === 'timed out' ? ` after ${failure.timeoutMs} ms` : ''
    return new DownstreamError(`webhook ${target}: ${why}${suffix}`, undefined, failure.error)
  }
  const excerpt = failure.bodyExcerpt ? `: ${failure.bodyExcerpt}` : ''
  const message = `webhook ${target} answered HTTP ${failure.status}${excerpt}`
  if (isRetriableStatus(failure.status)) {
    return new DownstreamError(message, parseRetryAfter(failure.retryAfter, nowMs))
  }
  return new WebhookRejectedError(message, failure.status)
}

// ---------------------------------------------------------------------------------------------------
// Delivery

/** Where a request went, for messages and logs: origin only, since webhook paths often hold tokens. */
export function redactUrl(url: string): string {
  try {
    return new URL(url).origin
  } catch {
    return '<invalid url>'
  }
}

export function parseWebhookUrl(url: string): URL {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch (err) {
    throw new InvalidInputError(`webhook url is not a URL: ${JSON.stringify(redactUrl(url))}`, err)
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new InvalidInputError(`webhook url must be http(s), got ${parsed.protocol}`)
  }
  return parsed
}

const EXCERPT_CHARS = 200

/**
 * One attempt. Resolves on 2xx; otherwise throws DownstreamError (retriable, with the server's
 * Retry-After in `retryAfterMs`) or WebhookRejectedError / InvalidInputError (permanent).
 */
export async function deliver(url: string, alert: Alert, opts: DeliverOptions = {}): Promise<DeliveryResult> {
  const target = parseWebhookUrl(url)
  const format = opts.format ?? 'json'
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const now = opts.nowMs ?? Date.now
  const body = renderBody(alert, format, opts.group)
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
