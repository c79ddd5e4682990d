/**
 * The statistics of compare/experiment against known values: scipy 1.17.1's mannwhitneyu
 * (method='asymptotic': continuity and tie corrections), scipy.special.erfc and numpy.percentile
 * (linear), computed once with those libraries and written here; and the bootstrap's behaviour
 * (seeded, reproducible, intervals that cover no change and exclude a real shift).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  bootstrapCompare,
  bootstrapShareRatio,
  erfc,
  mannWhitneyU,
  quantileSorted,
  seededRandom,
  twoProportionTest,
} from '../../compare/stats.ts'

const close = (actual: number, expected: number, relTol: number, what: string) =>
  assert.ok(
    Math.abs(actual - expected) <= relTol * Math.abs(expected),
    `${what}: ${actual} is not within ${relTol} of ${expected}`,
  )

describe('Mann–Whitney U (scipy.stats.mannwhitneyu, method="asymptotic")', () => {
  test("scipy's documented example: males vs females", () => {
    const r = mannWhitneyU([19, 22, 16, 29, 24], [20, 11, 17, 12])
    assert.equal(r.u, 17)
    close(r.p, 0.11134688653314041, 1e-6, 'p')
    assert.equal(r.probabilityOfSuperiority, 17 / 20)
    close(r.cliffsDelta, 0.7, 1e-12, "Cliff's delta")
  })
  test('ties: midranks and the tie-corrected variance', () => {
    const r = mannWhitneyU([1, 2, 2, 3, 3, 3, 4, 5], [2, 3, 3, 4, 4, 5, 6, 6, 7])
    assert.equal(r.u, 16.5)
    close(r.p, 0.062484795672341206, 1e-6, 'p')
    assert.ok(r.z < 0, 'the first sample is the smaller one')
  })
  test('550 values with heavy ties, both orders', () => {
    const a = Array.from({ length: 300 }, (_, i) => ((i * 7919) % 101) / 10)
    const b = Array.from({ length: 250 }, (_, i) => ((i * 104729) % 97) / 10 + 0.5)
    const ab = mannWhitneyU(a, b)
    const ba = mannWhitneyU(b, a)
    assert.equal(ab.u, 35507)
    assert.equal(ba.u, 39493)
    close(ab.p, 0.2829338460904971, 1e-6, 'p')
    close(ba.p, 0.2829338460904971, 1e-6, 'p reversed')
    close(ab.cliffsDelta, -ba.cliffsDelta, 1e-12, 'delta is antisymmetric')
  })
  test('identical samples: no evidence; all values tied: p = 1', () => {
    assert.equal(mannWhitneyU([1, 2, 3], [1, 2, 3]).p, 1)
    assert.equal(mannWhitneyU([5, 5, 5], [5, 5]).p, 1)
    assert.equal(mannWhitneyU([], [1]).p, 1)
  })
  test('a clear shift of thousands of values is significant with a large effect', () => {
    const random = seededRandom(3)
    const a = Array.from({ length: 3000 }, () => random())
    const b = Array.from({ length: 3000 }, () => random() + 0.5)
    const r = mannWhitneyU(b, a)
    assert.ok(r.p < 1e-100)
    assert.ok(r.cliffsDelta > 0.7 && r.cliffsDelta < 0.8, `delta ${r.cliffsDelta}`) // exact: 0.75
  })
})

test('erfc matches scipy.special.erfc to 1.2e-7 (relative)', () => {
  const cases: [number, number][] = [
    [0, 1],
    [0.5, 0.4795001221869535],
    [1, 0.15729920705028516],
    [2, 0.004677734981047266],
    [3.5, 7.430983723414129e-7],
    [-1.2, 1.9103139782296354],
    [6, 2.1519736712498913e-17],
  ]
  for (const [x, expected] of cases) close(erfc(x), expected, 1.2e-7, `erfc(${x})`)
})

test('quantiles match numpy.percentile (linear interpolation)', () => {
  const sorted = [3.1, 0.2, 7.7, 1.5, 9.9, 4.4, 2.2].sort((a, b) => a - b)
  close(quantileSorted(sorted, 0.5), 3.1, 1e-12, 'p50')
  close(quantileSorted(sorted, 0.95), 9.239999999999998, 1e-12, 'p95')
  close(quantileSorted(sorted, 0.99), 9.767999999999999, 1e-12, 'p99')
  assert.ok(Number.isNaN(quantileSorted([], 0.5)))
})

test('two proportions: equal rates are no evidence, 5 % vs 1 % of 2000 is', () => {
  assert.equal(twoProportionTest(0, 100, 0, 100).p, 1)
  assert.ok(twoProportionTest(20, 2000, 100, 2000).p < 1e-9)
  assert.ok(twoProportionTest(20, 2000, 22, 2000).p > 0.5)
})

describe('block bootstrap', () => {
  const blocksOf = (random: () => number, count: number, size: number, shift = 0, scale = 1) =>
    Array.from({ length: count }, () => Array.from({ length: size }, () => (shift + random()) * scale))

  test('seeded: the same seed gives the same intervals, another seed different ones', () => {
    const r = seededRandom(11)
    const a = blocksOf(r, 10, 50)
    const b = blocksOf(r, 10, 50)
    const one = bootstrapCompare(a, b, { seed: 5, iterations: 200 })
    const again = bootstrapCompare(a, b, { seed: 5, iterations: 200 })
    const other = bootstrapCompare(a, b, { seed: 6, iterations: 200 })
    assert.deepEqual(one, again)
    assert.notDeepEqual(one.ratio.p50, other.ratio.p50)
  })

  test('same distribution: the ratio intervals of every statistic contain 1', () => {
    const r = seededRandom(21)
    const c = bootstrapCompare(blocksOf(r, 20, 100), blocksOf(r, 20, 100), { confidence: 0.99 })
    for (const s of ['p50', 'p95', 'p99', 'mean'] as const) {
      assert.ok(c.ratio[s].lo < 1 && c.ratio[s].hi > 1, `${s}: [${c.ratio[s].lo}, ${c.ratio[s].hi}]`)
      assert.ok(c.difference[s].lo < 0 && c.difference[s].hi > 0, s)
    }
  })

  test('a 1.5× slower candidate: the ratio interval lies around 1.5 and excludes 1.25', () => {
    const r = seededRandom(31)
    const c = bootstrapCompare(blocksOf(r, 20, 100, 1), blocksOf(r, 20, 100, 1, 1.5), { confidence: 0.99 })
    assert.ok(c.ratio.p50.lo > 1.25 && c.ratio.p50.hi < 1.75, `[${c.ratio.p50.lo}, ${c.ratio.p50.hi}]`)
    close(c.ratio.p50.estimate, 1.5, 0.05, 'estimate')
  })

  test('blocks that differ from each other widen the interval compared with single requests', () => {
    // each block has its own level (a busy second slows all its requests): 10 blocks of 200
    const r = seededRandom(41)
    const levels = (count: number) =>
      Array.from({ length: count }, () => {
        const level = 1 + r()
        return Array.from({ length: 200 }, () => level + 0.1 * r())
      })
    const a = levels(10)
    const b = levels(10)
    const blocked = bootstrapCompare(a, b, { confidence: 0.95 })
    const single = bootstrapCompare(
      a.flat().map((v) => [v]),
      b.flat().map((v) => [v]),
      { confidence: 0.95 },
    )
    const width = (c: typeof blocked) => c.ratio.mean.hi - c.ratio.mean.lo
    assert.ok(width(blocked) > 3 * width(single), `${width(blocked)} vs ${width(single)}`)
  })

  test('share of sums: a stage that doubles its share', () => {
    const base = Array.from({ length: 10 }, () => [1, 10] as const)
    const cand = Array.from({ length: 10 }, () => [2, 10] as const)
    const s = bootstrapShareRatio(base, cand, { iterations: 100 })
    assert.equal(s.baseline, 0.1)
    assert.equal(s.candidate, 0.2)
    assert.equal(s.ratio.estimate, 2)
    assert.equal(s.ratio.lo, 2)
  })

  test('bad options and empty samples are refused', () => {
    assert.throws(() => bootstrapCompare([[1]], [[1]], { confidence: 1 }), /confidence/)
    assert.throws(() => bootstrapCompare([[]], [[1]]), /at least one value/)
  })
})
