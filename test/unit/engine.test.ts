/**
 * The engine end to end in one process: the KServe v2 routes in front of the real pipeline (the `mlp`
 * model on onnxruntime-node, the dynamic batcher, the preprocessing pool), with spans read back as
 * Avro from the embedded bus. Answers are checked against onnxruntime run directly on the same model
 * file, so a wrong row, a wrong slice of a shared batch or a mangled tensor cannot pass.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import ort from 'onnxruntime-node'
import { Engine } from '../../engine/engine.ts'
import { FaultSchedule } from '../../engine/faults.ts'
import { buildEngineApp } from '../../engine/http.ts'
import { type EnsuredModel, ensureModel, type ModelMeta, toKServeInputs } from '../../engine/models/zoo.ts'
import type { Span } from '../../contract/records.ts'
import { STAGES } from '../../contract/vocabulary.ts'
import { createLogger } from '../../core/logger.ts'
import { type EngineHarness, MODEL_CACHE_DIR, startEngineHarness } from '../helpers/engine-harness.ts'
import { waitFor } from '../helpers/wait.ts'

const logger = createLogger('silent')
/** `performance.now()`-based stages are rounded to whole µs; hrtime-based ones are floored. */
const ROUNDING_SLACK_US = 2
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const PARENT_ID = '00f067aa0ba902b7'
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/

type InjectResponse = Awaited<ReturnType<FastifyInstance['inject']>>

type Harness = EngineHarness
const startHarness = startEngineHarness

let generated: EnsuredModel
let meta: ModelMeta
let reference: ort.InferenceSession
let seed = 1

/** `rows` rows of valid, distinct input (a new seed every call). */
function features(rows: number): Float32Array {
  return generated.inputGenerator(seed++, rows)[0]!.data as Float32Array
}

function inferBody(data: Float32Array, id?: string) {
  const rows = data.length / 16
  return {
    ...(id === undefined ? {} : { id }),
    inputs: toKServeInputs([{ name: meta.inputs[0]!.name, datatype: 'FP32', shape: [rows, 16], data }]),
  }
}

/** What onnxruntime itself answers for these rows. */
async function expected(data: Float32Array): Promise<Float32Array> {
  const input = meta.inputs[0]!
  const out = await reference.run({ [input.name]: new ort.Tensor('float32', data, [data.length / 16, 16]) })
  return out[meta.outputs[0]!.name]!.data as Float32Array
}

interface InferOutput {
  name: string
  datatype: string
  shape: number[]
  data: number[]
}

/** Asserts a 200 answer whose single output equals onnxruntime's for `data`. */
async function assertAnswers(res: InjectResponse, data: Float32Array): Promise<InferOutput> {
  assert.equal(res.statusCode, 200, res.body)
  const body = res.json() as { model_name: string; outputs: InferOutput[] }
  assert.equal(body.model_name, 'mlp')
  assert.equal(body.outputs.length, 1)
  const out = body.outputs[0]!
  const rows = data.length / 16
  assert.equal(out.name, meta.outputs[0]!.name)
  assert.equal(out.datatype, 'FP32')
  assert.deepEqual(out.shape, [rows, 4])
  const want = await expected(data)
  assert.equal(out.data.length, want.length)
  out.data.forEach((v, i) => {
    assert.ok(Math.abs(v - want[i]!) <= 1e-6, `output ${i}: engine ${v}, onnxruntime ${want[i]}`)
  })
  return out
}

function post(
  app: FastifyInstance,
  payload: unknown,
  opts: { url?: string; headers?: Record<string, string> } = {},
): Promise<InjectResponse> {
  return app.inject({
    method: 'POST',
    url: opts.url ?? '/v2/models/mlp/infer',
    headers: { 'content-type': 'application/json', ...opts.headers },
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
  })
}

function spanIdOf(res: InjectResponse): string {
  const m = TRACEPARENT.exec(String(res.headers.traceparent))
  assert.ok(m, `traceparent header ${res.headers.traceparent}`)
  return m[2]!
}

function assertStagesConsistent(span: Span): void {
  let sum = 0
  for (const stage of STAGES) {
    const v = span[`${stage}_us`]
    assert.ok(Number.isInteger(v) && v >= 0, `${stage}_us = ${v}`)
    sum += v
  }
  assert.ok(span.total_us > 0, `total_us = ${span.total_us}`)
  assert.ok(sum <= span.total_us + ROUNDING_SLACK_US, `stages sum to ${sum} µs > total ${span.total_us} µs`)
}

/** `breakid_inference_errors_total` by code, from the /metrics text. */
async function errorMetrics(app: FastifyInstance): Promise<Map<string, number>> {
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  assert.equal(res.statusCode, 200)
  const out = new Map<string, number>()
  for (const m of res.body.matchAll(/^breakid_inference_errors_total\{code="([^"]+)"\} (\d+)$/gm)) {
    out.set(m[1]!, Number(m[2]))
  }
  return out
}

before(async () => {
  generated = await ensureModel('mlp', { cacheDir: MODEL_CACHE_DIR })
  meta = generated.meta
  reference = await ort.InferenceSession.create(generated.path, { intraOpNumThreads: 1 })
})
after(async () => {
  await reference?.release()
})

describe('one engine, requests one at a time', () => {
  const STARVATION_DELAY_MS = 50
  // The window lies an hour after engine start; tests move the schedule's clock into and out of it.
  const STARVATION_AT_MS = 3_600_000
  let h: Harness

  before(async () => {
    h = await startHarness({
      faults: new FaultSchedule([
        {
          type: 'data_starvation',
          startMs: STARVATION_AT_MS,
          endMs: STARVATION_AT_MS + 3_600_000,
          delayMs: STARVATION_DELAY_MS,
        },
      ]),
    })
  })
  after(async () => {
    await h.close()
  })

  test('a valid request is answered with what onnxruntime computes, traced and spanned', async () => {
    const data = features(3)
    const payload = JSON.stringify(inferBody(data, 'req-valid'))
    const res = await post(h.app, payload)
    const out = await assertAnswers(res, data)
    assert.match(String(res.headers['content-type']), /^application\/json/)
    assert.equal((res.json() as { id: string }).id, 'req-valid')
    assert.equal((res.json() as { model_version: string }).model_version, meta.version)
    const spanId = spanIdOf(res)

    const spans = (await h.spans()).filter((s) => s.span_id === spanId)
    assert.equal(spans.length, 1, 'exactly one span for the request')
    const span = spans[0]!
    assert.equal(span.request_id, 'req-valid')
    assert.equal(span.status, 'ok')
    assert.equal(span.error_class, null)
    assert.equal(span.model, 'mlp')
    assert.equal(span.model_version, meta.version)
    assert.deepEqual([span.fleet, span.host, span.instance], ['test', 'host-a', 'engine-0'])
    assert.ok(span.batch_id.length > 0, 'batch id set')
    assert.ok(span.batch_size >= 3, `batch_size ${span.batch_size} covers this request's 3 rows`)
    assert.equal(span.request_bytes, Buffer.byteLength(payload))
    assert.equal(span.response_bytes, Buffer.byteLength(res.body))
    assertStagesConsistent(span)
    // drift summaries describe this request's input and output
    const mean = data.reduce((a, b) => a + b, 0) / data.length
    assert.ok(Math.abs(span.input_mean! - mean) < 1e-9, `input_mean ${span.input_mean} vs ${mean}`)
    const rowMax = [0, 1, 2].map((r) => Math.max(...out.data.slice(r * 4, r * 4 + 4)))
    const confidence = rowMax.reduce((a, b) => a + b, 0) / 3
    assert.ok(Math.abs(span.output_confidence! - confidence) < 1e-9)
  })

  test('an incoming W3C traceparent keeps its trace id on the span and the response', async () => {
    const res = await post(h.app, inferBody(features(1)), {
      headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` },
    })
    assert.equal(res.statusCode, 200)
    const m = TRACEPARENT.exec(String(res.headers.traceparent))
    assert.ok(m)
    assert.equal(m[1], TRACE_ID)
    assert.notEqual(m[2], PARENT_ID, 'the engine answers with its own span id')
    const span = (await h.spans()).find((s) => s.span_id === m[2])
    assert.equal(span?.trace_id, TRACE_ID)

    // without one (or with garbage) the engine starts a fresh trace
    const fresh = await post(h.app, inferBody(features(1)), { headers: { traceparent: 'not-a-trace' } })
    const freshTrace = TRACEPARENT.exec(String(fresh.headers.traceparent))?.[1]
    assert.ok(freshTrace)
    assert.notEqual(freshTrace, TRACE_ID)
  })

  test('the versioned infer route answers like the plain one', async () => {
    const data = features(1)
    await assertAnswers(await post(h.app, inferBody(data), { url: '/v2/models/mlp/versions/1/infer' }), data)
  })

  test('a version the engine does not serve is a 404, not an answer from another version', async () => {
    const res = await post(h.app, inferBody(features(1)), { url: '/v2/models/mlp/versions/99/infer' })
    assert.equal(res.statusCode, 404, res.body)
  })

  test('model metadata is the zoo metadata; health says live and ready', async () => {
    const metaRes = await h.app.inject({ method: 'GET', url: '/v2/models/mlp' })
    assert.equal(metaRes.statusCode, 200)
    assert.deepEqual(metaRes.json(), { ...meta, versions: ['1'] })
    const unknown = await h.app.inject({ method: 'GET', url: '/v2/models/nope' })
    assert.equal(unknown.statusCode, 404)
    assert.match((unknown.json() as { error: string }).error, /nope/)

    const live = await h.app.inject({ method: 'GET', url: '/v2/health/live' })
    assert.equal(live.statusCode, 200)
    assert.deepEqual(live.json(), { live: true })
    const ready = await h.app.inject({ method: 'GET', url: '/v2/health/ready' })
    assert.equal(ready.statusCode, 200)
    assert.deepEqual(ready.json(), { ready: true })

    // control: an engine with no model loaded is live but not ready
    const idle = new Engine({ models: [], modelCacheDir: MODEL_CACHE_DIR, logger, emitter: h.emitter })
    const idleApp = buildEngineApp(idle)
    try {
      assert.equal((await idleApp.inject({ method: 'GET', url: '/v2/health/live' })).statusCode, 200)
      const notReady = await idleApp.inject({ method: 'GET', url: '/v2/health/ready' })
      assert.equal(notReady.statusCode, 503)
      assert.deepEqual(notReady.json(), { ready: false })
    } finally {
      await idleApp.close()
    }
  })

  test('bad requests get a 4xx naming the problem, are counted, and the server keeps serving', async () => {
    const good = inferBody(features(1)).inputs[0]!
    const tinyApp = buildEngineApp(h.engine, { bodyLimitBytes: 256 })
    const cases: {
      name: string
      payload: unknown
      url?: string
      app?: FastifyInstance
      status: number
      error: RegExp
      code: string
    }[] = [
      {
        name: 'malformed JSON',
        payload: '{"inputs": [{"name": "features",',
        status: 400,
        error: /JSON/,
        code: 'FST_ERR_CTP_INVALID_JSON_BODY',
      },
      {
        name: 'no inputs',
        payload: { id: 'x' },
        status: 400,
        error: /inputs/,
        code: 'FST_ERR_VALIDATION',
      },
      {
        name: 'an input the model does not take',
        payload: { inputs: [{ ...good, name: 'pixels' }] },
        status: 400,
        error: /unexpected input "pixels"/,
        code: 'BREAKID_INVALID_INPUT',
      },
      {
        name: 'wrong shape',
        payload: { inputs: [{ ...good, shape: [2, 8] }] },
        status: 400,
        error: /shape \[2,8\] does not match \[-1,16\]/,
        code: 'BREAKID_INVALID_INPUT',
      },
      {
        name: 'values that do not fill the shape',
        payload: { inputs: [{ ...good, data: good.data.slice(0, 15) }] },
        status: 400,
        error: /15 values for shape \[1,16\]/,
        code: 'BREAKID_INVALID_INPUT',
      },
      {
        name: 'wrong datatype',
        payload: { inputs: [{ ...good, datatype: 'INT64' }] },
        status: 400,
        error: /datatype INT64, expected FP32/,
        code: 'BREAKID_INVALID_INPUT',
      },
      {
        name: 'a non-numeric value',
        payload: { inputs: [{ ...good, data: good.data.map((v, i) => (i === 5 ? 'five' : v)) }] },
        status: 400,
        error: /value 5 is not a finite number/,
        code: 'BREAKID_INVALID_INPUT',
      },
      {
        name: 'an unknown model',
        payload: { inputs: [good] },
        url: '/v2/models/nope/infer',
        status: 404,
        error: /unknown model "nope"/,
        code: 'BREAKID_UNKNOWN_MODEL',
      },
      {
        name: 'a body over the limit',
        payload: { inputs: [good] },
        app: tinyApp,
        status: 413,
        error: /too large/,
        code: 'FST_ERR_CTP_BODY_TOO_LARGE',
      },
    ]
    const before = new Map(h.engine.errors)
    try {
      for (const c of cases) {
        const res = await post(c.app ?? h.app, c.payload, { url: c.url })
        assert.equal(res.statusCode, c.status, `${c.name}: ${res.body}`)
        assert.match(String(res.headers['content-type']), /^application\/json/, c.name)
        assert.match((res.json() as { error: string }).error, c.error, c.name)
        // ...and the next good request is still answered
        const data = features(1)
        await assertAnswers(await post(h.app, inferBody(data)), data)
      }
      // the tiny app serves requests under its limit
      const small = await post(tinyApp, { inputs: [{ ...good, data: new Array(16).fill(0) }] })
      assert.equal(small.statusCode, 200, small.body)
    } finally {
      await tinyApp.close()
    }

    const want = new Map<string, number>()
    for (const c of cases) want.set(c.code, (want.get(c.code) ?? 0) + 1)
    const metrics = await errorMetrics(h.app)
    for (const [code, n] of want) {
      assert.equal((h.engine.errors.get(code) ?? 0) - (before.get(code) ?? 0), n, `engine.errors ${code}`)
      assert.equal(metrics.get(code), h.engine.errors.get(code), `/metrics ${code}`)
    }
  })

  test('every request that reaches the pipeline emits exactly one span, failures marked', async () => {
    const seen = (await h.spans()).length
    const good = inferBody(features(1)).inputs[0]!
    const requests: { payload: unknown; url?: string; errorClass: string | null }[] = [
      { payload: inferBody(features(1)), errorClass: null },
      { payload: { inputs: [{ ...good, shape: [1, 15] }] }, errorClass: 'BREAKID_INVALID_INPUT' },
      { payload: inferBody(features(2)), errorClass: null },
      { payload: { inputs: [{ ...good, datatype: 'FP16' }] }, errorClass: 'BREAKID_INVALID_INPUT' },
      { payload: { inputs: [good] }, url: '/v2/models/nope/infer', errorClass: 'BREAKID_UNKNOWN_MODEL' },
      { payload: inferBody(features(4)), errorClass: null },
    ]
    const responses: InjectResponse[] = []
    for (const r of requests) responses.push(await post(h.app, r.payload, { url: r.url }))
    const spans = await h.spans()
    assert.equal(spans.length - seen, requests.length, 'one span per request, no more')
    requests.forEach((r, i) => {
      const res = responses[i]!
      const mine = spans.filter((s) => s.span_id === spanIdOf(res))
      assert.equal(mine.length, 1, `request ${i}: one span`)
      const span = mine[0]!
      assertStagesConsistent(span)
      assert.equal(span.error_class, r.errorClass, `request ${i}`)
      if (r.errorClass === null) {
        assert.equal(res.statusCode, 200)
        assert.equal(span.status, 'ok')
        assert.ok(span.batch_id.length > 0 && span.batch_size > 0, `request ${i}: batch recorded`)
      } else {
        assert.ok(res.statusCode >= 400 && res.statusCode < 500)
        assert.equal(span.status, 'client_error')
        assert.equal(span.compute_us, 0, 'a rejected request never reached the executor')
      }
    })
  })

  test('requests rejected before the pipeline (bad JSON, schema, body limit) emit a span too', async () => {
    const seen = (await h.spans()).length
    await post(h.app, '{"inputs": [')
    await post(h.app, {})
    assert.equal((await h.spans()).length - seen, 2)
  })

  test('data starvation shows up in preprocess_us, not compute_us; only inside its window', async () => {
    const delayUs = STARVATION_DELAY_MS * 1000
    // the schedule's time zero an hour ago: now is inside the window
    h.engine.faults.startClock(Date.now() - STARVATION_AT_MS)
    assert.ok(h.engine.faults.active('data_starvation'))
    const starved = await post(h.app, inferBody(features(1)))
    // back to time zero = now: the window is an hour away
    h.engine.faults.startClock()
    assert.equal(h.engine.faults.active('data_starvation'), undefined)
    const normal = await post(h.app, inferBody(features(1)))

    const spans = await h.spans()
    const during = spans.find((s) => s.span_id === spanIdOf(starved))!
    const outside = spans.find((s) => s.span_id === spanIdOf(normal))!
    assertStagesConsistent(during)
    // timers may fire up to 1 ms before their nominal delay on the µs clock
    assert.ok(during.preprocess_us >= delayUs - 1000, `preprocess_us ${during.preprocess_us} in the window`)
    assert.ok(during.compute_us < delayUs, `compute_us ${during.compute_us} must not carry the delay`)
    assert.ok(during.queue_wait_us < delayUs, `queue_wait_us ${during.queue_wait_us}`)
    assert.ok(during.total_us >= during.preprocess_us)
    assert.ok(outside.preprocess_us < delayUs, `preprocess_us ${outside.preprocess_us} outside the window`)
  })

  test('over a real socket: answers, traceparent, body limit and bad JSON', async () => {
    const app = buildEngineApp(h.engine, { bodyLimitBytes: 1024 })
    try {
      await app.listen({ port: 0, host: '127.0.0.1' })
      const { port } = app.server.address() as { port: number }
      const url = `http://127.0.0.1:${port}/v2/models/mlp/infer`
      const send = (body: string, headers: Record<string, string> = {}) =>
        fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body })

      const data = features(1)
      const ok = await send(JSON.stringify(inferBody(data)), {
        traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`,
      })
      assert.equal(ok.status, 200)
      assert.match(ok.headers.get('content-type') ?? '', /^application\/json/)
      assert.equal(TRACEPARENT.exec(ok.headers.get('traceparent') ?? '')?.[1], TRACE_ID)
      const body = (await ok.json()) as { outputs: InferOutput[] }
      const want = await expected(data)
      for (const [i, v] of body.outputs[0]!.data.entries()) assert.ok(Math.abs(v - want[i]!) <= 1e-6)

      const big = await send(JSON.stringify(inferBody(features(8))))
      assert.equal(big.status, 413)
      assert.match(((await big.json()) as { error: string }).error, /too large/)
      const bad = await send('{"inputs": [}')
      assert.equal(bad.status, 400)
      assert.match(((await bad.json()) as { error: string }).error, /JSON/)

      const again = await send(JSON.stringify(inferBody(data)))
      assert.equal(again.status, 200, 'still serving on the same port')
      assert.deepEqual(((await again.json()) as { outputs: InferOutput[] }).outputs, body.outputs)
    } finally {
      await app.close()
    }
  })
})

describe('dynamic batching', () => {
  let h: Harness

  before(async () => {
    // a batch starts as soon as 8 rows wait; the delay is generous so concurrent requests meet
    h = await startHarness({ batching: { maxBatchSize: 8, maxQueueDelayMs: 400 } })
  })
  after(async () => {
    await h.close()
  })

  test('concurrent requests share batches and each gets its own rows back', async () => {
    const rows = [1, 2, 1, 3, 1]
    const inputs = rows.map((n) => features(n))
    const responses = await Promise.all(inputs.map((d) => post(h.app, inferBody(d))))
    for (const [i, res] of responses.entries()) await assertAnswers(res, inputs[i]!)

    const spans = await h.spans()
    const mine = responses.map((r) => spans.find((s) => s.span_id === spanIdOf(r))!)
    const batches = new Map<string, number>()
    for (const [i, s] of mine.entries()) batches.set(s.batch_id, (batches.get(s.batch_id) ?? 0) + rows[i]!)
    assert.ok(batches.size < rows.length, `${batches.size} batches for ${rows.length} requests`)
    for (const s of mine) {
      assertStagesConsistent(s)
      assert.equal(s.batch_size, batches.get(s.batch_id), `batch ${s.batch_id}: size is its rows`)
    }
  })

  test('graceful stop answers the requests still queued', async () => {
    const batcher = h.engine.models.get('mlp')!.batcher
    const inputs = [features(1), features(1), features(1)]
    // 3 rows < maxBatchSize: they wait for the queue delay
    const pending = inputs.map((d) => post(h.app, inferBody(d)))
    await waitFor(() => batcher.depth === 3, { message: 'three queued rows' })
    await h.engine.stop()
    const responses = await Promise.all(pending)
    for (const [i, res] of responses.entries()) await assertAnswers(res, inputs[i]!)
    const spans = await h.spans()
    const mine = responses.map((r) => spans.find((s) => s.span_id === spanIdOf(r)))
    assert.ok(mine.every((s) => s?.status === 'ok' && s.batch_size === 3))
    assert.equal(new Set(mine.map((s) => s!.batch_id)).size, 1)
  })
})

describe('a bounded queue', () => {
  let h: Harness

  before(async () => {
    // batches start only on the delay (maxBatchSize is never reached), so a flood overfills the queue
    h = await startHarness({ batching: { maxBatchSize: 64, maxQueueDelayMs: 300, maxQueueRows: 4 } })
  })
  after(async () => {
    await h.close()
  })

  test('a flood past maxQueueRows gets 429 with Retry-After, never a crash', async () => {
    const inputs = Array.from({ length: 16 }, () => features(1))
    const responses = await Promise.all(inputs.map((d) => post(h.app, inferBody(d))))
    const rejected = responses.filter((r) => r.statusCode === 429)
    const served = responses.filter((r) => r.statusCode === 200)
    assert.equal(rejected.length + served.length, inputs.length, 'only 200 or 429')
    assert.ok(rejected.length > 0, 'the queue overflowed')
    assert.ok(served.length >= 4, 'the rows that fit were served')
    for (const [i, res] of responses.entries())
      if (res.statusCode === 200) await assertAnswers(res, inputs[i]!)
    for (const res of rejected) {
      assert.equal(res.headers['retry-after'], '1')
      assert.match((res.json() as { error: string }).error, /queue full/)
    }
    assert.equal(h.engine.errors.get('BREAKID_QUEUE_FULL'), rejected.length)
    const spans = await h.spans()
    for (const res of rejected) {
      assert.equal(spans.find((s) => s.span_id === spanIdOf(res))?.error_class, 'BREAKID_QUEUE_FULL')
    }
    assert.equal(h.engine.inFlight, 0)

    const data = features(1)
    await assertAnswers(await post(h.app, inferBody(data)), data)
  })
})
