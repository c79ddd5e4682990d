import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, test } from 'node:test'
import pino, { type Logger } from 'pino'
import {
  NOTIFY_GROUP,
  type NotifyRoute,
  type RetryEvent,
  WebhookNotifier,
  type WebhookNotifierOptions,
} from '../../notify/notifier.ts'
import { type Receiver, type ReceiverOptions, startReceiver } from '../../notify/receiver.ts'
import { stopAfterEach, testNotifier, testReceiver } from '../helpers/cleanups.ts'
import { SIGNATURE_HEADER, sign, TIMESTAMP_HEADER, verify } from '../../notify/signature.ts'
import {
  classifyFailure,
  deliver,
  isRetriableStatus,
  parseRetryAfter,
  WebhookRejectedError,
} from '../../notify/webhook.ts'
import { jsonBody, type SlackBody, slackBody } from '../../notify/bodies.ts'
import type { Alert } from '../../contract/records.ts'
import { codecs, TOPICS } from '../../contract/topics.ts'
import { DownstreamError } from '../../core/errors.ts'
import { EmbeddedBus } from '../../bus/embedded-bus.ts'
import type { IncomingMessage } from '../../bus/transport.ts'
import { makeAlert } from '../../contract/synthetic.ts'

// ------------------------------------------------------------------------------------------------
// helpers

/** Polls `cond` every 10 ms; fails with `what` after `timeoutMs` instead of hanging the suite. */
async function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const give = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > give) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** Fails if `p` has not settled within `timeoutMs` (a hang guard, not a timing assertion). */
async function settlesWithin<T>(p: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${timeoutMs} ms`)), timeoutMs)
  })
  try {
    return await Promise.race([p, guard])
  } finally {
    clearTimeout(timer)
  }
}

interface LogLine {
  level: number
  msg: string
  [k: string]: unknown
}
function capturingLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = []
  const logger = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s) as LogLine) })
  return { logger, lines }
}

const FAST = { initialDelayMs: 20, maxDelayMs: 200 } as const
const SECRET = 'test-secret'

const cleanups = stopAfterEach()
const receiver = (opts: ReceiverOptions = {}) => testReceiver(cleanups, opts)

function setup(
  routes: NotifyRoute[],
  extra: Partial<WebhookNotifierOptions> = {},
  bus = new EmbeddedBus({ retryDelayMs: 10 }),
): { bus: EmbeddedBus; notifier: WebhookNotifier } {
  return { bus, notifier: testNotifier(cleanups, bus, routes, { ...FAST, ...extra }) }
}

async function publish(bus: EmbeddedBus, alerts: Alert[]): Promise<void> {
  await bus.producer().send(
    TOPICS.alerts,
    alerts.map((a) => ({ key: a.dedup_key, value: codecs.alert.encode(a) })),
  )
}

const alertN = (i: number, over: Partial<Alert> = {}): Alert =>
  makeAlert({ id: `alert-${i}`, dedup_key: `k-${i}`, ...over })

function receivedIds(...receivers: Receiver[]): string[] {
  return receivers.flatMap((r) => r.alerts.map((a) => a.alert?.id ?? '<not a breakid alert>'))
}

// ------------------------------------------------------------------------------------------------
// (a) signatures

describe('signature', () => {
  const body = JSON.stringify({ version: 1, alert: { id: 'x' } })
  const now = 1_767_225_600

  test('signs "<timestamp>.<raw body>" with HMAC-SHA256 and verifies it', () => {
    const headers = sign(SECRET, body, now)
    const expected = createHmac('sha256', SECRET).update(`${now}.${body}`).digest('hex')
    assert.equal(headers[TIMESTAMP_HEADER], String(now))
    assert.equal(headers[SIGNATURE_HEADER], `v1=${expected}`)
    assert.deepEqual(verify(SECRET, body, headers, { nowSeconds: now }), { ok: true })
    // raw bytes, node's lower-cased header names and a fetch Headers object all work
    const lower = {
      'x-breakid-timestamp': headers[TIMESTAMP_HEADER],
      'x-breakid-signature': headers[SIGNATURE_HEADER],
    }
    assert.deepEqual(verify(SECRET, Buffer.from(body), lower, { nowSeconds: now }), { ok: true })
    assert.deepEqual(verify(SECRET, body, new Headers(lower), { nowSeconds: now }), { ok: true })
  })

  test('rejects a tampered body, a wrong secret and a forged signature', () => {
    const headers = sign(SECRET, body, now)
    assert.deepEqual(verify(SECRET, body.replace('"x"', '"y"'), headers, { nowSeconds: now }), {
      ok: false,
      reason: 'bad_signature',
    })
    assert.deepEqual(verify('other', body, headers, { nowSeconds: now }), {
      ok: false,
      reason: 'bad_signature',
    })
    const forged = { ...headers, [SIGNATURE_HEADER]: `v1=${'0'.repeat(64)}` }
    assert.deepEqual(verify(SECRET, body, forged, { nowSeconds: now }), {
      ok: false,
      reason: 'bad_signature',
    })
  })

  test('rejects a stale or future timestamp (replay) and accepts within tolerance', () => {
    const headers = sign(SECRET, body, now)
    assert.deepEqual(verify(SECRET, body, headers, { nowSeconds: now + 301 }), {
      ok: false,
      reason: 'stale_timestamp',
    })
    assert.deepEqual(verify(SECRET, body, headers, { nowSeconds: now - 301 }), {
      ok: false,
      reason: 'stale_timestamp',
    })
    assert.deepEqual(verify(SECRET, body, headers, { nowSeconds: now + 300 }), { ok: true })
    assert.deepEqual(verify(SECRET, body, headers, { nowSeconds: now + 20, toleranceSeconds: 10 }), {
      ok: false,
      reason: 'stale_timestamp',
    })
    // re-signing the body with a new timestamp needs the secret: moving the timestamp alone fails
    const moved = { ...headers, [TIMESTAMP_HEADER]: String(now + 1000) }
    assert.deepEqual(verify(SECRET, body, moved, { nowSeconds: now + 1000 }), {
      ok: false,
      reason: 'bad_signature',
    })
  })

  test('names the reason for missing and malformed headers; accepts one of several v1 values', () => {
    const headers = sign(SECRET, body, now)
    const opts = { nowSeconds: now }
    assert.deepEqual(verify(SECRET, body, {}, opts), { ok: false, reason: 'missing_timestamp' })
    assert.deepEqual(verify(SECRET, body, { [TIMESTAMP_HEADER]: 'soon' }, opts), {
      ok: false,
      reason: 'malformed_timestamp',
    })
    assert.deepEqual(verify(SECRET, body, { [TIMESTAMP_HEADER]: String(now) }, opts), {
      ok: false,
      reason: 'missing_signature',
    })
    assert.deepEqual(verify(SECRET, body, { ...headers, [SIGNATURE_HEADER]: 'v0=abc' }, opts), {
      ok: false,
      reason: 'malformed_signature',
    })
    const rotated = { ...headers, [SIGNATURE_HEADER]: `v1=${'a'.repeat(64)}, ${headers[SIGNATURE_HEADER]}` }
    assert.deepEqual(verify(SECRET, body, rotated, opts), { ok: true })
  })
})

// ------------------------------------------------------------------------------------------------
// webhook: one attempt and its failure classification

describe('webhook delivery', () => {
  test('classifies statuses: 408, 429 and 5xx retriable (not 501/505), other 4xx permanent', () => {
    for (const s of [408, 429, 500, 502, 503, 504]) assert.equal(isRetriableStatus(s), true, `${s}`)
    for (const s of [301, 400, 401, 403, 404, 409, 410, 413, 422, 501, 505]) {
      assert.equal(isRetriableStatus(s), false, `${s}`)
      const err = classifyFailure('http://x', {
        kind: 'response',
        status: s,
        retryAfter: null,
        bodyExcerpt: '',
      })
      assert.ok(err instanceof WebhookRejectedError && !err.retriable && err.status === s)
    }
    const now = Date.parse('2026-01-01T00:00:00Z')
    const err = classifyFailure(
      'http://x',
      {
        kind: 'response',
        status: 429,
        retryAfter: 'Thu, 01 Jan 2026 00:00:30 GMT',
        bodyExcerpt: 'slow down',
      },
      now,
    )
    assert.ok(err instanceof DownstreamError && err.retriable)
    assert.equal(err.retryAfterMs, 30_000)
    assert.match(err.message, /HTTP 429: slow down/)
    const net = classifyFailure('http://x', {
      kind: 'exception',
      error: new TypeError('fetch failed'),
      timeoutMs: 5,
    })
    assert.ok(net instanceof DownstreamError && net.retriable)
  })

  test('parses Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2026-01-01T00:00:00Z')
    assert.equal(parseRetryAfter('120', now), 120_000)
    assert.equal(parseRetryAfter(' 0 ', now), 0)
    assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:01:00 GMT', now), 60_000)
    assert.equal(parseRetryAfter('Wed, 31 Dec 2025 00:00:00 GMT', now), 0) // in the past: retry now
    assert.equal(parseRetryAfter('tomorrow-ish', now), undefined)
    assert.equal(parseRetryAfter(null, now), undefined)
  })

  test('posts the json body with ISO times, Idempotency-Key and a valid signature', async () => {
    const r = await receiver({ secret: SECRET })
    const alert = makeAlert({ status: 'resolved', ends_at_us: 1_767_225_660_000_000 })
    const res = await deliver(r.url, alert, { secret: SECRET, format: 'json' })
    assert.equal(res.status, 200)
    assert.equal(r.alerts.length, 1)
    const got = r.alerts[0]!
    assert.equal(got.signatureValid, true)
    assert.equal(got.idempotencyKey, `${alert.id}:resolved`)
    assert.deepEqual(got.body, jsonBody(alert))
    const body = got.body as ReturnType<typeof jsonBody>
    assert.equal(body.alert.starts_at, '2026-01-01T00:00:00.000Z')
    assert.equal(body.alert.ends_at, '2026-01-01T00:01:00.000Z')
    assert.deepEqual(got.alert, alert, 'the receiver reads the record back from the body')
    // an unsigned request to a receiver that knows a secret is refused and counted
    await assert.rejects(deliver(r.url, alert), (e) => e instanceof WebhookRejectedError && e.status === 401)
    assert.equal(r.rejected, 1)
  })

  test('connection refused, timeouts and 503 are retriable; 400 is not', async () => {
    const down = await startReceiver()
    await down.stop()
    await assert.rejects(deliver(down.url, makeAlert()), (e) => e instanceof DownstreamError && e.retriable)

    // accepts the request and never answers
    const silent: Server = createServer(() => {})
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    cleanups.push(async () => {
      silent.closeAllConnections()
      await new Promise((resolve) => silent.close(resolve))
    })
    const silentUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/`
    await assert.rejects(
      deliver(silentUrl, makeAlert(), { timeoutMs: 50 }),
      (e) => e instanceof DownstreamError && /timed out after 50 ms/.test(e.message),
    )

    const busy = await receiver({ failFirst: 1, retryAfter: '7' })
    await assert.rejects(
      deliver(busy.url, makeAlert()),
      (e) => e instanceof DownstreamError && e.retryAfterMs === 7000,
    )
    const bad = await receiver({ failFirst: 1, failStatus: 400 })
    await assert.rejects(
      deliver(bad.url, makeAlert()),
      (e) => e instanceof WebhookRejectedError && !e.retriable,
    )
  })
})

// ------------------------------------------------------------------------------------------------
// (b)–(g) the notifier end to end: EmbeddedBus → WebhookNotifier → real HTTP on 127.0.0.1

describe('WebhookNotifier', () => {
  test('(b) a receiver that is down loses nothing: every alert arrives once, in order, signed', async () => {
    // a port that nobody listens on, reused when the receiver comes back
    const probe = await startReceiver()
    const port = probe.port
    await probe.stop()
    const url = `http://127.0.0.1:${port}/hook`
    const route: NotifyRoute = { name: 'ops', url, secret: SECRET }
    const bus = new EmbeddedBus({ retryDelayMs: 10 })
    const first = setup([route], {}, bus).notifier
    await first.start()
    await publish(
      bus,
      [0, 1, 2].map((i) => alertN(i)),
    )
    await waitFor(() => first.stats().retries >= 3, 'retries against the down receiver')
    assert.equal(first.stats().delivered, 0)
    await first.stop() // aborts the backoff; the batch stays uncommitted

    await publish(
      bus,
      [3, 4].map((i) => alertN(i)),
    )
    const upAgain = await receiver({ port, secret: SECRET })
    const second = setup([route], {}, bus).notifier
    await second.start()
    await waitFor(() => upAgain.alerts.length >= 5, 'the backlog after the restart')
    await settlesWithin(bus.drained(TOPICS.alerts, NOTIFY_GROUP), 10_000, 'commit of the backlog')

    // down again while the notifier keeps running
    await upAgain.stop()
    const before = second.stats().retries
    await publish(
      bus,
      [5, 6, 7].map((i) => alertN(i)),
    )
    await waitFor(() => second.stats().retries >= before + 2, 'retries during the second outage')
    const third = await receiver({ port, secret: SECRET })
    await waitFor(() => third.alerts.length >= 3, 'the alerts of the second outage')
    await settlesWithin(bus.drained(TOPICS.alerts, NOTIFY_GROUP), 10_000, 'commit after the second outage')

    assert.deepEqual(
      receivedIds(upAgain, third),
      [0, 1, 2, 3, 4, 5, 6, 7].map((i) => `alert-${i}`),
    )
    for (const got of [...upAgain.alerts, ...third.alerts]) {
      assert.equal(got.signatureValid, true)
      assert.equal(got.idempotencyKey, `${got.alert!.id}:firing`)
    }
    assert.equal(upAgain.rejected + third.rejected, 0)
    assert.equal(second.stats().delivered, 8)
    assert.equal(second.stats().duplicates_suppressed, 0)
    assert.equal(second.stats().gave_up, 0)
  })

  test('stop() aborts a long backoff wait and leaves the alert for the next start', async () => {
    const failing = await receiver({ failFirst: 1_000_000, retryAfter: '60' })
    const events: RetryEvent[] = []
    const { bus, notifier } = setup([{ url: failing.url }], {
      initialDelayMs: 60_000,
      maxDelayMs: 60_000,
      onRetry: (e) => events.push(e),
    })
    await notifier.start()
    await publish(bus, [alertN(1)])
    await waitFor(() => events.length === 1, 'the first failure')
    assert.equal(events[0]!.delayMs, 60_000) // Retry-After 60 s wins over the jittered backoff
    await settlesWithin(notifier.stop(), 5_000, 'stop() during a 60 s backoff')
    await notifier.stop() // twice is fine
    assert.equal(failing.requests, 1)

    const healthy = await receiver()
    const next = setup([{ url: healthy.url }], {}, bus).notifier
    await next.start()
    await waitFor(() => healthy.alerts.length === 1, 'redelivery after restart')
    assert.deepEqual(receivedIds(healthy), ['alert-1'])
  })

  test('(c) 503 with Retry-After is retried after the server-given delay, then delivered', async () => {
    const r = await receiver({ failFirst: 2, retryAfter: '1' })
    const events: RetryEvent[] = []
    // backoff ceiling 5 ms; Retry-After (1 s) is honoured up to 150 ms: every wait must be exactly 150
    const { bus, notifier } = setup([{ name: 'flaky', url: r.url }], {
      initialDelayMs: 1,
      maxDelayMs: 5,
      maxRetryAfterMs: 150,
      onRetry: (e) => events.push(e),
    })
    await notifier.start()
    await publish(bus, [alertN(1)])
    await waitFor(() => notifier.stats().delivered === 1, 'delivery after the 503s')
    assert.equal(r.requests, 3)
    assert.deepEqual(receivedIds(r), ['alert-1'])
    assert.deepEqual(
      events.map((e) => [e.route, e.alertId, e.failures, e.retryAfterMs, e.delayMs]),
      [
        ['flaky', 'alert-1', 1, 1000, 150],
        ['flaky', 'alert-1', 2, 1000, 150],
      ],
    )
    assert.match(events[0]!.error.message, /HTTP 503/)
    assert.equal(notifier.stats().retries, 2)
  })

  test('(d) a 400 is dead-lettered once, counted and logged; later alerts still arrive', async () => {
    const r = await receiver({ failFirst: 1, failStatus: 400 })
    const { logger, lines } = capturingLogger()
    const bus = new EmbeddedBus({ retryDelayMs: 10 })
    const { notifier } = setup([{ name: 'strict', url: r.url }], { logger }, bus)
    const deadLetters: IncomingMessage[] = []
    const dlq = bus.consumer({
      groupId: 'test-dlq',
      topics: [TOPICS.deadLetter],
      handler: async (b) => {
        deadLetters.push(...b.messages)
      },
    })
    await dlq.start()
    cleanups.push(() => dlq.stop())
    await notifier.start()
    await publish(
      bus,
      [1, 2, 3].map((i) => alertN(i)),
    )
    await settlesWithin(bus.drained(TOPICS.alerts, NOTIFY_GROUP), 10_000, 'commit past the refused alert')

    assert.deepEqual(receivedIds(r), ['alert-2', 'alert-3'])
    assert.equal(r.requests, 3) // the refused alert was sent once, not retried
    assert.deepEqual(notifier.stats(), {
      delivered: 2,
      retries: 0,
      gave_up: 1,
      duplicates_suppressed: 0,
      decode_errors: 0,
      read: 3,
      pending: 0,
    })
    assert.equal(notifier.counters.get('gave_up_total', { route: 'strict', reason: 'rejected' }), 1)
    assert.equal(notifier.counters.get('failures_total', { route: 'strict', reason: 'http_rejected' }), 1)
    await waitFor(() => deadLetters.length === 1, 'the dead letter')
    const dl = deadLetters[0]!
    assert.equal(dl.headers['breakid-reason'], 'webhook_rejected')
    assert.equal(dl.headers['breakid-source-topic'], TOPICS.alerts)
    assert.equal(dl.headers['breakid-source-offset'], '0')
    assert.match(dl.headers['breakid-error'] ?? '', /route strict: .*HTTP 400/)
    assert.equal(codecs.alert.decode(dl.value!).id, 'alert-1')
    const logged = lines.filter((l) => l.level === 50 && /dead-lettered/.test(l.msg))
    assert.equal(logged.length, 1)
    assert.equal(logged[0]!.alert, 'alert-1')
  })

  test('(e) the same (id, status) published twice is delivered once; a new status is delivered', async () => {
    const r = await receiver()
    const { bus, notifier } = setup([{ url: r.url }])
    await notifier.start()
    const firing = alertN(1)
    const resolved = alertN(1, { status: 'resolved', ends_at_us: firing.starts_at_us + 60_000_000 })
    await publish(bus, [firing, firing])
    await publish(bus, [resolved, firing, resolved])
    await settlesWithin(bus.drained(TOPICS.alerts, NOTIFY_GROUP), 10_000, 'commit of the duplicates')
    assert.deepEqual(
      r.alerts.map((a) => a.idempotencyKey),
      ['alert-1:firing', 'alert-1:resolved'],
    )
    assert.equal(notifier.stats().delivered, 2)
    assert.equal(notifier.stats().duplicates_suppressed, 3)
  })

  test('(e) a small dedup window forgets its least recently used key', async () => {
    const r = await receiver()
    const { bus, notifier } = setup([{ url: r.url }], { dedupCapacity: 2 })
    await notifier.start()
    // 1 and 2 fill the window; the repeat of 1 refreshes it, so 3 evicts 2, not 1
    await publish(bus, [alertN(1), alertN(2), alertN(1), alertN(3), alertN(1), alertN(2)])
    await settlesWithin(bus.drained(TOPICS.alerts, NOTIFY_GROUP), 10_000, 'commit')
    assert.deepEqual(receivedIds(r), ['alert-1', 'alert-2', 'alert-3', 'alert-2'])
    assert.equal(notifier.stats().duplicates_suppressed, 2)
  })

  test('records that do not decode are counted and skipped without blocking the alerts around them', async () => {
    const r = await receiver()
    const { bus, notifier } = setup([{ url: r.url }])
    await notifier.start()
    await bus.producer().send(TOPICS.alerts, [
      { key: null, value: codecs.alert.encode(alertN(1)) },
      { key: null, value: Buffer.from('not avro') },
      { key: null, value: codecs.alert.encode(alertN(2)) },
    ])
    await settlesWithin(bus.drained(TOPICS.alerts, NOTIFY_GROUP), 10_000, 'commit')
    assert.deepEqual(receivedIds(r), ['alert-1', 'alert-2'])
    assert.equal(notifier.stats().decode_errors, 1)
    assert.equal(notifier.counters.get('decode_errors_total', { reason: 'not_single_object' }), 1)
  })

  test('(f) routes filter by type and minimum severity', async () => {
    const all = await receiver()
    const critical = await receiver()
    const leaks = await receiver()
    const { bus, notifier } = setup([
      { name: 'all', url: all.url },
      { name: 'critical', url: critical.url, minSeverity: 'critical' },
      { name: 'leaks', url: leaks.url, types: ['memory_leak'], minSeverity: 'warning' },
    ])
    await notifier.start()
    await publish(bus, [
      alertN(1, { type: 'accelerator_starved', severity: 'critical' }),
      alertN(2, { type: 'memory_leak', severity: 'info' }),
      alertN(3, { type: 'memory_leak', severity: 'warning' }),
      alertN(4, { type: 'latency_drift', severity: 'warning' }),
      alertN(5, { type: 'memory_leak', severity: 'critical' }),
    ])
    await settlesWithin(bus.drained(TOPICS.alerts, NOTIFY_GROUP), 10_000, 'commit')
    assert.deepEqual(receivedIds(all), ['alert-1', 'alert-2', 'alert-3', 'alert-4', 'alert-5'])
    assert.deepEqual(receivedIds(critical), ['alert-1', 'alert-5'])
    assert.deepEqual(receivedIds(leaks), ['alert-3', 'alert-5'])
    assert.equal(notifier.counters.get('delivered_total', { route: 'critical' }), 2)
    assert.equal(notifier.stats().delivered, 9)
  })

  test('(g) the slack format posts { text, blocks } with a readable one-line summary', async () => {
    const r = await receiver({ secret: SECRET })
    const { bus, notifier } = setup([{ url: r.url, format: 'slack', secret: SECRET }])
    await notifier.start()
    const alert = alertN(1, { summary: 'queue <grows> & throughput falls' })
    await publish(bus, [alert])
    await waitFor(() => r.alerts.length === 1, 'the slack message')
    const got = r.alerts[0]!
    assert.equal(got.alert, null) // not the breakid json shape
    assert.equal(got.signatureValid, true)
    const body = got.body as SlackBody
    assert.deepEqual(Object.keys(body).sort(), ['blocks', 'text'])
    assert.equal(
      body.text,
      '[CRITICAL] FIRING accelerator_starved on engine-0/mlp/preprocess: ' +
        'executor_busy 0.1 vs baseline 0.6 (threshold 0.3)',
    )
    assert.ok(Array.isArray(body.blocks) && body.blocks.length > 0)
    const texts: string[] = []
    for (const block of body.blocks) {
      assert.ok(block.type === 'section' || block.type === 'context', block.type)
      const parts = block.type === 'section' ? [block.text, ...(block.fields ?? [])] : block.elements
      for (const t of parts) {
        assert.equal(t.type, 'mrkdwn')
        assert.ok(t.text.length > 0 && t.text.length <= 3000)
        texts.push(t.text)
      }
    }
    const all = texts.join('\n')
    assert.match(all, /queue &lt;grows&gt; &amp; throughput falls/) // mrkdwn control characters escaped
    assert.match(all, /add preprocessing workers/)
    assert.match(all, /alert-1/)
  })

  test('slack summary of a resolved alert without a stage', () => {
    const body = slackBody(
      makeAlert({ status: 'resolved', stage: null, severity: 'warning', observed: 1 / 3 }),
    )
    assert.equal(
      body.text,
      '[WARNING] RESOLVED accelerator_starved on engine-0/mlp: executor_busy 0.3333 vs baseline 0.6 (threshold 0.3)',
    )
    const first = body.blocks[0]!
    assert.ok(first.type === 'section' && first.text.text.startsWith(':white_check_mark:'))
  })

  test('rejects bad options with a clear error', () => {
    const bus = new EmbeddedBus()
    const logger = pino({ level: 'silent' })
    const make = (routes: NotifyRoute[], extra: Partial<WebhookNotifierOptions> = {}) =>
      new WebhookNotifier({ transport: bus, logger, routes, ...extra })
    assert.throws(() => make([{ url: 'not a url' }]), /not a URL/)
    assert.throws(() => make([{ url: 'ftp://x/' }]), /http\(s\)/)
    assert.throws(
      () =>
        make([
          { url: 'http://a/', name: 'x' },
          { url: 'http://b/', name: 'x' },
        ]),
      /used twice/,
    )
    assert.throws(() => make([{ url: 'http://a/' }], { maxDelayMs: 0 }), /maxDelayMs/)
  })
})
