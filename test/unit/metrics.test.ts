/**
 * GET /metrics: the Triton-named counters, histograms and the executor busy gauge recorded from spans,
 * checked by parsing the Prometheus text exposition (HELP/TYPE before samples, cumulative buckets,
 * +Inf = _count, _sum) — on the recorder fed known spans, and end to end on a real engine.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { testEngine } from '../helpers/engine-harness.ts'
import { buildEngineApp } from '../../engine/http.ts'
import { getModel, toKServeInputs } from '../../engine/models/zoo.ts'
import { DURATION_BUCKETS_US, MetricsRecorder } from '../../engine/telemetry/metrics-recorder.ts'
import { makeSpan } from '../../contract/synthetic.ts'
import { checkHistogram, parseExposition, value } from '../helpers/prometheus.ts'

describe('metrics recorder', () => {
  test('past maxModels distinct names, new names fold into _unknown: the series stay bounded', () => {
    const rec = new MetricsRecorder({ executors: () => [], maxModels: 3 })
    try {
      for (let i = 0; i < 50; i++) rec.observe(makeSpan(i, { model: `m${i}`, status: 'client_error' }))
      const e = parseExposition(rec.render())
      const models = new Set(e.samples.map((s) => s.labels.model))
      assert.deepEqual([...models].sort(), ['_unknown', 'm0', 'm1', 'm2'])
      assert.equal(value(e, 'nv_inference_request_failure', { model: '_unknown' }), 47)
    } finally {
      rec.stop()
    }
  })

  test('Triton counters and histograms from known spans', () => {
    const rec = new MetricsRecorder({ executors: () => [] })
    try {
      // 3 batches of mlp v1: b-0 (4 requests, 4 rows), b-1 (2 requests of a batch of 2), b-2 (1 request)
      const ok = [
        ...[0, 1, 2, 3].map((i) =>
          makeSpan(i, { batch_id: 'b-0', batch_size: 4, total_us: 800, queue_wait_us: 300, compute_us: 400 }),
        ),
        ...[4, 5].map((i) =>
          makeSpan(i, {
            batch_id: 'b-1',
            batch_size: 2,
            total_us: 3000,
            queue_wait_us: 1200,
            compute_us: 1500,
          }),
        ),
        makeSpan(6, {
          batch_id: 'b-2',
          batch_size: 1,
          total_us: 20_000_000,
          queue_wait_us: 50,
          compute_us: 90,
        }),
        // a cache hit: a success, but no execution
        makeSpan(7, {
          batch_id: '',
          batch_size: 0,
          cache_hit: true,
          total_us: 90,
          queue_wait_us: 0,
          compute_us: 0,
        }),
      ]
      const failed = [
        makeSpan(8, { status: 'client_error', error_class: 'BREAKID_INVALID_INPUT', batch_id: '' }),
        makeSpan(9, { status: 'server_error', error_class: 'BREAKID_QUEUE_FULL', batch_id: '' }),
      ]
      const v2 = makeSpan(10, { model_version: '2', batch_id: 'b-0', batch_size: 3 })
      for (const s of [...ok, ...failed, v2]) rec.observe(s)

      const e = parseExposition(rec.render())
      const mlp1 = { model: 'mlp', version: '1' }
      assert.equal(value(e, 'nv_inference_request_success', mlp1), 8)
      assert.equal(value(e, 'nv_inference_request_failure', mlp1), 2)
      assert.equal(value(e, 'nv_inference_exec_count', mlp1), 3, 'one execution per distinct batch')
      assert.equal(value(e, 'nv_inference_count', mlp1), 4 + 2 + 1, 'rows of the executions')
      assert.equal(value(e, 'nv_inference_request_duration_us', mlp1), 4 * 800 + 2 * 3000 + 20_000_000 + 90)
      assert.equal(value(e, 'nv_inference_queue_duration_us', mlp1), 4 * 300 + 2 * 1200 + 50)
      // makeSpan(0) is a cache hit (i % 7 === 0) like span 7: the model ran for six requests
      assert.equal(value(e, 'nv_inference_compute_infer_duration_us', mlp1), 3 * 400 + 2 * 1500 + 90)
      // the same batch id under another version is its own execution
      assert.equal(value(e, 'nv_inference_exec_count', { model: 'mlp', version: '2' }), 1)
      assert.equal(value(e, 'nv_inference_count', { model: 'mlp', version: '2' }), 3)
      for (const name of ['nv_inference_request_success', 'nv_inference_count', 'nv_inference_exec_count'])
        assert.equal(e.types.get(name), 'counter')
      // Triton's compute input/output are the preprocess/postprocess stages (makeSpan: 40 + i % 11, 15)
      assert.equal(value(e, 'nv_inference_compute_input_duration_us', mlp1), 6 * 40 + (1 + 2 + 3 + 4 + 5 + 6))
      assert.equal(value(e, 'nv_inference_compute_output_duration_us', mlp1), 6 * 15)

      // the statistics extension from the same counters, in ns
      const st = rec.statistics('mlp', '1')
      assert.deepEqual([st.inference_count, st.execution_count], [7, 3])
      assert.deepEqual(st.inference_stats.success, {
        count: 8,
        ns: (4 * 800 + 2 * 3000 + 20_000_000 + 90) * 1000,
      })
      assert.equal(st.inference_stats.fail.count, 2)
      assert.deepEqual(st.inference_stats.compute_infer, { count: 6, ns: (3 * 400 + 2 * 1500 + 90) * 1000 })
      assert.equal(st.inference_stats.cache_hit.count, 2)
      assert.deepEqual(
        st.batch_stats.map((b) => [b.batch_size, b.compute_infer.count, b.compute_infer.ns]),
        [
          [1, 1, 90_000],
          [2, 1, 1_500_000],
          [4, 1, 400_000],
        ],
      )
      assert.equal(rec.statistics('mlp', '9').execution_count, 0, 'a version that served nothing: zeros')

      const req = checkHistogram(e, 'breakid_request_duration_us', mlp1)
      assert.equal(req.count, 8)
      assert.equal(req.sum, 4 * 800 + 2 * 3000 + 20_000_000 + 90)
      const le = (b: string) => req.buckets.find((x) => x.labels.le === b)!.value
      assert.equal(le('100'), 1, 'the 90 µs cache hit')
      assert.equal(le('500'), 1)
      assert.equal(le('1000'), 5, '+ four at 800 µs')
      assert.equal(le('2500'), 5)
      assert.equal(le('5000'), 7, '+ two at 3 ms')
      assert.equal(le(String(DURATION_BUCKETS_US.at(-1))), 7, '20 s is above the largest bound')
      assert.equal(le('+Inf'), 8)
      checkHistogram(e, 'breakid_queue_duration_us', mlp1)
      checkHistogram(e, 'breakid_compute_duration_us', mlp1)
      const batch = checkHistogram(e, 'breakid_batch_size', mlp1)
      assert.equal(batch.count, 3)
      assert.equal(batch.sum, 7)
      assert.equal(batch.buckets.find((x) => x.labels.le === '1')!.value, 1)
      assert.equal(batch.buckets.find((x) => x.labels.le === '2')!.value, 2)
      assert.equal(batch.buckets.find((x) => x.labels.le === '4')!.value, 3)
    } finally {
      rec.stop()
    }
  })

  test('an execution counts once while its batch id is among the last recentBatches; older ids are forgotten', () => {
    const rec = new MetricsRecorder({ executors: () => [], recentBatches: 3 })
    try {
      const span = (i: number, batch: string) => makeSpan(i, { batch_id: batch, batch_size: 2 })
      const executions = () =>
        value(parseExposition(rec.render()), 'nv_inference_exec_count', { model: 'mlp' })
      // b-0 … b-4, two requests each, the second of each batch after the next batch began
      let i = 0
      for (let b = 0; b < 5; b++) {
        rec.observe(span(i++, `b-${b}`))
        if (b > 0) rec.observe(span(i++, `b-${b - 1}`))
      }
      rec.observe(span(i++, 'b-4'))
      assert.equal(executions(), 5)
      // b-2, b-3, b-4 are remembered; b-1 was forgotten (a late request of it counts again)
      rec.observe(span(i++, 'b-2'))
      assert.equal(executions(), 5)
      rec.observe(span(i++, 'b-1'))
      assert.equal(executions(), 6)
      // and the window moved on: b-2 is now the oldest forgotten
      rec.observe(span(i++, 'b-2'))
      assert.equal(executions(), 7)
    } finally {
      rec.stop()
    }
  })

  test('executor busy ratio: busy µs gained over wall time between samples', () => {
    const readings = [{ model: 'mlp', version: '1', busyUs: 0 }]
    const rec = new MetricsRecorder({ executors: () => readings, busyIntervalMs: 3_600_000 })
    try {
      rec.sampleBusy(1_000) // baseline
      let e = parseExposition(rec.render())
      assert.equal(e.types.get('breakid_executor_busy_ratio'), 'gauge')
      assert.equal(
        e.samples.filter((s) => s.name === 'breakid_executor_busy_ratio').length,
        0,
        'no ratio before a baseline',
      )
      readings[0]!.busyUs = 250_000 // 250 ms busy in the next second
      rec.sampleBusy(2_000)
      e = parseExposition(rec.render())
      assert.equal(value(e, 'breakid_executor_busy_ratio', { model: 'mlp', version: '1' }), 0.25)
      readings[0]!.busyUs = 1_250_000 // 1 s busy in 0.5 s (clock skew): clamped to 1
      rec.sampleBusy(2_500)
      e = parseExposition(rec.render())
      assert.equal(value(e, 'breakid_executor_busy_ratio', { model: 'mlp', version: '1' }), 1)
      readings.length = 0 // unloaded: its gauge goes away
      rec.sampleBusy(3_000)
      e = parseExposition(rec.render())
      assert.equal(e.samples.filter((s) => s.name === 'breakid_executor_busy_ratio').length, 0)
    } finally {
      rec.stop()
    }
  })

  test('end to end: /metrics of a real engine counts what it served', async () => {
    const engine = testEngine()
    await engine.start()
    const app = buildEngineApp(engine)
    try {
      const payload = { inputs: toKServeInputs(getModel('mlp').inputGenerator(3, 2)) }
      const N = 12
      const answers = await Promise.all(
        Array.from({ length: N }, () => app.inject({ method: 'POST', url: '/v2/models/mlp/infer', payload })),
      )
      for (const a of answers) assert.equal(a.statusCode, 200)
      const bad = await app.inject({
        method: 'POST',
        url: '/v2/models/mlp/infer',
        payload: { inputs: [{ name: 'features', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }] },
      })
      assert.equal(bad.statusCode, 400)
      // a baseline, then a ratio over the time since (the recorder's own timer does this every second)
      engine.metrics.sampleBusy()
      engine.metrics.sampleBusy(performance.now() + 1)
      const res = await app.inject({ method: 'GET', url: '/metrics' })
      assert.equal(res.statusCode, 200)
      assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/)
      const e = parseExposition(res.body)
      const version = engine.models.get('mlp')!.meta.version
      const mlp = { model: 'mlp', version }
      assert.equal(value(e, 'nv_inference_request_success', mlp), N)
      assert.equal(value(e, 'nv_inference_request_failure', mlp), 1)
      const executor = engine.models.get('mlp')!.executor
      assert.equal(value(e, 'nv_inference_exec_count', mlp), executor.batches, 'every execution counted once')
      assert.equal(value(e, 'nv_inference_count', mlp), 2 * N, 'two rows per request')
      const req = checkHistogram(e, 'breakid_request_duration_us', mlp)
      assert.equal(req.count, N)
      assert.equal(req.sum, value(e, 'nv_inference_request_duration_us', mlp))
      assert.ok(value(e, 'nv_inference_compute_infer_duration_us', mlp) > 0)
      const batch = checkHistogram(e, 'breakid_batch_size', mlp)
      assert.equal(batch.sum, 2 * N)
      const busy = value(e, 'breakid_executor_busy_ratio', mlp)
      assert.ok(busy >= 0 && busy <= 1, `busy ratio ${busy}`)
      // breakid's own counters are kept
      assert.equal(value(e, 'breakid_inference_request_total', {}), N + 1)
      assert.equal(e.types.get('breakid_inference_request_total'), 'counter')
    } finally {
      await app.close()
      await engine.stop()
    }
  })
})
