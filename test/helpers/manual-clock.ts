/**
 * A Clock (core/clock.ts) that moves only when the test says so: timers fire in order of their due
 * time as `advance` passes it, and promises settle between timers, so a test steps through time
 * exactly and never sleeps.
 */
import type { Clock, Timer } from '../../core/clock.ts'

interface Pending {
  at: number
  seq: number
  fn: () => void
  cancelled: boolean
}

/** Lets every promise chain that can settle without time passing settle. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

export class ManualClock implements Clock {
  private t: number
  private seq = 0
  private readonly timers: Pending[] = []
  private activeMs = 0
  /**
   * Share of elapsed time the event loop is busy with other work (0..1) while `advance` passes time:
   * what HTTP and parsing cost a real engine.
   */
  loopLoad = 0

  constructor(startMs = 1_000) {
    this.t = startMs
  }

  now(): number {
    return this.t
  }

  timeout(ms: number, fn: () => void): Timer {
    const timer: Pending = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, cancelled: false }
    this.timers.push(timer)
    return {
      cancel: () => {
        timer.cancelled = true
      },
    }
  }

  eventLoop(): { activeMs: number; idleMs: number } {
    return { activeMs: this.activeMs, idleMs: Math.max(0, this.t - this.activeMs) }
  }

  /** Time spent synchronously on the event loop (compute that blocks it): moves the clock at once. */
  busy(ms: number): void {
    this.t += ms
    this.activeMs += ms
  }

  /** timers not yet fired or cancelled */
  get pendingTimers(): number {
    return this.timers.filter((t) => !t.cancelled).length
  }

  /** Moves time forward by `ms`, firing every timer due on the way, in order, settling promises between. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms
    for (;;) {
      await settle()
      const next = this.nextDue(end)
      if (!next) break
      this.pass(next.at)
      this.timers.splice(this.timers.indexOf(next), 1)
      next.fn()
    }
    this.pass(end)
    await settle()
  }

  /** Advances in steps of `stepMs` until `done()` holds; fails after `maxMs` of clock time. */
  async advanceUntil(done: () => boolean, { stepMs = 1, maxMs = 60_000 } = {}): Promise<void> {
    const limit = this.t + maxMs
    await settle()
    while (!done()) {
      if (this.t >= limit) throw new Error(`condition not reached within ${maxMs} ms of clock time`)
      await this.advance(stepMs)
    }
  }

  private nextDue(end: number): Pending | undefined {
    let next: Pending | undefined
    for (const t of this.timers) {
      if (t.cancelled || t.at > end) continue
      if (!next || t.at < next.at || (t.at === next.at && t.seq < next.seq)) next = t
    }
    // cancelled timers are dropped as they are passed over
    for (let i = this.timers.length - 1; i >= 0; i--) if (this.timers[i]!.cancelled) this.timers.splice(i, 1)
    return next
  }

  /** to `at` (never backwards: compute on the loop may have moved past it), with the background load */
  private pass(at: number): void {
    if (at <= this.t) return
    this.activeMs += (at - this.t) * this.loopLoad
    this.t = at
  }
}
