/**
 * The engine's HTTP API as a fastify plugin mounted into a foreign app: its routes under a prefix,
 * its error handling and body parsing confined to them (the host's routes, parsers and 404s are the
 * host's), and with `manageEngine` its lifecycle tied to the app's (ready starts it, close stops it).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import { EmbeddedBus } from '../../bus/embedded-bus.ts'
import { createLogger } from '../../core/logger.ts'
import { Engine } from '../../engine/engine.ts'
import { ENGINE_AJV_OPTIONS, enginePlugin } from '../../engine/http.ts'
import { getModel, toKServeInputs } from '../../engine/models/zoo.ts'
import { TelemetryEmitter } from '../../engine/telemetry/emitter.ts'
import { MODEL_CACHE_DIR } from '../helpers/engine-harness.ts'

const logger = createLogger('silent')

function newEngine(models = [{ name: 'mlp' }]): Engine {
  const bus = new EmbeddedBus()
  return new Engine({
    models,
    modelCacheDir: MODEL_CACHE_DIR,
    logger,
    emitter: new TelemetryEmitter({ producer: bus.producer(), logger }),
    identity: { fleet: 'test', host: 'host-a', instance: 'engine-0' },
    hwIntervalMs: 3_600_000,
  })
}

test('mounted under a prefix in a foreign app: engine routes work, the host keeps its own', async () => {
  const engine = newEngine()
  const host = Fastify({ ajv: ENGINE_AJV_OPTIONS })
  host.get('/hello', async () => ({ hello: 'world' }))
  host.post('/echo', async (req) => req.body)
  await host.register(enginePlugin, { engine, prefix: '/engine', manageEngine: true })
  assert.equal(engine.registry.names().length, 0, 'not started before the app is ready')
  await host.ready()
  try {
    assert.deepEqual(engine.registry.names(), ['mlp'], 'onReady started the engine')
    const ok = await host.inject({
      method: 'POST',
      url: '/engine/v2/models/mlp/infer',
      payload: { inputs: toKServeInputs(getModel('mlp').inputGenerator(1, 2)) },
    })
    assert.equal(ok.statusCode, 200)
    assert.match(String(ok.headers.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
    assert.equal(JSON.parse(ok.body).model_name, 'mlp')

    // the engine's error handler answers (and counts, with a span) bad input on its routes
    const bad = await host.inject({
      method: 'POST',
      url: '/engine/v2/models/mlp/infer',
      headers: { 'content-type': 'application/json' },
      payload: '{not json',
    })
    assert.equal(bad.statusCode, 400)
    assert.ok(JSON.parse(bad.body).error)
    assert.equal(engine.completions, 2, 'the refused request has its span too')

    // the host's routes, parsers and 404s are untouched by the engine's hooks and handlers
    assert.deepEqual((await host.inject({ method: 'GET', url: '/hello' })).json(), { hello: 'world' })
    const echo = await host.inject({ method: 'POST', url: '/echo', payload: { a: 1 } })
    assert.deepEqual(echo.json(), { a: 1 })
    const missing = await host.inject({ method: 'GET', url: '/nope' })
    assert.equal(missing.statusCode, 404)
    assert.equal(engine.errors.get('not_found'), undefined, "the host's 404 is not the engine's")
    assert.equal((await host.inject({ method: 'GET', url: '/v2/health/live' })).statusCode, 404)

    const metrics = await host.inject({ method: 'GET', url: '/engine/metrics' })
    assert.match(metrics.body, /^breakid_inference_request_total 2$/m)
    assert.match(metrics.body, /^nv_inference_request_success\{model="mlp",version="1"\} 1$/m)
  } finally {
    await host.close()
  }
  assert.equal(engine.registry.names().length, 0, 'onClose stopped the engine (its models unloaded)')
})

test('the infer body limit holds inside a host with a larger one', async () => {
  const engine = newEngine()
  const host = Fastify({ ajv: ENGINE_AJV_OPTIONS, bodyLimit: 16 * 1024 * 1024 })
  await host.register(enginePlugin, { engine, bodyLimitBytes: 1024, manageEngine: true })
  try {
    const res = await host.inject({
      method: 'POST',
      url: '/v2/models/mlp/infer',
      payload: { inputs: toKServeInputs(getModel('mlp').inputGenerator(1, 64)) },
    })
    assert.equal(res.statusCode, 413)
    assert.equal(engine.errors.get('FST_ERR_CTP_BODY_TOO_LARGE'), 1)
  } finally {
    await host.close()
  }
})

test('with manageEngine, an engine that fails to start fails ready(), and close() still releases it', async () => {
  const engine = newEngine([{ name: 'no-such-model' }])
  const host = Fastify({ ajv: ENGINE_AJV_OPTIONS })
  await host.register(enginePlugin, { engine, manageEngine: true })
  await assert.rejects(async () => {
    await host.ready()
  })
  await host.close()
  assert.equal(engine.registry.names().length, 0)
})
