/**
 * A window score of the Numenta Anomaly Benchmark's kind (Lavin & Ahmad 2015, NAB's `sweeper.py`),
 * for a detector that raises discrete detections on labelled series:
 *
 * - Each series has labelled anomaly windows (first and last timestamp, inclusive). A detection is
 *   a point of the series (the first point at or after the detection's time).
 * - The first detection inside a window scores tp · S(p) / S(−1), with p = −(right − i + 1) / width
 *   the detection's position in the window (−1 at its first point, → 0 at its last) and
 *   S(x) = 2 / (1 + e^{5x}) − 1 NAB's scaled sigmoid: the earlier, the closer to tp. Further
 *   detections in the same window neither add nor cost.
 * - A window without a detection costs fn.
 * - A detection outside every window costs fp · S(q) with q = (i − right of the previous window) /
 *   (its width − 1), i.e. almost nothing just after a window and the full fp from about half a window
 *   width on; a detection before the first window costs the full fp.
 * - Detections in the probation share (the first ⌊15 % · n⌋ points, at most 750, as NAB) are not
 *   scored, nor are windows that end inside it.
 * - Normalised over a corpus: 100 · (raw − null) / (perfect − null), where the null detector (never
 *   detects) scores −fn per window and the perfect one detects every window at its first point
 *   (+tp each). A detector that never alerts scores 0, a perfect one 100; below 0 is worse than
 *   silence.
 *
 * Weights: NAB's standard profile (tp 1.0, fp 0.11, fn 1.0) by default.
 */

export interface CostProfile {
  tp: number
  fp: number
  fn: number
}

export const STANDARD_PROFILE: CostProfile = Object.freeze({ tp: 1, fp: 0.11, fn: 1 })

/** Share of a series (and cap, in points) that is not scored, as NAB. */
export const PROBATION_SHARE = 0.15
export const PROBATION_MAX_POINTS = Math.floor(PROBATION_SHARE * 5000)

export interface LabelledWindow {
  /** first and last timestamp of the window, µs, inclusive */
  startUs: number
  endUs: number
}

export interface SeriesToScore {
  name: string
  /** the series' timestamps, µs, ascending */
  timestampsUs: readonly number[]
  windows: readonly LabelledWindow[]
  /** when the detector raised each detection, µs (any order; the same point twice counts once) */
  detectionsUs: readonly number[]
}

export type DetectionKind = 'tp' | 'fp' | 'redundant' | 'probation' | 'after-end'

export interface ScoredDetection {
  atUs: number
  /** index of the point it lands on */
  index: number
  kind: DetectionKind
  /** its weighted contribution (negative for false positives; 0 when redundant or unscored) */
  score: number
  /** the window it fell into, when it did */
  window?: number
}

export interface SeriesScore {
  name: string
  points: number
  probationPoints: number
  windows: number
  detected: number
  missed: number
  falsePositives: number
  /** Σ fp costs (≤ 0) */
  fpScore: number
  /** Σ tp rewards */
  tpScore: number
  raw: number
  nullRaw: number
  perfectRaw: number
  /** 100 · (raw − null) / (perfect − null) for this series alone; null without windows */
  normalized: number | null
  detections: ScoredDetection[]
}

export interface CorpusScore {
  profile: CostProfile
  series: SeriesScore[]
  raw: number
  nullRaw: number
  perfectRaw: number
  /** 100 · (raw − null) / (perfect − null); 0 = never alerts, 100 = perfect */
  normalized: number
  windows: number
  detected: number
  falsePositives: number
}

/** NAB's scaled sigmoid: 1 far before the end of a window, 0 at its end, → −1 long after it. */
export function scaledSigmoid(x: number): number {
  if (x > 3) return -1
  return 2 / (1 + Math.exp(5 * x)) - 1
}

export function probationPoints(points: number): number {
  return Math.min(Math.floor(PROBATION_SHARE * points), PROBATION_MAX_POINTS)
}

/** index of the first timestamp ≥ t (timestamps.length when none) */
function lowerBound(timestamps: readonly number[], t: number): number {
  let lo = 0
  let hi = timestamps.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (timestamps[mid]! < t) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** upper index (exclusive) of timestamps ≤ t */
function upperBound(timestamps: readonly number[], t: number): number {
  let lo = 0
  let hi = timestamps.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (timestamps[mid]! <= t) lo = mid + 1
    else hi = mid
  }
  return lo
}

export function scoreSeries(s: SeriesToScore, profile: CostProfile = STANDARD_PROFILE): SeriesScore {
  const ts = s.timestampsUs
  const n = ts.length
  const probation = probationPoints(n)
  // windows as [first, last] point indices; a window with no point of the series, or none after
  // the probation, is not scored (as NAB)
  const windows = s.windows
    .map((w) => ({ left: lowerBound(ts, w.startUs), right: upperBound(ts, w.endUs) - 1 }))
    .filter((w) => w.right >= w.left && w.right >= probation)
    .sort((a, b) => a.left - b.left)
  for (let k = 1; k < windows.length; k++) {
    if (windows[k]!.left <= windows[k - 1]!.right)
      throw new RangeError(`${s.name}: labelled windows ${k - 1} and ${k} overlap`)
  }
  const indices = [...new Set(s.detectionsUs.map((t) => lowerBound(ts, t)))].sort((a, b) => a - b)
  const best = new Array<number | undefined>(windows.length).fill(undefined)
  const detections: ScoredDetection[] = []
  let fpScore = 0
  let falsePositives = 0
  let w = 0 // the first window that does not end before the detection
  for (const i of indices) {
    const atUs = i < n ? ts[i]! : Number.POSITIVE_INFINITY
    if (i >= n) {
      detections.push({ atUs, index: i, kind: 'after-end', score: 0 })
      continue
    }
    while (w < windows.length && windows[w]!.right < i) w++
    const win = windows[w]
    const inside = win !== undefined && win.left <= i
    if (i < probation) {
      detections.push({ atUs, index: i, kind: 'probation', score: 0, ...(inside ? { window: w } : {}) })
      continue
    }
    if (inside) {
      const width = win.right - win.left + 1
      const position = -(win.right - i + 1) / width
      const score = (profile.tp * scaledSigmoid(position)) / scaledSigmoid(-1)
      if (best[w] === undefined) {
        best[w] = score
        detections.push({ atUs, index: i, kind: 'tp', score, window: w })
      } else detections.push({ atUs, index: i, kind: 'redundant', score: 0, window: w })
      continue
    }
    const prev = windows[w - 1]
    let unweighted = -1
    if (prev !== undefined) {
      const width = prev.right - prev.left + 1
      unweighted = scaledSigmoid(Math.abs(i - prev.right) / Math.max(1, width - 1))
    }
    const score = unweighted * profile.fp
    fpScore += score
    falsePositives++
    detections.push({ atUs, index: i, kind: 'fp', score })
  }
  const detected = best.filter((b) => b !== undefined).length
  const tpScore = best.reduce<number>((acc, b) => acc + (b ?? 0), 0)
  const missed = windows.length - detected
  const raw = tpScore + fpScore - missed * profile.fn
  const nullRaw = -windows.length * profile.fn
  const perfectRaw = windows.length * profile.tp
  return {
    name: s.name,
    points: n,
    probationPoints: probation,
    windows: windows.length,
    detected,
    missed,
    falsePositives,
    fpScore,
    tpScore,
    raw,
    nullRaw,
    perfectRaw,
    normalized: windows.length > 0 ? (100 * (raw - nullRaw)) / (perfectRaw - nullRaw) : null,
    detections,
  }
}

export function scoreCorpus(
  series: readonly SeriesToScore[],
  profile: CostProfile = STANDARD_PROFILE,
): CorpusScore {
  const scored = series.map((s) => scoreSeries(s, profile))
  const sum = (f: (s: SeriesScore) => number) => scored.reduce((acc, s) => acc + f(s), 0)
  const raw = sum((s) => s.raw)
  const nullRaw = sum((s) => s.nullRaw)
  const perfectRaw = sum((s) => s.perfectRaw)
  return {
    profile,
    series: scored,
    raw,
    nullRaw,
    perfectRaw,
    normalized: perfectRaw > nullRaw ? (100 * (raw - nullRaw)) / (perfectRaw - nullRaw) : 0,
    windows: sum((s) => s.windows),
    detected: sum((s) => s.detected),
    falsePositives: sum((s) => s.falsePositives),
  }
}

/** The perfect detector's detections: the first point of every window. */
export function perfectDetections(s: Omit<SeriesToScore, 'detectionsUs'>): number[] {
  return s.windows.map((w) => s.timestampsUs[lowerBound(s.timestampsUs, w.startUs)] ?? w.startUs)
}
