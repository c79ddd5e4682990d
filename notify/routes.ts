/**
 * Webhook routes: where alerts go, in which body, which of them, and how hard to try. One route is
 * one receiver with its own queue and retry policy (./route-worker.ts), so a receiver that is down
 * delays only itself.
 *
 * A route's body format is named by `format`, or inline in the URL as `<format>+<url>` — e.g.
 * `slack+https://hooks.slack.com/services/…` or `alertmanager+https://oncall.example/hook` — so a
 * plain `--webhook-url` list or `BREAKID_WEBHOOK_URLS` can choose it. The prefix is stripped before
 * the request is sent.
 */
import { type WebhookFormat, WEBHOOK_FORMATS, isWebhookFormat } from './bodies.ts'
import type { Severity } from '../contract/records.ts'
import { InvalidInputError } from '../core/errors.ts'

/** How a route retries one alert and when it gives up on it (dead letter). Times in ms. */
export interface RouteRetryPolicy {
  /** ceiling of the first backoff wait (full jitter, doubling). Default 500. */
  initialDelayMs: number
  /** largest backoff ceiling. Default 30 000. */
  maxDelayMs: number
  /** a receiver's Retry-After is honoured up to this. Default 300 000 (5 min). */
  maxRetryAfterMs: number
  /** attempts per alert before it is dead-lettered. Default Infinity: `giveUpAfterMs` decides. */
  maxAttempts: number
  /**
   * An alert not delivered this long after its first attempt is dead-lettered. Default 3 600 000
   * (1 h): past that it is old news for a pager, and holding it would hold the alerts topic's
   * commit, so a restart would replay hours of alerts to the healthy routes.
   */
  giveUpAfterMs: number
}

export const DEFAULT_RETRY_POLICY: Readonly<RouteRetryPolicy> = Object.freeze({
  initialDelayMs: 500,
  maxDelayMs: 30_000,
  maxRetryAfterMs: 300_000,
  maxAttempts: Number.POSITIVE_INFINITY,
  giveUpAfterMs: 3_600_000,
})

/** One attempt, connect to last body byte. */
export const DEFAULT_TIMEOUT_MS = 5_000
/**
 * Alerts waiting for one route behind the one in flight. When full, the oldest waiting alert is
 * dead-lettered (reason `queue_full`, counted): the newest state is what a receiver that comes back
 * needs, and a full queue must not hold the other routes.
 */
export const DEFAULT_QUEUE_CAPACITY = 1_000

export interface NotifyRoute {
  /** label in counters and logs; default `route-<index>`. Letters, digits, `_.:-`. */
  name?: string
  /** http(s) URL, optionally `<format>+<url>` */
  url: string
  /** signs every request to this route */
  secret?: string
  /** default 'json', or the URL's prefix */
  format?: WebhookFormat
  /** only these alert types; default all */
  types?: string[]
  /** only alerts at least this severe; default 'info' (all) */
  minSeverity?: Severity
  /** one attempt; default 5000 */
  timeoutMs?: number
  /** alerts waiting behind the one in flight; default 1000 */
  queueCapacity?: number
  retry?: Partial<RouteRetryPolicy>
  /** base URL of this breakid deployment, for links in bodies (Alertmanager's externalURL) */
  externalUrl?: string
}

export interface ResolvedRoute {
  name: string
  /** the URL requests go to (format prefix stripped) */
  url: string
  secret: string | undefined
  format: WebhookFormat
  types: ReadonlySet<string> | undefined
  minRank: number
  timeoutMs: number
  queueCapacity: number
  retry: Readonly<RouteRetryPolicy>
  externalUrl: string | undefined
}

export const SEVERITY_RANK: Record<Severity, number> = { info: 0, warning: 1, critical: 2 }
const ROUTE_NAME = /^[A-Za-z0-9_.:-]{1,64}$/
const FORMAT_PREFIX = /^([a-z]+)\+(.*)$/i

/** Where a request went, for messages and logs: origin only, since webhook paths often hold tokens. */
export function redactUrl(url: string): string {
  try {
    return new URL(splitFormatPrefix(url).url).origin
  } catch {
    return '<invalid url>'
  }
}

/** `slack+https://x` → { format: 'slack', url: 'https://x' }; a plain URL has no format. */
export function splitFormatPrefix(url: string): { format: WebhookFormat | undefined; url: string } {
  const m = FORMAT_PREFIX.exec(url.trim())
  if (!m) return { format: undefined, url: url.trim() }
  const format = m[1]!.toLowerCase()
  if (!isWebhookFormat(format)) {
    throw new InvalidInputError(
      `webhook url prefix "${m[1]}+" is not a format (${WEBHOOK_FORMATS.map((f) => `${f}+`).join(', ')})`,
    )
  }
  return { format, url: m[2]! }
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

function positive(
  where: string,
  value: unknown,
  fallback: number,
  opts: { infinite?: boolean } = {},
): number {
  const v = value ?? fallback
  const ok =
    typeof v === 'number' &&
    v > 0 &&
    (Number.isFinite(v) || (opts.infinite === true && v === Number.POSITIVE_INFINITY))
  if (!ok) throw new InvalidInputError(`${where} must be a positive number, got ${JSON.stringify(v)}`)
  return v
}

/** Fills a route's policy from the notifier's defaults and checks every field. */
export function resolveRoutes(
  routes: readonly NotifyRoute[],
  defaults: { retry?: Partial<RouteRetryPolicy>; timeoutMs?: number; queueCapacity?: number } = {},
): ResolvedRoute[] {
  const names = new Set<string>()
  return routes.map((r, i) => {
    const name = r.name ?? `route-${i}`
    if (!ROUTE_NAME.test(name))
      throw new InvalidInputError(`route name ${JSON.stringify(name)} is not a label`)
    if (names.has(name)) throw new InvalidInputError(`route name ${name} is used twice`)
    names.add(name)
    const where = `route ${name}`
    const split = splitFormatPrefix(r.url)
    parseWebhookUrl(split.url)
    if (r.format !== undefined && !isWebhookFormat(r.format)) {
      throw new InvalidInputError(`${where}: unknown format ${r.format} (${WEBHOOK_FORMATS.join(', ')})`)
    }
    if (r.format !== undefined && split.format !== undefined && r.format !== split.format) {
      throw new InvalidInputError(`${where}: format ${r.format} contradicts the url prefix ${split.format}+`)
    }
    if (r.secret !== undefined && r.secret.length === 0) {
      throw new InvalidInputError(`${where}: secret must not be empty`)
    }
    const minSeverity = r.minSeverity ?? 'info'
    if (!(minSeverity in SEVERITY_RANK)) {
      throw new InvalidInputError(`${where}: unknown severity ${minSeverity}`)
    }
    if (r.externalUrl !== undefined) parseWebhookUrl(r.externalUrl)
    const fallback = { ...DEFAULT_RETRY_POLICY, ...defaults.retry }
    const given = r.retry ?? {}
    const retry: RouteRetryPolicy = {
      initialDelayMs: positive(
        `${where}: retry.initialDelayMs`,
        given.initialDelayMs,
        fallback.initialDelayMs,
      ),
      maxDelayMs: positive(`${where}: retry.maxDelayMs`, given.maxDelayMs, fallback.maxDelayMs),
      maxRetryAfterMs: positive(
        `${where}: retry.maxRetryAfterMs`,
        given.maxRetryAfterMs,
        fallback.maxRetryAfterMs,
      ),
      maxAttempts: positive(`${where}: retry.maxAttempts`, given.maxAttempts, fallback.maxAttempts, {
        infinite: true,
      }),
      giveUpAfterMs: positive(`${where}: retry.giveUpAfterMs`, given.giveUpAfterMs, fallback.giveUpAfterMs, {
        infinite: true,
      }),
    }
    if (Number.isFinite(retry.maxAttempts) && !Number.isInteger(retry.maxAttempts)) {
      throw new InvalidInputError(`${where}: retry.maxAttempts must be a whole number`)
    }
    const queueCapacity = positive(
      `${where}: queueCapacity`,
      r.queueCapacity,
      defaults.queueCapacity ?? DEFAULT_QUEUE_CAPACITY,
    )
    if (!Number.isInteger(queueCapacity))
      throw new InvalidInputError(`${where}: queueCapacity must be a whole number`)
    return Object.freeze({
      name,
      url: split.url,
      secret: r.secret,
      format: r.format ?? split.format ?? 'json',
      types: r.types === undefined ? undefined : new Set(r.types),
      minRank: SEVERITY_RANK[minSeverity],
      timeoutMs: positive(`${where}: timeoutMs`, r.timeoutMs, defaults.timeoutMs ?? DEFAULT_TIMEOUT_MS),
      queueCapacity,
      retry: Object.freeze(retry),
      externalUrl: r.externalUrl,
    })
  })
}

// ---------------------------------------------------------------------------------------------------
// routes from a configuration file

const ROUTE_KEYS = new Set([
  'name',
  'url',
  'secret',
  'format',
  'types',
  'minSeverity',
  'timeoutMs',
  'queueCapacity',
  'retry',
  'externalUrl',
])
const RETRY_KEYS = new Set(Object.keys(DEFAULT_RETRY_POLICY))

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * One route as written in a config file (`webhookRoutes: [{ url, secret, format, … }]`), checked
 * field by field so a typo is an error rather than a default. `maxAttempts`/`giveUpAfterMs` take
 * null for "no limit" (JSON has no Infinity).
 */
export function parseRouteConfig(raw: unknown, where: string): NotifyRoute {
  if (!isObject(raw)) throw new InvalidInputError(`${where}: expected an object`)
  for (const k of Object.keys(raw)) {
    if (!ROUTE_KEYS.has(k)) throw new InvalidInputError(`${where}: unknown key "${k}"`)
  }
  const str = (k: string): string | undefined => {
    const v = raw[k]
    if (v === undefined) return undefined
    if (typeof v !== 'string') throw new InvalidInputError(`${where}.${k}: expected a string`)
    return v
  }
  const num = (obj: Record<string, unknown>, k: string, path: string): number | undefined => {
    const v = obj[k]
    if (v === undefined) return undefined
    if (v === null && (k === 'maxAttempts' || k === 'giveUpAfterMs')) return Number.POSITIVE_INFINITY
    if (typeof v !== 'number') throw new InvalidInputError(`${path}.${k}: expected a number`)
    return v
  }
  const url = str('url')
  if (url === undefined) throw new InvalidInputError(`${where}: url is required`)
  const format = str('format')
  if (format !== undefined && !isWebhookFormat(format)) {
    throw new InvalidInputError(`${where}.format: "${format}" is not one of ${WEBHOOK_FORMATS.join(', ')}`)
  }
  const minSeverity = str('minSeverity')
  if (minSeverity !== undefined && !(minSeverity in SEVERITY_RANK)) {
    throw new InvalidInputError(`${where}.minSeverity: "${minSeverity}" is not info, warning or critical`)
  }
  let types: string[] | undefined
  if (raw.types !== undefined) {
    if (!Array.isArray(raw.types) || raw.types.some((t) => typeof t !== 'string')) {
      throw new InvalidInputError(`${where}.types: expected a list of alert types`)
    }
    types = raw.types as string[]
  }
  let retry: Partial<RouteRetryPolicy> | undefined
  if (raw.retry !== undefined) {
    if (!isObject(raw.retry)) throw new InvalidInputError(`${where}.retry: expected an object`)
    const r = raw.retry
    for (const k of Object.keys(r)) {
      if (!RETRY_KEYS.has(k)) throw new InvalidInputError(`${where}.retry: unknown key "${k}"`)
    }
    retry = {}
    for (const k of RETRY_KEYS) {
      const v = num(r, k, `${where}.retry`)
      if (v !== undefined) retry[k as keyof RouteRetryPolicy] = v
    }
  }
  const route: NotifyRoute = {
    url,
    ...(str('name') !== undefined ? { name: str('name') } : {}),
    ...(str('secret') !== undefined ? { secret: str('secret') } : {}),
    ...(format !== undefined ? { format } : {}),
    ...(types !== undefined ? { types } : {}),
    ...(minSeverity !== undefined ? { minSeverity: minSeverity as Severity } : {}),
    ...(num(raw, 'timeoutMs', where) !== undefined ? { timeoutMs: num(raw, 'timeoutMs', where) } : {}),
    ...(num(raw, 'queueCapacity', where) !== undefined
      ? { queueCapacity: num(raw, 'queueCapacity', where) }
      : {}),
    ...(retry !== undefined ? { retry } : {}),
    ...(str('externalUrl') !== undefined ? { externalUrl: str('externalUrl') } : {}),
  }
  // the same checks the notifier makes, now, so a bad file fails at load rather than at start
  resolveRoutes([route])
  return route
}
