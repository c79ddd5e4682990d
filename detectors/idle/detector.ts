/**
 * Accelerator idle with no load (over-provisioned): the executor is idle and requests are not
 * arriving — not because they are stuck upstream (that is starvation: work in flight, executor
 * idle) but because there are none. Not a failure; capacity is paid for and unused, so it is
 * reported as `info` and only after a long hold.
 *
 * Thresholds (defaults):
 * - busy < max(`absoluteBusy` (0.05), baseline busy × `busyDropRatio` (0.25))
 * - and arrivals < baseline arrivals × `arrivalsDropRatio` (0.25), or under `lowArrivalsPerS` (1)
 *   per second (an instance whose baseline was always near idle still counts)
 * - and no pending work: in_flight ≤ `maxInFlight` (4)
 * - held for `pendingSamples` (30) samples; clear for `resolveSamples` (5) to resolve
 * - baselines: `baselineWindow` (120) samples, ready after `warmupSamples` (10), frozen while
 *   pending or firing (a long idle spell never becomes the baseline of a loaded instance)
 */
import type { Alert, HwSample, Span } from '../../contract/records.ts'
import { RollingBaseline } from '../baseline.ts'
import { PerInstanceDetector } from '../detector.ts'
import { AlertLifecycle, type LifecycleOptions } from '../lifecycle.ts'

export interface IdleOptions extends LifecycleOptions {
  absoluteBusy?: number
  busyDropRatio?: number
  arrivalsDropRatio?: number
  lowArrivalsPerS?: number
  maxInFlight?: number
  baselineWindow?: number
  warmupSamples?: number
}

interface InstanceState {
  busy: RollingBaseline
  arrivals: RollingBaseline
  lifecycle: AlertLifecycle
  model: string
}

export class IdleNoLoadDetector extends PerInstanceDetector<InstanceState> {
  readonly type = 'accelerator_idle_no_load'
  private readonly o: Required<IdleOptions>

  constructor(opts: IdleOptions = {}) {
    super()
    this.o = {
      absoluteBusy: 0.05,
      busyDropRatio: 0.25,
      arrivalsDropRatio: 0.25,
      lowArrivalsPerS: 1,
      maxInFlight: 4,
      baselineWindow: 120,
      warmupSamples: 10,
      pendingSamples: 30,
      resolveSamples: 5,
      ...opts,
    }
  }

  protected newState(): InstanceState {
    return {
      busy: new RollingBaseline(this.o.baselineWindow, this.o.warmupSamples),
      arrivals: new RollingBaseline(this.o.baselineWindow, this.o.warmupSamples),
      lifecycle: new AlertLifecycle(this.o),
      model: '*',
    }
  }

  protected stateToJson(s: InstanceState): Record<string, unknown> {
    return {
      busy: s.busy.toState(),
      arrivals: s.arrivals.toState(),
      lifecycle: s.lifecycle.toState(),
      model: s.model,
    }
  }

  protected stateFromJson(raw: Record<string, unknown>): InstanceState {
    const { baselineWindow: w, warmupSamples: warm } = this.o
    return {
      busy: RollingBaseline.fromState(raw.busy, w, warm),
      arrivals: RollingBaseline.fromState(raw.arrivals, w, warm),
      lifecycle: AlertLifecycle.fromState(raw.lifecycle, this.o),
      model: typeof raw.model === 'string' ? raw.model : '*',
    }
  }

  onSpan(span: Span): Alert[] {
    this.state(span.instance).model = span.model
    return []
  }

  onHwSample(sample: HwSample): Alert[] {
    const s = this.state(sample.instance)
    const busyBase = s.busy.median()
    const arrivalsBase = s.arrivals.median()
    const threshold = Math.max(this.o.absoluteBusy, busyBase * this.o.busyDropRatio)
    const arrivalsPerS = sample.arrivals / Math.max(sample.interval_ms / 1000, 1e-3)
    const noLoad =
      sample.arrivals < arrivalsBase * this.o.arrivalsDropRatio || arrivalsPerS < this.o.lowArrivalsPerS
    const idle =
      s.busy.ready && sample.executor_busy < threshold && noLoad && sample.in_flight <= this.o.maxInFlight
    const alert = s.lifecycle.observe(
      sample.timestamp_us,
      idle,
      idle
        ? {
            type: this.type,
            severity: 'info',
            dedup_key: `${this.type}/${sample.fleet}/${sample.instance}`,
            fleet: sample.fleet,
            instance: sample.instance,
            model: s.model,
            stage: null,
            statistic: 'executor_busy',
            observed: sample.executor_busy,
            baseline: busyBase,
            threshold,
            summary:
              `${sample.instance}: executor busy ${pct(sample.executor_busy)} (baseline ${pct(busyBase)}) with ` +
              `${sample.arrivals} arrivals per interval (baseline ${arrivalsBase.toFixed(0)}) and ` +
              `${sample.in_flight} in flight, for ${this.o.pendingSamples}+ samples`,
            suspected_cause:
              'load fell far below what this instance is provisioned for (traffic moved, routing changed, ' +
              'or off-peak hours) — capacity is idle, nothing is waiting',
            suggested_action:
              'scale the fleet in or consolidate models onto fewer accelerators; if the traffic drop is ' +
              'unexpected, check the load balancer and upstream routing',
            exemplar_request_ids: [],
          }
        : undefined,
    )
    if (!s.lifecycle.active) {
      s.busy.push(sample.executor_busy)
      s.arrivals.push(sample.arrivals)
    }
    return alert ? [alert] : []
  }
}

const pct = (x: number) => `${(x * 100).toFixed(0)}%`
