/**
 * `error_rate_spike`: the fraction of requests of an instance + model that end with a status other
 * than ok jumps far above its baseline. Names the dominant error_class.
 *
 * Evaluated on event-time buckets of the span timestamps (`bucketMs`, 1 s) per instance + model,
 * over the last `intervalBuckets` (5) closed buckets. Buckets that leave that interval feed the
 * baseline — the error rate over the last `baselineBuckets` (300) buckets as Σ errors / Σ requests (a
 * mean, not a median: errors are rare events and the median of rare events is 0) — unless an alert is
 * pending or firing.
 *
 * Thresholds (defaults): a spike when all hold —
 * - at least `minCount` (20) requests and `minErrors` (4) errors in the interval
 * - a baseline of at least `warmupBuckets` (30) buckets and `warmupRequests` (100) requests
 * - rate > max(baseline × `rateFactor` (3), baseline + `minRateIncrease` (0.02))   a change that matters
 * - so many errors would happen by chance with p < `pValueThreshold` (1e-5) at the baseline rate
 *   (binomial tail; the baseline rate counts as at least `minBaselineRate` (0.002), so an instance
 *   that never failed does not page on its first two errors)                      …and is no accident
 * - held `pendingSamples` (1) bucket — the binomial test already demands the evidence
 * - once firing it holds while the rate stays above baseline + minRateIncrease / 2 at p < 0.01, and
 *   resolves after `resolveSamples` (5) buckets below that — a burst that flickers stays one alert
 * Severity: critical when the rate over the interval or its newest bucket is ≥ 0.5.
 */
import type { Alert, Span } from '../../contract/records.ts'
import { type Bucketed, BucketedModelDetector, type OptionsOf, setting, detectorKind } from '../detector.ts'
import { binomialTail, fmtPct, num, nums } from '../stats.ts'

export const ERROR_RATE = detectorKind(
  'error_rate_spike',
  {
    spans: ['fleet', 'instance', 'model', 'status', 'error_class', 'request_id', 'timestamp_us'],
    hw: [],
  },
  {
    pendingSamples: setting.count(
      1,
      'buckets before firing (the binomial test already demands the evidence)',
    ),
    resolveSamples: setting.count(5, 'buckets below the hold rate before resolving'),
    bucketMs: setting.number(1000, 'event-time bucket, ms', { min: 1 }),
    intervalBuckets: setting.count(5, 'closed buckets judged together'),
    baselineBuckets: setting.count(300, 'buckets in the baseline rate'),
    warmupBuckets: setting.count(30, 'buckets of baseline before judging'),
    warmupRequests: setting.count(100, 'requests of baseline before judging'),
    minCount: setting.count(20, 'fewest requests in the interval'),
    minErrors: setting.count(4, 'fewest errors in the interval'),
    rateFactor: setting.number(3, 'rate above baseline × this'),
    minRateIncrease: setting.ratio(0.02, '…and above baseline + this'),
    pValueThreshold: setting.ratio(1e-5, 'so many errors at the baseline rate have at most this probability'),
    minBaselineRate: setting.ratio(0.002, 'the baseline rate counts as at least this'),
  },
)
export type ErrorRateOptions = OptionsOf<typeof ERROR_RATE.settings>

interface Bucket {
  total: number
  errors: number
  classes: Record<string, number>
  /** request ids of the newest errors */
  errorIds: string[]
}

/** a key's own fields (the kernel keeps its instance, model and open bucket) */
interface KeyState {
  open: Bucket
  interval: Bucket[]
  baseTotals: number[]
  baseErrors: number[]
}

/** p-value under which a firing alert keeps firing */
const HOLD_P_VALUE = 0.01

const emptyBucket = (): Bucket => ({ total: 0, errors: 0, classes: {}, errorIds: [] })

export class ErrorRateDetector extends BucketedModelDetector<KeyState, typeof ERROR_RATE.settings> {
  constructor(opts: ErrorRateOptions = {}) {
    super(ERROR_RATE, opts)
  }

  protected count(k: Bucketed<KeyState>, span: Span): void {
    const b = k.open
    b.total++
    if (span.status !== 'ok') {
      b.errors++
      const cls = span.error_class ?? span.status
      b.classes[cls] = (b.classes[cls] ?? 0) + 1
      if (b.errorIds.length >= 3) b.errorIds.shift()
      b.errorIds.push(span.request_id)
    }
  }

  protected judgeBucket(key: string, k: Bucketed<KeyState>, nowUs: number): Alert[] {
    k.interval.push(k.open)
    k.open = emptyBucket()
    if (k.interval.length > this.o.intervalBuckets) {
      const old = k.interval.shift()!
      if (!k.lifecycle.active) {
        k.baseTotals.push(old.total)
        k.baseErrors.push(old.errors)
        if (k.baseTotals.length > this.o.baselineBuckets) {
          k.baseTotals.shift()
          k.baseErrors.shift()
        }
      }
    }
    const total = sum(k.interval.map((b) => b.total))
    const errors = sum(k.interval.map((b) => b.errors))
    const baseTotal = sum(k.baseTotals)
    const baseRate = baseTotal > 0 ? sum(k.baseErrors) / baseTotal : 0
    const warm =
      k.baseTotals.length >= this.o.warmupBuckets &&
      baseTotal >= this.o.warmupRequests &&
      this.warm(key, nowUs)
    const rate = total > 0 ? errors / total : 0
    const threshold = Math.max(baseRate * this.o.rateFactor, baseRate + this.o.minRateIncrease)
    const chance = binomialTail(errors, total, Math.max(baseRate, this.o.minBaselineRate))
    // hysteresis: a firing alert holds while the rate stays clearly up, so a burst that flickers
    // around the threshold stays one alert
    const spike = k.lifecycle.active
      ? rate > baseRate + this.o.minRateIncrease / 2 && chance < HOLD_P_VALUE
      : warm &&
        total >= this.o.minCount &&
        errors >= this.o.minErrors &&
        rate > threshold &&
        chance < this.o.pValueThreshold
    return this.judge(k.lifecycle, nowUs, spike, key, () => {
      const classes: Record<string, number> = {}
      for (const b of k.interval)
        for (const [c, n] of Object.entries(b.classes)) classes[c] = (classes[c] ?? 0) + n
      const last = k.interval[k.interval.length - 1]!
      const lastRate = last.total > 0 ? last.errors / last.total : 0
      const [dominant, dominantCount] = Object.entries(classes).sort((a, b) => b[1] - a[1])[0] ?? [
        'unknown',
        0,
      ]
      return {
        severity: Math.max(rate, lastRate) >= 0.5 ? 'critical' : 'warning',
        fleet: k.fleet,
        instance: k.instance,
        model: k.model,
        stage: null,
        statistic: 'error_rate',
        observed: rate,
        baseline: baseRate,
        threshold,
        summary:
          `${k.instance}/${k.model}: ${errors} of ${total} requests failed (${fmtPct(rate)}, baseline ` +
          `${(baseRate * 100).toFixed(2)}%) over the last ${k.interval.length} s; mostly ${dominant} ` +
          `(${dominantCount} of ${errors})`,
        suspected_cause: `requests fail with ${dominant}`,
        suggested_action:
          `look at the engine logs of ${k.instance} for ${dominant}; check recent deploys, the model ` +
          'version and the clients sending the failing requests',
        exemplar_request_ids: k.interval.flatMap((b) => b.errorIds).slice(-3),
      }
    })
  }

  protected ownFieldsToJson(k: KeyState): Record<string, unknown> {
    return {
      interval: k.interval,
      baseTotals: k.baseTotals,
      baseErrors: k.baseErrors,
    }
  }

  protected ownFieldsFromJson(v: Record<string, unknown>): KeyState {
    const totals = nums(v.baseTotals)
    const errors = nums(v.baseErrors)
    const n = Math.min(totals.length, errors.length, this.o.baselineBuckets)
    return {
      open: emptyBucket(),
      interval: (Array.isArray(v.interval) ? v.interval : []).slice(-this.o.intervalBuckets).map(readBucket),
      baseTotals: totals.slice(totals.length - n),
      baseErrors: errors.slice(errors.length - n),
    }
  }
}

function readBucket(x: unknown): Bucket {
  if (typeof x !== 'object' || x === null) return emptyBucket()
  const b = x as Record<string, unknown>
  const classes: Record<string, number> = {}
  for (const [c, n] of entriesOfNumbers(b.classes)) classes[c] = n
  return {
    total: num(b.total, 0),
    errors: num(b.errors, 0),
    classes,
    errorIds: Array.isArray(b.errorIds) ? b.errorIds.filter((s): s is string => typeof s === 'string') : [],
  }
}

function entriesOfNumbers(x: unknown): [string, number][] {
  if (typeof x !== 'object' || x === null) return []
  return Object.entries(x).filter(
    (e): e is [string, number] => typeof e[1] === 'number' && Number.isFinite(e[1]),
  )
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0)
