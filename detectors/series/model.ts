/**
 * A per-series model for any numeric series: what value to expect next, how far off the newest
 * value is, and how unusual that is for this series. Pure and event-time driven (timestamps are
 * passed in), so live detection, replay and tests give the same answers. Detectors build on it
 * (detectors/anomaly/ for any series; latency and throughput detectors can use it per key) and put
 * an alert policy on top (episodes.ts).
 *
 * Per point, in order:
 *
 * 1. **Expected value.** Candidate models each predict the point before learning it:
 *    - `level`: the median of the last `levelPoints` values;
 *    - `hour`, `day`, `week`: a seasonal profile of that wall-clock period (seasonal.ts). Each of
 *      the last three periods predicts its value at this phase, adjusted by the median recent
 *      difference between the series and that period (additive) or, for non-negative series, in a
 *      second variant by the median recent ratio (a weekend at 60 % of a weekday is 60 % at peak and
 *      at night); the expectation is the median of the three — phase to phase, one odd period is
 *      outvoted, and a level change is followed without overshooting when the periods' majority flips.
 *    A seasonal candidate exists once the sampling interval is known and the period holds at least
 *    12 samples. The model in use is the one whose recent residuals are tightest (robust spread of
 *    the last `spreadPoints` residuals, at least the noise floor); another must beat it by
 *    `seasonalGain` (20 %) to take over: seasonality is found from the data, noise does not flip it.
 * 2. **Deviation.** z = (residual − median residual) / σ. σ is the robust spread of recent residuals
 *    (1.4826·MAD, or 1.2533·mean |dev| when the MAD is 0, never below its own long-run level, so the
 *    window's sampling noise does not turn a 4σ value into 5σ), scaled by (expected / usual level)^β
 *    when the noise grows with the level (non-negative series; β fitted from the series' own
 *    residuals: 0 additive, ½ Poisson-like, 1 multiplicative), and never below the noise floor: the
 *    series' step (the resolution its values are written in, or the 10th percentile of its non-zero
 *    changes when coarser) and `relativeFloor` (1 %) of the expected value. For counts (non-negative
 *    integers with Poisson-like dispersion) z is never more extreme than a Poisson draw at the
 *    expected rate allows (tails.ts). Centring on the median residual absorbs the lag of a slow
 *    trend (a trend is a constant residual).
 *    The deviation D is the largest of: |z|; over runs of 5 and 20 points, |median z| · √n_eff /
 *    1.2533, n_eff discounting the run by the residuals' lag-1 autocorrelation (a slow wander is not
 *    twenty independent surprises); for sparse counts, rate tests over those runs (how many points
 *    are non-zero, and the quasi-Poisson sum); and for a reading stuck on one value for twice as long
 *    as any recent run of equal values, alertZ and more.
 * 3. **How unusual for this series.** An *excursion* is a run of points with D ≥ `excursionZ` (3),
 *    closed after 3 points below. Closed excursions are remembered for `historyPoints` with their
 *    direction and height in σ (largest single-point |z| and largest sustained deviation). The
 *    current deviation is *familiar* when at least `familiarAfter` (3) earlier excursions in the
 *    same direction were at least `similarShare` (75 %) as high — a spike that comes back at a
 *    regular interval stops being news after three times — spikes compared with spikes and sustained
 *    shifts with sustained shifts, so benign one-point outliers never make a level shift normal.
 * 4. **Score** in [0, 1]: D² / (D² + alertZ²) — 0.5 at D = alertZ (5) — halved when familiar, 0 in
 *    probation. A detector alerts when the score reaches 0.5.
 * 5. **Learning.** Every value is learned. Seasonal profiles learn at full weight (what recurs at a
 *    phase must become the expectation; a one-off is outvoted by the median of three periods). Inside
 *    an excursion the level and residual baselines learn values clipped to expected ± excursionZ·σ
 *    (reduced weight: a spike barely moves them); an excursion that lasts `levelPoints` points is
 *    *adopted*: the level restarts from the values since its onset, the new level is normal and the
 *    excursion ends. After a missing interval longer than the level baseline spans, the level and
 *    seasonal adjustments restart from the values after it (16 points unscored).
 *
 * **Probation** (no score, everything learned): the first `minPoints` (150) values, and then until
 * a day of event time has passed or `maxPoints` (1000) values are seen, whichever is first — the
 * series' length is unknown when streaming, so the share is defined on what has been seen; a day
 * shows one daily cycle; 1000 points bounds it for fast-sampled series.
 */
import { isRecord } from '../baseline.ts'
import { binomialTail, num, nums } from '../stats.ts'
import { COMPARED, SeasonalProfile } from './seasonal.ts'
import { SlidingWindow } from './sliding-window.ts'
import { poissonZ, zOfUpperTail } from './tails.ts'

export type ModelName = 'level' | 'hour' | 'day' | 'week'

export interface ProbationOptions {
  /** never fewer values than this before scoring */
  minPoints: number
  /** event time after which probation ends (once minPoints are seen), µs */
  spanUs: number
  /** probation ends after this many values even before spanUs */
  maxPoints: number
}

export interface SeriesModelOptions {
  /** values in the level baseline; also how long an excursion lasts before it is adopted */
  levelPoints?: number
  /** residuals in the spread baseline */
  spreadPoints?: number
  probation?: Partial<ProbationOptions>
  /** floor of σ as a share of the expected value */
  relativeFloor?: number
  /** deviation at which the score is 0.5 */
  alertZ?: number
  /** deviation that opens an excursion and keeps it open */
  excursionZ?: number
  /** earlier similar excursions after which a deviation is familiar */
  familiarAfter?: number
  /** an earlier excursion is similar when its height is at least this share of the current one */
  similarShare?: number
  /** candidate seasonal periods, seconds (hour, day, week) */
  seasonsS?: readonly number[]
  /** a model must have residuals this much tighter than the model in use to take over */
  seasonalGain?: number
  /** how long (points) excursions are remembered */
  historyPoints?: number
}

export type ResolvedSeriesModelOptions = Required<Omit<SeriesModelOptions, 'probation'>> & {
  probation: ProbationOptions
}

export const SERIES_MODEL_DEFAULTS: ResolvedSeriesModelOptions = Object.freeze({
  levelPoints: 64,
  spreadPoints: 256,
  probation: Object.freeze({ minPoints: 150, spanUs: 86_400e6, maxPoints: 1000 }),
  relativeFloor: 0.01,
  alertZ: 5,
  excursionZ: 3,
  familiarAfter: 3,
  similarShare: 0.75,
  seasonsS: Object.freeze([3600, 86_400, 604_800]),
  seasonalGain: 0.8,
  historyPoints: 8192,
}) as ResolvedSeriesModelOptions

const defined = <T extends object>(x: T | undefined): Partial<T> =>
  Object.fromEntries(Object.entries(x ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>

export function resolveSeriesModelOptions(opts: SeriesModelOptions = {}): ResolvedSeriesModelOptions {
  const o = {
    ...SERIES_MODEL_DEFAULTS,
    ...defined(opts),
    probation: { ...SERIES_MODEL_DEFAULTS.probation, ...defined(opts.probation) },
  }
  const positive = [
    'levelPoints',
    'spreadPoints',
    'alertZ',
    'excursionZ',
    'familiarAfter',
    'historyPoints',
  ] as const
  for (const k of positive) if (!(o[k] > 0)) throw new RangeError(`${k} must be > 0, got ${o[k]}`)
  if (!(o.excursionZ < o.alertZ)) throw new RangeError('excursionZ must be below alertZ')
  if (!(o.similarShare > 0 && o.similarShare <= 1)) throw new RangeError('similarShare must be in (0, 1]')
  if (!(o.seasonalGain > 0 && o.seasonalGain <= 1)) throw new RangeError('seasonalGain must be in (0, 1]')
  if (!(o.relativeFloor >= 0)) throw new RangeError('relativeFloor must be ≥ 0')
  return o
}

/** What the model says about one point. */
export interface Assessment {
  timestampUs: number
  value: number
  /** the value the model expected */
  expected: number
  /** σ the deviation was measured in (floors applied) */
  spread: number
  /** signed deviation of this point alone */
  z: number
  /** deviation with persistence, ≥ 0 */
  deviation: number
  direction: 1 | -1
  /** the deviation comes from a run of points rather than this point alone */
  sustained: boolean
  /** anomaly score in [0, 1]; ≥ 0.5 means alert-worthy */
  score: number
  probation: boolean
  /** earlier excursions in this direction at least `similarShare` as high */
  similarBefore: number
  familiar: boolean
  model: ModelName
  /** the excursion this point belongs to, if any */
  excursion?: { startUs: number; peak: number; points: number }
  /** the excursion lasted `levelPoints` points and became the new normal at this point */
  adopted: boolean
  /** the excursion this point was part of ended here */
  excursionEnded: boolean
}

/** running moments for the regression of ln|residual| on ln|expected| (heteroscedasticity) */
interface Moments {
  n: number
  mx: number
  my: number
  mxx: number
  mxy: number
}

const newMoments = (): Moments => ({ n: 0, mx: 0, my: 0, mxx: 0, mxy: 0 })
const momentsOf = (x: unknown): Moments =>
  isRecord(x)
    ? { n: num(x.n, 0), mx: num(x.mx, 0), my: num(x.my, 0), mxx: num(x.mxx, 0), mxy: num(x.mxy, 0) }
    : newMoments()

interface Candidate {
  name: ModelName
  /** seasonal candidates: the profile's period */
  periodUs?: number
  /** seasonal: adjust the profile by the median ratio (positive series) instead of the difference */
  multiplicative: boolean
  /**
   * seasonal adjustments against each compared period (k-th before the value's own period):
   * value − that period's value at the phase, or ln of their ratio
   */
  diffs?: SlidingWindow[]
  /** residuals divided by the noise scale at the time (scaleOf) */
  residuals: SlidingWindow
  hx: Moments
  /** robust spread of `residuals`, and the point it was computed at */
  spread: number
  spreadAt: number
  /** long-run mean |residual − centre| (normalised, capped at 5σ): a floor under `spread` */
  longAbs: number
  longN: number
}

interface Prediction {
  c: Candidate
  /** seasonal: the compared periods' values at this phase */
  bases?: (number | undefined)[]
  expected: number
  residual: number
  /** median residual, in the series' units */
  centre: number
  /** noise scale at this expected value relative to the usual level (1 when homoscedastic) */
  scale: number
  /** unfloored robust spread of recent residuals in the series' units (NaN while too few) */
  rawSpread: number
}

interface Excursion {
  startUs: number
  peak: number
  /** largest single-point and sustained deviation, in the series' units */
  spikeHeight: number
  shiftHeight: number
  direction: 1 | -1
  points: number
  calm: number
  /** values since the onset (for adoption), newest last */
  since: { t: number; v: number }[]
}

interface PastExcursion {
  /** the model in use when it ended: heights under another model are not comparable */
  model: ModelName
  spikeHeight: number
  shiftHeight: number
  direction: 1 | -1
  /** `seen` when it ended */
  at: number
}

/** run lengths (points) over which a sustained deviation is tested */
const PERSISTENCE_HORIZONS = [5, 20] as const
const LONGEST_RUN = 20
/** sd of the median of n standard normals ≈ 1.2533 / √n */
const MEDIAN_EFFICIENCY = 1.2533
const CALM_POINTS = 3
const MIN_SPREAD_POINTS = 8
const SPREAD_REFRESH = 8
/** recent comparisons a seasonal period needs before it predicts */
const MIN_ADJUSTMENTS = 16
/** a stuck reading: at least this many equal values, after at least STUCK_EVIDENCE changes of value */
const MIN_STUCK = 10
const STUCK_EVIDENCE = 64
/** points after a long missing interval that are learned but not scored */
const RESUME_POINTS = 16
/** memory of the long-run spread, and the share of it the window's spread may not go below */
const LONG_RUN_POINTS = 2048
const LONG_RUN_FLOOR = 1
const HISTORY_MAX = 256
const MAX_DECIMALS = 9

const SEASON_NAMES: Record<number, ModelName> = { 3600: 'hour', 86400: 'day', 604800: 'week' }
const isModelName = (x: unknown): x is ModelName =>
  x === 'level' || x === 'hour' || x === 'day' || x === 'week'

/** the step a number is written in: 1 for integers, 0.1 for one decimal, … (1e-9 at most) */
export function resolutionOf(v: number): number {
  let scale = 1
  for (let d = 0; d <= MAX_DECIMALS; d++) {
    const x = v * scale
    if (Math.abs(x - Math.round(x)) <= 1e-9 * Math.max(1, Math.abs(x))) return 1 / scale
    scale *= 10
  }
  return 10 ** -MAX_DECIMALS
}

const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x))

const scratch = new Float64Array(64)

/** median of xs[from…] (a few dozen values; sorted in a shared typed array, no allocation) */
function medianOfTail(xs: readonly number[], from: number): number {
  const n = xs.length - from
  for (let i = 0; i < n; i++) scratch[i] = xs[from + i]!
  const s = scratch.subarray(0, n).sort()
  const m = n >> 1
  return n % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

export class SeriesModel {
  readonly o: ResolvedSeriesModelOptions
  private seen = 0
  private firstUs = Number.NaN
  private lastUs = Number.NaN
  private lastValue = Number.NaN
  private readonly gaps = new SlidingWindow(33)
  private readonly changes = new SlidingWindow(64)
  private resolution = 1
  /** every value so far a non-negative integer */
  private integers = true
  /** every value so far ≥ 0: expectations are never negative, multiplicative seasonal variants apply */
  private nonNegative = true
  private readonly level: SlidingWindow
  private readonly profiles = new Map<number, SeasonalProfile>()
  private readonly candidates: Candidate[]
  private seasonsReady = false
  private chosen: Candidate
  private readonly recentZ: number[] = []
  /** count series: the recent values and the rates they were expected at (rate test over runs) */
  private readonly recentCounts: number[] = []
  private readonly recentRates: number[] = []
  /** count series: recent raw values (unclipped), for the dispersion index */
  private readonly rawCounts = new SlidingWindow(256)
  /** exponentially weighted lag-1 products and squares of clipped z, for the autocorrelation */
  private zLag = 0
  private zSq = 1
  private prevZ = 0
  private excursion: Excursion | undefined
  /** the current value repeated this many times in a row; lengths of the last completed runs */
  private repeats = 0
  private readonly runs = new SlidingWindow(128)
  private runsSeen = 0
  /** no score before this point (a restart after a long missing interval) */
  private resumeUntil = 0
  private history: PastExcursion[] = []

  constructor(opts: SeriesModelOptions = {}) {
    this.o = resolveSeriesModelOptions(opts)
    this.level = new SlidingWindow(this.o.levelPoints)
    this.chosen = this.newCandidate('level', false)
    this.candidates = [this.chosen]
  }

  get points(): number {
    return this.seen
  }

  /** median sampling interval, µs (NaN before two points) */
  get intervalUs(): number {
    return this.gaps.median()
  }

  get modelInUse(): ModelName {
    return this.chosen.name
  }

  /** Scores a value and learns it. Non-finite values are ignored (undefined). */
  observe(timestampUs: number, value: number): Assessment | undefined {
    if (!Number.isFinite(value) || !Number.isFinite(timestampUs)) return undefined
    this.noteValue(timestampUs, value)

    const bases = new Map<number, (number | undefined)[]>()
    for (const [period, profile] of this.profiles) bases.set(period, profile.previous(timestampUs))
    const predictions: Prediction[] = []
    for (const c of this.candidates) {
      const p = this.predict(c, value, bases)
      if (p) predictions.push(p)
    }
    const use = this.choose(predictions)
    const probation = this.inProbation(timestampUs) || this.seen < this.resumeUntil
    let z = 0
    let spread = Number.NaN
    let expected = value
    if (use) {
      expected = use.expected + use.centre
      spread = this.floored(use.rawSpread, expected)
      z = (use.residual - use.centre) / spread
      z = this.countLimited(z, value, expected)
    }
    const dev = this.deviationOf(z, this.excursion === undefined)
    const sparse = this.sparseRun(value, expected)
    if (sparse > dev.persistent) {
      dev.persistent = sparse
      dev.runMedian = Math.max(Math.abs(dev.runMedian), 1)
      dev.value = Math.max(dev.value, sparse)
    }
    const stuck = this.stuckDeviation()
    if (stuck > dev.value) {
      dev.persistent = stuck
      dev.runMedian = Math.max(Math.abs(dev.runMedian), 1)
      dev.value = stuck
    }
    const sustained = dev.persistent > Math.abs(z)
    const direction: 1 | -1 = (sustained ? dev.runMedian : z) < 0 ? -1 : 1
    const d = dev.value
    const height = sustained ? dev.persistent : Math.abs(z)

    // excursions and the memory of them
    if (d >= this.o.excursionZ) {
      if (!this.excursion)
        this.excursion = {
          startUs: timestampUs,
          peak: 0,
          spikeHeight: 0,
          shiftHeight: 0,
          direction,
          points: 0,
          calm: 0,
          since: [],
        }
      const e = this.excursion
      if (d > e.peak) {
        e.peak = d
        e.direction = direction
      }
      if (Number.isFinite(spread)) {
        e.spikeHeight = Math.max(e.spikeHeight, Math.abs(z))
        e.shiftHeight = Math.max(e.shiftHeight, dev.persistent)
      }
      e.calm = 0
    } else if (this.excursion) this.excursion.calm++
    const similarBefore = this.similar(height, direction, sustained)
    const familiar = similarBefore >= this.o.familiarAfter
    const e = this.excursion
    if (e) {
      e.points++
      e.since.push({ t: timestampUs, v: value })
      if (e.since.length > this.o.levelPoints) e.since.shift()
    }
    let score = 0
    if (!probation && use) {
      score = (d * d) / (d * d + this.o.alertZ * this.o.alertZ)
      if (familiar) score /= 2
    }
    const excursionView = e ? { startUs: e.startUs, peak: e.peak, points: e.points } : undefined

    // learning: full weight outside excursions, clipped inside, adoption after levelPoints
    const inExcursion = e !== undefined && e.calm === 0
    const lim = this.o.excursionZ * spread
    const learned = inExcursion && use ? clamp(value, expected - lim, expected + lim) : value
    for (const p of predictions) this.learn(p, value, inExcursion)
    // seasonal candidates that could not predict yet still compare this value with their periods
    for (const c of this.candidates)
      if (c.periodUs !== undefined && !predictions.some((p) => p.c === c))
        this.pushAdjustments(c, bases.get(c.periodUs) ?? [], learned)
    this.level.push(learned)
    for (const profile of this.profiles.values()) profile.add(timestampUs, value)
    let adopted = false
    let excursionEnded = false
    if (e && e.points >= this.o.levelPoints && e.calm === 0) {
      this.adopt(e)
      adopted = true
    }
    if (e && (adopted || e.calm >= CALM_POINTS)) {
      this.history.push({
        model: this.chosen.name,
        spikeHeight: e.spikeHeight,
        shiftHeight: e.shiftHeight,
        direction: e.direction,
        at: this.seen,
      })
      if (this.history.length > HISTORY_MAX) this.history.shift()
      this.excursion = undefined
      excursionEnded = true
    }
    const horizon = this.seen - this.o.historyPoints
    while (this.history.length && this.history[0]!.at < horizon) this.history.shift()

    return {
      timestampUs,
      value,
      expected,
      spread,
      z,
      deviation: d,
      direction,
      sustained,
      score,
      probation,
      similarBefore,
      familiar,
      model: use?.c.name ?? 'level',
      ...(excursionView ? { excursion: excursionView } : {}),
      adopted,
      excursionEnded,
    }
  }

  private noteValue(tUs: number, value: number): void {
    this.seen++
    if (Number.isNaN(this.firstUs)) this.firstUs = tUs
    const gap = tUs - this.lastUs
    if (this.gaps.length >= MIN_SPREAD_POINTS && gap > this.o.levelPoints * this.gaps.median()) this.resume()
    if (gap > 0) this.gaps.push(gap)
    this.resolution = this.seen === 1 ? resolutionOf(value) : Math.min(this.resolution, resolutionOf(value))
    if (this.seen > 1 && value !== this.lastValue) this.changes.push(Math.abs(value - this.lastValue))
    if (this.seen > 1 && value === this.lastValue) this.repeats++
    else {
      if (this.seen > 1) {
        this.runs.push(this.repeats + 1)
        this.runsSeen++
      }
      this.repeats = 0
    }
    this.integers &&= value >= 0 && Number.isInteger(value)
    if (value < 0 && this.nonNegative) {
      this.nonNegative = false
      const keep = this.candidates.filter((c) => !c.multiplicative)
      this.candidates.splice(0, this.candidates.length, ...keep)
      if (this.chosen.multiplicative) this.chosen = this.candidates[0]!
    }
    this.lastUs = Number.isNaN(this.lastUs) ? tUs : Math.max(tUs, this.lastUs)
    this.lastValue = value
    if (!this.seasonsReady && this.gaps.length >= 16) {
      this.seasonsReady = true
      const interval = this.gaps.median()
      for (const s of this.o.seasonsS) {
        const periodUs = s * 1e6
        if (periodUs < 12 * interval) continue
        this.profiles.set(periodUs, new SeasonalProfile(periodUs, interval))
        const name = SEASON_NAMES[s] ?? 'day'
        this.candidates.push(this.newCandidate(name, false, periodUs))
        if (this.nonNegative) this.candidates.push(this.newCandidate(name, true, periodUs))
      }
    }
  }

  /**
   * After a missing interval longer than the level baseline spans, the recent level and seasonal
   * adjustments are stale (the series moved on while unobserved): they restart from the values
   * after the gap, which are not scored for RESUME_POINTS points. What the series is like (its
   * spread, profiles, past excursions) is kept.
   */
  private resume(): void {
    this.level.clear()
    for (const c of this.candidates) for (const d of c.diffs ?? []) d.clear()
    this.recentZ.length = 0
    this.recentCounts.length = 0
    this.recentRates.length = 0
    this.excursion = undefined
    this.resumeUntil = this.seen + RESUME_POINTS
  }

  private newCandidate(name: ModelName, multiplicative: boolean, periodUs?: number): Candidate {
    return {
      name,
      multiplicative,
      ...(periodUs === undefined
        ? {}
        : { periodUs, diffs: Array.from({ length: COMPARED }, () => new SlidingWindow(this.o.levelPoints)) }),
      residuals: new SlidingWindow(this.o.spreadPoints),
      hx: newMoments(),
      spread: Number.NaN,
      spreadAt: 0,
      longAbs: 0,
      longN: 0,
    }
  }

  private inProbation(tUs: number): boolean {
    const p = this.o.probation
    if (this.seen <= p.minPoints) return true
    return tUs - this.firstUs < p.spanUs && this.seen <= p.maxPoints
  }

  /**
   * A count cannot be more surprising than Poisson noise at the expected rate says. The rate is the
   * expected value, or for sparse counts (expected below 1: a median of mostly zeros) the mean of
   * the recent values. Applies to non-negative integer series with Poisson-like dispersion
   * (variance ≥ half the mean: an integer gauge at 40 ± 3 is not a count).
   */
  private countLimited(z: number, value: number, expected: number): number {
    const rate = this.countRate(expected)
    if (rate === undefined || rate > 1000) return z
    const zc = poissonZ(Math.round(value), rate)
    return Math.sign(zc) === Math.sign(z) && Math.abs(zc) < Math.abs(z) ? zc : z
  }

  /**
   * The Poisson rate a count series is expected at: the expected value, or for sparse counts (expected
   * below 1: a median of mostly zeros) the mean of the recent values; undefined for series that are
   * not counts (non-negative integers with variance ≥ half the mean: an integer gauge at 40 ± 3 is
   * not a count).
   */
  private countRate(expected: number): number | undefined {
    if (!this.integers || this.level.length < MIN_SPREAD_POINTS) return undefined
    const mean = this.level.mean()
    if (this.level.variance() < 0.5 * mean) return undefined
    return expected >= 1 ? expected : Math.max(expected, mean, 0.5 / this.o.levelPoints)
  }

  /**
   * Rate tests for sparse counts (expected rate below 1 per point) over the last 5 and 20 points:
   * - occupancy: how many points are non-zero, against the binomial with each point's
   *   P(count > 0) = 1 − e^−rate — a burst (many events in one point, normal for such series) does
   *   not look like a sustained rise;
   * - the sum against the summed rates, quasi-Poisson (counts and rates divided by the series'
   *   dispersion index, variance / mean of its recent raw counts, ≥ 1): bursty series are judged
   *   by their own spread.
   * An error counter at 0.4/min that shows 2–4 errors a minute for twenty minutes is far off,
   * though no single minute is. Returns the z of the most improbable run (≥ 0), 0 for other series.
   */
  private sparseRun(value: number, expected: number): number {
    const rate = this.countRate(expected)
    if (rate === undefined) {
      this.recentCounts.length = 0
      this.recentRates.length = 0
      return 0
    }
    this.rawCounts.push(value)
    if (rate >= 1) {
      this.recentCounts.length = 0
      this.recentRates.length = 0
      return 0
    }
    this.recentCounts.push(value)
    this.recentRates.push(rate)
    if (this.recentCounts.length > LONGEST_RUN) {
      this.recentCounts.shift()
      this.recentRates.shift()
    }
    const mean = this.rawCounts.mean()
    const dispersion = Math.max(1, mean > 0 ? this.rawCounts.variance() / mean : 1)
    const n = this.recentCounts.length
    let best = 0
    for (const h of PERSISTENCE_HORIZONS) {
      if (h > n) break
      let nonZero = 0
      let p = 0
      let sum = 0
      let expectedSum = 0
      for (let i = n - h; i < n; i++) {
        const c = this.recentCounts[i]!
        if (c > 0) nonZero++
        sum += c
        expectedSum += this.recentRates[i]!
        p += 1 - Math.exp(-this.recentRates[i]!)
      }
      const tail = binomialTail(nonZero, h, p / h)
      if (tail === 0) best = Math.max(best, 40)
      else if (tail < 0.5) best = Math.max(best, zOfUpperTail(Math.log(tail)))
      best = Math.max(best, poissonZ(Math.round(sum / dispersion), expectedSum / dispersion))
    }
    return best
  }

  private predict(
    c: Candidate,
    value: number,
    bases: Map<number, (number | undefined)[]>,
  ): Prediction | undefined {
    let expected: number
    let previous: (number | undefined)[] | undefined
    if (c.periodUs !== undefined) {
      // each compared period predicts, adjusted by how recent values compare with that period;
      // the median of their predictions is the expectation (a level change is followed without
      // the overshoot a median-of-periods profile shows when its majority flips)
      previous = bases.get(c.periodUs)
      const predictions: number[] = []
      previous?.forEach((b, k) => {
        const d = c.diffs![k]!
        // a period predicts once it has been compared with enough recent values
        if (b !== undefined && d.length >= MIN_ADJUSTMENTS) predictions.push(this.adjusted(c, b, d.median()))
      })
      if (predictions.length === 0) return undefined
      expected = medianOfTail(predictions, 0)
      if (this.nonNegative) expected = Math.max(0, expected)
    } else {
      if (this.level.length === 0) return undefined
      expected = this.level.median()
    }
    const r = c.residuals
    const scale = this.scaleOf(c, expected)
    const enough = r.length >= MIN_SPREAD_POINTS
    const centre = enough ? r.median() : 0
    let rawSpread = Number.NaN
    if (enough) {
      // the spread moves slowly: models not in use refresh it every few points (it only ranks them)
      if (c === this.chosen || this.seen - c.spreadAt >= SPREAD_REFRESH || !Number.isFinite(c.spread)) {
        c.spread = 1.4826 * r.mad(centre)
        if (c.spread === 0) c.spread = 1.2533 * r.meanAbsDeviation(centre)
        // the window's MAD has a relative standard error of ~7.5 % (256 residuals): a dip of two
        // of those turns Gaussian noise at 4.3σ into an alert, so it never goes below the long run
        if (c.longN >= this.o.spreadPoints) c.spread = Math.max(c.spread, LONG_RUN_FLOOR * 1.2533 * c.longAbs)
        c.spreadAt = this.seen
      }
      rawSpread = c.spread * scale
    }
    return {
      c,
      bases: previous,
      expected,
      residual: value - expected,
      centre: centre * scale,
      scale,
      rawSpread,
    }
  }

  /**
   * Noise that grows with the level (traffic at peak vs at night, latency under load): the residual
   * scale is (|expected| / usual level)^β, β the slope of ln|residual| on ln|expected| fitted on the
   * series' own normal points (0 = additive noise, ½ = Poisson-like, 1 = multiplicative), used once
   * the expected level has varied by more than ~10 % and the slope is clear of noise.
   */
  private scaleOf(c: Candidate, expected: number): number {
    const m = c.hx
    // a level is a magnitude only for series that are never negative
    if (!this.nonNegative || m.n < this.o.spreadPoints) return 1
    const varX = m.mxx - m.mx * m.mx
    if (varX < 0.01) return 1
    const beta = clamp((m.mxy - m.mx * m.my) / varX, 0, 1)
    if (beta < 0.1) return 1
    return Math.exp(beta * (Math.log(Math.max(Math.abs(expected), this.resolution)) - m.mx))
  }

  /** the prediction of the model in use, switching to a tighter one when it is clearly better */
  private choose(predictions: Prediction[]): Prediction | undefined {
    // ranked by spread at each model's usual level, not at this point's expectation; spreads under
    // the noise floor are all as good (a flat series does not flip between models on rounding)
    const mature = (p: Prediction) =>
      p.c.residuals.length >= this.o.spreadPoints / 2 && Number.isFinite(p.c.spread)
    const ranked = (p: Prediction) => Math.max(p.c.spread, this.noiseFloor(p.expected))
    let current = predictions.find((p) => p.c === this.chosen)
    const chosenPredicted = current !== undefined
    if (!current || !mature(current))
      current = predictions.find((p) => p.c.name === 'level') ?? predictions[0]
    if (!current) return undefined
    for (const p of predictions) {
      if (p !== current && mature(p) && mature(current) && ranked(p) < this.o.seasonalGain * ranked(current))
        current = p
    }
    // a seasonal model whose bins are empty at this point (a gap last period) keeps its place
    if (chosenPredicted || current.c.name !== 'level') this.chosen = current.c
    return current
  }

  private floored(rawSpread: number, expected: number): number {
    return Math.max(Number.isFinite(rawSpread) ? rawSpread : 0, this.noiseFloor(expected))
  }

  /**
   * The least spread a deviation is measured in: the series' step (the resolution its values are
   * written in, or the 10th percentile of its non-zero changes when those are coarser) and
   * `relativeFloor` of the expected value. A one-step change on a flat series is 1σ, never an
   * infinite surprise; a persistent one stays below the alert level too.
   */
  private noiseFloor(expected: number): number {
    const quantum = this.changes.length >= MIN_SPREAD_POINTS ? this.changes.quantile(0.1) : 0
    return Math.max(this.resolution, quantum, this.o.relativeFloor * Math.abs(expected), 1e-12)
  }

  /**
   * A stuck reading: the same value repeated for twice as long as any run of equal values among the
   * last 128 the series completed (and at least MIN_STUCK points), once it has changed value at
   * least STUCK_EVIDENCE times. A noisy sensor that freezes, a counter that stops; a flat or mostly
   * constant series never qualifies (its own runs are long). The deviation is alertZ at twice the
   * longest run and grows with the run.
   */
  private stuckDeviation(): number {
    if (this.runsSeen < STUCK_EVIDENCE) return 0
    const run = this.repeats + 1
    const limit = Math.max(2 * this.runs.quantile(1), MIN_STUCK)
    return run >= limit ? (this.o.alertZ * run) / limit : 0
  }

  /**
   * D = max(|z|, max over the horizons h of |median of the last h z| · √n_eff / 1.2533), with
   * n_eff = h(1 − ρ)/(1 + ρ) for the lag-1 autocorrelation ρ of the residuals, learned outside
   * excursions only (a break's own run of same-side values must not teach that runs are normal).
   */
  private deviationOf(
    z: number,
    learnCorrelation: boolean,
  ): { value: number; persistent: number; runMedian: number } {
    const clipped = clamp(z, -3, 3)
    if (learnCorrelation) {
      const a = 1 / this.o.spreadPoints
      this.zLag = (1 - a) * this.zLag + a * clipped * this.prevZ
      this.zSq = (1 - a) * this.zSq + a * clipped * clipped
    }
    this.prevZ = clipped
    this.recentZ.push(z)
    if (this.recentZ.length > LONGEST_RUN) this.recentZ.shift()
    const rho = clamp(this.zSq > 0 ? this.zLag / this.zSq : 0, 0, 0.99)
    let persistent = 0
    let runMedian = 0
    const n = this.recentZ.length
    for (const h of PERSISTENCE_HORIZONS) {
      if (h > n) break
      const m = medianOfTail(this.recentZ, n - h)
      const nEff = clamp((h * (1 - rho)) / (1 + rho), 1, h)
      const p = (Math.abs(m) * Math.sqrt(nEff)) / MEDIAN_EFFICIENCY
      if (p > persistent) {
        persistent = p
        runMedian = m
      }
    }
    return { value: Math.max(Math.abs(z), persistent), persistent, runMedian }
  }

  /** earlier excursions in `direction` at least similarShare as high (spikes vs spikes, shifts vs shifts) */
  private similar(height: number, direction: 1 | -1, sustained: boolean): number {
    const bar = this.o.similarShare * height
    let n = 0
    for (const h of this.history)
      if (h.direction === direction && (sustained ? h.shiftHeight : h.spikeHeight) >= bar) n++
    return n
  }

  private learn(p: Prediction, value: number, clip: boolean): void {
    const c = p.c
    let residual = p.residual
    if (clip && Number.isFinite(p.rawSpread)) {
      const lim = this.o.excursionZ * this.floored(p.rawSpread, p.expected)
      residual = clamp(residual, p.centre - lim, p.centre + lim)
    } else {
      const m = c.hx
      const a = Math.max(1 / (m.n + 1), 1 / (4 * this.o.spreadPoints))
      const x = Math.log(Math.max(Math.abs(p.expected), this.resolution))
      const y = Math.log(Math.max(Math.abs(p.residual - p.centre), this.resolution / 2))
      m.n++
      m.mx += a * (x - m.mx)
      m.my += a * (y - m.my)
      m.mxx += a * (x * x - m.mxx)
      m.mxy += a * (x * y - m.mxy)
    }
    c.residuals.push(residual / p.scale)
    {
      // every point, capped: leaving excursions out would bias it low
      const dev = Math.abs(p.residual - p.centre) / p.scale
      const cap = Number.isFinite(c.spread) ? 5 * c.spread : dev
      c.longN++
      c.longAbs += (Math.min(dev, cap) - c.longAbs) / Math.min(c.longN, LONG_RUN_POINTS)
    }
    if (p.bases) this.pushAdjustments(c, p.bases, clip ? p.expected + residual : value)
  }

  /** a compared period's value adjusted: additive, or by a ratio of (value + resolution) */
  private adjusted(c: Candidate, base: number, adjust: number): number {
    // ratios of (value + resolution): a count of 0 against 3 is a ratio, not a division by zero
    const eps = this.resolution
    return c.multiplicative ? (Math.max(0, base) + eps) * Math.exp(adjust) - eps : base + adjust
  }

  private pushAdjustments(c: Candidate, bases: readonly (number | undefined)[], v: number): void {
    const eps = this.resolution
    bases.forEach((b, k) => {
      const d = c.diffs![k]!
      // a gap in the comparison (no data at this phase then) makes the older adjustments stale
      if (b === undefined) d.clear()
      else d.push(c.multiplicative ? Math.log((Math.max(0, v) + eps) / (Math.max(0, b) + eps)) : v - b)
    })
  }

  /**
   * The excursion is the new normal: the level and the seasonal adjustments restart from the
   * values since its onset, and the clipped residuals it left in the spread baselines are dropped.
   */
  private adopt(e: Excursion): void {
    this.level.clear()
    for (const x of e.since) this.level.push(x.v)
    for (const c of this.candidates) {
      c.residuals.dropNewest(Math.min(e.points, c.residuals.length - MIN_SPREAD_POINTS))
      if (c.periodUs === undefined) continue
      const profile = this.profiles.get(c.periodUs)!
      for (const d of c.diffs!) d.clear()
      for (const x of e.since) this.pushAdjustments(c, profile.previous(x.t), x.v)
    }
    this.recentZ.length = 0
  }

  toState(): Record<string, unknown> {
    return {
      version: 1,
      seen: this.seen,
      firstUs: this.firstUs,
      lastUs: this.lastUs,
      lastValue: this.lastValue,
      gaps: this.gaps.values(),
      changes: this.changes.values(),
      resolution: this.resolution,
      integers: this.integers,
      nonNegative: this.nonNegative,
      level: this.level.values(),
      chosen: this.candidates.indexOf(this.chosen),
      recentZ: this.recentZ,
      zLag: this.zLag,
      zSq: this.zSq,
      prevZ: this.prevZ,
      excursion: this.excursion ?? null,
      resumeUntil: this.resumeUntil,
      repeats: this.repeats,
      runs: this.runs.values(),
      runsSeen: this.runsSeen,
      recentCounts: this.recentCounts,
      recentRates: this.recentRates,
      rawCounts: this.rawCounts.values(),
      history: this.history,
      profiles: [...this.profiles.values()].map((p) => p.toState()),
      candidates: this.candidates.map((c) => ({
        name: c.name,
        periodUs: c.periodUs ?? null,
        multiplicative: c.multiplicative,
        diffs: c.diffs?.map((d) => d.values()) ?? null,
        residuals: c.residuals.values(),
        hx: c.hx,
        longAbs: c.longAbs,
        longN: c.longN,
      })),
    }
  }

  /** Restores what toState wrote (under the options given here); what does not read is relearned. */
  static fromState(state: unknown, opts: SeriesModelOptions = {}): SeriesModel {
    const m = new SeriesModel(opts)
    if (!isRecord(state) || state.version !== 1) return m
    m.seen = num(state.seen, 0)
    m.firstUs = num(state.firstUs, Number.NaN)
    m.lastUs = num(state.lastUs, Number.NaN)
    m.lastValue = num(state.lastValue, Number.NaN)
    for (const g of nums(state.gaps)) m.gaps.push(g)
    for (const c of nums(state.changes)) m.changes.push(c)
    m.resolution = num(state.resolution, 1)
    m.integers = state.integers !== false
    m.nonNegative = state.nonNegative !== false
    for (const v of nums(state.level).slice(-m.o.levelPoints)) m.level.push(v)
    m.recentZ.push(...nums(state.recentZ).slice(-LONGEST_RUN))
    m.zLag = num(state.zLag, 0)
    m.zSq = num(state.zSq, 1)
    m.prevZ = num(state.prevZ, 0)
    m.resumeUntil = num(state.resumeUntil, 0)
    m.repeats = num(state.repeats, 0)
    for (const r of nums(state.runs)) m.runs.push(r)
    m.runsSeen = num(state.runsSeen, 0)
    const counts = nums(state.recentCounts).slice(-LONGEST_RUN)
    const rates = nums(state.recentRates).slice(-LONGEST_RUN)
    if (counts.length === rates.length) {
      m.recentCounts.push(...counts)
      m.recentRates.push(...rates)
    }
    for (const c of nums(state.rawCounts)) m.rawCounts.push(c)
    if (isRecord(state.excursion)) {
      const e = state.excursion
      m.excursion = {
        startUs: num(e.startUs, 0),
        peak: num(e.peak, 0),
        spikeHeight: num(e.spikeHeight, 0),
        shiftHeight: num(e.shiftHeight, 0),
        direction: e.direction === -1 ? -1 : 1,
        points: num(e.points, 0),
        calm: num(e.calm, 0),
        since: Array.isArray(e.since)
          ? e.since.filter(isRecord).map((x) => ({ t: num(x.t, 0), v: num(x.v, 0) }))
          : [],
      }
    }
    if (Array.isArray(state.history))
      m.history = state.history.filter(isRecord).map((h) => ({
        model: isModelName(h.model) ? h.model : 'level',
        spikeHeight: num(h.spikeHeight, 0),
        shiftHeight: num(h.shiftHeight, 0),
        direction: h.direction === -1 ? -1 : 1,
        at: num(h.at, 0),
      }))
    const interval = m.gaps.median()
    if (Number.isFinite(interval) && Array.isArray(state.profiles)) {
      for (const raw of state.profiles) {
        const periodUs = isRecord(raw) ? num(raw.periodUs, 0) : 0
        if (periodUs > 0) m.profiles.set(periodUs, SeasonalProfile.fromState(raw, periodUs, interval))
      }
    }
    if (Array.isArray(state.candidates)) {
      const restored: Candidate[] = []
      for (const raw of state.candidates) {
        if (!isRecord(raw) || !isModelName(raw.name)) continue
        const periodUs = typeof raw.periodUs === 'number' ? raw.periodUs : undefined
        if (periodUs !== undefined && !m.profiles.has(periodUs)) continue
        const c = m.newCandidate(raw.name, raw.multiplicative === true, periodUs)
        for (const r of nums(raw.residuals).slice(-m.o.spreadPoints)) c.residuals.push(r)
        if (c.diffs && Array.isArray(raw.diffs))
          raw.diffs.forEach((d, k) => {
            for (const x of nums(d).slice(-m.o.levelPoints)) c.diffs![k]?.push(x)
          })
        c.hx = momentsOf(raw.hx)
        c.longAbs = num(raw.longAbs, 0)
        c.longN = num(raw.longN, 0)
        restored.push(c)
      }
      if (restored[0]?.name === 'level') {
        m.candidates.splice(0, m.candidates.length, ...restored)
        const chosen = typeof state.chosen === 'number' ? restored[state.chosen] : undefined
        m.chosen = chosen ?? restored[0]
      }
    }
    m.seasonsReady = m.profiles.size > 0 || m.gaps.length >= 16
    return m
  }
}
