/** The building blocks of detectors/series/: the sliding window, the tails, the seasonal profile. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { medianAbsoluteDeviation, quantile, median as ssMedian } from 'simple-statistics'
import { SeasonalProfile } from '../../detectors/series/seasonal.ts'
import { SeriesModel, resolutionOf } from '../../detectors/series/model.ts'
import { SlidingWindow } from '../../detectors/series/sliding-window.ts'
import {
  normalQuantile,
  poissonLogLower,
  poissonLogUpper,
  poissonZ,
  zOfUpperTail,
} from '../../detectors/series/tails.ts'
import { Prng } from '../../eval/prng.ts'

const close = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`)

test('sliding window: median, quantiles and MAD agree with simple-statistics on the last n values', () => {
  const p = new Prng(1)
  const w = new SlidingWindow(101)
  const all: number[] = []
  for (let i = 0; i < 1000; i++) {
    // ties included: a quarter of the values are rounded
    const v = i % 4 === 0 ? Math.round(p.normal() * 3) : p.normal() * 3
    w.push(v)
    all.push(v)
    if (i % 97 !== 0 && i !== 999) continue
    const last = all.slice(-101)
    assert.deepEqual(w.values(), last)
    close(w.median(), ssMedian(last), 1e-12, 'median')
    close(w.quantile(0.1), quantile(last, 0.1), 0.5, 'quantile (interpolation differs at most by one gap)')
    close(w.mad(w.median()), medianAbsoluteDeviation(last), 1e-12, 'MAD')
  }
  w.dropNewest(10)
  assert.deepEqual(w.values(), all.slice(-101, -10))
  assert.ok(Number.isNaN(new SlidingWindow(3).median()))
})

test('tails: the normal quantile in the centre and far in the tails; Poisson tails match direct sums', () => {
  close(normalQuantile(0.975), 1.959964, 1e-6, 'Φ⁻¹(0.975)')
  close(normalQuantile(1e-10), -6.361341, 1e-5, 'Φ⁻¹(1e-10)')
  close(zOfUpperTail(Math.log(2.866515718791939e-7)), 5, 1e-5, 'z of P(Z > 5)')
  assert.ok(Number.isFinite(zOfUpperTail(-2000)) && zOfUpperTail(-2000) > 60, 'far below 1e-300')
  const pmf = (k: number, l: number) => {
    let v = Math.exp(-l)
    for (let i = 1; i <= k; i++) v *= l / i
    return v
  }
  for (const [k, l] of [
    [0, 0.5],
    [3, 0.5],
    [12, 4],
    [4, 12],
  ] as const) {
    let upper = 0
    for (let i = k; i < 200; i++) upper += pmf(i, l)
    let lower = 0
    for (let i = 0; i <= k; i++) lower += pmf(i, l)
    close(Math.exp(poissonLogUpper(k, l)), upper, 1e-10, `P(Y ≥ ${k} | ${l})`)
    close(Math.exp(poissonLogLower(k, l)), lower, 1e-10, `P(Y ≤ ${k} | ${l})`)
  }
  assert.ok(poissonZ(30, 0.05) > 10, 'thirty events at 0.05 is far off')
  assert.ok(poissonZ(1, 0.05) < 2, 'one event at 0.05 is not')
  assert.ok(poissonZ(0, 20) < -3)
})

test('seasonal profile: each of the last three periods at the same phase, exact at the samples, gaps undefined', () => {
  const day = 86_400e6
  const step = 300e6
  const t0 = Date.UTC(2026, 0, 5) * 1000
  const p = new SeasonalProfile(day, step)
  assert.equal(p.bins, 288)
  const value = (t: number) => 100 * Math.floor((t - t0) / day) + ((t - t0) % day) / step
  for (let t = t0; t < t0 + 4 * day; t += step) {
    // day 2 has a missing afternoon
    const dayIndex = Math.floor((t - t0) / day)
    const hour = ((t - t0) % day) / 3600e6
    if (dayIndex === 2 && hour >= 12 && hour < 18) continue
    p.add(t, value(t))
  }
  const at = t0 + 4 * day + 100 * step
  // days 3, 2 and 1: value 300+100, 200+100, 100+100 (the sample there exactly)
  assert.deepEqual(p.previous(at), [400, 300, 200])
  const afternoon = t0 + 4 * day + 15 * 3600e6
  assert.deepEqual(p.previous(afternoon), [480, undefined, 280])
  // state round trip
  const q = SeasonalProfile.fromState(JSON.parse(JSON.stringify(p.toState())), day, step)
  assert.deepEqual(q.previous(at), p.previous(at))
})

test('series model: resolution from the written values; scores in [0, 1]; state round trip', () => {
  assert.equal(resolutionOf(42), 1)
  assert.equal(resolutionOf(42.5), 0.1)
  assert.equal(resolutionOf(0.3), 0.1)
  assert.equal(resolutionOf(0.125), 0.001)
  const p = new Prng(5)
  const t0 = Date.UTC(2026, 0, 5) * 1000
  const values = Array.from({ length: 3000 }, (_, i) => 10 + p.normal() + (i === 2500 ? 20 : 0))
  const a = new SeriesModel()
  const whole = values.map((v, i) => a.observe(t0 + i * 60e6, v)!)
  assert.ok(whole.every((x) => x.score >= 0 && x.score <= 1))
  assert.ok(whole[2500]!.score >= 0.5)
  // stopped after 2000 points and restored from its JSON state: the same assessments after
  const first = new SeriesModel()
  for (let i = 0; i < 2000; i++) first.observe(t0 + i * 60e6, values[i]!)
  const resumed = SeriesModel.fromState(JSON.parse(JSON.stringify(first.toState())))
  for (let i = 2000; i < 3000; i++)
    assert.deepEqual(resumed.observe(t0 + i * 60e6, values[i]!), whole[i], `point ${i}`)
  assert.equal(a.observe(t0, Number.NaN), undefined, 'non-finite values are skipped')
})
