/**
 * The statistics of `breakid compare` and `breakid experiment`: quantiles, the Mann–Whitney U rank
 * test with its effect size, a two-proportion test, and a seeded (block) bootstrap of the ratio and
 * difference of any statistic between two samples.
 *
 * Everything is pure and reproducible: the bootstrap draws from a seeded PRNG, so the same inputs and
 * seed give the same intervals on every machine.
 */

import { mulberry32 } from '../core/prng.ts'

/** the bootstrap's seeded PRNG (mulberry32), floats in [0, 1) */
export const seededRandom = mulberry32

/**
 * q-quantile (0..1) of values sorted ascending, linear between order statistics (Hyndman & Fan
 * type 7: numpy's default and ClickHouse's quantileExactInclusive, so it matches stage-breakdown).
 */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length
  if (n === 0) return Number.NaN
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile ${q} is outside 0..1`)
  const h = (n - 1) * q
  const lo = Math.floor(h)
  const hi = Math.min(n - 1, lo + 1)
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!)
}

export function mean(values: ArrayLike<number>): number {
  if (values.length === 0) return Number.NaN
  let sum = 0
  for (let i = 0; i < values.length; i++) sum += values[i]!
  return sum / values.length
}

/** The summary statistics a comparison reports, by name. */
export const SUMMARY_STATS = ['p50', 'p95', 'p99', 'mean'] as const
export type SummaryStat = (typeof SUMMARY_STATS)[number]

/** Every summary statistic of one sample sorted ascending. */
export function summarize(sorted: ArrayLike<number>): Record<SummaryStat, number> {
  return {
    p50: quantileSorted(sorted, 0.5),
    p95: quantileSorted(sorted, 0.95),
    p99: quantileSorted(sorted, 0.99),
    mean: mean(sorted),
  }
}

// ---------------------------------------------------------------------------------------------------
// The normal distribution

/**
 * erfc(x), from the Chebyshev fit of Numerical Recipes (`erfcc`): fractional error below 1.2e-7
 * everywhere, which keeps p-values right to 7 significant digits, far beyond what a verdict needs.
 */
export function erfc(x: number): number {
  const z = Math.abs(x)
  const t = 1 / (1 + 0.5 * z)
  // Horner's rule over the fit's coefficients, highest power first
  let poly = 0
  for (const c of ERFC_COEFFICIENTS) poly = poly * t + c
  const r = t * Math.exp(-z * z + poly)
  return x >= 0 ? r : 2 - r
}

const ERFC_COEFFICIENTS = [
  0.17087277, -0.82215223, 1.48851587, -1.13520398, 0.27886807, -0.18628806, 0.09678418, 0.37409196,
  1.00002368, -1.26551223,
]

/** P(Z > z) for a standard normal Z. */
export function normalSf(z: number): number {
  return 0.5 * erfc(z / Math.SQRT2)
}

// ---------------------------------------------------------------------------------------------------
// Mann–Whitney U

export interface MannWhitneyResult {
  /** U of the first sample: the pairs (a, b) with a > b, plus half the ties */
  u: number
  /** standardized U after the continuity and tie corrections (sign: a above b is positive) */
  z: number
  /** two-sided p-value, normal approximation with continuity and tie corrections */
  p: number
  /**
   * P(a > b) + ½ P(a = b) for a random pair: 0.5 when neither tends to be larger (the common-language
   * effect size, U / (n₁n₂))
   */
  probabilityOfSuperiority: number
  /** Cliff's delta = rank-biserial correlation = 2·P(a > b) − 1, from −1 to 1; 0 = no shift */
  cliffsDelta: number
}

/**
 * The Mann–Whitney U test, two-sided, as scipy.stats.mannwhitneyu(a, b, method='asymptotic') computes
 * it: midranks for ties, σ² = n₁n₂/12 · ((n + 1) − Σ(t³ − t)/(n(n − 1))), z = (|U − n₁n₂/2| − ½)/σ.
 * The normal approximation is what samples of hundreds to thousands of requests need; for tiny
 * samples it is conservative-ish rather than exact. O(n log n).
 */
export function mannWhitneyU(a: ArrayLike<number>, b: ArrayLike<number>): MannWhitneyResult {
  const n1 = a.length
  const n2 = b.length
  if (n1 === 0 || n2 === 0)
    return { u: Number.NaN, z: 0, p: 1, probabilityOfSuperiority: 0.5, cliffsDelta: 0 }
  const n = n1 + n2
  // one array of values tagged by sample; sorted, then midranks over runs of equal values
  const values = new Float64Array(n)
  for (let i = 0; i < n1; i++) values[i] = a[i]!
  for (let i = 0; i < n2; i++) values[n1 + i] = b[i]!
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => values[x]! - values[y]!)
  let rankSumA = 0
  let tieTerm = 0
  for (let i = 0; i < n; ) {
    let j = i
    while (j + 1 < n && values[order[j + 1]!] === values[order[i]!]) j++
    const midrank = (i + j) / 2 + 1
    const t = j - i + 1
    if (t > 1) tieTerm += t * t * t - t
    for (let k = i; k <= j; k++) if (order[k]! < n1) rankSumA += midrank
    i = j + 1
  }
  const u = rankSumA - (n1 * (n1 + 1)) / 2
  const mu = (n1 * n2) / 2
  const variance = ((n1 * n2) / 12) * (n + 1 - tieTerm / (n * (n - 1)))
  const pos = u / (n1 * n2)
  if (!(variance > 0)) return { u, z: 0, p: 1, probabilityOfSuperiority: pos, cliffsDelta: 2 * pos - 1 }
  const sigma = Math.sqrt(variance)
  const distance = Math.max(0, Math.abs(u - mu) - 0.5)
  const z = (Math.sign(u - mu) * distance) / sigma
  const p = Math.min(1, 2 * normalSf(distance / sigma))
  return { u, z, p, probabilityOfSuperiority: pos, cliffsDelta: 2 * pos - 1 }
}

// ---------------------------------------------------------------------------------------------------
// Two proportions

/**
 * Two-sided pooled z-test of two proportions (k₁/n₁ vs k₂/n₂), the error rates of two runs.
 * p = 1 when both are 0 or both are 1 (nothing to tell apart).
 */
export function twoProportionTest(k1: number, n1: number, k2: number, n2: number): { z: number; p: number } {
  if (n1 === 0 || n2 === 0) return { z: 0, p: 1 }
  const pooled = (k1 + k2) / (n1 + n2)
  const se = Math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
  if (!(se > 0)) return { z: 0, p: 1 }
  const z = (k2 / n2 - k1 / n1) / se
  return { z, p: Math.min(1, 2 * normalSf(Math.abs(z))) }
}

// ---------------------------------------------------------------------------------------------------
// Bootstrap

export interface Interval {
  lo: number
  hi: number
}

export interface BootstrapOptions {
  /** resamples; default 1000 */
  iterations?: number
  /** two-sided confidence of the percentile intervals, e.g. 0.95; default 0.95 */
  confidence?: number
  /** PRNG seed; default 1 */
  seed?: number
}

export interface BootstrapComparison {
  /** the statistic on each whole sample */
  baseline: Record<SummaryStat, number>
  candidate: Record<SummaryStat, number>
  /** candidate / baseline per statistic, with its percentile interval */
  ratio: Record<SummaryStat, { estimate: number } & Interval>
  /** candidate − baseline per statistic, with its percentile interval */
  difference: Record<SummaryStat, { estimate: number } & Interval>
}

/**
 * Percentile bootstrap of the ratio and the difference of every summary statistic between two samples
 * given as **blocks** (e.g. the requests of each 2-second window of a run). A resample draws as many
 * whole blocks as the sample has, with replacement, from each sample independently.
 *
 * Blocks, not single requests, because requests close in time are not independent: a busy second on
 * a shared machine slows every request in it. Resampling single requests would treat thousands of
 * requests as thousands of independent measurements and give intervals far narrower than the
 * run-to-run spread (a block bootstrap, after Künsch 1989; a block of one request is the ordinary
 * bootstrap). Block values are in the same units as the statistics reported.
 */
export function bootstrapCompare(
  baselineBlocks: readonly (readonly number[])[],
  candidateBlocks: readonly (readonly number[])[],
  opts: BootstrapOptions = {},
): BootstrapComparison {
  const iterations = opts.iterations ?? 1000
  const confidence = opts.confidence ?? 0.95
  if (!(confidence > 0 && confidence < 1)) throw new RangeError(`confidence ${confidence} is outside (0, 1)`)
  if (!Number.isInteger(iterations) || iterations < 10)
    throw new RangeError('iterations must be an integer >= 10')
  const random = seededRandom(opts.seed ?? 1)
  const base = new BlockSample(nonEmpty(baselineBlocks))
  const cand = new BlockSample(nonEmpty(candidateBlocks))
  const baseline = base.summarize(base.ones())
  const candidate = cand.summarize(cand.ones())
  const ratios = Object.fromEntries(SUMMARY_STATS.map((s) => [s, new Float64Array(iterations)])) as Record<
    SummaryStat,
    Float64Array
  >
  const diffs = Object.fromEntries(SUMMARY_STATS.map((s) => [s, new Float64Array(iterations)])) as Record<
    SummaryStat,
    Float64Array
  >
  for (let i = 0; i < iterations; i++) {
    const b = base.summarize(base.draw(random))
    const c = cand.summarize(cand.draw(random))
    for (const s of SUMMARY_STATS) {
      ratios[s][i] = ratio(c[s], b[s])
      diffs[s][i] = c[s] - b[s]
    }
  }
  const alpha = 1 - confidence
  const interval = (xs: Float64Array): Interval => {
    xs.sort()
    return { lo: quantileSorted(xs, alpha / 2), hi: quantileSorted(xs, 1 - alpha / 2) }
  }
  const ratio_ = {} as BootstrapComparison['ratio']
  const difference = {} as BootstrapComparison['difference']
  for (const s of SUMMARY_STATS) {
    ratio_[s] = { estimate: ratio(candidate[s], baseline[s]), ...interval(ratios[s]) }
    difference[s] = { estimate: candidate[s] - baseline[s], ...interval(diffs[s]) }
  }
  return { baseline, candidate, ratio: ratio_, difference }
}

/**
 * A sample held as sorted blocks, so the statistics of a resample (block multiplicities) come without
 * concatenating and sorting it: the k-th smallest value is found by bisecting the sorted union of all
 * values, counting each block's values below a candidate by binary search (O(blocks · log² n) instead
 * of O(n log n) per statistic; the same numbers).
 */
class BlockSample {
  private readonly blocks: Float64Array[]
  private readonly sums: number[]
  private readonly all: Float64Array

  constructor(blocks: readonly (readonly number[])[]) {
    this.blocks = blocks.map((b) => Float64Array.from(b).sort())
    this.sums = this.blocks.map((b) => b.reduce((s, v) => s + v, 0))
    this.all = sortedConcat(blocks)
  }

  ones(): Int32Array {
    return new Int32Array(this.blocks.length).fill(1)
  }

  /** as many blocks as there are, drawn with replacement: how often each was drawn */
  draw(random: () => number): Int32Array {
    const counts = new Int32Array(this.blocks.length)
    for (let i = 0; i < this.blocks.length; i++) counts[Math.floor(random() * this.blocks.length)]!++
    return counts
  }

  summarize(counts: Int32Array): Record<SummaryStat, number> {
    let n = 0
    let sum = 0
    for (let b = 0; b < this.blocks.length; b++) {
      n += counts[b]! * this.blocks[b]!.length
      sum += counts[b]! * this.sums[b]!
    }
    const q = (p: number) => {
      const h = (n - 1) * p
      const lo = Math.floor(h)
      const below = this.orderStatistic(counts, lo)
      return h === lo
        ? below
        : below + (h - lo) * (this.orderStatistic(counts, Math.min(n - 1, lo + 1)) - below)
    }
    return { p50: q(0.5), p95: q(0.95), p99: q(0.99), mean: sum / n }
  }

  /** the k-th smallest (0-based) value of the resample */
  private orderStatistic(counts: Int32Array, k: number): number {
    let lo = 0
    let hi = this.all.length - 1
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.countAtMost(counts, this.all[mid]!) >= k + 1) hi = mid
      else lo = mid + 1
    }
    return this.all[lo]!
  }

  private countAtMost(counts: Int32Array, v: number): number {
    let total = 0
    for (let b = 0; b < this.blocks.length; b++) {
      const c = counts[b]!
      if (c === 0) continue
      const block = this.blocks[b]!
      let lo = 0
      let hi = block.length
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        if (block[mid]! <= v) lo = mid + 1
        else hi = mid
      }
      total += c * lo
    }
    return total
  }
}

/** c / b, with 0/0 = 1 (no change) and x/0 = +∞ */
function ratio(c: number, b: number): number {
  if (b === 0) return c === 0 ? 1 : Number.POSITIVE_INFINITY
  return c / b
}

function nonEmpty(blocks: readonly (readonly number[])[]): (readonly number[])[] {
  const kept = blocks.filter((b) => b.length > 0)
  if (kept.length === 0) throw new RangeError('a sample needs at least one value')
  return kept
}

function sortedConcat(blocks: readonly (readonly number[])[]): Float64Array {
  const n = blocks.reduce((s, b) => s + b.length, 0)
  const out = new Float64Array(n)
  let k = 0
  for (const b of blocks) for (const v of b) out[k++] = v
  return out.sort()
}

/**
 * Block bootstrap of a ratio of sums — Σnumerator / Σdenominator over the picked blocks, e.g. a
 * stage's share of the requests' total time — and of candidate/baseline of that ratio. Blocks are
 * `[Σnumerator, Σdenominator]` of each time window.
 */
export function bootstrapShareRatio(
  baselineBlocks: readonly (readonly [number, number])[],
  candidateBlocks: readonly (readonly [number, number])[],
  opts: BootstrapOptions = {},
): { baseline: number; candidate: number; ratio: { estimate: number } & Interval } {
  const iterations = opts.iterations ?? 1000
  const confidence = opts.confidence ?? 0.95
  const random = seededRandom(opts.seed ?? 1)
  const share = (blocks: readonly (readonly [number, number])[]) => {
    let num = 0
    let den = 0
    for (const [n, d] of blocks) {
      num += n
      den += d
    }
    return den > 0 ? num / den : 0
  }
  const pick = (blocks: readonly (readonly [number, number])[]) => {
    let num = 0
    let den = 0
    for (let i = 0; i < blocks.length; i++) {
      const [n, d] = blocks[Math.floor(random() * blocks.length)]!
      num += n
      den += d
    }
    return den > 0 ? num / den : 0
  }
  const baseline = share(baselineBlocks)
  const candidate = share(candidateBlocks)
  const ratios = new Float64Array(iterations)
  for (let i = 0; i < iterations; i++) ratios[i] = ratio(pick(candidateBlocks), pick(baselineBlocks))
  ratios.sort()
  const alpha = 1 - confidence
  return {
    baseline,
    candidate,
    ratio: {
      estimate: ratio(candidate, baseline),
      lo: quantileSorted(ratios, alpha / 2),
      hi: quantileSorted(ratios, 1 - alpha / 2),
    },
  }
}
