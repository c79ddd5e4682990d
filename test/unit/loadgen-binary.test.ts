/**
 * The load generator's binary tensor extension (`inferBody(…, 'binary')`, `breakid loadgen --binary`):
 * the framing byte by byte, and a run against a real engine (cnn, real HTTP on 127.0.0.1) in which
 * every request is answered 200 — and the answer to a binary body is the answer to the same inputs
 * sent as JSON.
 */
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { Engine } from '../../engine/engine.ts'
import { buildEngineApp } from '../../engine/http.ts'
import { inferBody, runLoad } from '../../engine/loadgen.ts'
import { getModel } from '../../engine/models/zoo.ts'
import { TelemetryEmitter } from '../../engine/telemetry/emitter.ts'
import type { Span } from '../../contract/records.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { createLogger } from '../../core/logger.ts'
import { EmbeddedBus } from '../../bus/embedded-bus.ts'

const MODEL_CACHE_DIR = fileURLToPath(new URL('../../.cache/models', import.meta.url))

describe('inferBody', () => {
  test('binary: JSON header naming its byte sizes, then the little-endian tensor bytes', () => {
    const inputs = getModel('cnn').inputGenerator(3, 2)
    const { bytes, headers } = inferBody(inputs, 'binary')
    assert.equal(headers['content-type'], 'application/octet-stream')
    const headerLength = Number(headers['inference-header-content-length'])
    const header = JSON.parse(bytes.subarray(0, headerLength).toString('utf8')) as {
      inputs: {
        name: string
        shape: number[]
        datatype: string
        data?: unknown
        parameters: { binary_data_size: number }
      }[]
      parameters: { binary_data_output: boolean }
    }
    assert.deepEqual(header.inputs, [
      {
        name: 'image',
        shape: [2, 3, 32, 32],
        datatype: 'FP32',
        parameters: { binary_data_size: 2 * 3072 * 4 },
      },
    ])
    assert.equal(header.parameters.binary_data_output, true, 'outputs asked for as binary too')
    assert.equal(bytes.length, headerLength + 2 * 3072 * 4)
    const data = inputs[0]!.data as Float32Array
    for (const i of [0, 1, 3071, 3072, 6143]) {
      assert.equal(bytes.readFloatLE(headerLength + i * 4), data[i], `value ${i}`)
    }
  })

  test('binary INT64 inputs are 8 little-endian bytes each', () => {
    const inputs = getModel('transformer').inputGenerator(1, 1)
    const { bytes, headers } = inferBody(inputs, 'binary')
    const n = Number(headers['inference-header-content-length'])
    const ids = inputs[0]!.data as BigInt64Array
    assert.equal(bytes.length - n, ids.length * 8)
    assert.equal(bytes.readBigInt64LE(n + 8 * 5), ids[5])
  })

  test('json: the inputs as data arrays; an unknown encoding is refused', () => {
    const inputs = getModel('mlp').inputGenerator(1, 1)
    const { bytes, headers } = inferBody(inputs, 'json')
    assert.equal(headers['content-type'], 'application/json')
    const body = JSON.parse(bytes.toString()) as { inputs: { data: number[]; shape: number[] }[] }
    assert.deepEqual(body.inputs[0]!.shape, [1, 16])
    assert.deepEqual(body.inputs[0]!.data, Array.from(inputs[0]!.data as Float32Array))
    assert.throws(() => inferBody(inputs, 'xml' as 'json'), InvalidInputError)
  })
})

describe('binary load against a real engine', () => {
  let engine: Engine
  let app: FastifyInstance
  let url: string
  const spans: Span[] = []
  before(async () => {
    const logger = createLogger('silent')
    engine = new Engine({
      models: [{ name: 'cnn' }],
      modelCacheDir: MODEL_CACHE_DIR,
      logger,
      emitter: new TelemetryEmitter({ producer: new EmbeddedBus().producer(), logger }),
      hwIntervalMs: 3_600_000,
      batching: { mode: 'adaptive', maxBatchSize: 8 },
      spanObservers: [(s) => spans.push(s)],
    })
    await engine.start()
    app = buildEngineApp(engine)
    await app.listen({ host: '127.0.0.1', port: 0 })
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/v2/models/cnn/infer`
  })
  after(async () => {
    await app?.close()
    await engine?.stop()
  })

  test('every binary request is answered 200, and the engine decoded binary tensors', async () => {
    const bodies = Array.from({ length: 4 }, (_, seed) =>
      inferBody(getModel('cnn').inputGenerator(seed, 1), 'binary'),
    )
    spans.length = 0
    const report = await runLoad({ url, bodies, ratePerSec: 100, durationMs: 1000, arrival: 'poisson' })
    assert.ok(report.sent >= 50, `${report.sent} sent`)
    assert.deepEqual(report.statuses, { 200: report.sent })
    assert.equal(report.ok, report.sent)
    assert.equal(spans.length, report.sent, 'one span per request')
    assert.ok(
      spans.every((s) => s.status === 'ok' && s.request_bytes === bodies[0]!.bytes.length),
      'every span ok, with the binary body size',
    )
  })

  test('the answer to a binary body is the answer to the same inputs as JSON', async () => {
    const inputs = getModel('cnn').inputGenerator(7, 1)
    const send = async (encoding: 'json' | 'binary') => {
      const { bytes, headers } = inferBody(inputs, encoding)
      const res = await fetch(url, { method: 'POST', headers, body: new Uint8Array(bytes) })
      return { res, raw: Buffer.from(await res.arrayBuffer()) }
    }
    const json = await send('json')
    assert.equal(json.res.status, 200, json.raw.toString())
    const expected = (JSON.parse(json.raw.toString()) as { outputs: { name: string; data: number[] }[] })
      .outputs[0]!
    const binary = await send('binary')
    assert.equal(binary.res.status, 200, binary.raw.toString())
    const n = Number(binary.res.headers.get('inference-header-content-length'))
    const header = JSON.parse(binary.raw.subarray(0, n).toString()) as {
      outputs: { name: string; shape: number[]; parameters: { binary_data_size: number } }[]
    }
    assert.equal(header.outputs[0]!.name, 'probs')
    assert.deepEqual(header.outputs[0]!.shape, [1, 10])
    assert.equal(header.outputs[0]!.parameters.binary_data_size, 40)
    const probs = Array.from({ length: 10 }, (_, i) => binary.raw.readFloatLE(n + i * 4))
    for (const [i, p] of probs.entries()) assert.ok(Math.abs(p - expected.data[i]!) < 1e-6, `probs[${i}]`)
  })
})
