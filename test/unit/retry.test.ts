/** core/retry.ts: backoff bounds, Retry-After, give-up reasons, on a fake clock (no real waiting). */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DownstreamError, InvalidInputError } from '../../core/errors.ts'
import { backoffDelayMs, type GiveUpReason, retry } from '../../core/retry.ts'
import { FakeClock } from '../helpers/fake-clock.ts'

test('backoff: full jitter under a doubling ceiling, capped; a longer Retry-After wins up to its own cap', () => {
  const opts = { initialDelayMs: 100, maxDelayMs: 1_000, maxRetryAfterMs: 60_000 }
  assert.equal(
    backoffDelayMs(0, undefined, opts, () => 0.999999),
    99.9999,
  )
  assert.equal(
    backoffDelayMs(3, undefined, opts, () => 0.5),
    400,
  )
  assert.equal(
    backoffDelayMs(20, undefined, opts, () => 1),
    1_000,
    'capped at maxDelayMs',
  )
  assert.equal(
    backoffDelayMs(0, undefined, opts, () => 0),
    0,
  )
  assert.equal(
    backoffDelayMs(0, 30_000, opts, () => 0.5),
    30_000,
    'Retry-After above maxDelayMs is honoured',
  )
  assert.equal(
    backoffDelayMs(0, 600_000, opts, () => 0.5),
    60_000,
    'but not past maxRetryAfterMs',
  )
  assert.equal(
    backoffDelayMs(3, 10, opts, () => 0.5),
    400,
    'a shorter hint does not shorten the wait',
  )
  // without maxRetryAfterMs the hint is capped at maxDelayMs, as before
  assert.equal(
    backoffDelayMs(0, 30_000, { initialDelayMs: 100, maxDelayMs: 1_000 }, () => 0),
    1_000,
  )
})

function failing(times: number, err: () => Error = () => new DownstreamError('down')) {
  let calls = 0
  return {
    fn: async () => {
      calls++
      if (calls <= times) throw err()
      return calls
    },
    get calls() {
      return calls
    },
  }
}

test('retries on the injected clock and says why it gave up', async () => {
  const clock = new FakeClock()
  const f = failing(2)
  const waits: number[] = []
  const p = retry(f.fn, { clock, initialDelayMs: 100, onRetry: (_e, _a, d) => waits.push(d) })
  await clock.nextSleeper()
  clock.fireNext()
  await clock.nextSleeper()
  clock.fireNext()
  assert.equal(await p, 3)
  assert.equal(waits.length, 2)
  assert.equal(clock.now(), waits[0]! + waits[1]!, 'time moved only by the waits, on the fake clock')

  const reasons: GiveUpReason[] = []
  const onGiveUp = (_e: unknown, r: GiveUpReason) => reasons.push(r)
  await assert.rejects(
    retry(failing(9, () => new InvalidInputError('bad')).fn, { clock, onGiveUp }),
    InvalidInputError,
  )
  const attempts = retry(failing(9).fn, { clock, retries: 1, onGiveUp })
  await clock.nextSleeper()
  clock.fireNext()
  await assert.rejects(attempts, DownstreamError)
  // a deadline shorter than any wait: the first failure is the last
  await assert.rejects(
    retry(failing(9).fn, { clock, deadlineMs: 0, initialDelayMs: 100, onGiveUp }),
    DownstreamError,
  )
  const abort = new AbortController()
  const aborted = retry(failing(9).fn, { clock, signal: abort.signal, onGiveUp })
  await clock.nextSleeper()
  abort.abort()
  await assert.rejects(aborted, DownstreamError, 'the real failure, not the abort')
  assert.deepEqual(reasons, ['not_retriable', 'attempts', 'deadline', 'aborted'])
  assert.equal(clock.sleeping, 0)
})
