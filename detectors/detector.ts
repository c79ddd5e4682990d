/**
 * The contract every detector implements: it sees records in event-time order per instance and
 * returns the alert state changes they cause. Detectors are pure computation (no I/O), so the same
 * code runs in the live consumer, in replay and in the evaluation harness.
 */
import type { Alert, HwSample, Span } from '../contract/records.ts'
import { isRecord } from './baseline.ts'
import type { AlertLifecycle } from './lifecycle.ts'

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

/**
 * A detector keeping one state per instance, each with its own alert lifecycle (the sample-driven
 * detectors: starvation, idle, queue growth, event loop). It owns the per-instance map, lazy creation,
 * the `{ keys: { <instance>: … } }` snapshot frame (one row per instance in the state store) and the
 * pending instances the inhibitor asks for; a subclass says what one instance's state is.
 */
export abstract class PerInstanceDetector<S extends { lifecycle: AlertLifecycle }> implements Detector {
  abstract readonly type: string
  protected readonly instances = new Map<string, S>()

  /** a fresh state for an instance seen for the first time */
  protected abstract newState(): S
  /** one instance's state as plain JSON */
  protected abstract stateToJson(s: S): Record<string, unknown>
  /** the inverse of stateToJson; reads what it can, defaults the rest */
  protected abstract stateFromJson(raw: Record<string, unknown>): S

  protected state(instance: string): S {
    return getOrCreate(this.instances, instance, () => this.newState())
  }

  *pendingInstances(): Iterable<string> {
    for (const [instance, s] of this.instances) if (s.lifecycle.state === 'pending') yield instance
  }

  exportState(): Record<string, unknown> {
    return { keys: keyedState(this.instances, (s) => this.stateToJson(s)) }
  }

  /** Merges the instances of `state` into this detector (instances it already has are replaced). */
  importState(state: Record<string, unknown>): void {
    if (!isRecord(state.keys)) return
    for (const [instance, raw] of Object.entries(state.keys)) {
      if (isRecord(raw)) this.instances.set(instance, this.stateFromJson(raw))
    }
  }
}
