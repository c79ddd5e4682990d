/**
 * The generic `anomaly` detector, time-stepped: every series is fed point by point with its own
 * event timestamps (no clocks, no sleeps) and the alert transitions are asserted at their points.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { makeHwSample } from '../../contract/synthetic.ts'
import { AnomalyDetector, type AnomalyOptions } from '../../detectors/anomaly/detector.ts'
import { Prng } from '../../eval/prng.ts'
import { series } from '../helpers/series.ts'

/** 2026-01-05T00:00:00Z, a Monday */
const T0 = Date.UTC(2026, 0, 5) * 1000
const MIN = 60e6

interface Run {
  /** [status, index] per alert transition */
  alerts: [string, number][]
  scores: number[]
  summaries: string[]
}

/** Feeds values one per `stepUs` (or at the given timestamps). */
function run(
  values: readonly number[],
  opts: AnomalyOptions = {},
  stepUs = MIN,
  times?: readonly number[],
): Run {
  const d = new AnomalyDetector(opts)
  const out: Run = { alerts: [], scores: [], summaries: [] }
  values.forEach((v, i) => {
    const r = d.assess('col', times?.[i] ?? T0 + i * stepUs, v)
    out.scores.push(r.assessment?.score ?? 0)
    for (const a of r.alerts) {
      out.alerts.push([a.status, i])
      if (a.status === 'firing') out.summaries.push(a.summary)
    }
  })
  return out
}

const firings = (r: Run) => r.alerts.filter(([s]) => s === 'firing').map(([, i]) => i)

/** a smooth daily cycle every `stepMin` minutes with Gaussian noise */
function dailyCycle(days: number, stepMin: number, seed: number, noise = 0.5): number[] {
  const p = new Prng(seed)
  const n = Math.round((days * 24 * 60) / stepMin)
  return Array.from({ length: n }, (_, i) => {
    const hour = ((i * stepMin) / 60) % 24
    return 50 + 20 * Math.sin((2 * Math.PI * hour) / 24) + noise * p.normal()
  })
}

test('anomaly: white noise of any scale and offset raises nothing', () => {
  for (const [scale, offset, seed] of [
    [1e-6, 0, 1],
    [1, 0, 2],
    [1, 1000, 3],
    [1e3, -5e3, 4],
    [1e9, 3e10, 5],
  ] as const) {
    const p = new Prng(seed)
    const gauss = Array.from({ length: 3000 }, () => offset + scale * p.normal())
    assert.deepEqual(run(gauss).alerts, [], `gaussian scale ${scale}`)
    const uniform = Array.from({ length: 3000 }, () => offset + scale * (p.next() - 0.5))
    assert.deepEqual(run(uniform).alerts, [], `uniform scale ${scale}`)
  }
})

test('anomaly: a smooth seasonal series with one injected break raises one alert, at the break, and none elsewhere', () => {
  for (const [stepMin, seed] of [
    [5, 11],
    [15, 12],
    [60, 13],
  ] as const) {
    const values = dailyCycle(stepMin === 60 ? 40 : 12, stepMin, seed)
    assert.deepEqual(run(values, {}, stepMin * MIN).alerts, [], `${stepMin}-minute cycle alone`)
    const at = Math.floor(values.length * 0.7)
    // a break of 8 noise σ, small next to the 40-unit daily swing: only phase-to-phase comparison sees it
    const broken = values.map((v, i) => (i >= at ? v + 4 : v))
    const r = run(broken, {}, stepMin * MIN)
    assert.deepEqual(firings(r), [at], `${stepMin}-minute cycle: ${JSON.stringify(r.alerts)}`)
    assert.match(r.summaries[0]!, /(daily|weekly) pattern/)
  }
})

test('anomaly: a spike of similar height recurring every 7 hours stops paging after a few times; a bigger one still pages', () => {
  const p = new Prng(21)
  const every = 7 * 60 // one-minute samples
  const n = 6 * 24 * 60
  const values = Array.from({ length: n }, (_, i) => 20 + p.normal() + (i % every < 5 && i > 0 ? 30 : 0))
  const spikes = values.map((_, i) => i).filter((i) => i % every === 0 && i > 0)
  const quiet = run(values)
  const paged = firings(quiet)
  assert.ok(
    paged.length >= 1 && paged.length <= 3,
    `pages ${paged.length} times (${paged}) of ${spikes.length} spikes`,
  )
  const lastPaged = paged.at(-1)!
  assert.ok(spikes.filter((s) => s > lastPaged).length >= 8, 'the later recurrences are normal')
  // a spike three times as high, late in the series, is news
  const big = spikes.at(-3)!
  for (let i = big; i < big + 5; i++) values[i] = 20 + 90
  assert.ok(firings(run(values)).includes(big), 'the bigger spike pages')
})

test('anomaly: a flat quantised series: a one-unit step is no surprise, a jump is', () => {
  // replicas: flat at 4, planned scale steps of one, then all replicas gone for a while
  const values = series('4x400 5x300 4x300 0x20 4x200')
  const r = run(values, {}, 10 * MIN)
  // the planned steps taught it that changes here persist: 4 → 0 pages once it has held a little
  assert.equal(firings(r).length, 1, JSON.stringify(r.alerts))
  assert.ok(firings(r)[0]! >= 1000 && firings(r)[0]! <= 1012, JSON.stringify(r.alerts))
  // a flat float series: the first change of one step is not infinite
  assert.deepEqual(run(series('42.5x1300 42.6x200')).alerts, [])
  assert.deepEqual(firings(run(series('42.5x1300 60x50'))), [1300])
})

test('anomaly: sparse counts — Poisson noise is quiet, a sustained rise is one alert, a burst of normal size is not', () => {
  const p = new Prng(31)
  const n = 8000
  const base = Array.from({ length: n }, () => p.poisson(0.05))
  assert.deepEqual(run(base).alerts, [], 'errors at 0.05 a minute')
  // errors in most minutes for half an hour: no single minute is extreme
  const elevated = base.map((v, i) => (i >= 5000 && i < 5030 ? p.poisson(1.5) : v))
  const fired = firings(run(elevated))
  assert.equal(fired.length, 1, `${fired}`)
  assert.ok(fired[0]! >= 5000 && fired[0]! < 5020, `in the first twenty minutes of the rise: ${fired[0]}`)
})

test('anomaly: a slow trend and a trend with a daily cycle raise nothing', () => {
  const p = new Prng(41)
  const n = 6000
  const trend = Array.from({ length: n }, (_, i) => 100 + i * 0.05 + p.normal())
  assert.deepEqual(run(trend).alerts, [])
  const cycle = dailyCycle(20, 5, 42).map((v, i) => v + i * 0.004)
  assert.deepEqual(run(cycle, {}, 5 * MIN).alerts, [])
})

test('anomaly: one alert per episode — a rough episode fires once, a shift that stays is adopted and resolves', () => {
  const p = new Prng(51)
  const values = Array.from({ length: 3000 }, () => 100 + p.normal())
  // an episode whose deviation wanders between 3σ and 8σ for 40 points
  for (let i = 2000; i < 2040; i++) values[i] = 100 + 3 + 5 * Math.abs(Math.sin(i / 3)) + p.normal()
  const r = run(values)
  assert.equal(firings(r).length, 1, JSON.stringify(r.alerts))
  assert.ok(firings(r)[0]! >= 2000 && firings(r)[0]! <= 2002, JSON.stringify(r.alerts))
  // a shift that stays: fires once, becomes normal after 64 points, never fires again
  const shifted = Array.from({ length: 3000 }, (_, i) => 100 + p.normal() + (i >= 2000 ? 12 : 0))
  const s = run(shifted)
  assert.equal(s.alerts.length, 2, JSON.stringify(s.alerts))
  assert.deepEqual(s.alerts[0], ['firing', 2000])
  assert.equal(s.alerts[1]![0], 'resolved')
  assert.ok(s.alerts[1]![1] <= 2000 + 64, `resolved at ${s.alerts[1]![1]}`)
})

test('anomaly: quiet time — a second spike right after the first episode resolves does not page again', () => {
  const p = new Prng(61)
  const values = Array.from({ length: 2000 }, () => 10 + p.normal())
  values[1500] = 40
  values[1520] = 40
  values[1700] = 60
  const r = run(values)
  assert.deepEqual(firings(r), [1500, 1700], JSON.stringify(r.alerts))
})

test('anomaly: probation — nothing before a day or 1000 points has been seen, scores are 0 there', () => {
  const p = new Prng(71)
  // one-second samples: probation ends after 1000 points
  const values = Array.from({ length: 1500 }, () => 10 + p.normal())
  values[500] = 100
  values[1200] = 100
  const r = run(values, {}, 1e6)
  assert.deepEqual(firings(r), [1200])
  assert.equal(r.scores.slice(0, 1000).filter((s) => s !== 0).length, 0, 'no score in probation')
  assert.ok(r.scores[1200]! >= 0.5 && r.scores[1200]! <= 1, `score ${r.scores[1200]}`)
  // hourly samples: at least 150 points (a day would be 24)
  const hourly = Array.from({ length: 400 }, () => 10 + p.normal())
  hourly[100] = 100
  hourly[300] = 100
  assert.deepEqual(firings(run(hourly, {}, 3600e6)), [300])
})

test('anomaly: irregular timestamps and missing intervals do not page by themselves', () => {
  const p = new Prng(81)
  const times: number[] = []
  let t = T0
  for (let i = 0; i < 5000; i++) {
    t += (30 + 24 * (p.next() - 0.5)) * 1e6 + (i % 1500 === 700 ? 3 * 3600e6 : 0)
    times.push(t)
  }
  const values = times.map((ts) => 50 + 10 * Math.sin((2 * Math.PI * ((ts / 3600e6) % 24)) / 24) + p.normal())
  assert.deepEqual(run(values, {}, 0, times).alerts, [])
})

test('anomaly: onHwSample watches the configured fields; a step in rss is named', () => {
  const d = new AnomalyDetector({ hwFields: ['rss_bytes', 'heap_used_bytes', 'process_cpu'] })
  const p = new Prng(3)
  const alerts = []
  for (let i = 0; i < 1200; i++) {
    alerts.push(
      ...d.onHwSample(
        makeHwSample(i, {
          rss_bytes: (i < 1100 ? 300e6 : 600e6) + 1e6 * p.normal(),
          heap_used_bytes: 50e6 + 1e5 * p.normal(),
          process_cpu: 0.8 + 0.01 * p.normal(),
        }),
      ),
    )
  }
  assert.deepEqual(
    alerts.filter((a) => a.status === 'firing').map((a) => [a.statistic, a.instance]),
    [['rss_bytes', 'engine-0']],
  )
})

test('anomaly: state survives a restart — the resumed detector alerts like an uninterrupted one', () => {
  const values = dailyCycle(6, 5, 91).map((v, i) => (i >= 1400 ? v + 5 : v))
  values[1000] = values[1000]! + 30
  const whole = run(values, {}, 5 * MIN).alerts
  assert.ok(whole.length >= 3, JSON.stringify(whole))
  for (const cut of [700, 1001, 1405]) {
    const out: [string, number][] = []
    const feed = (d: AnomalyDetector, from: number, to: number) => {
      for (let i = from; i < to; i++)
        for (const a of d.observe('col', T0 + i * 5 * MIN, values[i]!)) out.push([a.status, i])
    }
    const a = new AnomalyDetector()
    feed(a, 0, cut)
    const b = new AnomalyDetector()
    b.importState(JSON.parse(JSON.stringify(a.exportState())))
    feed(b, cut, values.length)
    assert.deepEqual(out, whole, `cut at ${cut}`)
  }
})
