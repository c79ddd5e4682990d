/**
 * OTLP metrics reduced to the same points the Prometheus scraper produces, so metrics pushed through
 * an OpenTelemetry Collector (its prometheus receiver scraping Triton or DCGM, say) map to hardware
 * samples by the same table (collect/prometheus/hardware.ts).
 *
 * - Gauge points → gauges; monotonic cumulative Sum points → counters; monotonic delta Sum points are
 *   added up into a running total (a counter); non-monotonic sums → gauges. Histograms, exponential
 *   histograms and summaries are not used (nothing in the hardware table needs them).
 * - A point's labels are its attributes (as strings); its resource names the instance (identity.ts).
 * - A number point with neither `asDouble` nor `asInt` is rejected (partial success).
 * - Running totals are bounded (`maxSeries`, default 100 000): beyond it the oldest total is
 *   forgotten and that series starts again from its next delta (a counter reset, as the mapper sees it).
 */
import { type Identity, identityOf } from '../identity.ts'
import type { MetricPoint } from '../prometheus/hardware.ts'
import type { ExportMetricsServiceRequest, NumberDataPoint } from './schema.ts'
import { attributesOf } from './spans.ts'

export interface MetricsBatch {
  identity: Identity
  points: MetricPoint[]
  /** the latest point time, epoch ms */
  atMs: number
}

export interface FlattenedMetrics {
  batches: MetricsBatch[]
  points: number
  rejected: number
}

const TEMPORALITY_DELTA = 1

export class OtlpMetricsConverter {
  private readonly totals = new Map<string, number>()

  constructor(
    private readonly fleet: string,
    private readonly maxSeries = 100_000,
  ) {}

  flatten(request: ExportMetricsServiceRequest, peer: string, nowMs: number): FlattenedMetrics {
    const out: FlattenedMetrics = { batches: [], points: 0, rejected: 0 }
    for (const rm of request.resourceMetrics ?? []) {
      const identity = identityOf(attributesOf(rm.resource?.attributes), peer, this.fleet)
      const batch: MetricsBatch = { identity, points: [], atMs: 0 }
      const take = (name: string, p: NumberDataPoint, kind: 'counter' | 'gauge', delta: boolean) => {
        out.points++
        const raw = p.asDouble ?? (p.asInt !== undefined ? Number(p.asInt) : undefined)
        if (raw === undefined) {
          out.rejected++
          return
        }
        const labels = Object.fromEntries(
          Object.entries(attributesOf(p.attributes)).map(([k, v]) => [k, String(v)]),
        )
        let value = raw
        if (delta) {
          const key = `${identity.instance}\u0000${name}\u0000${JSON.stringify(labels)}`
          value = (this.totals.get(key) ?? 0) + raw
          this.totals.delete(key) // re-inserted last: the map's order is least recently used first
          this.totals.set(key, value)
          if (this.totals.size > this.maxSeries) this.totals.delete(this.totals.keys().next().value as string)
        }
        batch.points.push({ name, labels, value, kind })
        const ms = p.timeUnixNano ? Number(BigInt(p.timeUnixNano) / 1_000_000n) : 0
        if (ms > batch.atMs) batch.atMs = ms
      }
      for (const sm of rm.scopeMetrics ?? []) {
        for (const m of sm.metrics ?? []) {
          const name = m.name ?? ''
          for (const p of m.gauge?.dataPoints ?? []) take(name, p, 'gauge', false)
          if (m.sum) {
            const counter = m.sum.isMonotonic === true
            const delta = counter && m.sum.aggregationTemporality === TEMPORALITY_DELTA
            for (const p of m.sum.dataPoints ?? []) take(name, p, counter ? 'counter' : 'gauge', delta)
          }
        }
      }
      if (batch.atMs === 0) batch.atMs = nowMs
      if (batch.points.length > 0) out.batches.push(batch)
    }
    return out
  }
}
