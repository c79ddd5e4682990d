import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import avro from 'avsc'
import { RecordCodec } from '../../contract/codec.ts'
import {
  CONTAINER_MAGIC,
  decodeMessage,
  decodeRecords,
  encodeContainer,
  isContainer,
} from '../../contract/container.ts'
import { crc64Avro } from '../../contract/fingerprint.ts'
import { avscText, renderReadme } from '../../contract/published.ts'
import {
  AVSC_DIR,
  type AvroSchemaJson,
  avscFileName,
  RECORD_SCHEMAS,
  type RecordTypeName,
  spanSchema,
} from '../../contract/schemas.ts'
import { codecs } from '../../contract/topics.ts'
import { RecordDecodeError } from '../../core/errors.ts'
import { makeAlert, makeHwSample, makeSpan } from '../../contract/synthetic.ts'

test('CRC-64-AVRO matches the Avro specification test vectors', () => {
  // from the Avro repository's share/test/data/schema-tests.txt
  assert.equal(crc64Avro('"null"'), 7195948357588979594n)
  assert.equal(crc64Avro('"int"'), 8247732601305521295n)
})

test('every record type round-trips through the single-object encoding', () => {
  const cases = [
    [codecs.span, makeSpan(3, { error_class: 'Timeout', status: 'server_error' })],
    [codecs.hw, makeHwSample(7)],
    [codecs.alert, makeAlert({ ends_at_us: 1_767_225_700_000_000, status: 'resolved' })],
  ] as const
  for (const [codec, record] of cases) {
    const buf = (codec as RecordCodec<unknown>).encode(record)
    assert.deepEqual([buf[0], buf[1]], [0xc3, 0x01])
    assert.deepEqual(buf.subarray(2, 10), codec.fingerprint)
    // avsc decodes into generated record classes; compare the data, not the prototype
    assert.deepEqual(structuredClone((codec as RecordCodec<unknown>).decode(buf)), record)
  }
})

test('the TypeScript record shapes cover every schema field', () => {
  const fields = (codecs.span.type.schema() as { fields: { name: string }[] }).fields.map((f) => f.name)
  assert.deepEqual(Object.keys(makeSpan(0)).sort(), [...fields].sort())
  const hwFields = (codecs.hw.type.schema() as { fields: { name: string }[] }).fields.map((f) => f.name)
  assert.deepEqual(Object.keys(makeHwSample(0)).sort(), [...hwFields].sort())
  const alertFields = (codecs.alert.type.schema() as { fields: { name: string }[] }).fields.map((f) => f.name)
  assert.deepEqual(Object.keys(makeAlert()).sort(), [...alertFields].sort())
})

function rejects(buf: Buffer, reason: RecordDecodeError['reason']) {
  assert.throws(
    () => codecs.span.decode(buf),
    (err: unknown) => err instanceof RecordDecodeError && err.reason === reason && !err.retriable,
  )
}

test('foreign, truncated and unknown-schema records are rejected with a clear non-retriable error', () => {
  const good = codecs.span.encode(makeSpan(1))
  rejects(Buffer.from('{"not":"avro"}'), 'not_single_object')
  rejects(Buffer.alloc(0), 'not_single_object')
  rejects(good.subarray(0, 6), 'not_single_object')
  rejects(good.subarray(0, good.length - 5), 'malformed')
  const unknown = Buffer.from(good)
  unknown.writeBigUInt64LE(12345n, 2)
  rejects(unknown, 'unknown_schema')
  // a hardware sample is a valid record, but not a span
  rejects(codecs.hw.encode(makeHwSample(1)), 'unknown_schema')
})

/**
 * Fingerprints of every published schema version. A published version is frozen: changing a schema
 * means a new version (and a new file), never an edit, or records in flight become unreadable.
 */
const PUBLISHED = {
  'span.v1.avsc': 'f0c1d775f9f5edf1',
  'span.v2.avsc': 'facb875fb2c5a842',
  'hw_sample.v1.avsc': '25e0eabb79222af4',
  'hw_sample.v2.avsc': '9923bf1836c0ab36',
  'hw_sample.v3.avsc': '70afa8c001f7f643',
  'alert.v1.avsc': '7ce9b5ff5ec03c30',
  'alert.v2.avsc': '48074595a19d6a17',
} as const

const readAvsc = (file: string) => JSON.parse(readFileSync(join(AVSC_DIR, file), 'utf8')) as AvroSchemaJson

test('published schema versions never change, and every one is listed', () => {
  assert.deepEqual(readdirSync(AVSC_DIR).sort(), Object.keys(PUBLISHED).sort())
  for (const [file, fingerprint] of Object.entries(PUBLISHED)) {
    assert.equal(new RecordCodec(file, readAvsc(file)).fingerprint.toString('hex'), fingerprint, file)
  }
})

test('the current .avsc files and the README tables are generated from the contract', () => {
  for (const name of Object.keys(RECORD_SCHEMAS) as RecordTypeName[]) {
    const file = avscFileName(name, RECORD_SCHEMAS[name].version)
    assert.equal(
      readFileSync(join(AVSC_DIR, file), 'utf8'),
      avscText(name),
      `${file}: run npm run contract:generate`,
    )
  }
  const readme = readFileSync(join(import.meta.dirname, '../../README.md'), 'utf8')
  assert.equal(renderReadme(readme), readme, 'README tables: run npm run contract:generate')
})

test('records written by every published version are read by the current reader', () => {
  const samples = { span: makeSpan(5), hw_sample: makeHwSample(5), alert: makeAlert() }
  const current = { span: codecs.span, hw_sample: codecs.hw, alert: codecs.alert }
  for (const file of Object.keys(PUBLISHED)) {
    const name = file.split('.')[0] as RecordTypeName
    const writerSchema = readAvsc(file)
    const writer = new RecordCodec<Record<string, unknown>>(file, writerSchema)
    const written = writer.encode(samples[name] as unknown as Record<string, unknown>)
    const read = structuredClone((current[name] as RecordCodec<unknown>).decode(written)) as Record<
      string,
      unknown
    >
    const writerFields = new Set((writerSchema.fields as { name: string }[]).map((f) => f.name))
    for (const [field, value] of Object.entries(samples[name])) {
      if (writerFields.has(field)) assert.deepEqual(read[field], value, `${file}: ${field}`)
    }
    // fields the writer did not have come back as their defaults
    for (const f of RECORD_SCHEMAS[name].schema.fields as readonly { name: string; default?: unknown }[]) {
      if (!writerFields.has(f.name))
        assert.deepEqual(read[f.name], f.default, `${file}: default of ${f.name}`)
    }
  }
})

test('a reader resolves a writer whose newer schema it has seen: an added field with a default', () => {
  const newer = {
    ...spanSchema,
    fields: [...spanSchema.fields, { name: 'tenant', type: 'string', default: 'none' }],
  }
  const writer = new RecordCodec('span', spanSchema)
  const reader = new RecordCodec<Record<string, unknown>>('span', newer, [spanSchema])
  const decoded = reader.decode(writer.encode(makeSpan(5)))
  assert.equal(decoded.tenant, 'none')
  assert.equal(decoded.request_id, 'req-5')
  // a reader that does not know the newer writer's fingerprint rejects rather than misreads
  const newerWriter = new RecordCodec('span', newer)
  assert.throws(() => writer.decode(newerWriter.encode({ ...makeSpan(5), tenant: 't1' })), RecordDecodeError)
})

test('the span fingerprint is the canonical-form fingerprint any Avro implementation computes', () => {
  const canonical = JSON.stringify(avro.Type.forSchema(spanSchema as unknown as avro.Schema).schema())
  const fp = Buffer.alloc(8)
  fp.writeBigUInt64LE(crc64Avro(canonical))
  assert.deepEqual(codecs.span.fingerprint, fp)
  assert.ok(!canonical.includes('doc'), 'canonical form has no doc attributes')
})

test('a container carries several records; each bad one is rejected alone, a broken frame keeps what came before', () => {
  const spans = [0, 1, 2, 3].map((i) => makeSpan(i))
  const container = encodeContainer(codecs.span, spans)
  assert.ok(isContainer(container))
  assert.ok(!isContainer(codecs.span.encode(spans[0]!)))
  assert.deepEqual(decodeRecords(codecs.span, container).map(plain), spans)
  // a plain single-object message is a message of one record
  assert.deepEqual(
    decodeMessage(codecs.span, codecs.span.encode(spans[2]!)).map((r) => [r.index, r.record?.request_id]),
    [[0, 'req-2']],
  )

  // record 1 with an unknown writer schema, record 2 a hardware sample: rejected one by one (the
  // container built byte by byte from the documented layout, not by the module under test)
  const unknown = codecs.span.encode(spans[1]!)
  unknown.writeBigUInt64LE(12345n, 2)
  const mixed = Buffer.concat([
    CONTAINER_MAGIC,
    u32(4),
    ...[
      codecs.span.encode(spans[0]!),
      unknown,
      codecs.hw.encode(makeHwSample(1)),
      codecs.span.encode(spans[3]!),
    ].flatMap((b) => [u32(b.length), b]),
  ])
  const got = decodeMessage(codecs.span, mixed)
  assert.deepEqual(
    got.map((r) => [r.index, r.record?.request_id ?? r.error!.reason]),
    [
      [0, 'req-0'],
      [1, 'unknown_schema'],
      [2, 'unknown_schema'],
      [3, 'req-3'],
    ],
  )
  assert.ok(got[1]!.bytes.equals(unknown), 'a rejected record comes with its own bytes')

  // cut short: the whole records before the cut are kept, the rest is one 'truncated' piece
  const cut = container.subarray(0, container.length - 10)
  const partial = decodeMessage(codecs.span, cut)
  assert.deepEqual(
    partial.map((r) => r.record?.request_id ?? r.error!.reason),
    ['req-0', 'req-1', 'req-2', 'truncated'],
  )
  assert.match(partial[3]!.error!.message, /record 3 of 4 claims \d+ bytes/)
  // a count larger than what follows, trailing bytes, a header cut in half
  const overCounted = Buffer.from(container)
  overCounted.writeUInt32BE(5, 4)
  assert.deepEqual(
    decodeMessage(codecs.span, overCounted).map((r) => r.error?.reason ?? 'ok'),
    ['ok', 'ok', 'ok', 'ok', 'truncated'],
  )
  assert.deepEqual(
    decodeMessage(codecs.span, Buffer.concat([container, Buffer.from('xx')])).map(
      (r) => r.error?.reason ?? 'ok',
    ),
    ['ok', 'ok', 'ok', 'ok', 'truncated'],
  )
  assert.deepEqual(
    decodeMessage(codecs.span, container.subarray(0, 6)).map((r) => r.error?.reason),
    ['truncated'],
  )
  assert.throws(() => decodeRecords(codecs.span, cut), RecordDecodeError)
})

function u32(n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n)
  return b
}

const plain = <T>(v: T): T => structuredClone(v)

test('numeric fields are read off the schemas: measurements in, time and names out', async () => {
  const { DEVICE_NUMERIC_FIELDS, HW_NUMERIC_FIELDS, SPAN_NUMERIC_FIELDS } = await import(
    '../../contract/fields.ts'
  )
  for (const f of ['executor_busy', 'interval_ms', 'psi_cpu_some_avg10', 'cgroup_throttled_us'] as const)
    assert.ok(HW_NUMERIC_FIELDS.includes(f), f)
  for (const f of ['timestamp_us', 'fleet', 'devices', 'run_id'])
    assert.ok(!(HW_NUMERIC_FIELDS as string[]).includes(f), f)
  assert.deepEqual(
    SPAN_NUMERIC_FIELDS.filter((f) => f.endsWith('_us')),
    [
      'deserialize_us',
      'preprocess_us',
      'queue_wait_us',
      'compute_us',
      'postprocess_us',
      'serialize_us',
      'total_us',
    ],
  )
  assert.deepEqual(
    [...DEVICE_NUMERIC_FIELDS],
    ['utilization', 'memory_used_bytes', 'memory_total_bytes', 'power_w', 'temperature_c'],
  )
})
