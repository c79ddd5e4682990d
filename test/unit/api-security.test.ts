import { postSql } from '../helpers/api.ts'
/**
 * The control endpoints of `serve` and `up` (model repository, query API): bearer token, JSON-only
 * bodies (a browser's cross-site text/plain or form POST is 415), bounded concurrent model loads,
 * inference still open as in Triton, no CORS; the per-run token file and the configuration keys.
 */
import assert from 'node:assert/strict'
import { statSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Engine } from '../../engine/engine.ts'
import { buildEngineApp } from '../../engine/http.ts'
import { getModel, toKServeInputs } from '../../engine/models/zoo.ts'
import { bearerMatches, isJsonContentType } from '../../core/http-guard.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { loadConfig } from '../../app/config.ts'
import { queryLimits, readApiToken, resolveApiToken } from '../../app/access.ts'
import { queriesPlugin } from '../../queries/http.ts'
import { DEFAULT_QUERY_LIMITS } from '../../queries/limits.ts'
import type { ClickHouse } from '../../store/client.ts'
import { testEngine } from '../helpers/engine-harness.ts'

const TOKEN = 'test-token-0123456789abcdef'

describe('model repository behind the token', () => {
  let engine: Engine
  let app: FastifyInstance

  before(async () => {
    engine = testEngine({ models: [{ name: 'mlp', version: 1 }] })
    await engine.start()
    app = buildEngineApp(engine, { apiToken: TOKEN, tokenHint: 'in /data/api-token', maxConcurrentLoads: 1 })
  })
  after(async () => {
    await app?.close()
    await engine?.stop()
  })

  const auth = { authorization: `Bearer ${TOKEN}` }

  test('no or a wrong token: 401 naming how to get one; nothing is unloaded', async () => {
    for (const headers of [
      {},
      { authorization: 'Bearer wrong-token-0123456789' },
      { authorization: TOKEN },
    ]) {
      for (const url of [
        '/v2/repository/models/mlp/unload',
        '/v2/repository/models/mlp/load',
        '/v2/repository/index',
      ]) {
        const res = await app.inject({ method: 'POST', url, headers, payload: {} })
        assert.equal(res.statusCode, 401, `${url} ${JSON.stringify(headers)}`)
        assert.equal(res.headers['content-type'], 'application/json; charset=utf-8')
        assert.equal(res.json().code, 'BREAKID_UNAUTHORIZED')
        assert.match(
          res.json().error,
          /Authorization: Bearer <token>.*BREAKID_API_TOKEN.*api-token.*\/data\/api-token/,
        )
        assert.match(String(res.headers['www-authenticate']), /^Bearer/)
      }
    }
    assert.deepEqual(engine.registry.versions('mlp'), ['1'])
  })

  test('text/plain, form and multipart bodies are 415, with or without the token', async () => {
    for (const type of [
      'text/plain',
      'text/plain;charset=UTF-8',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/xml',
    ]) {
      for (const headers of [{}, auth]) {
        const res = await app.inject({
          method: 'POST',
          url: '/v2/repository/models/mlp/unload',
          headers: { ...headers, 'content-type': type },
          payload: '{}',
        })
        assert.equal(res.statusCode, 415, type)
        assert.match(res.json().error, /unsupported content type.*send application\/json/)
      }
    }
    assert.deepEqual(engine.registry.versions('mlp'), ['1'])
  })

  test('with the token: JSON, or no Content-Type with an empty or JSON body, works', async () => {
    const index = await app.inject({ method: 'POST', url: '/v2/repository/index', headers: auth })
    assert.equal(index.statusCode, 200)
    const load = await app.inject({
      method: 'POST',
      url: '/v2/repository/models/mlp/load',
      headers: auth,
      payload: { parameters: { version: '2' } },
    })
    assert.equal(load.statusCode, 200, load.body)
    // tritonclient sends repository requests without a Content-Type
    const bare = await app.inject({
      method: 'POST',
      url: '/v2/repository/models/mlp/unload',
      headers: auth,
      payload: Buffer.from('{"parameters": {"version": "2"}} '),
    })
    assert.equal(bare.statusCode, 200, bare.body)
    assert.deepEqual(bare.json().versions, ['2'])
    const badJson = await app.inject({
      method: 'POST',
      url: '/v2/repository/models/mlp/unload',
      headers: { ...auth, 'content-type': 'application/json' },
      payload: '{"parameters": ',
    })
    assert.equal(badJson.statusCode, 400)
    assert.deepEqual(engine.registry.versions('mlp'), ['1'])
  })

  test('loads run a bounded number at a time: one more is 429 with Retry-After', async () => {
    const loads = await Promise.all(
      [3, 4].map((version) =>
        app.inject({
          method: 'POST',
          url: '/v2/repository/models/mlp/load',
          headers: auth,
          payload: { parameters: { version } },
        }),
      ),
    )
    assert.deepEqual(loads.map((r) => r.statusCode).sort(), [200, 429])
    const busy = loads.find((r) => r.statusCode === 429)!
    assert.equal(busy.headers['retry-after'], '1')
    assert.match(busy.json().error, /model loads are already running/)
    for (const version of ['3', '4']) {
      await app.inject({
        method: 'POST',
        url: '/v2/repository/models/mlp/unload',
        headers: auth,
        payload: { parameters: { version } },
      })
    }
  })

  test('inference, health, metadata and metrics stay open; no CORS headers anywhere', async () => {
    const inputs = toKServeInputs(getModel('mlp').inputGenerator(0, 1))
    const infer = await app.inject({ method: 'POST', url: '/v2/models/mlp/infer', payload: { inputs } })
    assert.equal(infer.statusCode, 200)
    for (const url of ['/v2/health/ready', '/v2/models/mlp', '/metrics']) {
      assert.equal((await app.inject({ method: 'GET', url })).statusCode, 200, url)
    }
    const preflight = await app.inject({
      method: 'OPTIONS',
      url: '/v2/repository/models/mlp/unload',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    })
    for (const res of [infer, preflight]) {
      assert.equal(res.headers['access-control-allow-origin'], undefined)
    }
    assert.notEqual(preflight.statusCode, 204)
  })
})

describe('query API behind the token', () => {
  let app: FastifyInstance
  before(async () => {
    app = Fastify()
    // never queried: every request here is refused before it reaches ClickHouse
    await app.register(queriesPlugin, { ch: {} as ClickHouse, apiToken: TOKEN })
    await app.ready()
  })
  after(async () => {
    await app.close()
  })

  test('every route needs the token; text/plain is 415 before the token is looked at', async () => {
    for (const [method, url] of [
      ['GET', '/api/queries'],
      ['GET', '/api/queries/stage-breakdown'],
      ['POST', '/api/queries/stage-breakdown'],
      ['POST', '/api/sql'],
    ] as const) {
      const res = await app.inject({
        method,
        url,
        ...(method === 'POST' ? { payload: { sql: 'SELECT 1' } } : {}),
      })
      assert.equal(res.statusCode, 401, url)
      assert.equal(res.json().code, 'BREAKID_UNAUTHORIZED')
    }
    const text = await postSql(app, "SELECT file('/etc/passwd')", 'text/plain')
    assert.equal(text.statusCode, 415)
    const listed = await app.inject({
      method: 'GET',
      url: '/api/queries',
      headers: { authorization: `bearer ${TOKEN}` },
    })
    assert.equal(listed.statusCode, 200)
  })
})

describe('the token: configured, or generated per run into the data directory', () => {
  let dir = ''
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'breakid-token-'))
  })
  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  test('generated: random, mode 0600, replaced each run, read back by the CLI', () => {
    const cfg = loadConfig({ 'data-dir': join(dir, 'data') }, {})
    const first = resolveApiToken(cfg)
    assert.ok(first.path && first.token.length >= 40)
    assert.equal(statSync(first.path).mode & 0o777, 0o600)
    assert.equal(readApiToken(cfg), first.token)
    const second = resolveApiToken(cfg)
    assert.notEqual(second.token, first.token)
    assert.equal(readApiToken(cfg), second.token)
  })

  test('configured by flag or BREAKID_API_TOKEN: used as is, no file written', () => {
    const cfg = loadConfig({ 'data-dir': join(dir, 'other') }, { BREAKID_API_TOKEN: TOKEN })
    assert.deepEqual(resolveApiToken(cfg).path, undefined)
    assert.equal(readApiToken(cfg), TOKEN)
    assert.equal(
      loadConfig({ 'api-token': `${TOKEN}-flag` }, { BREAKID_API_TOKEN: TOKEN }).apiToken,
      `${TOKEN}-flag`,
    )
    for (const bad of ['short', 'has spaces in it 0123456789']) {
      assert.throws(() => loadConfig({ 'api-token': bad }, {}), /apiToken: expected 16 to 256 printable/)
    }
  })

  test('bearer comparison and the JSON content types', () => {
    assert.ok(bearerMatches(`Bearer ${TOKEN}`, TOKEN))
    assert.ok(!bearerMatches(`Bearer ${TOKEN}x`, TOKEN))
    assert.ok(!bearerMatches(TOKEN, TOKEN))
    assert.ok(!bearerMatches(undefined, TOKEN))
    for (const t of ['application/json', 'application/json; charset=utf-8', 'application/vnd.api+json']) {
      assert.ok(isJsonContentType(t), t)
    }
    for (const t of ['text/plain', 'application/jsonx', 'text/json', 'application/x-www-form-urlencoded']) {
      assert.ok(!isJsonContentType(t), t)
    }
  })
})

describe('query limits in the configuration', () => {
  test('defaults, precedence flags > environment, units', () => {
    assert.deepEqual(queryLimits(loadConfig({}, {})), DEFAULT_QUERY_LIMITS)
    const cfg = loadConfig(
      { 'query-max-execution-time': '1500ms', 'query-max-memory': '1GiB' },
      {
        BREAKID_QUERY_MAX_EXECUTION_TIME: '30',
        BREAKID_QUERY_MAX_RESULT_ROWS: '500',
        BREAKID_QUERY_MAX_ROWS_TO_READ: '1000000',
        BREAKID_QUERY_CONCURRENCY: '1',
        BREAKID_QUERY_QUEUE: '0',
      },
    )
    assert.deepEqual(queryLimits(cfg), {
      maxExecutionTimeS: 1.5,
      maxMemoryBytes: 1024 ** 3,
      maxResultRows: 500,
      maxResultBytes: DEFAULT_QUERY_LIMITS.maxResultBytes,
      maxRowsToRead: 1_000_000,
      concurrency: 1,
      queueLength: 0,
    })
  })

  test('bad limits are refused naming the key', () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ 'query-max-execution-time': '0' }, /queryMaxExecutionTimeS/],
      [{ 'query-max-execution-time': 'forever' }, /queryMaxExecutionTimeS/],
      [{ 'query-max-memory': '12' }, /queryMaxMemoryBytes.*at least 1MiB/],
      [{ 'query-max-result-rows': '0' }, /queryMaxResultRows/],
      [{ 'query-max-rows-to-read': '1e9' }, /queryMaxRowsToRead/],
      [{ 'query-concurrency': '8' }, /queryConcurrency: expected a whole number from 1 to 3/],
    ]
    for (const [flags, expected] of cases) {
      assert.throws(
        () => loadConfig(flags, {}),
        (err: unknown) => err instanceof InvalidInputError && expected.test(err.message),
        JSON.stringify(flags),
      )
    }
  })
})
