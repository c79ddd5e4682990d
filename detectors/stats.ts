/**
 * Statistics shared by the drift, resource, SLO, error and anomaly detectors — two-sample
 * Kolmogorov–Smirnov, the population stability index, the Theil–Sen slope, robust z — and the two
 * bits of bookkeeping they share: event-time buckets of spans and plain-JSON helpers for state.
 *
 * Everything here is pure and allocation-light; callers pass plain arrays.
 */
import { median as ssMedian, quantileSorted } from 'simple-statistics'
import { isRecord } from './baseline.ts'

export interface KsResult {
  /** sup |F_a(x) − F_b(x)|, 0 ≤ d ≤ 1 */
  d: number
  /** asymptotic p-value of d under "same distribution" */
  p: number
}

/**
 * Two-sample Kolmogorov–Smirnov test. The p-value uses the Kolmogorov distribution with the
 * small-sample correction of Stephens (λ = (√nₑ + 0.12 + 0.11/√nₑ)·D, nₑ = n·m/(n+m)), as in
 * Numerical Recipes' `kstwo`; good for nₑ ≥ 4, conservative (too large) for ties.
 * `a` and `b` need not be sorted; they are not modified.
 */
export function ksTwoSample(a: readonly number[], b: readonly number[]): KsResult {
  if (a.length === 0 || b.length === 0) return { d: 0, p: 1 }
  const x = [...a].sort((u, v) => u - v)
  const y = [...b].sort((u, v) => u - v)
  return ksSorted(x, y)
}

/** ksTwoSample for inputs already sorted ascending. */
export function ksSorted(x: readonly number[], y: readonly number[]): KsResult {
  const n = x.length
  const m = y.length
  if (n === 0 || m === 0) return { d: 0, p: 1 }
  let i = 0
  let j = 0
  let d = 0
  while (i < n && j < m) {
    const v = Math.min(x[i]!, y[j]!)
    // step past every value equal to v in both samples, so ties do not inflate D
    while (i < n && x[i]! <= v) i++
    while (j < m && y[j]! <= v) j++
    d = Math.max(d, Math.abs(i / n - j / m))
  }
  const en = Math.sqrt((n * m) / (n + m))
  return { d, p: kolmogorovQ((en + 0.12 + 0.11 / en) * d) }
}

/** Q_KS(λ) = 2 Σ_{j≥1} (−1)^{j−1} exp(−2 j² λ²): the survival function of the Kolmogorov distribution. */
export function kolmogorovQ(lambda: number): number {
  if (lambda < 1e-3) return 1
  let sum = 0
  let sign = 1
  let prevTerm = 0
  for (let j = 1; j <= 100; j++) {
    const term = Math.exp(-2 * j * j * lambda * lambda)
    sum += sign * term
    if (term <= 1e-10 * sum || term <= 1e-12 * prevTerm) return clamp01(2 * sum)
    sign = -sign
    prevTerm = term
  }
  return 1 // the series did not converge: λ is tiny, the distributions are indistinguishable
}

/**
 * Population stability index of `actual` against `expected`:
 * Σ (aᵢ − eᵢ)·ln(aᵢ/eᵢ) over `bins` quantile bins of `expected` (deciles by default). Empty bins get
 * a share of `epsilon` so one empty bin does not make it infinite. Rules of thumb: < 0.1 stable,
 * 0.1–0.25 moderate shift, > 0.25 significant shift. Ties in `expected` merge bins.
 */
export function psi(
  expected: readonly number[],
  actual: readonly number[],
  bins = 10,
  epsilon = 1e-4,
): number {
  if (expected.length === 0 || actual.length === 0) return 0
  const sorted = [...expected].sort((u, v) => u - v)
  const edges: number[] = []
  for (let k = 1; k < bins; k++) {
    const e = quantileSorted(sorted, k / bins)
    if (edges.length === 0 || e > edges[edges.length - 1]!) edges.push(e)
  }
  const e = histogram(sorted, edges)
  const a = histogram(actual, edges)
  let total = 0
  for (let k = 0; k < e.length; k++) {
    const pe = Math.max(e[k]! / expected.length, epsilon)
    const pa = Math.max(a[k]! / actual.length, epsilon)
    total += (pa - pe) * Math.log(pa / pe)
  }
  return total
}

/** counts per bin; bin k holds edges[k−1] < v ≤ edges[k] (first bin unbounded below, last above) */
function histogram(values: readonly number[], edges: readonly number[]): number[] {
  const counts = new Array<number>(edges.length + 1).fill(0)
  for (const v of values) {
    let lo = 0
    let hi = edges.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (v <= edges[mid]!) hi = mid
      else lo = mid + 1
    }
    counts[lo]!++
  }
  return counts
}

export interface Line {
  slope: number
  intercept: number
}

/**
 * Theil–Sen estimator: the median of the slopes of all pairs of points, robust to up to ~29 % of
 * outliers (one GC drop or a spike does not tilt it). O(n²): meant for windows of a few hundred
 * points. Returns slope 0 for fewer than two distinct x.
 */
export function theilSen(xs: readonly number[], ys: readonly number[]): Line {
  const n = Math.min(xs.length, ys.length)
  const slopes: number[] = []
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const dx = xs[j]! - xs[i]!
      if (dx !== 0) slopes.push((ys[j]! - ys[i]!) / dx)
    }
  }
  if (slopes.length === 0) return { slope: 0, intercept: n > 0 ? median(ys.slice(0, n)) : 0 }
  const slope = median(slopes)
  const residuals: number[] = []
  for (let i = 0; i < n; i++) residuals.push(ys[i]! - slope * xs[i]!)
  return { slope, intercept: median(residuals) }
}

/**
 * P(X ≥ k) for X ~ Binomial(n, p): how unlikely k or more failures in n requests are when each
 * fails with probability p. Summed in log space from k upwards until the terms stop mattering.
 */
export function binomialTail(k: number, n: number, p: number): number {
  if (k <= 0) return 1
  if (k > n) return 0
  if (p <= 0) return 0
  if (p >= 1) return 1
  const lp = Math.log(p)
  const lq = Math.log1p(-p)
  let logPmf = logChoose(n, k) + k * lp + (n - k) * lq
  let total = 0
  for (let i = k; i <= n; i++) {
    const term = Math.exp(logPmf)
    total += term
    if (term < total * 1e-12 && i > n * p) break
    // pmf(i + 1) / pmf(i) = (n − i) / (i + 1) · p / q
    logPmf += Math.log((n - i) / (i + 1)) + lp - lq
  }
  return Math.min(1, total)
}

function logChoose(n: number, k: number): number {
  return logFactorial(n) - logFactorial(k) - logFactorial(n - k)
}

/** log(i!) for i < length, extended on demand: called per error-rate evaluation, n up to ~10⁵ */
let logFactorials = new Float64Array([0, 0])

function logFactorial(n: number): number {
  if (n >= logFactorials.length) {
    const grown = new Float64Array(Math.max(n + 1, logFactorials.length * 2))
    grown.set(logFactorials)
    for (let i = logFactorials.length; i < grown.length; i++) grown[i] = grown[i - 1]! + Math.log(i)
    logFactorials = grown
  }
  return logFactorials[n]!
}

/**
 * Robust spread of a sample, as a standard deviation for normal data: the larger of the scaled MAD
 * and the scaled mean absolute deviation from the median. The second keeps the spread above zero for
 * quantised or mostly-constant series (a counter that is 0 most of the time), where the MAD is 0.
 */
export function robustSigma(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN
  const med = median(values)
  const dev = values.map((v) => Math.abs(v - med))
  const mad = 1.4826 * median(dev)
  const meanAd = (1.2533 * dev.reduce((s, v) => s + v, 0)) / dev.length
  return Math.max(mad, meanAd)
}

/** (value − centre) / sigma; ±Infinity when sigma is 0 and value differs, 0 when equal. */
export function robustZ(value: number, centre: number, sigma: number): number {
  const diff = value - centre
  if (diff === 0) return 0
  if (!(sigma > 0)) return diff > 0 ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY
  return diff / sigma
}

export function median(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : ssMedian([...values])
}

/** q-quantile (0..1) of an unsorted sample, NaN when empty */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN
  return quantileSorted(
    [...values].sort((a, b) => a - b),
    q,
  )
}

const clamp01 = (x: number) => Math.min(1, Math.max(0, x))

/**
 * Event-time buckets: a detector that aggregates spans evaluates when the first span of a later
 * bucket arrives for the same key, so its alerts depend only on the span timestamps (a replay gives
 * the same alerts with or without hardware samples). A span older than the open bucket (late, out of
 * order) counts in the open bucket. A key that goes silent is not evaluated (silence is its own break).
 */
export class EventTimeBuckets {
  /** index of the open bucket (timestamp_us / bucketUs, floored); −∞ before the first span */
  open = Number.NEGATIVE_INFINITY

  constructor(readonly bucketUs: number) {
    if (!(bucketUs > 0)) throw new RangeError(`bucketUs must be > 0, got ${bucketUs}`)
  }

  /**
   * Places a timestamp: returns the end time (µs) of the bucket it closes, or undefined when it falls
   * in the open bucket (or is the very first).
   */
  place(timestampUs: number): number | undefined {
    const b = Math.floor(timestampUs / this.bucketUs)
    if (b <= this.open) return undefined
    const first = this.open === Number.NEGATIVE_INFINITY
    const closedEndUs = (this.open + 1) * this.bucketUs
    this.open = b
    return first ? undefined : closedEndUs
  }

  /** Places a timestamp; when it closes a bucket, returns what `judge` makes of it (given its end, µs). */
  closing<T>(timestampUs: number, judge: (closedEndUs: number) => T[]): T[] {
    const closedEndUs = this.place(timestampUs)
    return closedEndUs === undefined ? [] : judge(closedEndUs)
  }

  /** the open bucket as plain JSON (null before the first span) */
  toState(): number | null {
    return Number.isFinite(this.open) ? this.open : null
  }

  /** the inverse of toState, with the bucket width of the detector that restores it */
  static fromState(open: unknown, bucketUs: number): EventTimeBuckets {
    const b = new EventTimeBuckets(bucketUs)
    b.open = num(open, Number.NEGATIVE_INFINITY)
    return b
  }
}

/** Reads a finite number from untrusted state, else the fallback. */
export function num(x: unknown, fallback: number): number {
  return typeof x === 'number' && Number.isFinite(x) ? x : fallback
}

/** Reads an array of finite numbers from untrusted state (others dropped). */
export function nums(x: unknown): number[] {
  return Array.isArray(x) ? x.filter((v): v is number => typeof v === 'number' && Number.isFinite(v)) : []
}

/** Reads an array of strings from untrusted state (others dropped). */
export function strs(x: unknown): string[] {
  return Array.isArray(x) ? x.filter((v): v is string => typeof v === 'string') : []
}

/** The entries of a keyed-state record from untrusted state. */
export function entriesOf(x: unknown): [string, Record<string, unknown>][] {
  if (!isRecord(x)) return []
  return Object.entries(x).filter((e): e is [string, Record<string, unknown>] => isRecord(e[1]))
}

export const fmtMs = (us: number): string => `${(us / 1000).toFixed(1)} ms`
export const fmtPct = (x: number): string => `${(x * 100).toFixed(0)}%`

/** What a key of one instance + model bucketed in event time knows of itself. */
export interface ModelBuckets {
  fleet: string
  instance: string
  model: string
  buckets: EventTimeBuckets
}

/** A ModelBuckets as plain JSON (the open bucket by its index). */
export function modelBucketsToJson(k: ModelBuckets): Record<string, unknown> {
  return { fleet: k.fleet, instance: k.instance, model: k.model, openBucket: k.buckets.toState() }
}

/** The inverse of modelBucketsToJson, with the bucket width of the detector that restores it. */
export function modelBucketsFromJson(v: Record<string, unknown>, bucketUs: number): ModelBuckets {
  return {
    fleet: String(v.fleet ?? ''),
    instance: String(v.instance ?? ''),
    model: String(v.model ?? ''),
    buckets: EventTimeBuckets.fromState(v.openBucket, bucketUs),
  }
}
