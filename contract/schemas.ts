/**
 * The telemetry contract: Avro schemas, one per record type and version.
 *
 * Field names are snake_case because the same names are the ClickHouse columns and the column names
 * `breakid replay --file` understands: one vocabulary from the wire to SQL.
 *
 * Compatibility rule: a new version may only add fields with defaults (or remove fields that had
 * defaults). Every version ever published stays in `WRITER_SCHEMAS` so a reader resolves old writers;
 * test/unit/contract.test.ts reads records written by each of them.
 */
/** Avro schema JSON as written here; avsc validates it when a codec is built. */
export type AvroSchemaJson = Readonly<Record<string, unknown>>

const nullable = (type: unknown) => ({ type: ['null', type], default: null })
const micros = { type: 'long', logicalType: 'timestamp-micros' } as const

/** Stage durations, in the order requests pass through them. `total_us` covers the whole request. */
export const STAGES = [
  'deserialize',
  'preprocess',
  'queue_wait',
  'compute',
  'postprocess',
  'serialize',
] as const
export type Stage = (typeof STAGES)[number]

export const spanV1 = {
  type: 'record',
  name: 'Span',
  namespace: 'breakid.v1',
  doc: 'One inference request, with the time spent in every stage (microseconds).',
  fields: [
    { name: 'timestamp_us', type: micros, doc: 'request arrival, epoch microseconds' },
    { name: 'trace_id', type: 'string' },
    { name: 'span_id', type: 'string' },
    { name: 'request_id', type: 'string' },
    { name: 'fleet', type: 'string' },
    { name: 'host', type: 'string' },
    { name: 'instance', type: 'string' },
    { name: 'model', type: 'string' },
    { name: 'model_version', type: 'string' },
    { name: 'device', type: 'string' },
    { name: 'batch_id', type: 'string' },
    { name: 'batch_size', type: 'int' },
    {
      name: 'status',
      type: { type: 'enum', name: 'Status', symbols: ['ok', 'client_error', 'server_error'] },
    },
    { name: 'error_class', ...nullable('string') },
    { name: 'cache_hit', type: 'boolean' },
    { name: 'request_bytes', type: 'int' },
    { name: 'response_bytes', type: 'int' },
    ...STAGES.map((stage) => ({ name: `${stage}_us`, type: 'long' })),
    { name: 'total_us', type: 'long' },
    { name: 'input_mean', ...nullable('double') },
    { name: 'input_std', ...nullable('double') },
    { name: 'output_mean', ...nullable('double') },
    { name: 'output_confidence', ...nullable('double'), doc: 'mean of the max class probability' },
  ],
} as const satisfies AvroSchemaJson

const deviceV1 = {
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

export const hwSampleV1 = {
  type: 'record',
  name: 'HwSample',
  namespace: 'breakid.v1',
  doc: 'Process and device counters of one engine instance over one sampling interval.',
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
    { name: 'devices', type: { type: 'array', items: deviceV1 }, default: [] },
  ],
} as const satisfies AvroSchemaJson

export const alertV1 = {
  type: 'record',
  name: 'Alert',
  namespace: 'breakid.v1',
  doc: 'One state change of a detected break (firing or resolved).',
  fields: [
    { name: 'id', type: 'string', doc: 'stable across the firing and resolved records of one break' },
    { name: 'type', type: 'string' },
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
  ],
} as const satisfies AvroSchemaJson
