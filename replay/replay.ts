/**
 * Replay / backtest: runs detectors over recorded telemetry in event-time order and collects the
 * alerts they would have raised, one line per alert (its firing and resolved transitions merged).
 * Detectors are pure computation on event time, so a replay of the same data gives the same alerts
 * (same ids) as the live run did.
 */
import type { Alert } from '../contract/records.ts'
import { AnomalyDetector, type SeriesLabels } from '../detectors/anomaly/detector.ts'
import type { Detector } from '../detectors/detector.ts'
import { isoFromMicros } from '../notify/webhook.ts'
import type { ReplayEvent } from './file-source.ts'

/** What replay needs from a generic series detector (the `anomaly` detector's API). */
export interface SeriesDetector {
  readonly type: string
  observe(series: string, timestampUs: number, value: number, labels?: SeriesLabels): Alert[]
  /** observe, with the point's anomaly score in [0, 1] under the alert policy (for `--scores`) */
  assess?(
    series: string,
    timestampUs: number,
    value: number,
    labels?: SeriesLabels,
  ): { alerts: Alert[]; score?: number; assessment?: { score: number } }
}

/** One series point as scored (`breakid replay --scores`). */
export interface ScoredPoint {
  timestampUs: number
  series: string
  fleet: string
  instance: string
  value: number
  /** anomaly score in [0, 1] under the alert policy (≥ 0.5 where an alert fired); null when none */
  score: number | null
  /** the model's own score for the point, before the alert policy; null when none */
  modelScore: number | null
  /** alert transitions this point caused */
  alerts: Alert['status'][]
}

/** One replayed alert as printed (NDJSON). */
export interface ReplayedAlert {
  id: string
  type: string
  /** dedup key */
  key: string
  /** ISO 8601 */
  start: string
  /** ISO 8601; null while still firing at the end of the input */
  end: string | null
  /** ISO 8601 of the evaluation that fired it */
  fired_at: string
  status: Alert['status']
  severity: Alert['severity']
  fleet: string
  instance: string
  model: string
  stage: string | null
  summary: string
  evidence: { statistic: string; observed: number; baseline: number; threshold: number }
  suspected_cause: string
  suggested_action: string
  exemplar_request_ids: string[]
}

export interface ReplayStats {
  spans: number
  hwSamples: number
  points: number
  transitions: number
}

/** The generic series detector of a detector set: the first one with `observe`. */
export function findSeriesDetector(detectors: readonly unknown[]): SeriesDetector | undefined {
  for (const d of detectors) {
    if (
      typeof d === 'object' &&
      d !== null &&
      typeof (d as { observe?: unknown }).observe === 'function' &&
      typeof (d as { type?: unknown }).type === 'string'
    ) {
      return d as SeriesDetector
    }
  }
  return undefined
}

export interface ReplayOptions {
  detectors: Detector[]
  /** the series detector for `point` events; default: the set's own (findSeriesDetector), else an AnomalyDetector */
  series?: SeriesDetector
  /** called for every series point with its score */
  onPoint?: (p: ScoredPoint) => void
}

export class Replayer {
  readonly stats: ReplayStats = { spans: 0, hwSamples: 0, points: 0, transitions: 0 }
  private readonly open = new Map<string, Alert>()
  private readonly done: ReplayedAlert[] = []
  private readonly series: SeriesDetector | undefined
  private readonly detectors: Detector[]
  private seriesInUse: SeriesDetector | undefined

  constructor(private readonly opts: ReplayOptions) {
    this.detectors = opts.detectors
    this.series = opts.series ?? findSeriesDetector(opts.detectors)
  }

  /** the series detector in use (created on the first point when the set has none) */
  get seriesDetectorType(): string | undefined {
    return (this.series ?? this.seriesInUse)?.type
  }

  feed(e: ReplayEvent): void {
    const raised: Alert[] = []
    if (e.kind === 'span') {
      this.stats.spans++
      for (const d of this.detectors) if (d.onSpan) raised.push(...d.onSpan(e.span))
    } else if (e.kind === 'hw') {
      this.stats.hwSamples++
      for (const d of this.detectors) if (d.onHwSample) raised.push(...d.onHwSample(e.sample))
    } else {
      this.stats.points++
      this.seriesInUse ??= this.series ?? new AnomalyDetector()
      const labels = { fleet: e.fleet, instance: e.instance }
      const d = this.seriesInUse
      if (this.opts.onPoint) {
        const r = d.assess ? d.assess(e.series, e.timestampUs, e.value, labels) : undefined
        const alerts = r ? r.alerts : d.observe(e.series, e.timestampUs, e.value, labels)
        raised.push(...alerts)
        this.opts.onPoint({
          timestampUs: e.timestampUs,
          series: e.series,
          fleet: e.fleet,
          instance: e.instance,
          value: e.value,
          score: r?.score ?? null,
          modelScore: r?.assessment?.score ?? null,
          alerts: alerts.map((a) => a.status),
        })
      } else raised.push(...d.observe(e.series, e.timestampUs, e.value, labels))
    }
    for (const a of raised) this.transition(a)
  }

  private transition(a: Alert): void {
    this.stats.transitions++
    if (a.status === 'firing') {
      this.open.set(a.id, a)
      return
    }
    const firing = this.open.get(a.id)
    this.open.delete(a.id)
    this.done.push(replayedAlert(firing ?? a, a))
  }

  /** Every alert: resolved ones, then those still firing, ordered by start. */
  alerts(): ReplayedAlert[] {
    const all = [...this.done, ...[...this.open.values()].map((a) => replayedAlert(a, undefined))]
    return all.sort((x, y) => (x.start < y.start ? -1 : x.start > y.start ? 1 : x.key < y.key ? -1 : 1))
  }
}

export function replayedAlert(firing: Alert, resolved: Alert | undefined): ReplayedAlert {
  return {
    id: firing.id,
    type: firing.type,
    key: firing.dedup_key,
    start: isoFromMicros(firing.starts_at_us),
    end: resolved?.ends_at_us != null ? isoFromMicros(resolved.ends_at_us) : null,
    fired_at: isoFromMicros(firing.updated_at_us),
    status: resolved ? 'resolved' : 'firing',
    severity: firing.severity,
    fleet: firing.fleet,
    instance: firing.instance,
    model: firing.model,
    stage: firing.stage,
    summary: firing.summary,
    evidence: {
      statistic: firing.statistic,
      observed: firing.observed,
      baseline: firing.baseline,
      threshold: firing.threshold,
    },
    suspected_cause: firing.suspected_cause,
    suggested_action: firing.suggested_action,
    exemplar_request_ids: firing.exemplar_request_ids,
  }
}

/** Replays a whole event stream (sync or async) and returns its alerts. */
export async function replay(
  events: Iterable<ReplayEvent> | AsyncIterable<ReplayEvent>,
  opts: ReplayOptions,
): Promise<{ alerts: ReplayedAlert[]; stats: ReplayStats; seriesDetector: string | undefined }> {
  const r = new Replayer(opts)
  for await (const e of events) r.feed(e)
  return { alerts: r.alerts(), stats: r.stats, seriesDetector: r.seriesDetectorType }
}
