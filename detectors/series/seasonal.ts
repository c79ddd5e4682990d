/**
 * A seasonal profile for one candidate period (an hour, a day, a week of wall-clock time): the mean
 * value per phase bin for the current period and the three before it, so a value can be compared
 * phase to phase with each of the last three periods (the model takes the median of the three
 * comparisons: a daily cycle is not a level shift twice a day, and one odd day does not echo into
 * the next). Within a period, a bin's value is interpolated towards its neighbour by where in the
 * bins the values were sampled, so a series sampled once per bin is read exactly at its samples.
 *
 * Bins are `max(sampling interval, period / MAX_BINS)` wide, so memory is bounded whatever the
 * sampling rate (a day at 1 s is 288 bins of 5 min). Missing intervals leave bins empty; an empty
 * bin is skipped.
 */
import { isRecord } from '../baseline.ts'
import { nums } from '../stats.ts'

/** previous periods compared with */
export const COMPARED = 3
/** periods kept: the current one plus the compared ones */
export const PERIODS_KEPT = COMPARED + 1
export const MAX_BINS = 288

export class SeasonalProfile {
  readonly bins: number
  readonly binUs: number
  private readonly sums: Float64Array
  private readonly counts: Float64Array
  /** Σ phase (µs into the period) of the values in each bin: where in the bin they were sampled */
  private readonly phases: Float64Array
  /** the absolute period number each slot holds (−1: none) */
  private readonly slotPeriod: Float64Array

  constructor(
    readonly periodUs: number,
    intervalUs: number,
  ) {
    this.bins = Math.max(1, Math.min(MAX_BINS, Math.floor(periodUs / Math.max(1, intervalUs) + 1e-9)))
    this.binUs = periodUs / this.bins
    this.sums = new Float64Array(PERIODS_KEPT * this.bins)
    this.counts = new Float64Array(PERIODS_KEPT * this.bins)
    this.phases = new Float64Array(PERIODS_KEPT * this.bins)
    this.slotPeriod = new Float64Array(PERIODS_KEPT).fill(-1)
  }

  add(tUs: number, value: number): void {
    const period = Math.floor(tUs / this.periodUs)
    const slot = period % PERIODS_KEPT
    if (this.slotPeriod[slot] !== period) {
      this.sums.fill(0, slot * this.bins, (slot + 1) * this.bins)
      this.counts.fill(0, slot * this.bins, (slot + 1) * this.bins)
      this.phases.fill(0, slot * this.bins, (slot + 1) * this.bins)
      this.slotPeriod[slot] = period
    }
    const phase = tUs - period * this.periodUs
    const i = slot * this.bins + Math.min(this.bins - 1, Math.floor(phase / this.binUs))
    this.sums[i]! += value
    this.counts[i]! += 1
    this.phases[i]! += phase
  }

  /**
   * The values at tUs's phase in each of the COMPARED previous periods (index k − 1 for the k-th
   * period before tUs's own), undefined where a period has no data there.
   */
  previous(tUs: number): (number | undefined)[] {
    const period = Math.floor(tUs / this.periodUs)
    const phase = tUs - period * this.periodUs
    const bin = Math.min(this.bins - 1, Math.floor(phase / this.binUs))
    const out: (number | undefined)[] = []
    for (let k = 1; k <= COMPARED; k++) {
      const slot = (period - k) % PERIODS_KEPT
      out.push(
        period - k >= 0 && this.slotPeriod[slot] === period - k ? this.at(slot, bin, phase) : undefined,
      )
    }
    return out
  }

  toState(): Record<string, unknown> {
    return {
      periodUs: this.periodUs,
      bins: this.bins,
      sums: [...this.sums],
      counts: [...this.counts],
      phases: [...this.phases],
      slotPeriod: [...this.slotPeriod],
    }
  }

  /** Restores a profile of the same period and bins; anything else gives an empty one. */
  static fromState(state: unknown, periodUs: number, intervalUs: number): SeasonalProfile {
    const p = new SeasonalProfile(periodUs, intervalUs)
    if (!isRecord(state) || state.periodUs !== periodUs) return p
    const sums = nums(state.sums)
    const counts = nums(state.counts)
    const phases = nums(state.phases)
    const slots = nums(state.slotPeriod)
    const bins = typeof state.bins === 'number' ? state.bins : 0
    if (
      bins <= 0 ||
      sums.length !== PERIODS_KEPT * bins ||
      counts.length !== sums.length ||
      phases.length !== sums.length ||
      slots.length !== PERIODS_KEPT
    )
      return p
    const restored = new SeasonalProfile(periodUs, periodUs / bins)
    restored.sums.set(sums)
    restored.counts.set(counts)
    restored.phases.set(phases)
    restored.slotPeriod.set(slots)
    return restored
  }

  /**
   * The period's value at `phase`: its bin's mean, interpolated towards the neighbouring bin on
   * the side of `phase`, by where in each bin the values were sampled (so a series sampled once per
   * bin, at the bin's start, is read at exactly its samples).
   */
  private at(slot: number, bin: number, phase: number): number | undefined {
    const i = slot * this.bins + bin
    const c = this.counts[i]!
    if (c === 0) return undefined
    const v = this.sums[i]! / c
    const p = this.phases[i]! / c
    const nb = phase >= p ? bin + 1 : bin - 1
    if (nb < 0 || nb >= this.bins) return v
    const j = slot * this.bins + nb
    const cn = this.counts[j]!
    if (cn === 0) return v
    const vn = this.sums[j]! / cn
    const pn = this.phases[j]! / cn
    if (pn === p) return v
    const w = Math.min(1, Math.max(0, (phase - p) / (pn - p)))
    return v + w * (vn - v)
  }
}
