/**
 * Readers learn a writer schema they have never seen from the `breakid.writer-schema` header: a
 * compatible evolution (an added field with a default, an older shape) is read, an incompatible one is
 * refused with the field named, a header that is not the record's schema is refused, and what is
 * learned is bounded. The writers here are avsc types built from edited copies of the published
 * schemas; test/integration/avro-python.kafka.test.ts does the same with Python's fastavro.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import avro from 'avsc'
import type { Schema } from 'avsc'
import { RecordCodec } from '../../contract/codec.ts'
import { decodeMessage, packContainer } from '../../contract/container.ts'
import { AVSC_DIR, type AvroSchemaJson, olderPublishedSchemas, spanSchema } from '../../contract/schemas.ts'
import type { Span } from '../../contract/records.ts'
import { makeSpan } from '../../contract/synthetic.ts'
import {
  fingerprintOf,
  MAX_WRITER_SCHEMA_BYTES,
  WRITER_SCHEMA_HEADER,
  WriterSchemas,
} from '../../contract/writers.ts'
import { RecordDecodeError } from '../../core/errors.ts'

type Field = { name: string; type: unknown; default?: unknown }
const fieldsOf = (s: AvroSchemaJson) => (s as unknown as { fields: Field[] }).fields

/** A fresh span reader (the shared `codecs` would keep what one test learned for the next). */
const reader = () => new RecordCodec<Span>('span', spanSchema, olderPublishedSchemas('span'))

/** A foreign writer: its schema, and records in single-object encoding with its fingerprint. */
function writer(schema: AvroSchemaJson) {
  const type = avro.Type.forSchema(schema as Schema)
  const fingerprint = fingerprintOf(type)
  return {
    header: { [WRITER_SCHEMA_HEADER]: JSON.stringify(schema) },
    encode(record: object) {
      return Buffer.concat([Buffer.from([0xc3, 0x01]), fingerprint, type.toBuffer(record)])
    },
  }
}

const withField = (schema: AvroSchemaJson, field: Field): AvroSchemaJson => ({
  ...schema,
  fields: [...fieldsOf(schema), field],
})

function rejects(fn: () => unknown, reason: RecordDecodeError['reason'], text?: RegExp) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof RecordDecodeError, String(err))
    assert.equal(err.reason, reason, err.message)
    if (text) assert.match(err.message, text)
    return !err.retriable
  })
}

test('a writer with an added defaulted field is read, learned once, and then read without its header', () => {
  const codec = reader()
  const w = writer(withField(spanSchema, { name: 'gpu_sm_clock_mhz', type: 'int', default: 0 }))
  const span = makeSpan(4)
  const bytes = w.encode({ ...span, gpu_sm_clock_mhz: 1980 })
  rejects(() => codec.decode(bytes), 'unknown_schema', new RegExp(WRITER_SCHEMA_HEADER))
  assert.deepEqual(structuredClone(codec.decode(bytes, w.header)), span, 'the extra field skipped')
  assert.equal(codec.writers.learnedCount, 1)
  assert.ok(codec.recognises(bytes))
  // learned: a later message without the header (or with another header) still reads
  assert.deepEqual(structuredClone(codec.decode(bytes)), span)
})

test('a v1-shaped writer with an extra field of its own: v2 fields take their defaults', () => {
  const codec = reader()
  const v1 = JSON.parse(readFileSync(join(AVSC_DIR, 'span.v1.avsc'), 'utf8')) as AvroSchemaJson
  const w = writer(withField(v1, { name: 'tenant', type: 'string', default: '' }))
  const { run_id: _, ...v1Span } = makeSpan(2)
  const got = codec.decode(w.encode({ ...v1Span, tenant: 'acme' }), w.header)
  assert.deepEqual(structuredClone(got), { ...v1Span, run_id: null })
})

test('an incompatible writer is refused, naming the field, and stays refused', () => {
  const codec = reader()
  const wrongType = writer({
    ...spanSchema,
    fields: fieldsOf(spanSchema).map((f) => (f.name === 'total_us' ? { ...f, type: 'string' } : f)),
  })
  const bytes = wrongType.encode({ ...makeSpan(1), total_us: '1200' })
  rejects(
    () => codec.decode(bytes, wrongType.header),
    'incompatible_schema',
    /field total_us: .*string.*long/,
  )
  rejects(() => codec.decode(bytes), 'incompatible_schema', /field total_us/)
  assert.equal(codec.writers.learnedCount, 0)

  const missing = writer({ ...spanSchema, fields: fieldsOf(spanSchema).filter((f) => f.name !== 'model') })
  const { model: _, ...noModel } = makeSpan(1)
  rejects(
    () => codec.decode(missing.encode(noModel), missing.header),
    'incompatible_schema',
    /field model is missing and has no default/,
  )

  const renamed = writer({ ...spanSchema, name: 'Request' })
  rejects(
    () => codec.decode(renamed.encode(makeSpan(1)), renamed.header),
    'incompatible_schema',
    /writer's record is breakid\.v1\.Request/,
  )
})

test("a header that is not an Avro schema, or not the record's, is refused", () => {
  const codec = reader()
  const w = writer(withField(spanSchema, { name: 'x', type: 'int', default: 0 }))
  const bytes = w.encode({ ...makeSpan(1), x: 1 })
  const other = JSON.stringify(withField(spanSchema, { name: 'y', type: 'int', default: 0 }))
  rejects(() => codec.decode(bytes, { [WRITER_SCHEMA_HEADER]: other }), 'bad_writer_schema', /fingerprint/)
  rejects(() => codec.decode(bytes, { [WRITER_SCHEMA_HEADER]: '{"type":' }), 'bad_writer_schema')
  rejects(() => codec.decode(bytes, { [WRITER_SCHEMA_HEADER]: '{"type":"nope"}' }), 'bad_writer_schema')
  const deep = `${'{"type":"array","items":'.repeat(5000)}"int"${'}'.repeat(5000)}`
  rejects(() => codec.decode(bytes, { [WRITER_SCHEMA_HEADER]: deep }), 'bad_writer_schema')
  const huge = JSON.stringify({ ...spanSchema, doc: 'x'.repeat(MAX_WRITER_SCHEMA_BYTES) })
  rejects(() => codec.decode(bytes, { [WRITER_SCHEMA_HEADER]: huge }), 'bad_writer_schema', /over/)
  // none of that was learned or refused for good: the right header still works
  assert.equal(codec.decode(bytes, w.header).request_id, 'req-1')
})

test("a container's records share the header; bad bodies stay per record", () => {
  const codec = reader()
  const w = writer(withField(spanSchema, { name: 'x', type: 'int', default: 0 }))
  const good = [1, 2, 3].map((i) => w.encode({ ...makeSpan(i), x: i }))
  const cut = good[1]!.subarray(0, good[1]!.length - 4)
  const records = decodeMessage<Span>(codec, packContainer([good[0]!, cut, good[2]!]), w.header)
  assert.deepEqual(
    records.map((r) => r.record?.request_id ?? r.error?.reason),
    ['req-1', 'malformed', 'req-3'],
  )
})

test('learned and refused writers are bounded, least recently used forgotten first', () => {
  const type = avro.Type.forSchema(spanSchema as unknown as Schema)
  const writers = new WriterSchemas('span', type, [type], 2)
  const schemas = ['a', 'b', 'c'].map((n) => withField(spanSchema, { name: n, type: 'int', default: 0 }))
  const keys = schemas.map((s) => fingerprintOf(avro.Type.forSchema(s as Schema)).toString('hex'))
  const header = (i: number) => JSON.stringify(schemas[i])
  writers.find(keys[0]!, header(0))
  writers.find(keys[1]!, header(1))
  writers.find(keys[0]!, undefined) // a used most recently
  writers.find(keys[2]!, header(2)) // b goes
  assert.equal(writers.learnedCount, 2)
  assert.ok(writers.known(keys[0]!) && writers.known(keys[2]!))
  assert.ok(!writers.known(keys[1]!))
  rejects(() => writers.find(keys[1]!, undefined), 'unknown_schema')
})
