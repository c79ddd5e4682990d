import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  binomialTail,
  EventTimeBuckets,
  kolmogorovQ,
  ksTwoSample,
  psi,
  robustSigma,
  robustZ,
  theilSen,
} from '../../detectors/stats.ts'

const range = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i))

test('KS: identical samples give D 0 and p 1; disjoint ones D 1 and a tiny p', () => {
  const a = range(200, (i) => i)
  assert.deepEqual(ksTwoSample(a, [...a].reverse()), { d: 0, p: 1 })
  const far = ksTwoSample(
    a,
    range(200, (i) => 1000 + i),
  )
  assert.equal(far.d, 1)
  assert.ok(far.p < 1e-30, `p ${far.p}`)
})

test('KS: a half-overlapping shift gives D 0.5 and the asymptotic p-value', () => {
  const r = ksTwoSample(
    range(10, (i) => i + 1),
    range(10, (i) => i + 6),
  )
  assert.equal(r.d, 0.5)
  // λ = (√5 + 0.12 + 0.11/√5)·0.5 = 1.2026 → Q_KS ≈ 0.111
  assert.ok(Math.abs(r.p - 0.111) < 0.002, `p ${r.p}`)
  // the 5 % critical value of the Kolmogorov distribution is λ = 1.358
  assert.ok(Math.abs(kolmogorovQ(1.358) - 0.05) < 0.001)
})

test('KS: ties do not inflate D', () => {
  assert.equal(ksTwoSample([1, 1, 1, 2], [1, 1, 1, 2]).d, 0)
  assert.equal(ksTwoSample([1, 1, 2, 2], [1, 2, 2, 2]).d, 0.25)
})

test('PSI: ~0 for the same distribution, above 0.25 for a shifted one', () => {
  const base = range(1000, (i) => Math.sin(i) * 10)
  assert.ok(psi(base, base) < 1e-9)
  const shifted = base.map((v) => v + 8)
  assert.ok(psi(base, shifted) > 0.25, `psi ${psi(base, shifted)}`)
  // a constant baseline (all ties) still gives a finite number
  assert.ok(Number.isFinite(psi([5, 5, 5, 5], [6, 6, 6])))
})

test('Theil–Sen: recovers the slope through outliers a least-squares fit would follow', () => {
  const xs = range(50, (i) => i)
  const ys = xs.map((x) => 3 * x + 7)
  ys[10] = 1000
  ys[40] = -1000
  const line = theilSen(xs, ys)
  assert.equal(line.slope, 3)
  assert.equal(line.intercept, 7)
  assert.equal(theilSen([1, 1], [2, 5]).slope, 0, 'no distinct x')
})

test('robust sigma and z: mostly-constant series get a spread above 0', () => {
  assert.ok(Math.abs(robustSigma([1, 2, 3, 4, 5, 6, 7, 8, 9]) - 1.4826 * 2) < 0.5)
  const sparse = [...range(95, () => 0), ...range(5, () => 5)]
  assert.ok(robustSigma(sparse) > 0)
  assert.equal(robustZ(3, 3, 0), 0)
  assert.equal(robustZ(4, 3, 0), Number.POSITIVE_INFINITY)
  assert.equal(robustZ(1, 3, 2), -1)
})

test('event-time buckets close when a later bucket starts, and only then', () => {
  const b = new EventTimeBuckets(1_000_000)
  const steps = [0.1, 0.5, 0.9, 1.2, 1.1, 3.5, 3.6].map((s) => b.place(s * 1e6))
  assert.deepEqual(steps, [undefined, undefined, undefined, 1e6, undefined, 2e6, undefined])
})

test('binomial tail: exact values for small n', () => {
  const close = (a: number, b: number, what: string) =>
    assert.ok(Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`)
  // P(X ≥ 1) = 1 − P(X = 0) = 1 − 0.5^10
  close(binomialTail(1, 10, 0.5), 1 - 0.5 ** 10, 'P(X≥1 | 10, 0.5)')
  // P(X = 10) = 0.5^10
  close(binomialTail(10, 10, 0.5), 0.5 ** 10, 'P(X≥10 | 10, 0.5)')
  // P(X ≥ 2 | 3, 0.2) = C(3,2)·0.2²·0.8 + 0.2³ = 0.096 + 0.008
  close(binomialTail(2, 3, 0.2), 0.104, 'P(X≥2 | 3, 0.2)')
  // P(X ≥ 3 | 5, 0.3) = 10·0.3³·0.7² + 5·0.3⁴·0.7 + 0.3⁵ = 0.1323 + 0.02835 + 0.00243
  close(binomialTail(3, 5, 0.3), 0.16308, 'P(X≥3 | 5, 0.3)')
  // symmetric: P(X ≥ 3 | 4, 0.5) = (4 + 1) / 16
  close(binomialTail(3, 4, 0.5), 5 / 16, 'P(X≥3 | 4, 0.5)')
})

test('binomial tail: large n agrees with its complement (X ≥ k ⇔ n − X ≤ n − k)', () => {
  // P(X ≥ k | n, p) + P(Y ≥ n − k + 1 | n, 1 − p) = 1 for Y = n − X; large n, then small again
  for (const [k, n, p] of [
    [480, 1_000, 0.5],
    [2_100, 5_000, 0.4],
    [30, 2_000, 0.01],
    [3, 10, 0.2],
  ] as const) {
    const sum = binomialTail(k, n, p) + binomialTail(n - k + 1, n, 1 - p)
    assert.ok(Math.abs(sum - 1) < 1e-9, `k ${k} n ${n} p ${p}: ${sum}`)
  }
})

test('binomial tail: edge cases', () => {
  assert.equal(binomialTail(0, 10, 0.1), 1, 'k = 0: always')
  assert.equal(binomialTail(-3, 10, 0.1), 1, 'k < 0: always')
  assert.equal(binomialTail(11, 10, 0.9), 0, 'k > n: never')
  assert.equal(binomialTail(1, 0, 0.5), 0, 'no trials')
  assert.equal(binomialTail(1, 10, 0), 0, 'p = 0: no failure can happen')
  assert.equal(binomialTail(10, 10, 1), 1, 'p = 1: every trial fails')
  const underflow = binomialTail(200, 200, 0.01)
  assert.ok(underflow >= 0 && underflow < 1e-300, `0.01^200 underflows to ~0, not NaN: ${underflow}`)
})

test('binomial tail: large n matches exact values and decreases in k', () => {
  // n = 100 000, p = 1e-4 (mean 10): exact values from rational arithmetic, 1 − Σ_{i<k} C(n,i) pⁱ qⁿ⁻ⁱ
  const exact: [number, number][] = [
    [5, 0.9707529867944409],
    [10, 0.5420765413844394],
    [20, 0.0034526626983106584],
    [30, 2.5050771672969057e-7],
  ]
  for (const [k, want] of exact) {
    const got = binomialTail(k, 100_000, 1e-4)
    assert.ok(Math.abs(got - want) <= 1e-8 * want, `P(X≥${k} | 1e5, 1e-4): ${got} vs ${want}`)
  }
  let prev = 1
  for (let k = 0; k <= 40; k++) {
    const t = binomialTail(k, 200, 0.05)
    assert.ok(t <= prev, `P(X≥${k}) ${t} > P(X≥${k - 1}) ${prev}`)
    prev = t
  }
})
