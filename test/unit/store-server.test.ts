/**
 * The store through a ClickHouse server (CLICKHOUSE_URL): the same writer and queries as on chDB,
 * over @clickhouse/client's HTTP connection — migrations, Native insert bodies with deduplication
 * tokens, rollups, named queries and read-only SQL. The server is ClickHouse's HTTP interface in
 * front of chDB in a child process (test/helpers/clickhouse-server.ts).
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { type ClickHouse, openClickHouse } from '../../store/client.ts'
import { migrate } from '../../store/migrations.ts'
import { hwSamplesTable, spansTable } from '../../store/tables.ts'
import { insertRecords } from '../../store/writer.ts'
import { runNamedQuery, runSql } from '../../queries/runner.ts'
import { makeHwSample, makeSpan } from '../../contract/synthetic.ts'
import { spawnClickHouseServer } from '../helpers/clickhouse-server.ts'

let dir = ''
let server: Awaited<ReturnType<typeof spawnClickHouseServer>>
let ch: ClickHouse

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'breakid-store-server-'))
  server = await spawnClickHouseServer(join(dir, 'data'))
  ch = openClickHouse({ url: server.url, dataDir: join(dir, 'unused'), database: 'over_http' })
  assert.deepEqual(await migrate(ch), [1, 2, 3, 4, 5])
})

after(async () => {
  await ch?.close()
  await server?.stop()
  await rm(dir, { recursive: true, force: true })
})

test('Native blocks over HTTP: stored exactly, a repeated token stored once, rollups fed', async () => {
  const spans = Array.from({ length: 200 }, (_, i) =>
    makeSpan(i, { status: i % 10 === 0 ? 'server_error' : 'ok', input_mean: i % 3 ? i / 4 : null }),
  )
  await insertRecords(ch, spansTable, spans, { token: 'spans/0/0-199' })
  await insertRecords(ch, spansTable, spans, { token: 'spans/0/0-199' })
  await insertRecords(ch, hwSamplesTable, [makeHwSample(0), makeHwSample(1)], { token: 'hw/0/0-1' })
  const rs = await ch.client.query({
    query: `SELECT count() AS n, uniqExact(trace_id_hex) AS ids, countIf(status = 'server_error') AS errors,
                   countIf(isNull(input_mean)) AS nulls FROM over_http.spans`,
    format: 'JSONEachRow',
  })
  const [row] = await rs.json<Record<string, string | number>>()
  assert.deepEqual(Object.values(row!).map(Number), [
    200,
    200,
    20,
    spans.filter((s) => s.input_mean === null).length,
  ])
  const scalar = async (query: string) =>
    Number(
      Object.values((await (await ch.client.query({ query, format: 'JSONEachRow' })).json<object>())[0]!)[0],
    )
  assert.equal(await scalar('SELECT sum(requests) FROM over_http.spans_1h'), 200)
  assert.equal(await scalar('SELECT count() FROM over_http.hw_samples'), 2)
})

test('named queries and read-only SQL answer over HTTP as they do on chDB', async () => {
  const range = { from: '2026-01-01T00:00:00Z', to: '2026-01-01T00:01:00Z' }
  const breakdown = await runNamedQuery(ch, 'stage-breakdown', range)
  const total = breakdown.rows.find((r) => r[1] === 'total')
  assert.equal(total?.[2], 200)
  const slowest = await runNamedQuery(ch, 'slowest-requests', { ...range, limit: '1' })
  assert.match(String(slowest.rows[0]?.[2]), /^[0-9a-f]{32}$/, 'trace ids come back as hex')
  const sql = await runSql(ch, 'SELECT count() AS n FROM spans')
  assert.deepEqual(sql.rows, [[200]])
  await assert.rejects(runSql(ch, 'DROP TABLE spans'), /read-only/)
})
