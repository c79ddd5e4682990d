/**
 * The web dashboard as a fastify plugin, with the query API it reads from:
 *
 *   GET  /                          → /dashboard/
 *   GET  /dashboard/                the single-page app (fleet, stages, alerts, requests, hardware, SQL)
 *   GET  /dashboard/login[?code=…]  one-time login link → session cookie + redirect; else a token form
 *   POST /dashboard/session         `{"token": "…"}` (the API token) → session cookie
 *   POST /dashboard/logout          ends the session
 *   POST /dashboard/login-links     with `Authorization: Bearer <token>`: a new one-time login link
 *   GET  /dashboard/assets/<file>   scripts and styles (content-hashed names, cached for good, gzip)
 *   /api/…                          the query API (queries/http.ts): bearer token or session cookie
 *
 * The page asks only named queries (queries/sql/*.sql) and, from its SQL console, `POST /api/sql`
 * with the same guards as `breakid sql`; it holds no SQL of its own. Vocabularies (stage names,
 * alert types) come from contract/ in the page's boot data. See session.ts for how signing in works.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { ClickHouse } from '../store/client.ts'
import { ALERT_TYPES, STAGES } from '../contract/vocabulary.ts'
import { bearerMatches, guardControlRoutes, sendError } from '../core/http-guard.ts'
import { queriesPlugin } from '../queries/http.ts'
import type { QueryLimits } from '../queries/limits.ts'
import { listQueries } from '../queries/runner.ts'
import { dashboardAssets } from './assets.ts'
import { loginPage, shellPage } from './pages.ts'
import { PALETTE, STAGE_COLORS } from './palette.ts'
import { DashboardSessions, sameOrigin } from './session.ts'

export const DASHBOARD_PATH = '/dashboard'

/**
 * What the fleet's time cost, from the `run-cost` named query: its rows (one per instance) carry
 * `cost`, `ok` (answered requests) and `starved_cost`; the page and the report show
 * Σcost / Σok × 1000 and Σstarved_cost. Built from the configuration's pricing section (bin/).
 */
export interface CostFigure {
  /** the named query; left out when the catalog has no such query */
  query: string
  /** its parameters besides from/to: `prices` */
  params: Record<string, string>
  currency: string
}

export interface DashboardPluginOptions {
  ch: ClickHouse
  limits?: QueryLimits
  /** the API token; undefined leaves the dashboard and the API open (tests; the CLI always sets one) */
  apiToken?: string
  /** where a client finds the token, for 401 messages */
  tokenHint?: string
  /** who is signed in; give one to issue login links from outside (default: a new one) */
  sessions?: DashboardSessions
  /** where the data comes from, shown in the page header (e.g. `chDB .breakid/data`) */
  source?: string
  /** cost per 1,000 inferences on the overview, when pricing is configured */
  cost?: CostFigure
}

/** Headers of every dashboard answer: no framing, no sniffing, no referrer, only our own scripts. */
const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
}

/** The link a person opens first: a one-time login link when a token guards the API. */
export function dashboardLink(baseUrl: string, sessions: DashboardSessions, guarded: boolean): string {
  const base = baseUrl.replace(/\/+$/, '')
  return guarded
    ? `${base}${DASHBOARD_PATH}/login?code=${sessions.issueLoginCode()}`
    : `${base}${DASHBOARD_PATH}/`
}

export const dashboardPlugin: FastifyPluginAsync<DashboardPluginOptions> = async (app, opts) => {
  const sessions = opts.sessions ?? new DashboardSessions()
  const guarded = opts.apiToken !== undefined
  const signedIn = (req: FastifyRequest) => !guarded || sessions.isSession(sessions.sessionOf(req))

  await app.register(queriesPlugin, {
    ch: opts.ch,
    limits: opts.limits,
    apiToken: opts.apiToken,
    tokenHint: opts.tokenHint,
    authorize: sessions.authorize,
  })

  await app.register(async (scope: FastifyInstance) => {
    // JSON errors here whatever the host app answers with (collect's receiver speaks OTLP)
    scope.setErrorHandler((err, req, reply) => sendError(req, reply, err))
    scope.addHook('onSend', async (_req, reply, payload) => {
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) void reply.header(k, v)
      return payload
    })

    const assets = dashboardAssets()
    const byFile = new Map([...assets.values()].map((a) => [a.file, a]))
    const assetUrl = (name: string) => `${DASHBOARD_PATH}/assets/${assets.get(name)!.file}`
    const catalog = new Set(listQueries().map((q) => q.name))
    const boot = {
      stages: STAGES,
      alertTypes: ALERT_TYPES,
      palette: PALETTE,
      stageColors: STAGE_COLORS,
      queries: [...catalog],
      source: opts.source ?? '',
      guarded,
      cost: opts.cost && catalog.has(opts.cost.query) ? opts.cost : undefined,
    }
    const html = (reply: FastifyReply, status: number, body: string) =>
      reply.code(status).header('cache-control', 'no-store').type('text/html; charset=utf-8').send(body)

    scope.get('/', async (_req, reply) => reply.redirect(`${DASHBOARD_PATH}/`, 302))
    scope.get(DASHBOARD_PATH, async (_req, reply) => reply.redirect(`${DASHBOARD_PATH}/`, 301))

    scope.get(`${DASHBOARD_PATH}/`, async (req, reply) => {
      if (!signedIn(req))
        return reply.header('cache-control', 'no-store').redirect(`${DASHBOARD_PATH}/login`, 303)
      return html(reply, 200, shellPage({ assetUrl, boot }))
    })

    scope.get<{ Querystring: { code?: string } }>(`${DASHBOARD_PATH}/login`, async (req, reply) => {
      const code = typeof req.query.code === 'string' ? req.query.code : undefined
      if (code !== undefined) {
        const id = sessions.redeemLoginCode(code)
        if (id) {
          // a redirect, not a page: the code is gone from the address bar before anything renders
          return reply
            .header('set-cookie', sessions.sessionCookie(req, id))
            .header('cache-control', 'no-store')
            .redirect(`${DASHBOARD_PATH}/`, 303)
        }
        return html(
          reply,
          401,
          loginPage({
            assetUrl,
            message:
              'This login link was already used or has expired: links work once, for ' +
              `${Math.round(sessions.loginLinkTtlMs / 60_000)} minutes. Paste the API token below, or start a new link.`,
          }),
        )
      }
      if (signedIn(req)) return reply.header('cache-control', 'no-store').redirect(`${DASHBOARD_PATH}/`, 303)
      return html(reply, 200, loginPage({ assetUrl }))
    })

    scope.get<{ Params: { file: string } }>(`${DASHBOARD_PATH}/assets/:file`, async (req, reply) => {
      const asset = byFile.get(req.params.file)
      if (!asset) return reply.code(404).send({ error: `no dashboard asset ${req.params.file}` })
      void reply
        .header('cache-control', 'public, max-age=31536000, immutable')
        .header('vary', 'accept-encoding')
      if (/\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
        return reply.header('content-encoding', 'gzip').type(asset.type).send(asset.gzipped)
      }
      return reply.type(asset.type).send(asset.body)
    })

    // JSON bodies only (415 otherwise), no token: these are how a browser gets its cookie
    await scope.register(async (open: FastifyInstance) => {
      guardControlRoutes(open, {})
      open.post<{ Body: { token?: unknown } }>(`${DASHBOARD_PATH}/session`, async (req, reply) => {
        if (!sameOrigin(req)) return reply.code(403).send({ error: 'sign in from the dashboard page itself' })
        const token = req.body?.token
        if (guarded && (typeof token !== 'string' || !bearerMatches(`Bearer ${token}`, opts.apiToken!))) {
          return reply.code(401).send({
            error: `wrong API token${opts.tokenHint ? ` (${opts.tokenHint})` : ''}`,
            code: 'BREAKID_UNAUTHORIZED',
          })
        }
        return reply
          .header('set-cookie', sessions.sessionCookie(req, sessions.openSession()))
          .code(204)
          .send()
      })
      open.post(`${DASHBOARD_PATH}/logout`, async (req, reply) => {
        if (!sameOrigin(req))
          return reply.code(403).send({ error: 'sign out from the dashboard page itself' })
        sessions.endSession(sessions.sessionOf(req))
        return reply.header('set-cookie', sessions.clearCookie(req)).code(204).send()
      })
    })

    // a new login link for someone who holds the token (e.g. to open the dashboard of a long-running service)
    await scope.register(async (tokenOnly: FastifyInstance) => {
      guardControlRoutes(tokenOnly, { apiToken: opts.apiToken, tokenHint: opts.tokenHint })
      tokenOnly.post(`${DASHBOARD_PATH}/login-links`, async (_req, reply) => {
        const path = guarded
          ? `${DASHBOARD_PATH}/login?code=${sessions.issueLoginCode()}`
          : `${DASHBOARD_PATH}/`
        return reply.code(201).send({ path, expires_in_s: Math.round(sessions.loginLinkTtlMs / 1000) })
      })
    })
  })
}
