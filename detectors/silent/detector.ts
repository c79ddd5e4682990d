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
 * - an instance silent for more than `forgetAfterMs` (10 min) is gone, not stalled: its alert resolves
 *   `stale` and the instance is forgotten, so a decommissioned instance does not fire forever and
 *   state restored after a long stop does not page for the instances of the previous run
 * Known gap: when the whole fleet goes silent there is no clock left to notice.
 */
import type { Alert, HwSample, Span } from '../../contract/records.ts'
import { RollingBaseline } from '../baseline.ts'
import { setting, detectorKind, type OptionsOf, OneAlertDetector, type Finding } from '../detector.ts'
import type { AlertLifecycle } from '../lifecycle.ts'

export const SILENT = detectorKind(
  'instance_silent',
  {
    spans: ['instance', 'request_id', 'timestamp_us'],
    hw: ['instance', 'fleet', 'timestamp_us'],
  },
  {
    // the silence factor is the hold time: the alert fires on the first evaluation past it
    pendingSamples: setting.count(1, 'evaluations past the threshold before firing'),
    resolveSamples: setting.count(1, 'samples it must send again to resolve'),
    silenceFactor: setting.number(5, 'silent after this many of its own sampling intervals'),
    minSilenceMs: setting.number(3000, '…and at least this long, ms'),
    forgetAfterMs: setting.number(600_000, 'silent longer than this: gone, resolved stale and forgotten, ms'),
    warmupSamples: setting.count(5, 'intervals of its own before it is judged'),
    baselineWindow: setting.count(60, 'intervals in the interval baseline'),
    evaluateEveryMs: setting.number(1000, 'the fleet is scanned at most this often, ms of event time'),
  },
)
export type SilentOptions = OptionsOf<typeof SILENT.settings>

interface InstanceState {
  fleet: string
  lastSeenUs: number
  intervals: RollingBaseline
  lifecycle: AlertLifecycle
  /** request ids of its newest spans, for the alert */
  recentRequests: string[]
}

export class InstanceSilentDetector extends OneAlertDetector<InstanceState, typeof SILENT.settings> {
  private nowUs = 0
  private lastScanUs = Number.NEGATIVE_INFINITY

  constructor(opts: SilentOptions = {}) {
    super(SILENT, opts)
  }

  onSpan(span: Span): Alert[] {
    if (span.timestamp_us > this.nowUs) this.nowUs = span.timestamp_us
    const s = this.keys.get(span.instance)
    if (s) {
      s.recentRequests.push(span.request_id)
      if (s.recentRequests.length > 3) s.recentRequests.shift()
    }
    return []
  }

  onHwSample(sample: HwSample): Alert[] {
    if (sample.timestamp_us > this.nowUs) this.nowUs = sample.timestamp_us
    const out: Alert[] = []
    const known = this.keys.get(sample.instance)
    const { fleet, timestamp_us: lastSeenUs } = sample
    const s = this.state(sample.instance, lastSeenUs, () =>
      this.newState(sample.instance, { fleet, lastSeenUs }),
    )
    if (known && sample.timestamp_us > s.lastSeenUs) {
      // it reports again: resolve first, and keep the silence out of its interval baseline
      if (s.lifecycle.active) {
        const resolved = s.lifecycle.observe(sample.timestamp_us, false)
        if (resolved) out.push(resolved)
      } else s.intervals.push(sample.timestamp_us - s.lastSeenUs)
      s.lastSeenUs = sample.timestamp_us
    }
    if (this.nowUs - this.lastScanUs < this.o.evaluateEveryMs * 1000) return out
    this.lastScanUs = this.nowUs
    for (const [instance, other] of this.keys) {
      if (instance === sample.instance) continue
      const silentUs = this.nowUs - other.lastSeenUs
      if (silentUs > this.o.forgetAfterMs * 1000) {
        const gone = other.lifecycle.close(this.nowUs, 'stale')
        if (gone) out.push(gone)
        this.forget(instance)
        continue
      }
      if (!other.intervals.ready || !this.warm(instance, this.nowUs)) continue
      const intervalUs = other.intervals.median()
      const thresholdUs = Math.max(this.o.silenceFactor * intervalUs, this.o.minSilenceMs * 1000)
      if (silentUs <= thresholdUs) continue
      const finding = (): Finding => ({
        severity: 'critical',
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
      out.push(...this.judge(other.lifecycle, this.nowUs, true, `${other.fleet}/${instance}`, finding))
    }
    return out
  }

  protected override exportExtra(): Record<string, unknown> {
    return { nowUs: this.nowUs }
  }

  protected override importExtra(state: Record<string, unknown>): void {
    if (typeof state.nowUs === 'number' && state.nowUs > this.nowUs) this.nowUs = state.nowUs
  }

  protected fieldsToJson(s: InstanceState): Record<string, unknown> {
    return {
      fleet: s.fleet,
      lastSeenUs: s.lastSeenUs,
      intervals: s.intervals.toState(),
      recentRequests: s.recentRequests,
    }
  }

  protected fieldsFromJson(raw: Record<string, unknown>) {
    if (typeof raw.lastSeenUs !== 'number') return undefined
    return {
      fleet: typeof raw.fleet === 'string' ? raw.fleet : 'default',
      lastSeenUs: raw.lastSeenUs,
      intervals: RollingBaseline.fromState(raw.intervals, this.o.baselineWindow, this.o.warmupSamples),
      recentRequests: Array.isArray(raw.recentRequests)
        ? raw.recentRequests.filter((x): x is string => typeof x === 'string').slice(-3)
        : [],
    }
  }
}

const sec = (us: number) => `${(us / 1e6).toFixed(1)} s`
