/**
 * The contract's writing side as the emitter uses it: RecordCodec.encodeInto and MessageWriter write
 * the bytes `encode` and `encodeContainer` produce, into one buffer; recordsOf splits a message back
 * into its records' bytes by framing alone.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  compiledEncoder,
  encodeContainer,
  MessageWriter,
  packContainer,
  recordsOf,
} from '../../contract/container.ts'
import type { Span } from '../../contract/records.ts'
import { makeSpan } from '../../contract/synthetic.ts'
import { codecs } from '../../contract/topics.ts'
import { RecordDecodeError } from '../../core/errors.ts'

test('encodeInto writes what encode writes, and says how much room is missing', () => {
  const span = makeSpan(3, { request_id: 'r'.repeat(500) })
  const want = codecs.span.encode(span)
  const buf = Buffer.alloc(want.length + 20)
  assert.equal(codecs.span.encodeInto(span, buf, 7), 7 + want.length)
  assert.ok(buf.subarray(7, 7 + want.length).equals(want))
  const small = Buffer.alloc(100)
  const missing = codecs.span.encodeInto(span, small, 0)
  assert.ok(missing < 0 && -missing >= want.length - 100, `answered ${missing}`)
  assert.ok(codecs.span.encodeInto(span, small, 95) < 0, 'not even room for the header')
})

test('MessageWriter: containers and single records, byte for byte, growing from a tiny buffer', () => {
  const spans = Array.from({ length: 40 }, (_, i) =>
    makeSpan(i, { request_id: i === 17 ? 'y'.repeat(20_000) : `req-${i}` }),
  )
  const writer = new MessageWriter(codecs.span, 64)
  const messages = []
  for (const group of [spans.slice(0, 25), spans.slice(25, 39)]) {
    writer.begin(true)
    for (const s of group) writer.add(s)
    messages.push(writer.end()!)
  }
  writer.begin(false)
  writer.add(spans[39]!)
  messages.push(writer.end()!)
  assert.ok(messages[0]!.value.equals(encodeContainer(codecs.span, spans.slice(0, 25))))
  assert.ok(messages[1]!.value.equals(encodeContainer(codecs.span, spans.slice(25, 39))))
  assert.ok(messages[2]!.value.equals(codecs.span.encode(spans[39]!)))
  assert.deepEqual(
    messages.map((m) => m.records),
    [25, 14, 1],
  )
  const total = spans.reduce((n, s) => n + codecs.span.encode(s).length, 0)
  assert.equal(writer.recordBytes, total + 39 * 4, 'record bytes and their length prefixes')
})

test('MessageWriter: a record the schema rejects leaves its message as it was', () => {
  const writer = new MessageWriter(codecs.span)
  writer.begin(true)
  writer.add(makeSpan(0))
  assert.throws(() => writer.add(makeSpan(1, { request_id: 42 as unknown as string })))
  writer.add(makeSpan(2))
  const m = writer.end()!
  assert.ok(m.value.equals(encodeContainer(codecs.span, [makeSpan(0), makeSpan(2)])))
  writer.begin(false)
  assert.throws(() => writer.add(makeSpan(3, { model: null as unknown as string })))
  assert.equal(writer.end(), undefined, 'a message with no record is no message')
  writer.begin(false)
  writer.add(makeSpan(4))
  assert.throws(() => writer.add(makeSpan(5)), /holds one record/)
})

test('recordsOf: the records of a container by framing, the message itself otherwise', () => {
  const spans: Span[] = Array.from({ length: 5 }, (_, i) => makeSpan(i))
  const container = encodeContainer(codecs.span, spans)
  const parts = recordsOf(container)
  assert.deepEqual(
    parts.map((p) => codecs.span.decode(p).request_id),
    spans.map((s) => s.request_id),
  )
  assert.ok(packContainer(parts).equals(container), 'framing the parts again gives the same bytes')
  const single = codecs.span.encode(spans[0]!)
  assert.deepEqual(recordsOf(single), [single])
  assert.throws(() => recordsOf(container.subarray(0, container.length - 3)), RecordDecodeError)
  assert.throws(() => recordsOf(Buffer.concat([container, Buffer.from([0])])), RecordDecodeError)
})

// ------------------------------------------------------------------ the compiled span writer

const LONGS = [
  0,
  1,
  -1,
  63,
  64,
  -64,
  -65,
  2 ** 30 - 1,
  2 ** 30,
  -(2 ** 30),
  -(2 ** 30) - 1,
  2 ** 31,
  -(2 ** 31) - 5,
  2 ** 40 + 3,
  9007199254740990,
  -9007199254740990,
  1_767_225_600_000_123,
]
const INTS = [0, 1, -1, 127, 128, 2 ** 31 - 1, -(2 ** 31)]
const DOUBLES = [
  0,
  -0,
  1.5,
  -2.25,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  1e-300,
  5e-324,
  Number.MAX_VALUE,
]
const STRINGS = [
  '',
  'a',
  'x'.repeat(63),
  'x'.repeat(64),
  'x'.repeat(65),
  'y'.repeat(500),
  'é',
  'instänce-7',
  '日本語のモデル',
  'emoji 🚀 in the middle',
  '\ud800 lone high surrogate',
  'lone low \udc00',
  `${'é'.repeat(31)}x`,
  `${'é'.repeat(33)}`,
  '\u007f\u0080\u07ff\u0800\uffff',
]

/** spans with every field at the edges of its type, deterministically */
function edgeSpans(): Span[] {
  const spans: Span[] = []
  const pick = <T>(xs: readonly T[], i: number) => xs[i % xs.length]!
  for (let i = 0; i < 600; i++) {
    spans.push(
      makeSpan(i, {
        timestamp_us: pick(LONGS, i),
        trace_id: pick(STRINGS, i),
        span_id: pick(STRINGS, i + 3),
        request_id: pick(STRINGS, i + 5),
        instance: pick(STRINGS, i + 7),
        batch_id: pick(STRINGS, i * 7),
        batch_size: pick(INTS, i),
        request_bytes: pick(INTS, i + 1),
        status: pick(['ok', 'client_error', 'server_error'] as const, i),
        // nullable fields default to null: absent is written as null
        error_class: i % 4 === 0 ? null : i % 4 === 1 ? undefined : pick(STRINGS, i + 2),
        cache_hit: i % 3 === 0,
        queue_wait_us: pick(LONGS, i + 4),
        total_us: pick(LONGS, i * 3),
        input_mean: i % 5 === 0 ? null : i % 5 === 1 ? undefined : pick(DOUBLES, i),
        output_confidence: i % 6 === 0 ? null : pick(DOUBLES, i + 2),
        // v2: absent (the default, null), null, or a run
        run_id: i % 3 === 0 ? undefined : i % 3 === 1 ? null : pick(STRINGS, i),
      }),
    )
  }
  return spans
}

test('the compiled span writer writes what avsc writes, at the edges of every field type', () => {
  const encode = compiledEncoder(codecs.span)
  assert.ok(encode, 'spans get the compiled writer')
  assert.equal(compiledEncoder(codecs.hw), undefined, 'hardware samples (an array of devices) keep avsc')
  const buf = Buffer.alloc(1 << 16)
  for (const span of edgeSpans()) {
    const want = codecs.span.encode(span)
    const end = encode(span, buf, 3)
    assert.ok(buf.subarray(3, end).equals(want), `${JSON.stringify(span).slice(0, 200)}`)
  }
  // and through MessageWriter, containers byte for byte
  const spans = edgeSpans()
  const writer = new MessageWriter(codecs.span, 64)
  writer.begin(true)
  for (const s of spans) writer.add(s)
  assert.ok(writer.end()!.value.equals(encodeContainer(codecs.span, spans)))
})

test('the compiled span writer refuses what avsc refuses', () => {
  const encode = compiledEncoder(codecs.span)!
  const invalid: Partial<Record<keyof Span, unknown[]>> = {
    timestamp_us: [1.5, '1', null, undefined, 2 ** 53, Number.NaN, 9007199254740991],
    trace_id: [null, undefined, 5, {}, ['a']],
    batch_size: [2 ** 31, 1.5, '4', null],
    status: ['fine', null, undefined, 0],
    error_class: [5, false],
    cache_hit: [0, 'true', null],
    input_mean: ['0.5', true],
    run_id: [5, false],
  }
  const buf = Buffer.alloc(4096)
  for (const [field, values] of Object.entries(invalid)) {
    for (const bad of values!) {
      const span = { ...makeSpan(1), [field]: bad } as Span
      assert.throws(() => codecs.span.encode(span), `avsc takes ${field}=${String(bad)}`)
      assert.throws(() => encode(span, buf, 0), `compiled takes ${field}=${String(bad)}`)
    }
  }
  for (const notARecord of [null, undefined, 5, 'span']) {
    assert.throws(() => encode(notARecord as unknown as Span, buf, 0))
  }
})

test('the compiled span writer answers minus the bytes missing when the buffer is too small', () => {
  const encode = compiledEncoder(codecs.span)!
  const span = makeSpan(2, { request_id: 'r'.repeat(300) })
  const want = codecs.span.encode(span)
  for (const room of [0, 5, 60, want.length - 1]) {
    const buf = Buffer.alloc(room + 7)
    const got = encode(span, buf, 7)
    assert.ok(got < 0 && -got >= want.length - room, `room ${room}: ${got}`)
  }
  const exact = Buffer.alloc(want.length * 3 + 64)
  assert.ok(exact.subarray(0, encode(span, exact, 0)).equals(want))
})
