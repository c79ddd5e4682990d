import assert from 'node:assert/strict'
import { test } from 'node:test'
import { MemoryLeakDetector } from '../../detectors/leak/detector.ts'
import type { Alert } from '../../ingest/contract/records.ts'
import { makeHwSample } from '../helpers/records.ts'

const MB = 1_048_576

/** mulberry32 */
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

/** one hw sample per second; rss and heap (MB) given per step by functions of the step */
function run(
  n: number,
  rssMb: (i: number) => number,
  heapMb: (i: number) => number,
  d = new MemoryLeakDetector(),
  from = 0,
): (Alert & { step: number })[] {
  const out: (Alert & { step: number })[] = []
  for (let i = from; i < n; i++) {
    const sample = makeHwSample(i, {
      rss_bytes: Math.round(rssMb(i) * MB),
      heap_used_bytes: Math.round(heapMb(i) * MB),
    })
    for (const a of d.onHwSample(sample)) out.push({ ...a, step: i })
  }
  return out
}

const noise = (seed: number, mb: number) => {
  const r = prng(seed)
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
  const first = new MemoryLeakDetector()
  const before = run(100, rss, () => 50, first)
  const second = new MemoryLeakDetector()
  second.importState(JSON.parse(JSON.stringify(first.exportState())))
  const after = run(400, rss, () => 50, second, 100)
  assert.deepEqual(
    [...before, ...after].map((a) => [a.status, a.step, a.id]),
    whole,
  )
})
