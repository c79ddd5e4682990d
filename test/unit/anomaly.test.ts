import assert from 'node:assert/strict'
import { test } from 'node:test'
import { AnomalyDetector, type AnomalyOptions } from '../../detectors/anomaly/detector.ts'
import { makeHwSample } from '../../contract/synthetic.ts'
import { series } from '../helpers/series.ts'

/** mulberry32: a seeded PRNG, so the noise tests are reproducible */
function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function gaussian(rand: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand())
}

const T0 = 1_767_225_600_000_000

/** Feeds values one per `stepUs`; returns [status, step] for each alert. */
function run(values: number[], opts: AnomalyOptions = {}, stepUs = 1e6): [string, number][] {
  const d = new AnomalyDetector(opts)
  const out: [string, number][] = []
  values.forEach((v, i) => {
    for (const a of d.observe('col', T0 + i * stepUs, v)) out.push([a.status, i])
  })
  return out
}

/** the notation's values plus Gaussian noise of the given sigma */
function noisy(notation: string, sigma: number, seed = 7): number[] {
  const g = gaussian(prng(seed))
  return series(notation).map((v) => v + sigma * g())
}

test('anomaly: white noise of any scale and offset raises nothing', () => {
  for (const [scale, offset, seed] of [
    [1e-6, 0, 1],
    [1, 0, 2],
    [1, 1000, 3],
    [1e3, -5e3, 4],
    [1e9, 3e10, 5],
  ] as const) {
    const g = gaussian(prng(seed))
    const gauss = Array.from({ length: 3000 }, () => offset + scale * g())
    assert.deepEqual(run(gauss), [], `gaussian scale ${scale}`)
    const u = prng(seed + 100)
    const uniform = Array.from({ length: 3000 }, () => offset + scale * (u() - 0.5))
    assert.deepEqual(run(uniform), [], `uniform scale ${scale}`)
  }
})

test('anomaly: a level shift fires at its first sample and resolves once adopted as the new normal', () => {
  const d = new AnomalyDetector()
  const values = noisy('10x200 16x100', 1) // a 6σ shift: below the single-value threshold
  const alerts = values.flatMap((v, i) => d.observe('col', T0 + i * 1e6, v).map((a) => ({ ...a, step: i })))
  assert.deepEqual(
    alerts.map((a) => [a.status, a.step]),
    [
      ['firing', 204], // five shifted samples in a row (200..204)
      ['resolved', 263], // adopted at 259 (60 values since the onset); 260 is noise above zExit, clear 261..263
    ],
  )
  const firing = alerts[0]!
  assert.equal(firing.type, 'anomaly')
  assert.equal(firing.statistic, 'col')
  assert.equal(firing.starts_at_us, T0 + 200 * 1e6, 'starts at the first shifted sample')
  assert.equal(firing.updated_at_us, T0 + 204 * 1e6)
  assert.ok(Math.abs(firing.baseline - 10) < 0.5)
  assert.match(firing.summary, /level shift up/)
  assert.equal(firing.severity, 'warning')
  assert.equal(alerts[1]!.id, firing.id, 'resolved carries the firing id')
})

test('anomaly: a shift of 10σ fires on its first value', () => {
  assert.deepEqual(run(noisy('10x200 20x100', 1))[0], ['firing', 200])
})

test('anomaly: a shift that returns before adoption resolves by hysteresis', () => {
  assert.deepEqual(run(noisy('10x200 16x20 10x30', 1)), [
    ['firing', 204],
    ['resolved', 222],
  ])
})

test('anomaly: a single spike fires at once and resolves after 3 normal samples', () => {
  assert.deepEqual(run(noisy('10x200 40x1 10x20', 1)), [
    ['firing', 200],
    ['resolved', 203],
  ])
  // a down spike too
  assert.deepEqual(run(noisy('10x200 -20x1 10x20', 1)), [
    ['firing', 200],
    ['resolved', 203],
  ])
})

test('anomaly: a short excursion below the spike threshold does not fire (hold time)', () => {
  assert.deepEqual(run(noisy('10x200 16x4 10x30', 1)), [])
})

test('anomaly: nothing during warm-up', () => {
  assert.deepEqual(run(noisy('10x20 50x5 10x5', 1)), [])
})

test('anomaly: sampling-interval agnostic — 5-minute samples alert at the same samples as 1-second ones', () => {
  const values = noisy('10x200 16x100', 1)
  assert.deepEqual(run(values, {}, 300e6), run(values, {}, 1e6))
})

test('anomaly: a sparse series (mostly 0, sometimes 5) is quiet until it leaves its range', () => {
  const sparse: number[] = Array.from({ length: 400 }, (_, i) => (i % 17 === 0 ? 5 : 0))
  assert.deepEqual(run(sparse), [])
  sparse[300] = 60
  assert.deepEqual(run(sparse), [
    ['firing', 300],
    ['resolved', 303],
  ])
})

test('anomaly: a constant series that changes is a break', () => {
  assert.deepEqual(run(series('3x100 4x10 3x10')), [
    ['firing', 100],
    ['resolved', 112], // back to 3 at 110, clear for 3 samples
  ])
})

test('anomaly: seasonal-naive mode finds a shift hidden inside the seasonal range', () => {
  const g = gaussian(prng(11))
  const values = Array.from({ length: 480 }, (_, i) => 50 + 20 * Math.sin((2 * Math.PI * i) / 24) + 0.5 * g())
  assert.deepEqual(run(values, { seasonPeriodSamples: 24 }), [], 'the cycle alone is quiet')
  // +8 over samples 400..409, at the cycle's trough (the raw values stay inside the seasonal range)
  for (let i = 400; i < 410; i++) values[i]! += 8
  assert.deepEqual(run(values), [], 'without the season the values look ordinary')
  const alerts = run(values, { seasonPeriodSamples: 24 })
  assert.deepEqual(alerts[0], ['firing', 400], '+8 against a residual σ of ~0.7 is a sudden jump')
})

test('anomaly: onHwSample watches every numeric field; a step in rss is named', () => {
  const d = new AnomalyDetector()
  const g = gaussian(prng(3))
  const alerts = []
  for (let i = 0; i < 120; i++) {
    alerts.push(
      ...d.onHwSample(
        makeHwSample(i, {
          rss_bytes: (i < 100 ? 300e6 : 600e6) + 1e6 * g(),
          heap_used_bytes: 50e6 + 1e5 * g(),
          process_cpu: 0.8 + 0.01 * g(),
          arrivals: 200 + 5 * g(),
          completions: 200 + 5 * g(),
          executor_busy: 0.6 + 0.01 * g(),
          event_loop_delay_p99_ms: 2 + 0.1 * g(),
          gc_ms: 1 + 0.1 * g(),
        }),
      ),
    )
  }
  assert.deepEqual(
    alerts.map((a) => [a.statistic, a.status, a.instance]),
    [['rss_bytes', 'firing', 'engine-0']],
  )
})

test('anomaly: state survives a restart — the resumed detector alerts like an uninterrupted one', () => {
  const values = noisy('10x200 16x100', 1)
  const whole = run(values)
  assert.equal(whole.length, 2)
  const a = new AnomalyDetector()
  const out: [string, number][] = []
  const feed = (d: AnomalyDetector, from: number, to: number) => {
    for (let i = from; i < to; i++)
      for (const x of d.observe('col', T0 + i * 1e6, values[i]!)) out.push([x.status, i])
  }
  feed(a, 0, 150)
  const b = new AnomalyDetector()
  b.importState(JSON.parse(JSON.stringify(a.exportState())))
  feed(b, 150, 300)
  assert.deepEqual(out, whole)
  // and in the middle of a firing alert
  const c = new AnomalyDetector()
  out.length = 0
  feed(c, 0, 230)
  const e = new AnomalyDetector()
  e.importState(JSON.parse(JSON.stringify(c.exportState())))
  feed(e, 230, 300)
  assert.deepEqual(out, whole)
})
