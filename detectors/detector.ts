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
  /**
   * Plain-JSON snapshot of everything the detector learned (baselines, alert lifecycle), so a
   * consumer that restarts or takes over partitions resumes instead of relearning. Must round-trip
   * through JSON.stringify/parse.
   */
  exportState?(): Record<string, unknown>
  /** Restores a snapshot taken by exportState (of the same detector type); ignores what it cannot read. */
  importState?(state: Record<string, unknown>): void
}
