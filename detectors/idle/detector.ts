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
import type { Alert, HwSample } from '../../contract/records.ts'
import { type Baselines, baselinesFromJson, baselinesToJson } from '../baseline.ts'
import { InstanceSampleDetector, type OptionsOf, setting, detectorKind } from '../detector.ts'
import type { AlertLifecycle } from '../lifecycle.ts'
import { RecentSpans } from '../recent-spans.ts'

export const IDLE = detectorKind(
  'accelerator_idle_no_load',
  {
    spans: ['instance', 'model'],
    hw: ['executor_busy', 'arrivals', 'in_flight', 'interval_ms'],
  },
  {
    pendingSamples: setting.count(30, 'samples the idle condition must hold before firing'),
    resolveSamples: setting.count(5, 'clear samples before resolving'),
    absoluteBusy: setting.ratio(0.05, 'busy below this always counts as idle'),
    busyDropRatio: setting.ratio(0.25, '…or below this share of its baseline'),
    arrivalsDropRatio: setting.ratio(0.25, 'arrivals below this share of their baseline count as no load'),
    lowArrivalsPerS: setting.number(1, '…or fewer arrivals per second than this'),
    maxInFlight: setting.number(4, 'more requests in flight than this is pending work, not idleness'),
    baselineWindow: setting.count(120, 'samples in the busy and arrivals baselines'),
    warmupSamples: setting.count(10, 'samples before the baselines are used'),
  },
)
export type IdleOptions = OptionsOf<typeof IDLE.settings>

const BASELINES = ['busy', 'arrivals'] as const

interface InstanceState extends Baselines<typeof BASELINES> {
  lifecycle: AlertLifecycle
  /** for the model (idle alerts name no exemplar) */
  spans: RecentSpans
}

export class IdleNoLoadDetector extends InstanceSampleDetector<InstanceState, typeof IDLE.settings> {
  constructor(opts: IdleOptions = {}) {
    super(IDLE, opts)
  }

  protected fieldsToJson(s: InstanceState): Record<string, unknown> {
    return { ...baselinesToJson(s, BASELINES), model: s.spans.model }
  }

  protected fieldsFromJson(raw: Record<string, unknown>) {
    return {
      ...baselinesFromJson(raw, BASELINES, this.o.baselineWindow, this.o.warmupSamples),
      spans: new RecentSpans(typeof raw.model === 'string' ? raw.model : '*'),
    }
  }

  onHwSample(sample: HwSample): Alert[] {
    const s = this.state(sample.instance, sample.timestamp_us)
    const busyBase = s.busy.median()
    const arrivalsBase = s.arrivals.median()
    const threshold = Math.max(this.o.absoluteBusy, busyBase * this.o.busyDropRatio)
    const arrivalsPerS = sample.arrivals / Math.max(sample.interval_ms / 1000, 1e-3)
    const noLoad =
      sample.arrivals < arrivalsBase * this.o.arrivalsDropRatio || arrivalsPerS < this.o.lowArrivalsPerS
    const idle =
      s.busy.ready &&
      this.warm(sample.instance, sample.timestamp_us) &&
      sample.executor_busy < threshold &&
      noLoad &&
      sample.in_flight <= this.o.maxInFlight
    return this.judge(
      s.lifecycle,
      sample.timestamp_us,
      idle,
      `${sample.fleet}/${sample.instance}`,
      () => ({
        severity: 'info',
        fleet: sample.fleet,
        instance: sample.instance,
        model: s.spans.model,
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
      }),
      () => {
        s.busy.push(sample.executor_busy)
        s.arrivals.push(sample.arrivals)
      },
    )
  }
}

const pct = (x: number) => `${(x * 100).toFixed(0)}%`
