/**
 * The contract's writing side as the emitter uses it: RecordCodec.encodeInto and MessageWriter write
 * the bytes `encode` and `encodeContainer` produce, into one buffer; recordsOf splits a message back
 * into its records' bytes by framing alone.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { encodeContainer, MessageWriter, packContainer, recordsOf } from '../../contract/container.ts'
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
