/**
 * Run ids: the format (contract/run-id.ts), the engine stamping its own run id on spans and hardware
 * samples, a request's `breakid-run-id` header overriding it (and a bad one answered 400 without
 * running the request), the load generator sending it, and alerts taking the run id of the record
 * that raised them.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { isRunId, newRunId, RUN_ID_HEADER, RUN_ID_MAX_LENGTH } from '../../contract/run-id.ts'
import { DetectorConsumer } from '../../detectors/consumer.ts'
import { StarvationDetector } from '../../detectors/starvation/detector.ts'
import { runLoad } from '../../engine/loadgen.ts'
import { toKServeInputs, getModel } from '../../engine/models/zoo.ts'
import type { Alert } from '../../contract/records.ts'
import { codecs, TOPICS } from '../../contract/topics.ts'
import { makeHwSample } from '../../contract/synthetic.ts'
import { createLogger } from '../../core/logger.ts'
import { EmbeddedBus } from '../../bus/embedded-bus.ts'
import { parseRunIdFlag } from '../../app/flags.ts'
import { type EngineHarness, startEngineHarness } from '../helpers/engine-harness.ts'
import { series } from '../helpers/series.ts'

describe('run id format', () => {
  test('generated ids are valid, name their kind and time, and differ', () => {
    const a = newRunId('up', Date.UTC(2026, 10, 27, 0, 19, 29, 684))
    assert.match(a, /^up-20261127T001929Z-[0-9a-f]{4}$/)
    assert.ok(isRunId(a))
    const many = new Set(Array.from({ length: 50 }, () => newRunId('x', 0)))
    assert.ok(many.size > 40, 'the random suffix separates runs started in the same second')
  })
  test('valid and invalid ids', () => {
    for (const ok of ['a', 'exp-1.c03.r2', 'run:baseline', 'A_b-9', 'x'.repeat(RUN_ID_MAX_LENGTH)]) {
      assert.ok(isRunId(ok), ok)
    }
    for (const bad of [
      '',
      '-a',
      '.a',
      'a b',
      "a'b",
      'a/b',
      'é',
      'x'.repeat(RUN_ID_MAX_LENGTH + 1),
      5,
      null,
    ]) {
      assert.ok(!isRunId(bad), String(bad))
    }
  })
  test('--run-id: as given, generated when absent, a clear error when invalid', () => {
    assert.equal(parseRunIdFlag('main-123', 'up'), 'main-123')
    assert.match(parseRunIdFlag(undefined, 'serve'), /^serve-\d{8}T\d{6}Z-[0-9a-f]{4}$/)
    assert.throws(() => parseRunIdFlag('a b', 'up'), /--run-id: "a b": use letters/)
  })
})

describe('the engine tags telemetry with run ids', () => {
  let h: EngineHarness
  const body = JSON.stringify({ inputs: toKServeInputs(getModel('mlp').inputGenerator(1, 1)) })
  const infer = (headers: Record<string, string> = {}) =>
    h.app.inject({
      method: 'POST',
      url: '/v2/models/mlp/infer',
      headers: { 'content-type': 'application/json', ...headers },
      payload: body,
    })
  before(async () => {
    h = await startEngineHarness({ runId: 'engine-run' })
  })
  after(async () => h.close())

  test("spans carry the engine's run id, or the request header's", async () => {
    assert.equal((await infer()).statusCode, 200)
    assert.equal((await infer({ [RUN_ID_HEADER]: 'cell-7' })).statusCode, 200)
    const spans = await h.spans()
    assert.deepEqual(
      spans.map((s) => s.run_id),
      ['engine-run', 'cell-7'],
    )
  })

  test('an invalid header is a 400 naming it; the request does not run, its rejection is counted', async () => {
    const before = (await h.spans()).length
    const errorsBefore = h.engine.errors.get('BREAKID_INVALID_RUN_ID') ?? 0
    const res = await infer({ [RUN_ID_HEADER]: 'no spaces allowed' })
    assert.equal(res.statusCode, 400)
    assert.match(res.json().error, /breakid-run-id: use letters/)
    const long = await infer({ [RUN_ID_HEADER]: 'x'.repeat(RUN_ID_MAX_LENGTH + 1) })
    assert.equal(long.statusCode, 400)
    assert.match(long.json().error, /longer than 64/)
    assert.equal(h.engine.errors.get('BREAKID_INVALID_RUN_ID'), errorsBefore + 2)
    const spans = (await h.spans()).slice(before)
    assert.equal(spans.length, 2, 'each refused request still leaves a span')
    for (const s of spans) {
      assert.equal(s.status, 'client_error')
      assert.equal(s.error_class, 'BREAKID_INVALID_RUN_ID')
      assert.equal(s.run_id, 'engine-run', "a refused header is not stored: the engine's run id is")
      assert.equal(s.compute_us, 0)
    }
  })

  test('hardware samples carry the run id current when they are taken', async () => {
    assert.equal((await h.engine.sampler.tick()).run_id, 'engine-run')
    h.engine.runId = 'next-run'
    assert.equal((await h.engine.sampler.tick()).run_id, 'next-run')
    assert.equal((await infer()).statusCode, 200)
    assert.equal((await h.spans()).at(-1)!.run_id, 'next-run')
    h.engine.runId = 'engine-run'
  })

  test('the load generator sends its run id on every request', async () => {
    const address = await h.app.listen({ host: '127.0.0.1', port: 0 })
    const before = (await h.spans()).length
    const report = await runLoad({
      url: `${address}/v2/models/mlp/infer`,
      bodies: [body],
      ratePerSec: 200,
      durationMs: 100,
      runId: 'loadgen-a',
    })
    assert.equal(report.runId, 'loadgen-a')
    assert.ok(report.ok > 0)
    const spans = (await h.spans()).slice(before)
    assert.equal(spans.length, report.ok)
    assert.ok(spans.every((s) => s.run_id === 'loadgen-a'))
    await assert.rejects(
      runLoad({
        url: `${address}/v2/models/mlp/infer`,
        bodies: [body],
        ratePerSec: 1,
        durationMs: 1,
        runId: 'a b',
      }),
      /run id "a b"/,
    )
  })
})

test('an alert takes the run id of the record that raised it, and keeps it when it resolves', async () => {
  const bus = new EmbeddedBus({ retryDelayMs: 10 })
  const producer = bus.producer()
  const alerts: Alert[] = []
  const consumer = new DetectorConsumer({
    transport: bus,
    detectors: [new StarvationDetector()],
    logger: createLogger('silent'),
    onAlert: (a) => alerts.push(a),
  })
  await consumer.start()
  // steady (past warm-up), starved (fires), then recovered in another run (resolves)
  const busy = series('0.5x20 0.25x4 0.5x5')
  const inFlight = series('3x20 60x4 3x5')
  const queued = series('1x20 0x4 1x5')
  for (let i = 0; i < busy.length; i++) {
    const sample = makeHwSample(i, {
      timestamp_us: 1_767_225_600_000_000 + i * 1_000_000,
      executor_busy: busy[i]!,
      in_flight: inFlight[i]!,
      queue_depth: queued[i]!,
      run_id: i < 24 ? 'starved-run' : 'later-run',
    })
    await producer.send(TOPICS.hw, [{ key: sample.instance, value: codecs.hw.encode(sample) }])
  }
  await bus.drained(TOPICS.hw, 'breakid-detect')
  await consumer.stop()
  assert.deepEqual(
    alerts.map((a) => [a.type, a.status, a.run_id]),
    [
      ['accelerator_starved', 'firing', 'starved-run'],
      ['accelerator_starved', 'resolved', 'starved-run'],
    ],
  )
})
