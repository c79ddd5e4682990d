import { alertV1, hwSampleV1, spanV1 } from './schemas.ts'
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

/** Codecs share no state across records; one instance per process is enough. */
export const codecs = {
  span: new RecordCodec<Span>('span', spanV1),
  hw: new RecordCodec<HwSample>('hw_sample', hwSampleV1),
  alert: new RecordCodec<Alert>('alert', alertV1),
} as const
