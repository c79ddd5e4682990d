/**
 * The contract every detector implements: it sees records in event-time order per instance and
 * returns the alert state changes they cause. Detectors are pure computation (no I/O), so the same
 * code runs in the live consumer, in replay and in the evaluation harness.
 */
import type { Alert, HwSample, Span } from '../ingest/contract/records.ts'

export interface Detector {
  readonly type: string
  onSpan?(span: Span): Alert[]
  onHwSample?(sample: HwSample): Alert[]
}
