/**
 * Instance silent (pipeline stall): an instance that reported hardware samples regularly stops
 * reporting. Its own sampling interval is learned (median gap between its samples), so an instance
 * sampled every 5 minutes is judged against 5 minutes, not against the fleet's 1 s.
 *
 * Silence has no record of its own, so the clock is the event time of the rest of the fleet: the
 * newest timestamp of any span or sample seen. Every hardware sample (of any instance) evaluates
 * every known instance; the alert resolves on the silent instance's next sample.
 *
 * Thresholds (defaults):
 * - silent when now − last sample > `silenceFactor` (5) × its median sampling interval, and
 *   > `minSilenceMs` (3000) so sub-second samplers are not paged for a GC pause
 * - ready after `warmupSamples` (5) intervals of its own; fires on the first evaluation past the
 *   threshold (the factor is the hold time), resolves on the first sample it sends again
 * - the interval baseline (window `baselineWindow`, 60) is frozen while the alert is active, so the
 *   silence itself never becomes a "normal" interval
 * - the fleet is scanned at most once per `evaluateEveryMs` (1000) of event time, so a fleet of n
 *   instances costs O(n) per second, not O(n²)
 * Known gap: when the whole fleet goes silent there is no clock left to notice.
 */
import type { Alert, HwSample, Span } from '../../contract/records.ts'
import { isRecord, RollingBaseline } from '../baseline.ts'
import { type Detector, keyedState } from '../detector.ts'
import { AlertLifecycle } from '../lifecycle.ts'

export interface SilentOptions {
  silenceFactor?: number
  minSilenceMs?: number
  warmupSamples?: number
  baselineWindow?: number
  evaluateEveryMs?: number
}

interface InstanceState {
  fleet: string
  lastSeenUs: number
  intervals: RollingBaseline
  lifecycle: AlertLifecycle
  /** request ids of its newest spans, for the alert */
  recentRequests: string[]
}

const LIFECYCLE = { pendingSamples: 1, resolveSamples: 1 }

export class InstanceSilentDetector implements Detector {
  readonly type = 'instance_silent'
  private readonly instances = new Map<string, InstanceState>()
  private nowUs = 0
  private lastScanUs = Number.NEGATIVE_INFINITY
  private readonly o: Required<SilentOptions>

  constructor(opts: SilentOptions = {}) {
    this.o = {
      silenceFactor: 5,
      minSilenceMs: 3000,
      warmupSamples: 5,
      baselineWindow: 60,
      evaluateEveryMs: 1000,
      ...opts,
    }
  }

  onSpan(span: Span): Alert[] {
    if (span.timestamp_us > this.nowUs) this.nowUs = span.timestamp_us
    const s = this.instances.get(span.instance)
    if (s) {
      s.recentRequests.push(span.request_id)
      if (s.recentRequests.length > 3) s.recentRequests.shift()
    }
    return []
  }

  onHwSample(sample: HwSample): Alert[] {
    if (sample.timestamp_us > this.nowUs) this.nowUs = sample.timestamp_us
    const out: Alert[] = []
    let s = this.instances.get(sample.instance)
    if (!s) {
      s = {
        fleet: sample.fleet,
        lastSeenUs: sample.timestamp_us,
        intervals: new RollingBaseline(this.o.baselineWindow, this.o.warmupSamples),
        lifecycle: new AlertLifecycle(LIFECYCLE),
        recentRequests: [],
      }
      this.instances.set(sample.instance, s)
    } else if (sample.timestamp_us > s.lastSeenUs) {
      // it reports again: resolve first, and keep the silence out of its interval baseline
      if (s.lifecycle.active) {
        const resolved = s.lifecycle.observe(sample.timestamp_us, false)
        if (resolved) out.push(resolved)
      } else s.intervals.push(sample.timestamp_us - s.lastSeenUs)
      s.lastSeenUs = sample.timestamp_us
    }
    if (this.nowUs - this.lastScanUs < this.o.evaluateEveryMs * 1000) return out
    this.lastScanUs = this.nowUs
    for (const [instance, other] of this.instances) {
      if (instance === sample.instance || !other.intervals.ready) continue
      const intervalUs = other.intervals.median()
      const thresholdUs = Math.max(this.o.silenceFactor * intervalUs, this.o.minSilenceMs * 1000)
      const silentUs = this.nowUs - other.lastSeenUs
      if (silentUs <= thresholdUs) continue
      const alert = other.lifecycle.observe(this.nowUs, true, {
        type: this.type,
        severity: 'critical',
        dedup_key: `${this.type}/${other.fleet}/${instance}`,
        fleet: other.fleet,
        instance,
        model: '*',
        stage: null,
        statistic: 'silence_ms',
        observed: silentUs / 1000,
        baseline: intervalUs / 1000,
        threshold: thresholdUs / 1000,
        summary:
          `${instance}: no hardware sample for ${sec(silentUs)} (it reports every ${sec(intervalUs)}); ` +
          `last at ${new Date(other.lastSeenUs / 1000).toISOString()}`,
        suspected_cause:
          'the instance stopped sending telemetry: process crashed or hung, host down or partitioned, ' +
          'or its telemetry producer is blocked',
        suggested_action:
          'check that the instance process is alive and serving (health endpoint, restarts, OOM kills); ' +
          'if it serves, check its telemetry path to Kafka',
        exemplar_request_ids: [...other.recentRequests],
      })
      if (alert) out.push(alert)
    }
    return out
  }

  exportState(): Record<string, unknown> {
    const keys = keyedState(this.instances, (s) => ({
      fleet: s.fleet,
      lastSeenUs: s.lastSeenUs,
      intervals: s.intervals.toState(),
      lifecycle: s.lifecycle.toState(),
      recentRequests: s.recentRequests,
    }))
    return { nowUs: this.nowUs, keys }
  }

  importState(state: Record<string, unknown>): void {
    if (typeof state.nowUs === 'number' && state.nowUs > this.nowUs) this.nowUs = state.nowUs
    if (!isRecord(state.keys)) return
    for (const [instance, raw] of Object.entries(state.keys)) {
      if (!isRecord(raw) || typeof raw.lastSeenUs !== 'number') continue
      this.instances.set(instance, {
        fleet: typeof raw.fleet === 'string' ? raw.fleet : 'default',
        lastSeenUs: raw.lastSeenUs,
        intervals: RollingBaseline.fromState(raw.intervals, this.o.baselineWindow, this.o.warmupSamples),
        lifecycle: AlertLifecycle.fromState(raw.lifecycle, LIFECYCLE),
        recentRequests: Array.isArray(raw.recentRequests)
          ? raw.recentRequests.filter((x): x is string => typeof x === 'string').slice(-3)
          : [],
      })
    }
  }
}

const sec = (us: number) => `${(us / 1e6).toFixed(1)} s`
