/**
 * How a browser signs in to the dashboard without holding the API token.
 *
 * The process prints a **one-time login link** (`/dashboard/login?code=…`): a random code, unrelated
 * to the API token, that works once and for `loginLinkTtlMs`. Opening it makes the server set a
 * session cookie (HttpOnly: no script reads it; SameSite=Strict: no other site's page sends it) and
 * answer with a redirect to the dashboard, so the code leaves the address bar before any page script
 * runs, and a copy of the link pasted anywhere afterwards is dead. People who have the token (the
 * `--api-token`, or the `api-token` file in the data directory) sign in by pasting it into the login
 * page, which exchanges it for the same cookie; it is not kept in the browser.
 *
 * The cookie admits requests to the query API in place of `Authorization: Bearer` (queries/http.ts,
 * `authorize`). A request that changes something (POST) on a cookie must also come from the
 * dashboard's own origin (`Origin` and `Sec-Fetch-Site` when the browser sends them), on top of
 * SameSite and the API's JSON-only bodies.
 *
 * Both tables are bounded: beyond `maxLoginLinks` / `maxSessions`, issuing one more drops the oldest
 * (that link or session stops working; counted in `evicted`). Codes and session ids are 256 random
 * bits, kept only as SHA-256 digests.
 */
import { createHash, randomBytes } from 'node:crypto'
import type { FastifyRequest } from 'fastify'

export interface SessionOptions {
  /** how long a login link works, ms (default 15 minutes) */
  loginLinkTtlMs?: number
  /** how long a session lasts from sign-in, ms (default 12 hours) */
  sessionTtlMs?: number
  /** outstanding login links; one more drops the oldest (default 16) */
  maxLoginLinks?: number
  /** open sessions; one more drops the oldest (default 64) */
  maxSessions?: number
  /** epoch ms, injectable for tests (default Date.now) */
  now?: () => number
}

const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

function digest(value: string): string {
  return createHash('sha256').update(value).digest('base64url')
}

function secret(): string {
  return randomBytes(32).toString('base64url')
}

/** Expiry by digest, oldest first (Map keeps insertion order), at most `max` entries. */
class BoundedExpiring {
  private readonly entries = new Map<string, number>()
  evicted = 0

  constructor(private readonly max: number) {}

  add(key: string, expiresAtMs: number): void {
    this.entries.set(key, expiresAtMs)
    while (this.entries.size > this.max) {
      const oldest = this.entries.keys().next().value as string
      this.entries.delete(oldest)
      this.evicted++
    }
  }

  /** true while `key` is present and unexpired; an expired entry is removed */
  valid(key: string, nowMs: number): boolean {
    const expires = this.entries.get(key)
    if (expires === undefined) return false
    if (nowMs >= expires) {
      this.entries.delete(key)
      return false
    }
    return true
  }

  delete(key: string): boolean {
    return this.entries.delete(key)
  }

  get size(): number {
    return this.entries.size
  }
}

export class DashboardSessions {
  readonly loginLinkTtlMs: number
  readonly sessionTtlMs: number
  private readonly now: () => number
  private readonly codes: BoundedExpiring
  private readonly sessions: BoundedExpiring

  constructor(opts: SessionOptions = {}) {
    this.loginLinkTtlMs = opts.loginLinkTtlMs ?? 15 * 60_000
    this.sessionTtlMs = opts.sessionTtlMs ?? 12 * 3_600_000
    this.now = opts.now ?? Date.now
    this.codes = new BoundedExpiring(opts.maxLoginLinks ?? 16)
    this.sessions = new BoundedExpiring(opts.maxSessions ?? 64)
  }

  /** A new one-time login code (put it in a link: `/dashboard/login?code=<code>`). */
  issueLoginCode(): string {
    const code = secret()
    this.codes.add(digest(code), this.now() + this.loginLinkTtlMs)
    return code
  }

  /** Spends a login code: a new session id the first time, within its lifetime; undefined after. */
  redeemLoginCode(code: string): string | undefined {
    const key = digest(code)
    const ok = this.codes.valid(key, this.now())
    this.codes.delete(key)
    return ok ? this.openSession() : undefined
  }

  /** A new session id (after the API token or a login code was shown). */
  openSession(): string {
    const id = secret()
    this.sessions.add(digest(id), this.now() + this.sessionTtlMs)
    return id
  }

  isSession(id: string | undefined): boolean {
    return id !== undefined && id !== '' && this.sessions.valid(digest(id), this.now())
  }

  endSession(id: string | undefined): void {
    if (id) this.sessions.delete(digest(id))
  }

  /** links and sessions dropped because the tables were full */
  get evicted(): { loginLinks: number; sessions: number } {
    return { loginLinks: this.codes.evicted, sessions: this.sessions.evicted }
  }

  get openSessions(): number {
    return this.sessions.size
  }

  /**
   * The cookie's name carries the server's port: browsers send a host's cookies to every port of
   * it, so two breakid processes on one machine would otherwise overwrite each other's session.
   */
  cookieName(req: FastifyRequest): string {
    return `breakid_session_${req.socket.localPort ?? 0}`
  }

  /**
   * `Set-Cookie` value for a new session; `Secure` when the page came over HTTPS (TLS here, or a
   * proxy in front saying so), so the cookie never travels in clear text after that.
   */
  sessionCookie(req: FastifyRequest, id: string): string {
    const maxAge = Math.floor(this.sessionTtlMs / 1000)
    const secure = req.protocol === 'https' || req.headers['x-forwarded-proto'] === 'https' ? '; Secure' : ''
    return `${this.cookieName(req)}=${id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${secure}`
  }

  /** `Set-Cookie` value that removes the session cookie. */
  clearCookie(req: FastifyRequest): string {
    return `${this.cookieName(req)}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`
  }

  /** The session id the request's cookie carries, if any. */
  sessionOf(req: FastifyRequest): string | undefined {
    return readCookie(req.headers.cookie, this.cookieName(req))
  }

  /**
   * Whether the request's cookie is an open session and, for a request that changes something,
   * the request comes from this server's own pages (what SameSite=Strict promises, checked again).
   */
  readonly authorize = (req: FastifyRequest): boolean => {
    if (!this.isSession(this.sessionOf(req))) return false
    return !UNSAFE_METHODS.has(req.method) || sameOrigin(req)
  }
}

/** One cookie's value from a `Cookie` header (RFC 6265 syntax; the first of a repeated name). */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

/**
 * True unless the browser says the request came from elsewhere: `Sec-Fetch-Site` other than
 * same-origin, or an `Origin` whose host is not the one the request was sent to. A client that sends
 * neither (not a browser) is not a CSRF vector and passes.
 */
export function sameOrigin(req: FastifyRequest): boolean {
  const site = req.headers['sec-fetch-site']
  if (site !== undefined && site !== 'same-origin') return false
  const origin = req.headers.origin
  if (origin === undefined) return true
  try {
    // both through URL, so a default port reads the same either way (`:80` or none)
    return new URL(origin).host === new URL(`http://${req.headers.host ?? ''}`).host
  } catch {
    return false
  }
}
