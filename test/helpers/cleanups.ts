/**
 * What a test started and must stop, stopped after each test (newest first), and a webhook receiver
 * that stops with it: the shared teardown of the notifier tests.
 */
import { afterEach } from 'node:test'
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
