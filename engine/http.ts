/**
 * The engine's HTTP face: the Open Inference Protocol (KServe v2) REST endpoints, /metrics, and the
 * error contract — every failure is a JSON `{ "error": "..." }` with a 4xx/5xx status, counted.
 */
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import type { Engine, RequestMeta } from './engine.ts'
import { renderMetrics } from './metrics.ts'
import { type V2InferRequest, v2InferBodySchema } from './v2-request.ts'

declare module 'fastify' {
  interface FastifyRequest {
    arrivalNs: bigint
    arrivalEpochUs: number
    parsedNs: bigint
  }
}

export interface EngineHttpOptions {
  /** largest accepted request body, bytes. Default 8 MiB. */
  bodyLimitBytes?: number
}

function requestMeta(req: FastifyRequest): RequestMeta {
  return {
    arrivalNs: req.arrivalNs,
    arrivalEpochUs: req.arrivalEpochUs,
    requestBytes: Number(req.headers['content-length'] ?? 0),
    traceparent: req.headers.traceparent as string | undefined,
  }
}

export function buildEngineApp(engine: Engine, opts: EngineHttpOptions = {}): FastifyInstance {
  const app = Fastify({
    bodyLimit: opts.bodyLimitBytes ?? 8 * 1024 * 1024,
    keepAliveTimeout: 30_000,
  })
  app.decorateRequest('arrivalNs', 0n)
  app.decorateRequest('arrivalEpochUs', 0)
  app.decorateRequest('parsedNs', 0n)
  app.addHook('onRequest', async (req) => {
    req.arrivalNs = process.hrtime.bigint()
    req.arrivalEpochUs = Math.round((performance.timeOrigin + performance.now()) * 1000)
  })
  app.addHook('preValidation', async (req) => {
    req.parsedNs = process.hrtime.bigint()
  })

  app.setErrorHandler(
    (err: Error & { statusCode?: number; code?: string; validation?: unknown }, req, reply) => {
      const status = err.validation ? 400 : (err.statusCode ?? 500)
      const code = err.code ?? (status >= 500 ? 'internal' : 'bad_request')
      engine.countError(code)
      const model = (req.params as { name?: string } | undefined)?.name
      if (model !== undefined && req.routeOptions.url?.endsWith('/infer')) {
        engine.recordRejected(model, code, status, requestMeta(req))
      }
      if (status >= 500) app.log.error({ err }, 'request failed')
      void reply.code(status).type('application/json').send({ error: err.message })
    },
  )
  app.setNotFoundHandler((req, reply) => {
    engine.countError('not_found')
    void reply.code(404).send({ error: `no route ${req.method} ${req.url}` })
  })

  app.get('/v2/health/live', async () => ({ live: true }))
  app.get('/v2/health/ready', async (_req, reply) => {
    const ready = engine.models.size > 0
    return reply.code(ready ? 200 : 503).send({ ready })
  })
  app.get('/v2', async () => ({ name: 'breakid', version: '0.1.0', extensions: [] }))

  const modelMeta = async (name: string, reply: import('fastify').FastifyReply) => {
    const m = engine.models.get(name)
    if (!m) {
      engine.countError('BREAKID_UNKNOWN_MODEL')
      return reply.code(404).send({ error: `unknown model "${name}"` })
    }
    return m.meta
  }
  app.get<{ Params: { name: string } }>('/v2/models/:name', async (req, reply) =>
    modelMeta(req.params.name, reply),
  )
  app.get<{ Params: { name: string } }>('/v2/models/:name/ready', async (req, reply) => {
    const ready = engine.models.has(req.params.name)
    return reply.code(ready ? 200 : 404).send({ name: req.params.name, ready })
  })

  const infer = async (
    req: import('fastify').FastifyRequest<{
      Params: { name: string; version?: string }
      Body: V2InferRequest
    }>,
    reply: import('fastify').FastifyReply,
  ) => {
    const result = await engine.handleInfer(req.params.name, req.body, {
      ...requestMeta(req),
      parsedNs: req.parsedNs,
      version: req.params.version,
    })
    if (result.status === 429) void reply.header('retry-after', '1')
    return reply
      .code(result.status)
      .header('traceparent', `00-${result.span.trace_id}-${result.span.span_id}-01`)
      .type('application/json')
      .send(result.body)
  }
  const schema = { body: v2InferBodySchema }
  app.post('/v2/models/:name/infer', { schema }, infer)
  app.post('/v2/models/:name/versions/:version/infer', { schema }, infer)

  app.get('/metrics', async (_req, reply) =>
    reply.type('text/plain; version=0.0.4').send(renderMetrics(engine)),
  )
  return app
}
