/**
 * The telemetry contract: one Avro schema per record type — the current version, defined here — and
 * every version published before it, kept as the `.avsc` file it was published as (contract/avro/).
 *
 * Field names are snake_case because the same names are the ClickHouse columns and the column names
 * `breakid replay --file` understands: one vocabulary from the wire to SQL.
 *
 * Compatibility rule: a new version may only add fields with defaults (or remove fields that had
 * defaults), so readers resolve every older writer and older readers skip what they do not know. The
 * namespace and the topics carry the major version (`breakid.v1`, `breakid.spans.v1`); a breaking
 * change would get new ones. `npm run contract:generate` writes the current version's `.avsc`;
 * test/unit/contract.test.ts fails when the files and this module disagree, when a published file
 * changes, and unless records written by every published version are read.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { STAGES } from './vocabulary.ts'

/** Avro schema JSON as written here; avsc validates it when a codec is built. */
export type AvroSchemaJson = Readonly<Record<string, unknown>>

const nullable = (type: unknown, doc?: string) => ({
  type: ['null', type],
  default: null,
  ...(doc && { doc }),
})
const micros = { type: 'long', logicalType: 'timestamp-micros' } as const
const runId = {
  name: 'run_id',
  ...nullable('string', 'the run that produced the record (`--run-id`), null outside a named run'),
}

export const spanSchema = {
  type: 'record',
  name: 'Span',
  namespace: 'breakid.v1',
  doc: 'One inference request, with the time spent in every stage (microseconds).',
  fields: [
    { name: 'timestamp_us', type: micros, doc: 'request arrival, epoch microseconds' },
    { name: 'trace_id', type: 'string', doc: 'W3C trace id, 32 hex digits' },
    { name: 'span_id', type: 'string', doc: 'W3C span id, 16 hex digits' },
    {
      name: 'request_id',
      type: 'string',
      doc: "the client's id when it sent one, else a time-ordered random id",
    },
    { name: 'fleet', type: 'string' },
    { name: 'host', type: 'string' },
    { name: 'instance', type: 'string' },
    { name: 'model', type: 'string' },
    { name: 'model_version', type: 'string' },
    { name: 'device', type: 'string' },
    { name: 'batch_id', type: 'string' },
    { name: 'batch_size', type: 'int', doc: 'rows in the batch the request ran in' },
    {
      name: 'status',
      type: { type: 'enum', name: 'Status', symbols: ['ok', 'client_error', 'server_error'] },
    },
    { name: 'error_class', ...nullable('string') },
    { name: 'cache_hit', type: 'boolean' },
    { name: 'request_bytes', type: 'int' },
    { name: 'response_bytes', type: 'int' },
    ...STAGES.map((stage) => ({ name: `${stage}_us`, type: 'long' })),
    { name: 'total_us', type: 'long', doc: 'the whole request, arrival to response sent' },
    { name: 'input_mean', ...nullable('double') },
    { name: 'input_std', ...nullable('double') },
    { name: 'output_mean', ...nullable('double') },
    { name: 'output_confidence', ...nullable('double', 'mean of the max class probability') },
    runId,
  ],
} as const satisfies AvroSchemaJson

export const deviceSchema = {
  type: 'record',
  name: 'DeviceSample',
  fields: [
    { name: 'device', type: 'string' },
    { name: 'utilization', ...nullable('double'), doc: 'fraction 0..1' },
    { name: 'memory_used_bytes', ...nullable('long') },
    { name: 'memory_total_bytes', ...nullable('long') },
    { name: 'power_w', ...nullable('double') },
    { name: 'temperature_c', ...nullable('double') },
  ],
} as const

/** Linux pressure-stall information: `some`/`full` share of the last 10 s and the cumulative stall. */
const pressureFields = (['cpu', 'memory', 'io'] as const).flatMap((resource) =>
  (['some', 'full'] as const).flatMap((kind) => [
    {
      name: `psi_${resource}_${kind}_avg10`,
      ...nullable('double', `/proc/pressure/${resource} ${kind} avg10, percent of the last 10 s`),
    },
    {
      name: `psi_${resource}_${kind}_total_us`,
      ...nullable('long', `/proc/pressure/${resource} ${kind} total, cumulative stall microseconds`),
    },
  ]),
)

export const hwSampleSchema = {
  type: 'record',
  name: 'HwSample',
  namespace: 'breakid.v1',
  doc: 'Process, host and device counters of one engine instance over one sampling interval.',
  fields: [
    { name: 'timestamp_us', type: micros, doc: 'end of the interval' },
    { name: 'fleet', type: 'string' },
    { name: 'host', type: 'string' },
    { name: 'instance', type: 'string' },
    { name: 'interval_ms', type: 'int' },
    { name: 'process_cpu', type: 'double', doc: 'CPU seconds per wall second (may exceed 1)' },
    { name: 'rss_bytes', type: 'long' },
    { name: 'heap_used_bytes', type: 'long' },
    { name: 'event_loop_delay_p99_ms', type: 'double' },
    { name: 'gc_ms', type: 'double', doc: 'time in GC during the interval' },
    { name: 'queue_depth', type: 'int', doc: 'requests waiting for the executor (batcher queue)' },
    { name: 'in_flight', type: 'int', doc: 'requests accepted and not yet answered' },
    { name: 'arrivals', type: 'int', doc: 'requests accepted during the interval' },
    { name: 'completions', type: 'int', doc: 'requests answered during the interval' },
    { name: 'executor_busy', type: 'double', doc: 'time inside model execution / wall time, 0..1' },
    { name: 'devices', type: { type: 'array', items: deviceSchema }, default: [] },
    runId,
    {
      name: 'host_cpu',
      ...nullable('double', 'CPU seconds per wall second used by the whole host (/proc/stat), all processes'),
    },
    { name: 'host_cpus', ...nullable('int', 'online CPUs of the host') },
    ...pressureFields,
    {
      name: 'cgroup_cpu_limit',
      ...nullable('double', "the cgroup's CPU limit in CPUs (cpu.max quota / period), null when unlimited"),
    },
    { name: 'cgroup_nr_throttled', ...nullable('long', 'cgroup cpu.stat nr_throttled, cumulative') },
    { name: 'cgroup_throttled_us', ...nullable('long', 'cgroup cpu.stat throttled_usec, cumulative') },
    {
      name: 'process_cpu_wait',
      ...nullable(
        'double',
        "seconds per wall second the process's threads were runnable but waited for a CPU (schedstat run-queue delay, summed over threads)",
      ),
    },
  ],
} as const satisfies AvroSchemaJson

const relatedAlertSchema = {
  type: 'record',
  name: 'RelatedAlert',
  doc: 'A symptom of this alert: raised by another detector during the same break, stored but not paged.',
  fields: [
    { name: 'id', type: 'string' },
    { name: 'type', type: 'string' },
    { name: 'stage', ...nullable('string') },
    { name: 'starts_at_us', type: micros },
    { name: 'summary', type: 'string' },
  ],
} as const

export const alertSchema = {
  type: 'record',
  name: 'Alert',
  namespace: 'breakid.v1',
  doc: 'One state change of a detected break (firing or resolved).',
  fields: [
    { name: 'id', type: 'string', doc: 'stable across the firing and resolved records of one break' },
    { name: 'type', type: 'string', doc: 'the alert type (contract/vocabulary.ts)' },
    { name: 'severity', type: { type: 'enum', name: 'Severity', symbols: ['info', 'warning', 'critical'] } },
    { name: 'status', type: { type: 'enum', name: 'AlertStatus', symbols: ['firing', 'resolved'] } },
    { name: 'dedup_key', type: 'string' },
    { name: 'fleet', type: 'string' },
    { name: 'instance', type: 'string' },
    { name: 'model', type: 'string' },
    { name: 'stage', ...nullable('string') },
    { name: 'starts_at_us', type: micros },
    { name: 'ends_at_us', ...nullable(micros) },
    { name: 'updated_at_us', type: micros },
    { name: 'statistic', type: 'string', doc: 'what was compared, e.g. executor_busy' },
    { name: 'observed', type: 'double' },
    { name: 'baseline', type: 'double' },
    { name: 'threshold', type: 'double' },
    { name: 'summary', type: 'string' },
    { name: 'suspected_cause', type: 'string' },
    { name: 'suggested_action', type: 'string' },
    { name: 'exemplar_request_ids', type: { type: 'array', items: 'string' }, default: [] },
    runId,
    {
      name: 'resolve_reason',
      ...nullable('string', 'why a resolved alert resolved: cleared, shutdown or stale'),
    },
    {
      name: 'related',
      type: { type: 'array', items: relatedAlertSchema },
      default: [],
      doc: 'symptoms of this break raised by other detectors, delivered with it instead of paging',
    },
  ],
} as const satisfies AvroSchemaJson

/** Every record type: its current schema and version (the `.avsc` file names carry both). */
export const RECORD_SCHEMAS = {
  span: { schema: spanSchema, version: 2 },
  hw_sample: { schema: hwSampleSchema, version: 3 },
  alert: { schema: alertSchema, version: 2 },
} as const
export type RecordTypeName = keyof typeof RECORD_SCHEMAS

/** The folder of published `.avsc` files: `<record type>.v<version>.avsc`. */
export const AVSC_DIR = join(import.meta.dirname, 'avro')

/** The `.avsc` file name of a record type's version. */
export function avscFileName(name: RecordTypeName, version: number): string {
  return `${name}.v${version}.avsc`
}

/** Every published version of a record type before the current one, oldest first. */
export function olderPublishedSchemas(name: RecordTypeName): AvroSchemaJson[] {
  const current = RECORD_SCHEMAS[name].version
  return readdirSync(AVSC_DIR)
    .map((f) => ({ f, m: new RegExp(`^${name}\\.v(\\d+)\\.avsc$`).exec(f) }))
    .filter((x) => x.m && Number(x.m[1]) < current)
    .sort((a, b) => Number(a.m![1]) - Number(b.m![1]))
    .map((x) => JSON.parse(readFileSync(join(AVSC_DIR, x.f), 'utf8')) as AvroSchemaJson)
}
