import { olderPublishedSchemas, RECORD_SCHEMAS, type RecordTypeName } from './schemas.ts'
import { RecordCodec } from './codec.ts'
import type { Alert, HwSample, Span } from './records.ts'

/** Topic names carry the major version of the contract; a breaking change gets new topics. */
export const TOPICS = {
  spans: 'breakid.spans.v1',
  hw: 'breakid.hw.v1',
  alerts: 'breakid.alerts.v1',
  deadLetter: 'breakid.deadletter.v1',
} as const

export type TelemetryTopic = (typeof TOPICS)[keyof typeof TOPICS]

/** A codec writing the current schema and reading every published version. */
function codecFor<T>(name: RecordTypeName): RecordCodec<T> {
  return new RecordCodec<T>(name, RECORD_SCHEMAS[name].schema, olderPublishedSchemas(name))
}

/** Codecs share no state across records; one instance per process is enough. */
export const codecs = {
  span: codecFor<Span>('span'),
  hw: codecFor<HwSample>('hw_sample'),
  alert: codecFor<Alert>('alert'),
} as const
