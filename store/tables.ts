/**
 * ClickHouse tables, one spec each: the column list drives the DDL (migrations.ts), the row encoding
 * of decoded records (writer.ts) and the Avro → Native transcoder (ingest), so a column cannot be
 * added to one and forgotten in another.
 *
 * Storage choices, measured on the fleet generator's spans (bench/query.ts, results in
 * bench/results/query.json): ids the wire carries as hex strings are stored as their bytes
 * (`FixedString(16)` trace ids, `FixedString(8)` span ids — 41 % of a span as hex), durations as
 * `UInt32` microseconds (71 minutes at most; longer is refused as out of range), summary statistics
 * as `Float32`, names `LowCardinality`, and every column with the codec that suits it (Delta on
 * sorted times, T64 on small integers, ZSTD everywhere). Raw spans expire after
 * `Retention.spanDays`, samples, rollups and dead letters after `Retention.days`.
 *
 * No table relies on merges to remove duplicates: every insert carries a deduplication token derived
 * from its Kafka offsets (ingest/blocks.ts) and each table keeps the hashes of its last
 * `DEDUP_WINDOW_BLOCKS` inserts, so a redelivered block is dropped at insert time and queries read
 * plain tables without FINAL.
 */
import type { Alert, HwSample, Span } from '../contract/records.ts'
import { STAGES } from '../contract/vocabulary.ts'

export interface Column<R> {
  name: string
  type: string
  /** `CODEC(…)` arguments; default LZ4 */
  codec?: string
  /** the value of a decoded record in this column (writer.ts) */
  value: (record: R) => unknown
  /**
   * The record field the column stores as is, or converted as `convert` says. The Avro transcoder
   * reads it straight from the record's bytes; columns without a field are computed in `value` only.
   */
  field?: keyof R & string
  /** hex: a hex string stored as its bytes (FixedString) */
  convert?: 'hex'
  /** SQL reading the column back as the record holds it (hex ids), when the stored form differs */
  read?: string
}

export interface Retention {
  /** raw spans, days (default 7) */
  spanDays: number
  /** hardware samples, rollups and dead letters, days (default 90) */
  days: number
}

/** What `breakid` configures by default (app/config.ts); the store itself expires nothing unless told. */
export const DEFAULT_RETENTION: Readonly<Retention> = Object.freeze({ spanDays: 7, days: 90 })

export interface TableSpec<R> {
  name: string
  /** what the table holds (README, `breakid sql` users) */
  description: string
  columns: Column<R>[]
  engine: string
  /** expression the TTL counts from, and which retention applies */
  ttl?: { from: string; retention: keyof Retention }
  /** extra DDL inside the column list (skip indexes, ALIAS columns) */
  extra?: string[]
  settings?: Record<string, string | number>
}

/**
 * Inserts whose hashes each table keeps to drop a redelivered block. Must cover every block
 * inserted into one table between a block's first insert and its replay after a restart or a
 * rebalance (minutes at a few blocks a second); MergeTree keeps the hashes in a small file per table.
 */
export const DEDUP_WINDOW_BLOCKS = 10_000

const DEDUP = { non_replicated_deduplication_window: DEDUP_WINDOW_BLOCKS }

export interface DeadLetter {
  received_at_us: number
  source_topic: string
  source_partition: number
  source_offset: string
  reason: string
  error: string
  payload: Buffer
}

const col = <R>(name: string, type: string, value: (r: R) => unknown, more: Partial<Column<R>> = {}) =>
  ({ name, type, value, ...more }) as Column<R>

/** Columns storing the record field of the same name, unconverted. */
const same = <R>(type: string, codec: string | undefined, ...names: (keyof R & string)[]): Column<R>[] =>
  names.map((n) => col<R>(n, type, (r) => r[n] ?? null, { field: n, ...(codec && { codec }) }))

const ZSTD = 'ZSTD(1)'
const SMALL_INT = 'T64, ZSTD(1)'
/** times sorted within an instance: Delta+ZSTD took 1.8 bytes a span, DoubleDelta 2.5 (fleet generator) */
const TIME = 'Delta, ZSTD(1)'

/** `Enum8` of the span status, values in the Avro enum's symbol order (the transcoder writes the index). */
export const SPAN_STATUSES = ['ok', 'client_error', 'server_error'] as const
const statusEnum = `Enum8(${SPAN_STATUSES.map((s, i) => `'${s}' = ${i}`).join(', ')})`

/** The duration columns, stages in pipeline order then the whole request. */
export const DURATION_COLUMNS = [...STAGES.map((s) => `${s}_us` as const), 'total_us' as const]

export const spansTable: TableSpec<Span> = {
  name: 'spans',
  description:
    'one row per request, raw (trace_id and span_id are bytes: read them with hex(), or the trace_id_hex and span_id_hex columns)',
  columns: [
    col('timestamp', "DateTime64(6, 'UTC')", (r) => r.timestamp_us, { field: 'timestamp_us', codec: TIME }),
    col('trace_id', 'FixedString(16)', (r) => r.trace_id, {
      field: 'trace_id',
      convert: 'hex',
      read: 'lower(hex(trace_id))',
      codec: ZSTD,
    }),
    col('span_id', 'FixedString(8)', (r) => r.span_id, {
      field: 'span_id',
      convert: 'hex',
      read: 'lower(hex(span_id))',
      codec: ZSTD,
    }),
    ...same<Span>('String', ZSTD, 'request_id'),
    ...same<Span>('LowCardinality(String)', undefined, 'fleet', 'host', 'instance', 'model'),
    ...same<Span>('LowCardinality(String)', undefined, 'model_version', 'device'),
    // ids that repeat within a batch and count up per instance: ZSTD(3) took 0.4 bytes a span, ZSTD(1) 1.0
    ...same<Span>('String', 'ZSTD(3)', 'batch_id'),
    ...same<Span>('UInt32', SMALL_INT, 'batch_size'),
    col('status', statusEnum, (r) => SPAN_STATUSES.indexOf(r.status), { field: 'status' }),
    ...same<Span>('LowCardinality(Nullable(String))', undefined, 'error_class'),
    ...same<Span>('Bool', undefined, 'cache_hit'),
    ...same<Span>('UInt32', SMALL_INT, 'request_bytes', 'response_bytes'),
    ...same<Span>('UInt32', SMALL_INT, ...DURATION_COLUMNS),
    ...same<Span>('Nullable(Float32)', ZSTD, 'input_mean', 'input_std', 'output_mean', 'output_confidence'),
    ...same<Span>('LowCardinality(Nullable(String))', undefined, 'run_id'),
  ],
  extra: [
    'trace_id_hex String ALIAS lower(hex(trace_id))',
    'span_id_hex String ALIAS lower(hex(span_id))',
    // slowest-requests: ClickHouse skips the granules whose longest request cannot make the top N
    'INDEX total_us_max total_us TYPE minmax GRANULARITY 1',
  ],
  // hour first: time-range queries read only the hours they need; within an hour, one instance's
  // requests lie together in time order, which is what the codecs compress
  engine:
    'MergeTree PARTITION BY toDate(timestamp) ORDER BY (toStartOfHour(timestamp), model, instance, timestamp)',
  ttl: { from: 'toDateTime(timestamp)', retention: 'spanDays' },
  settings: { ...DEDUP, ttl_only_drop_parts: 1 },
}

const device = <K extends keyof HwSample['devices'][number]>(k: K, type: string) =>
  col<HwSample>(`device_${k}`, `Array(${type})`, (r) => r.devices.map((d) => d[k]), { codec: ZSTD })

export const hwSamplesTable: TableSpec<HwSample> = {
  name: 'hw_samples',
  description: 'one row per engine instance and sampling interval: process, host and device counters',
  columns: [
    col('timestamp', "DateTime64(6, 'UTC')", (r) => r.timestamp_us, { field: 'timestamp_us', codec: TIME }),
    ...same<HwSample>('LowCardinality(String)', undefined, 'fleet', 'host', 'instance'),
    ...same<HwSample>('UInt32', SMALL_INT, 'interval_ms'),
    ...same<HwSample>('Float64', ZSTD, 'process_cpu'),
    ...same<HwSample>('UInt64', ZSTD, 'rss_bytes', 'heap_used_bytes'),
    ...same<HwSample>('Float64', ZSTD, 'event_loop_delay_p99_ms', 'gc_ms'),
    ...same<HwSample>('UInt32', SMALL_INT, 'queue_depth', 'in_flight', 'arrivals', 'completions'),
    ...same<HwSample>('Float64', ZSTD, 'executor_busy'),
    device('device', 'LowCardinality(String)'),
    device('utilization', 'Nullable(Float64)'),
    device('memory_used_bytes', 'Nullable(UInt64)'),
    device('memory_total_bytes', 'Nullable(UInt64)'),
    device('power_w', 'Nullable(Float64)'),
    device('temperature_c', 'Nullable(Float64)'),
    ...same<HwSample>('LowCardinality(Nullable(String))', undefined, 'run_id'),
    ...same<HwSample>('Nullable(Float64)', ZSTD, 'host_cpu'),
    ...same<HwSample>('Nullable(UInt32)', ZSTD, 'host_cpus'),
    ...(['cpu', 'memory', 'io'] as const).flatMap((r) =>
      (['some', 'full'] as const).flatMap((k) => [
        ...same<HwSample>('Nullable(Float64)', ZSTD, `psi_${r}_${k}_avg10`),
        ...same<HwSample>('Nullable(UInt64)', ZSTD, `psi_${r}_${k}_total_us`),
      ]),
    ),
    ...same<HwSample>('Nullable(Float64)', ZSTD, 'cgroup_cpu_limit'),
    ...same<HwSample>('Nullable(UInt64)', ZSTD, 'cgroup_nr_throttled', 'cgroup_throttled_us'),
    ...same<HwSample>('Nullable(Float64)', ZSTD, 'process_cpu_wait'),
  ],
  engine: 'MergeTree PARTITION BY toDate(timestamp) ORDER BY (instance, timestamp)',
  ttl: { from: 'toDateTime(timestamp)', retention: 'days' },
  settings: { ...DEDUP, ttl_only_drop_parts: 1 },
}

export const alertsTable: TableSpec<Alert> = {
  name: 'alerts',
  description:
    "every state change of every alert (firing, resolved); an alert's latest state is the row with the newest updated_at",
  columns: [
    ...same<Alert>('String', undefined, 'id'),
    ...same<Alert>('LowCardinality(String)', undefined, 'type', 'severity', 'status'),
    ...same<Alert>('String', undefined, 'dedup_key', 'fleet', 'instance', 'model'),
    ...same<Alert>('Nullable(String)', undefined, 'stage'),
    col('starts_at', "DateTime64(6, 'UTC')", (r) => r.starts_at_us),
    col('ends_at', "Nullable(DateTime64(6, 'UTC'))", (r) => r.ends_at_us),
    col('updated_at', "DateTime64(6, 'UTC')", (r) => r.updated_at_us),
    ...same<Alert>('String', undefined, 'statistic'),
    ...same<Alert>('Float64', undefined, 'observed', 'baseline', 'threshold'),
    ...same<Alert>('String', undefined, 'summary', 'suspected_cause', 'suggested_action'),
    ...same<Alert>('Array(String)', undefined, 'exemplar_request_ids'),
    ...same<Alert>('Nullable(String)', undefined, 'run_id', 'resolve_reason'),
    col('related', 'String', (r) => JSON.stringify(r.related ?? [])),
  ],
  // Collapses an alert's state changes to the newest on merge (storage only: queries take the newest
  // row themselves, see queries/sql/alerts.sql, so they are right before merges too).
  engine: 'ReplacingMergeTree(updated_at) ORDER BY id',
  settings: DEDUP,
}

export const deadLettersTable: TableSpec<DeadLetter> = {
  name: 'dead_letters',
  description: 'records ingest could not store, with the reason and their bytes (base64)',
  columns: [
    col('received_at', "DateTime64(6, 'UTC')", (r) => r.received_at_us),
    ...same<DeadLetter>('String', undefined, 'source_topic'),
    ...same<DeadLetter>('UInt32', undefined, 'source_partition'),
    ...same<DeadLetter>('String', undefined, 'source_offset', 'reason', 'error'),
    col('payload_base64', 'String', (r) => r.payload.toString('base64')),
  ],
  engine: 'ReplacingMergeTree ORDER BY (source_topic, source_partition, source_offset)',
  ttl: { from: 'toDateTime(received_at)', retention: 'days' },
  settings: DEDUP,
}

/** One checkpoint of what a detector learned, for one key (detectors/state-store.ts). */
export interface DetectorStateRow {
  /** who owns the state: the detector consumer group (replays and the live group do not mix) */
  scope: string
  detector_type: string
  /** the key inside the detector (an instance), or '*' for a detector's whole state */
  key: string
  /** the detector's exportState() for this key, as JSON */
  state: string
  updated_at_us: number
}

export const detectorStateTable: TableSpec<DetectorStateRow> = {
  name: 'detector_state',
  description: "detectors' learned state, checkpointed per key so a restart or a rebalance resumes",
  columns: [
    ...same<DetectorStateRow>('LowCardinality(String)', undefined, 'scope', 'detector_type'),
    ...same<DetectorStateRow>('String', undefined, 'key', 'state'),
    col('updated_at', "DateTime64(6, 'UTC')", (r) => r.updated_at_us),
  ],
  // One row per (scope, type, key) after merges, the newest checkpoint winning; readers take
  // argMax(state, updated_at) so they are right before merges too.
  engine: 'ReplacingMergeTree(updated_at) ORDER BY (scope, detector_type, key)',
}

/** A rollup of the spans kept by a materialized view (DDL in rollups.ts). */
export interface Rollup {
  name: string
  description: string
  /** the time bucket column and how a span's timestamp maps to it */
  bucket: { column: string; of: (timestamp: string) => string }
  /** the table whose inserts feed it, and whether those rows are raw spans or already rolled up */
  source: { table: string; rolledUp: boolean }
}

export const ROLLUPS: readonly Rollup[] = [
  {
    name: 'spans_1m',
    description:
      'spans per minute, model, instance and status: requests, cache hits, and per duration column its sum, max and DDSketch quantile state',
    bucket: { column: 'minute', of: (t) => `toStartOfMinute(${t})` },
    source: { table: 'spans', rolledUp: false },
  },
  {
    name: 'spans_1h',
    description: 'the same per hour (fed from spans_1m)',
    bucket: { column: 'hour', of: (t) => `toStartOfHour(${t})` },
    source: { table: 'spans_1m', rolledUp: true },
  },
]

/** Every table `breakid sql` may read, with what it holds (the SQL guard reads the names here). */
export const TABLES: readonly { name: string; description: string }[] = [
  spansTable,
  hwSamplesTable,
  alertsTable,
  deadLettersTable,
  detectorStateTable,
  ...ROLLUPS,
].map(({ name, description }) => ({ name, description }))

/** DDL of a table; without `retention` it has no TTL (its data stays until deleted by hand). */
export function createTableSql<R>(
  database: string,
  spec: TableSpec<R>,
  retention?: Retention,
  name: string = spec.name,
): string {
  const cols = spec.columns.map((c) => `  ${columnSql(c)}`)
  const body = [...cols, ...(spec.extra ?? []).map((e) => `  ${e}`)].join(',\n')
  const ttl = spec.ttl && retention ? ` TTL ${ttlExpression(spec, retention)}` : ''
  const settings = spec.settings
    ? ` SETTINGS ${Object.entries(spec.settings)
        .map(([k, v]) => `${k} = ${v}`)
        .join(', ')}`
    : ''
  return `CREATE TABLE IF NOT EXISTS \`${database}\`.\`${name}\` (\n${body}\n) ENGINE = ${spec.engine}${ttl}${settings}`
}

/** A column's definition as CREATE TABLE and ADD COLUMN take it: name, type and codec. */
export function columnSql<R>(c: Column<R>): string {
  return `\`${c.name}\` ${c.type}${c.codec ? ` CODEC(${c.codec})` : ''}`
}

export function ttlExpression<R>(spec: TableSpec<R>, retention: Retention): string {
  if (!spec.ttl) throw new Error(`${spec.name} has no TTL`)
  const days = retention[spec.ttl.retention]
  if (!Number.isInteger(days) || days < 1) throw new Error(`retention ${spec.ttl.retention}: ${days} days`)
  return `${spec.ttl.from} + toIntervalDay(${days})`
}
