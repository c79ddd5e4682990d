/**
 * The query API as an encapsulated fastify plugin, so a running `breakid up` (which holds chDB's
 * data directory; other processes cannot open it) answers the CLI and the dashboard:
 *
 *   GET      /api/queries          the named queries and their parameters
 *   GET|POST /api/queries/:name    run one; parameters from the query string and/or a JSON body
 *   POST     /api/sql              ad-hoc read-only SQL: JSON `{ sql, limitRows? }`
 *
 * Every route needs the API token (`Authorization: Bearer …`) when one is set, or the credential
 * `authorize` accepts (the dashboard's session cookie), and bodies must be JSON (core/http-guard.ts). `?format=` picks the output: `json` (default, an array of objects),
 * `ndjson`, `csv`, `table`, or `result` (`{ columns, rows, truncated, … }` with ClickHouse types, for
 * clients that render themselves). Bad input, refused SQL and a query over its limits are 400, an
 * unknown query 404, all as `{ error, code }`; a ClickHouse that is down, a full query queue or a
 * cancelled query is 503.
 *
 * A query is cancelled (killed in ClickHouse) when its client disconnects before the answer, and
 * every query is cancelled when the server closes, so a slow query holds neither its slot nor
 * `close()` (readonly.ts).
 */
import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { ClickHouse } from '../store/client.ts'
import { DownstreamError, InvalidInputError } from '../core/errors.ts'
import { guardControlRoutes, sendError } from '../core/http-guard.ts'
import { QueryBusyError } from './errors.ts'
import { CONTENT_TYPES, formatResult, OUTPUT_FORMATS, type OutputFormat } from './format.ts'
import type { QueryLimits } from './limits.ts'
import { RESERVED_PARAM_NAMES } from './params.ts'
import { listQueries, type QueryResult, runNamedQuery, runSql } from './runner.ts'

export interface QueriesPluginOptions {
  ch: ClickHouse
  /** rows kept for ad-hoc SQL when the request does not say (default: runner's DEFAULT_SQL_LIMIT_ROWS) */
  sqlLimitRows?: number
  /** query limits and concurrency (default: DEFAULT_QUERY_LIMITS) */
  limits?: QueryLimits
  /** bearer token every route requires; undefined leaves the API open (tests; the CLI always sets one) */
  apiToken?: string
  /** where a client finds the token, for the 401 message */
  tokenHint?: string
  /** admits a request without the token on another credential (the dashboard's session cookie) */
  authorize?: (req: FastifyRequest) => boolean
}

type HttpFormat = OutputFormat | 'result'
const HTTP_FORMATS: readonly HttpFormat[] = [...OUTPUT_FORMATS, 'result']

export const queriesPlugin: FastifyPluginAsync<QueriesPluginOptions> = async (app, opts) => {
  const { ch, limits } = opts
  if (!ch) throw new Error('queriesPlugin needs the ClickHouse object: register it with { ch }')
  guardControlRoutes(app, { apiToken: opts.apiToken, tokenHint: opts.tokenHint, authorize: opts.authorize })

  // aborted when the server closes: every waiting and running query stops, so close() does not wait
  const closing = new AbortController()
  app.addHook('preClose', async () => {
    closing.abort(new Error('the server is shutting down'))
  })
  /** A signal that aborts when the client goes away before its answer, or the server closes. */
  const querySignal = (req: FastifyRequest, reply: FastifyReply): AbortSignal => {
    const gone = new AbortController()
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) gone.abort(new Error('the client disconnected'))
    })
    req.raw.once('aborted', () => gone.abort(new Error('the client disconnected')))
    return AbortSignal.any([gone.signal, closing.signal])
  }

  app.setErrorHandler((err: FastifyError, req, reply) => {
    // while closing, end the connection with the answer: a kept-alive socket holds close() for its timeout
    if (closing.signal.aborted) void reply.header('connection', 'close')
    if (err instanceof QueryBusyError) {
      void reply.header('retry-after', String(Math.ceil((err.retryAfterMs ?? 1000) / 1000)))
    } else if (err instanceof DownstreamError) req.log.warn({ err }, 'query failed downstream')
    return sendError(req, reply, err)
  })

  app.get('/api/queries', async () => ({
    queries: listQueries().map((q) => ({ name: q.name, description: q.description, params: q.params })),
  }))

  const runNamed = async (
    name: string,
    query: unknown,
    body: unknown,
    reply: FastifyReply,
    signal: AbortSignal,
  ): Promise<FastifyReply> => {
    const fromQuery = stringRecord(query, 'query string')
    const fromBody = body === undefined || body === null || body === '' ? {} : stringRecord(body, 'JSON body')
    const format = pickFormat(fromQuery.format ?? fromBody.format)
    const params: Record<string, string> = {}
    for (const [source, values] of [fromQuery, fromBody].entries()) {
      for (const [key, value] of Object.entries(values)) {
        if (RESERVED_PARAM_NAMES.includes(key)) continue
        if (source === 1 && Object.hasOwn(params, key)) {
          throw new InvalidInputError(`parameter '${key}' is given in both the query string and the body`)
        }
        params[key] = value
      }
    }
    const result = await runNamedQuery(ch, name, params, { limits, signal })
    return send(reply, result, format)
  }

  app.get<{ Params: { name: string } }>('/api/queries/:name', async (req, reply) =>
    runNamed(req.params.name, req.query, undefined, reply, querySignal(req, reply)),
  )
  app.post<{ Params: { name: string } }>('/api/queries/:name', async (req, reply) =>
    runNamed(req.params.name, req.query, req.body, reply, querySignal(req, reply)),
  )

  app.post('/api/sql', async (req, reply) => {
    const query = stringRecord(req.query, 'query string')
    let sql: unknown
    let limit: unknown = query.limitRows
    let format: unknown = query.format
    if (req.body && typeof req.body === 'object' && !Array.isArray(req.body)) {
      const body = req.body as Record<string, unknown>
      sql = body.sql
      limit = body.limitRows ?? limit
      format = body.format ?? format
    }
    if (typeof sql !== 'string' || sql.trim() === '') {
      throw new InvalidInputError(
        'send the SQL as a JSON body {"sql": "..."} (Content-Type: application/json)',
      )
    }
    const limitRows = limit === undefined ? opts.sqlLimitRows : Number(limit)
    if (limitRows !== undefined && (!Number.isSafeInteger(limitRows) || limitRows < 1)) {
      throw new InvalidInputError(`limitRows must be a positive integer, got ${JSON.stringify(limit)}`)
    }
    const signal = querySignal(req, reply)
    const result = await runSql(ch, sql, { limitRows, limits, signal })
    return send(reply, result, pickFormat(format))
  })
}

function pickFormat(value: unknown): HttpFormat {
  if (value === undefined) return 'json'
  if (typeof value === 'string' && (HTTP_FORMATS as readonly string[]).includes(value))
    return value as HttpFormat
  throw new InvalidInputError(
    `format must be one of ${HTTP_FORMATS.join(', ')}, got ${JSON.stringify(value)}`,
  )
}

/** Query-string or body values as strings: numbers and booleans are accepted, lists and objects not. */
function stringRecord(value: unknown, where: string): Record<string, string> {
  if (value === undefined || value === null) return {}
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidInputError(`the ${where} must be an object of parameter names to values`)
  }
  const out: Record<string, string> = {}
  for (const [key, v] of Object.entries(value)) {
    if (typeof v === 'string') out[key] = v
    else if (typeof v === 'number' || typeof v === 'boolean') out[key] = String(v)
    else if (v === null) continue
    else throw new InvalidInputError(`parameter '${key}' in the ${where} must be a single value`)
  }
  return out
}

function send(reply: FastifyReply, result: QueryResult, format: HttpFormat): FastifyReply {
  if (result.truncated) reply.header('x-breakid-truncated', 'true')
  if (format === 'result') return reply.type(CONTENT_TYPES.json).send(JSON.stringify(result))
  return reply.type(CONTENT_TYPES[format]).send(formatResult(result, format))
}
