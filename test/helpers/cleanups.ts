/**
 * What a test started and must stop, stopped after each test (newest first), and the webhook receiver
 * and notifier that stop with it: the shared teardown of the notifier tests.
 */
import { afterEach } from 'node:test'
import pino from 'pino'
import type { Transport } from '../../bus/transport.ts'
import { type NotifyRoute, WebhookNotifier, type WebhookNotifierOptions } from '../../notify/notifier.ts'
import { type Receiver, type ReceiverOptions, startReceiver } from '../../notify/receiver.ts'

export interface Cleanups {
  push(stop: () => Promise<void>): void
}

/** Registers the afterEach hook of the calling test file; `push` what the hook should stop. */
export function stopAfterEach(): Cleanups {
  const stops: (() => Promise<void>)[] = []
  afterEach(async () => {
    while (stops.length > 0) await stops.pop()!()
  })
  return { push: (stop) => void stops.push(stop) }
}

/** A loopback webhook receiver, stopped by `cleanups` after the test. */
export async function testReceiver(cleanups: Cleanups, opts: ReceiverOptions = {}): Promise<Receiver> {
  const r = await startReceiver(opts)
  cleanups.push(() => r.stop())
  return r
}

/** A silent notifier (not started) of `routes` reading alerts from `bus`, stopped by `cleanups` after the test. */
export function testNotifier(
  cleanups: Cleanups,
  bus: Transport,
  routes: NotifyRoute[],
  extra: Partial<WebhookNotifierOptions> = {},
): WebhookNotifier {
  const n = new WebhookNotifier({ transport: bus, routes, logger: pino({ level: 'silent' }), ...extra })
  cleanups.push(() => n.stop())
  return n
}
