/**
 * The last `capacity` values of a stream, kept in arrival order and sorted, so the median, any
 * quantile and the median absolute deviation cost O(1) / O(n) instead of a sort per query. A push is
 * two binary searches and two memmoves (O(n), n ≤ a few hundred).
 */
export class SlidingWindow {
  private readonly ring: Float64Array
  private readonly sorted: Float64Array
  private head = 0
  private size = 0

  constructor(readonly capacity: number) {
    if (!(capacity >= 1 && Number.isInteger(capacity)))
      throw new RangeError(`capacity must be ≥ 1, got ${capacity}`)
    this.ring = new Float64Array(capacity)
    this.sorted = new Float64Array(capacity)
  }

  get length(): number {
    return this.size
  }

  get full(): boolean {
    return this.size === this.capacity
  }

  push(x: number): void {
    if (this.size === this.capacity) {
      const oldest = this.ring[this.head]!
      const at = this.lowerBound(oldest)
      this.sorted.copyWithin(at, at + 1, this.size)
      this.size--
    }
    this.ring[this.head] = x
    this.head = (this.head + 1) % this.capacity
    const at = this.lowerBound(x)
    this.sorted.copyWithin(at + 1, at, this.size)
    this.sorted[at] = x
    this.size++
  }

  clear(): void {
    this.size = 0
    this.head = 0
  }

  /** NaN when empty */
  median(): number {
    return this.quantile(0.5)
  }

  /** q-quantile by linear interpolation between order statistics; NaN when empty */
  quantile(q: number): number {
    const n = this.size
    if (n === 0) return Number.NaN
    const pos = Math.min(1, Math.max(0, q)) * (n - 1)
    const lo = Math.floor(pos)
    const frac = pos - lo
    const a = this.sorted[lo]!
    return frac === 0 ? a : a + frac * (this.sorted[lo + 1]! - a)
  }

  /**
   * Median of |x − centre| over the window (lower median), by walking outwards from `centre` through
   * the sorted values: O(n / 2), no allocation.
   */
  mad(centre: number): number {
    const n = this.size
    if (n === 0) return Number.NaN
    const k = Math.floor((n - 1) / 2) // the k-th smallest deviation (0-based)
    let right = this.lowerBound(centre)
    let left = right - 1
    let d = 0
    for (let taken = 0; taken <= k; taken++) {
      const dl = left >= 0 ? centre - this.sorted[left]! : Number.POSITIVE_INFINITY
      const dr = right < n ? this.sorted[right]! - centre : Number.POSITIVE_INFINITY
      if (dl <= dr) {
        d = dl
        left--
      } else {
        d = dr
        right++
      }
    }
    return d
  }

  /** mean of |x − centre| */
  meanAbsDeviation(centre: number): number {
    const n = this.size
    if (n === 0) return Number.NaN
    let s = 0
    for (let i = 0; i < n; i++) s += Math.abs(this.sorted[i]! - centre)
    return s / n
  }

  /** population variance; NaN when empty */
  variance(): number {
    const n = this.size
    if (n === 0) return Number.NaN
    const m = this.mean()
    let s = 0
    for (let i = 0; i < n; i++) s += (this.sorted[i]! - m) ** 2
    return s / n
  }

  /** forgets the newest `k` values (k ≤ 0: nothing) */
  dropNewest(k: number): void {
    if (k <= 0) return
    const keep = this.values().slice(0, Math.max(0, this.size - k))
    this.clear()
    for (const v of keep) this.push(v)
  }

  mean(): number {
    const n = this.size
    if (n === 0) return Number.NaN
    let s = 0
    for (let i = 0; i < n; i++) s += this.sorted[i]!
    return s / n
  }

  /** the values, oldest first */
  values(): number[] {
    const out: number[] = []
    const start = (this.head - this.size + this.capacity) % this.capacity
    for (let i = 0; i < this.size; i++) out.push(this.ring[(start + i) % this.capacity]!)
    return out
  }

  /** a window holding the newest `capacity` of `values` (oldest first) */
  static of(capacity: number, values: readonly number[]): SlidingWindow {
    const w = new SlidingWindow(capacity)
    for (const v of values.slice(-capacity)) if (Number.isFinite(v)) w.push(v)
    return w
  }

  private lowerBound(x: number): number {
    let lo = 0
    let hi = this.size
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (this.sorted[mid]! < x) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}
