/**
 * Retry with exponential backoff and full jitter, bounded by attempts and an overall deadline
 * (the shape of kafkajs' `retry`). Non-retriable errors (see errors.ts) are thrown at once.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { isRetriable } from './errors.ts'

export interface RetryOptions {
  /** attempts after the first; Infinity retries until the deadline or the signal. Default 5. */
  retries?: number
  initialDelayMs?: number
  maxDelayMs?: number
  factor?: number
  /** give up this long after the first attempt. Default: no deadline. */
  deadlineMs?: number
  signal?: AbortSignal
  /** called before each wait, e.g. to count and log the failure */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void
  /** a server's Retry-After wins over the computed delay when it is longer */
  retryAfterMs?: (err: unknown) => number | undefined
}

export async function retry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const retries = opts.retries ?? 5
  const initial = opts.initialDelayMs ?? 100
  const max = opts.maxDelayMs ?? 10_000
  const factor = opts.factor ?? 2
  const started = Date.now()
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt)
    } catch (err) {
      if (!isRetriable(err) || attempt >= retries || opts.signal?.aborted) throw err
      const ceiling = Math.min(max, initial * factor ** attempt)
      let delay = Math.random() * ceiling
      const hinted = opts.retryAfterMs?.(err)
      if (hinted !== undefined && hinted > delay) delay = Math.min(hinted, max)
      if (opts.deadlineMs !== undefined && Date.now() - started + delay > opts.deadlineMs) throw err
      opts.onRetry?.(err, attempt + 1, delay)
      try {
        await sleep(delay, undefined, { signal: opts.signal })
      } catch {
        throw err // aborted while waiting: surface the real failure, not the abort
      }
    }
  }
}
