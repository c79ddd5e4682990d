/** core/retry.ts: backoff bounds, Retry-After, give-up reasons, on a fake clock (no real waiting). */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DownstreamError, InvalidInputError } from '../../core/errors.ts'
import { backoffDelayMs, type GiveUpReason, retry } from '../../core/retry.ts'
import { ManualClock } from '../helpers/manual-clock.ts'

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
  const clock = new ManualClock(0)
  const f = failing(2)
  const waits: number[] = []
  const p = retry(f.fn, { clock, initialDelayMs: 100, onRetry: (_e, _a, d) => waits.push(d) })
  await clock.advance(100) // the first wait (at most 100) ends; the second (at most 200) begins
  await clock.advance(200)
  assert.equal(await p, 3)
  assert.equal(waits.length, 2)
  assert.ok(waits[0]! <= 100 && waits[1]! <= 200, `${waits}`)
  assert.equal(clock.now(), 300, 'only the manual clock moved')

  const reasons: GiveUpReason[] = []
  const onGiveUp = (_e: unknown, r: GiveUpReason) => reasons.push(r)
  await assert.rejects(
    retry(failing(9, () => new InvalidInputError('bad')).fn, { clock, onGiveUp }),
    InvalidInputError,
  )
  const attempts = assert.rejects(retry(failing(9).fn, { clock, retries: 1, onGiveUp }), DownstreamError)
  await clock.advance(100)
  await attempts
  // a deadline shorter than any wait: the first failure is the last
  await assert.rejects(
    retry(failing(9).fn, { clock, deadlineMs: 0, initialDelayMs: 100, onGiveUp }),
    DownstreamError,
  )
  const abort = new AbortController()
  const aborted = retry(failing(9).fn, { clock, signal: abort.signal, onGiveUp })
  await clock.advance(0) // the first failure happened; its wait is pending
  assert.equal(clock.pendingTimers, 1)
  abort.abort()
  await assert.rejects(aborted, DownstreamError, 'the real failure, not the abort')
  assert.deepEqual(reasons, ['not_retriable', 'attempts', 'deadline', 'aborted'])
  assert.equal(clock.pendingTimers, 0, 'the aborted wait was cancelled')
})

test('a retry budget shared by callers: retries stop at its share of the calls, plus the floor', async () => {
  const { RetryBudget } = await import('../../core/retry.ts')
  const clock = new ManualClock()
  const budget = new RetryBudget({ ratio: 0.1, minPerSecond: 2, clock })
  const reasons: GiveUpReason[] = []
  let retries = 0
  const down = () => Promise.reject(new Error('connection refused'))
  // 20 callers against a dead downstream, each willing to retry 5 times
  const calls = Array.from({ length: 20 }, () =>
    retry(down, {
      retries: 5,
      budget,
      clock,
      initialDelayMs: 1,
      onRetry: () => retries++,
      onGiveUp: (_e, r) => reasons.push(r),
    }).catch(() => undefined),
  )
  for (let i = 0; i < 200 && reasons.length < 20; i++) {
    await clock.advance(1)
    await new Promise((r) => setImmediate(r))
  }
  await Promise.all(calls)
  assert.equal(reasons.length, 20)
  // 2 floor tokens + 20 × 0.1 deposited: 4 retries in the first second, not 100
  assert.ok(reasons.filter((r) => r === 'budget').length >= 16, JSON.stringify(reasons))
  assert.ok(retries >= 4 && retries < 20, `${retries} retries`)
})
