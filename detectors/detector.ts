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
  /**
   * Instances where this detector's condition holds but has not fired yet (pending). Inhibition
   * sources implement it, so the symptoms of a cause about to fire wait for it (inhibit.ts).
   */
  pendingInstances?(): Iterable<string>
}

/**
 * Per-key detector state in the shape the state store splits into one row per key
 * (`{ keys: { <key>: … } }`, see state-store.ts).
 */
export function keyedState<S>(states: Map<string, S>, toState: (s: S) => unknown): Record<string, unknown> {
  return Object.fromEntries([...states].map(([key, s]) => [key, toState(s)]))
}

/** The state of `key`, made on first use. */
export function getOrCreate<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let v = map.get(key)
  if (v === undefined) {
    v = make()
    map.set(key, v)
  }
  return v
}
