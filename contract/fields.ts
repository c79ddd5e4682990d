/**
 * The numeric fields of each record, read off the schemas (contract/schemas.ts) so that every reader
 * of "the numbers of a span / a hardware sample" — replay's column mapping, the generic detector's
 * series, the ClickHouse reader — takes the same list, and a field added to a schema reaches them all.
 */
import type { DeviceSample, HwSample, Span } from './records.ts'
import { type AvroSchemaJson, deviceSchema, hwSampleSchema, spanSchema } from './schemas.ts'

/** The keys of T whose values are numbers (nullable or optional ones included), but its time. */
export type NumericField<T> = Exclude<
  { [K in keyof T]-?: NonNullable<T[K]> extends number ? K : never }[keyof T] & string,
  'timestamp_us'
>

const NUMERIC_TYPES = new Set(['int', 'long', 'float', 'double'])

function isNumeric(type: unknown): boolean {
  if (typeof type === 'string') return NUMERIC_TYPES.has(type)
  if (Array.isArray(type)) {
    const rest = type.filter((t) => t !== 'null')
    return rest.length === 1 && isNumeric(rest[0])
  }
  // timestamps are the record's time, not a measurement
  const t = type as { type?: string; logicalType?: string }
  return t.logicalType === undefined && t.type !== undefined && NUMERIC_TYPES.has(t.type)
}

function numericFieldNames(schema: AvroSchemaJson): string[] {
  return (schema.fields as { name: string; type: unknown }[])
    .filter((f) => isNumeric(f.type))
    .map((f) => f.name)
}

export const SPAN_NUMERIC_FIELDS = numericFieldNames(spanSchema) as readonly NumericField<Span>[]
export const HW_NUMERIC_FIELDS = numericFieldNames(hwSampleSchema) as readonly NumericField<HwSample>[]
export const DEVICE_NUMERIC_FIELDS = numericFieldNames(deviceSchema) as readonly NumericField<DeviceSample>[]
