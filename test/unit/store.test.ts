/**
 * The store on real chDB: Native inserts of every table, deduplication tokens (tables and rollups),
 * the rollups against the raw spans, retention, and the migration of a release-1 store into the
 * compact layout. One chDB data directory for the file; each test uses its own database.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { type ClickHouse, openClickHouse } from '../../store/client.ts'
import { MIGRATIONS, migrate } from '../../store/migrations.ts'
import { alertsTable, hwSamplesTable, type Retention, spansTable } from '../../store/tables.ts'
import { insertRecords } from '../../store/writer.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { makeAlert, makeHwSample, makeSpan } from '../../contract/synthetic.ts'
import type { Span } from '../../contract/records.ts'

let dataDir = ''
before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'breakid-store-'))
})
after(async () => {
  await rm(dataDir, { recursive: true, force: true })
})

async function fresh(database: string): Promise<ClickHouse> {
  const ch = openClickHouse({ dataDir, database })
  await migrate(ch)
  return ch
}

async function rows<T>(ch: ClickHouse, query: string): Promise<T[]> {
  const rs = await ch.client.query({ query, format: 'JSONEachRow' })
  return rs.json<T>()
}

async function scalar(ch: ClickHouse, query: string): Promise<number> {
  const [row] = await rows<{ n: string }>(ch, `SELECT toString((${query})) AS n`)
  return Number(row!.n)
}

test('spans go in as bytes and come back as the hex the wire carries, to the microsecond', async () => {
  const ch = await fresh('store_roundtrip')
  try {
    const spans = [
      makeSpan(0, { trace_id: '0af7651916cd43dd8448eb211c80319c', span_id: 'b7ad6b7169203331' }),
      makeSpan(1, { status: 'server_error', error_class: 'OrtError', input_mean: null, run_id: 'r1' }),
      // a record of a v1 writer has no run_id at all
      (({ run_id: _, ...v1 }) => v1 as Span)(makeSpan(2, { timestamp_us: 1_767_225_600_123_457 })),
    ]
    await insertRecords(ch, spansTable, spans)
    const got = await rows<Record<string, unknown>>(
      ch,
      `SELECT trace_id_hex, span_id_hex, toString(toUnixTimestamp64Micro(timestamp)) AS ts, status, error_class,
              input_mean, run_id, toUInt32(compute_us) AS compute_us, length(trace_id) AS id_bytes
       FROM spans_hex_check ORDER BY timestamp`.replace('spans_hex_check', `${ch.database}.spans`),
    )
    assert.deepEqual(
      got.map((r) => [r.trace_id_hex, r.span_id_hex, r.ts, r.status, r.error_class, r.run_id, r.id_bytes]),
      spans.map((s) => [
        s.trace_id,
        s.span_id,
        String(s.timestamp_us),
        s.status,
        s.error_class,
        (s as Span).run_id ?? null,
        16,
      ]),
    )
    assert.equal(got[1]!.input_mean, null)
    assert.equal(got[0]!.compute_us, spans[0]!.compute_us)
  } finally {
    await ch.close()
  }
})

test('hardware samples and alerts round-trip through Native blocks', async () => {
  const ch = await fresh('store_other_tables')
  try {
    const hw = [
      makeHwSample(0, {
        devices: [
          {
            device: 'gpu0',
            utilization: 0.5,
            memory_used_bytes: 80 * 2 ** 30,
            memory_total_bytes: null,
            power_w: null,
            temperature_c: 61,
          },
          {
            device: 'gpu1',
            utilization: null,
            memory_used_bytes: 0,
            memory_total_bytes: 1,
            power_w: 300.5,
            temperature_c: null,
          },
        ],
      }),
      makeHwSample(1, { devices: [] }),
    ]
    await insertRecords(ch, hwSamplesTable, hw)
    const storedHw = await rows<Record<string, unknown>>(
      ch,
      `SELECT device_device, device_utilization, arrayMap(x -> toString(x), device_memory_used_bytes) AS mem,
              device_power_w, psi_cpu_some_avg10 FROM ${ch.database}.hw_samples ORDER BY timestamp`,
    )
    assert.deepEqual(storedHw[0]!.device_device, ['gpu0', 'gpu1'])
    assert.deepEqual(storedHw[0]!.device_utilization, [0.5, null])
    assert.deepEqual(storedHw[0]!.mem, [String(80 * 2 ** 30), '0'])
    assert.deepEqual(storedHw[0]!.device_power_w, [null, 300.5])
    assert.deepEqual(storedHw[1]!.device_device, [])
    assert.equal(storedHw[1]!.psi_cpu_some_avg10, 1.5)

    const alert = makeAlert({
      related: [{ id: 'x', type: 'slo_p99_breach', stage: null, starts_at_us: 1, summary: 's' }],
    })
    await insertRecords(ch, alertsTable, [alert])
    const [stored] = await rows<{ exemplar_request_ids: string[]; related: string }>(
      ch,
      `SELECT exemplar_request_ids, related FROM ${ch.database}.alerts`,
    )
    assert.deepEqual(stored!.exemplar_request_ids, alert.exemplar_request_ids)
    assert.deepEqual(JSON.parse(stored!.related), alert.related)
  } finally {
    await ch.close()
  }
})

test('a value a column cannot hold is refused as bad input, and nothing of its block is stored', async () => {
  const ch = await fresh('store_range')
  try {
    for (const bad of [
      makeSpan(0, { batch_size: -1 }),
      makeSpan(0, { total_us: 2 ** 32 }),
      makeSpan(0, { trace_id: 'not-hex' }),
      makeSpan(0, { span_id: 'b7ad6b71692033' }), // 7 bytes
    ]) {
      await assert.rejects(insertRecords(ch, spansTable, [makeSpan(1), bad]), InvalidInputError)
    }
    assert.equal(await scalar(ch, `SELECT count() FROM ${ch.database}.spans`), 0)
  } finally {
    await ch.close()
  }
})

test('an insert repeated with the same token is stored once, in the spans and in both rollups', async () => {
  const ch = await fresh('store_dedup')
  try {
    const spans = Array.from({ length: 500 }, (_, i) => makeSpan(i, { instance: `engine-${i % 3}` }))
    await insertRecords(ch, spansTable, spans, { token: 'spans/0/0-499' })
    await insertRecords(ch, spansTable, spans, { token: 'spans/0/0-499' }) // a redelivery
    const db = ch.database
    assert.equal(await scalar(ch, `SELECT count() FROM ${db}.spans`), 500)
    assert.equal(await scalar(ch, `SELECT sum(requests) FROM ${db}.spans_1m`), 500)
    assert.equal(await scalar(ch, `SELECT sum(requests) FROM ${db}.spans_1h`), 500)
    // control: another token is another block, so the oracle above can fail
    await insertRecords(ch, spansTable, spans.slice(0, 10), { token: 'spans/0/500-509' })
    assert.equal(await scalar(ch, `SELECT count() FROM ${db}.spans`), 510)
    assert.equal(await scalar(ch, `SELECT sum(requests) FROM ${db}.spans_1h`), 510)
  } finally {
    await ch.close()
  }
})

test('the rollups agree with the raw spans: counts, sums, maxima and quantiles within 1 %', async () => {
  const ch = await fresh('store_rollups')
  try {
    // three minutes of two instances, durations spread over two orders of magnitude
    const spans = Array.from({ length: 3000 }, (_, i) =>
      makeSpan(i, {
        timestamp_us: 1_767_225_600_000_000 + i * 60_000,
        instance: `engine-${i % 2}`,
        compute_us: 100 + ((i * 7919) % 10_000),
        status: i % 50 === 0 ? 'server_error' : 'ok',
      }),
    )
    // several inserts, so the rollups hold several partial states per bucket until merged
    for (let i = 0; i < spans.length; i += 700) await insertRecords(ch, spansTable, spans.slice(i, i + 700))
    const db = ch.database
    const raw = await rows<Record<string, string>>(
      ch,
      `SELECT toString(toStartOfMinute(timestamp)) AS m, instance, status, toString(count()) AS n,
              toString(sum(compute_us)) AS s, toString(max(compute_us)) AS mx,
              arraySort(groupArray(compute_us)) AS sorted
       FROM ${db}.spans GROUP BY m, instance, status ORDER BY m, instance, status`,
    )
    const rolled = await rows<Record<string, string | string[]>>(
      ch,
      `SELECT toString(minute) AS m, instance, status, toString(sum(requests)) AS n, toString(sum(compute_us_sum)) AS s,
              toString(max(compute_us_max)) AS mx,
              arrayMap(x -> toString(round(x)), quantilesDDMerge(0.01, 0.5, 0.95, 0.99)(compute_us_q)) AS q
       FROM ${db}.spans_1m GROUP BY m, instance, status ORDER BY m, instance, status`,
    )
    assert.equal(rolled.length, raw.length)
    for (const [i, r] of raw.entries()) {
      const g = rolled[i]!
      assert.deepEqual(
        [g.m, g.instance, g.status, g.n, g.s, g.mx],
        [r.m, r.instance, r.status, r.n, r.s, r.mx],
      )
      // DDSketch answers within 1 % of a sample next to the quantile's rank (rank conventions differ
      // by one sample, which matters in the small error groups)
      const sorted = r.sorted as unknown as number[]
      for (const [k, approx] of (g.q as string[]).entries()) {
        const rank = [0.5, 0.95, 0.99][k]! * (sorted.length - 1)
        const lo = sorted[Math.max(0, Math.floor(rank) - 1)]!
        const hi = sorted[Math.min(sorted.length - 1, Math.ceil(rank) + 1)]!
        const v = Number(approx)
        assert.ok(
          v >= lo * 0.99 - 1 && v <= hi * 1.01 + 1,
          `${r.m} ${r.status} q${k}: ${v} not in [${lo}, ${hi}] ± 1 %`,
        )
      }
    }
    assert.equal(await scalar(ch, `SELECT sum(requests) FROM ${db}.spans_1h`), 3000)
  } finally {
    await ch.close()
  }
})

test('retention comes from the configuration and a changed one is applied on the next start', async () => {
  const ch = openClickHouse({ dataDir, database: 'store_retention' })
  try {
    await migrate(ch, { retention: { spanDays: 3, days: 30 } })
    const ttl = async (t: string) =>
      (
        await rows<{ e: string }>(
          ch,
          `SELECT engine_full AS e FROM system.tables WHERE database = 'store_retention' AND name = '${t}'`,
        )
      )[0]!.e
    assert.match(await ttl('spans'), /TTL toDateTime\(timestamp\) \+ toIntervalDay\(3\)/)
    assert.match(await ttl('hw_samples'), /toIntervalDay\(30\)/)
    assert.match(await ttl('spans_1m'), /toIntervalDay\(30\)/)
    await migrate(ch, { retention: { spanDays: 7, days: 90 } })
    assert.match(await ttl('spans'), /toIntervalDay\(7\)/)
    assert.match(await ttl('spans_1h'), /toIntervalDay\(90\)/)
  } finally {
    await ch.close()
  }
})

/** A store left as an older release left it: the migrations up to `version` run and recorded. */
async function migratedUpTo(ch: ClickHouse, version: number, retention?: Retention): Promise<void> {
  const db = ch.database
  await ch.client.command({ query: `CREATE DATABASE IF NOT EXISTS ${db}` })
  await ch.client.command({
    query: `CREATE TABLE ${db}.schema_migrations (version UInt32, name String, applied_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY version`,
  })
  for (const m of MIGRATIONS.filter((m) => m.version <= version)) {
    for (const query of m.statements(db, retention)) await ch.client.command({ query })
    await ch.client.command({
      query: `INSERT INTO ${db}.schema_migrations (version, name) VALUES (${m.version}, '')`,
    })
  }
}

test('a release-1 store is migrated: ids to bytes, duplicates collapsed, rollups backfilled', async () => {
  const ch = openClickHouse({ dataDir, database: 'store_release1' })
  try {
    const db = ch.database
    await migratedUpTo(ch, 3, { spanDays: 7, days: 90 })
    // release 1 stored hex strings, kept a redelivered batch until merged, and took any UInt64
    const old = Array.from({ length: 20 }, (_, i) => makeSpan(i))
    const asRow = (s: (typeof old)[number]) => ({
      ...s,
      timestamp: `${new Date(s.timestamp_us / 1000).toISOString().slice(0, 19).replace('T', ' ')}.${String(s.timestamp_us % 1_000_000).padStart(6, '0')}`,
      timestamp_us: undefined,
    })
    for (const batch of [old, old.slice(0, 5)]) {
      await ch.client.insert({
        table: `${db}.spans`,
        values: batch.map(asRow),
        format: 'JSONEachRow',
        clickhouse_settings: { input_format_skip_unknown_fields: 1 },
      })
    }
    await ch.client.insert({
      table: `${db}.hw_samples`,
      values: [
        {
          timestamp: 1_767_225_600,
          instance: 'engine-0',
          device_device: ['cpu'],
          device_utilization: [null],
        },
      ],
      format: 'JSONEachRow',
    })
    assert.equal(await scalar(ch, `SELECT count() FROM ${db}.spans`), 25)

    assert.deepEqual(await migrate(ch), [4, 5], 'the rebuild (4), then the columns added after it (5)')
    assert.equal(await scalar(ch, `SELECT count() FROM ${db}.spans`), 20)
    const ids = await rows<{ t: string; s: string; r: string }>(
      ch,
      `SELECT trace_id_hex AS t, span_id_hex AS s, request_id AS r FROM ${db}.spans ORDER BY timestamp`,
    )
    assert.deepEqual(
      ids.map((r) => [r.t, r.s, r.r]),
      old.map((s) => [s.trace_id, s.span_id, s.request_id]),
    )
    assert.equal(await scalar(ch, `SELECT sum(requests) FROM ${db}.spans_1m`), 20)
    assert.equal(await scalar(ch, `SELECT sum(requests) FROM ${db}.spans_1h`), 20)
    assert.equal(await scalar(ch, `SELECT count() FROM ${db}.hw_samples`), 1)
    // new spans flow into the rollups from now on
    await insertRecords(ch, spansTable, [makeSpan(100)])
    assert.equal(await scalar(ch, `SELECT sum(requests) FROM ${db}.spans_1h`), 21)
    assert.deepEqual(await migrate(ch), [], 'nothing left to run')
    await assertLikeTheSpec(ch)
  } finally {
    await ch.close()
  }
})

/**
 * hw_samples as the current spec defines it: every column in order with its type, and the newest
 * column with its codec (ClickHouse spells some codecs out, Delta as Delta(8), so not all compare).
 */
async function assertLikeTheSpec(ch: ClickHouse): Promise<void> {
  const got = await rows<{ name: string; type: string; codec: string }>(
    ch,
    `SELECT name, type, compression_codec AS codec FROM system.columns
     WHERE database = '${ch.database}' AND table = 'hw_samples' ORDER BY position`,
  )
  assert.deepEqual(
    got.map((c) => [c.name, c.type]),
    hwSamplesTable.columns.map((c) => [c.name, c.type]),
  )
  const wait = hwSamplesTable.columns.find((c) => c.name === 'process_cpu_wait')!
  assert.equal(got.find((c) => c.name === wait.name)?.codec, `CODEC(${wait.codec})`)
}

test('a store at version 4 gets the run-queue wait column (5) as a new store has it, its rows kept', async () => {
  const ch = openClickHouse({ dataDir, database: 'store_v4' })
  try {
    const db = ch.database
    await migratedUpTo(ch, 4)
    await ch.client.insert({
      table: `${db}.hw_samples`,
      values: [{ timestamp: 1_767_225_600, instance: 'engine-0' }],
      format: 'JSONEachRow',
    })
    assert.deepEqual(await migrate(ch), [5])
    assert.equal(await scalar(ch, `SELECT count() FROM ${db}.hw_samples WHERE process_cpu_wait IS NULL`), 1)
    await assertLikeTheSpec(ch)
  } finally {
    await ch.close()
  }
  const made = await fresh('store_v5_new')
  try {
    await assertLikeTheSpec(made)
  } finally {
    await made.close()
  }
})
