/**
 * Building blocks of the labelled corpus: calendars, daily shapes, noise of several shapes, and the
 * placement of events on a series. Time is epoch seconds (UTC is the series' local time).
 */
import type { Prng } from '../prng.ts'

/** A labelled anomaly window, in point indices of the full grid (inclusive). */
export interface DraftWindow {
  start: number
  end: number
  kind: string
}

/** Something that happens on the series and is normal (a planned deploy, a nightly job). */
export interface DraftEvent {
  at: number
  kind: string
}

/** A generated series before it is written out. */
export interface Draft {
  /** nominal sampling interval, s */
  intervalS: number
  /** timestamps, epoch seconds (ascending) */
  t: number[]
  v: number[]
  windows: DraftWindow[]
  normal: DraftEvent[]
  /** decimals written (the series' quantisation) */
  decimals: number
  /** one line: what the series is and what happens in it */
  description: string
}

/** 2026-01-05T00:00:00Z, a Monday. */
export const MONDAY_S = Date.UTC(2026, 0, 5) / 1000

export const hourOfDay = (t: number): number => (((t / 3600) % 24) + 24) % 24
/** 0 = Monday … 6 = Sunday */
export const dayOfWeek = (t: number): number => (Math.floor(t / 86_400) + 3) % 7
export const isWeekend = (t: number): boolean => dayOfWeek(t) >= 5

export type DailyShape = 'sine' | 'business' | 'two-peaks' | 'night-batch' | 'ramp'

/** Daily profile in [0, 1] at hour h. */
export function daily(shape: DailyShape, h: number, peakHour = 14): number {
  switch (shape) {
    case 'sine':
      return 0.5 + 0.5 * Math.cos((2 * Math.PI * (h - peakHour)) / 24)
    case 'business':
      return 1 / (1 + Math.exp(-(h - 8) * 1.5)) / (1 + Math.exp((h - 19) * 1.2))
    case 'two-peaks':
      return (
        0.15 + 0.85 * Math.max(Math.exp(-(((h - 9.5) / 1.6) ** 2)), 0.8 * Math.exp(-(((h - 20) / 2) ** 2)))
      )
    case 'night-batch':
      return 0.2 + 0.8 * Math.exp(-(((h - 3) / 1.2) ** 2))
    case 'ramp':
      return h / 24
  }
}

/** Regular timestamps from `startS`, every `intervalS`, with optional jitter (share of the interval). */
export function grid(p: Prng, n: number, intervalS: number, startS: number, jitter = 0): number[] {
  const t: number[] = []
  for (let i = 0; i < n; i++) {
    const j = jitter > 0 ? (p.next() - 0.5) * 2 * jitter * intervalS : 0
    t.push(Math.round((startS + i * intervalS + j) * 1000) / 1000)
  }
  for (let i = 1; i < n; i++) if (t[i]! <= t[i - 1]!) t[i] = t[i - 1]! + 0.001
  return t
}

/** A start time: a Monday plus a whole number of hours, so series do not all start at midnight. */
export function startTime(p: Prng): number {
  return MONDAY_S + p.int(0, 24 * 14 - 1) * 3600
}

export type NoiseKind = 'gauss' | 't3' | 'laplace' | 'ar1' | 'uniform'

/** A noise source of unit scale (its standard deviation or spread is about 1). */
export function noise(p: Prng, kind: NoiseKind, phi = 0.9): () => number {
  switch (kind) {
    case 'gauss':
      return () => p.normal()
    case 't3':
      return () => p.studentT(3) / Math.sqrt(3)
    case 'laplace':
      return () => p.laplace() / Math.SQRT2
    case 'uniform':
      return () => (p.next() - 0.5) * Math.sqrt(12)
    case 'ar1': {
      let x = 0
      const s = Math.sqrt(1 - phi * phi)
      return () => {
        x = phi * x + s * p.normal()
        return x
      }
    }
  }
}

/**
 * `count` non-overlapping spans of `length(i)` points, starting in [from·n, to·n), at least `gap`
 * points apart and apart from `avoid`. Returns start indices in ascending order (fewer when they do
 * not fit).
 */
export function placeSpans(
  p: Prng,
  n: number,
  count: number,
  length: (i: number) => number,
  opts: { from?: number; to?: number; gap?: number; avoid?: readonly { start: number; end: number }[] } = {},
): { start: number; end: number }[] {
  const from = Math.floor((opts.from ?? 0.25) * n)
  const to = Math.floor((opts.to ?? 0.95) * n)
  const gap = opts.gap ?? Math.floor(n / 12)
  const taken: { start: number; end: number }[] = [...(opts.avoid ?? [])]
  const out: { start: number; end: number }[] = []
  for (let i = 0; i < count; i++) {
    const len = Math.max(1, Math.round(length(i)))
    for (let attempt = 0; attempt < 200; attempt++) {
      const start = p.int(from, Math.max(from, to - len))
      const end = Math.min(n - 1, start + len - 1)
      if (taken.every((s) => end + gap < s.start || start > s.end + gap)) {
        out.push({ start, end })
        taken.push({ start, end })
        break
      }
    }
  }
  return out.sort((a, b) => a.start - b.start)
}

/** Points per duration at an interval (at least 1). */
export const pts = (seconds: number, intervalS: number): number =>
  Math.max(1, Math.round(seconds / intervalS))

export const clamp = (x: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, x))

/**
 * Removes `count` gaps (missing intervals) of `minS`–`maxS` from a draft, away from its windows
 * and their surroundings; window indices are remapped to the remaining points.
 */
export function withGaps(p: Prng, d: Draft, count: number, minS: number, maxS: number): Draft {
  const n = d.t.length
  const avoid = d.windows.map((w) => ({
    start: Math.max(0, w.start - pts(3600, d.intervalS)),
    end: w.end + pts(3600, d.intervalS),
  }))
  const gaps = placeSpans(p, n, count, () => pts(p.between(minS, maxS), d.intervalS), {
    from: 0.05,
    to: 0.97,
    gap: pts(3600, d.intervalS),
    avoid,
  })
  const drop = new Uint8Array(n)
  for (const g of gaps) for (let i = g.start; i <= g.end; i++) drop[i] = 1
  const newIndex = new Int32Array(n)
  const t: number[] = []
  const v: number[] = []
  for (let i = 0; i < n; i++) {
    newIndex[i] = t.length
    if (!drop[i]) {
      t.push(d.t[i]!)
      v.push(d.v[i]!)
    }
  }
  return {
    ...d,
    t,
    v,
    windows: d.windows.map((w) => ({ ...w, start: newIndex[w.start]!, end: newIndex[w.end]! })),
    normal: d.normal.map((e) => ({ ...e, at: newIndex[e.at]! })),
    description: `${d.description}; ${gaps.length} missing interval(s)`,
  }
}
