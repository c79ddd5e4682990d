/**
 * A minimal webhook receiver (node:http, no framework) for `breakid up` and tests: accepts POSTed
 * alerts, checks their signature when it knows the secret, and keeps what it received in memory.
 *
 * Answers: 200 accepted; 401 bad or missing signature (counted in `rejected`); 400 body that is not
 * JSON; 413 body over `maxBodyBytes`; 405 anything but POST; and `failStatus` (503 by default) to the
 * first `failFirst` requests, before any other check, to stand in for a receiver that is struggling.
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { alertFromJsonBody } from './bodies.ts'
import { verify } from './signature.ts'
import { IDEMPOTENCY_HEADER } from './webhook.ts'
import type { Alert } from '../contract/records.ts'

export interface ReceiverOptions {
  /** default 0: any free port */
  port?: number
  /** default 127.0.0.1 */
  host?: string
  /** verify X-Breakid-Signature with this secret; unsigned requests are then rejected */
  secret?: string
  /** signature clock tolerance, default 300 s */
  toleranceSeconds?: number
  /** called for every accepted request; a throw answers 500 so the sender retries */
  onAlert?: (received: ReceivedAlert) => void
  /** answer `failStatus` to this many requests first. Default 0. */
  failFirst?: number
  /** default 503 */
  failStatus?: number
  /** Retry-After header value sent with the `failFirst` answers (seconds or an HTTP date) */
  retryAfter?: string
  /** largest body accepted. Default 1 MiB. */
  maxBodyBytes?: number
}

export interface ReceivedAlert {
  /** Date.now() when the body was complete */
  receivedAtMs: number
  /** the alert record of a breakid 'json' body; null for other bodies (the 'slack' and 'alertmanager' formats) */
  alert: Alert | null
  /** the parsed JSON body as sent */
  body: unknown
  idempotencyKey: string | null
  /** true when a secret is set and the signature checked out; null when no secret is set */
  signatureValid: boolean | null
  headers: IncomingHttpHeaders
}

export interface Receiver {
  readonly url: string
  readonly port: number
  /** accepted requests in arrival order */
  readonly alerts: ReceivedAlert[]
  /** requests refused for a bad or missing signature */
  readonly rejected: number
  /** every request seen, whatever the answer */
  readonly requests: number
  /** closes the listener and every open connection; safe to call twice */
  stop(): Promise<void>
}

function reply(
  res: ServerResponse,
  status: number,
  message: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...headers })
  res.end(message)
}

export async function startReceiver(opts: ReceiverOptions = {}): Promise<Receiver> {
  const host = opts.host ?? '127.0.0.1'
  const maxBodyBytes = opts.maxBodyBytes ?? 1024 * 1024
  const failStatus = opts.failStatus ?? 503
  const alerts: ReceivedAlert[] = []
  const counts = { rejected: 0, requests: 0 }

  const server = createServer((req, res) => {
    const seq = counts.requests++
    if (seq < (opts.failFirst ?? 0)) {
      req.resume()
      const headers: Record<string, string> =
        opts.retryAfter === undefined ? {} : { 'Retry-After': opts.retryAfter }
      reply(res, failStatus, 'failing on purpose', headers)
      return
    }
    if (req.method !== 'POST') {
      req.resume()
      reply(res, 405, 'POST only', { Allow: 'POST' })
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    let tooLarge = false
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > maxBodyBytes) tooLarge = true
      else chunks.push(chunk)
    })
    req.on('end', () => {
      if (tooLarge) return reply(res, 413, `body over ${maxBodyBytes} bytes`)
      const raw = Buffer.concat(chunks)
      let signatureValid: boolean | null = null
      if (opts.secret !== undefined) {
        const check = verify(opts.secret, raw, req.headers, { toleranceSeconds: opts.toleranceSeconds })
        if (!check.ok) {
          counts.rejected++
          return reply(res, 401, `signature rejected: ${check.reason}`)
        }
        signatureValid = true
      }
      let body: unknown
      try {
        body = JSON.parse(raw.toString('utf8'))
      } catch {
        return reply(res, 400, 'body is not JSON')
      }
      const idempotency = req.headers[IDEMPOTENCY_HEADER.toLowerCase()]
      const received: ReceivedAlert = {
        receivedAtMs: Date.now(),
        alert: alertFromJsonBody(body),
        body,
        idempotencyKey: typeof idempotency === 'string' ? idempotency : null,
        signatureValid,
        headers: req.headers,
      }
      try {
        opts.onAlert?.(received)
      } catch (err) {
        return reply(res, 500, `onAlert failed: ${(err as Error).message}`)
      }
      alerts.push(received)
      reply(res, 200, 'ok')
    })
    req.on('error', () => res.destroy())
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const port = (server.address() as AddressInfo).port
  const urlHost = host.includes(':') ? `[${host}]` : host
  let closed: Promise<void> | undefined

  return {
    url: `http://${urlHost}:${port}/`,
    port,
    alerts,
    get rejected() {
      return counts.rejected
    },
    get requests() {
      return counts.requests
    },
    stop() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve())
        // Keep-alive sockets would hold close() open and keep answering after "stop".
        server.closeAllConnections()
      })
      return closed
    },
  }
}
