/**
 * The OTLP/HTTP receiver as a fastify app: `POST /v1/traces` and `POST /v1/metrics`, answering as the
 * OTLP specification says (opentelemetry-proto docs/specification.md, "OTLP/HTTP"):
 *
 * | case                                           | answer                                         |
 * |------------------------------------------------|------------------------------------------------|
 * | all accepted (an empty request too)            | 200, Export…ServiceResponse, partial_success unset |
 * | some spans / data points rejected              | 200, partial_success {rejected count, message} |
 * | body not decodable as the message              | 400, google.rpc.Status                         |
 * | body over `bodyLimitBytes`, before or after gunzip | 413, Status (clients must not retry)      |
 * | Content-Type not protobuf or JSON; a Content-Encoding other than gzip | 415, Status             |
 * | the collector's in-flight bound is reached     | 503 + Retry-After, Status (clients retry)      |
 *
 * Every answer uses the request's encoding (protobuf or JSON; protobuf when the request's is unknown).
 * The body limit defaults to 20 MiB, the specification's recommendation.
 */
import { promisify } from 'node:util'
import { gunzip as gunzipCb, type InputType, type ZlibOptions } from 'node:zlib'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import { httpStatusOf, isRetriable } from '../core/errors.ts'
import type { Counters } from '../core/metrics.ts'
import {
  CONTENT_TYPE,
  decodeMetricsRequest,
  decodeTraceRequest,
  encodeMetricsResponse,
  encodeStatus,
  encodeTraceResponse,
  encodingOf,
  OtlpDecodeError,
  type OtlpEncoding,
  type PartialSuccess,
  RPC_CODE,
} from './otlp/decode.ts'
import type { ExportMetricsServiceRequest, ExportTraceServiceRequest } from './otlp/schema.ts'
import { SinkFullError } from './sink.ts'

const gunzip = promisify<InputType, ZlibOptions, Buffer>(gunzipCb)

export interface OtlpHandlers {
  traces(request: ExportTraceServiceRequest, peer: string): Promise<PartialSuccess | undefined>
  metrics(request: ExportMetricsServiceRequest, peer: string): Promise<PartialSuccess | undefined>
}

export interface OtlpAppOptions {
  handlers: OtlpHandlers
  counters: Counters
  logger: Logger
  bodyLimitBytes?: number
}

class HttpFailure extends Error {
  constructor(
    readonly status: number,
    readonly rpcCode: number,
    message: string,
  ) {
    super(message)
  }
}

export const OTLP_BODY_LIMIT_BYTES = 20 * 1024 * 1024

export function buildOtlpApp(opts: OtlpAppOptions): FastifyInstance {
  const limit = opts.bodyLimitBytes ?? OTLP_BODY_LIMIT_BYTES
  const app = Fastify({ bodyLimit: limit })
  const c = opts.counters

  const send = (reply: FastifyReply, encoding: OtlpEncoding, status: number, body: Buffer) =>
    reply.code(status).header('content-type', CONTENT_TYPE[encoding]).send(body)

  const failWith = (req: FastifyRequest, reply: FastifyReply, signal: string, f: HttpFailure) => {
    const encoding = encodingOf(req.headers['content-type']) ?? 'protobuf'
    c.inc('otlp_requests', 1, { signal, encoding, status: String(f.status) })
    if (f.status === 503) reply.header('retry-after', '1')
    return send(reply, encoding, f.status, encodeStatus(encoding, f.rpcCode, f.message))
  }

  app.removeAllContentTypeParsers()
  // every body is read as bytes; the route decides (415 for a type it does not speak)
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: limit }, (_req, body, done) =>
    done(null, body),
  )

  // the status from the error table (core/errors.ts), the body in OTLP's own shape (google.rpc.Status)
  app.setErrorHandler((err: Error, req, reply) => {
    const signal = req.url.includes('metrics') ? 'metrics' : 'traces'
    const status = httpStatusOf(err)
    if (status === 413)
      return failWith(
        req,
        reply,
        signal,
        new HttpFailure(413, RPC_CODE.resourceExhausted, `body over ${limit} bytes`),
      )
    if (status < 500)
      return failWith(req, reply, signal, new HttpFailure(status, RPC_CODE.invalidArgument, err.message))
    opts.logger.error({ err }, 'otlp receiver: unexpected error')
    return failWith(req, reply, signal, new HttpFailure(500, RPC_CODE.internal, 'internal error'))
  })

  async function bodyOf(req: FastifyRequest): Promise<Buffer> {
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0)
    const ce = String(req.headers['content-encoding'] ?? 'identity')
      .trim()
      .toLowerCase()
    if (ce === 'identity' || ce === '') return raw
    if (ce !== 'gzip')
      throw new HttpFailure(415, RPC_CODE.invalidArgument, `unsupported Content-Encoding "${ce}" (gzip only)`)
    try {
      return await gunzip(raw, { maxOutputLength: limit })
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE')
        throw new HttpFailure(413, RPC_CODE.resourceExhausted, `body over ${limit} bytes after gunzip`)
      throw new HttpFailure(400, RPC_CODE.invalidArgument, `not gzip: ${(err as Error).message}`)
    }
  }

  function route<M>(
    signal: 'traces' | 'metrics',
    decode: (body: Buffer, encoding: OtlpEncoding) => M,
    handle: (request: M, peer: string) => Promise<PartialSuccess | undefined>,
    encodeResponse: (encoding: OtlpEncoding, partial?: PartialSuccess) => Buffer,
  ) {
    return async (req: FastifyRequest, reply: FastifyReply) => {
      const encoding = encodingOf(req.headers['content-type'])
      try {
        if (!encoding)
          throw new HttpFailure(
            415,
            RPC_CODE.invalidArgument,
            `unsupported Content-Type "${req.headers['content-type'] ?? ''}" (application/x-protobuf or application/json)`,
          )
        let message: M
        try {
          message = decode(await bodyOf(req), encoding)
        } catch (err) {
          if (err instanceof OtlpDecodeError)
            throw new HttpFailure(400, RPC_CODE.invalidArgument, err.message)
          throw err
        }
        const partial = await handle(message, req.ip)
        c.inc('otlp_requests', 1, { signal, encoding, status: '200' })
        return send(reply, encoding, 200, encodeResponse(encoding, partial))
      } catch (err) {
        if (err instanceof HttpFailure) return failWith(req, reply, signal, err)
        if (err instanceof SinkFullError)
          return failWith(req, reply, signal, new HttpFailure(503, RPC_CODE.unavailable, err.message))
        if (isRetriable(err)) {
          opts.logger.error({ err }, `otlp ${signal}: records could not be sent`)
          return failWith(
            req,
            reply,
            signal,
            new HttpFailure(503, RPC_CODE.unavailable, 'telemetry bus unavailable'),
          )
        }
        throw err
      }
    }
  }

  app.post('/v1/traces', route('traces', decodeTraceRequest, opts.handlers.traces, encodeTraceResponse))
  app.post(
    '/v1/metrics',
    route('metrics', decodeMetricsRequest, opts.handlers.metrics, encodeMetricsResponse),
  )
  app.get('/metrics', async (_req, reply) =>
    reply.header('content-type', 'text/plain; version=0.0.4').send(c.prometheus()),
  )
  return app
}
