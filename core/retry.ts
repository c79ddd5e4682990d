/**
 * Retry with exponential backoff and full jitter, a cap, bounded by attempts, an overall deadline and
 * optionally a retry budget shared by the callers of one downstream (the shape of kafkajs' `retry`).
 * Non-retriable errors (see errors.ts) are thrown at once.
 *
 * The one retry policy of the project: callers express their needs through these options rather
 * than writing their own loop. Time comes from `clock` (core/clock.ts; default the system clock), so
 * a test steps hours of backoff with a ManualClock instead of sleeping.
 */
import { type Clock, systemClock } from './clock.ts'
import { isRetriable } from './errors.ts'

/** Why retry() stopped retrying and threw the last error. */
export type GiveUpReason =
  /** the error says retrying cannot help (errors.ts `retriable: false`) */
  | 'not_retriable'
  /** `retries` attempts after the first all failed */
  | 'attempts'
  /** the next wait would pass `deadlineMs` */
  | 'deadline'
  /** `signal` aborted (before or during a wait) */
  | 'aborted'
  /** the shared `budget` has no retry left: the downstream is failing for many callers at once */
  | 'budget'

export interface RetryOptions {
  /** attempts after the first; Infinity retries until the deadline or the signal. Default 5. */
  retries?: number
  /** ceiling of the first wait. Default 100. */
  initialDelayMs?: number
  /** largest ceiling of the computed (jittered) wait. Default 10 000. */
  maxDelayMs?: number
  factor?: number
  /** give up this long after the first attempt. Default: no deadline. */
  deadlineMs?: number
  signal?: AbortSignal
  /** called before each wait, e.g. to count and log the failure */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void
  /** called once before the last error is thrown, with why retrying stopped */
  onGiveUp?: (err: unknown, reason: GiveUpReason, attempts: number) => void
  /** a server's Retry-After wins over the computed delay when it is longer */
  retryAfterMs?: (err: unknown) => number | undefined
  /** a server's Retry-After is honoured up to this. Default `maxDelayMs`. */
  maxRetryAfterMs?: number
  /** default systemClock */
  clock?: Clock
  /** which errors are worth another attempt. Default: isRetriable (core/errors.ts) */
  retriable?: (err: unknown) => boolean
  /**
   * a budget shared by every call to one downstream: retries stop when they would exceed its share
   * of the calls, so a dead downstream is not hit by every caller's full retry schedule at once
   */
  budget?: RetryBudget
}

/**
 * A retry budget (after Finagle's and gRPC's): each first attempt deposits `ratio` of a token, each
 * retry withdraws one, and `minPerSecond` retries are always allowed. Retries can then add at most
 * `ratio` to the load of a downstream that fails for everyone, instead of multiplying it.
 */
export class RetryBudget {
  private tokens: number
  private lastRefillMs: number

  constructor(private readonly opts: { ratio?: number; minPerSecond?: number; clock?: Clock } = {}) {
    this.tokens = this.floor()
    this.lastRefillMs = (opts.clock ?? systemClock).now()
  }

  private floor(): number {
    return this.opts.minPerSecond ?? 10
  }

  /** a first attempt was made */
  deposit(): void {
    this.tokens = Math.min(this.tokens + (this.opts.ratio ?? 0.2), 1_000_000)
  }

  /** takes one retry from the budget; false when none is left */
  tryWithdraw(): boolean {
    const now = (this.opts.clock ?? systemClock).now()
    // the always-allowed floor refills once a second
    if (now - this.lastRefillMs >= 1000) {
      this.tokens = Math.max(this.tokens, this.floor())
      this.lastRefillMs = now
    }
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }
}

/**
 * The wait before attempt `attempt + 1` (attempt 0 is the first): full jitter under a ceiling that
 * grows by `factor` from `initialDelayMs` to `maxDelayMs`; a longer Retry-After hint wins, capped at
 * `maxRetryAfterMs`.
 */
export function backoffDelayMs(
  attempt: number,
  hintedMs: number | undefined,
  opts: Pick<RetryOptions, 'initialDelayMs' | 'maxDelayMs' | 'factor' | 'maxRetryAfterMs'> = {},
  random: () => number = Math.random,
): number {
  const initial = opts.initialDelayMs ?? 100
  const max = opts.maxDelayMs ?? 10_000
  const ceiling = Math.min(max, initial * (opts.factor ?? 2) ** attempt)
  const delay = random() * ceiling
  if (hintedMs === undefined || hintedMs <= delay) return delay
  return Math.max(delay, Math.min(hintedMs, opts.maxRetryAfterMs ?? max))
}

export async function retry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const retries = opts.retries ?? 5
  const clock = opts.clock ?? systemClock
  const started = clock.now()
  const giveUp = (err: unknown, reason: GiveUpReason, attempts: number): never => {
    opts.onGiveUp?.(err, reason, attempts)
    throw err
  }
  const retriable = opts.retriable ?? isRetriable
  opts.budget?.deposit()
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt)
    } catch (err) {
      if (!retriable(err)) giveUp(err, 'not_retriable', attempt + 1)
      if (opts.signal?.aborted) giveUp(err, 'aborted', attempt + 1)
      if (attempt >= retries) giveUp(err, 'attempts', attempt + 1)
      if (opts.budget && !opts.budget.tryWithdraw()) giveUp(err, 'budget', attempt + 1)
      const delay = backoffDelayMs(attempt, opts.retryAfterMs?.(err), opts)
      if (opts.deadlineMs !== undefined && clock.now() - started + delay > opts.deadlineMs) {
        giveUp(err, 'deadline', attempt + 1)
      }
      opts.onRetry?.(err, attempt + 1, delay)
      try {
        await wait(clock, delay, opts.signal)
      } catch {
        giveUp(err, 'aborted', attempt + 1) // surface the real failure, not the abort
      }
    }
  }
}

/** Resolves after `ms` on `clock`; rejects (and cancels the timer) when `signal` aborts. */
function wait(clock: Clock, ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const onAbort = () => {
      timer.cancel()
      reject(signal!.reason)
    }
    const timer = clock.timeout(ms, () => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    })
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
