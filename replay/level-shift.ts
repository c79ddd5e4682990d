/**
 * A generic detector for any numeric series, used by replay when the detector set has none of its
 * own (no detector exposing `observe`): a level shift or spike far outside the series' recent robust
 * range. Windows count samples, not seconds, so it adapts to the series' own sampling interval — a
 * series sampled every five minutes gets the same statistics as one sampled every second; the
 * interval only turns sample counts into words in the evidence.
 *
 * Thresholds (defaults):
 * - baseline: median and MAD-sigma of the last `baselineWindow` (60) samples, ready after
 *   `warmupSamples` (20); frozen while an alert is pending or firing
 * - breach: |x − median| > `k` (6) × max(sigma, `minRelativeSpread` (1 %) × |median|, 1e-9)
 * - held for `pendingSamples` (3) samples before firing, clear for `resolveSamples` (3) to resolve
 */
import type { Alert } from '../contract/records.ts'
import { RollingBaseline } from '../detectors/baseline.ts'
import { AlertLifecycle, type LifecycleOptions } from '../detectors/lifecycle.ts'

/** Where a series comes from (the `anomaly` detector's labels). */
export interface SeriesLabels {
  fleet?: string
  instance?: string
  model?: string
}

/** What replay needs from a generic series detector (the `anomaly` detector's `observe` API). */
export interface SeriesDetector {
  readonly type: string
  observe(series: string, timestampUs: number, value: number, labels?: SeriesLabels): Alert[]
}

export interface LevelShiftOptions extends LifecycleOptions {
  baselineWindow?: number
  warmupSamples?: number
  k?: number
  minRelativeSpread?: number
  /** the series' sampling interval (µs), for the evidence text */
  intervalUs?: number
  fleet?: string
}

interface SeriesState {
  baseline: RollingBaseline
  lifecycle: AlertLifecycle
}

export class LevelShiftDetector implements SeriesDetector {
  readonly type = 'anomaly'
  private readonly series = new Map<string, SeriesState>()
  private readonly o: Required<Omit<LevelShiftOptions, 'intervalUs'>> & { intervalUs: number | undefined }

  constructor(opts: LevelShiftOptions = {}) {
    this.o = {
      baselineWindow: 60,
      warmupSamples: 20,
      k: 6,
      minRelativeSpread: 0.01,
      pendingSamples: 3,
      resolveSamples: 3,
      fleet: 'replay',
      ...opts,
      intervalUs: opts.intervalUs,
    }
  }

  observe(metric: string, timestampUs: number, value: number, labels: SeriesLabels = {}): Alert[] {
    if (!Number.isFinite(value)) return []
    const fleet = labels.fleet ?? this.o.fleet
    const instance = labels.instance ?? '*'
    const series = `${instance}/${metric}`
    let s = this.series.get(series)
    if (!s) {
      s = {
        baseline: new RollingBaseline(this.o.baselineWindow, this.o.warmupSamples),
        lifecycle: new AlertLifecycle(this.o),
      }
      this.series.set(series, s)
    }
    const med = s.baseline.median()
    const spread = Math.max(s.baseline.sigma(), this.o.minRelativeSpread * Math.abs(med), 1e-9)
    const threshold = this.o.k * spread
    const deviation = value - med
    const breach = s.baseline.ready && Math.abs(deviation) > threshold
    const alert = s.lifecycle.observe(
      timestampUs,
      breach,
      breach
        ? {
            type: this.type,
            severity: Math.abs(deviation) > 2 * threshold ? 'critical' : 'warning',
            dedup_key: `${this.type}/${fleet}/${series}`,
            fleet,
            instance,
            model: labels.model ?? '*',
            stage: null,
            statistic: metric,
            observed: value,
            baseline: med,
            threshold: deviation > 0 ? med + threshold : med - threshold,
            summary:
              `${series}: ${fmt(value)} is ${(Math.abs(deviation) / spread).toFixed(1)} robust sigmas ` +
              `${deviation > 0 ? 'above' : 'below'} its baseline ${fmt(med)} ` +
              `(last ${s.baseline.count} samples${this.o.intervalUs ? `, every ${interval(this.o.intervalUs)}` : ''})`,
            suspected_cause: `${metric} shifted ${deviation > 0 ? 'up' : 'down'} and stayed there`,
            suggested_action: `look at what changed when ${metric} moved; tune k or the window if this is normal`,
            exemplar_request_ids: [],
          }
        : undefined,
    )
    if (!s.lifecycle.active) s.baseline.push(value)
    return alert ? [alert] : []
  }
}

const fmt = (x: number) =>
  Math.abs(x) >= 1e4 || (x !== 0 && Math.abs(x) < 1e-2) ? x.toExponential(3) : x.toFixed(3)

function interval(us: number): string {
  if (us >= 3_600e6) return `${(us / 3_600e6).toFixed(1)} h`
  if (us >= 60e6) return `${(us / 60e6).toFixed(1)} min`
  if (us >= 1e6) return `${(us / 1e6).toFixed(1)} s`
  return `${(us / 1000).toFixed(0)} ms`
}
