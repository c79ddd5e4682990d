/**
 * The model repository: several versions served at once, routing to the newest, and a draining
 * unload — first on the registry itself (a held lease keeps a version's session alive), then over the
 * HTTP repository extension while clients keep sending requests: load v2, unload v1, nothing fails.
 */
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import { after, before, describe, test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import type { Engine } from '../../engine/engine.ts'
import { testEngine } from '../helpers/engine-harness.ts'
import { buildEngineApp } from '../../engine/http.ts'
import { type EnsuredModel, ensureModel, toKServeInputs } from '../../engine/models/zoo.ts'
import { ModelRegistry, UnknownModelError } from '../../engine/registry.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { createLogger } from '../../core/logger.ts'
import { waitFor } from '../helpers/wait.ts'

const MODEL_CACHE_DIR = fileURLToPath(new URL('../../.cache/models', import.meta.url))
const logger = createLogger('silent')

let mlp: EnsuredModel
before(async () => {
  mlp = await ensureModel('mlp', { cacheDir: MODEL_CACHE_DIR })
})

describe('ModelRegistry', () => {
  let registry: ModelRegistry
  before(() => {
    registry = new ModelRegistry({ modelCacheDir: MODEL_CACHE_DIR, logger, instance: 'test' })
  })
  after(async () => {
    await registry.close()
  })

  test('serves several versions; without a version, the newest ready one', async () => {
    const [v1, v2] = await Promise.all([
      registry.load({ name: 'mlp', version: 1 }),
      registry.load({ name: 'mlp', version: 2 }),
    ])
    assert.equal(await registry.load({ name: 'mlp', version: 1 }), v1, 'loading a loaded version is a no-op')
    assert.equal(registry.get('mlp'), v2)
    assert.equal(registry.get('mlp', '1'), v1)
    assert.equal(registry.get('mlp', 2), v2)
    assert.equal(registry.get('mlp', '3'), undefined)
    assert.equal(registry.get('mlp', 'one'), undefined)
    assert.equal(registry.get('cnn'), undefined)
    assert.deepEqual(registry.versions('mlp'), ['1', '2'])
    assert.deepEqual([...registry.newest().keys()], ['mlp'])
    assert.equal(registry.live().length, 2)

    // versions differ by seed: the same rows give other answers
    const inputs = mlp.inputGenerator(7, 1).map((t) => ({ ...t, datatype: 'FP32' as const }))
    const [a, b] = await Promise.all([v1.executor.run(inputs), v2.executor.run(inputs)])
    assert.notDeepEqual(
      Array.from(a.outputs[0]!.data as Float32Array),
      Array.from(b.outputs[0]!.data as Float32Array),
    )
  })

  test('unload stops routing at once, waits for the held lease, then releases the session', async () => {
    const lease = registry.acquire('mlp', '1')
    assert.ok(lease)
    let unloaded = false
    const unloading = registry.unload('mlp', '1').then((v) => {
      unloaded = true
      return v
    })
    await waitFor(() => registry.index().some((e) => e.version === '1' && e.state === 'UNLOADING'), {
      message: 'version 1 unloading',
    })
    assert.equal(registry.get('mlp', '1'), undefined, 'no new requests routed to a draining version')
    assert.equal(registry.acquire('mlp', '1'), undefined)
    assert.equal(registry.get('mlp')?.meta.version, '2')
    // the lease holder can still finish its work on the draining version
    const inputs = mlp.inputGenerator(8, 1).map((t) => ({ ...t, datatype: 'FP32' as const }))
    const answer = await lease.model.batcher.enqueue(inputs)
    assert.equal(answer.outputs[0]!.shape[0], 1)
    await new Promise((r) => setTimeout(r, 20))
    assert.equal(unloaded, false, 'unload waits for the lease')
    lease.release()
    lease.release() // twice is harmless
    assert.deepEqual(await unloading, ['1'])
    assert.deepEqual(
      registry.index().map((e) => [e.version, e.state, e.reason]),
      [
        ['1', 'UNAVAILABLE', 'unloaded'],
        ['2', 'READY', ''],
      ],
    )
    assert.ok(registry.executorBatches >= 2, 'batches of the unloaded version still count')
  })

  test('unknown names and versions are clear errors', async () => {
    await assert.rejects(registry.load({ name: 'nope' }), InvalidInputError)
    await assert.rejects(registry.load({ name: 'mlp', version: 0 }), InvalidInputError)
    await assert.rejects(registry.unload('mlp', '1'), UnknownModelError) // already unloaded
    await assert.rejects(registry.unload('cnn'), UnknownModelError)
  })
})

describe('swapping versions under load over HTTP', () => {
  let engine: Engine
  let app: FastifyInstance

  before(async () => {
    engine = testEngine({
      models: [{ name: 'mlp', version: 1 }],
      // six one-row clients never fill a batch of 8: each batch waits the queue delay, so version 1
      // still holds queued requests when the unload arrives right after the load
      batching: { maxBatchSize: 8, maxQueueDelayMs: 20 },
    })
    await engine.start()
    app = buildEngineApp(engine)
  })
  after(async () => {
    await app?.close()
    await engine?.stop()
  })

  const post = (url: string, payload?: unknown) =>
    app.inject({
      method: 'POST',
      url,
      ...(payload === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, payload: JSON.stringify(payload) }),
    })

  test('load v2 then unload v1 while clients send: zero failures, answers move from 1 to 2', async () => {
    const bodies = Array.from({ length: 8 }, (_, s) => ({ inputs: toKServeInputs(mlp.inputGenerator(s, 1)) }))
    interface Answer {
      startedAt: number
      answeredAt: number
      status: number
      version: string
      error?: string
      pinned: boolean
    }
    const answers: Answer[] = []
    let stop = false
    let seq = 0
    // two clients address version 1 explicitly until its unload begins: each has a request in flight
    // then, so the unload always has work to drain (unversioned requests move to v2 once it is ready)
    let pinV1 = true
    const MAX_REQUESTS = 20_000 // bound on the loop, far above what the test needs
    const client = async (i: number) => {
      while (!stop && answers.length < MAX_REQUESTS) {
        const startedAt = performance.now()
        const url = i < 2 && pinV1 ? '/v2/models/mlp/versions/1/infer' : '/v2/models/mlp/infer'
        const res = await post(url, bodies[seq++ % bodies.length])
        const json = res.json() as { model_version?: string; error?: string }
        answers.push({
          startedAt,
          answeredAt: performance.now(),
          status: res.statusCode,
          version: json.model_version ?? '',
          error: json.error,
          pinned: url.includes('/versions/'),
        })
      }
    }
    const clients = Array.from({ length: 6 }, (_, i) => client(i))
    const countVersion = (v: string, since = 0) =>
      answers.filter((a) => a.version === v && a.startedAt >= since).length

    try {
      await waitFor(() => countVersion('1') >= 20, { message: 'answers from version 1' })

      const load = await post('/v2/repository/models/mlp/load', { parameters: { version: '2' } })
      assert.equal(load.statusCode, 200, load.body)
      assert.deepEqual(load.json(), { name: 'mlp', version: '2', state: 'READY' })
      const loadedAt = performance.now()
      // both versions served: metadata lists them
      const metaRes = await app.inject({ method: 'GET', url: '/v2/models/mlp' })
      assert.deepEqual((metaRes.json() as { versions: string[] }).versions, ['1', '2'])
      assert.equal((metaRes.json() as { version: string }).version, '2')

      pinV1 = false
      const unloadStartedAt = performance.now()
      const unload = await post('/v2/repository/models/mlp/unload', { parameters: { version: '1' } })
      assert.equal(unload.statusCode, 200, unload.body)
      assert.deepEqual(unload.json(), { name: 'mlp', versions: ['1'], state: 'UNAVAILABLE' })
      const unloadedAt = performance.now()
      await waitFor(() => countVersion('2', unloadedAt) >= 20, { message: 'answers after the unload' })

      stop = true
      await Promise.all(clients)
      const failed = answers.filter((a) => a.status !== 200)
      assert.deepEqual(failed.slice(0, 3), [], `${failed.length} of ${answers.length} requests failed`)
      assert.ok(countVersion('1') >= 20)
      // the oracle has teeth: version 1 still had requests to drain when its unload began
      assert.ok(
        answers.some((a) => a.version === '1' && a.answeredAt > unloadStartedAt),
        'some version-1 requests were answered during the unload',
      )
      assert.equal(
        answers.filter((a) => !a.pinned && a.startedAt >= loadedAt && a.version !== '2').length,
        0,
        'once v2 is ready, unversioned requests go to it',
      )
      assert.ok(countVersion('2') >= 20)
    } finally {
      stop = true
      await Promise.all(clients)
    }

    // after the swap: v1 is gone from routing and metadata, the index says why
    const gone = await post('/v2/models/mlp/versions/1/infer', bodies[0])
    assert.equal(gone.statusCode, 404, gone.body)
    assert.equal((await app.inject({ method: 'GET', url: '/v2/models/mlp/versions/1' })).statusCode, 404)
    const v2meta = await app.inject({ method: 'GET', url: '/v2/models/mlp/versions/2' })
    assert.equal((v2meta.json() as { version: string }).version, '2')
    const index = await post('/v2/repository/index')
    assert.deepEqual(index.json(), [
      { name: 'mlp', version: '1', state: 'UNAVAILABLE', reason: 'unloaded' },
      { name: 'mlp', version: '2', state: 'READY', reason: '' },
    ])
    assert.deepEqual((await post('/v2/repository/index', { ready: true })).json(), [
      { name: 'mlp', version: '2', state: 'READY', reason: '' },
    ])
    assert.equal(engine.inFlight, 0)
  })

  test('repository errors: unknown model or version 404, bad version 400; serving goes on', async () => {
    const cases: [string, unknown, number, RegExp][] = [
      ['/v2/repository/models/nope/load', undefined, 400, /not in the model zoo/],
      ['/v2/repository/models/mlp/load', { parameters: { version: 'two' } }, 400, /version "two"/],
      [
        '/v2/repository/models/mlp/unload',
        { parameters: { version: '9' } },
        404,
        /unknown model "mlp version 9"/,
      ],
      ['/v2/repository/models/cnn/unload', undefined, 404, /unknown model "cnn"/],
    ]
    for (const [url, body, status, error] of cases) {
      const res = await post(url, body)
      assert.equal(res.statusCode, status, `${url}: ${res.body}`)
      assert.match((res.json() as { error: string }).error, error)
    }
    const ok = await post('/v2/models/mlp/infer', { inputs: toKServeInputs(mlp.inputGenerator(1, 1)) })
    assert.equal(ok.statusCode, 200)
  })

  test('unloading every version leaves the engine live but not ready, and a load brings it back', async () => {
    const unload = await post('/v2/repository/models/mlp/unload')
    assert.equal(unload.statusCode, 200, unload.body)
    assert.equal((await app.inject({ method: 'GET', url: '/v2/health/ready' })).statusCode, 503)
    const none = await post('/v2/models/mlp/infer', { inputs: toKServeInputs(mlp.inputGenerator(1, 1)) })
    assert.equal(none.statusCode, 404)
    const load = await post('/v2/repository/models/mlp/load')
    assert.deepEqual(load.json(), { name: 'mlp', version: '1', state: 'READY' })
    assert.equal((await app.inject({ method: 'GET', url: '/v2/health/ready' })).statusCode, 200)
    const back = await post('/v2/models/mlp/infer', { inputs: toKServeInputs(mlp.inputGenerator(1, 1)) })
    assert.equal((back.json() as { model_version: string }).model_version, '1')
  })
})
