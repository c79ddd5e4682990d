/**
 * mulberry32: tiny, fast, seeded 32-bit PRNG returning floats in [0, 1) — the one deterministic
 * randomness of the project (generated models, bootstrap intervals, synthetic telemetry). Its source
 * is part of the model cache's hash (engine/models/zoo.ts): changing it regenerates every model.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A small seeded PRNG (mulberry32): the same synthetic telemetry on every run and machine (eval scenarios, the fleet generator). */
export class Prng {
  private readonly uniform: () => number

  constructor(seed: number) {
    this.uniform = mulberry32(seed >>> 0 || 0x9e3779b9)
  }

  /** uniform in [0, 1) */
  next(): number {
    return this.uniform()
  }

  /** standard normal (Box–Muller) */
  normal(): number {
    const u = Math.max(this.next(), 1e-12)
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next())
  }

  /** Poisson count; the normal approximation above 30 keeps it cheap for high rates */
  poisson(mean: number): number {
    if (mean <= 0) return 0
    if (mean > 30) return Math.max(0, Math.round(mean + Math.sqrt(mean) * this.normal()))
    const l = Math.exp(-mean)
    let k = 0
    let p = 1
    do {
      k++
      p *= this.next()
    } while (p > l)
    return k - 1
  }

  /** multiplicative jitter with relative spread `sigma` (log-normal, median 1) */
  jitter(sigma: number): number {
    return sigma <= 0 ? 1 : Math.exp(sigma * this.normal())
  }

  /** uniform in [lo, hi) */
  between(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next()
  }

  /** uniform integer in [lo, hi] */
  int(lo: number, hi: number): number {
    return lo + Math.floor((hi - lo + 1) * this.next())
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!
  }

  chance(p: number): boolean {
    return this.next() < p
  }

  /** Student's t with `nu` degrees of freedom (heavy tails; nu = 1 is Cauchy) */
  studentT(nu: number): number {
    let chi2 = 0
    for (let k = 0; k < nu; k++) chi2 += this.normal() ** 2
    return this.normal() / Math.sqrt(chi2 / nu)
  }

  /** Laplace (double exponential), unit scale */
  laplace(): number {
    const u = this.next() - 0.5
    return -Math.sign(u) * Math.log(1 - 2 * Math.abs(u) || 1e-12)
  }

  /** exponential with the given mean */
  exponential(mean: number): number {
    return -mean * Math.log(1 - this.next() || 1e-12)
  }

  hex(chars: number): string {
    let s = ''
    while (s.length < chars)
      s += Math.floor(this.next() * 0x100000000)
        .toString(16)
        .padStart(8, '0')
    return s.slice(0, chars)
  }
}
