/**
 * Versioned schema migrations. Each runs once, in order, and is recorded in `schema_migrations`;
 * a migration is never edited after release — add a new one. Released statements are kept as the
 * SQL they ran (not rebuilt from today's table specs), so an old store and a new one end up alike.
 *
 * Several processes may start against one server at once (a consumer group of ingesters): a
 * migration runs under a lock table that only one of them can create.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { createClient } from '@clickhouse/client'
import type { ClickHouse } from './client.ts'
import { ident } from './client.ts'
import { rollupSelectSql, rollupTableSql, rollupTtl, rollupViewSql } from './rollups.ts'
import {
  alertsTable,
  type Column,
  columnSql,
  createTableSql,
  DEDUP_WINDOW_BLOCKS,
  deadLettersTable,
  hwSamplesTable,
  type Retention,
  ROLLUPS,
  spansTable,
  type TableSpec,
  ttlExpression,
} from './tables.ts'

interface Migration {
  version: number
  name: string
  /** `retention` undefined: tables without TTL */
  statements: (db: string, retention: Retention | undefined) => string[]
}

/** The tables of release 1 (migrations 1–3 as they ran), with `DB` standing for the database. */
const V1_SPANS = `CREATE TABLE IF NOT EXISTS \`DB\`.\`spans\` (
  \`timestamp\` DateTime64(6, 'UTC'), \`trace_id\` String, \`span_id\` String, \`request_id\` String,
  \`fleet\` LowCardinality(String), \`host\` LowCardinality(String), \`instance\` LowCardinality(String),
  \`model\` LowCardinality(String), \`model_version\` LowCardinality(String), \`device\` LowCardinality(String),
  \`batch_id\` String, \`batch_size\` UInt32, \`status\` LowCardinality(String), \`error_class\` Nullable(String),
  \`cache_hit\` Bool, \`request_bytes\` UInt32, \`response_bytes\` UInt32, \`deserialize_us\` UInt64,
  \`preprocess_us\` UInt64, \`queue_wait_us\` UInt64, \`compute_us\` UInt64, \`postprocess_us\` UInt64,
  \`serialize_us\` UInt64, \`total_us\` UInt64, \`input_mean\` Nullable(Float64), \`input_std\` Nullable(Float64),
  \`output_mean\` Nullable(Float64), \`output_confidence\` Nullable(Float64)
) ENGINE = ReplacingMergeTree PARTITION BY toDate(timestamp) ORDER BY (model, instance, timestamp, request_id)`

const V1_HW_SAMPLES = `CREATE TABLE IF NOT EXISTS \`DB\`.\`hw_samples\` (
  \`timestamp\` DateTime64(6, 'UTC'), \`fleet\` LowCardinality(String), \`host\` LowCardinality(String),
  \`instance\` LowCardinality(String), \`interval_ms\` UInt32, \`process_cpu\` Float64, \`rss_bytes\` UInt64,
  \`heap_used_bytes\` UInt64, \`event_loop_delay_p99_ms\` Float64, \`gc_ms\` Float64, \`queue_depth\` UInt32,
  \`in_flight\` UInt32, \`arrivals\` UInt32, \`completions\` UInt32, \`executor_busy\` Float64,
  \`device_device\` Array(String), \`device_utilization\` Array(Nullable(Float64)),
  \`device_memory_used_bytes\` Array(Nullable(UInt64)), \`device_memory_total_bytes\` Array(Nullable(UInt64)),
  \`device_power_w\` Array(Nullable(Float64)), \`device_temperature_c\` Array(Nullable(Float64))
) ENGINE = ReplacingMergeTree PARTITION BY toDate(timestamp) ORDER BY (instance, timestamp)`

const V1_ALERTS = `CREATE TABLE IF NOT EXISTS \`DB\`.\`alerts\` (
  \`id\` String, \`type\` LowCardinality(String), \`severity\` LowCardinality(String),
  \`status\` LowCardinality(String), \`dedup_key\` String, \`fleet\` String, \`instance\` String, \`model\` String,
  \`stage\` Nullable(String), \`starts_at\` DateTime64(6, 'UTC'), \`ends_at\` Nullable(DateTime64(6, 'UTC')),
  \`updated_at\` DateTime64(6, 'UTC'), \`statistic\` String, \`observed\` Float64, \`baseline\` Float64,
  \`threshold\` Float64, \`summary\` String, \`suspected_cause\` String, \`suggested_action\` String,
  \`exemplar_request_ids\` Array(String)
) ENGINE = ReplacingMergeTree(updated_at) ORDER BY id`

const V1_DEAD_LETTERS = `CREATE TABLE IF NOT EXISTS \`DB\`.\`dead_letters\` (
  \`received_at\` DateTime64(6, 'UTC'), \`source_topic\` String, \`source_partition\` UInt32,
  \`source_offset\` String, \`reason\` String, \`error\` String, \`payload_base64\` String
) ENGINE = ReplacingMergeTree ORDER BY (source_topic, source_partition, source_offset)`

const V2_DETECTOR_STATE = `CREATE TABLE IF NOT EXISTS \`DB\`.\`detector_state\` (
  \`scope\` LowCardinality(String), \`detector_type\` LowCardinality(String), \`key\` String, \`state\` String,
  \`updated_at\` DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at) ORDER BY (scope, detector_type, key)`

const PSI = ['cpu', 'memory', 'io'].flatMap((r) =>
  ['some', 'full'].flatMap((k) => [
    `ADD COLUMN IF NOT EXISTS \`psi_${r}_${k}_avg10\` Nullable(Float64)`,
    `ADD COLUMN IF NOT EXISTS \`psi_${r}_${k}_total_us\` Nullable(UInt64)`,
  ]),
)

const inDb = (db: string, sql: string) => sql.replaceAll('`DB`', ident(db))

/**
 * Copies a table into its new layout and swaps the two: each column converted to its new type (hex
 * ids to bytes, durations clamped into UInt32), duplicates left by the old ReplacingMergeTree
 * collapsed once with FINAL.
 */
function rebuild<R>(db: string, spec: TableSpec<R>, retention: Retention | undefined): string[] {
  const next = `${spec.name}_next`
  const convert = (c: Column<R>) => {
    const src = ident(c.name)
    if (c.convert === 'hex') {
      const width = Number(/\d+/.exec(c.type)![0])
      return `if(match(${src}, '^[0-9a-fA-F]{${width * 2}}$'), toFixedString(unhex(${src}), ${width}), toFixedString('', ${width}))`
    }
    if (/^(Nullable\()?UInt32\)?$/.test(c.type)) return `CAST(least(${src}, 4294967295), '${c.type}')`
    return `CAST(${src}, '${c.type.replace(/'/g, "\\'")}')`
  }
  return [
    `DROP TABLE IF EXISTS ${ident(db)}.${ident(next)}`,
    createTableSql(db, spec, retention, next),
    `INSERT INTO ${ident(db)}.${ident(next)} (${spec.columns.map((c) => ident(c.name)).join(', ')}) ` +
      `SELECT ${spec.columns.map(convert).join(', ')} FROM ${ident(db)}.${ident(spec.name)} FINAL`,
    `EXCHANGE TABLES ${ident(db)}.${ident(spec.name)} AND ${ident(db)}.${ident(next)}`,
    `DROP TABLE ${ident(db)}.${ident(next)}`,
  ]
}

/**
 * Columns of today's table specs that later migrations add. Migration 4 rebuilds a table from its
 * spec as it was then (today's less these), so a store migrated from any version and a new one end
 * up alike; each later migration adds its columns with the spec's type and codec.
 */
const ADDED_AFTER_V4: Readonly<Record<string, readonly string[]>> = {
  hw_samples: ['process_cpu_wait'],
}

function asOfV4<R>(spec: TableSpec<R>): TableSpec<R> {
  const later = ADDED_AFTER_V4[spec.name] ?? []
  return { ...spec, columns: spec.columns.filter((c) => !later.includes(c.name)) }
}

function addColumns<R>(db: string, spec: TableSpec<R>, names: readonly string[]): string {
  const add = names.map((n) => {
    const c = spec.columns.find((x) => x.name === n)
    if (!c) throw new Error(`${spec.name} has no column ${n}`)
    return `ADD COLUMN IF NOT EXISTS ${columnSql(c)}`
  })
  return `ALTER TABLE ${ident(db)}.${ident(spec.name)} ${add.join(', ')}`
}

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'telemetry tables',
    statements: (db) => [V1_SPANS, V1_HW_SAMPLES, V1_ALERTS, V1_DEAD_LETTERS].map((s) => inDb(db, s)),
  },
  {
    version: 2,
    name: 'detector state checkpoints',
    statements: (db) => [inDb(db, V2_DETECTOR_STATE)],
  },
  {
    version: 3,
    name: 'v2 record fields: run ids, host pressure, resolve reasons, related alerts',
    statements: (db) =>
      [
        'ALTER TABLE `DB`.`spans` ADD COLUMN IF NOT EXISTS `run_id` Nullable(String)',
        'ALTER TABLE `DB`.`hw_samples` ADD COLUMN IF NOT EXISTS `run_id` Nullable(String), ' +
          'ADD COLUMN IF NOT EXISTS `host_cpu` Nullable(Float64), ADD COLUMN IF NOT EXISTS `host_cpus` Nullable(UInt32), ' +
          `${PSI.join(', ')}, ADD COLUMN IF NOT EXISTS \`cgroup_cpu_limit\` Nullable(Float64), ` +
          'ADD COLUMN IF NOT EXISTS `cgroup_nr_throttled` Nullable(UInt64), ADD COLUMN IF NOT EXISTS `cgroup_throttled_us` Nullable(UInt64)',
        'ALTER TABLE `DB`.`alerts` ADD COLUMN IF NOT EXISTS `run_id` Nullable(String), ' +
          'ADD COLUMN IF NOT EXISTS `resolve_reason` Nullable(String), ADD COLUMN IF NOT EXISTS `related` String',
      ].map((s) => inDb(db, s)),
  },
  {
    version: 4,
    name: 'compact spans and samples (byte ids, codecs, TTL), insert deduplication, minute and hour rollups',
    statements: (db, retention) => {
      const t = (name: string) => `${ident(db)}.${ident(name)}`
      const [minute, hour] = ROLLUPS as [(typeof ROLLUPS)[number], (typeof ROLLUPS)[number]]
      return [
        ...rebuild(db, asOfV4(spansTable), retention),
        ...rebuild(db, asOfV4(hwSamplesTable), retention),
        `ALTER TABLE ${t(alertsTable.name)} MODIFY SETTING non_replicated_deduplication_window = ${DEDUP_WINDOW_BLOCKS}`,
        `ALTER TABLE ${t(deadLettersTable.name)} MODIFY SETTING non_replicated_deduplication_window = ${DEDUP_WINDOW_BLOCKS}`,
        ...(retention
          ? [
              `ALTER TABLE ${t(deadLettersTable.name)} MODIFY TTL ${ttlExpression(deadLettersTable, retention)}`,
            ]
          : []),
        rollupTableSql(db, minute, retention),
        rollupTableSql(db, hour, retention),
        // the hour view first: the backfill of the minutes below flows on into the hours
        rollupViewSql(db, hour),
        `INSERT INTO ${t(minute.name)} ${rollupSelectSql(db, minute)}`,
        rollupViewSql(db, minute),
      ]
    },
  },
  {
    version: 5,
    name: 'v3 hardware samples: the run-queue wait of the engine process',
    statements: (db) => [addColumns(db, hwSamplesTable, ['process_cpu_wait'])],
  },
]

export interface MigrateOptions {
  /**
   * How long data is kept. Given: tables get (or change to) this TTL. Absent: new tables have no
   * TTL and existing TTLs stay as they are (tests and tools with fixed past event times).
   */
  retention?: Retention
  /** how long another process's migration lock is honoured before it is taken over. Default 10 min */
  staleLockMs?: number
}

const LOCK_TABLE = 'schema_migrations_lock'

export async function migrate(ch: ClickHouse, opts: MigrateOptions = {}): Promise<number[]> {
  const retention = opts.retention
  const db = ident(ch.database)
  if (ch.url) {
    // the server client names this database on every request, so it must exist before its first use
    const bootstrap = createClient({ url: ch.url })
    try {
      await bootstrap.command({ query: `CREATE DATABASE IF NOT EXISTS ${db}` })
    } finally {
      await bootstrap.close()
    }
  } else {
    await ch.client.command({ query: `CREATE DATABASE IF NOT EXISTS ${db}` })
    // a chDB session keeps USE for later queries, like the server client's `database` option
    await ch.client.command({ query: `USE ${db}` })
  }
  await ch.client.command({
    query: `CREATE TABLE IF NOT EXISTS ${db}.schema_migrations (version UInt32, name String, applied_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY version`,
  })
  const ran: number[] = []
  const pending = async () => {
    const rs = await ch.client.query({
      query: `SELECT version FROM ${db}.schema_migrations`,
      format: 'JSONEachRow',
    })
    const applied = new Set((await rs.json<{ version: number }>()).map((r) => Number(r.version)))
    return MIGRATIONS.filter((m) => !applied.has(m.version))
  }
  if ((await pending()).length > 0) {
    await withLock(ch, opts.staleLockMs ?? 600_000, async () => {
      // another process may have migrated while this one waited for the lock
      for (const m of await pending()) {
        for (const query of m.statements(ch.database, retention)) await ch.client.command({ query })
        await ch.client.insert({
          table: `${ch.database}.schema_migrations`,
          values: [[m.version, m.name]],
          format: 'JSONCompactEachRow',
          columns: ['version', 'name'],
        })
        ran.push(m.version)
      }
    })
  }
  if (retention) await applyRetention(ch, retention)
  return ran
}

/** One migrating process at a time: whoever creates the lock table holds the lock. */
async function withLock(ch: ClickHouse, staleMs: number, fn: () => Promise<void>): Promise<void> {
  const lock = `${ident(ch.database)}.${ident(LOCK_TABLE)}`
  for (;;) {
    try {
      await ch.client.command({ query: `CREATE TABLE ${lock} (pid UInt32) ENGINE = Memory` })
      break
    } catch (err) {
      if (String((err as { code?: unknown }).code) !== '57') throw err // 57: TABLE_ALREADY_EXISTS
      const rs = await ch.client.query({
        query: `SELECT toUnixTimestamp(metadata_modification_time) AS at FROM system.tables WHERE database = {db:String} AND name = {name:String}`,
        query_params: { db: ch.database, name: LOCK_TABLE },
        format: 'JSONEachRow',
      })
      const [row] = await rs.json<{ at: number }>()
      if (row && Date.now() - Number(row.at) * 1000 > staleMs) {
        await ch.client.command({ query: `DROP TABLE IF EXISTS ${lock}` })
      } else await sleep(200)
    }
  }
  try {
    await fn()
  } finally {
    await ch.client.command({ query: `DROP TABLE IF EXISTS ${lock}` })
  }
}

/** Sets each table's TTL to the configured retention where it differs (a changed configuration). */
async function applyRetention(ch: ClickHouse, retention: Retention): Promise<void> {
  const rs = await ch.client.query({
    query: 'SELECT name, engine_full FROM system.tables WHERE database = {db:String}',
    query_params: { db: ch.database },
    format: 'JSONEachRow',
  })
  const engines = new Map(
    (await rs.json<{ name: string; engine_full: string }>()).map((r) => [r.name, r.engine_full]),
  )
  const wanted: [string, string][] = [
    ...[spansTable, hwSamplesTable, deadLettersTable].map(
      (s) => [s.name, ttlExpression(s as TableSpec<unknown>, retention)] as [string, string],
    ),
    ...ROLLUPS.map((r) => [r.name, rollupTtl(r, retention)] as [string, string]),
  ]
  for (const [table, ttl] of wanted) {
    const engine = engines.get(table)
    if (engine === undefined || engine.includes(`TTL ${ttl}`)) continue
    await ch.client.command({ query: `ALTER TABLE ${ident(ch.database)}.${ident(table)} MODIFY TTL ${ttl}` })
  }
}
