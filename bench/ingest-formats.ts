/**
 * Which insert path should ingest use? The same spans — fleet-generator records in Avro single-object
 * encoding, packed in containers as the engine sends them — go from their bytes into the real spans
 * table (with its rollup views) in chDB by each path, interleaved over several rounds so drift hits
 * all alike. Per path it prints the CPU per span spent converting in JavaScript and inserting
 * (ClickHouse's parsing, sorting, compression and the views, on chDB's threads in this process), and
 * the spans per CPU-second of the two together.
 *
 *   json       avsc decode → JSONCompactEachRow rows → INSERT … SELECT unhex(…) (the old path's body)
 *   objects    avsc decode → Native block from the decoded objects
 *   transcode  the record bytes read straight into Native columns (ingest/avro-native.ts)
 *   avro       the record bodies re-framed as an Avro object container (one per writer schema) →
 *              INSERT … SELECT unhex(…) FORMAT Avro: no decoding in JavaScript
 *
 * and `transcode` once more into a copy of the table without the views (what the rollups cost).
 *
 * Run: node --import tsx bench/ingest-formats.ts [--spans 400000] [--block 100000] [--rounds 3]
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { AvroNativeTranscoder } from '../ingest/avro-native.ts'
import { openClickHouse } from '../store/client.ts'
import { migrate } from '../store/migrations.ts'
import { createTableSql, SPAN_STATUSES, spansTable } from '../store/tables.ts'
import { appendRecord, blockFor, insertBlock } from '../store/writer.ts'
import { decodeMessage, packContainer } from '../contract/container.ts'
import { FleetGenerator } from '../contract/synthetic.ts'
import { codecs } from '../contract/topics.ts'
import { RECORD_SCHEMAS, olderPublishedSchemas } from '../contract/schemas.ts'
import type { Span } from '../contract/records.ts'
import { machineInfo } from '../core/machine.ts'

const { values: args } = parseArgs({
  options: {
    spans: { type: 'string', default: '400000' },
    block: { type: 'string', default: '100000' },
    rounds: { type: 'string', default: '3' },
    out: { type: 'string', default: join(import.meta.dirname, 'results', 'ingest-formats.json') },
  },
})
const SPANS = Number(args.spans)
const BLOCK = Number(args.block)
const ROUNDS = Number(args.rounds)

const cpuMs = () => {
  const c = process.cpuUsage()
  return (c.user + c.system) / 1000
}

// the engine's messages: containers of up to 64 records of one instance
const gen = new FleetGenerator({ seed: 7 })
const messages: Buffer[] = []
{
  const byInstance = new Map<string, Buffer[]>()
  for (let i = 0; i < SPANS; i++) {
    const s = gen.next()
    let list = byInstance.get(s.instance)
    if (!list) {
      list = []
      byInstance.set(s.instance, list)
    }
    list.push(codecs.span.encode(s))
    if (list.length === 64) {
      messages.push(packContainer(list))
      byInstance.set(s.instance, [])
    }
  }
  for (const list of byInstance.values()) if (list.length > 0) messages.push(packContainer(list))
}
/** messages cut into insert blocks of about BLOCK spans */
const blocks: Buffer[][] = []
{
  let cur: Buffer[] = []
  let n = 0
  for (const m of messages) {
    cur.push(m)
    n += m.readUInt32BE(4)
    if (n >= BLOCK) {
      blocks.push(cur)
      cur = []
      n = 0
    }
  }
  if (cur.length > 0) blocks.push(cur)
}

const dir = mkdtempSync(join(tmpdir(), 'breakid-bench-formats-'))
const spool = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'breakid-bench-'))
const ch = openClickHouse({ dataDir: dir, database: 'bench' })
await migrate(ch)
await ch.client.command({ query: createTableSql('bench', spansTable, undefined, 'spans_no_views') })

const writerSchemas = [RECORD_SCHEMAS.span.schema, ...olderPublishedSchemas('span')]
const columns = spansTable.columns

/** the input() structure for paths that hand ClickHouse the wire representation */
const wireStructure = (avroTypes: boolean) =>
  columns
    .map((c) => {
      if (c.convert === 'hex') return `${c.name} String`
      if (c.name === 'timestamp') return avroTypes ? 'timestamp_us DateTime64(6)' : 'timestamp Int64'
      if (c.name === 'status') return 'status String'
      return `${c.field ?? c.name} ${c.type.replace(/^LowCardinality\((.*)\)$/, '$1').replace('Float32', 'Float64')}`
    })
    .join(', ')
const selectFromWire = (avroTypes: boolean) =>
  columns
    .map((c) => {
      if (c.convert === 'hex') return `unhex(${c.name})`
      if (c.name === 'timestamp') return avroTypes ? 'timestamp_us' : 'fromUnixTimestamp64Micro(timestamp)'
      return c.field ?? c.name
    })
    .join(', ')

/**
 * `INSERT … SELECT … FROM input(structure) FORMAT f` with `body` as its data. chDB reads `input()`
 * from stdin, not from the statement, so the body goes through a file in memory as the Native path's
 * does (store/chdb-connection.ts); on a server it would be the HTTP body.
 */
async function insertSelect(
  columnsAndSelect: string,
  structure: string,
  format: string,
  body: Buffer,
): Promise<void> {
  const path = join(spool, `${format}.${Math.random().toString(36).slice(2)}`)
  writeFileSync(path, body)
  try {
    await ch.client.command({
      query: `INSERT INTO bench.spans ${columnsAndSelect} FROM file('${path}', '${format}', '${structure}')`,
    })
  } finally {
    rmSync(path, { force: true })
  }
}

type Path = {
  name: string
  convert: (msgs: Buffer[]) => unknown
  insert: (converted: unknown) => Promise<void>
}

const decodeAll = (msgs: Buffer[]): Span[] => {
  const out: Span[] = []
  for (const m of msgs) for (const r of decodeMessage(codecs.span, m)) if (r.record) out.push(r.record)
  return out
}

const jsonPath: Path = {
  name: 'json',
  convert: (msgs) => {
    let body = ''
    for (const s of decodeAll(msgs))
      body +=
        JSON.stringify(
          columns.map((c) =>
            c.convert === 'hex' || c.name === 'status'
              ? (s as unknown as Record<string, unknown>)[c.field!]
              : c.value(s),
          ),
        ) + '\n'
    return Buffer.from(body)
  },
  insert: (body) =>
    insertSelect(
      `(${columns.map((c) => c.name).join(', ')}) SELECT ${selectFromWire(false)}`,
      wireStructure(false),
      'JSONCompactEachRow',
      body as Buffer,
    ),
}

const objectsBlock = blockFor(spansTable)
const objectsPath: Path = {
  name: 'objects',
  convert: (msgs) => {
    objectsBlock.reset()
    for (const s of decodeAll(msgs)) appendRecord(objectsBlock, spansTable, s)
    return objectsBlock
  },
  insert: (b) => insertBlock(ch, spansTable, b as typeof objectsBlock),
}

function transcodePath(name: string, table: typeof spansTable): Path {
  const block = blockFor(spansTable)
  const t = new AvroNativeTranscoder('span', spansTable, block, writerSchemas, { status: SPAN_STATUSES })
  return {
    name,
    convert: (msgs) => {
      block.reset()
      for (const m of msgs) {
        let at = 8
        const count = m.readUInt32BE(4)
        for (let i = 0; i < count; i++) {
          const len = m.readUInt32BE(at)
          t.append(m, at + 4, at + 4 + len)
          at += 4 + len
        }
      }
      return block
    },
    insert: (b) => insertBlock(ch, table, b as typeof block),
  }
}

// Avro object container: header (magic, metadata with the writer schema, sync marker), one block
const SYNC = Buffer.alloc(16, 0x5a)
const zigzag = (n: number) => {
  const out: number[] = []
  let v = n * 2
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80)
    v = Math.floor(v / 128)
  }
  out.push(v)
  return Buffer.from(out)
}
const avroString = (s: string) => Buffer.concat([zigzag(Buffer.byteLength(s)), Buffer.from(s)])
const ocfHeader = Buffer.concat([
  Buffer.from('Obj\x01', 'latin1'),
  zigzag(2),
  avroString('avro.schema'),
  avroString(JSON.stringify(codecs.span.type.schema())),
  avroString('avro.codec'),
  avroString('null'),
  zigzag(0),
  SYNC,
])
const avroPath: Path = {
  name: 'avro',
  convert: (msgs) => {
    // every record here has the current writer schema; older ones would get a container each
    const bodies: Buffer[] = []
    let count = 0
    let size = 0
    for (const m of msgs) {
      let at = 8
      const n = m.readUInt32BE(4)
      for (let i = 0; i < n; i++) {
        const len = m.readUInt32BE(at)
        const body = m.subarray(at + 4 + 10, at + 4 + len)
        bodies.push(body)
        size += body.length
        count++
        at += 4 + len
      }
    }
    return Buffer.concat([ocfHeader, zigzag(count), zigzag(size), ...bodies, SYNC])
  },
  insert: (body) =>
    insertSelect(
      `(${columns.map((c) => c.name).join(', ')}) SELECT ${selectFromWire(true)}`,
      wireStructure(true),
      'Avro',
      body as Buffer,
    ),
}

const paths = [
  jsonPath,
  objectsPath,
  transcodePath('transcode', spansTable),
  avroPath,
  transcodePath('transcode, no views', { ...spansTable, name: 'spans_no_views' }),
]
const totals = new Map(paths.map((p) => [p.name, { convertMs: 0, insertMs: 0, wallMs: 0, spans: 0 }]))

for (let round = 0; round < ROUNDS; round++) {
  for (const p of paths) {
    for (const t of ['spans', 'spans_1m', 'spans_1h', 'spans_no_views'])
      await ch.client.command({ query: `TRUNCATE TABLE bench.${t}` })
    const tot = totals.get(p.name)!
    const w0 = performance.now()
    for (const msgs of blocks) {
      const c0 = cpuMs()
      const converted = p.convert(msgs)
      const c1 = cpuMs()
      await p.insert(converted)
      const c2 = cpuMs()
      tot.convertMs += c1 - c0
      tot.insertMs += c2 - c1
    }
    tot.wallMs += performance.now() - w0
    const table = p.name.includes('no views') ? 'spans_no_views' : 'spans'
    const rs = await ch.client.query({
      query: `SELECT count() AS n FROM bench.${table}`,
      format: 'JSONEachRow',
    })
    const [{ n }] = (await rs.json<{ n: string }>()) as [{ n: string }]
    if (Number(n) !== SPANS) throw new Error(`${p.name}: stored ${n} of ${SPANS} spans`)
    tot.spans += SPANS
  }
}

const results = paths.map((p) => {
  const t = totals.get(p.name)!
  const us = (ms: number) => Number(((ms * 1000) / t.spans).toFixed(3))
  return {
    path: p.name,
    convert_us_per_span: us(t.convertMs),
    insert_us_per_span: us(t.insertMs),
    spans_per_cpu_second: Math.round(t.spans / ((t.convertMs + t.insertMs) / 1000)),
    spans_per_second: Math.round(t.spans / (t.wallMs / 1000)),
  }
})
const base = results[0]!.spans_per_cpu_second
for (const r of results) Object.assign(r, { vs_json: Number((r.spans_per_cpu_second / base).toFixed(2)) })
console.table(results)
const report = {
  bench: 'ingest-formats',
  backend: 'chdb',
  spans: SPANS,
  block_spans: BLOCK,
  rounds: ROUNDS,
  note: 'CPU is the whole process (JavaScript and chDB threads); convert and insert measured one after the other',
  machine: machineInfo(),
  results,
}
writeFileSync(args.out!, JSON.stringify(report, null, 2) + '\n')
await ch.close()
rmSync(dir, { recursive: true, force: true })
rmSync(spool, { recursive: true, force: true })
