import assert from 'node:assert/strict'
import { test } from 'node:test'
import { EventLoopBlockedDetector } from '../../detectors/event-loop/detector.ts'
import type { Alert } from '../../contract/records.ts'
import { makeHwSample, makeSpan } from '../../contract/synthetic.ts'
import { series } from '../helpers/series.ts'

const T0 = 1_767_225_600_000_000

/** one sample per second: event-loop p99 delay (ms) and GC ms per step */
function run(delay: string, gc = '', d = new EventLoopBlockedDetector()) {
  const dl = series(delay)
  const g = gc ? series(gc) : dl.map(() => 1)
  const alerts: (Alert & { step: number })[] = []
  dl.forEach((v, step) => {
    d.onSpan(
      makeSpan(step, {
        request_id: `req-${step}`,
        total_us: 1000 * (step + 1),
        timestamp_us: T0 + step * 1e6,
      }),
    )
    const sample = makeHwSample(step, {
      event_loop_delay_p99_ms: v,
      gc_ms: g[step]!,
      timestamp_us: T0 + step * 1e6,
    })
    for (const a of d.onHwSample(sample)) alerts.push({ ...a, step })
  })
  return { at: alerts.map((a) => [a.status, a.step]), alerts, d }
}

test('a blocked event loop fires after 2 samples and resolves after 3 clear', () => {
  const { at, alerts } = run('2x15 400x5 2x5')
  assert.deepEqual(at, [
    ['firing', 16],
    ['resolved', 22],
  ])
  const a = alerts[0]!
  assert.equal(a.type, 'event_loop_blocked')
  assert.equal(a.baseline, 2)
  assert.equal(a.threshold, 100, 'the absolute floor dominates a quiet loop')
  assert.equal(a.observed, 400)
  assert.equal(a.severity, 'warning')
  assert.deepEqual(a.exemplar_request_ids, ['req-16', 'req-15', 'req-14'], 'slowest requests')
  assert.match(a.suspected_cause, /synchronous CPU work/)
})

test('above 1 s it is critical, and heavy GC is named as the cause', () => {
  const { alerts } = run('2x15 1500x3', '1x15 600x3')
  assert.equal(alerts[0]!.severity, 'critical')
  assert.match(alerts[0]!.suspected_cause, /garbage collection/)
})

test('a relative rise below the absolute floor does not fire (2 → 40 ms)', () => {
  assert.deepEqual(run('2x15 40x8').at, [])
})

test('a loop that always lags ~150 ms needs 5× its baseline, not just 100 ms', () => {
  assert.deepEqual(run('150x15 400x5').at, [])
  assert.deepEqual(
    run('150x15 900x5').at.map((r) => r[0]),
    ['firing'],
  )
})

test('warm-up, one-sample blips, and state round-trip', () => {
  assert.deepEqual(run('2x3 400x5').at, [])
  assert.deepEqual(run('2x15 400 2x5').at, [])
  const warm = run('2x15').d
  const restored = new EventLoopBlockedDetector()
  restored.importState(JSON.parse(JSON.stringify(warm.exportState())) as Record<string, unknown>)
  assert.deepEqual(run('400x3', '', restored).at, [['firing', 1]])
  assert.deepEqual(run('400x3').at, [], 'control: cold')
})
