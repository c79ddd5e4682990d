/**
 * A clock for core/retry.ts (RetryClock) that only moves when the test says so: sleepers wait until
 * `fireNext()` jumps to the earliest of them. Real I/O (HTTP to a receiver on 127.0.0.1) still runs
 * in real time between steps, so `nextSleeper()` polls — bounded — for the next wait to register.
 */
import type { RetryClock } from '../../core/retry.ts'

interface Sleeper {
  at: number
  resolve: () => void
}

export class FakeClock implements RetryClock {
  private nowMs: number
  private sleepers: Sleeper[] = []

  constructor(startMs = 0) {
    this.nowMs = startMs
  }

  now(): number {
    return this.nowMs
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason)
      const sleeper: Sleeper = { at: this.nowMs + Math.max(0, ms), resolve }
      const onAbort = () => {
        this.sleepers = this.sleepers.filter((s) => s !== sleeper)
        reject(signal!.reason)
      }
      sleeper.resolve = () => {
        signal?.removeEventListener('abort', onAbort)
        resolve()
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.sleepers.push(sleeper)
    })
  }

  /** waits now registered */
  get sleeping(): number {
    return this.sleepers.length
  }

  /** Polls (real time, bounded) until at least `n` waits are registered. */
  async nextSleeper(n = 1, timeoutMs = 10_000): Promise<void> {
    const give = Date.now() + timeoutMs
    while (this.sleepers.length < n) {
      if (Date.now() > give) throw new Error(`no sleeper registered within ${timeoutMs} ms`)
      await new Promise((r) => setTimeout(r, 2))
    }
  }

  /** Jumps to the earliest wait's end and wakes it; returns the time jumped (ms). */
  fireNext(): number {
    if (this.sleepers.length === 0) throw new Error('nobody is sleeping')
    this.sleepers.sort((a, b) => a.at - b.at)
    const next = this.sleepers.shift()!
    const jumped = Math.max(0, next.at - this.nowMs)
    this.nowMs = Math.max(this.nowMs, next.at)
    next.resolve()
    return jumped
  }

  /** Moves time forward without waking anyone whose wait has not ended; wakes those that have. */
  advance(ms: number): void {
    this.nowMs += ms
    const due = this.sleepers.filter((s) => s.at <= this.nowMs)
    this.sleepers = this.sleepers.filter((s) => s.at > this.nowMs)
    for (const s of due) s.resolve()
  }
}
