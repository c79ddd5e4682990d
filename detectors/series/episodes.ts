/**
 * One alert per episode, on top of a SeriesModel's assessments:
 *
 * - **fire** at the first point whose score reaches `alertScore` (0.5), outside probation and the
 *   quiet time; the alert's onset is the start of the excursion it belongs to;
 * - **hysteresis**: it stays firing as long as the excursion lasts — the deviation may fall from the
 *   alert level (alertZ) to the excursion level (excursionZ) and come back without a new alert — and
 *   resolves when the excursion ends (three points below excursionZ) or is adopted as the new normal;
 * - **quiet time**: after it resolves, the same key does not fire again for `quietPoints` points.
 *
 * Points, not seconds, so a series sampled every hour is as valid as one sampled every second.
 */
import { isRecord } from '../baseline.ts'
import { num } from '../stats.ts'
import type { Assessment } from './model.ts'

export interface EpisodeOptions {
  /** score at which an alert fires */
  alertScore?: number
  /** points after a resolve before the same key may fire again */
  quietPoints?: number
}

export const EPISODE_DEFAULTS: Required<EpisodeOptions> = Object.freeze({ alertScore: 0.5, quietPoints: 64 })

export type EpisodeTransition = 'fire' | 'resolve'

export class EpisodeGate {
  private readonly o: Required<EpisodeOptions>
  firing = false
  /** onset of the firing episode, µs */
  onsetUs = 0
  private point = 0
  private quietUntil = 0

  constructor(opts: EpisodeOptions = {}) {
    this.o = {
      alertScore: opts.alertScore ?? EPISODE_DEFAULTS.alertScore,
      quietPoints: opts.quietPoints ?? EPISODE_DEFAULTS.quietPoints,
    }
  }

  step(a: Assessment): EpisodeTransition | undefined {
    this.point++
    if (this.firing) {
      if (a.excursionEnded || a.adopted || !a.excursion) {
        this.firing = false
        this.quietUntil = this.point + this.o.quietPoints
        return 'resolve'
      }
      return undefined
    }
    if (a.probation || a.score < this.o.alertScore || this.point < this.quietUntil) return undefined
    this.firing = true
    this.onsetUs = a.excursion?.startUs ?? a.timestampUs
    // a one-point excursion that ends here still fires; the caller resolves it on the next point
    return 'fire'
  }

  toState(): Record<string, unknown> {
    return { firing: this.firing, onsetUs: this.onsetUs, point: this.point, quietUntil: this.quietUntil }
  }

  static fromState(state: unknown, opts: EpisodeOptions = {}): EpisodeGate {
    const g = new EpisodeGate(opts)
    if (!isRecord(state)) return g
    g.firing = state.firing === true
    g.onsetUs = num(state.onsetUs, 0)
    g.point = num(state.point, 0)
    g.quietUntil = num(state.quietUntil, 0)
    return g
  }
}
