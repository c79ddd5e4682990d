/**
 * Which body format should the ingest writer use? Inserts the same spans into chDB in each format,
 * interleaved over several rounds so drift hits every format alike, and prints rows/s and the ratio
 * to JSONEachRow. Run: node --import tsx bench/clickhouse-insert.ts [rows] [rounds]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openClickHouse } from '../store/client.ts'
import { migrate } from '../store/migrations.ts'
import { spansTable } from '../store/tables.ts'
import { INSERT_FORMATS, type InsertFormat, insertRecords } from '../store/writer.ts'
import { makeSpan } from '../contract/synthetic.ts'
import { machineInfo } from '../core/machine.ts'

const rows = Number(process.argv[2] ?? 20_000)
const rounds = Number(process.argv[3] ?? 5)
const batch = 2_000
const dir = mkdtempSync(join(tmpdir(), 'breakid-bench-'))
const ch = openClickHouse({ dataDir: dir, database: 'bench' })
await migrate(ch)
const spans = Array.from({ length: rows }, (_, i) => makeSpan(i))
const elapsed = new Map<InsertFormat, number>(INSERT_FORMATS.map((f) => [f, 0]))

for (let round = 0; round < rounds; round++) {
  for (const format of INSERT_FORMATS) {
    await ch.client.command({ query: 'TRUNCATE TABLE bench.spans' })
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < rows; i += batch)
      await insertRecords(ch, spansTable, spans.slice(i, i + batch), format)
    elapsed.set(format, elapsed.get(format)! + Number(process.hrtime.bigint() - t0) / 1e9)
    const rs = await ch.client.query({ query: 'SELECT count() AS n FROM bench.spans', format: 'JSONEachRow' })
    const [{ n }] = (await rs.json<{ n: string }>()) as [{ n: string }]
    if (Number(n) !== rows) throw new Error(`${format}: stored ${n} of ${rows} rows`)
  }
}
const base = (rows * rounds) / elapsed.get('JSONEachRow')!
const results = INSERT_FORMATS.map((format) => {
  const rps = (rows * rounds) / elapsed.get(format)!
  return { format, rows_per_s: Math.round(rps), vs_JSONEachRow: Number((rps / base).toFixed(2)) }
})
console.table(results)
const report = {
  bench: 'clickhouse-insert',
  backend: 'chdb',
  rows,
  rounds,
  batch,
  machine: machineInfo(),
  results,
}
writeFileSync(
  join(import.meta.dirname, 'results', 'clickhouse-insert.json'),
  JSON.stringify(report, null, 2) + '\n',
)
rmSync(dir, { recursive: true, force: true })
