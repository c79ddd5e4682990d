/**
 * The guard in front of the control endpoints of `serve` and `up` (model repository, query API):
 *
 * - JSON only: an explicit non-JSON Content-Type (`text/plain`, a form, multipart) is refused with
 *   415. Those are the types a browser page may POST cross-site without a CORS preflight, so a page
 *   cannot drive these endpoints. A request without a Content-Type is read as JSON when it has a
 *   body (NVIDIA's tritonclient sends repository requests without one), and as no body when empty.
 * - A bearer token: `Authorization: Bearer <token>`, compared in constant time; 401 otherwise.
 *   `authorize` may admit a request on another credential instead (the dashboard's session cookie,
 *   dashboard/session.ts), so a browser never holds the token itself.
 *
 * The content type is checked first: refusing it says nothing about the token.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { BreakidError, ERROR_CODES, type ErrorCode, errorBody, httpStatusOf } from './errors.ts'

/** A body of a type the route does not take (415). */
export class UnsupportedMediaTypeError extends BreakidError {
  constructor(type: string, hint: string) {
    super(`unsupported content type "${type}": ${hint}`, { code: 'BREAKID_UNSUPPORTED_MEDIA_TYPE' })
  }
}

/**
 * Answers an error as JSON `{ error, code }` with the status of the error table (core/errors.ts);
 * a 500 is logged with its stack. Every HTTP surface of breakid answers errors through this.
 */
export function sendError(req: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  const status = httpStatusOf(err)
  if (status >= 500) req.log.error({ err }, 'request failed')
  return reply.code(status).type('application/json').send(errorBody(err))
}

export interface ControlGuardOptions {
  /** the token to require; undefined leaves the routes open (tests, embedding: the CLI always sets one) */
  apiToken?: string
  /** where a client finds the token, for the 401 message (e.g. the token file's path) */
  tokenHint?: string
  /** called with the error code of every refused request, for counting */
  onRefused?: (code: string) => void
  /**
   * another credential that admits a request without the bearer token (the dashboard's session
   * cookie); it sees the request after the content-type check and must do its own CSRF checks
   */
  authorize?: (req: FastifyRequest) => boolean
}

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/** True for `application/json` and `application/*+json`, with or without parameters. */
export function isJsonContentType(type: string): boolean {
  return JSON_TYPE.test(type.trim())
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

/** Constant-time check of an Authorization header against the token. */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')
  // hashing first gives equal lengths, so neither the comparison nor its length leaks the token
  return m !== null && timingSafeEqual(digest(m[1]!), digest(token))
}

/**
 * Guards every route of `scope` (an encapsulated plugin): JSON-only bodies and, when a token is
 * set, the bearer token. Replaces the scope's body parsers with one that reads JSON or no body.
 */
export function guardControlRoutes(scope: FastifyInstance, opts: ControlGuardOptions): void {
  const refuse = (reply: FastifyReply, code: ErrorCode, error: string) => {
    opts.onRefused?.(code)
    const status = ERROR_CODES[code].httpStatus
    if (status === 401) void reply.header('www-authenticate', 'Bearer realm="breakid"')
    return reply.code(status).type('application/json').send({ error, code })
  }
  scope.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    const type = req.headers['content-type']
    if (BODY_METHODS.has(req.method) && type !== undefined && !isJsonContentType(type)) {
      return refuse(
        reply,
        'BREAKID_UNSUPPORTED_MEDIA_TYPE',
        `unsupported content type "${type}": send application/json`,
      )
    }
    if (
      opts.apiToken !== undefined &&
      !bearerMatches(req.headers.authorization, opts.apiToken) &&
      !(opts.authorize?.(req) ?? false)
    ) {
      const hint = opts.tokenHint ? ` (${opts.tokenHint})` : ''
      return refuse(
        reply,
        'BREAKID_UNAUTHORIZED',
        `${req.headers.authorization ? 'wrong' : 'missing'} API token: send "Authorization: Bearer <token>"; ` +
          `the token is --api-token / BREAKID_API_TOKEN of the server, or the api-token file it wrote into its data directory${hint}`,
      )
    }
  })
  const json = scope.getDefaultJsonParser('error', 'error')
  scope.removeAllContentTypeParsers()
  scope.addContentTypeParser('*', { parseAs: 'string' }, (req, body, done) => {
    const type = req.headers['content-type']
    if (type !== undefined && !isJsonContentType(type)) {
      // unreachable behind the hook; kept so the parser is safe on its own
      done(new UnsupportedMediaTypeError(type, 'send application/json'), undefined)
      return
    }
    if ((body as string).trim() === '') {
      done(null, undefined)
      return
    }
    json(req, body as string, done)
  })
}
