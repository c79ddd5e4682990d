import assert from 'node:assert/strict'
import { test } from 'node:test'
import { MemoryLeakDetector } from '../../detectors/leak/detector.ts'
import type { Alert } from '../../contract/records.ts'
import { DetectorDriver, noise as uniform, T0_US } from '../helpers/detector-driver.ts'

const MB = 1_048_576

/** one hw sample per second; rss and heap (MB) given per step by functions of the step */
function run(
  n: number,
  rssMb: (i: number) => number,
  heapMb: (i: number) => number,
  // the slow rule's rules, not its 5-minute warm-up, are what these tests are about
  d = new MemoryLeakDetector({ slowWarmupMs: 0 }),
  from = 0,
): (Alert & { step: number })[] {
  const driver = new DetectorDriver(d, { startUs: T0_US + from * 1e6 })
  for (let i = from; i < n; i++) {
    driver.tick({ hw: { rss_bytes: Math.round(rssMb(i) * MB), heap_used_bytes: Math.round(heapMb(i) * MB) } })
  }
  return driver.alerts.map((r) => ({ ...r.alert, step: r.step + from }))
}

const noise = (seed: number, mb: number) => {
  const r = uniform(seed)
  return () => (r() - 0.5) * 2 * mb
}
/** a GC sawtooth: +2 MB a sample for 10 samples, then back down */
const sawtooth = (i: number) => 2 * (i % 10)

test('memory leak: heap and rss growing 0.5 MB/s under a GC sawtooth fire once, naming the heap', () => {
  const n1 = noise(1, 1)
  const n2 = noise(2, 0.5)
  const alerts = run(
    200,
    (i) => 300 + 0.5 * i + sawtooth(i) + n1(),
    (i) => 50 + 0.5 * i + sawtooth(i) + n2(),
  )
  assert.deepEqual(
    alerts.map((a) => [a.status, a.step]),
    [['firing', 63]], // 60 samples to judge (0..59), condition from 59, held 5 samples
  )
  const f = alerts[0]!
  assert.equal(f.type, 'memory_leak')
  assert.equal(f.dedup_key, 'memory_leak/test/engine-0')
  assert.equal(
    f.statistic,
    'heap_used_bytes_growth_bytes_per_hour',
    'the heap grows fastest relative to its size',
  )
  assert.ok(Math.abs(f.observed / MB - 1800) < 200, `slope ${f.observed / MB} MB/h`)
  assert.equal(f.severity, 'critical', 'the heap would double within the hour')
  assert.match(
    f.summary,
    /rss_bytes and heap_used_bytes keep growing|heap_used_bytes and rss_bytes keep growing/,
  )
})

test('memory leak: resolves when the growth stops', () => {
  const n1 = noise(3, 1)
  const grow = (i: number) => 300 + 0.5 * Math.min(i, 150)
  const alerts = run(
    400,
    (i) => grow(i) + n1(),
    () => 50,
  )
  assert.deepEqual(
    alerts.map((a) => a.status),
    ['firing', 'resolved'],
  )
  assert.ok(alerts[1]!.step > 150 && alerts[1]!.step < 300, `resolved at ${alerts[1]!.step}`)
  assert.match(alerts[0]!.suspected_cause, /native memory/, 'rss grows while the heap does not')
})

test('memory leak: a GC sawtooth without growth, flat noise and a one-off step stay quiet', () => {
  const n1 = noise(4, 2)
  const n2 = noise(5, 1)
  assert.deepEqual(
    run(
      400,
      (i) => 300 + sawtooth(i) + n1(),
      (i) => 50 + 3 * sawtooth(i) + n2(),
    ),
    [],
    'sawtooth',
  )
  const n3 = noise(6, 3)
  assert.deepEqual(
    run(
      400,
      () => 300 + n3(),
      () => 50,
    ),
    [],
    'noise',
  )
  const n4 = noise(7, 1)
  assert.deepEqual(
    run(
      400,
      (i) => (i < 150 ? 300 : 420) + n4(),
      () => 50,
    ),
    [],
    'one step (a model loaded)',
  )
  const n5 = noise(8, 1)
  assert.deepEqual(
    run(
      400,
      (i) => (i < 150 ? 300 : 300 + Math.min(i - 150, 20) * 6) + n5(),
      () => 50,
    ),
    [],
    'a short ramp to a new plateau (a cache filling)',
  )
})

test('memory leak: state survives a restart mid-alert', () => {
  const rss = (i: number) => 300 + 0.5 * Math.min(i, 150) + ((i * 7919) % 13) / 10
  const whole = run(400, rss, () => 50).map((a) => [a.status, a.step, a.id])
  assert.equal(whole.length, 2)
  const first = new MemoryLeakDetector({ slowWarmupMs: 0 })
  const before = run(100, rss, () => 50, first)
  const second = new MemoryLeakDetector({ slowWarmupMs: 0 })
  second.importState(JSON.parse(JSON.stringify(first.exportState())))
  const after = run(400, rss, () => 50, second, 100)
  assert.deepEqual(
    [...before, ...after].map((a) => [a.status, a.step, a.id]),
    whole,
  )
})

const KB = 1024

/**
 * One hw sample per second with a request-driven heap: every request allocates ~`perRequest` bytes
 * (±10 %) of garbage, collected every `gcEvery` samples (the heap drops back to its floor); `leak(i)`
 * bytes a second are retained for good. rss follows the heap 250 MB above it.
 */
function runHeap(
  n: number,
  opts: {
    arrivals?: (i: number) => number
    leak?: (i: number) => number
    gcEvery?: number
    perRequest?: number
    seed?: number
  } = {},
): (Alert & { step: number })[] {
  const { arrivals = () => 200, leak = () => 0, gcEvery = 60, perRequest = 2 * KB, seed = 1 } = opts
  const driver = new DetectorDriver(new MemoryLeakDetector())
  const r = uniform(seed)
  let retained = 0
  let garbage = 0
  for (let i = 0; i < n; i++) {
    if (i > 0 && i % gcEvery === 0) garbage = 0
    else if (i > 0) garbage += arrivals(i) * perRequest * (0.9 + 0.2 * r())
    retained += leak(i)
    const heap = Math.round(50 * MB + retained + garbage)
    driver.tick({ hw: { arrivals: arrivals(i), heap_used_bytes: heap, rss_bytes: 250 * MB + heap } })
  }
  return driver.alerts.map((x) => ({ ...x.alert, step: x.step }))
}

test('memory leak: the fast rule fires within two samples when the heap grows faster per request', () => {
  // 2 KB per request at 200 req/s; from sample 100 another 1 MB/s is retained: 2 + 1024/200 ≈ 7.1 KB
  // per request. The rule takes the median of the last 3 samples' growth: at 100 it is [2, 2, 7.1]
  // → 2 KB, at 101 [2, 7.1, 7.1] → 7.1 KB, above max(2 × baseline, baseline + 6σ) (held 1); at 102
  // held 2 = fastHoldSamples → fires at 102. No GC falls on 99–102 (they come every 60 samples).
  const alerts = runHeap(300, { leak: (i) => (i >= 100 ? MB : 0) })
  assert.deepEqual(
    alerts.map((a) => [a.status, a.step]),
    [['firing', 102]],
  )
  const f = alerts[0]!
  assert.equal(f.statistic, 'heap_used_bytes_growth_per_request')
  assert.ok(Math.abs(f.baseline - 2 * KB) < 0.05 * 2 * KB, `baseline ${f.baseline}`)
  assert.ok(Math.abs(f.observed - (2 * KB + MB / 200)) < 0.05 * 7 * KB, `observed ${f.observed}`)
  assert.ok(f.threshold >= 2 * f.baseline && f.threshold < f.observed, `threshold ${f.threshold}`)
  assert.equal(f.severity, 'critical', '1 MB/s on a ~50 MB heap doubles it within the hour')
})

test('memory leak: a load burst (arrivals doubling, same bytes per request) does not fire', () => {
  // the heap grows twice as fast for 30 s, but per request it grows as it always did
  assert.deepEqual(runHeap(300, { arrivals: (i) => (i >= 100 && i < 130 ? 400 : 200) }), [])
  assert.deepEqual(
    runHeap(300, { arrivals: (i) => (i >= 100 ? 400 : 200), seed: 2 }),
    [],
    'a lasting step in load',
  )
})

test('memory leak: a long GC sawtooth (170 rising samples, then a drop) without a leak stays quiet', () => {
  // a fixed 120-sample window sees only the rising half of each tooth, which looks exactly like a leak;
  // the slow rule waits for GCs and stretches its window over 2.5 GC periods instead
  assert.deepEqual(runHeap(900, { gcEvery: 171, perRequest: 1.5 * KB }), [], 'seed 1')
  assert.deepEqual(runHeap(900, { gcEvery: 171, perRequest: 1.5 * KB, seed: 2 }), [], 'seed 2')
  // the same sawtooth with 0.2 MB/s retained from sample 400: too little per request for the fast rule
  // (≈ 2.5 KB vs 1.5 KB), but the post-GC floors rise and the slow rule finds it: GCs 171 samples apart
  // are further apart than a chunk, so the floors are the heap at the GCs — 342, 513, 684 and 855 rise
  // over three cycles — and the verdict is held 5 samples
  const leaking = runHeap(900, {
    gcEvery: 171,
    perRequest: 1.5 * KB,
    seed: 2,
    leak: (i) => (i >= 400 ? 0.2 * MB : 0),
  })
  assert.deepEqual(
    leaking.slice(0, 1).map((a) => [a.status, a.step, a.statistic]),
    [['firing', 859, 'heap_used_bytes_growth_bytes_per_hour']],
  )
})

test('memory leak: a slow leak under a long GC sawtooth stays firing (no flapping) until it stops', () => {
  // chunk minima over a window that is not a whole number of GC periods rise in some windows and not
  // in others; once firing, the slow rule holds while the floors still grow (hysteresis)
  const alerts = runHeap(3000, {
    gcEvery: 171,
    perRequest: 1.5 * KB,
    seed: 2,
    leak: (i) => (i >= 400 && i < 2200 ? 0.2 * MB : 0),
  })
  const seen = alerts.map((a) => a.status)
  assert.deepEqual(seen, ['firing', 'resolved'], `alerts at ${alerts.map((a) => `${a.status}@${a.step}`)}`)
  assert.ok(alerts[1]!.step > 2200, 'resolves only after the leak stopped')
})

test('memory leak: when the load stops, a handful of arrivals next to other allocations is no leak per request', () => {
  // 200 req/s, 2 KB per request; then the load generator stops: 6 arrivals a second while the
  // process allocates 3 MB a second for something else (the summary, a query) — 512 KB per request
  const alerts = runHeap(200, {
    arrivals: (i) => (i >= 150 ? 6 : 200),
    leak: (i) => (i >= 150 ? 3 * MB : 0),
    gcEvery: 1000,
  })
  assert.deepEqual(alerts, [])
})

test('memory leak: a young process warming up (rss 450 → 670 MB in its first 70 s) is no leak', () => {
  // as measured in `breakid up` on a fresh process: floors rise while caches and pools fill
  const warmUp = (i: number) => 450 + Math.min(i, 70) * 3 + ((i * 7919) % 13) / 10
  const heap = (i: number) => 50 + sawtooth(i)
  assert.deepEqual(run(120, warmUp, heap, new MemoryLeakDetector()), [], 'default: judged after 5 min')
  assert.equal(
    run(120, warmUp, heap)[0]?.status,
    'firing',
    'control: without the slow warm-up the same growth fires',
  )
})
