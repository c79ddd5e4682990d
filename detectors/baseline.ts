/**
 * A rolling baseline over the last `window` observations: robust centre (median) and spread (MAD),
 * so one outlier neither moves the baseline nor triggers an alert. Not ready until `warmup`
 * observations have been seen. Callers freeze it (stop feeding) while an alert is pending or firing,
 * so a break never teaches the baseline that the break is normal.
 */
import { medianAbsoluteDeviation, median as ssMedian } from 'simple-statistics'

export class RollingBaseline {
  private readonly values: number[] = []
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
}
