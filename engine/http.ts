/**
 * The engine's HTTP face: the Open Inference Protocol (KServe v2) REST endpoints, /metrics, and the
 * error contract — every failure is a JSON `{ "error": "..." }` with a 4xx/5xx status, counted.
 *
 * Inference, health, metadata and /metrics are open, as in Triton. The model repository
 * (index, load, unload) changes what the server runs, so it takes JSON bodies only and, when a
 * token is set, `Authorization: Bearer <token>` (core/http-guard.ts); loads run a bounded number
 * at a time.
 */
import { promisify } from 'node:util'
import { gunzip, type InputType, inflate, type ZlibOptions } from 'node:zlib'
import Fastify, {
  type FastifyInstance,
  type FastifyPluginAsync,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify'
import { BreakidError, errorBody, errorCodeOf, httpStatusOf, InvalidInputError } from '../core/errors.ts'
import { guardControlRoutes, UnsupportedMediaTypeError } from '../core/http-guard.ts'
import { isRunId, RUN_ID_HEADER, runIdProblem } from '../contract/run-id.ts'
import type { Engine, RequestMeta } from './engine.ts'
import { renderMetrics } from './metrics.ts'
import { modelConfig } from './model-config.ts'
import { parseVersion } from './registry.ts'
import { BINARY_CONTENT_TYPE, INFERENCE_HEADER_LENGTH, splitBinaryBody } from './v2-binary.ts'
import { v2InferBodySchema } from './v2-request.ts'
import type { V2InferRequest } from './v2-types.ts'

declare module 'fastify' {
  interface FastifyRequest {
    arrivalNs: bigint
    arrivalEpochUs: number
    parsedNs: bigint
    /** binary tensor extension: the body after the JSON inference header */
    binaryTail: Buffer | null
  }
}

/** Open Inference Protocol extensions served here (`GET /v2`). */
const EXTENSIONS = ['binary_tensor_data', 'model_repository', 'model_configuration', 'statistics']

/** Request body encodings the infer routes take (tritonclient's request_compression_algorithm). */
const BODY_ENCODINGS = new Set(['gzip', 'deflate'])

/** Body of `POST /v2/repository/models/{name}/load|unload`: `{"parameters": {"version": "2"}}`, optional. */
interface RepositoryRequestBody {
  parameters?: { version?: string | number }
}

export interface EngineHttpOptions {
  /** largest accepted request body, bytes. Default 8 MiB. */
  bodyLimitBytes?: number
  /**
   * bearer token of the model-repository endpoints; undefined leaves them open (tests and
   * embedding: `serve` and `up` always set one)
   */
  apiToken?: string
  /** where a client finds the token, for the 401 message */
  tokenHint?: string
  /** model loads that may run at once; one more answers 429 (default 2) */
  maxConcurrentLoads?: number
}

/** A model load refused because `maxConcurrentLoads` loads are running; HTTP 429 (retriable). */
export class ModelLoadsBusyError extends BreakidError {
  constructor(running: number) {
    super(`${running} model loads are already running (the most at once); retry when one has finished`, {
      code: 'BREAKID_MODEL_LOADS_BUSY',
    })
  }
}

function requestMeta(req: FastifyRequest): RequestMeta {
  const runId = req.headers[RUN_ID_HEADER]
  return {
    arrivalNs: req.arrivalNs,
    arrivalEpochUs: req.arrivalEpochUs,
    requestBytes: Number(req.headers['content-length'] ?? 0),
    traceparent: req.headers.traceparent as string | undefined,
    // an invalid one is refused by the infer route; its rejection span keeps the engine's run id
    runId: isRunId(runId) ? runId : undefined,
  }
}

/**
 * The parameter maps of the inference request schema take a string, number or boolean (v2-request.ts):
 * a union type, which ajv's strict mode wants allowed. A host app that mounts `enginePlugin` passes
 * these as its `ajv` option (else ajv logs a strict-mode warning per union; validation is the same).
 */
export const ENGINE_AJV_OPTIONS = { customOptions: { allowUnionTypes: true } }

export interface EnginePluginOptions extends EngineHttpOptions {
  engine: Engine
  /**
   * true: the engine starts when the app gets ready (before it listens) and stops when the app
   * closes (after the server stopped taking requests and answered those in flight). Default false:
   * the caller starts and stops it.
   */
  manageEngine?: boolean
}

/**
 * Counts and answers an error as the engine does (JSON body, status from the error); a refused infer
 * request still gets its span, so error rates see it.
 */
export function engineErrorHandler(engine: Engine) {
  return function handle(
    this: FastifyInstance,
    err: Error & { statusCode?: number; code?: string; validation?: unknown },
    req: FastifyRequest,
    reply: FastifyReply,
  ): void {
    const status = httpStatusOf(err)
    // counted by fastify's own code where it has one (bad JSON vs schema vs size), else ours
    const code = err instanceof BreakidError ? err.code : (err.code ?? errorCodeOf(err))
    engine.countError(code)
    const model = (req.params as { name?: string } | undefined)?.name
    if (model !== undefined && req.routeOptions.url?.endsWith('/infer')) {
      engine.recordRejected(model, code, status, requestMeta(req))
    }
    if (status >= 500) this.log.error({ err }, 'request failed')
    void reply.code(status).type('application/json').send(errorBody(err))
  }
}

/** The engine alone as a fastify app: its own server options, 404s counted, `enginePlugin` at the root. */
export function buildEngineApp(
  engine: Engine,
  opts: EngineHttpOptions & Pick<EnginePluginOptions, 'manageEngine'> = {},
): FastifyInstance {
  const app = Fastify({
    bodyLimit: opts.bodyLimitBytes ?? DEFAULT_BODY_LIMIT,
    keepAliveTimeout: 30_000,
    ajv: ENGINE_AJV_OPTIONS,
  })
  // errors outside the plugin's routes (a 404 path's body that does not parse) are counted as before
  app.setErrorHandler(engineErrorHandler(engine))
  app.setNotFoundHandler((req, reply) => {
    engine.countError('not_found')
    void reply.code(404).send({ error: `no route ${req.method} ${req.url}` })
  })
  void app.register(enginePlugin, { ...opts, engine })
  return app
}

const DEFAULT_BODY_LIMIT = 8 * 1024 * 1024

/**
 * The engine's HTTP API (Open Inference Protocol, Triton's extensions, /metrics) as an encapsulated
 * fastify plugin: `app.register(enginePlugin, { engine, prefix? })` mounts it into any fastify app (the
 * ops server, a user's app). Its hooks, error handler and body parsers stay inside it; the host's
 * routes keep their own. Request bodies of the infer routes are limited to `bodyLimitBytes` whatever
 * the host's limit.
 */
export const enginePlugin: FastifyPluginAsync<EnginePluginOptions> = async (app, opts) => {
  const { engine } = opts
  if (opts.manageEngine) {
    app.addHook('onReady', () => engine.start())
    app.addHook('onClose', () => engine.stop())
  }
  app.decorateRequest('arrivalNs', 0n)
  app.decorateRequest('arrivalEpochUs', 0)
  app.decorateRequest('parsedNs', 0n)
  app.decorateRequest('binaryTail', null)
  // callback hooks, not async ones: no promise per request and hook on the hot path
  app.addHook('onRequest', (req, _reply, done) => {
    req.arrivalNs = process.hrtime.bigint()
    req.arrivalEpochUs = Math.round((performance.timeOrigin + performance.now()) * 1000)
    done()
  })
  app.addHook('preValidation', (req, _reply, done) => {
    req.parsedNs = process.hrtime.bigint()
    done()
  })
  app.setErrorHandler(engineErrorHandler(engine))

  app.get('/v2/health/live', async () => ({ live: true }))
  app.get('/v2/health/ready', async (_req, reply) => {
    const ready = engine.registry.names().length > 0
    return reply.code(ready ? 200 : 503).send({ ready })
  })
  app.get('/v2', async () => ({ name: 'breakid', version: '0.1.0', extensions: EXTENSIONS }))

  /** A JSON error with the status the pipeline gives it (404 unknown model, 400 bad input, ...), counted. */
  const sendError = (reply: FastifyReply, err: unknown) => {
    const status = httpStatusOf(err)
    engine.countError(errorCodeOf(err))
    if (status >= 500) app.log.error({ err }, 'request failed')
    return reply.code(status).type('application/json').send(errorBody(err))
  }
  const unknownModel = (reply: FastifyReply, what: string) => {
    engine.countError('BREAKID_UNKNOWN_MODEL')
    return reply.code(404).send({ error: `unknown model "${what}"` })
  }

  // Newest ready version's metadata, with every ready version listed (`versions`, as KServe v2 has it).
  app.get<{ Params: { name: string } }>('/v2/models/:name', async (req, reply) => {
    const m = engine.registry.get(req.params.name)
    if (!m) return unknownModel(reply, req.params.name)
    return { ...m.meta, versions: engine.registry.versions(req.params.name) }
  })
  app.get<{ Params: { name: string; version: string } }>(
    '/v2/models/:name/versions/:version',
    async (req, reply) => {
      const m = engine.registry.get(req.params.name, req.params.version)
      if (!m) return unknownModel(reply, `${req.params.name}" version "${req.params.version}`)
      return m.meta
    },
  )
  // Triton's model configuration extension: the newest ready version unless one is named
  app.get<{ Params: { name: string } }>('/v2/models/:name/config', async (req, reply) => {
    const m = engine.registry.get(req.params.name)
    if (!m) return unknownModel(reply, req.params.name)
    return modelConfig(m)
  })
  app.get<{ Params: { name: string; version: string } }>(
    '/v2/models/:name/versions/:version/config',
    async (req, reply) => {
      const m = engine.registry.get(req.params.name, req.params.version)
      if (!m) return unknownModel(reply, `${req.params.name}" version "${req.params.version}`)
      return modelConfig(m)
    },
  )
  // Triton's statistics extension: every loaded version, one model's, or one version's
  const stats = (name?: string, version?: string) => ({
    model_stats: engine.registry
      .index()
      .filter((e) => e.state === 'READY' && (name === undefined || e.name === name))
      .filter((e) => version === undefined || e.version === version)
      .map((e) => engine.metrics.statistics(e.name, e.version)),
  })
  app.get('/v2/models/stats', async () => stats())
  app.get<{ Params: { name: string } }>('/v2/models/:name/stats', async (req, reply) => {
    if (!engine.registry.get(req.params.name)) return unknownModel(reply, req.params.name)
    return stats(req.params.name)
  })
  app.get<{ Params: { name: string; version: string } }>(
    '/v2/models/:name/versions/:version/stats',
    async (req, reply) => {
      if (!engine.registry.get(req.params.name, req.params.version)) {
        return unknownModel(reply, `${req.params.name}" version "${req.params.version}`)
      }
      return stats(req.params.name, req.params.version)
    },
  )
  app.get<{ Params: { name: string } }>('/v2/models/:name/ready', async (req, reply) => {
    const ready = engine.registry.get(req.params.name) !== undefined
    return reply.code(ready ? 200 : 404).send({ name: req.params.name, ready })
  })
  app.get<{ Params: { name: string; version: string } }>(
    '/v2/models/:name/versions/:version/ready',
    async (req, reply) => {
      const ready = engine.registry.get(req.params.name, req.params.version) !== undefined
      return reply.code(ready ? 200 : 404).send({ name: req.params.name, version: req.params.version, ready })
    },
  )

  // Triton's model-repository extension: index, load and (draining) unload while serving. Scoped so
  // the guard (JSON only, bearer token) covers these routes and not inference.
  const maxLoads = opts.maxConcurrentLoads ?? 2
  let loading = 0
  void app.register(async (scope) => {
    guardControlRoutes(scope, {
      apiToken: opts.apiToken,
      tokenHint: opts.tokenHint,
      onRefused: (code) => engine.countError(code),
    })
    scope.post<{ Body: { ready?: boolean } | undefined }>('/v2/repository/index', async (req) => {
      const index = engine.registry.index()
      return req.body?.ready === true ? index.filter((e) => e.state === 'READY') : index
    })
    const requestedVersion = (body: RepositoryRequestBody | undefined): string | undefined => {
      const v = body?.parameters?.version
      return v === undefined ? undefined : String(v)
    }
    scope.post<{ Params: { name: string }; Body: RepositoryRequestBody | undefined }>(
      '/v2/repository/models/:name/load',
      async (req, reply) => {
        const v = requestedVersion(req.body)
        try {
          const version = v === undefined ? undefined : parseVersion(v)
          if (v !== undefined && version === undefined) {
            throw new InvalidInputError(`version "${v}" is not an integer >= 1`)
          }
          // each load builds and opens a model: bounded, so a burst of loads cannot exhaust the host
          if (loading >= maxLoads) {
            void reply.header('retry-after', '1')
            throw new ModelLoadsBusyError(loading)
          }
          loading++
          try {
            const m = await engine.loadModel({ name: req.params.name, version })
            return { name: req.params.name, version: m.meta.version, state: 'READY' }
          } finally {
            loading--
          }
        } catch (err) {
          return sendError(reply, err)
        }
      },
    )
    scope.post<{ Params: { name: string }; Body: RepositoryRequestBody | undefined }>(
      '/v2/repository/models/:name/unload',
      async (req, reply) => {
        try {
          const versions = await engine.unloadModel(req.params.name, requestedVersion(req.body))
          return { name: req.params.name, versions, state: 'UNAVAILABLE' }
        } catch (err) {
          return sendError(reply, err)
        }
      },
    )
  })

  const infer = async (
    req: FastifyRequest<{
      Params: { name: string; version?: string }
      Body: V2InferRequest
    }>,
    reply: FastifyReply,
  ) => {
    const runId = req.headers[RUN_ID_HEADER]
    if (runId !== undefined && !isRunId(runId)) throw new InvalidRunIdError(runIdProblem(runId)!)
    const result = await engine.handleInfer(req.params.name, req.body, {
      ...requestMeta(req),
      parsedNs: req.parsedNs,
      version: req.params.version,
      binary: req.binaryTail ?? undefined,
    })
    if (result.status === 429) void reply.header('retry-after', '1')
    void reply
      .code(result.status)
      .header('traceparent', `00-${result.span.trace_id}-${result.span.span_id}-01`)
    if (result.headerLength !== undefined) {
      return reply
        .header(INFERENCE_HEADER_LENGTH, String(result.headerLength))
        .type(BINARY_CONTENT_TYPE)
        .send(result.body)
    }
    return reply.type('application/json').send(result.body)
  }
  // The infer routes parse their own bodies: JSON, or (with Inference-Header-Content-Length) a JSON
  // header plus binary tensor data under any content type, gzip- or deflate-compressed or not (the
  // body limit holds for the decompressed body too). Scoped so other routes keep fastify's parsers.
  const json = app.getDefaultJsonParser('error', 'error')
  const bodyLimit = opts.bodyLimitBytes ?? DEFAULT_BODY_LIMIT
  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (req, body, done) => {
      const encoding = String(req.headers['content-encoding'] ?? 'identity').toLowerCase()
      if (encoding === 'identity') return parseInfer(req, body as Buffer, done)
      if (!BODY_ENCODINGS.has(encoding)) {
        done(
          new UnsupportedMediaTypeError(`Content-Encoding ${encoding}`, 'send gzip, deflate or none'),
          undefined,
        )
        return
      }
      const decompress = encoding === 'gzip' ? gunzipAsync : inflateAsync
      decompress(body as Buffer, { maxOutputLength: bodyLimit }).then(
        (raw) => parseInfer(req, raw, done),
        (err: NodeJS.ErrnoException) =>
          done(
            err.code === 'ERR_BUFFER_TOO_LARGE'
              ? new BodyTooLargeError(bodyLimit)
              : new BadEncodingError(encoding, err.message),
            undefined,
          ),
      )
    })
    const parseInfer = (
      req: FastifyRequest,
      raw: Buffer,
      done: (err: Error | null, body?: unknown) => void,
    ) => {
      const headerLength = req.headers[INFERENCE_HEADER_LENGTH]
      if (headerLength === undefined) {
        const type = req.headers['content-type']
        if (type !== undefined && !/^application\/(?:[\w.+-]+\+)?json\b/i.test(type)) {
          done(
            new UnsupportedMediaTypeError(
              type,
              'send application/json, or set Inference-Header-Content-Length for binary tensor data',
            ),
            undefined,
          )
          return
        }
        json(req, raw.toString('utf8'), done)
        return
      }
      try {
        const { json: header, tail } = splitBinaryBody(raw, String(headerLength))
        req.binaryTail = tail
        json(req, header, done)
      } catch (err) {
        done(err as Error, undefined)
      }
    }
    const route = { schema: { body: v2InferBodySchema }, bodyLimit }
    scope.post('/v2/models/:name/infer', route, infer)
    scope.post('/v2/models/:name/versions/:version/infer', route, infer)
  })

  app.get('/metrics', async (_req, reply) =>
    reply.type('text/plain; version=0.0.4').send(renderMetrics(engine)),
  )
}

const gunzipAsync = promisify<InputType, ZlibOptions, Buffer>(gunzip)
const inflateAsync = promisify<InputType, ZlibOptions, Buffer>(inflate)

/** A `breakid-run-id` header that is not a run id (contract/run-id.ts): 400, and the request is not run. */
class InvalidRunIdError extends BreakidError {
  constructor(problem: string) {
    super(`header ${RUN_ID_HEADER}: ${problem}`, { code: 'BREAKID_INVALID_RUN_ID' })
  }
}

/** A compressed body whose decompressed size is over the body limit. */
class BodyTooLargeError extends BreakidError {
  constructor(limit: number) {
    super(`request body over ${limit} bytes once decompressed`, { code: 'BREAKID_BODY_TOO_LARGE' })
  }
}

/** A body that does not decompress as its Content-Encoding says. */
class BadEncodingError extends BreakidError {
  constructor(encoding: string, why: string) {
    super(`body is not valid ${encoding}: ${why}`, { code: 'BREAKID_BAD_ENCODING' })
  }
}
