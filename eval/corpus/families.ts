/**
 * The generators of the labelled corpus, one per family of real-world metric. Each draws its own
 * parameters (sampling interval, length, level, noise shape, daily shape, which failures happen)
 * from the PRNG, so the instances of one family differ. Windows are labelled as an on-call
 * engineer would: from the onset to the end of the abnormal behaviour, or, for a change that stays,
 * the first stretch of it that needs a response. Planned steps and recurring jobs are normal.
 *
 * The generators are written against the grain of a seasonal robust-z detector: heavy tails,
 * multiplicative and heteroscedastic noise, benign single-point outliers, bimodal regimes, integer
 * and coarse quantisation, clipping at 0 and 100 %, recurring jobs at periods that are not a day,
 * trends, irregular timestamps and missing intervals.
 */
import type { Prng } from '../prng.ts'
import {
  clamp,
  type DailyShape,
  type Draft,
  type DraftEvent,
  type DraftWindow,
  daily,
  grid,
  hourOfDay,
  isWeekend,
  noise,
  placeSpans,
  pts,
  startTime,
  withGaps,
} from './shapes.ts'

/** a series of the family from its PRNG; `instance` (0, 1, …) lets a family vary deliberately */
export type Family = (p: Prng, instance: number) => Draft

const HOUR = 3600
const DAY = 86_400

/** `days` of points every `intervalS` from a random start: the count and the timestamps */
function overDays(p: Prng, days: number, intervalS: number): { n: number; t: number[] } {
  const n = Math.round(days * (DAY / intervalS))
  return { n, t: grid(p, n, intervalS, startTime(p)) }
}

/** the window of a change that stays: its first `extentS`, at least 10 points */
function lasting(start: number, n: number, extentS: number, intervalS: number, kind: string): DraftWindow {
  return { start, end: Math.min(n - 1, start + Math.max(10, pts(extentS, intervalS))), kind }
}

/** the window of a temporary anomaly: its span plus a short tail (a fifth of it, ≥ 2 points) */
function temporary(span: { start: number; end: number }, n: number, kind: string): DraftWindow {
  const tail = Math.max(2, Math.round((span.end - span.start + 1) / 5))
  return { start: span.start, end: Math.min(n - 1, span.end + tail), kind }
}

/** request counts per interval: daily and weekly cycle, over-dispersed Poisson; outages and surges */
export const traffic: Family = (p) => {
  const intervalS = p.pick([60, 300])
  const { n, t } = overDays(p, intervalS === 60 ? p.int(4, 6) : p.int(10, 16), intervalS)
  const base = p.between(30, 800) * (intervalS / 300)
  const shape = p.pick<DailyShape>(['business', 'sine', 'two-peaks'])
  const weekend = p.between(0.35, 0.9)
  const dispersion = p.between(0.05, 0.25)
  const kinds = ['outage', 'surge', 'partial-drop'] as const
  const spans = placeSpans(p, n, p.int(1, 2), () => pts(p.between(0.5, 4) * HOUR, intervalS))
  const events = spans.map((s) => ({ ...s, kind: p.pick(kinds), factor: 1 }))
  for (const e of events) {
    if (e.kind === 'outage') {
      e.end = Math.min(e.end, e.start + pts(p.between(15, 60) * 60, intervalS))
      e.factor = p.between(0, 0.05)
    } else if (e.kind === 'surge') e.factor = p.between(1.8, 3)
    else e.factor = p.between(0.35, 0.6)
  }
  const v = t.map((ts, i) => {
    let rate = base * (0.25 + 0.75 * daily(shape, hourOfDay(ts))) * (isWeekend(ts) ? weekend : 1)
    for (const e of events) if (i >= e.start && i <= e.end) rate *= e.factor
    return p.poisson(rate * p.jitter(dispersion))
  })
  const d: Draft = {
    intervalS,
    t,
    v,
    windows: events.map((e) => temporary(e, n, e.kind)),
    normal: [],
    decimals: 0,
    description: `requests per ${intervalS / 60} min, ${shape} day, weekend ×${weekend.toFixed(2)}, over-dispersed counts`,
  }
  return p.chance(0.4) ? withGaps(p, d, p.int(1, 2), 10 * 60, 3 * HOUR) : d
}

/** p95 latency: multiplicative heavy-ish noise, benign outliers, planned deploy steps; regressions */
export const latency: Family = (p) => {
  const intervalS = p.pick([30, 60])
  const { n, t } = overDays(p, p.between(2.5, 5), intervalS)
  const base = p.between(20, 400)
  const load = p.between(0.05, 0.4)
  const sigma = p.between(0.04, 0.2)
  const shape = p.pick<DailyShape>(['business', 'sine'])
  const kinds = ['regression', 'spike-cluster', 'timeouts'] as const
  const spans = placeSpans(p, n, p.int(1, 2), () => pts(p.between(5, 40) * 60, intervalS))
  const windows: DraftWindow[] = []
  const effects: ((i: number, v: number) => number)[] = []
  for (const s of spans) {
    const kind = p.pick(kinds)
    if (kind === 'regression') {
      const f = p.between(1.4, 2.5)
      effects.push((i, v) => (i >= s.start ? v * f : v))
      windows.push(lasting(s.start, n, HOUR, intervalS, kind))
      break // a regression stays: nothing after it is labelled
    }
    if (kind === 'spike-cluster') {
      const f = p.between(3, 6)
      effects.push((i, v) => (i >= s.start && i <= s.end && p.chance(0.6) ? v * f : v))
    } else {
      const cap = p.pick([5000, 10_000, 30_000])
      effects.push((i, v) => (i >= s.start && i <= s.end ? cap * (1 - 0.02 * p.next()) : v))
    }
    windows.push(temporary(s, n, kind))
  }
  // planned deploys: small steps, at least 3 h away from any anomaly
  const deploys = placeSpans(p, n, p.int(1, 2), () => 1, {
    from: 0.2,
    avoid: windows.map((w) => ({ start: w.start - pts(3 * HOUR, intervalS), end: w.end })),
    gap: pts(6 * HOUR, intervalS),
  })
  const steps = deploys.map((d) => ({ at: d.start, f: 1 + p.pick([-1, 1]) * p.between(0.03, 0.12) }))
  const normal: DraftEvent[] = steps.map((s) => ({ at: s.at, kind: 'planned-deploy' }))
  const v = t.map((ts, i) => {
    let x = base * (1 + load * daily(shape, hourOfDay(ts))) * Math.exp(sigma * p.normal())
    for (const s of steps) if (i >= s.at) x *= s.f
    if (p.chance(0.003)) x *= p.between(1.5, 3) // benign slow request in the percentile
    for (const e of effects) x = e(i, x)
    return x
  })
  return {
    intervalS,
    t,
    v,
    windows,
    normal,
    decimals: 1,
    description: `p95 latency ms every ${intervalS} s, log-normal noise σ ${sigma.toFixed(2)}, ${steps.length} planned deploy step(s)`,
  }
}

/** CPU %: daily cycle, a nightly batch job every day (normal), clipped to [0, 100]; saturation */
export const cpu: Family = (p) => {
  const intervalS = 300
  const { n, t } = overDays(p, p.int(10, 14), intervalS)
  const base = p.between(8, 45)
  const amp = p.between(5, 30)
  const sd = p.between(0.5, 3)
  const jobHour = p.between(1, 4)
  const jobLen = p.between(0.25, 0.6)
  const jobAdd = p.between(20, 45)
  const decimals = p.pick([0, 1])
  const kinds = ['saturation', 'runaway', 'dead'] as const
  const spans = placeSpans(p, n, p.int(1, 2), () => pts(p.between(1, 5) * HOUR, intervalS))
  const events = spans.map((s) => ({ ...s, kind: p.pick(kinds) }))
  const v = t.map((ts, i) => {
    const h = hourOfDay(ts)
    let x = base + amp * daily('business', h) + sd * p.normal()
    if (h >= jobHour && h < jobHour + jobLen) x += jobAdd * (0.9 + 0.2 * p.next())
    for (const e of events) {
      if (i < e.start || i > e.end) continue
      if (e.kind === 'saturation') x = 100 - Math.abs(0.3 * p.normal())
      else if (e.kind === 'runaway')
        x = Math.max(x, Math.min(97, x + ((i - e.start) / (e.end - e.start + 1)) * 90))
      else x = 0.5 + 0.3 * p.next()
    }
    return clamp(x, 0, 100)
  })
  return {
    intervalS,
    t,
    v,
    windows: events.map((e) => temporary(e, n, e.kind)),
    normal: [{ at: 0, kind: `nightly-job-${jobHour.toFixed(1)}h` }],
    decimals,
    description: `CPU % every 5 min, business-hours cycle, nightly job +${jobAdd.toFixed(0)} % at ${jobHour.toFixed(1)} h`,
  }
}

/** process memory MB: GC sawtooth (normal); a slow leak up to an OOM restart, or a step */
export const memory: Family = (p) => {
  const intervalS = 60
  const { n, t } = overDays(p, p.between(2, 4), intervalS)
  const floor0 = p.between(300, 3000)
  const growth = p.between(0.5, 4) // MB per minute between collections
  const headroom = floor0 * p.between(0.1, 0.3)
  const kind = p.pick(['leak', 'step'] as const)
  const onset = p.int(Math.floor(0.3 * n), Math.floor(0.7 * n))
  const leakRate = p.between(0.3, 1.5) // MB per minute on the floor
  const step = floor0 * p.between(0.3, 0.6)
  const oomAt = floor0 * 2.2
  let heap = 0
  let leaked = 0
  let restartAt = -1
  const v = t.map((_, i) => {
    heap += growth * (0.6 + 0.8 * p.next())
    if (heap > headroom) heap = p.between(0, 0.1) * headroom // a collection
    if (kind === 'leak' && i >= onset && restartAt < 0) leaked += leakRate
    let x = floor0 + heap + leaked + (kind === 'step' && i >= onset ? step : 0)
    if (kind === 'leak' && restartAt < 0 && x > oomAt) {
      restartAt = i
      leaked = 0
      heap = 0
      x = floor0
    }
    return Math.round(x + p.normal())
  })
  const windows =
    kind === 'leak'
      ? [{ start: onset, end: Math.min(n - 1, (restartAt < 0 ? n - 1 : restartAt) + 5), kind }]
      : [lasting(onset, n, HOUR, intervalS, kind)]
  return {
    intervalS,
    t,
    v,
    windows,
    normal: [{ at: 0, kind: 'gc-sawtooth' }],
    decimals: 0,
    description: `RSS MB every minute, GC sawtooth, ${kind === 'leak' ? `leak ${leakRate.toFixed(2)} MB/min to an OOM restart` : 'a step up'}`,
  }
}

/** disk used %: a slow normal trend and a weekly cleanup (normal); a fast fill or a wipe */
export const disk: Family = (p) => {
  const intervalS = 900
  const n = Math.round(p.int(30, 50) * (DAY / intervalS))
  const start = startTime(p)
  const t = grid(p, n, intervalS, start)
  const trendPerDay = p.between(0.05, 0.4)
  const cleanup = p.between(2, 6)
  const kind = p.pick(['fast-fill', 'wipe'] as const)
  const span = placeSpans(p, n, 1, () => pts(p.between(2, 8) * HOUR, intervalS))[0]!
  const fillPerPoint = p.between(0.3, 1.5)
  let level = p.between(20, 50)
  let filled = 0
  const v = t.map((ts, i) => {
    level += trendPerDay / (DAY / intervalS)
    // weekly cleanup on Sunday at 03:00
    if (new Date(ts * 1000).getUTCDay() === 0 && hourOfDay(ts) >= 3 && hourOfDay(ts - intervalS) < 3)
      level -= cleanup
    if (kind === 'fast-fill' && i >= span.start && i <= span.end) filled += fillPerPoint
    if (kind === 'fast-fill' && i === span.end + 1) filled = 0 // cleaned up by hand
    if (kind === 'wipe' && i === span.start) level *= 0.6
    return clamp(level + filled + 0.02 * p.normal(), 0, 100)
  })
  return {
    intervalS,
    t,
    v,
    windows: [
      kind === 'fast-fill' ? temporary(span, n, kind) : lasting(span.start, n, 6 * HOUR, intervalS, kind),
    ],
    normal: [{ at: 0, kind: 'weekly-cleanup' }],
    decimals: 2,
    description: `disk used % every 15 min, trend +${trendPerDay.toFixed(2)} %/day, weekly cleanup −${cleanup.toFixed(1)} %`,
  }
}

/** queue depth every 10 s: mostly zero with small bursts (normal); a backlog or a stuck consumer */
export const queue: Family = (p) => {
  const intervalS = 10
  const n = Math.min(20_000, Math.round(p.between(1, 2.3) * (DAY / intervalS)))
  const t = grid(p, n, intervalS, startTime(p))
  const burstRate = p.between(1 / 600, 1 / 80)
  const kinds = ['backlog', 'stuck-consumer'] as const
  const spans = placeSpans(p, n, p.int(1, 2), () => pts(p.between(3, 40) * 60, intervalS))
  const events = spans.map((s) => ({
    ...s,
    kind: p.pick(kinds),
    peak: p.between(30, 300),
    stuck: p.int(4, 20),
  }))
  let burst = 0
  const v = t.map((_, i) => {
    let x = 0
    if (burst > 0) {
      x = p.int(1, 6)
      burst--
    } else if (p.chance(burstRate)) {
      burst = p.int(0, 2)
      x = p.int(1, 6)
    }
    for (const e of events) {
      if (i < e.start || i > e.end) continue
      const f = (i - e.start) / (e.end - e.start + 1)
      x = e.kind === 'backlog' ? Math.round(e.peak * Math.min(1, 2 * Math.min(f, 1 - f)) + x) : e.stuck
    }
    return x
  })
  return {
    intervalS,
    t,
    v,
    windows: events.map((e) => temporary(e, n, e.kind)),
    normal: [{ at: 0, kind: 'small-bursts' }],
    decimals: 0,
    description: `queue depth every 10 s, mostly 0, bursts of 1–6 every ~${Math.round(1 / burstRate)} points`,
  }
}

/** errors per minute: sparse Poisson with a mild daily cycle; error bursts */
export const errors: Family = (p) => {
  const intervalS = 60
  const { n, t } = overDays(p, p.between(3, 6), intervalS)
  const rate = p.between(0.02, 1)
  const kinds = ['burst', 'elevated'] as const
  const spans = placeSpans(p, n, p.int(1, 2), () => pts(p.between(5, 30) * 60, intervalS))
  const events = spans.map((s) => {
    const kind = p.pick(kinds)
    const end =
      kind === 'elevated' ? Math.min(n - 1, s.start + pts(p.between(2, 5) * HOUR, intervalS)) : s.end
    return { start: s.start, end, kind, f: kind === 'burst' ? p.between(15, 80) : p.between(5, 10) }
  })
  const v = t.map((ts, i) => {
    let r = rate * (0.6 + 0.8 * daily('sine', hourOfDay(ts)))
    for (const e of events) if (i >= e.start && i <= e.end) r = Math.max(r * e.f, e.kind === 'burst' ? 8 : 2)
    return p.poisson(r)
  })
  return {
    intervalS,
    t,
    v,
    windows: events.map((e) => temporary(e, n, e.kind)),
    normal: [],
    decimals: 0,
    description: `errors per minute, Poisson rate ${rate.toFixed(2)} with a daily cycle`,
  }
}

/** a temperature sensor: smooth, quantised; cooling failure, dropout to 0, a stuck reading */
export const temperature: Family = (p) => {
  const intervalS = p.pick([60, 300])
  const { n, t } = overDays(p, intervalS === 60 ? p.between(3, 7) : p.between(10, 20), intervalS)
  const base = p.between(35, 75)
  const amp = p.between(1, 6)
  const step = p.pick([0.1, 0.5, 1])
  const ar = noise(p, 'ar1', intervalS === 60 ? 0.97 : 0.9)
  const wobble = p.between(0.3, 1.2)
  const kinds = ['cooling-failure', 'dropout', 'stuck'] as const
  const spans = placeSpans(p, n, p.int(1, 2), () => pts(p.between(0.3, 4) * HOUR, intervalS))
  const events = spans.map((s) => ({ ...s, kind: p.pick(kinds), rise: p.between(8, 20) }))
  let last = base
  const v = t.map((ts, i) => {
    let x = base + amp * daily('sine', hourOfDay(ts), 15) + wobble * ar()
    for (const e of events) {
      if (i < e.start || i > e.end) continue
      if (e.kind === 'cooling-failure')
        x += e.rise * Math.min(1, (i - e.start + 1) / Math.max(2, (e.end - e.start) / 3))
      else if (e.kind === 'dropout') x = 0
      else x = last
    }
    const q = Math.round(x / step) * step
    const inStuck = events.some((e) => e.kind === 'stuck' && i >= e.start && i <= e.end)
    if (!inStuck) last = q
    return q
  })
  return {
    intervalS,
    t,
    v,
    windows: events.map((e) => temporary(e, n, e.kind)),
    normal: [],
    decimals: step < 1 ? 1 : 0,
    description: `temperature °C every ${intervalS / 60} min in steps of ${step}, daily ±${amp.toFixed(1)}, correlated noise`,
  }
}

/** a flat integer (replicas, a config value) with planned ±1 steps; all replicas gone, or a runaway */
export const flat: Family = (p) => {
  const intervalS = p.pick([600, 3600])
  const n = p.int(1500, 3500)
  const t = grid(p, n, intervalS, startTime(p))
  const mostlyZero = p.chance(0.3)
  let level = mostlyZero ? 0 : p.int(2, 40)
  const kind = p.pick(['to-zero', 'runaway'] as const)
  const span = placeSpans(p, n, 1, () => pts(p.between(1, 8) * HOUR, intervalS))[0]!
  const avoid = [{ start: span.start - 20, end: span.end + 20 }]
  const planned = placeSpans(p, n, p.int(1, 3), () => 1, { from: 0.1, avoid, gap: 50 }).map((s) => s.start)
  const normal: DraftEvent[] = planned.map((at) => ({ at, kind: 'planned-scale' }))
  const v = t.map((_, i) => {
    if (planned.includes(i)) level = Math.max(0, level + p.pick([-1, 1, 2]))
    let x = level
    if (mostlyZero && p.chance(0.01)) x += 1 // a rare blip
    if (i >= span.start && i <= span.end) x = kind === 'to-zero' && !mostlyZero ? 0 : Math.max(6, level * 3)
    return x
  })
  return {
    intervalS,
    t,
    v,
    windows: [temporary(span, n, kind)],
    normal,
    decimals: 0,
    description: `${mostlyZero ? 'mostly-zero' : 'flat'} integer every ${intervalS / 60} min, ${planned.length} planned step(s)`,
  }
}

/** a periodic job (not daily: every 2–9 h) of similar height each time; a much larger or a hung job */
export const jobs: Family = (p) => {
  const intervalS = 60
  const { n, t } = overDays(p, p.between(3, 6), intervalS)
  const base = p.between(5, 20)
  const sd = p.between(0.3, 1.5)
  const periodPts = pts(p.between(2, 9) * HOUR, intervalS)
  const jobPts = p.int(5, 20)
  const height = p.between(15, 60)
  const phase = p.int(0, periodPts - 1)
  const kind = p.pick(['big-job', 'hung-job'] as const)
  // the anomalous run is one of the scheduled runs after the first quarter
  const runs: number[] = []
  for (let s = phase; s < n; s += periodPts) if (s > 0.3 * n && s < 0.9 * n) runs.push(s)
  const at = runs.length ? p.pick(runs) : Math.floor(0.6 * n)
  const hungPts = pts(p.between(2, 5) * HOUR, intervalS)
  const v = t.map((_, i) => {
    let x = base + sd * p.normal()
    const k = (((i - phase) % periodPts) + periodPts) % periodPts
    if (k < jobPts) {
      const run = i - k
      let h = height * (0.9 + 0.2 * p.next())
      if (run === at && kind === 'big-job') h *= 3
      x += h
    }
    if (kind === 'hung-job' && i >= at && i < at + hungPts) x = base + height * (0.95 + 0.1 * p.next())
    return Math.max(0, x)
  })
  const end = kind === 'hung-job' ? at + hungPts : at + jobPts
  return {
    intervalS,
    t,
    v,
    windows: [temporary({ start: kind === 'hung-job' ? at + jobPts : at, end }, n, kind)],
    normal: [{ at: phase, kind: `job-every-${((periodPts * intervalS) / HOUR).toFixed(1)}h` }],
    decimals: 2,
    description: `a job every ${((periodPts * intervalS) / HOUR).toFixed(1)} h for ${jobPts} min, +${height.toFixed(0)} over ${base.toFixed(0)}`,
  }
}

/** network bytes/s: daily cycle and heavy-tailed bursts (normal); a sustained plateau or a link down */
export const network: Family = (p) => {
  const intervalS = p.pick([60, 300])
  const { n, t } = overDays(p, intervalS === 60 ? p.between(3, 5) : p.between(10, 15), intervalS)
  const base = p.between(1e5, 5e7)
  const alpha = p.between(1.3, 2.5)
  const shape = p.pick<DailyShape>(['sine', 'two-peaks'])
  const kinds = ['plateau', 'link-down'] as const
  const spans = placeSpans(p, n, p.int(1, 2), () => pts(p.between(0.3, 4) * HOUR, intervalS))
  const events = spans.map((s) => ({ ...s, kind: p.pick(kinds), f: p.between(3, 6) }))
  const v = t.map((ts, i) => {
    let x = base * (0.3 + 0.7 * daily(shape, hourOfDay(ts))) * p.jitter(0.15)
    if (p.chance(0.02)) x *= (1 - p.next()) ** (-1 / alpha) // Pareto burst
    for (const e of events) {
      if (i < e.start || i > e.end) continue
      x = e.kind === 'plateau' ? base * e.f * p.jitter(0.03) : base * 0.001 * p.next()
    }
    return x
  })
  return {
    intervalS,
    t,
    v,
    windows: events.map((e) => temporary(e, n, e.kind)),
    normal: [{ at: 0, kind: `pareto-bursts-alpha-${alpha.toFixed(1)}` }],
    decimals: 0,
    description: `bytes/s every ${intervalS / 60} min, ${shape} day, Pareto bursts α ${alpha.toFixed(2)}`,
  }
}

/** clean series (no anomaly): each variant a different kind of normal */
const CLEAN_VARIANTS = [
  'seasonal',
  'mean-reverting',
  'heteroscedastic',
  'sparse',
  'deploys',
  'trend',
] as const
export const CLEAN_INSTANCES = CLEAN_VARIANTS.length

export const clean: Family = (p, instance) => {
  const variant = CLEAN_VARIANTS[instance % CLEAN_VARIANTS.length]!
  const intervalS = variant === 'sparse' ? 60 : p.pick([60, 300, 900])
  const n = Math.min(12_000, Math.round(p.between(4, 14) * (DAY / intervalS)))
  const t = grid(p, n, intervalS, startTime(p))
  const base = p.between(10, 1000)
  const ar = noise(p, 'ar1', 0.995)
  const white = noise(p, p.pick(['gauss', 't3', 'laplace', 'uniform'] as const))
  const deploys = variant === 'deploys' ? placeSpans(p, n, 3, () => 1, { from: 0.1, gap: 100 }) : []
  const steps = deploys.map((d) => ({ at: d.start, f: 1 + p.pick([-1, 1]) * p.between(0.05, 0.2) }))
  const rate = p.between(0.05, 0.6)
  const v = t.map((ts, i) => {
    const d = daily('sine', hourOfDay(ts))
    switch (variant) {
      case 'seasonal':
        return base * (1 + 0.3 * d) + 0.02 * base * white()
      case 'mean-reverting':
        return base + 0.1 * base * ar() + 0.01 * base * white()
      case 'heteroscedastic': {
        const level = base * (0.2 + d)
        return Math.max(0, level + 0.1 * level * white())
      }
      case 'sparse':
        return p.poisson(rate * (0.5 + d))
      case 'deploys': {
        let x = base * (1 + 0.1 * d) + 0.02 * base * white()
        for (const s of steps) if (i >= s.at) x *= s.f
        return x
      }
      default:
        // trend: steady growth (doubling over the series) with a weekly rhythm
        return base * (1 + i / n) * (isWeekend(ts) ? 0.8 : 1) * (1 + 0.15 * d) + 0.03 * base * white()
    }
  })
  return {
    intervalS,
    t,
    v,
    windows: [],
    normal: steps.map((s) => ({ at: s.at, kind: 'planned-deploy' })),
    decimals: variant === 'sparse' ? 0 : 3,
    description: `clean ${variant} series every ${intervalS / 60} min`,
  }
}

/** irregular timestamps and missing intervals; a variance change or a level shift */
export const irregular: Family = (p) => {
  const intervalS = p.pick([30, 120, 300])
  const n = Math.round(p.between(3, 8) * (DAY / intervalS))
  const t = grid(p, n, intervalS, startTime(p), 0.4)
  const base = p.between(50, 500)
  const sd = base * p.between(0.01, 0.05)
  const amp = base * p.between(0, 0.3)
  const white = noise(p, p.pick(['gauss', 't3'] as const))
  const kind = p.pick(['variance', 'shift'] as const)
  const span = placeSpans(p, n, 1, () => pts(p.between(1, 5) * HOUR, intervalS))[0]!
  const f = p.between(4, 8)
  const sign = p.pick([-1, 1])
  const v = t.map((ts, i) => {
    const inside = i >= span.start && i <= span.end
    let x = base + amp * daily('sine', hourOfDay(ts)) + sd * white() * (inside && kind === 'variance' ? f : 1)
    if (inside && kind === 'shift') x += sign * f * sd
    return x
  })
  const d: Draft = {
    intervalS,
    t,
    v,
    windows: [temporary(span, n, kind)],
    normal: [],
    decimals: 2,
    description: `irregular sampling around ${intervalS} s (±40 %), daily ±${((amp / base) * 100).toFixed(0)} %`,
  }
  return withGaps(p, d, p.int(2, 4), 10 * 60, 6 * HOUR)
}

/** an hourly business KPI: weekly and daily cycle, multiplicative noise; a holiday, a drop, a spike */
export const kpiHourly: Family = (p) => {
  const intervalS = 3600
  const n = p.int(60, 110) * 24
  const start = startTime(p) - (startTime(p) % DAY)
  const t = grid(p, n, intervalS, start)
  const base = p.between(100, 5000)
  const weekend = p.between(0.3, 0.8)
  const sigma = p.between(0.03, 0.12)
  const shape = p.pick<DailyShape>(['business', 'two-peaks'])
  const kinds = ['holiday', 'drop', 'spike'] as const
  const windows: DraftWindow[] = []
  const effects: { start: number; end: number; kind: (typeof kinds)[number]; f: number }[] = []
  const spans = placeSpans(p, n, p.int(1, 3), () => 24, { gap: 24 * 7 })
  for (const s of spans) {
    const kind = p.pick(kinds)
    // a holiday is a whole weekday that behaves like a weekend day
    const dayStart = s.start - (s.start % 24)
    if (kind === 'holiday') {
      if (isWeekend(t[dayStart]!)) continue
      effects.push({ start: dayStart, end: dayStart + 23, kind, f: weekend })
      windows.push({ start: dayStart + 7, end: dayStart + 23, kind }) // visible once the day starts
    } else {
      const len = kind === 'drop' ? p.int(3, 12) : p.int(1, 3)
      effects.push({
        start: s.start,
        end: s.start + len - 1,
        kind,
        f: kind === 'drop' ? p.between(0.3, 0.6) : p.between(2, 3),
      })
      windows.push(temporary({ start: s.start, end: s.start + len - 1 }, n, kind))
    }
  }
  const v = t.map((ts, i) => {
    let x = base * (0.1 + daily(shape, hourOfDay(ts))) * (isWeekend(ts) ? weekend : 1)
    for (const e of effects) if (i >= e.start && i <= e.end) x *= e.f
    return x * Math.exp(sigma * p.normal())
  })
  return {
    intervalS,
    t,
    v,
    windows,
    normal: [],
    decimals: 1,
    description: `hourly KPI, ${shape} day, weekend ×${weekend.toFixed(2)}, log-normal noise σ ${sigma.toFixed(2)}`,
  }
}

/** a smooth seasonal series with one injected break (the check the issue names) */
export const seasonalBreak: Family = (p) => {
  const intervalS = p.pick([60, 300, 900, 3600])
  const days = intervalS === 60 ? p.between(4, 7) : intervalS === 3600 ? p.between(40, 80) : p.between(8, 20)
  const n = Math.round((days * DAY) / intervalS)
  const t = grid(p, n, intervalS, startTime(p))
  const base = p.between(20, 200)
  const amp = base * p.between(0.2, 0.6)
  const sd = amp * p.between(0.02, 0.08)
  const weekly = p.chance(0.5)
  const span = placeSpans(p, n, 1, () => 1)[0]!
  const shift = p.pick([-1, 1]) * p.between(6, 12) * sd
  const v = t.map((ts, i) => {
    let x = base + amp * daily('sine', hourOfDay(ts)) * (weekly && isWeekend(ts) ? 0.6 : 1) + sd * p.normal()
    if (i >= span.start) x += shift
    return x
  })
  return {
    intervalS,
    t,
    v,
    windows: [lasting(span.start, n, 2 * HOUR, intervalS, 'level-shift')],
    normal: [],
    decimals: 3,
    description: `smooth daily cycle${weekly ? ' and weekend' : ''} every ${intervalS / 60} min, one break of ${(shift / sd).toFixed(1)} σ`,
  }
}

/** GPU power every second: bimodal idle/busy regimes (normal); throttling, over-draw (held-out family) */
export const gpuPower: Family = (p) => {
  const intervalS = 1
  const n = 20_000
  const t = grid(p, n, intervalS, startTime(p))
  const idle = p.between(40, 80)
  const busy = p.between(200, 320)
  const kind = p.pick(['throttle', 'overdraw'] as const)
  const span = placeSpans(p, n, 1, () => (kind === 'throttle' ? p.int(300, 1200) : p.int(30, 120)))[0]!
  let state = 0
  let dwell = 0
  const v = t.map((_, i) => {
    if (dwell <= 0) {
      state = 1 - state
      dwell = Math.round(p.exponential(state ? 240 : 120)) + 10
    }
    dwell--
    let x = (state ? busy : idle) + (state ? 6 : 2) * p.normal()
    if (i >= span.start && i <= span.end) {
      if (kind === 'throttle') x = 0.55 * busy + 4 * p.normal()
      else if (state) x = busy * 1.35 + 5 * p.normal()
      else x = busy * 1.3 + 5 * p.normal()
    }
    return x
  })
  return {
    intervalS,
    t,
    v,
    windows: [temporary(span, n, kind)],
    normal: [{ at: 0, kind: 'idle-busy-regimes' }],
    decimals: 1,
    description: `GPU power W every second, idle ${idle.toFixed(0)} / busy ${busy.toFixed(0)} regimes`,
  }
}

/** cache hit ratio every 10 s: an hourly refresh dip (normal); a flush storm or a slow decay (held-out family) */
export const hitRatio: Family = (p) => {
  const intervalS = 10
  const { n, t } = overDays(p, p.between(1, 2), intervalS)
  const level = p.between(0.85, 0.98)
  const sd = (1 - level) * p.between(0.05, 0.2)
  const dip = p.between(0.1, 0.25)
  const kind = p.pick(['flush-storm', 'decay'] as const)
  const span = placeSpans(p, n, 1, () => pts(p.between(10, 60) * 60, intervalS))[0]!
  const v = t.map((ts, i) => {
    let x = level + sd * p.normal()
    const sinceHour = ts % HOUR
    if (sinceHour < 60) x -= dip * (1 - sinceHour / 60)
    if (i >= span.start && i <= span.end) {
      const f = (i - span.start) / (span.end - span.start + 1)
      x -= kind === 'flush-storm' ? p.between(0.3, 0.5) : 0.35 * f
    }
    return clamp(x, 0, 1)
  })
  return {
    intervalS,
    t,
    v,
    windows: [temporary(span, n, kind)],
    normal: [{ at: 0, kind: 'hourly-refresh-dip' }],
    decimals: 3,
    description: `cache hit ratio every 10 s at ${level.toFixed(2)}, hourly refresh dip −${dip.toFixed(2)}`,
  }
}
