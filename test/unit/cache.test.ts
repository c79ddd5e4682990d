/**
 * The result cache: the LRU on its own (keys, recency, eviction, counters), then in the engine — a
 * repeated request is answered from the cache with the same outputs, without queueing or compute,
 * and the span says so; an engine without a cache computes every request (the control).
 */
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import { after, before, describe, test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { ResultCache } from '../../engine/cache.ts'
import { Engine, type EngineOptions } from '../../engine/engine.ts'
import { buildEngineApp } from '../../engine/http.ts'
import { type EnsuredModel, ensureModel, toKServeInputs } from '../../engine/models/zoo.ts'
import { TelemetryEmitter } from '../../engine/telemetry/emitter.ts'
import type { Tensor } from '../../engine/tensors.ts'
import type { Span } from '../../contract/records.ts'
import { createLogger } from '../../core/logger.ts'
import { EmbeddedBus } from '../../bus/embedded-bus.ts'

const MODEL_CACHE_DIR = fileURLToPath(new URL('../../.cache/models', import.meta.url))
const logger = createLogger('silent')

function tensor(name: string, shape: number[], values: number[]): Tensor {
  return { name, datatype: 'FP32', shape, data: Float32Array.from(values) }
}

describe('ResultCache', () => {
  test('a capacity of 0 is off: nothing is stored, nothing counted', () => {
    const cache = new ResultCache(0)
    assert.equal(cache.enabled, false)
    cache.set('k', [tensor('y', [1, 1], [1])])
    assert.equal(cache.size, 0)
    assert.throws(() => new ResultCache(-1), RangeError)
    assert.throws(() => new ResultCache(1.5), RangeError)
  })

  test('keys differ by model, version, shape, name and bytes; equal content gives equal keys', () => {
    const cache = new ResultCache(4)
    const x = tensor('x', [1, 4], [1, 2, 3, 4])
    const k = cache.key('mlp', '1', [x])
    // the same values in a view at another offset of another buffer
    const backing = new Float32Array([9, 1, 2, 3, 4])
    assert.equal(cache.key('mlp', '1', [{ ...x, data: backing.subarray(1) }]), k)
    assert.notEqual(cache.key('mlp', '2', [x]), k)
    assert.notEqual(cache.key('cnn', '1', [x]), k)
    assert.notEqual(cache.key('mlp', '1', [{ ...x, shape: [2, 2] }]), k)
    assert.notEqual(cache.key('mlp', '1', [{ ...x, name: 'z' }]), k)
    assert.notEqual(cache.key('mlp', '1', [tensor('x', [1, 4], [1, 2, 3, 5])]), k)
  })

  test('least recently used goes first; hits, misses and evictions are counted', () => {
    const cache = new ResultCache(2)
    const out = (v: number) => [tensor('y', [1, 1], [v])]
    cache.set('a', out(1))
    cache.set('b', out(2))
    assert.equal(cache.get('a')?.[0]?.data[0], 1) // a is now the most recent
    cache.set('c', out(3)) // evicts b
    assert.equal(cache.get('b'), undefined)
    assert.equal(cache.get('c')?.[0]?.data[0], 3)
    assert.equal(cache.get('a')?.[0]?.data[0], 1)
    assert.deepEqual([cache.hits, cache.misses, cache.evictions, cache.size], [3, 1, 1, 2])
    cache.invalidate('x', '1') // keys here are not model keys: nothing matches
    assert.equal(cache.size, 2)
  })

  test('entries are copies: a reused batch buffer does not change a cached answer', () => {
    const cache = new ResultCache(1)
    const batch = new Float32Array([1, 2, 3, 4])
    cache.set('k', [{ name: 'y', datatype: 'FP32', shape: [2, 2], data: batch.subarray(2) }])
    batch.fill(0)
    assert.deepEqual(Array.from(cache.get('k')![0]!.data as Float32Array), [3, 4])
  })

  test("hit ratio, and the latency a hit saved against its model's mean miss", () => {
    const cache = new ResultCache(4)
    assert.equal(cache.hitRatio, 0)
    cache.recordHit('mlp', 50) // no miss timed yet: nothing to measure against
    assert.equal(cache.latencySavedUs, 0)
    cache.recordMiss('mlp', 100)
    cache.recordMiss('mlp', 300)
    cache.recordMiss('cnn', 10_000) // another model's misses do not count for mlp
    cache.recordHit('mlp', 50)
    assert.equal(cache.latencySavedUs, 150)
    cache.recordHit('mlp', 500) // a hit slower than the mean miss saved nothing (never negative)
    assert.equal(cache.latencySavedUs, 150)
    cache.get('absent')
    cache.set('k', [tensor('y', [1, 1], [1])])
    cache.get('k')
    cache.get('k')
    cache.get('k')
    assert.equal(cache.hitRatio, 3 / 4)
  })

  test('invalidate drops one model version only', () => {
    const cache = new ResultCache(4)
    const x = [tensor('x', [1, 1], [1])]
    cache.set(cache.key('mlp', '1', x), x)
    cache.set(cache.key('mlp', '2', x), x)
    cache.invalidate('mlp', '1')
    assert.equal(cache.size, 1)
    assert.ok(cache.get(cache.key('mlp', '2', x)))
  })
})

interface Served {
  engine: Engine
  app: FastifyInstance
  spans: Span[]
  close(): Promise<void>
}

async function serve(opts: Partial<EngineOptions>): Promise<Served> {
  const spans: Span[] = []
  const engine = new Engine({
    models: [{ name: 'mlp' }],
    modelCacheDir: MODEL_CACHE_DIR,
    logger,
    emitter: new TelemetryEmitter({ producer: new EmbeddedBus().producer(), logger }),
    hwIntervalMs: 3_600_000,
    spanObservers: [(s) => spans.push(s)],
    ...opts,
  })
  await engine.start()
  const app = buildEngineApp(engine)
  return {
    engine,
    app,
    spans,
    async close() {
      await app.close()
      await engine.stop()
    },
  }
}

describe('the engine with a result cache', () => {
  let model: EnsuredModel
  let cached: Served
  let uncached: Served
  let seed = 100

  before(async () => {
    model = await ensureModel('mlp', { cacheDir: MODEL_CACHE_DIR })
    cached = await serve({ cacheEntries: 2 })
    uncached = await serve({})
  })
  after(async () => {
    await cached?.close()
    await uncached?.close()
  })

  const body = (s: number, rows = 2) =>
    JSON.stringify({ inputs: toKServeInputs(model.inputGenerator(s, rows)) })
  async function infer(h: Served, payload: string) {
    const res = await h.app.inject({
      method: 'POST',
      url: '/v2/models/mlp/infer',
      headers: { 'content-type': 'application/json' },
      payload,
    })
    assert.equal(res.statusCode, 200, res.body)
    const spanId = /^00-[0-9a-f]{32}-([0-9a-f]{16})-01$/.exec(String(res.headers.traceparent))?.[1]
    const span = h.spans.find((s) => s.span_id === spanId)
    assert.ok(span, 'a span for the request')
    return { outputs: (res.json() as { outputs: unknown }).outputs, span }
  }

  test('a repeated request is a hit: same outputs, no queue wait, no compute, cache_hit on the span', async () => {
    const a = body(seed++)
    const batchesBefore = cached.engine.registry.executorBatches
    const first = await infer(cached, a)
    const second = await infer(cached, a)
    assert.deepEqual(second.outputs, first.outputs)
    assert.equal(first.span.cache_hit, false)
    assert.ok(first.span.compute_us > 0 || first.span.batch_size > 0, 'the first request was computed')
    assert.equal(second.span.cache_hit, true)
    assert.equal(second.span.queue_wait_us, 0)
    assert.equal(second.span.compute_us, 0)
    assert.equal(second.span.batch_size, 0)
    assert.equal(second.span.status, 'ok')
    assert.equal(second.span.input_mean, first.span.input_mean, 'drift statistics on hits too')
    assert.equal(second.span.output_confidence, first.span.output_confidence)
    assert.equal(cached.engine.registry.executorBatches - batchesBefore, 1, 'one execution for two requests')
    assert.deepEqual([cached.engine.cache.hits, cached.engine.cache.misses], [1, 1])
    const metrics = (await cached.app.inject({ method: 'GET', url: '/metrics' })).body
    assert.match(metrics, /^breakid_cache_hits_total 1$/m)
    assert.match(metrics, /^breakid_cache_misses_total 1$/m)
    assert.match(metrics, /^breakid_cache_hit_ratio 0\.5$/m)
    const saved = Number(/^breakid_cache_latency_saved_us_total (\d+)$/m.exec(metrics)?.[1])
    assert.ok(saved >= 0, 'the latency saved is on /metrics')
  })

  test('a full cache evicts the least recently used entry, which is then computed again', async () => {
    const { cache } = cached.engine
    const [b, c, d] = [body(seed++), body(seed++), body(seed++)]
    const start = { hits: cache.hits, misses: cache.misses, evictions: cache.evictions, size: cache.size }
    await infer(cached, b) // miss
    await infer(cached, c) // miss; the cache holds b, c (capacity 2)
    assert.equal((await infer(cached, b)).span.cache_hit, true) // b becomes the most recent
    await infer(cached, d) // miss: evicts c
    assert.equal((await infer(cached, b)).span.cache_hit, true)
    assert.equal((await infer(cached, c)).span.cache_hit, false, 'c was evicted')
    assert.equal(cache.hits - start.hits, 2)
    assert.equal(cache.misses - start.misses, 4)
    // entries of earlier tests make room for b and c; then d evicts c, and c evicts d
    assert.equal(cache.evictions - start.evictions, start.size + 2)
    assert.equal(cache.size, 2)
  })

  test('different rows are different entries: a hit never answers other inputs', async () => {
    const x = body(seed++, 1)
    const y = body(seed++, 1)
    const rx = await infer(cached, x)
    const ry = await infer(cached, y)
    assert.equal(ry.span.cache_hit, false)
    assert.notDeepEqual(ry.outputs, rx.outputs)
  })

  test('control: without a cache every repeat is computed and nothing is counted', async () => {
    const a = body(seed++)
    const first = await infer(uncached, a)
    const second = await infer(uncached, a)
    assert.deepEqual(second.outputs, first.outputs)
    assert.equal(second.span.cache_hit, false)
    assert.ok(second.span.batch_size > 0, 'computed in a batch')
    assert.deepEqual([uncached.engine.cache.hits, uncached.engine.cache.misses], [0, 0])
  })
})
