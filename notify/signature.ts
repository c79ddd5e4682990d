/**
 * Webhook signatures: HMAC-SHA256 over `${timestamp}.${rawBody}`, sent as
 *
 *   X-Breakid-Timestamp: <unix seconds>
 *   X-Breakid-Signature: v1=<hex>
 *
 * Signing the timestamp with the body makes a captured request useless after `toleranceSeconds`
 * (replay protection, as Stripe and Slack sign theirs). The version prefix lets a later scheme ship
 * beside v1; a header may carry several comma-separated `v1=` values (a sender rotating secrets), and
 * one match is enough.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import { InvalidInputError } from '../core/errors.ts'

export const TIMESTAMP_HEADER = 'X-Breakid-Timestamp'
export const SIGNATURE_HEADER = 'X-Breakid-Signature'
/** Default accepted clock difference between sender and receiver, either way. */
export const DEFAULT_TOLERANCE_SECONDS = 300

// A type alias, not an interface, so it is assignable to HeaderSource (implicit index signature).
export type SignatureHeaders = {
  'X-Breakid-Timestamp': string
  'X-Breakid-Signature': string
}

export type VerifyFailure =
  | 'missing_timestamp'
  | 'malformed_timestamp'
  | 'stale_timestamp'
  | 'missing_signature'
  | 'malformed_signature'
  | 'bad_signature'

export type VerifyResult = { ok: true } | { ok: false; reason: VerifyFailure }

/** A fetch `Headers` object or node's `IncomingHttpHeaders` (any name case). */
export type HeaderSource = Headers | Readonly<Record<string, string | readonly string[] | undefined>>

export interface VerifyOptions {
  /** default 300 */
  toleranceSeconds?: number
  /** default: the current time */
  nowSeconds?: number
}

const SIGNATURE_HEX = /^[0-9a-f]{64}$/

function hmacHex(secret: string, timestamp: string, body: string | Buffer): string {
  if (secret.length === 0) throw new InvalidInputError('webhook secret must not be empty')
  // Two updates instead of one concatenated string: a Buffer body is signed byte for byte.
  return createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex')
}

export function sign(
  secret: string,
  body: string | Buffer,
  nowSeconds: number = Math.floor(Date.now() / 1000),
): SignatureHeaders {
  if (!Number.isInteger(nowSeconds))
    throw new InvalidInputError(`timestamp must be whole seconds: ${nowSeconds}`)
  const timestamp = String(nowSeconds)
  return {
    [TIMESTAMP_HEADER]: timestamp,
    [SIGNATURE_HEADER]: `v1=${hmacHex(secret, timestamp, body)}`,
  } as SignatureHeaders
}

function header(headers: HeaderSource, name: string): string | undefined {
  if (headers instanceof Headers) return headers.get(name) ?? undefined
  const wanted = name.toLowerCase()
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() !== wanted || v === undefined) continue
    return typeof v === 'string' ? v : v.join(',')
  }
  return undefined
}

/** Checks a received request. `body` must be the raw bytes as received, before any JSON parsing. */
export function verify(
  secret: string,
  body: string | Buffer,
  headers: HeaderSource,
  opts: VerifyOptions = {},
): VerifyResult {
  const tolerance = opts.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS
  const now = opts.nowSeconds ?? Math.floor(Date.now() / 1000)
  const timestamp = header(headers, TIMESTAMP_HEADER)?.trim()
  if (!timestamp) return { ok: false, reason: 'missing_timestamp' }
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'malformed_timestamp' }
  if (Math.abs(now - Number(timestamp)) > tolerance) return { ok: false, reason: 'stale_timestamp' }
  const signatureHeader = header(headers, SIGNATURE_HEADER)
  if (!signatureHeader) return { ok: false, reason: 'missing_signature' }
  const candidates = signatureHeader
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('v1='))
    .map((s) => s.slice(3).toLowerCase())
    .filter((hex) => SIGNATURE_HEX.test(hex))
  if (candidates.length === 0) return { ok: false, reason: 'malformed_signature' }
  const expected = Buffer.from(hmacHex(secret, timestamp, body), 'hex')
  // Compare against every candidate without stopping early, so timing says nothing about which matched.
  let matched = false
  for (const hex of candidates) {
    if (timingSafeEqual(expected, Buffer.from(hex, 'hex'))) matched = true
  }
  return matched ? { ok: true } : { ok: false, reason: 'bad_signature' }
}
