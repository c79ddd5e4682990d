/**
 * Per-route delivery: a receiver that is down delays only itself. Real HTTP receivers on 127.0.0.1,
 * the embedded bus, and a fake clock for every backoff wait and alert age (hours of outage in
 * milliseconds, no real sleeping): the healthy route gets each alert at once, the down one after it
 * comes back, each exactly once and in order, and the alerts topic is committed only as far as every
 * route has delivered or durably given up.
 */
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, test } from 'node:test'
import { EmbeddedBus } from '../../bus/embedded-bus.ts'
import type { IncomingMessage } from '../../bus/transport.ts'
import { makeAlert } from '../../contract/synthetic.ts'
import type { Alert } from '../../contract/records.ts'
import { codecs, TOPICS } from '../../contract/topics.ts'
import { renderPrometheus } from '../../core/metrics.ts'
import {
  NOTIFY_GROUP,
  type NotifyRoute,
  type RetryEvent,
  type WebhookNotifier,
  type WebhookNotifierOptions,
} from '../../notify/notifier.ts'
import { type Receiver, type ReceiverOptions, startReceiver } from '../../notify/receiver.ts'
import { stopAfterEach, testNotifier, testReceiver } from '../helpers/cleanups.ts'
import { ManualClock } from '../helpers/manual-clock.ts'
import { waitFor } from '../helpers/wait.ts'

const cleanups = stopAfterEach()
const receiver = (opts: ReceiverOptions = {}) => testReceiver(cleanups, opts)

/** A loopback port nobody listens on (connection refused), reusable when the receiver comes back. */
async function downPort(): Promise<number> {
  const probe = await startReceiver()
  await probe.stop()
  return probe.port
}

function notifier(
  bus: EmbeddedBus,
  routes: NotifyRoute[],
  extra: Partial<WebhookNotifierOptions> = {},
): WebhookNotifier {
  return testNotifier(cleanups, bus, routes, extra)
}

async function publish(bus: EmbeddedBus, alerts: Alert[]): Promise<void> {
  await bus.producer().send(
    TOPICS.alerts,
    alerts.map((a) => ({ key: a.dedup_key, value: codecs.alert.encode(a) })),
  )
}

const alertN = (i: number): Alert => makeAlert({ id: `alert-${i}`, dedup_key: `k-${i}` })
const ids = (r: Receiver) => r.alerts.map((a) => a.alert?.id)
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `alert-${from + i}`)
const committed = (bus: EmbeddedBus) => bus.committedOffset(TOPICS.alerts, NOTIFY_GROUP)

/** Waits (real time, bounded: the attempt before it is real HTTP) for a backoff wait, then passes `ms`. */
async function nextWait(clock: ManualClock, ms: number): Promise<void> {
  await waitFor(() => clock.pendingTimers > 0, { message: 'a backoff wait' })
  await clock.advance(ms)
}

/** Collects what reaches the dead-letter topic. */
async function deadLetters(bus: EmbeddedBus): Promise<IncomingMessage[]> {
  const got: IncomingMessage[] = []
  const c = bus.consumer({
    groupId: `dlq-${Math.random()}`,
    topics: [TOPICS.deadLetter],
    handler: async (b) => void got.push(...b.messages),
  })
  await c.start()
  cleanups.push(() => c.stop())
  return got
}

/** A notifier on its own bus with `clock`, and what it dead-letters. */
async function deadLetterNotifier(
  routes: NotifyRoute[],
  clock: ManualClock,
): Promise<{ bus: EmbeddedBus; dlq: IncomingMessage[]; n: WebhookNotifier }> {
  const bus = new EmbeddedBus({ retryDelayMs: 10 })
  const dlq = await deadLetters(bus)
  return { bus, dlq, n: notifier(bus, routes, { clock }) }
}

describe('per-route delivery', () => {
  test('a down route delays only itself; it gets every alert once, in order, after it is back', async () => {
    const healthy = await receiver()
    const port = await downPort()
    const clock = new ManualClock(0)
    const events: RetryEvent[] = []
    const bus = new EmbeddedBus({ retryDelayMs: 10 })
    const n = notifier(
      bus,
      [
        { name: 'healthy', url: healthy.url },
        { name: 'down', url: `http://127.0.0.1:${port}/hook` },
      ],
      {
        clock,
        initialDelayMs: 500,
        maxDelayMs: 30_000,
        giveUpAfterMs: 24 * 3_600_000,
        onRetry: (e) => events.push(e),
      },
    )
    await n.start()

    await publish(bus, [0, 1, 2].map(alertN))
    await waitFor(() => healthy.alerts.length === 3, { message: 'the healthy route, first batch' })
    // a later batch is read past the alerts the down route owes
    await publish(bus, [3, 4].map(alertN))
    await waitFor(() => healthy.alerts.length === 5, { message: 'the healthy route, second batch' })
    // the receiver keeps a request before it answers: wait for the notifier to have the last answer
    await waitFor(() => n.counters.get('delivered_total', { route: 'healthy' }) === 5, {
      message: 'the answer to the last delivery',
    })
    assert.equal(clock.now(), 0, 'no backoff time passed: the healthy route never waited on the down one')
    assert.deepEqual(ids(healthy), range(0, 5))
    assert.equal(committed(bus), 0, 'the down route owes alert-0: nothing is committed past it')
    assert.equal(n.counters.get('queue_depth', { route: 'down' }), 5)
    assert.equal(n.counters.get('queue_depth', { route: 'healthy' }), 0)
    assert.equal(n.stats().pending, 5)

    // two hours of outage on the fake clock: capped exponential backoff, full jitter
    while (clock.now() < 2 * 3_600_000) await nextWait(clock, 30_000)
    // the attempt the last wait ended in has failed and waits again
    await waitFor(() => clock.pendingTimers > 0, { message: 'the next wait' })
    assert.ok(events.length >= 240, `${events.length} retries in 2 h`)
    for (const e of events) {
      assert.equal(e.route, 'down')
      assert.equal(e.alertId, 'alert-0', 'alert n+1 waits for alert n on its route')
      const ceiling = Math.min(30_000, 500 * 2 ** (e.failures - 1))
      assert.ok(e.delayMs >= 0 && e.delayMs <= ceiling, `wait ${e.delayMs} after ${e.failures} failures`)
    }
    assert.ok(new Set(events.map((e) => e.delayMs)).size > events.length / 2, 'jittered, not fixed')
    assert.ok(
      events.some((e) => e.delayMs > 15_000),
      'the ceiling grew to the cap',
    )
    assert.equal(n.counters.get('failures_total', { route: 'down', reason: 'connection' }), events.length)
    assert.equal(committed(bus), 0)
    assert.deepEqual(ids(healthy), range(0, 5), 'nothing sent twice to the healthy route')

    const back = await receiver({ port })
    await nextWait(clock, 30_000)
    await waitFor(() => back.alerts.length === 5, { message: 'the backlog of the route that came back' })
    await waitFor(() => committed(bus) === 5, { message: 'the commit after the last owed alert' })
    assert.deepEqual(ids(back), range(0, 5), 'once each, in order')
    assert.deepEqual(ids(healthy), range(0, 5))
    assert.deepEqual(
      back.alerts.map((a) => a.idempotencyKey),
      range(0, 5).map((id) => `${id}:firing`),
    )
    assert.deepEqual(n.stats(), {
      delivered: 10,
      retries: events.length,
      gave_up: 0,
      duplicates_suppressed: 0,
      decode_errors: 0,
      read: 5,
      pending: 0,
    })
    assert.equal(n.counters.get('queue_depth', { route: 'down' }), 0)
    // the counters as a /metrics endpoint would serve them
    const text = renderPrometheus(n.counters)
    assert.match(text, /^# TYPE breakid_notify_delivered_total counter$/m)
    assert.match(text, /^breakid_notify_delivered_total\{route="down"\} 5$/m)
    assert.match(text, /^breakid_notify_queue_depth\{route="down"\} 0$/m)
    assert.match(text, new RegExp(`^breakid_notify_retries_total\\{route="down"\\} ${events.length}$`, 'm'))
  })

  test('a restart while a route is down redelivers from the oldest owed alert (at least once)', async () => {
    const healthy = await receiver()
    const port = await downPort()
    const bus = new EmbeddedBus({ retryDelayMs: 10 })
    const routes = [
      { name: 'healthy', url: healthy.url },
      { name: 'down', url: `http://127.0.0.1:${port}/` },
    ]
    const first = notifier(bus, routes, { clock: new ManualClock(0) })
    await first.start()
    await publish(bus, [0, 1, 2].map(alertN))
    await waitFor(() => healthy.alerts.length === 3, { message: 'the healthy route' })
    await first.stop()
    assert.equal(committed(bus), 0)

    const back = await receiver({ port })
    const second = notifier(bus, routes, { clock: new ManualClock(0) })
    await second.start()
    await waitFor(() => committed(bus) === 3, { message: 'the commit after the restart' })
    assert.deepEqual(ids(back), range(0, 3))
    // the healthy route's receiver sees the repeats with the same keys and drops them itself
    assert.deepEqual(ids(healthy), [...range(0, 3), ...range(0, 3)])
    assert.deepEqual(
      new Set(healthy.alerts.map((a) => a.idempotencyKey)),
      new Set(range(0, 3).map((id) => `${id}:firing`)),
    )
  })

  test('maxAttempts: the alert is dead-lettered after that many failures and the route moves on', async () => {
    const flaky = await receiver({ failFirst: 3, failStatus: 503 })
    const clock = new ManualClock(0)
    const { bus, dlq, n } = await deadLetterNotifier(
      [{ name: 'flaky', url: flaky.url, retry: { maxAttempts: 3 } }],
      clock,
    )
    await n.start()
    await publish(bus, [0, 1].map(alertN))
    for (let i = 0; i < 2; i++) await nextWait(clock, 30_000)
    await waitFor(() => committed(bus) === 2, { message: 'commit past the given-up alert' })
    assert.deepEqual(ids(flaky), ['alert-1'])
    assert.equal(flaky.requests, 4)
    assert.equal(n.counters.get('gave_up_total', { route: 'flaky', reason: 'attempts' }), 1)
    assert.equal(n.counters.get('failures_total', { route: 'flaky', reason: 'http_5xx' }), 3)
    await waitFor(() => dlq.length === 1, { message: 'the dead letter' })
    assert.equal(dlq[0]!.headers['breakid-reason'], 'webhook_attempts')
    assert.equal(dlq[0]!.headers['breakid-route'], 'flaky')
    assert.equal(codecs.alert.decode(dlq[0]!.value!).id, 'alert-0')
  })

  test('giveUpAfterMs: alerts older than their budget are dead-lettered and the commit moves on', async () => {
    const port = await downPort()
    const clock = new ManualClock(0)
    const { bus, dlq, n } = await deadLetterNotifier(
      [
        {
          name: 'gone',
          url: `http://127.0.0.1:${port}/`,
          retry: { giveUpAfterMs: 60_000, maxDelayMs: 10_000 },
        },
      ],
      clock,
    )
    await n.start()
    await publish(bus, [0, 1, 2].map(alertN))
    // alert-0 retries until the next wait would pass its minute; 1 and 2 are as old by then
    while (n.stats().gave_up < 3) {
      await waitFor(() => clock.pendingTimers > 0 || n.stats().gave_up === 3, {
        message: 'a wait or the give-ups',
      })
      if (clock.pendingTimers > 0) await clock.advance(10_000) // at least the wait (maxDelayMs 10 s)
    }
    assert.ok(clock.now() <= 70_000, `gave up by ${clock.now()} ms: within the budget and one step`)
    assert.equal(n.counters.get('gave_up_total', { route: 'gone', reason: 'deadline' }), 3)
    await waitFor(() => committed(bus) === 3, { message: 'commit past the given-up alerts' })
    await waitFor(() => dlq.length === 3, { message: 'three dead letters' })
    assert.deepEqual(
      dlq.map((m) => [codecs.alert.decode(m.value!).id, m.headers['breakid-reason']]),
      range(0, 3).map((id) => [id, 'webhook_deadline']),
    )
  })

  test('while a route fails, an alert that waited past its budget is given up without an attempt', async () => {
    const clock = new ManualClock(0)
    // every attempt costs 20 s of clock time and fails, as a receiver that hangs behind a proxy would
    let requests = 0
    const slow: Server = createServer((req, res) => {
      req.resume()
      requests++
      clock.busy(20_000)
      res.writeHead(503).end()
    })
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve))
    cleanups.push(async () => {
      slow.closeAllConnections()
      await new Promise((resolve) => slow.close(resolve))
    })
    const url = `http://127.0.0.1:${(slow.address() as AddressInfo).port}/`
    const { bus, dlq, n } = await deadLetterNotifier(
      [{ name: 'slow', url, retry: { giveUpAfterMs: 60_000, maxDelayMs: 1_000 } }],
      clock,
    )
    await n.start()
    await publish(bus, [alertN(0), alertN(1)])
    // alert-0: attempts at about 0, 20 and 40 s each end 20 s later; the third ends past its minute
    while (n.stats().gave_up < 2) {
      await waitFor(() => clock.pendingTimers > 0 || n.stats().gave_up === 2, {
        message: 'a wait or the give-ups',
      })
      if (clock.pendingTimers > 0) await clock.advance(1_000)
    }
    assert.equal(requests, 3, 'alert-1 was never sent: it was past its budget when its turn came')
    assert.equal(n.counters.get('gave_up_total', { route: 'slow', reason: 'deadline' }), 2)
    await waitFor(() => dlq.length === 2, { message: 'two dead letters' })
    await waitFor(() => committed(bus) === 2, { message: 'the commit' })
  })

  test('a full queue dead-letters its oldest waiting alert; the other routes get everything', async () => {
    const healthy = await receiver()
    const port = await downPort()
    const clock = new ManualClock(0)
    const { bus, dlq, n } = await deadLetterNotifier(
      [
        { name: 'healthy', url: healthy.url },
        { name: 'small', url: `http://127.0.0.1:${port}/`, queueCapacity: 2 },
      ],
      clock,
    )
    await n.start()
    await publish(bus, [alertN(0)])
    await waitFor(() => clock.pendingTimers > 0, { message: 'alert-0 failing' }) // in flight, waiting
    await publish(bus, [1, 2, 3, 4, 5].map(alertN))
    await waitFor(() => healthy.alerts.length === 6, { message: 'the healthy route' })
    await waitFor(() => dlq.length === 3, { message: 'the alerts pushed out of the full queue' })
    // alert-0 is in flight, 4 and 5 wait; 1, 2 and 3 were pushed out oldest first
    assert.deepEqual(
      dlq.map((m) => [codecs.alert.decode(m.value!).id, m.headers['breakid-reason']]),
      range(1, 4).map((id) => [id, 'webhook_queue_full']),
    )
    assert.equal(n.counters.get('gave_up_total', { route: 'small', reason: 'queue_full' }), 3)
    assert.equal(n.counters.get('queue_depth', { route: 'small' }), 3)
    assert.equal(committed(bus), 0, 'alert-0 is still owed')

    const back = await receiver({ port })
    await nextWait(clock, 30_000)
    await waitFor(() => back.alerts.length === 3, { message: 'what the queue kept' })
    assert.deepEqual(ids(back), ['alert-0', 'alert-4', 'alert-5'])
    await waitFor(() => committed(bus) === 6, { message: 'the commit' })
  })

  test('without a dead-letter topic a refused alert is counted and logged, and the commit moves on', async () => {
    const r = await receiver({ failFirst: 1, failStatus: 410 })
    const bus = new EmbeddedBus({ retryDelayMs: 10 })
    const n = notifier(bus, [{ name: 'gone', url: r.url }], { deadLetterTopic: null })
    await n.start()
    await publish(bus, [alertN(0), alertN(1)])
    await waitFor(() => committed(bus) === 2, { message: 'commit' })
    assert.deepEqual(ids(r), ['alert-1'])
    assert.equal(n.counters.get('gave_up_total', { route: 'gone', reason: 'rejected' }), 1)
  })
})
