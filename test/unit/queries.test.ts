import { postSql } from '../helpers/api.ts'
/**
 * Named queries, ad-hoc SQL and the HTTP API against real chDB. chDB binds one data directory per
 * process, so the whole file shares one ClickHouse in a temporary directory.
 */
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import { type ClickHouse, openClickHouse } from '../../store/client.ts'
import { migrate } from '../../store/migrations.ts'
import { alertsTable, spansTable } from '../../store/tables.ts'
import { insertRecords } from '../../store/writer.ts'
import type { Span } from '../../contract/records.ts'
import { STAGES } from '../../contract/vocabulary.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { UnknownQueryError } from '../../queries/errors.ts'
import { toTable } from '../../queries/format.ts'
import { queriesPlugin } from '../../queries/http.ts'
import { readOnlyPool } from '../../queries/readonly.ts'
import { listQueries, type QueryResult, runNamedQuery, runSql } from '../../queries/runner.ts'
import { makeAlert, makeSpan } from '../../contract/synthetic.ts'

const T0_US = 1_767_225_600_000_000 // 2026-01-01T00:00:00Z, makeSpan(0)
const T0_MS = T0_US / 1000
const RANGE = { from: '2026-01-01T00:00:00Z', to: '2026-01-01T00:00:01Z' }
const NOW_MS = T0_MS + 3_600_000
const MLP_SPANS = 100
const CNN_SPANS = 40

/** Deterministic pseudo-random integers in [lo, hi] (mulberry32). */
function rng(seed: number): (lo: number, hi: number) => number {
  let a = seed
  return (lo, hi) => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return lo + Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * (hi - lo + 1))
  }
}

/** mlp spends its time in preprocessing (the bottleneck); cnn in compute. */
function spanFor(i: number, model: 'mlp' | 'cnn', next: (lo: number, hi: number) => number): Span {
  const slowPre = model === 'mlp'
  const stages = {
    deserialize_us: next(20, 40),
    preprocess_us: slowPre ? next(3000, 9000) : next(40, 80),
    queue_wait_us: next(100, 500),
    compute_us: slowPre ? next(800, 1200) : next(2000, 2600),
    postprocess_us: next(10, 20),
    serialize_us: next(10, 30),
  }
  const total = Object.values(stages).reduce((a, b) => a + b, 0) + next(0, 50)
  return makeSpan(i, {
    model,
    request_id: `${model}-${i}`,
    status: model === 'cnn' && i % 10 === 0 ? 'server_error' : 'ok',
    ...stages,
    total_us: total,
  })
}

const next = rng(7)
const mlp = Array.from({ length: MLP_SPANS }, (_, i) => spanFor(i, 'mlp', next))
const cnn = Array.from({ length: CNN_SPANS }, (_, i) => spanFor(500 + i, 'cnn', next))
/** outside [from, to): one before, one exactly at `to` (exclusive) */
const outside = [spanFor(-5000, 'mlp', next), spanFor(1000, 'mlp', next)]

/** The R-7 quantile (linear interpolation; numpy's default), computed independently of ClickHouse. */
function quantile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b)
  const h = (s.length - 1) * p
  const lo = Math.floor(h)
  return s[lo]! + (h - lo) * ((s[Math.min(lo + 1, s.length - 1)] ?? 0) - s[lo]!)
}

let dir = ''
let ch: ClickHouse

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'breakid-queries-'))
  ch = openClickHouse({ dataDir: dir, database: 'breakid_test' })
  await migrate(ch)
  // merges stopped: a stored duplicate would stay visible to every query below
  await ch.client.command({ query: 'SYSTEM STOP MERGES spans' })
  await insertRecords(ch, spansTable, mlp.slice(0, 10), { token: 'spans/0/0-9' })
  await insertRecords(ch, spansTable, [...mlp.slice(10), ...cnn, ...outside], { token: 'spans/0/10-99' })
  // a redelivered block (at-least-once delivery) carries its token again: ClickHouse drops it
  await insertRecords(ch, spansTable, mlp.slice(0, 10), { token: 'spans/0/0-9' })
})

after(async () => {
  await ch?.close()
  await rm(dir, { recursive: true, force: true })
})

const byName = (r: QueryResult) =>
  r.rows.map((row) => Object.fromEntries(r.columns.map((c, i) => [c.name, row[i]])))

describe('stage-breakdown', () => {
  test('counts and exact percentiles per model and stage, pipeline order then total', async () => {
    const result = await runNamedQuery(ch, 'stage-breakdown', RANGE)
    assert.deepEqual(
      result.columns.map((c) => `${c.name}:${c.type}`),
      [
        'model:LowCardinality(String)',
        'stage:String',
        'requests:UInt64',
        'p50_ms:Float64',
        'p95_ms:Float64',
        'p99_ms:Float64',
        'mean_ms:Float64',
        'share_of_total:Float64',
      ],
    )
    const rows = byName(result)
    const stageOrder = [...STAGES, 'total']
    assert.deepEqual(
      rows.map((r) => `${r.model}/${r.stage}`),
      [...stageOrder.map((s) => `cnn/${s}`), ...stageOrder.map((s) => `mlp/${s}`)],
    )
    for (const [model, spans] of [
      ['mlp', mlp],
      ['cnn', cnn],
    ] as const) {
      for (const stage of stageOrder) {
        const row = rows.find((r) => r.model === model && r.stage === stage)!
        const values = spans.map((s) => s[`${stage}_us` as keyof Span] as number)
        // the redelivered block not counted, spans outside [from, to) excluded
        assert.equal(row.requests, spans.length, `${model}/${stage} count`)
        for (const [column, p] of [
          ['p50_ms', 0.5],
          ['p95_ms', 0.95],
          ['p99_ms', 0.99],
        ] as const) {
          const expected = quantile(values, p) / 1000
          const got = row[column] as number
          // the query rounds milliseconds to 3 decimals
          assert.ok(
            Math.abs(got - expected) <= 0.0005 + 1e-9,
            `${model}/${stage} ${column}: ${got} vs ${expected}`,
          )
        }
        const mean = values.reduce((a, b) => a + b, 0) / values.length / 1000
        assert.ok(Math.abs((row.mean_ms as number) - mean) <= 0.0005 + 1e-9, `${model}/${stage} mean`)
      }
    }
    const share = (model: string, stage: string) =>
      rows.find((r) => r.model === model && r.stage === stage)!.share_of_total as number
    const slowest = (model: string) => [...STAGES].sort((a, b) => share(model, b) - share(model, a))[0]
    assert.equal(slowest('mlp'), 'preprocess')
    assert.equal(slowest('cnn'), 'compute')
    assert.equal(share('mlp', 'total'), 1)
  })

  test('control: the redelivered block is not in the table, and would be counted if it were', async () => {
    // proves the count assertion above can fail: under another token the same rows are stored again
    const raw = async () =>
      (
        await runSql(
          ch,
          "SELECT count() AS n FROM spans WHERE model = 'mlp' AND timestamp < '2026-01-01 00:00:01'",
        )
      ).rows[0]![0]
    assert.equal(await raw(), MLP_SPANS + 1)
    const other = openClickHouse({ dataDir: dir, database: 'breakid_test_control' })
    await migrate(other)
    await insertRecords(other, spansTable, mlp, { token: 'a' })
    await insertRecords(other, spansTable, mlp.slice(0, 10), { token: 'b' })
    const result = await runNamedQuery(other, 'stage-breakdown', RANGE)
    assert.equal(
      byName(result).find((r) => r.model === 'mlp' && r.stage === 'total')!.requests,
      MLP_SPANS + 10,
    )
    await other.close()
  })

  test('a range of whole minutes is answered from the rollups: counts and means exact, percentiles within 1 %', async () => {
    const wide = { from: '2025-12-31T23:59:00Z', to: '2026-01-01T00:01:00Z' }
    const rows = byName(await runNamedQuery(ch, 'stage-breakdown', wide))
    for (const [model, spans] of [
      ['mlp', [...mlp, ...outside]],
      ['cnn', cnn],
    ] as const) {
      for (const stage of [...STAGES, 'total']) {
        const row = rows.find((r) => r.model === model && r.stage === stage)!
        const values = spans.map((s) => s[`${stage}_us` as keyof Span] as number)
        assert.equal(row.requests, spans.length, `${model}/${stage} count`)
        const mean = values.reduce((a, b) => a + b, 0) / values.length / 1000
        assert.ok(Math.abs((row.mean_ms as number) - mean) <= 0.0005 + 1e-9, `${model}/${stage} mean`)
        const sorted = [...values].sort((a, b) => a - b)
        for (const [column, p] of [
          ['p50_ms', 0.5],
          ['p95_ms', 0.95],
          ['p99_ms', 0.99],
        ] as const) {
          const rank = p * (sorted.length - 1)
          const lo = sorted[Math.max(0, Math.floor(rank) - 1)]! / 1000
          const hi = sorted[Math.min(sorted.length - 1, Math.ceil(rank) + 1)]! / 1000
          const got = row[column] as number
          assert.ok(
            got >= lo * 0.99 - 0.001 && got <= hi * 1.01 + 0.001,
            `${model}/${stage} ${column}: ${got} not in [${lo}, ${hi}] ± 1 %`,
          )
        }
      }
    }
  })

  test('control: the whole-minute answer comes from the rollups, not from the raw spans', async () => {
    const other = openClickHouse({ dataDir: dir, database: 'breakid_test_rollup_only' })
    await migrate(other)
    await insertRecords(other, spansTable, mlp)
    await other.client.command({ query: 'TRUNCATE TABLE breakid_test_rollup_only.spans' })
    const wide = { from: '2026-01-01T00:00:00Z', to: '2026-01-01T00:01:00Z' }
    const total = byName(await runNamedQuery(other, 'stage-breakdown', wide)).find((r) => r.stage === 'total')
    assert.equal(total?.requests, MLP_SPANS, 'the raw spans are gone, the rollup answers')
    assert.equal(
      (await runNamedQuery(other, 'stage-breakdown', RANGE)).rows.length,
      0,
      'a short range reads the raw spans',
    )
    const throughput = byName(await runNamedQuery(other, 'throughput', { ...wide, step: '60' }))
    assert.deepEqual(
      throughput.map((r) => [r.model, r.requests]),
      [['mlp', MLP_SPANS]],
    )
    await other.close()
  })

  test('filters by model and echoes the parameters it used', async () => {
    const result = await runNamedQuery(ch, 'stage-breakdown', { ...RANGE, model: 'cnn' })
    assert.deepEqual(new Set(byName(result).map((r) => r.model)), new Set(['cnn']))
    assert.deepEqual(result.params, {
      from: '2026-01-01T00:00:00.000000Z',
      to: '2026-01-01T00:00:01.000000Z',
      model: 'cnn',
    })
  })

  test('defaults are relative to now: the last hour', async () => {
    const recent = await runNamedQuery(ch, 'stage-breakdown', {}, { nowMs: T0_MS + 30 * 60_000 })
    assert.equal(recent.params.from, '2025-12-31T23:30:00.000000Z')
    // [23:30, 00:30): the span 5 s before 00:00 and the one at 00:00:01 are inside this time
    assert.equal(
      byName(recent).find((r) => r.model === 'mlp' && r.stage === 'total')!.requests,
      MLP_SPANS + 2,
    )
    const later = await runNamedQuery(ch, 'stage-breakdown', {}, { nowMs: T0_MS + 2 * 3_600_000 })
    assert.equal(later.rows.length, 0)
  })

  test('bad parameters are InvalidInputError naming parameter, type and value', async () => {
    await assert.rejects(
      runNamedQuery(ch, 'stage-breakdown', { from: 'yesterday' }),
      (err: Error) =>
        err instanceof InvalidInputError &&
        /^parameter 'from' \(DateTime64\(6\)\): expected a time.*got "yesterday"$/.test(err.message),
    )
    await assert.rejects(
      runNamedQuery(ch, 'stage-breakdown', { form: '-1h' }),
      /unknown parameter 'form' for query stage-breakdown; known parameters: from, to, model/,
    )
    await assert.rejects(runNamedQuery(ch, 'no-such-query'), (err: Error) => err instanceof UnknownQueryError)
  })

  test('a string parameter is bound, not spliced', async () => {
    const result = await runNamedQuery(ch, 'stage-breakdown', { ...RANGE, model: "mlp' OR 1=1 --" })
    assert.equal(result.rows.length, 0)
  })
})

describe('other named queries', () => {
  test('slowest-requests: top N by total with every stage and the slowest one', async () => {
    const result = await runNamedQuery(ch, 'slowest-requests', { ...RANGE, model: 'mlp', limit: '3' })
    const expected = [...mlp].sort((a, b) => b.total_us - a.total_us).slice(0, 3)
    const rows = byName(result)
    assert.deepEqual(
      rows.map((r) => r.request_id),
      expected.map((s) => s.request_id),
    )
    assert.equal(rows[0]!.total_ms, Math.round(expected[0]!.total_us) / 1000)
    assert.ok(rows.every((r) => r.slowest_stage === 'preprocess'))
    for (const stage of STAGES) assert.ok(result.columns.some((c) => c.name === `${stage}_ms`))
    await assert.rejects(
      runNamedQuery(ch, 'slowest-requests', { limit: '0' }),
      /'limit' \(UInt32\): must be at least 1/,
    )
  })

  test('throughput: requests/s over the part of each bucket inside the range, error rate', async () => {
    // [00:00:00.000, 00:00:00.520): 52% of a one-second bucket
    const end = T0_US + 520_000
    const result = await runNamedQuery(ch, 'throughput', {
      from: '2026-01-01T00:00:00Z',
      to: '2026-01-01T00:00:00.52Z',
      step: '1',
    })
    const rows = byName(result)
    const cnnIn = cnn.filter((s) => s.timestamp_us < end)
    const mlpIn = mlp.filter((s) => s.timestamp_us < end)
    assert.ok(cnnIn.length > 0 && cnnIn.length < cnn.length, 'the range cuts the cnn spans')
    assert.deepEqual(
      rows.map((r) => [r.bucket, r.model, r.requests]),
      [
        ['2026-01-01 00:00:00', 'cnn', cnnIn.length],
        ['2026-01-01 00:00:00', 'mlp', mlpIn.length],
      ],
    )
    assert.ok(Math.abs((rows[0]!.requests_per_s as number) - cnnIn.length / 0.52) <= 0.0005 + 1e-9)
    assert.ok(Math.abs((rows[1]!.requests_per_s as number) - mlpIn.length / 0.52) <= 0.0005 + 1e-9)
    const cnnErrors = cnnIn.filter((s) => s.status !== 'ok').length
    assert.ok(cnnErrors > 0)
    assert.equal(rows[0]!.errors, cnnErrors)
    assert.ok(Math.abs((rows[0]!.error_rate as number) - cnnErrors / cnnIn.length) <= 0.00005 + 1e-12)
  })

  test('alerts: latest state per id, firing always listed', async () => {
    const at = (minutesBeforeNow: number) => (NOW_MS - minutesBeforeNow * 60_000) * 1000
    await insertRecords(ch, alertsTable, [
      makeAlert({ id: 'resolved-now', status: 'firing', updated_at_us: at(60) }),
      makeAlert({ id: 'old-firing', status: 'firing', updated_at_us: at(3 * 24 * 60) }),
      makeAlert({ id: 'old-resolved', status: 'resolved', updated_at_us: at(3 * 24 * 60) }),
    ])
    await insertRecords(ch, alertsTable, [
      makeAlert({ id: 'resolved-now', status: 'resolved', updated_at_us: at(5), ends_at_us: at(5) }),
    ])
    const all = byName(await runNamedQuery(ch, 'alerts', {}, { nowMs: NOW_MS }))
    assert.deepEqual(
      all.map((r) => [r.id, r.status]),
      [
        ['old-firing', 'firing'],
        ['resolved-now', 'resolved'],
      ],
    )
    const firing = byName(await runNamedQuery(ch, 'alerts', { status: 'firing' }, { nowMs: NOW_MS }))
    assert.deepEqual(
      firing.map((r) => r.id),
      ['old-firing'],
    )
  })

  test('every named query runs with its defaults', async () => {
    for (const q of listQueries()) {
      const result = await runNamedQuery(ch, q.name, {}, { nowMs: NOW_MS })
      assert.ok(result.columns.length > 0, q.name)
    }
  })
})

describe('runSql', () => {
  const spanCount = async () => (await runSql(ch, 'SELECT count() FROM spans')).rows[0]![0]

  test('returns columns with types and rows; 64-bit integers as numbers when exact', async () => {
    const result = await runSql(
      ch,
      'SELECT toUInt64(3) AS small, toUInt64(18446744073709551615) AS big, [toInt64(-1)] AS arr',
    )
    assert.deepEqual(result, {
      columns: [
        { name: 'small', type: 'UInt64' },
        { name: 'big', type: 'UInt64' },
        { name: 'arr', type: 'Array(Int64)' },
      ],
      rows: [[3, '18446744073709551615', [-1]]],
      truncated: false,
    })
  })

  test('limitRows keeps the first rows and says it truncated', async () => {
    const result = await runSql(ch, 'SELECT number FROM numbers(1000)', { limitRows: 5 })
    assert.deepEqual(result.rows, [[0], [1], [2], [3], [4]])
    assert.equal(result.truncated, true)
    await assert.rejects(runSql(ch, 'SELECT 1', { limitRows: 0 }), /limitRows must be a positive integer/)
  })

  test('writes are refused and nothing changes', async () => {
    const before = await spanCount()
    const tablesBefore = (await runSql(ch, 'SHOW TABLES')).rows.map((r) => r[0])
    assert.ok(tablesBefore.includes('spans'))
    const refusals: [string, RegExp][] = [
      ["INSERT INTO spans (request_id) VALUES ('x')", /read-only: INSERT statements are not allowed/],
      ['DROP TABLE spans', /read-only: DROP statements are not allowed/],
      ['TRUNCATE TABLE spans', /read-only: TRUNCATE/],
      ['ALTER TABLE spans DELETE WHERE 1', /read-only: ALTER/],
      ['SELECT 1; DROP TABLE spans', /one statement at a time/],
      ["SELECT 1; INSERT INTO spans (request_id) VALUES ('x')", /one statement at a time/],
      // a read that reaches outside the database: refused by the allow-list (sql-guard.test.ts has the rest)
      ["SELECT * FROM file('/etc/hostname', 'LineAsString')", /table function file\(\) is not allowed/],
      ["SELECT file('/etc/hostname')", /function file\(\) is not allowed/],
    ]
    for (const [sql, expected] of refusals) {
      await assert.rejects(
        runSql(ch, sql),
        (err: Error) => err instanceof InvalidInputError && expected.test(err.message),
        sql,
      )
    }
    assert.equal(await spanCount(), before)
    assert.deepEqual(
      (await runSql(ch, 'SHOW TABLES')).rows.map((r) => r[0]),
      tablesBefore,
    )
  })

  test('the read-only session itself refuses writes (the guard behind the prechecks)', async () => {
    await readOnlyPool(ch).withSlot(undefined, async ({ target: { client } }) => {
      await assert.rejects(
        client.command({ query: "INSERT INTO spans (request_id) VALUES ('x')" }),
        (err: Error & { type?: string }) => err.type === 'READONLY',
      )
      await assert.rejects(
        client.command({ query: 'SET readonly = 0' }),
        (err: Error & { type?: string }) => err.type === 'READONLY',
      )
    })
  })

  test('SELECT … INTO OUTFILE (chDB writes it even when read-only) is refused; no file appears', async () => {
    const target = join(dir, 'leak.txt')
    for (const sql of [
      `SELECT 1 INTO OUTFILE '${target}'`,
      `SHOW TABLES /* x */ INTO   OUTFILE '${target}'`,
    ]) {
      await assert.rejects(runSql(ch, sql), /INTO OUTFILE writes a file/)
    }
    assert.equal(existsSync(target), false)
  })

  test('the ingest session still writes after read-only queries ran', async () => {
    // regression: a per-query readonly setting on chDB would stick to the process's only session
    const before = await spanCount()
    await insertRecords(ch, spansTable, [spanFor(9000, 'cnn', next)])
    assert.equal(await spanCount(), (before as number) + 1)
  })

  test('ClickHouse errors become InvalidInputError with the server message, not a stack', async () => {
    const cases: [string, RegExp][] = [
      ['SELEC 1', /^SQL: Syntax error/],
      ['SELECT nope FROM spans', /Unknown expression identifier `nope`.*\(UNKNOWN_IDENTIFIER\)$/],
      ['SELECT 1 FROM nope', /table nope is not readable here/],
      ['SELECT 1 FORMAT CSV', /remove the FORMAT clause/],
      ['', /no SQL statement given/],
    ]
    for (const [sql, expected] of cases) {
      await assert.rejects(
        runSql(ch, sql),
        (err: Error) =>
          err instanceof InvalidInputError && expected.test(err.message) && !/\n\s+at /.test(err.message),
        sql,
      )
    }
  })
})

describe('HTTP API', () => {
  let app: FastifyInstance
  before(async () => {
    app = Fastify()
    await app.register(queriesPlugin, { ch })
    await app.ready()
  })
  after(async () => {
    await app.close()
  })

  test('GET /api/queries lists queries with their parameters', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/queries' })
    assert.equal(res.statusCode, 200)
    const body = res.json() as {
      queries: { name: string; params: { name: string; type: string; default?: string }[] }[]
    }
    const sb = body.queries.find((q) => q.name === 'stage-breakdown')!
    assert.deepEqual(
      sb.params.map((p) => [p.name, p.type, p.default]),
      [
        ['from', 'DateTime64(6)', '-1h'],
        ['to', 'DateTime64(6)', 'now'],
        ['model', 'String', ''],
      ],
    )
  })

  test('GET with query-string parameters, json by default', async () => {
    const res = await app.inject({
      method: 'GET',
      url: '/api/queries/stage-breakdown',
      query: { ...RANGE, model: 'mlp' },
    })
    assert.equal(res.statusCode, 200)
    assert.match(res.headers['content-type'] as string, /^application\/json/)
    const rows = res.json() as { stage: string; requests: number }[]
    assert.equal(rows.length, STAGES.length + 1)
    assert.ok(rows.every((r) => r.requests === MLP_SPANS))
  })

  test('POST with a JSON body; csv and table output', async () => {
    const csv = await app.inject({
      method: 'POST',
      url: '/api/queries/stage-breakdown?format=csv',
      payload: { ...RANGE, model: 'cnn' },
    })
    assert.equal(csv.statusCode, 200)
    assert.match(csv.headers['content-type'] as string, /^text\/csv/)
    const lines = csv.body.split('\r\n')
    assert.equal(lines[0], 'model,stage,requests,p50_ms,p95_ms,p99_ms,mean_ms,share_of_total')
    assert.match(lines[1]!, /^cnn,deserialize,40,/)

    const table = await app.inject({
      method: 'POST',
      url: '/api/queries/stage-breakdown',
      payload: { ...RANGE, model: 'cnn', format: 'table' },
    })
    assert.equal(table.statusCode, 200)
    const direct = await runNamedQuery(ch, 'stage-breakdown', { ...RANGE, model: 'cnn' })
    assert.equal(table.body, toTable(direct))
  })

  test('format=result keeps column types for clients that render themselves', async () => {
    const res = await app.inject({
      method: 'GET',
      url: '/api/queries/throughput',
      query: { ...RANGE, format: 'result' },
    })
    const body = res.json() as QueryResult & { params: Record<string, string> }
    assert.equal(body.columns[0]!.name, 'bucket')
    assert.equal(body.params.step, '60')
  })

  test('bad parameters are 400, an unknown query 404, both { error, code }', async () => {
    const bad = await app.inject({ method: 'GET', url: '/api/queries/stage-breakdown?from=yesterday' })
    assert.equal(bad.statusCode, 400)
    assert.equal(bad.json().code, 'BREAKID_INVALID_INPUT')
    assert.match(bad.json().error, /parameter 'from' \(DateTime64\(6\)\)/)

    const unknownParam = await app.inject({ method: 'GET', url: '/api/queries/stage-breakdown?form=-1h' })
    assert.equal(unknownParam.statusCode, 400)
    assert.match(unknownParam.json().error, /known parameters: from, to, model/)

    const twice = await app.inject({ method: 'GET', url: '/api/queries/stage-breakdown?model=a&model=b' })
    assert.equal(twice.statusCode, 400)

    const badFormat = await app.inject({ method: 'GET', url: '/api/queries/stage-breakdown?format=xml' })
    assert.equal(badFormat.statusCode, 400)
    assert.match(badFormat.json().error, /format must be one of table, json, ndjson, csv, result/)

    const missing = await app.inject({ method: 'GET', url: '/api/queries/nope' })
    assert.equal(missing.statusCode, 404)
    assert.deepEqual(Object.keys(missing.json()).sort(), ['code', 'error'])
    assert.equal(missing.json().code, 'BREAKID_UNKNOWN_QUERY')
  })

  test('POST /api/sql takes JSON (text/plain is 415); writes and bad SQL are 400', async () => {
    const json = await postSql(app, { sql: "SELECT count() AS n FROM spans WHERE model = 'mlp'" })
    assert.equal(json.statusCode, 200)
    assert.deepEqual(json.json(), [{ n: MLP_SPANS + 2 }])

    const limited = await app.inject({
      method: 'POST',
      url: '/api/sql?format=ndjson&limitRows=2',
      payload: { sql: 'SELECT number FROM numbers(10)' },
    })
    assert.equal(limited.statusCode, 200)
    assert.equal(limited.body, '{"number":0}\n{"number":1}\n')
    assert.equal(limited.headers['x-breakid-truncated'], 'true')

    // a browser page may POST text/plain cross-site without a preflight: not a way in
    const text = await postSql(app, 'SELECT 1', 'text/plain')
    assert.equal(text.statusCode, 415)

    for (const sql of ['DROP TABLE spans', 'SELEC 1']) {
      const res = await postSql(app, { sql })
      assert.equal(res.statusCode, 400, sql)
      assert.equal(res.json().code, 'BREAKID_INVALID_INPUT')
    }
    const malformed = await postSql(app, '{"sql": ', 'application/json')
    assert.equal(malformed.statusCode, 400)
    const noSql = await postSql(app, { query: 'SELECT 1' })
    assert.equal(noSql.statusCode, 400)
    assert.match(noSql.json().error, /send the SQL as a JSON body/)
  })
})
