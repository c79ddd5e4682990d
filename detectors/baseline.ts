/**
 * Baselines per key. Callers freeze them (stop feeding) while an alert is pending or firing, so a
 * break never teaches the baseline that the break is normal. Both kinds serialise to plain JSON
 * (`toState()` / `fromState()`), so a detector consumer that restarts resumes with what it learned
 * (detectors/state-store.ts) instead of relearning through a new warm-up.
 *
 * - RollingBaseline: the last `window` observations; robust centre (median), spread (MAD scaled to
 *   a standard deviation) and any quantile, so one outlier neither moves the baseline nor triggers
 *   an alert. Not ready until `warmup` observations have been seen.
 * - EwmaBaseline: exponentially weighted mean and variance with smoothing `alpha` (the weight of the
 *   newest observation; ≈ 2 / (N + 1) for an N-sample memory): O(1) memory for fast, cheap trends.
 *   Not ready until `warmup` observations.
 */
import { medianAbsoluteDeviation, quantileSorted, median as ssMedian } from 'simple-statistics'

/** Plain-JSON state of a RollingBaseline: values oldest first. */
export interface RollingBaselineState {
  window: number
  warmup: number
  seen: number
  values: number[]
}

export class RollingBaseline {
  private values: number[] = []
  private next = 0
  private seen = 0

  constructor(
    readonly window = 60,
    readonly warmup = 10,
  ) {}

  push(value: number): void {
    if (!Number.isFinite(value)) return
    if (this.values.length < this.window) this.values.push(value)
    else this.values[this.next] = value
    this.next = (this.next + 1) % this.window
    this.seen++
  }

  get ready(): boolean {
    return this.seen >= this.warmup
  }

  get count(): number {
    return this.values.length
  }

  median(): number {
    return this.values.length === 0 ? Number.NaN : ssMedian(this.values)
  }

  /** median absolute deviation scaled to estimate a standard deviation for normal data */
  sigma(): number {
    return this.values.length === 0 ? Number.NaN : 1.4826 * medianAbsoluteDeviation(this.values)
  }

  /** the q-quantile (0 ≤ q ≤ 1) of the window; NaN when empty */
  quantile(q: number): number {
    if (this.values.length === 0) return Number.NaN
    return quantileSorted(
      [...this.values].sort((a, b) => a - b),
      Math.min(1, Math.max(0, q)),
    )
  }

  /** the window's observations, oldest first */
  ordered(): number[] {
    if (this.values.length < this.window) return [...this.values]
    return [...this.values.slice(this.next), ...this.values.slice(0, this.next)]
  }

  toState(): RollingBaselineState {
    return { window: this.window, warmup: this.warmup, seen: this.seen, values: this.ordered() }
  }

  /**
   * Rebuilds a baseline from `toState()`. `window`/`warmup` given here win over the stored ones (a
   * reconfigured detector keeps its newest observations); unreadable input gives an empty baseline.
   */
  static fromState(state: unknown, window?: number, warmup?: number): RollingBaseline {
    const s = isRecord(state) ? state : {}
    const b = new RollingBaseline(
      window ?? positiveInt(s.window) ?? 60,
      warmup ?? nonNegativeInt(s.warmup) ?? 10,
    )
    const values = Array.isArray(s.values) ? s.values.filter(isFiniteNumber) : []
    for (const v of values.slice(-b.window)) b.push(v)
    b.seen = Math.max(b.seen, nonNegativeInt(s.seen) ?? 0)
    return b
  }
}

/** Named RollingBaselines of one key's state: `Baselines<typeof NAMES>` for `NAMES = [...] as const`. */
export type Baselines<Names extends readonly string[]> = Record<Names[number], RollingBaseline>

/**
 * The baselines `names` of a state as plain JSON, each under its own name — the one place a
 * detector's snapshot spells how its baselines are written, so every detector writes them alike.
 */
export function baselinesToJson<const Names extends readonly string[]>(
  s: Baselines<Names>,
  names: Names,
): Record<Names[number], RollingBaselineState> {
  return Object.fromEntries(names.map((n: Names[number]) => [n, s[n].toState()])) as Record<
    Names[number],
    RollingBaselineState
  >
}

/**
 * The inverse of `baselinesToJson`: each of `names` restored from `raw` with the detector's current
 * `window` and `warmup` (a missing or unreadable one starts empty).
 */
export function baselinesFromJson<const Names extends readonly string[]>(
  raw: Record<string, unknown>,
  names: Names,
  window: number,
  warmup: number,
): Baselines<Names> {
  return Object.fromEntries(
    names.map((n) => [n, RollingBaseline.fromState(raw[n], window, warmup)]),
  ) as Baselines<Names>
}

/** Plain-JSON state of an EwmaBaseline. */
export interface EwmaBaselineState {
  alpha: number
  warmup: number
  seen: number
  mean: number
  variance: number
}

export class EwmaBaseline {
  private seen = 0
  private m = Number.NaN
  private v = 0

  constructor(
    /** weight of the newest observation, 0 < alpha ≤ 1 */
    readonly alpha = 0.1,
    readonly warmup = 10,
  ) {
    if (!(alpha > 0 && alpha <= 1)) throw new RangeError(`alpha must be in (0, 1], got ${alpha}`)
  }

  push(value: number): void {
    if (!Number.isFinite(value)) return
    this.seen++
    if (this.seen === 1) {
      this.m = value
      this.v = 0
      return
    }
    // West's incremental form of the exponentially weighted mean and variance
    const diff = value - this.m
    const incr = this.alpha * diff
    this.m += incr
    this.v = (1 - this.alpha) * (this.v + diff * incr)
  }

  get ready(): boolean {
    return this.seen >= this.warmup
  }

  get count(): number {
    return this.seen
  }

  mean(): number {
    return this.m
  }

  sigma(): number {
    return this.seen === 0 ? Number.NaN : Math.sqrt(this.v)
  }

  toState(): EwmaBaselineState {
    return { alpha: this.alpha, warmup: this.warmup, seen: this.seen, mean: this.m, variance: this.v }
  }

  static fromState(state: unknown, alpha?: number, warmup?: number): EwmaBaseline {
    const s = isRecord(state) ? state : {}
    const storedAlpha = isFiniteNumber(s.alpha) && s.alpha > 0 && s.alpha <= 1 ? s.alpha : undefined
    const b = new EwmaBaseline(alpha ?? storedAlpha ?? 0.1, warmup ?? nonNegativeInt(s.warmup) ?? 10)
    const seen = nonNegativeInt(s.seen) ?? 0
    if (seen > 0 && isFiniteNumber(s.mean) && isFiniteNumber(s.variance) && s.variance >= 0) {
      b.seen = seen
      b.m = s.mean
      b.v = s.variance
    }
    return b
  }
}

export function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x)
}
const isFiniteNumber = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x)
const nonNegativeInt = (x: unknown): number | undefined =>
  isFiniteNumber(x) && x >= 0 ? Math.floor(x) : undefined
const positiveInt = (x: unknown): number | undefined =>
  isFiniteNumber(x) && x >= 1 ? Math.floor(x) : undefined
