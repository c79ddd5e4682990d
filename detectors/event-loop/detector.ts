/**
 * Event loop blocked: the engine's event loop — which parses requests, runs the batcher and writes
 * responses — is stalled by synchronous work, so every request on the instance waits, whatever the
 * accelerator does. Read from the hardware sample's event_loop_delay_p99_ms.
 *
 * Thresholds (defaults):
 * - p99 delay > max(`minDelayMs` (100), baseline × `ratio` (5), baseline + `sigmas` (6) × σ)
 *   (absolute floor: a loop that normally lags 1 ms and now lags 8 ms is not a page)
 * - held for `pendingSamples` (2) samples; clear for `resolveSamples` (3) to resolve
 * - baseline: `baselineWindow` (60) samples, ready after `warmupSamples` (10), frozen while active
 * - severity critical above `criticalMs` (1000), else warning
 */
import type { Alert, HwSample } from '../../contract/records.ts'
import { RollingBaseline } from '../baseline.ts'
import { InstanceSampleDetector, type OptionsOf, setting, detectorKind } from '../detector.ts'
import type { AlertLifecycle } from '../lifecycle.ts'
import { RecentSpans } from '../recent-spans.ts'

export const EVENT_LOOP = detectorKind(
  'event_loop_blocked',
  {
    spans: ['instance', 'model', 'request_id', 'total_us'],
    hw: ['event_loop_delay_p99_ms', 'gc_ms', 'process_cpu', 'interval_ms'],
  },
  {
    minDelayMs: setting.number(100, 'p99 delay must exceed this, ms, whatever the baseline'),
    ratio: setting.number(5, '…and baseline × this'),
    sigmas: setting.number(6, '…and baseline + this many σ'),
    criticalMs: setting.number(1000, 'severity critical above this delay, ms'),
    baselineWindow: setting.count(60, 'samples in the delay baseline'),
    warmupSamples: setting.count(10, 'samples before the baseline is used'),
  },
)
export type EventLoopOptions = OptionsOf<typeof EVENT_LOOP.settings>

interface InstanceState {
  delay: RollingBaseline
  lifecycle: AlertLifecycle
  spans: RecentSpans
}

export class EventLoopBlockedDetector extends InstanceSampleDetector<
  InstanceState,
  typeof EVENT_LOOP.settings
> {
  constructor(opts: EventLoopOptions = {}) {
    super(EVENT_LOOP, opts)
  }

  protected fieldsToJson(s: InstanceState): Record<string, unknown> {
    return { delay: s.delay.toState(), model: s.spans.model }
  }

  protected fieldsFromJson(raw: Record<string, unknown>) {
    return {
      delay: RollingBaseline.fromState(raw.delay, this.o.baselineWindow, this.o.warmupSamples),
      spans: new RecentSpans(typeof raw.model === 'string' ? raw.model : '*'),
    }
  }

  onHwSample(sample: HwSample): Alert[] {
    const s = this.state(sample.instance, sample.timestamp_us)
    const base = s.delay.median()
    const threshold = Math.max(this.o.minDelayMs, base * this.o.ratio, base + this.o.sigmas * s.delay.sigma())
    const observed = sample.event_loop_delay_p99_ms
    const blocked = s.delay.ready && this.warm(sample.instance, sample.timestamp_us) && observed > threshold
    return this.judge(
      s.lifecycle,
      sample.timestamp_us,
      blocked,
      `${sample.fleet}/${sample.instance}`,
      () => ({
        severity: observed > this.o.criticalMs ? 'critical' : 'warning',
        fleet: sample.fleet,
        instance: sample.instance,
        model: s.spans.model,
        stage: null,
        statistic: 'event_loop_delay_p99_ms',
        observed,
        baseline: base,
        threshold,
        summary:
          `${sample.instance}: event loop delay p99 ${observed.toFixed(0)} ms (baseline ${base.toFixed(1)} ms); ` +
          `GC ${sample.gc_ms.toFixed(0)} ms, process CPU ${(sample.process_cpu * 100).toFixed(0)}% this interval`,
        suspected_cause:
          sample.gc_ms > sample.interval_ms * 0.2
            ? `garbage collection pauses (${sample.gc_ms.toFixed(0)} ms GC in a ${sample.interval_ms} ms interval)`
            : 'synchronous CPU work on the event loop: large JSON (de)serialization, synchronous ' +
              'preprocessing or a blocking call',
        suggested_action:
          'profile the instance (node --cpu-prof) and move CPU-bound work to worker threads; ' +
          'check request payload sizes and heap growth',
        exemplar_request_ids: s.spans.exemplars((x) => x.total_us),
      }),
      () => s.delay.push(observed),
    )
  }
}
