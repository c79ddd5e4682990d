import assert from 'node:assert/strict'
import { test } from 'node:test'
import { EventLoopBlockedDetector } from '../../detectors/event-loop/detector.ts'
import { DetectorDriver } from '../helpers/detector-driver.ts'

/** one sample per second: event-loop p99 delay (ms) and GC ms per step, after one span each */
function run(delay: string, gc = '', d = new DetectorDriver(new EventLoopBlockedDetector())) {
  d.run(gc ? { event_loop_delay_p99_ms: delay, gc_ms: gc } : { event_loop_delay_p99_ms: delay }, {
    spansPerStep: 1,
    span: (i) => ({ request_id: `req-${i}`, total_us: 1000 * (i + 1) }),
  })
  return d
}

test('a blocked event loop fires after 2 samples and resolves after 3 clear', () => {
  const d = run('2x15 400x5 2x5')
  assert.deepEqual(d.transitions(), [
    ['firing', 16],
    ['resolved', 22],
  ])
  const a = d.alerts[0]!.alert
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
  assert.equal(alerts[0]!.alert.severity, 'critical')
  assert.match(alerts[0]!.alert.suspected_cause, /garbage collection/)
})

test('a relative rise below the absolute floor does not fire (2 → 40 ms)', () => {
  assert.deepEqual(run('2x15 40x8').alerts, [])
})

test('a loop that always lags ~150 ms needs 5× its baseline, not just 100 ms', () => {
  assert.deepEqual(run('150x15 400x5').alerts, [])
  assert.deepEqual(
    run('150x15 900x5').alerts.map((r) => r.alert.status),
    ['firing'],
  )
})

test('warm-up, one-sample blips, and state round-trip', () => {
  assert.deepEqual(run('2x3 400x5').alerts, [])
  assert.deepEqual(run('2x11 400x3').alerts, [], 'eleven samples of baseline are not 15 s of warm-up')
  assert.deepEqual(run('2x15 400 2x5').alerts, [])
  const warm = run('2x15')
  const restored = new EventLoopBlockedDetector()
  restored.importState(
    JSON.parse(JSON.stringify(warm.detectors[0]!.exportState!())) as Record<string, unknown>,
  )
  assert.deepEqual(
    run('400x3', '', new DetectorDriver(restored, { startUs: warm.at(warm.step) })).transitions(),
    [['firing', 1]],
  )
  assert.deepEqual(run('400x3').alerts, [], 'control: cold')
})
