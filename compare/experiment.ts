/**
 * `breakid experiment`: the plan (a grid of engine settings × load levels, with warm-up, duration,
 * repetitions, an SLO and pricing), and the report over its cells — the Pareto front of throughput vs
 * p99 vs cost per 1,000 inferences, the best configuration meeting the SLO, and each cell's latency
 * against the best one's with the significance of the difference (compare.ts' verdict on the total).
 * The runner that builds engines and sends load is app/experiment.ts; this module is pure.
 *
 * ```json
 * {
 *   "model": "resnet50:w=0.5,r=32",
 *   "settings": { "batching": ["static", "adaptive"], "maxBatchSize": [8], "precision": ["fp32"] },
 *   "load": { "rates": [60, 120] },
 *   "durationS": 15, "warmupS": 3, "repetitions": 2,
 *   "slo": { "p99Ms": 250, "maxErrorRate": 0.01 }
 * }
 * ```
 */
import { readFileSync } from 'node:fs'
import { InvalidInputError } from '../core/errors.ts'
import { BATCHING_MODES, type BatchingMode } from '../engine/batcher.ts'
import { PRECISIONS, type Precision } from '../engine/models/zoo.ts'
import type { Comparison, HostSample, RequestRecord, StageRow, Verdict } from './compare.ts'
import { type Pricing, parsePricing } from './cost.ts'

/** One engine configuration: every setting the grid can vary. */
export interface EngineSettings {
  batching: BatchingMode
  maxBatchSize: number
  /** ms; undefined: the batcher's default for its mode */
  maxQueueDelayMs?: number
  /** result cache entries; 0 = off */
  cacheEntries: number
  preprocessWorkers: number
  precision: Precision
}

export const SETTING_DEFAULTS: Readonly<EngineSettings> = Object.freeze({
  batching: 'static',
  maxBatchSize: 8,
  cacheEntries: 0,
  preprocessWorkers: 4,
  precision: 'fp32',
})

export interface ExperimentPlan {
  name?: string
  /** the model flag: name[:w=…,r=…] (precision comes from the settings) */
  model: string
  /** each setting's values; the grid is their product */
  settings: { [K in keyof EngineSettings]?: EngineSettings[K][] }
  load: { mode: 'rate' | 'concurrency'; levels: number[] }
  durationS: number
  warmupS: number
  repetitions: number
  slo?: { p99Ms: number; maxErrorRate: number }
  pricing?: Pricing
  /** distinct request bodies cycled through (more: fewer cache hits). Default 64 */
  distinctInputs: number
}

export interface Cell {
  /** c01, c02, … in grid order */
  id: string
  settings: EngineSettings
  load: { mode: 'rate' | 'concurrency'; level: number }
}

const SETTING_KEYS = [
  'batching',
  'maxBatchSize',
  'maxQueueDelayMs',
  'cacheEntries',
  'preprocessWorkers',
  'precision',
] as const

const isObject = (x: unknown): x is Record<string, unknown> =>
  typeof x === 'object' && x !== null && !Array.isArray(x)

/** Reads and validates a plan file; every error names the key. */
export function loadPlan(path: string): ExperimentPlan {
  let raw: unknown
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'))
  } catch (err) {
    throw new InvalidInputError(`plan ${path}: ${(err as Error).message}`)
  }
  return parsePlan(raw)
}

export function parsePlan(raw: unknown): ExperimentPlan {
  if (!isObject(raw)) throw new InvalidInputError('plan: expected a JSON object')
  const known = [
    'name',
    'model',
    'settings',
    'load',
    'durationS',
    'warmupS',
    'repetitions',
    'slo',
    'pricing',
    'distinctInputs',
  ]
  for (const k of Object.keys(raw)) {
    if (!known.includes(k)) throw new InvalidInputError(`plan: unknown key "${k}" (${known.join(', ')})`)
  }
  const num = (v: unknown, key: string, lo: number, hi: number, integer = false) => {
    if (
      typeof v !== 'number' ||
      !Number.isFinite(v) ||
      v < lo ||
      v > hi ||
      (integer && !Number.isInteger(v))
    ) {
      throw new InvalidInputError(
        `plan.${key}: expected ${integer ? 'an integer' : 'a number'} from ${lo} to ${hi}, got ${JSON.stringify(v)}`,
      )
    }
    return v
  }
  if (typeof raw.model !== 'string' || raw.model === '')
    throw new InvalidInputError('plan.model: expected a model, e.g. "cnn"')
  if (/[:,]p=/.test(raw.model))
    throw new InvalidInputError('plan.model: set precision in settings.precision, not in the model')
  const settings: ExperimentPlan['settings'] = {}
  if (raw.settings !== undefined) {
    if (!isObject(raw.settings)) throw new InvalidInputError('plan.settings: expected an object of lists')
    for (const [k, values] of Object.entries(raw.settings)) {
      if (!(SETTING_KEYS as readonly string[]).includes(k)) {
        throw new InvalidInputError(`plan.settings: unknown setting "${k}" (${SETTING_KEYS.join(', ')})`)
      }
      if (!Array.isArray(values) || values.length === 0 || values.length > 16) {
        throw new InvalidInputError(`plan.settings.${k}: expected a list of 1 to 16 values`)
      }
      const at = (i: number) => `settings.${k}[${i}]`
      const checked = values.map((v, i) => {
        switch (k) {
          case 'batching':
            if (!BATCHING_MODES.includes(v))
              throw new InvalidInputError(
                `plan.${at(i)}: ${JSON.stringify(v)} is not one of ${BATCHING_MODES.join(', ')}`,
              )
            return v
          case 'precision':
            if (!PRECISIONS.includes(v))
              throw new InvalidInputError(
                `plan.${at(i)}: ${JSON.stringify(v)} is not one of ${PRECISIONS.join(', ')}`,
              )
            return v
          case 'maxBatchSize':
            return num(v, at(i), 1, 1024, true)
          case 'maxQueueDelayMs':
            return num(v, at(i), 0.01, 10_000)
          case 'cacheEntries':
            return num(v, at(i), 0, 10_000_000, true)
          default:
            return num(v, at(i), 1, 256, true)
        }
      })
      ;(settings as Record<string, unknown[]>)[k] = checked
    }
  }
  if (!isObject(raw.load))
    throw new InvalidInputError('plan.load: expected {"rates": [...]} or {"concurrency": [...]}')
  const hasRates = raw.load.rates !== undefined
  const hasConcurrency = raw.load.concurrency !== undefined
  if (hasRates === hasConcurrency || Object.keys(raw.load).length !== 1) {
    throw new InvalidInputError(
      'plan.load: give exactly one of "rates" (open loop, req/s) or "concurrency" (closed loop)',
    )
  }
  const levelsRaw = hasRates ? raw.load.rates : raw.load.concurrency
  if (!Array.isArray(levelsRaw) || levelsRaw.length === 0 || levelsRaw.length > 32) {
    throw new InvalidInputError('plan.load: expected a list of 1 to 32 levels')
  }
  const levels = levelsRaw.map((v, i) =>
    hasRates ? num(v, `load.rates[${i}]`, 0.1, 10_000) : num(v, `load.concurrency[${i}]`, 1, 4096, true),
  )
  let slo: ExperimentPlan['slo']
  if (raw.slo !== undefined) {
    if (!isObject(raw.slo)) throw new InvalidInputError('plan.slo: expected {"p99Ms", "maxErrorRate"}')
    slo = {
      p99Ms: num(raw.slo.p99Ms, 'slo.p99Ms', 0.001, 3_600_000),
      maxErrorRate:
        raw.slo.maxErrorRate === undefined ? 0.01 : num(raw.slo.maxErrorRate, 'slo.maxErrorRate', 0, 1),
    }
  }
  const plan: ExperimentPlan = {
    model: raw.model,
    settings,
    load: { mode: hasRates ? 'rate' : 'concurrency', levels },
    durationS: num(raw.durationS ?? 15, 'durationS', 1, 3600),
    warmupS: num(raw.warmupS ?? 3, 'warmupS', 0, 600),
    repetitions: num(raw.repetitions ?? 1, 'repetitions', 1, 20, true),
    distinctInputs: num(raw.distinctInputs ?? 64, 'distinctInputs', 1, 4096, true),
    ...(slo ? { slo } : {}),
    ...(raw.pricing !== undefined ? { pricing: parsePricing(raw.pricing, 'plan.pricing') } : {}),
  }
  if (raw.name !== undefined) {
    if (typeof raw.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,30}$/.test(raw.name)) {
      throw new InvalidInputError(
        'plan.name: letters, digits and ._- (up to 31), starting with a letter or digit',
      )
    }
    plan.name = raw.name
  }
  const cells = gridCells(plan).length
  if (cells > 256) throw new InvalidInputError(`plan: ${cells} cells; at most 256`)
  return plan
}

/** The grid: every combination of settings (in the order given) × every load level. */
export function gridCells(plan: ExperimentPlan): Cell[] {
  let combos: EngineSettings[] = [{ ...SETTING_DEFAULTS }]
  for (const k of SETTING_KEYS) {
    const values = plan.settings[k] as unknown[] | undefined
    if (!values) continue
    combos = combos.flatMap((c) => values.map((v) => ({ ...c, [k]: v }) as EngineSettings))
  }
  const cells: Cell[] = []
  for (const settings of combos) {
    for (const level of plan.load.levels) {
      cells.push({
        id: `c${String(cells.length + 1).padStart(2, '0')}`,
        settings,
        load: { mode: plan.load.mode, level },
      })
    }
  }
  return cells
}

/** "static b8 d2 cache0 pre4 fp32", only the settings that vary in the plan, for tables */
export function describeSettings(s: EngineSettings, plan: ExperimentPlan): string {
  const varying = SETTING_KEYS.filter((k) => (plan.settings[k]?.length ?? 0) > 1)
  const keys = varying.length > 0 ? varying : (['batching'] as const)
  const label: Record<(typeof SETTING_KEYS)[number], (s: EngineSettings) => string> = {
    batching: (x) => x.batching,
    maxBatchSize: (x) => `batch≤${x.maxBatchSize}`,
    maxQueueDelayMs: (x) => `delay ${x.maxQueueDelayMs ?? 'default'} ms`,
    cacheEntries: (x) => `cache ${x.cacheEntries}`,
    preprocessWorkers: (x) => `${x.preprocessWorkers} preprocess workers`,
    precision: (x) => x.precision,
  }
  return keys.map((k) => label[k](s)).join(', ')
}

// ---------------------------------------------------------------------------------------------------
// Results and report

/** One repetition of one cell, as measured. */
export interface CellRun {
  runId: string
  /** client side (the load generator; closed loop: corrected for coordinated omission) */
  throughputPerSec: number
  p50Ms: number
  p99Ms: number
  sent: number
  ok: number
  /** from the run-cost query; null without pricing */
  cost: number | null
  requests: RequestRecord[]
  host: HostSample[]
}

export interface CellResult {
  cell: Cell
  runs: CellRun[]
  /** medians over repetitions */
  throughputPerSec: number
  p50Ms: number
  p99Ms: number
  /** spread of p99 over repetitions */
  p99RangeMs: [number, number]
  errorRate: number
  /** Σcost / Σok × 1000; null without pricing */
  costPer1k: number | null
  onParetoFront: boolean
  meetsSlo: boolean | null
  /** against the reference cell (the best, else the lowest p99): the total latency's verdict (compare.ts) */
  vsBest?: { verdict: Verdict; p99Ratio: number; p99Ci: [number, number]; mannWhitneyP: number }
}

export interface ExperimentReport {
  experiment: string
  plan: ExperimentPlan
  cells: CellResult[]
  /** the cell meeting the SLO with the most throughput (then the least cost); null if none does */
  best: string | null
  /** the cell every other is compared with: the best, else the one with the lowest p99 */
  reference: string | null
  /** largest deviation of each non-fp32 precision from fp32 on the test inputs */
  precision: { precision: Precision; maxAbs: number; meanAbs: number; maxAbsFp32: number }[]
  currency: string | null
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** Aggregates repetitions (medians; cost pooled). */
export function summarizeCell(cell: Cell, runs: CellRun[], slo: ExperimentPlan['slo']): CellResult {
  const p99s = runs.map((r) => r.p99Ms)
  const sent = runs.reduce((s, r) => s + r.sent, 0)
  const ok = runs.reduce((s, r) => s + r.ok, 0)
  const costs = runs.map((r) => r.cost)
  const costPer1k =
    costs.every((c) => c !== null) && ok > 0
      ? ((costs as number[]).reduce((a, b) => a + b, 0) / ok) * 1000
      : null
  const result: CellResult = {
    cell,
    runs,
    throughputPerSec: median(runs.map((r) => r.throughputPerSec)),
    p50Ms: median(runs.map((r) => r.p50Ms)),
    p99Ms: median(p99s),
    p99RangeMs: [Math.min(...p99s), Math.max(...p99s)],
    errorRate: sent > 0 ? (sent - ok) / sent : 0,
    costPer1k,
    onParetoFront: false,
    meetsSlo: null,
  }
  if (slo) result.meetsSlo = result.p99Ms <= slo.p99Ms && result.errorRate <= slo.maxErrorRate
  return result
}

/**
 * Measurements closer than this (relative) count as equal when cells are ranked: an open loop answers
 * its offered rate give or take a few requests, and cost per 1,000 follows throughput, so without a
 * tolerance 49.99 ok/s would dominate 49.98 ok/s.
 */
export const RANKING_TOLERANCE = 0.02

/**
 * Marks the Pareto front: a cell is on it unless another is at least as good on throughput (↑), p99
 * (↓) and cost per 1,000 (↓; ignored where unknown) and clearly better on one, "as good" and "better"
 * judged with RANKING_TOLERANCE.
 */
export function markParetoFront(cells: CellResult[]): void {
  const t = RANKING_TOLERANCE
  const cost = (c: CellResult) => c.costPer1k ?? 0
  const dominates = (o: CellResult, c: CellResult) =>
    o.throughputPerSec >= c.throughputPerSec * (1 - t) &&
    o.p99Ms <= c.p99Ms * (1 + t) &&
    cost(o) <= cost(c) * (1 + t) &&
    (o.throughputPerSec > c.throughputPerSec * (1 + t) ||
      o.p99Ms < c.p99Ms * (1 - t) ||
      cost(o) < cost(c) * (1 - t))
  for (const c of cells) c.onParetoFront = !cells.some((o) => o !== c && dominates(o, c))
}

/**
 * The cell meeting the SLO with the most throughput; among those within RANKING_TOLERANCE of it, the
 * least cost per 1,000; among those within the tolerance of that, the lowest p99.
 */
export function bestCell(cells: CellResult[]): CellResult | null {
  let pool = cells.filter((c) => c.meetsSlo !== false)
  if (pool.length === 0) return null
  const t = RANKING_TOLERANCE
  const most = Math.max(...pool.map((c) => c.throughputPerSec))
  pool = pool.filter((c) => c.throughputPerSec >= most * (1 - t))
  const least = Math.min(...pool.map((c) => c.costPer1k ?? 0))
  pool = pool.filter((c) => (c.costPer1k ?? 0) <= least * (1 + t))
  return pool.reduce((a, b) => (b.p99Ms < a.p99Ms ? b : a))
}

/**
 * The requests and samples of a cell's repetitions as one contiguous run (each repetition re-timed to
 * follow the previous), so the block bootstrap sees repetitions as consecutive stretches of one run.
 */
export function pooledRun(runs: readonly CellRun[]): { requests: RequestRecord[]; host: HostSample[] } {
  const requests: RequestRecord[] = []
  const host: HostSample[] = []
  let cursor: number | undefined
  for (const r of runs) {
    if (r.requests.length === 0) continue
    let first = Number.POSITIVE_INFINITY
    let last = Number.NEGATIVE_INFINITY
    for (const x of r.requests) {
      first = Math.min(first, x.timestamp_us)
      last = Math.max(last, x.timestamp_us)
    }
    // the first repetition keeps its times; each later one starts a second after the previous ends
    const offset = cursor === undefined ? 0 : cursor - first
    for (const x of r.requests) requests.push({ ...x, timestamp_us: x.timestamp_us + offset })
    for (const h of r.host) host.push({ ...h, timestamp_us: h.timestamp_us + offset })
    cursor = last + offset + 1_000_000
  }
  return { requests, host }
}

/** Summary of a comparison's total row for the report (p99 ratio and its interval, rank test). */
export function totalVerdict(c: Comparison): CellResult['vsBest'] | undefined {
  const total = c.rows.find((r): r is StageRow => r.kind === 'stage' && r.stage === 'total')
  if (!total) return undefined
  const p99 = total.stats.p99
  return {
    verdict: total.verdict,
    p99Ratio: p99.ratio.estimate,
    p99Ci: [p99.ratio.lo, p99.ratio.hi],
    mannWhitneyP: total.mannWhitney.p,
  }
}

export function renderExperiment(r: ExperimentReport, format: 'table' | 'markdown' | 'json'): string {
  if (format === 'json') {
    return JSON.stringify(
      {
        ...r,
        cells: r.cells.map(({ runs, ...c }) => ({ ...c, runs: runs.map(({ requests, host, ...x }) => x) })),
      },
      null,
      2,
    )
  }
  const f = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '-')
  const cur = r.currency ?? ''
  const head = [
    'cell',
    'settings',
    r.plan.load.mode === 'rate' ? 'rate/s' : 'concurrency',
    'ok/s',
    'p50 ms',
    'p99 ms (reps)',
    'errors',
    `per 1k ${cur}`.trim(),
    'Pareto',
    'SLO',
    'p99 vs ref',
  ]
  const rows = r.cells.map((c) => [
    c.cell.id,
    describeSettings(c.cell.settings, r.plan),
    String(c.cell.load.level),
    f(c.throughputPerSec),
    f(c.p50Ms, 2),
    `${f(c.p99Ms)} (${f(c.p99RangeMs[0])}–${f(c.p99RangeMs[1])})`,
    `${(c.errorRate * 100).toFixed(2)}%`,
    c.costPer1k === null ? '-' : c.costPer1k.toPrecision(3),
    c.onParetoFront ? '★' : '',
    c.meetsSlo === null ? '' : c.meetsSlo ? 'meets' : 'misses',
    r.reference === c.cell.id
      ? r.best === c.cell.id
        ? 'best (ref)'
        : 'ref'
      : c.vsBest
        ? `×${f(c.vsBest.p99Ratio, 2)} [${f(c.vsBest.p99Ci[0], 2)},${f(c.vsBest.p99Ci[1], 2)}] ${c.vsBest.verdict === 'regression' ? 'slower' : c.vsBest.verdict === 'improvement' ? 'faster' : c.vsBest.verdict}`
        : '',
  ])
  const best = r.cells.find((c) => c.cell.id === r.best)
  const lines = [
    `experiment ${r.experiment}: ${r.cells.length} cells × ${r.plan.repetitions} repetition(s), ${r.plan.durationS} s each after ${r.plan.warmupS} s warm-up (discarded); model ${r.plan.model}`,
    r.plan.slo
      ? best
        ? `best meeting the SLO (p99 ≤ ${r.plan.slo.p99Ms} ms, errors ≤ ${(r.plan.slo.maxErrorRate * 100).toFixed(1)}%): ${best.cell.id} — ${describeSettings(best.cell.settings, r.plan)} at ${best.cell.load.level}${r.plan.load.mode === 'rate' ? ' req/s' : ' concurrent'}: ${f(best.throughputPerSec)} ok/s, p99 ${f(best.p99Ms)} ms${best.costPer1k === null ? '' : `, ${best.costPer1k.toPrecision(3)} ${cur} per 1,000`}`
        : `no cell meets the SLO (p99 ≤ ${r.plan.slo.p99Ms} ms)`
      : 'no SLO in the plan: best = most throughput',
    ...r.precision.map(
      (p) =>
        `${p.precision}: largest deviation from fp32 on the test inputs ${p.maxAbs.toExponential(2)} (mean ${p.meanAbs.toExponential(2)}; outputs up to ${p.maxAbsFp32.toFixed(3)})`,
    ),
    `★ = on the Pareto front of throughput ↑, p99 ↓, cost per 1,000 ↓; "p99 vs ref": each cell's total latency against ${r.best ? 'the best cell' : 'the cell with the lowest p99'} (${r.reference ?? '-'}): p99 ratio, its interval, compare.ts verdict on the pooled repetitions`,
  ]
  if (format === 'markdown') {
    const esc = (c: string) => c.replace(/\|/g, '\\|')
    return [
      `### breakid experiment ${r.experiment}`,
      '',
      ...lines.map((l) => `- ${l}`),
      '',
      `| ${head.map(esc).join(' | ')} |`,
      `| ${head.map(() => '---').join(' | ')} |`,
      ...rows.map((row) => `| ${row.map(esc).join(' | ')} |`),
    ].join('\n')
  }
  const table = [head, ...rows]
  const widths = head.map((_, i) => Math.max(...table.map((row) => row[i]!.length)))
  return [
    ...lines,
    '',
    ...table.map((row) =>
      row
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    ),
  ].join('\n')
}
