/**
 * Time as a dependency. Components that wait, time out or rate-limit take a Clock so tests step time
 * by hand (test/helpers/manual-clock.ts) instead of sleeping and asserting on the wall clock, which is
 * noisy on shared machines.
 */
import { performance } from 'node:perf_hooks'

/** A pending callback; `cancel` is safe after it fired and safe twice. */
export interface Timer {
  cancel(): void
}

export interface Clock {
  /** monotonic milliseconds (performance.now() on the system clock) */
  now(): number
  /** runs `fn` once, `ms` from now */
  timeout(ms: number, fn: () => void): Timer
  /**
   * The event loop's cumulative busy (`activeMs`) and idle (`idleMs`) time, milliseconds
   * (performance.eventLoopUtilization without arguments).
   */
  eventLoop(): { activeMs: number; idleMs: number }
}

export const systemClock: Clock = {
  now: () => performance.now(),
  timeout(ms, fn) {
    const handle = setTimeout(fn, ms)
    return { cancel: () => clearTimeout(handle) }
  },
  eventLoop() {
    const { active, idle } = performance.eventLoopUtilization()
    return { activeMs: active, idleMs: idle }
  },
}
