/**
 * The binary tensor data extension as a foreign client speaks it: request bodies are assembled byte
 * by byte here (JSON header + little-endian tensor data, Buffer.concat), sent over a real socket with
 * fetch, and the answers are decoded by hand and compared with the JSON path's answers for the same
 * rows. Also the repository's multi-model view (`breakid serve --models mlp@1,mlp@2,transformer`).
 */
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import { deflateSync, gzipSync } from 'node:zlib'
import { after, before, describe, test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { parseModelsFlag } from '../../app/flags.ts'
import { Engine } from '../../engine/engine.ts'
import { buildEngineApp } from '../../engine/http.ts'
import { type EnsuredModel, ensureModel, toKServeInputs } from '../../engine/models/zoo.ts'
import { TelemetryEmitter } from '../../engine/telemetry/emitter.ts'
import type { Span } from '../../contract/records.ts'
import { createLogger } from '../../core/logger.ts'
import { EmbeddedBus } from '../../bus/embedded-bus.ts'

const MODEL_CACHE_DIR = fileURLToPath(new URL('../../.cache/models', import.meta.url))
const logger = createLogger('silent')
const TOLERANCE = 1e-6

let mlp: EnsuredModel
let transformer: EnsuredModel
let engine: Engine
let app: FastifyInstance
let base: string
const spans: Span[] = []

before(async () => {
  const models = parseModelsFlag('mlp@1,mlp@2,transformer')
  ;[mlp, transformer] = await Promise.all([
    ensureModel('mlp', { cacheDir: MODEL_CACHE_DIR }),
    ensureModel('transformer', { cacheDir: MODEL_CACHE_DIR }),
  ])
  engine = new Engine({
    models,
    modelCacheDir: MODEL_CACHE_DIR,
    logger,
    emitter: new TelemetryEmitter({ producer: new EmbeddedBus().producer(), logger }),
    hwIntervalMs: 3_600_000,
    spanObservers: [(s) => spans.push(s)],
  })
  await engine.start()
  app = buildEngineApp(engine, { bodyLimitBytes: 64 * 1024 })
  await app.listen({ port: 0, host: '127.0.0.1' })
  base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
})
after(async () => {
  await app?.close()
  await engine?.stop()
})

/** FP32 values as little-endian bytes, written one by one as a non-JS client would. */
function fp32Bytes(values: ArrayLike<number>): Buffer {
  const b = Buffer.alloc(values.length * 4)
  for (let i = 0; i < values.length; i++) b.writeFloatLE(values[i]!, i * 4)
  return b
}

function int64Bytes(values: ArrayLike<bigint>): Buffer {
  const b = Buffer.alloc(values.length * 8)
  for (let i = 0; i < values.length; i++) b.writeBigInt64LE(values[i]!, i * 8)
  return b
}

/** `Inference-Header-Content-Length` framing: the JSON header, then the raw tensor bytes. */
function binaryBody(header: unknown, ...tensors: Buffer[]): { body: Buffer; headerLength: number } {
  const json = Buffer.from(JSON.stringify(header))
  return { body: Buffer.concat([json, ...tensors]), headerLength: json.length }
}

async function sendBinary(
  path: string,
  header: unknown,
  tensors: Buffer[],
  contentType: string | null = 'application/octet-stream',
) {
  const { body, headerLength } = binaryBody(header, ...tensors)
  const headers: Record<string, string> = { 'Inference-Header-Content-Length': String(headerLength) }
  if (contentType) headers['Content-Type'] = contentType
  const res = await fetch(`${base}${path}`, { method: 'POST', headers, body: new Uint8Array(body) })
  return { res, raw: Buffer.from(await res.arrayBuffer()), sentBytes: body.length }
}

async function sendJson(path: string, payload: unknown) {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(payload),
  })
  return { res, json: (await res.json()) as JsonAnswer }
}

interface OutputHeader {
  name: string
  datatype: string
  shape: number[]
  data?: number[]
  parameters?: { binary_data_size?: number }
}
interface JsonAnswer {
  model_name: string
  model_version: string
  id: string
  outputs: OutputHeader[]
  error?: string
}

/** Splits a binary answer by its Inference-Header-Content-Length and decodes FP32 outputs by hand. */
function decodeBinaryAnswer(
  res: Response,
  raw: Buffer,
): { header: JsonAnswer; values: Map<string, number[]> } {
  const n = Number(res.headers.get('inference-header-content-length'))
  assert.ok(Number.isInteger(n) && n > 0 && n <= raw.length, `header length ${n} of ${raw.length}`)
  const header = JSON.parse(raw.subarray(0, n).toString('utf8')) as JsonAnswer
  const values = new Map<string, number[]>()
  let offset = n
  for (const o of header.outputs) {
    const size = o.parameters?.binary_data_size
    if (size === undefined) continue
    assert.equal(o.data, undefined, `${o.name}: binary outputs carry no JSON data`)
    assert.equal(o.datatype, 'FP32')
    assert.equal(size, o.shape.reduce((a, b) => a * b, 1) * 4, `${o.name}: size matches the shape`)
    const v: number[] = []
    for (let i = 0; i < size; i += 4) v.push(raw.readFloatLE(offset + i))
    values.set(o.name, v)
    offset += size
  }
  assert.equal(offset, raw.length, 'the body ends where the last output ends')
  return { header, values }
}

function assertClose(actual: readonly number[], expected: readonly number[], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`)
  for (const [i, v] of actual.entries()) {
    assert.ok(Math.abs(v - expected[i]!) <= TOLERANCE, `${what}[${i}]: ${v} vs ${expected[i]}`)
  }
}

const features = (seed: number, rows: number) => mlp.inputGenerator(seed, rows)[0]!.data as Float32Array

describe('binary tensor data over a real socket', () => {
  test('binary input and binary output answer what the JSON path answers', async () => {
    const data = features(1, 3)
    const viaJson = await sendJson('/v2/models/mlp/infer', {
      inputs: toKServeInputs(mlp.inputGenerator(1, 3)),
    })
    assert.equal(viaJson.res.status, 200)

    const { res, raw, sentBytes } = await sendBinary(
      '/v2/models/mlp/infer',
      {
        id: 'bin-1',
        inputs: [
          { name: 'features', shape: [3, 16], datatype: 'FP32', parameters: { binary_data_size: 192 } },
        ],
        outputs: [{ name: 'scores', parameters: { binary_data: true } }],
      },
      [fp32Bytes(data)],
    )
    assert.equal(res.status, 200, raw.toString())
    assert.match(res.headers.get('content-type') ?? '', /^application\/octet-stream/)
    const { header, values } = decodeBinaryAnswer(res, raw)
    assert.equal(header.id, 'bin-1')
    assert.equal(header.model_name, 'mlp')
    assert.equal(header.model_version, '2', 'unversioned requests go to the newest version')
    assert.deepEqual(header.outputs[0]!.shape, [3, 4])
    assert.equal(header.outputs[0]!.parameters?.binary_data_size, 48)
    assertClose(values.get('scores')!, viaJson.json.outputs[0]!.data!, 'scores')

    const traceSpan = /^00-[0-9a-f]{32}-([0-9a-f]{16})-01$/.exec(res.headers.get('traceparent') ?? '')?.[1]
    const span = spans.find((s) => s.span_id === traceSpan)
    assert.equal(span?.status, 'ok')
    assert.equal(span?.request_bytes, sentBytes)
    assert.equal(span?.response_bytes, raw.length)
  })

  test('binary input with JSON output; JSON input with binary output (request-level flag)', async () => {
    const data = features(2, 2)
    const json = await sendJson('/v2/models/mlp/versions/1/infer', {
      inputs: toKServeInputs(mlp.inputGenerator(2, 2)),
    })
    assert.equal(json.json.model_version, '1')

    const binIn = await sendBinary(
      '/v2/models/mlp/versions/1/infer',
      {
        inputs: [
          { name: 'features', shape: [2, 16], datatype: 'FP32', parameters: { binary_data_size: 128 } },
        ],
      },
      [fp32Bytes(data)],
    )
    assert.equal(binIn.res.status, 200, binIn.raw.toString())
    assert.match(binIn.res.headers.get('content-type') ?? '', /^application\/json/)
    assert.equal(binIn.res.headers.get('inference-header-content-length'), null)
    const answer = JSON.parse(binIn.raw.toString()) as JsonAnswer
    assertClose(answer.outputs[0]!.data!, json.json.outputs[0]!.data!, 'scores')

    const res = await fetch(`${base}/v2/models/mlp/versions/1/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        inputs: toKServeInputs(mlp.inputGenerator(2, 2)),
        parameters: { binary_data_output: true },
      }),
    })
    assert.equal(res.status, 200)
    const { values } = decodeBinaryAnswer(res, Buffer.from(await res.arrayBuffer()))
    assertClose(values.get('scores')!, json.json.outputs[0]!.data!, 'scores')
  })

  test('the binary framing is honoured under application/json and with no content type at all', async () => {
    const data = features(3, 1)
    const header = {
      inputs: [{ name: 'features', shape: [1, 16], datatype: 'FP32', parameters: { binary_data_size: 64 } }],
    }
    const want = (
      await sendJson('/v2/models/mlp/infer', { inputs: toKServeInputs(mlp.inputGenerator(3, 1)) })
    ).json
    for (const type of ['application/json', null]) {
      const { res, raw } = await sendBinary('/v2/models/mlp/infer', header, [fp32Bytes(data)], type)
      assert.equal(res.status, 200, `${type}: ${raw.toString()}`)
      assertClose(
        (JSON.parse(raw.toString()) as JsonAnswer).outputs[0]!.data!,
        want.outputs[0]!.data!,
        String(type),
      )
    }
  })

  test('INT64 inputs travel as 8-byte little-endian values', async () => {
    const ids = transformer.inputGenerator(4, 2)[0]!.data as BigInt64Array
    const want = await sendJson('/v2/models/transformer/infer', {
      inputs: toKServeInputs(transformer.inputGenerator(4, 2)),
    })
    assert.equal(want.res.status, 200, want.json.error)
    const { res, raw } = await sendBinary(
      '/v2/models/transformer/infer',
      {
        inputs: [
          { name: 'input_ids', shape: [2, 32], datatype: 'INT64', parameters: { binary_data_size: 512 } },
        ],
        parameters: { binary_data_output: true },
      },
      [int64Bytes(ids)],
    )
    assert.equal(res.status, 200, raw.toString())
    const { values } = decodeBinaryAnswer(res, raw)
    assertClose(values.get('embedding')!, want.json.outputs[0]!.data!, 'embedding')
  })

  test('sizes that disagree, broken framing and unknown outputs are clear 400s; serving goes on', async () => {
    const row = fp32Bytes(features(5, 1))
    const input = (size: number, shape = [1, 16]) => ({
      name: 'features',
      shape,
      datatype: 'FP32',
      parameters: { binary_data_size: size },
    })
    const cases: { name: string; send: () => Promise<{ res: Response; raw: Buffer }>; error: RegExp }[] = [
      {
        name: 'binary_data_size not shape × element size',
        send: () => sendBinary('/v2/models/mlp/infer', { inputs: [input(60)] }, [row.subarray(0, 60)]),
        error: /binary_data_size 60 does not match 16 FP32 values \(64 bytes\)/,
      },
      {
        name: 'more bytes than the inputs declare',
        send: () => sendBinary('/v2/models/mlp/infer', { inputs: [input(64)] }, [row, Buffer.alloc(4)]),
        error: /binary data is 68 bytes but the inputs' binary_data_size add up to 64/,
      },
      {
        name: 'fewer bytes than declared',
        send: () => sendBinary('/v2/models/mlp/infer', { inputs: [input(64)] }, [row.subarray(0, 32)]),
        error: /runs past the 32 bytes of binary data/,
      },
      {
        name: 'a header length beyond the body',
        send: async () => {
          const res = await fetch(`${base}/v2/models/mlp/infer`, {
            method: 'POST',
            headers: {
              'content-type': 'application/octet-stream',
              'inference-header-content-length': '5000',
            },
            body: new Uint8Array(Buffer.from('{"inputs":[]}')),
          })
          return { res, raw: Buffer.from(await res.arrayBuffer()) }
        },
        error: /Inference-Header-Content-Length 5000 exceeds the body's 13 bytes/,
      },
      {
        name: 'a header length that is not a number',
        send: async () => {
          const res = await fetch(`${base}/v2/models/mlp/infer`, {
            method: 'POST',
            headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': 'ten' },
            body: new Uint8Array(row),
          })
          return { res, raw: Buffer.from(await res.arrayBuffer()) }
        },
        error: /"ten" is not a positive integer/,
      },
      {
        name: 'binary_data_size on a plain JSON request',
        send: async () => {
          const { res, json } = await sendJson('/v2/models/mlp/infer', { inputs: [input(64)] })
          return { res, raw: Buffer.from(JSON.stringify(json)) }
        },
        error: /carries no binary data/,
      },
      {
        name: 'a JSON header that is not JSON',
        send: async () => {
          const res = await fetch(`${base}/v2/models/mlp/infer`, {
            method: 'POST',
            headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': '4' },
            body: new Uint8Array(Buffer.concat([Buffer.from('{"in'), row])),
          })
          return { res, raw: Buffer.from(await res.arrayBuffer()) }
        },
        error: /JSON/,
      },
      {
        name: 'an output the model does not produce',
        send: () =>
          sendBinary(
            '/v2/models/mlp/infer',
            { inputs: [input(64)], outputs: [{ name: 'logits', parameters: { binary_data: true } }] },
            [row],
          ),
        error: /unknown output "logits"; model mlp produces scores/,
      },
    ]
    for (const c of cases) {
      const { res, raw } = await c.send()
      assert.equal(res.status, 400, `${c.name}: ${raw.toString()}`)
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/, c.name)
      assert.match((JSON.parse(raw.toString()) as { error: string }).error, c.error, c.name)
      const ok = await sendBinary('/v2/models/mlp/infer', { inputs: [input(64)] }, [row])
      assert.equal(ok.res.status, 200, `after ${c.name}`)
    }

    // a body that is neither JSON nor framed is refused by media type
    const res = await fetch(`${base}/v2/models/mlp/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: new Uint8Array(row),
    })
    assert.equal(res.status, 415)
  })
})

describe('several models and versions from one --models flag', () => {
  test('metadata lists versions, the versioned routes reach each, the server lists its extensions', async () => {
    const server = (await (await fetch(`${base}/v2`)).json()) as { extensions: string[] }
    assert.deepEqual(server.extensions.sort(), [
      'binary_tensor_data',
      'model_configuration',
      'model_repository',
      'statistics',
    ])
    const meta = (await (await fetch(`${base}/v2/models/mlp`)).json()) as {
      version: string
      versions: string[]
    }
    assert.equal(meta.version, '2')
    assert.deepEqual(meta.versions, ['1', '2'])
    const v1 = (await (await fetch(`${base}/v2/models/mlp/versions/1`)).json()) as { version: string }
    assert.equal(v1.version, '1')
    assert.equal((await fetch(`${base}/v2/models/mlp/versions/3`)).status, 404)
    assert.equal((await fetch(`${base}/v2/models/transformer/ready`)).status, 200)
    assert.equal((await fetch(`${base}/v2/models/mlp/versions/1/ready`)).status, 200)

    // the same rows, two versions, two answers
    const inputs = toKServeInputs(mlp.inputGenerator(9, 1))
    const a = await sendJson('/v2/models/mlp/versions/1/infer', { inputs })
    const b = await sendJson('/v2/models/mlp/versions/2/infer', { inputs })
    assert.deepEqual([a.json.model_version, b.json.model_version], ['1', '2'])
    assert.notDeepEqual(a.json.outputs[0]!.data, b.json.outputs[0]!.data)

    const index = (await (await fetch(`${base}/v2/repository/index`, { method: 'POST' })).json()) as {
      name: string
      version: string
      state: string
    }[]
    assert.deepEqual(
      index.map((e) => `${e.name}@${e.version}:${e.state}`),
      ['mlp@1:READY', 'mlp@2:READY', 'transformer@1:READY'],
    )
  })

  test("parseModelsFlag keeps a model's options together", () => {
    assert.deepEqual(parseModelsFlag('mlp@1,resnet50@2:w=0.25,r=32,cnn'), [
      { name: 'mlp', version: 1 },
      { name: 'resnet50', version: 2, options: { widthScale: 0.25, resolution: 32 } },
      { name: 'cnn', version: undefined },
    ])
  })
})

describe("what NVIDIA's client sends (tritonclient; test/integration/tritonclient.test.ts runs the client itself)", () => {
  const body = () => JSON.stringify({ inputs: toKServeInputs(mlp.inputGenerator(3, 2)) })
  // bytes, not a string: fetch would add `text/plain` to a string body, and no Content-Type is the point
  const post = (path: string, payload: Buffer | string, headers: Record<string, string>) =>
    fetch(`${base}${path}`, { method: 'POST', body: new Uint8Array(Buffer.from(payload)), headers })

  test('gzip and deflate request bodies answer what the plain body answers; the body limit holds after decompression', async () => {
    const plain = await (
      await post('/v2/models/mlp/infer', body(), { 'content-type': 'application/json' })
    ).json()
    for (const [encoding, compress] of [
      ['gzip', gzipSync],
      ['deflate', deflateSync],
    ] as const) {
      const res = await post('/v2/models/mlp/infer', compress(body()), { 'content-encoding': encoding })
      assert.equal(res.status, 200, encoding)
      const got = (await res.json()) as { outputs: unknown }
      assert.deepEqual(got.outputs, (plain as { outputs: unknown }).outputs)
    }
    // 1 MiB of spaces compresses to ~1 KiB, and is over this app's 64 KiB limit once inflated
    const bomb = gzipSync(`${' '.repeat(1024 * 1024)}${body()}`)
    const tooLarge = await post('/v2/models/mlp/infer', bomb, { 'content-encoding': 'gzip' })
    assert.equal(tooLarge.status, 413)
    const notGzip = await post('/v2/models/mlp/infer', body(), { 'content-encoding': 'gzip' })
    assert.equal(notGzip.status, 400)
    assert.match(((await notGzip.json()) as { error: string }).error, /not valid gzip/)
    const br = await post('/v2/models/mlp/infer', body(), { 'content-encoding': 'br' })
    assert.equal(br.status, 415)
  })

  test('repository load and unload take a JSON body without a Content-Type (core/http-guard.ts); another type is still 415', async () => {
    const load = await post('/v2/repository/models/mlp/load', '{}', {})
    assert.equal(load.status, 200)
    const index = await post('/v2/repository/index', '', {})
    assert.equal(index.status, 200)
    const wrongType = await post('/v2/repository/models/mlp/load', '{}', { 'content-type': 'text/plain' })
    assert.equal(wrongType.status, 415)
  })

  test('model configuration and statistics; pending requests and compute input/output on /metrics', async () => {
    const config = (await (await fetch(`${base}/v2/models/transformer/config`)).json()) as {
      input: { data_type: string; dims: number[] }[]
      max_batch_size: number
    }
    assert.equal(config.max_batch_size, 8)
    assert.ok(config.input.every((i) => i.data_type === 'TYPE_INT64' && !i.dims.includes(-1)))
    assert.equal((await fetch(`${base}/v2/models/nope/config`)).status, 404)
    assert.equal((await fetch(`${base}/v2/models/mlp/versions/7/stats`)).status, 404)
    const stats = (await (await fetch(`${base}/v2/models/mlp/stats`)).json()) as {
      model_stats: { name: string; version: string }[]
    }
    assert.deepEqual(
      stats.model_stats.map((m) => `${m.name}@${m.version}`),
      ['mlp@1', 'mlp@2'],
    )
    const metrics = await (await fetch(`${base}/metrics`)).text()
    assert.match(metrics, /^nv_inference_pending_request_count\{model="mlp",version="1"\} 0$/m)
    assert.match(metrics, /^# TYPE nv_inference_compute_input_duration_us counter$/m)
    assert.match(metrics, /^# TYPE nv_inference_compute_output_duration_us counter$/m)
  })
})
