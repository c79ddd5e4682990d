/**
 * What a hostile or careless client sends the engine, with the real models (mlp, transformer) on
 * onnxruntime-node behind the KServe v2 routes: deep nesting, values a datatype cannot hold, token ids
 * outside the vocabulary among valid batch-mates, oversized ids and strings, invented model names.
 * Each gets a 4xx naming the problem; nothing else fails, and nothing unbounded reaches the spans or
 * /metrics. Also the request ids (UUIDv7) that spans carry when the client sends none.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { type EnsuredModel, ensureModel, toKServeInputs } from '../../engine/models/zoo.ts'
import { RandomIds } from '../../engine/telemetry/ids.ts'
import { UNKNOWN_MODEL_LABEL } from '../../engine/engine.ts'
import type { Tensor } from '../../engine/tensors.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { type EngineHarness, MODEL_CACHE_DIR, startEngineHarness } from '../helpers/engine-harness.ts'

type InjectResponse = Awaited<ReturnType<FastifyInstance['inject']>>

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

let h: EngineHarness
let mlp: EnsuredModel
let transformer: EnsuredModel

before(async () => {
  ;[mlp, transformer] = await Promise.all([
    ensureModel('mlp', { cacheDir: MODEL_CACHE_DIR }),
    ensureModel('transformer', { cacheDir: MODEL_CACHE_DIR }),
  ])
  // concurrent requests wait up to 200 ms for each other: they share batches
  h = await startEngineHarness({
    models: [{ name: 'mlp' }, { name: 'transformer' }],
    batching: { maxBatchSize: 8, maxQueueDelayMs: 200 },
  })
})
after(async () => {
  await h?.close()
})

function post(payload: unknown, model = 'mlp'): Promise<InjectResponse> {
  return h.app.inject({
    method: 'POST',
    url: `/v2/models/${model}/infer`,
    headers: { 'content-type': 'application/json' },
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
  })
}

const errorOf = (res: InjectResponse) => (res.json() as { error: string }).error
const outputData = (res: InjectResponse) => (res.json() as { outputs: { data: number[] }[] }).outputs[0]!.data

/** equal up to float32 rounding: a batch may run other kernels than one row alone */
function assertClose(actual: readonly number[], expected: readonly number[]): void {
  assert.equal(actual.length, expected.length)
  for (const [i, v] of actual.entries())
    assert.ok(Math.abs(v - expected[i]!) <= 1e-5, `[${i}]: ${v} vs ${expected[i]}`)
}

/** one valid mlp input tensor, with its values replaced when given */
function mlpInput(values?: unknown[]) {
  const input = toKServeInputs(mlp.inputGenerator(7, 1))[0]!
  return values === undefined ? input : { ...input, data: values }
}

/** one row of valid token ids, the one at `at` replaced by `id` when given */
function tokens(seed: number, at?: number, id?: number) {
  const input = toKServeInputs(transformer.inputGenerator(seed, 1))[0]!
  if (at !== undefined) input.data[at] = id!
  return { inputs: [input] }
}

describe('nesting and datatype ranges', () => {
  test('data nested 10 000 levels deep is a 400 naming the depth limit, not a stack overflow', async () => {
    const depth = 10_000
    const body = `{"inputs":[{"name":"features","shape":[1,16],"datatype":"FP32","data":${'['.repeat(depth)}${']'.repeat(depth)}}]}`
    const res = await post(body)
    assert.equal(res.statusCode, 400, res.body)
    assert.match(errorOf(res), /input "features": "data" is nested deeper than 32 levels/)
    // nesting in parameters is refused by the body schema (parameter values are scalars)
    const params = await post(
      `{"parameters":{"p":${'['.repeat(depth)}${']'.repeat(depth)}},"inputs":${JSON.stringify([mlpInput()])}}`,
    )
    assert.equal(params.statusCode, 400, params.body)
    // the nesting a real tensor has is fine: [1,16] as [[16 values]]
    const values = mlpInput().data as number[]
    const nested = await post({ inputs: [{ ...mlpInput(), data: [values] }] })
    assert.equal(nested.statusCode, 200, nested.body)
  })

  test('values outside the datatype: 400 naming the tensor, the value and the limit', async () => {
    const values = mlpInput().data as number[]
    const cases: { payload: unknown; model?: string; error: RegExp }[] = [
      {
        payload: { inputs: [mlpInput(values.map((v, i) => (i === 3 ? 3.4e39 : v)))] },
        error:
          /input "features": value 3 is not a finite number within ±3\.4028234663852886e\+38 \(FP32\): 3\.4e\+39/,
      },
      {
        payload: { inputs: [mlpInput(values.map((v, i) => (i === 0 ? -1e300 : v)))] },
        error: /value 0 is not a finite number .*\(FP32\)/,
      },
      {
        payload: { inputs: [mlpInput(values.map((v, i) => (i === 2 ? null : v)))] },
        error: /value 2 is not a finite number .*: null/,
      },
      {
        payload: tokens(1, 5, 1.5),
        model: 'transformer',
        error:
          /input "input_ids": value 5 is not an integer in -9223372036854775808\.\.9223372036854775807 \(INT64\): 1\.5/,
      },
      {
        payload: tokens(1, 0, 1e20), // would wrap around in an int64
        model: 'transformer',
        error: /value 0 is not an integer .*\(INT64\): 100000000000000000000/,
      },
    ]
    for (const c of cases) {
      const res = await post(c.payload, c.model)
      assert.equal(res.statusCode, 400, res.body)
      assert.match(errorOf(res), c.error)
    }
    // the largest float32 (and what rounds to it) is a value like any other
    const edge = await post({ inputs: [mlpInput(values.map((v, i) => (i === 1 ? 3.4028235e38 : v)))] })
    assert.equal(edge.statusCode, 200, edge.body)
  })
})

describe('one bad request among batch-mates', () => {
  test('a token id outside the vocabulary is a 400 for that request alone; the batch runs without it', async () => {
    const batcher = h.engine.models.get('transformer')!.batcher
    const before = batcher.stats
    const bodies = [tokens(11), tokens(12), tokens(13, 7, 5_000), tokens(14), tokens(15)]
    const responses = await Promise.all(bodies.map((b) => post(b, 'transformer')))
    assert.deepEqual(
      responses.map((r) => r.statusCode),
      [200, 200, 400, 200, 200],
    )
    assert.match(
      errorOf(responses[2]!),
      /input "input_ids": value 7 \(5000\) is outside 0\.\.1023 \(transformer: token ids within the vocabulary\)/,
    )
    assert.equal(batcher.stats.isolatedBatches, before.isolatedBatches, 'refused before batching')
    assert.ok(batcher.stats.batches - before.batches < 4, 'the valid requests still shared batches')
    // each valid answer is what the model gives that row alone
    for (const i of [0, 1, 3, 4]) {
      const alone = await post(bodies[i]!, 'transformer')
      assertClose(outputData(responses[i]!), outputData(alone))
    }
    // negative ids count from the table's end in onnxruntime's Gather: not token ids either
    const negative = await post(tokens(16, 0, -1), 'transformer')
    assert.equal(negative.statusCode, 400, negative.body)
  })

  test('a batch the real model fails is run again request by request: only the bad one fails', async () => {
    // straight into the batcher, past the per-request check, as an input the check does not know would
    const model = h.engine.models.get('transformer')!
    const before = model.batcher.stats
    const rows = [21, 22, 23].map((seed) => transformer.inputGenerator(seed, 1)[0]! as Tensor)
    const bad: Tensor = { ...rows[1]!, data: BigInt64Array.from(rows[1]!.data as BigInt64Array) }
    ;(bad.data as BigInt64Array)[4] = 5_000n
    const outcomes = await Promise.allSettled(
      [rows[0]!, bad, rows[2]!].map((t) => model.batcher.enqueue([t])),
    )
    assert.equal(outcomes[0]!.status, 'fulfilled')
    assert.equal(outcomes[2]!.status, 'fulfilled')
    assert.equal(outcomes[1]!.status, 'rejected')
    const err = (outcomes[1] as PromiseRejectedResult).reason
    assert.ok(err instanceof InvalidInputError, String(err))
    assert.match(err.message, /model transformer cannot run this request's input: .*5000/)
    assert.equal(model.batcher.stats.isolatedBatches - before.isolatedBatches, 1)
    assert.equal(model.batcher.stats.inputFaults - before.inputFaults, 1)
    for (const i of [0, 2]) {
      const got = (outcomes[i] as PromiseFulfilledResult<{ outputs: Tensor[] }>).value.outputs[0]!
      const alone = (await model.batcher.enqueue([rows[i]!])).outputs[0]!
      assertClose(Array.from(got.data as Float32Array), Array.from(alone.data as Float32Array))
    }
  })
})

describe('bounded strings', () => {
  test('a 2 MiB id is a 400 naming the limit, and so is every other oversized string', async () => {
    const huge = 'x'.repeat(2 * 1024 * 1024)
    const cases = [
      { body: { id: huge, inputs: [mlpInput()] }, error: /body\/id must NOT have more than 256 characters/ },
      {
        body: { inputs: [{ ...mlpInput(), name: huge }] },
        error: /name must NOT have more than 256 characters/,
      },
      {
        body: { inputs: [{ ...mlpInput(), datatype: huge }] },
        error: /datatype must NOT have more than 256 characters/,
      },
      { body: { parameters: { note: huge }, inputs: [mlpInput()] }, error: /more than 256 characters/ },
      { body: { inputs: [mlpInput()], outputs: [{ name: huge }] }, error: /more than 256 characters/ },
    ]
    const seen = (await h.spans()).length
    for (const c of cases) {
      const res = await post(c.body)
      assert.equal(res.statusCode, 400, res.body.slice(0, 200))
      assert.match(errorOf(res), c.error)
    }
    const spans = (await h.spans()).slice(seen)
    assert.equal(spans.length, cases.length, 'each refused request is still spanned')
    assert.ok(
      spans.every((s) => s.request_id.length <= 256),
      'no oversized id reaches a span',
    )
    const longest = 'y'.repeat(256)
    const ok = await post({ id: longest, inputs: [mlpInput()] })
    assert.equal(ok.statusCode, 200, ok.body)
    assert.equal((ok.json() as { id: string }).id, longest)
  })
})

describe('unknown model names', () => {
  test('fold into one label on spans and /metrics: invented names add nothing', async () => {
    const metricsLines = async () =>
      (await h.app.inject({ method: 'GET', url: '/metrics' })).body.split('\n').length
    const ask = (name: string) => post({ inputs: [mlpInput()] }, name)
    const first = await ask('no-such-model-0')
    assert.equal(first.statusCode, 404)
    assert.match(errorOf(first), /unknown model "no-such-model-0"/, 'the answer names what was asked for')
    await post('{"inputs": [', 'invented-too') // its error code gets its line once
    const seen = (await h.spans()).length
    const linesBefore = await metricsLines()
    for (let i = 1; i <= 20; i++) assert.equal((await ask(`no-such-model-${i}`)).statusCode, 404)
    // and a body fastify refuses before the pipeline
    assert.equal((await post('{"inputs": [', 'another-invention')).statusCode, 400)
    assert.equal(await metricsLines(), linesBefore, '/metrics did not grow')
    const spans = (await h.spans()).slice(seen)
    assert.equal(spans.length, 21)
    assert.deepEqual(new Set(spans.map((s) => s.model)), new Set([UNKNOWN_MODEL_LABEL]))
    const metrics = (await h.app.inject({ method: 'GET', url: '/metrics' })).body
    assert.doesNotMatch(metrics, /no-such-model/)
    assert.match(metrics, /nv_inference_request_failure\{model="_unknown",version=""\} 2[23]/)
  })
})

describe('request ids', () => {
  test('a request without an id gets a UUIDv7; a client id is kept', async () => {
    const seen = (await h.spans()).length
    const a = await post({ inputs: [mlpInput()] })
    const b = await post({ inputs: [mlpInput()] })
    const c = await post({ id: 'client-42', inputs: [mlpInput()] })
    const rejected = await post('{"inputs": [')
    assert.deepEqual(
      [a, b, c].map((r) => r.statusCode),
      [200, 200, 200],
    )
    assert.equal(rejected.statusCode, 400)
    const ids = (await h.spans()).slice(seen).map((s) => s.request_id)
    assert.equal(ids.length, 4)
    assert.match(ids[0]!, UUID_V7)
    assert.match(ids[1]!, UUID_V7)
    assert.match(ids[3]!, UUID_V7, 'a request refused before the pipeline too')
    assert.equal(ids[2], 'client-42')
    assert.ok(ids[0]! < ids[1]! && ids[1]! < ids[3]!, `time-ordered: ${ids.join(' ')}`)
    assert.equal((a.json() as { id: string }).id, ids[0], 'the answer carries the id')
  })

  test('UUIDv7 layout: milliseconds first, ordered within a millisecond, unique across generators', () => {
    const ms = Date.UTC(2025, 0, 2, 3, 4, 5, 678)
    const one = new RandomIds()
    const other = new RandomIds() // another process
    const ids: string[] = []
    for (let i = 0; i < 5_000; i++) ids.push(one.requestId(ms), other.requestId(ms))
    assert.equal(new Set(ids).size, ids.length, 'no duplicates')
    for (const id of ids) assert.match(id, UUID_V7)
    assert.equal(Number.parseInt(ids[0]!.replace(/-/g, '').slice(0, 12), 16) >= ms, true)
    // one generator's ids sort in creation order, also when 5 000 share a millisecond (the 12-bit
    // counter borrows the next millisecond) and when the wall clock steps back
    const mine = ids.filter((_, i) => i % 2 === 0)
    mine.push(one.requestId(ms - 60_000), one.requestId(ms + 60_000))
    assert.deepEqual([...mine].sort(), mine)
    assert.equal(
      Number.parseInt(mine.at(-1)!.replace(/-/g, '').slice(0, 12), 16),
      ms + 60_000,
      'the timestamp is the clock when it is ahead',
    )
  })
})
