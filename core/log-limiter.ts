/**
 * A log line for the first event of each kind per interval; the rest are counted, and the count rides
 * on the next line. A flood of one failure (a broker down, a full buffer) cannot flood the log, and
 * the first of a new kind is never hidden behind an old one.
 */
import { type Clock, systemClock } from './clock.ts'

export class FirstPerInterval {
  private readonly kinds = new Map<string, { loggedAtMs: number; suppressed: number }>()

  /**
   * @param intervalMs how long after a logged event the same kind stays quiet. Default one minute.
   * @param maxKinds kinds remembered; past it the longest-known is forgotten. Default 256.
   */
  constructor(
    private readonly clock: Pick<Clock, 'now'> = systemClock,
    readonly intervalMs = 60_000,
    private readonly maxKinds = 256,
  ) {}

  /**
   * An event of `kind` happened. A number: log it now; that many events of the kind went unlogged
   * since its last line. undefined: stay quiet (it is counted for the next line).
   */
  admit(kind: string): number | undefined {
    const now = this.clock.now()
    const known = this.kinds.get(kind)
    if (known && now - known.loggedAtMs < this.intervalMs) {
      known.suppressed++
      return undefined
    }
    if (!known && this.kinds.size >= this.maxKinds) this.kinds.delete(this.kinds.keys().next().value!)
    this.kinds.set(kind, { loggedAtMs: now, suppressed: 0 })
    return known?.suppressed ?? 0
  }
}
