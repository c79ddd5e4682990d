/**
 * ClickHouse tables, one spec each: the column list drives both the DDL (migrations.ts) and the
 * row encoding (writer.ts), so a column cannot be added to one and forgotten in the other.
 */
import type { Alert, HwSample, Span } from '../contract/records.ts'
import { STAGES } from '../contract/vocabulary.ts'

export interface Column<R> {
  name: string
  type: string
  value: (record: R) => unknown
}

export interface TableSpec<R> {
  name: string
  columns: Column<R>[]
  engine: string
}

export interface DeadLetter {
  received_at_us: number
  source_topic: string
  source_partition: number
  source_offset: string
  reason: string
  error: string
  payload: Buffer
}

const col = <R>(name: string, type: string, value: (r: R) => unknown): Column<R> => ({ name, type, value })
/** Columns whose record field has the same name. */
const same = <R>(type: string, ...names: (keyof R & string)[]): Column<R>[] =>
  names.map((n) => col<R>(n, type, (r) => r[n]))

/** Columns added with the v2 records: absent (null) in records of v1 writers. */
const v2 = <R>(type: string, ...names: (keyof R & string)[]): Column<R>[] =>
  names.map((n) => col<R>(n, type, (r) => r[n] ?? null))

/** The columns a table gained after it was first created, for the migration that adds them. */
export function columnsAddedAfter<R>(spec: TableSpec<R>, firstColumn: string): Column<R>[] {
  const i = spec.columns.findIndex((c) => c.name === firstColumn)
  return i < 0 ? [] : spec.columns.slice(i)
}

export const spansTable: TableSpec<Span> = {
  name: 'spans',
  columns: [
    col('timestamp', "DateTime64(6, 'UTC')", (r) => r.timestamp_us),
    ...same<Span>('String', 'trace_id', 'span_id', 'request_id'),
    ...same<Span>('LowCardinality(String)', 'fleet', 'host', 'instance', 'model', 'model_version', 'device'),
    ...same<Span>('String', 'batch_id'),
    ...same<Span>('UInt32', 'batch_size'),
    ...same<Span>('LowCardinality(String)', 'status'),
    ...same<Span>('Nullable(String)', 'error_class'),
    col('cache_hit', 'Bool', (r) => r.cache_hit),
    ...same<Span>('UInt32', 'request_bytes', 'response_bytes'),
    ...[...STAGES, 'total' as const].map((s) => col<Span>(`${s}_us`, 'UInt64', (r) => r[`${s}_us`])),
    ...same<Span>('Nullable(Float64)', 'input_mean', 'input_std', 'output_mean', 'output_confidence'),
    ...v2<Span>('Nullable(String)', 'run_id'),
  ],
  // Keyed by request id so a batch redelivered after a consumer-group rebalance collapses on merge
  // (at-least-once delivery + idempotent storage = effectively once). Exact counts use FINAL.
  engine:
    'ReplacingMergeTree PARTITION BY toDate(timestamp) ORDER BY (model, instance, timestamp, request_id)',
}

const device = <K extends keyof HwSample['devices'][number]>(k: K, type: string) =>
  col<HwSample>(`device_${k}`, `Array(${type})`, (r) => r.devices.map((d) => d[k]))

export const hwSamplesTable: TableSpec<HwSample> = {
  name: 'hw_samples',
  columns: [
    col('timestamp', "DateTime64(6, 'UTC')", (r) => r.timestamp_us),
    ...same<HwSample>('LowCardinality(String)', 'fleet', 'host', 'instance'),
    ...same<HwSample>('UInt32', 'interval_ms'),
    ...same<HwSample>('Float64', 'process_cpu'),
    ...same<HwSample>('UInt64', 'rss_bytes', 'heap_used_bytes'),
    ...same<HwSample>('Float64', 'event_loop_delay_p99_ms', 'gc_ms'),
    ...same<HwSample>('UInt32', 'queue_depth', 'in_flight', 'arrivals', 'completions'),
    ...same<HwSample>('Float64', 'executor_busy'),
    device('device', 'String'),
    device('utilization', 'Nullable(Float64)'),
    device('memory_used_bytes', 'Nullable(UInt64)'),
    device('memory_total_bytes', 'Nullable(UInt64)'),
    device('power_w', 'Nullable(Float64)'),
    device('temperature_c', 'Nullable(Float64)'),
    ...v2<HwSample>('Nullable(String)', 'run_id'),
    ...v2<HwSample>('Nullable(Float64)', 'host_cpu'),
    ...v2<HwSample>('Nullable(UInt32)', 'host_cpus'),
    ...(['cpu', 'memory', 'io'] as const).flatMap((r) =>
      (['some', 'full'] as const).flatMap((k) => [
        ...v2<HwSample>('Nullable(Float64)', `psi_${r}_${k}_avg10`),
        ...v2<HwSample>('Nullable(UInt64)', `psi_${r}_${k}_total_us`),
      ]),
    ),
    ...v2<HwSample>('Nullable(Float64)', 'cgroup_cpu_limit'),
    ...v2<HwSample>('Nullable(UInt64)', 'cgroup_nr_throttled', 'cgroup_throttled_us'),
  ],
  engine: 'ReplacingMergeTree PARTITION BY toDate(timestamp) ORDER BY (instance, timestamp)',
}

export const alertsTable: TableSpec<Alert> = {
  name: 'alerts',
  columns: [
    ...same<Alert>('String', 'id'),
    ...same<Alert>('LowCardinality(String)', 'type', 'severity', 'status'),
    ...same<Alert>('String', 'dedup_key', 'fleet', 'instance', 'model'),
    ...same<Alert>('Nullable(String)', 'stage'),
    col('starts_at', "DateTime64(6, 'UTC')", (r) => r.starts_at_us),
    col('ends_at', "Nullable(DateTime64(6, 'UTC'))", (r) => r.ends_at_us),
    col('updated_at', "DateTime64(6, 'UTC')", (r) => r.updated_at_us),
    ...same<Alert>('String', 'statistic'),
    ...same<Alert>('Float64', 'observed', 'baseline', 'threshold'),
    ...same<Alert>('String', 'summary', 'suspected_cause', 'suggested_action'),
    ...same<Alert>('Array(String)', 'exemplar_request_ids'),
    ...v2<Alert>('Nullable(String)', 'run_id', 'resolve_reason'),
    col('related', 'String', (r) => JSON.stringify(r.related ?? [])),
  ],
  // One row per alert id after merges: the latest state change wins.
  engine: 'ReplacingMergeTree(updated_at) ORDER BY id',
}

export const deadLettersTable: TableSpec<DeadLetter> = {
  name: 'dead_letters',
  columns: [
    col('received_at', "DateTime64(6, 'UTC')", (r) => r.received_at_us),
    ...same<DeadLetter>('String', 'source_topic'),
    ...same<DeadLetter>('UInt32', 'source_partition'),
    ...same<DeadLetter>('String', 'source_offset', 'reason', 'error'),
    col('payload_base64', 'String', (r) => r.payload.toString('base64')),
  ],
  engine: 'ReplacingMergeTree ORDER BY (source_topic, source_partition, source_offset)',
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
  columns: [
    ...same<DetectorStateRow>('LowCardinality(String)', 'scope', 'detector_type'),
    ...same<DetectorStateRow>('String', 'key', 'state'),
    col('updated_at', "DateTime64(6, 'UTC')", (r) => r.updated_at_us),
  ],
  // One row per (scope, type, key) after merges, the newest checkpoint winning; readers take
  // argMax(state, updated_at) so they are right before merges too.
  engine: 'ReplacingMergeTree(updated_at) ORDER BY (scope, detector_type, key)',
}

export function createTableSql<R>(database: string, spec: TableSpec<R>): string {
  const cols = spec.columns.map((c) => `  \`${c.name}\` ${c.type}`).join(',\n')
  return `CREATE TABLE IF NOT EXISTS \`${database}\`.\`${spec.name}\` (\n${cols}\n) ENGINE = ${spec.engine}`
}

/**
 * Every table breakid defines, in one list: the tables ad-hoc SQL may read (queries/sql-guard.ts).
 * A new table (a rollup, say) goes here as well as into a migration.
 */
export const TABLES: readonly TableSpec<never>[] = [
  spansTable,
  hwSamplesTable,
  alertsTable,
  deadLettersTable,
  detectorStateTable,
]
