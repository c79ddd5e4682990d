/**
 * The life of one alert key, as an explicit state machine (after Prometheus' rules/alerting.go):
 *
 *   inactive ──condition──▶ pending ──held for `pendingSamples`──▶ firing ──clear for
 *   `resolveSamples`──▶ resolved (= inactive again)
 *
 * A pending condition that clears before it is held goes back to inactive without an alert. Time is
 * the telemetry's own event time, passed in, so a replay of recorded data gives the same alerts.
 *
 * Every resolved record says why (`resolve_reason`): `cleared` when the condition cleared,
 * `shutdown` when the detector consumer stopped with the alert open (`close`), `stale` when nothing
 * evaluated the alert's key for the configured time (`lastObservedUs` tells the kernel how long).
 */
import { alertId } from '../contract/alerts.ts'
import type { Alert } from '../contract/records.ts'
import type { ResolveReason } from '../contract/vocabulary.ts'

export type LifecycleState = 'inactive' | 'pending' | 'firing'

/** What a detector knows about a break when it fires; the lifecycle adds the bookkeeping. */
export type AlertEvidence = Omit<Alert, 'id' | 'status' | 'starts_at_us' | 'ends_at_us' | 'updated_at_us'>

/** Plain-JSON state of an AlertLifecycle (the open alert included, so it resolves after a restart). */
export interface LifecycleSnapshot {
  state: LifecycleState
  activeAtUs: number
  breaching: number
  clear: number
  firing: Alert | null
  /** event time of the last evaluation (absent in snapshots of older versions) */
  lastObservedUs?: number
}

export interface LifecycleOptions {
  /** consecutive breaching samples before firing (hold time) */
  pendingSamples?: number
  /** consecutive clear samples before resolving */
  resolveSamples?: number
}

export class AlertLifecycle {
  state: LifecycleState = 'inactive'
  /** event time of the first breaching sample of the current episode */
  activeAtUs = 0
  /** event time of the last evaluation: a firing alert nobody evaluates any more goes stale */
  lastObservedUs = 0
  private breaching = 0
  private clear = 0
  private firing: Alert | undefined
  private readonly pendingSamples: number
  private readonly resolveSamples: number

  constructor(opts: LifecycleOptions = {}) {
    this.pendingSamples = opts.pendingSamples ?? 2
    this.resolveSamples = opts.resolveSamples ?? 3
  }

  /**
   * Feed one evaluation. `evidence` is required while the condition holds. Returns the alert record
   * to publish on a transition (firing or resolved), else undefined.
   */
  observe(nowUs: number, condition: boolean, evidence?: AlertEvidence): Alert | undefined {
    if (nowUs > this.lastObservedUs) this.lastObservedUs = nowUs
    if (condition) {
      this.clear = 0
      if (this.state === 'inactive') {
        this.state = 'pending'
        this.activeAtUs = nowUs
        this.breaching = 0
      }
      this.breaching++
      if (this.state === 'pending' && this.breaching >= this.pendingSamples) {
        if (!evidence) throw new Error('evidence is required when a condition holds')
        this.state = 'firing'
        this.firing = {
          ...evidence,
          id: alertId(evidence.dedup_key, this.activeAtUs),
          status: 'firing',
          starts_at_us: this.activeAtUs,
          ends_at_us: null,
          updated_at_us: nowUs,
        }
        return this.firing
      }
      return undefined
    }
    if (this.state === 'pending') {
      this.state = 'inactive'
      return undefined
    }
    if (this.state === 'firing') {
      this.clear++
      if (this.clear >= this.resolveSamples) return this.close(nowUs, 'cleared')
    }
    return undefined
  }

  /**
   * Ends the episode now: the resolved record of a firing alert (with `reason`), nothing for a
   * pending or inactive one. Either way the lifecycle is inactive afterwards, so a restored snapshot
   * taken after it neither resolves the alert again nor fires from a half-held condition.
   */
  close(nowUs: number, reason: ResolveReason): Alert | undefined {
    const firing = this.state === 'firing' ? this.firing : undefined
    this.state = 'inactive'
    this.firing = undefined
    this.breaching = 0
    this.clear = 0
    if (!firing) return undefined
    const at = Math.max(nowUs, firing.updated_at_us)
    return { ...firing, status: 'resolved', ends_at_us: at, updated_at_us: at, resolve_reason: reason }
  }

  get active(): boolean {
    return this.state !== 'inactive'
  }

  toState(): LifecycleSnapshot {
    return {
      state: this.state,
      activeAtUs: this.activeAtUs,
      breaching: this.breaching,
      clear: this.clear,
      firing: this.firing ?? null,
      lastObservedUs: this.lastObservedUs,
    }
  }

  /**
   * Rebuilds a lifecycle from `toState()` with the options of the detector that restores it. A
   * snapshot that does not read (or says firing without its alert) gives an inactive lifecycle.
   */
  static fromState(snapshot: unknown, opts: LifecycleOptions = {}): AlertLifecycle {
    const lc = new AlertLifecycle(opts)
    if (typeof snapshot !== 'object' || snapshot === null) return lc
    const s = snapshot as Partial<Record<keyof LifecycleSnapshot, unknown>>
    const num = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : 0)
    const firing = isAlertLike(s.firing) ? s.firing : undefined
    lc.lastObservedUs = num(s.lastObservedUs) || (firing ? firing.updated_at_us : 0)
    if (s.state === 'pending' || (s.state === 'firing' && firing)) {
      lc.state = s.state
      lc.activeAtUs = num(s.activeAtUs)
      lc.breaching = num(s.breaching)
      lc.clear = num(s.clear)
      lc.firing = s.state === 'firing' ? firing : undefined
    }
    return lc
  }
}

function isAlertLike(x: unknown): x is Alert {
  if (typeof x !== 'object' || x === null) return false
  const a = x as Record<string, unknown>
  return typeof a.id === 'string' && typeof a.dedup_key === 'string' && typeof a.starts_at_us === 'number'
}
