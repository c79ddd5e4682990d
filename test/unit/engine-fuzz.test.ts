/**
 * A fuzz run of the engine's HTTP surface (issue 11): malformed JSON, deep nesting, huge numbers,
 * wrong datatypes and shapes, bad binary headers (Inference-Header-Content-Length wrong, negative,
 * past the end), bad UTF-8, oversized ids and strange URLs, against the real mlp and transformer.
 * Deterministic and bounded: a seeded PRNG draws a few hundred cases, sent through fastify's
 * `inject()` and, for the binary extension and raw bytes, over a real socket. Every answer must be
 * below 500 with a JSON `{ "error" }` body when it is an error, and the server must serve a valid
 * request afterwards.
 */
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { after, before, test } from 'node:test'
import { getModel, mulberry32, toKServeInputs } from '../../engine/models/zoo.ts'
import { type EngineHarness, startEngineHarness } from '../helpers/engine-harness.ts'

const SEED = 0x11f022
const INJECT_CASES = 300
const SOCKET_CASES = 80

let h: EngineHarness
let base: string

before(async () => {
  h = await startEngineHarness({
    models: [{ name: 'mlp' }, { name: 'transformer' }],
    batching: { maxBatchSize: 8, maxQueueDelayMs: 1 },
  })
  await h.app.listen({ port: 0, host: '127.0.0.1' })
  base = `http://127.0.0.1:${(h.app.server.address() as { port: number }).port}`
})
after(async () => {
  await h?.close()
})

type Rng = () => number

interface Case {
  kind: string
  url: string
  body: Buffer
  headers: Record<string, string>
}

const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)]!
const int = (rng: Rng, lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1))

function validBody(rng: Rng, model: 'mlp' | 'transformer'): Record<string, unknown> {
  return { inputs: toKServeInputs(getModel(model).inputGenerator(int(rng, 1, 1e6), int(rng, 1, 3))) }
}

const HUGE_NUMBERS = [
  '1e309',
  '-1e400',
  '3.4e39',
  '1e20',
  '9007199254740993',
  '-0',
  '1e-400',
  '9'.repeat(400),
]
const DATATYPES = [
  'FP16',
  'BYTES',
  'UINT8',
  'INT32',
  'BOOL',
  'fp32',
  '',
  'FP32\u0000',
  'INT64',
  'FP64',
  'x'.repeat(300),
]
const SHAPES: unknown[] = [
  [],
  [0, 16],
  [-1, 16],
  [1e10, 16],
  [1, 16, 1],
  [65, 16],
  ['1', 16],
  [1.5, 16],
  16,
  null,
  [1, 32],
  Array(40).fill(1),
]
const JUNK_VALUES: unknown[] = ['five', true, null, {}, [], { a: 1 }, '\ud800', 'NaN']

/** A JSON body with one thing wrong (or, now and then, nothing wrong at all). */
function jsonCase(rng: Rng): Case {
  const model = pick(rng, ['mlp', 'transformer'] as const)
  const body = validBody(rng, model)
  const input = (body.inputs as Record<string, unknown>[])[0]!
  const url = `/v2/models/${model}/infer`
  const json = (kind: string, text: string): Case => ({
    kind,
    url,
    body: Buffer.from(text),
    headers: { 'content-type': 'application/json' },
  })
  switch (int(rng, 0, 11)) {
    case 0: {
      const text = JSON.stringify(body)
      return json('truncated JSON', text.slice(0, int(rng, 0, text.length - 1)))
    }
    case 1: {
      const text = JSON.stringify(body)
      const at = int(rng, 0, text.length - 1)
      return json(
        'mutated JSON',
        text.slice(0, at) + pick(rng, ['{', '}', ']', '"', ',', ':', '\\', 'x']) + text.slice(at + 1),
      )
    }
    case 2: {
      const depth = int(rng, 20, 20_000)
      const open = pick(rng, ['[', '{"a":'])
      const close = open === '[' ? ']' : '}'
      const nest = open.repeat(depth) + (open === '[' ? '' : '1') + close.repeat(depth)
      const where = int(rng, 0, 2)
      if (where === 0)
        return json(
          'deep data',
          JSON.stringify({ ...body, inputs: [{ ...input, data: '@' }] }).replace('"@"', nest),
        )
      if (where === 1)
        return json(
          'deep parameters',
          JSON.stringify({ ...body, parameters: { p: '@' } }).replace('"@"', nest),
        )
      return json('deep body', nest)
    }
    case 3: {
      const data = input.data as unknown[]
      const at = int(rng, 0, data.length - 1)
      const text = JSON.stringify({
        ...body,
        inputs: [{ ...input, data: data.map((v, i) => (i === at ? '@' : v)) }],
      })
      return json('huge number', text.replace('"@"', pick(rng, HUGE_NUMBERS)))
    }
    case 4:
      return json(
        'wrong datatype',
        JSON.stringify({ inputs: [{ ...input, datatype: pick(rng, DATATYPES) }] }),
      )
    case 5:
      return json('wrong shape', JSON.stringify({ inputs: [{ ...input, shape: pick(rng, SHAPES) }] }))
    case 6: {
      const data = input.data as unknown[]
      const at = int(rng, 0, data.length - 1)
      return json(
        'junk value',
        JSON.stringify({
          inputs: [{ ...input, data: data.map((v, i) => (i === at ? pick(rng, JUNK_VALUES) : v)) }],
        }),
      )
    }
    case 7: {
      const id = 'i'.repeat(pick(rng, [255, 256, 257, 10_000, 2 * 1024 * 1024]))
      return json('long id', JSON.stringify({ id, ...body }))
    }
    case 8: {
      // bytes that are not UTF-8 inside a string, and outside any string
      const text = JSON.stringify({ id: '@', ...body })
      const bad = Buffer.from(pick(rng, ['ff', 'c0af', 'eda080', 'f8888080', 'fe']), 'hex')
      const [head, tail] = text.split('@') as [string, string]
      const inside = rng() < 0.5
      return {
        kind: 'bad UTF-8',
        url,
        body: inside
          ? Buffer.concat([Buffer.from(head), bad, Buffer.from(tail)])
          : Buffer.concat([bad, Buffer.from(text)]),
        headers: { 'content-type': 'application/json' },
      }
    }
    case 9:
      return json(
        'token id outside the vocabulary',
        JSON.stringify(validBody(rng, 'transformer')).replace(
          /\[(\d+),/,
          `[${pick(rng, ['1024', '-1', '99999999', '1.5'])},`,
        ),
      )
    case 10: {
      const other = pick(rng, [
        '/v2/models/nope/infer',
        '/v2/models/mlp/versions/0/infer',
        '/v2/models/mlp/versions/abc/infer',
        '/v2/models/mlp/versions/99999999999999999999/infer',
        `/v2/models/${'m'.repeat(500)}/infer`,
        '/v2/models/%ff/infer',
        '/v2/models/mlp%00/infer',
      ])
      return { ...json('strange URL', JSON.stringify(body)), url: other }
    }
    default: {
      const type = pick(rng, [
        'text/plain',
        'application/x-www-form-urlencoded',
        'application/json; charset=latin1',
        'application/vnd.x+json',
      ])
      return { ...json('content type', JSON.stringify(body)), headers: { 'content-type': type } }
    }
  }
}

/** A binary-extension body (JSON header + tensor bytes) with its framing broken one way or another. */
function binaryCase(rng: Rng): Case {
  const rows = int(rng, 1, 3)
  const values = getModel('mlp').inputGenerator(int(rng, 1, 1e6), rows)[0]!.data as Float32Array
  let tensor = Buffer.from(values.buffer, values.byteOffset, values.byteLength)
  let size: unknown = tensor.length
  const mode = int(rng, 0, 7)
  if (mode === 0) size = tensor.length + pick(rng, [-4, -1, 1, 4])
  if (mode === 1) size = pick(rng, [-1, -1024, 1.5, '64', null, 2 ** 53])
  const header = Buffer.from(
    JSON.stringify({
      inputs: [
        { name: 'features', shape: [rows, 16], datatype: 'FP32', parameters: { binary_data_size: size } },
      ],
      outputs: [{ name: 'probs', parameters: { binary_data: rng() < 0.5 } }],
    }),
  )
  if (mode === 2) tensor = Buffer.alloc(tensor.length, 0xff) // NaN bit patterns
  let headerLength = String(header.length)
  if (mode === 3)
    headerLength = pick(rng, ['-5', '0', 'abc', '', '1e3', ' 12 ', '99999999999999999999', '0x10'])
  if (mode === 4) headerLength = String(header.length + tensor.length + int(rng, 1, 1000)) // past the end
  if (mode === 5) headerLength = String(int(rng, 1, header.length - 1)) // cuts the JSON
  const body =
    mode === 6
      ? Buffer.concat([header, tensor.subarray(0, int(rng, 0, tensor.length))])
      : Buffer.concat([header, tensor])
  if (mode === 7) body[int(rng, 0, body.length - 1)] = int(rng, 0, 255) // one byte anywhere
  return {
    kind: `binary mode ${mode}`,
    url: '/v2/models/mlp/infer',
    body,
    headers: { 'inference-header-content-length': headerLength, 'content-type': 'application/octet-stream' },
  }
}

function assertAnswer(c: Case, status: number, contentType: string | undefined, text: string): void {
  const what = `${c.kind}: ${status} ${text.slice(0, 200)}`
  assert.ok(status < 500, what)
  if (status >= 400) {
    assert.match(contentType ?? '', /^application\/json/, what)
    assert.equal(typeof (JSON.parse(text) as { error?: unknown }).error, 'string', what)
  }
}

test(`${INJECT_CASES} fuzzed requests through inject() and ${SOCKET_CASES} over a socket: no 5xx, still serving`, async () => {
  const rng = mulberry32(SEED)
  const statuses = new Map<number, number>()
  const kinds = new Map<string, number>()
  const count = (c: Case, status: number) => {
    statuses.set(status, (statuses.get(status) ?? 0) + 1)
    kinds.set(c.kind, (kinds.get(c.kind) ?? 0) + 1)
  }
  for (let i = 0; i < INJECT_CASES; i++) {
    const c = rng() < 0.8 ? jsonCase(rng) : binaryCase(rng)
    const res = await h.app.inject({ method: 'POST', url: c.url, headers: c.headers, payload: c.body })
    count(c, res.statusCode)
    assertAnswer(c, res.statusCode, res.headers['content-type'] as string | undefined, res.body)
  }
  for (let i = 0; i < SOCKET_CASES; i++) {
    const c = rng() < 0.7 ? binaryCase(rng) : jsonCase(rng)
    const res = await fetch(`${base}${c.url}`, {
      method: 'POST',
      headers: c.headers,
      body: new Uint8Array(c.body),
    })
    count(c, res.status)
    assertAnswer(c, res.status, res.headers.get('content-type') ?? undefined, await res.text())
  }
  // raw bytes on the socket: a body shorter than its Content-Length, then the connection closed
  for (let i = 0; i < 5; i++) await rawCut(JSON.stringify(validBody(rng, 'mlp')))

  assert.ok(
    [...statuses.keys()].every((s) => s < 500),
    JSON.stringify([...statuses]),
  )
  assert.ok((statuses.get(200) ?? 0) > 0 && (statuses.get(400) ?? 0) > 0, JSON.stringify([...statuses]))
  // every kind of case was drawn, several times
  assert.equal(kinds.size, 14 + 8, JSON.stringify([...kinds]))
  assert.ok(
    [...kinds.values()].every((n) => n >= 3),
    JSON.stringify([...kinds]),
  )
  // alive: a valid request is answered, on inject and on the socket
  const ok = await h.app.inject({
    method: 'POST',
    url: '/v2/models/mlp/infer',
    payload: validBody(rng, 'mlp'),
  })
  assert.equal(ok.statusCode, 200, ok.body)
  const live = await fetch(`${base}/v2/health/ready`)
  assert.equal(live.status, 200)
  assert.equal(h.engine.inFlight, 0, 'no request left hanging')
})

/** Sends a request whose body stops half-way, and hangs up. */
function rawCut(json: string): Promise<void> {
  const port = Number(new URL(base).port)
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(
        `POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${json.length}\r\n\r\n${json.slice(0, json.length >> 1)}`,
      )
      setImmediate(() => socket.destroy())
    })
    socket.on('close', () => resolve())
    socket.on('error', reject)
  })
}
