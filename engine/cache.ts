/**
 * Result cache: a bounded LRU from (model, version, hash of every input tensor's name, datatype,
 * shape and bytes) to the model's outputs for those inputs. Full means evict the least recently used
 * entry (counted). Capacity 0 turns it off: no hashing, no lookups, counters stay at zero.
 *
 * Entries hold copies of the outputs, never views into a shared batch buffer, so a cached answer
 * does not keep a whole batch alive nor change when that buffer is reused.
 *
 * What the cache is worth: the engine reports how long each miss took from preprocessing to the
 * model's answer (`recordMiss`) and each hit the same span (`recordHit`); a hit saved the running mean
 * of its model's misses minus its own time (`latencySavedUs`, on /metrics with the hit ratio).
 */
import { createHash } from 'node:crypto'
import type { Tensor } from './tensors.ts'

/** Default capacity (entries): off, since identical requests are rare in most fleets. */
export const DEFAULT_CACHE_ENTRIES = 0

export class ResultCache {
  private readonly entries = new Map<string, Tensor[]>()
  hits = 0
  misses = 0
  evictions = 0
  /** Σ over hits of (mean miss time of the model − the hit's time), µs */
  latencySavedUs = 0
  /** per model: misses timed and their summed time, µs (the mean a hit is measured against) */
  private readonly missTime = new Map<string, { n: number; us: number }>()

  constructor(readonly capacity: number = DEFAULT_CACHE_ENTRIES) {
    if (!Number.isInteger(capacity) || capacity < 0) {
      throw new RangeError(`cache capacity must be an integer >= 0, got ${capacity}`)
    }
  }

  get enabled(): boolean {
    return this.capacity > 0
  }

  get size(): number {
    return this.entries.size
  }

  /** The cache key of a request: model, version and a SHA-1 over the inputs as the model sees them. */
  key(model: string, version: string, inputs: readonly Tensor[]): string {
    const h = createHash('sha1')
    for (const t of inputs) {
      // lengths and separators keep ("ab", [1]) and ("a", [b1]) apart
      h.update(`${t.name.length}:${t.name}|${t.datatype}|${t.shape.join(',')}|`)
      h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength))
    }
    return `${model}\u0000${version}\u0000${h.digest('hex')}`
  }

  /** The cached outputs (a hit, now most recently used) or undefined (a miss). */
  get(key: string): Tensor[] | undefined {
    const hit = this.entries.get(key)
    if (hit === undefined) {
      this.misses++
      return undefined
    }
    this.hits++
    this.entries.delete(key)
    this.entries.set(key, hit)
    return hit
  }

  set(key: string, outputs: readonly Tensor[]): void {
    if (!this.enabled) return
    this.entries.delete(key)
    this.entries.set(
      key,
      outputs.map((o) => ({ ...o, shape: [...o.shape], data: o.data.slice() })),
    )
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value as string
      this.entries.delete(oldest)
      this.evictions++
    }
  }

  /** hits / (hits + misses); 0 before any lookup */
  get hitRatio(): number {
    const lookups = this.hits + this.misses
    return lookups === 0 ? 0 : this.hits / lookups
  }

  /** A miss of `model` took `us` from preprocessing to the model's answer. */
  recordMiss(model: string, us: number): void {
    const t = this.missTime.get(model) ?? { n: 0, us: 0 }
    t.n++
    t.us += us
    this.missTime.set(model, t)
  }

  /** A hit of `model` took `us` over the same span; it saved the model's mean miss time minus that. */
  recordHit(model: string, us: number): void {
    const t = this.missTime.get(model)
    if (t && t.n > 0) this.latencySavedUs += Math.max(0, t.us / t.n - us)
  }

  /** Drops every entry of one model version (it was unloaded; a reload may differ). */
  invalidate(model: string, version: string): void {
    const prefix = `${model}\u0000${version}\u0000`
    for (const k of [...this.entries.keys()]) if (k.startsWith(prefix)) this.entries.delete(k)
  }
}
