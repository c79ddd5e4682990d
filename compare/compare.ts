/**
 * Baseline vs candidate, per model and stage: the verdict of `breakid compare` (a CI gate) and of the
 * cell-against-cell significance in `breakid experiment`.
 *
 * With thousands of requests per run any difference is "statistically significant", and between two
 * runs on a shared machine the noise is systematic (another process takes a core for ten seconds),
 * not sampling noise. So a verdict asks for **practical** significance, on robust statistics:
 *
 * - a statistic regressed only if the whole confidence interval of candidate/baseline lies above
 *   1 + `threshold` (not merely above 1), **and** the whole interval of the difference lies above
 *   `minEffectMs` — a stage of 40 µs that doubles is not a regression on relative change alone;
 * - intervals come from a **block bootstrap** over time windows of each run (`blockMs`), so a busy
 *   few seconds inside a run widens the interval instead of counting as thousands of independent
 *   slow requests;
 * - the first `warmupMs` of each run are dropped (model warm-up, JIT, connection set-up);
 * - location statistics (p50, mean) must also pass the Mann–Whitney U test at 1 − `confidence` in the
 *   same direction; tail statistics (p95, p99) are judged by their own intervals, since a rank test
 *   barely sees a change in the slowest 1 %.
 *
 * A row is a regression when any gating statistic (`gate`, default p50, p95, p99) regressed, an
 * improvement when one improved and none regressed, else no change.
 *
 * **A busier machine is not a slower build.** The hardware samples say how much CPU other processes
 * took during each run (host CPU − the engine process's CPU, mean over the compared window). A run is
 * *squeezed* when others took at least a quarter of the host and the engine used at least 80 % of what
 * they left it: it ran short of CPU, so every stage on the CPU slowed and the queue in front of the
 * executor grew for reasons outside the build. When one run is squeezed, or the foreign load of the
 * two differs by more than `contentionToleranceCpus`, that run's host was busier, and:
 * - a regression of the candidate stands only if the stage's **share** of the requests' total time
 *   also grew past the threshold (a stage that got slower than the rest of the request: contention,
 *   slowing everything, does not explain it); otherwise the row says `inconclusive`;
 * - an improvement is `inconclusive` when the baseline was the busier (or a squeezed) run.
 * Inconclusive rows do not fail the gate; the report names both runs' foreign load. The total's share
 * is always 1, so the total is inconclusive then: rerun on a quieter machine to judge it.
 */
import { STAGES } from '../contract/vocabulary.ts'
import { InvalidInputError } from '../core/errors.ts'
import {
  bootstrapCompare,
  bootstrapShareRatio,
  type Interval,
  mannWhitneyU,
  type MannWhitneyResult,
  mean,
  SUMMARY_STATS,
  type SummaryStat,
  twoProportionTest,
} from './stats.ts'

/** The durations compared: every stage in pipeline order, then the whole request. */
export const COMPARED_STAGES = [...STAGES, 'total'] as const
export type ComparedStage = (typeof COMPARED_STAGES)[number]

/** One request as read from the store (queries/sql/run-spans.sql). */
export interface RequestRecord {
  model: string
  status: string
  timestamp_us: number
  cache_hit: boolean
  batch_size: number
  /** µs per stage, and `total` */
  durations_us: Record<ComparedStage, number>
}

export type Verdict = 'regression' | 'improvement' | 'no change' | 'inconclusive'

/** One hardware sample as read from the store (queries/sql/run-host.sql). */
export interface HostSample {
  timestamp_us: number
  /** CPUs the engine's process used */
  process_cpu: number
  /** CPUs the whole host used; null where the platform does not report it */
  host_cpu: number | null
  /** online CPUs of the host; null where not reported */
  host_cpus: number | null
}

/** What one side of a comparison brings: its requests, and its hardware samples when stored. */
export interface RunData {
  requests: readonly RequestRecord[]
  host?: readonly HostSample[]
}

export interface CompareOptions {
  /** relative minimum effect: the ratio's interval must clear 1 + threshold. Default 0.25 */
  threshold: number
  /** absolute minimum effect in ms: the difference's interval must clear it. Default 1 */
  minEffectMs: number
  /** two-sided confidence of the intervals and the rank test. Default 0.99 */
  confidence: number
  /** statistics that decide a row's verdict. Default p50, p95, p99 */
  gate: readonly SummaryStat[]
  /** dropped from the start of each run, ms. Default 5000 */
  warmupMs: number
  /** bootstrap block length, ms. Default 2000 */
  blockMs: number
  /** bootstrap resamples. Default 1000 */
  iterations: number
  /** bootstrap seed. Default 1 */
  seed: number
  /** error-rate rows: the increase (absolute, 0..1) that counts as a regression. Default 0.01 */
  maxErrorRateIncrease: number
  /**
   * CPUs of foreign load (other processes) by which the runs may differ before their latencies are
   * judged as contended (see the module comment). Default 0.25
   */
  contentionToleranceCpus: number
}

export const DEFAULT_COMPARE_OPTIONS: Readonly<CompareOptions> = Object.freeze<CompareOptions>({
  threshold: 0.25,
  minEffectMs: 1,
  confidence: 0.99,
  gate: ['p50', 'p95', 'p99'],
  warmupMs: 5000,
  blockMs: 2000,
  iterations: 1000,
  seed: 1,
  maxErrorRateIncrease: 0.01,
  contentionToleranceCpus: 0.25,
})

export interface StatComparison {
  baseline: number
  candidate: number
  ratio: { estimate: number } & Interval
  difference: { estimate: number } & Interval
  verdict: Verdict
}

export interface StageRow {
  kind: 'stage'
  model: string
  stage: ComparedStage
  baselineRequests: number
  candidateRequests: number
  /** ms */
  stats: Record<SummaryStat, StatComparison>
  mannWhitney: MannWhitneyResult
  /** the stage's share of the requests' total time (Σstage / Σtotal), and candidate/baseline of it */
  share: { baseline: number; candidate: number; ratio: { estimate: number } & Interval }
  verdict: Verdict
  /** the statistics that decided the verdict, e.g. "p50 ×1.42 [1.31, 1.55], +0.80 ms" */
  reasons: string[]
}

export interface ThroughputRow {
  kind: 'throughput'
  model: string
  /** answered ok per second */
  baseline: number
  candidate: number
  ratio: { estimate: number } & Interval
  verdict: Verdict
}

export interface ErrorRateRow {
  kind: 'error_rate'
  model: string
  baseline: number
  candidate: number
  baselineRequests: number
  candidateRequests: number
  p: number
  verdict: Verdict
}

export type CompareRow = StageRow | ThroughputRow | ErrorRateRow

/** How busy a run's host was (means over the compared window), from its hardware samples. */
export interface HostLoad {
  /** CPUs other processes took (host − engine process) */
  foreignCpus: number
  /** CPUs the engine's process used */
  engineCpus: number
  hostCpus: number
  /** others took ≥ ¼ of the host and the engine used ≥ 80 % of what they left: short of CPU */
  squeezed: boolean
}

/** The host load of both runs (null: the samples do not say) and which run's host was busier. */
export interface Contention {
  baseline: HostLoad | null
  candidate: HostLoad | null
  busier: 'candidate' | 'baseline' | 'both' | 'neither'
}

export interface Comparison {
  options: CompareOptions
  contention: Contention
  rows: CompareRow[]
  /** models in one selection only (not compared) */
  onlyInBaseline: string[]
  onlyInCandidate: string[]
  regressions: CompareRow[]
  improvements: CompareRow[]
}

interface Prepared {
  /** first request + warm-up: where the compared window starts, µs */
  startUs: number
  /** per model: ok requests in blocks */
  byModel: Map<string, { blocks: RequestRecord[][]; all: RequestRecord[]; errors: number; durationS: number }>
}

/** Drops the warm-up and cuts the rest into time blocks, per model. */
function prepare(records: readonly RequestRecord[], o: CompareOptions): Prepared {
  const byModel: Prepared['byModel'] = new Map()
  if (records.length === 0) return { byModel, startUs: 0 }
  let first = Number.POSITIVE_INFINITY
  for (const r of records) first = Math.min(first, r.timestamp_us)
  const start = first + o.warmupMs * 1000
  const models = new Map<string, RequestRecord[]>()
  for (const r of records) {
    if (r.timestamp_us < start) continue
    const list = models.get(r.model) ?? []
    list.push(r)
    models.set(r.model, list)
  }
  for (const [model, list] of models) {
    let last = start
    for (const r of list) last = Math.max(last, r.timestamp_us)
    const blockUs = o.blockMs * 1000
    const count = Math.max(1, Math.ceil((last - start + 1) / blockUs))
    const blocks: RequestRecord[][] = Array.from({ length: count }, () => [])
    let errors = 0
    for (const r of list) {
      if (r.status !== 'ok') {
        errors++
        continue
      }
      blocks[Math.min(count - 1, Math.floor((r.timestamp_us - start) / blockUs))]!.push(r)
    }
    byModel.set(model, { blocks, all: list, errors, durationS: Math.max(1e-3, (last - start) / 1e6) })
  }
  return { byModel, startUs: start }
}

/** A run's host load over the compared window; null when the samples do not report host CPU. */
export function hostLoad(host: readonly HostSample[] | undefined, startUs: number): HostLoad | null {
  const known = (host ?? []).filter((h) => h.timestamp_us >= startUs && h.host_cpu !== null)
  if (known.length === 0) return null
  const foreignCpus = mean(known.map((h) => Math.max(0, h.host_cpu! - h.process_cpu)))
  const engineCpus = mean(known.map((h) => h.process_cpu))
  const cpus = known.filter((h) => h.host_cpus !== null).map((h) => h.host_cpus!)
  const hostCpus = cpus.length > 0 ? mean(cpus) : Math.max(1, Math.ceil(foreignCpus + engineCpus))
  const left = Math.max(0, hostCpus - foreignCpus)
  return {
    foreignCpus,
    engineCpus,
    hostCpus,
    squeezed: foreignCpus >= 0.25 * hostCpus && engineCpus >= 0.8 * left,
  }
}

function whichBusier(b: HostLoad | null, c: HostLoad | null, toleranceCpus: number): Contention['busier'] {
  if (b === null || c === null) return 'neither'
  if (b.squeezed && c.squeezed) return 'both'
  if (c.squeezed) return 'candidate'
  if (b.squeezed) return 'baseline'
  const delta = c.foreignCpus - b.foreignCpus
  return delta > toleranceCpus ? 'candidate' : delta < -toleranceCpus ? 'baseline' : 'neither'
}

const fmtRatio = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '∞')

function statVerdict(
  stat: SummaryStat,
  s: Omit<StatComparison, 'verdict'>,
  mw: MannWhitneyResult,
  o: CompareOptions,
): Verdict {
  const alpha = 1 - o.confidence
  // location statistics must agree with the rank test; tails are judged by their own intervals
  const rankAgrees = (direction: 1 | -1) =>
    stat === 'p95' || stat === 'p99' || (mw.p < alpha && Math.sign(mw.cliffsDelta) === direction)
  if (s.ratio.lo > 1 + o.threshold && s.difference.lo > o.minEffectMs && rankAgrees(1)) return 'regression'
  if (s.ratio.hi < 1 / (1 + o.threshold) && -s.difference.hi > o.minEffectMs && rankAgrees(-1)) {
    return 'improvement'
  }
  return 'no change'
}

function stageRow(
  model: string,
  stage: ComparedStage,
  base: RequestRecord[][],
  cand: RequestRecord[][],
  o: CompareOptions,
  seed: number,
  contention: Contention,
): StageRow {
  const ms = (blocks: RequestRecord[][]) => blocks.map((b) => b.map((r) => r.durations_us[stage] / 1000))
  const baseMs = ms(base)
  const candMs = ms(cand)
  const boot = bootstrapCompare(baseMs, candMs, {
    iterations: o.iterations,
    confidence: o.confidence,
    seed,
  })
  const mw = mannWhitneyU(candMs.flat(), baseMs.flat())
  const stats = {} as Record<SummaryStat, StatComparison>
  const reasons: string[] = []
  for (const s of SUMMARY_STATS) {
    const c = {
      baseline: boot.baseline[s],
      candidate: boot.candidate[s],
      ratio: boot.ratio[s],
      difference: boot.difference[s],
    }
    const verdict = statVerdict(s, c, mw, o)
    stats[s] = { ...c, verdict }
    if (verdict !== 'no change' && o.gate.includes(s)) {
      const d = c.difference.estimate
      reasons.push(
        `${s} ×${fmtRatio(c.ratio.estimate)} [${fmtRatio(c.ratio.lo)}, ${fmtRatio(c.ratio.hi)}], ${d >= 0 ? '+' : ''}${d.toFixed(2)} ms`,
      )
    }
  }
  const sums = (blocks: RequestRecord[][]) =>
    blocks.map((b) => {
      let st = 0
      let total = 0
      for (const r of b) {
        st += r.durations_us[stage]
        total += r.durations_us.total
      }
      return [st, total] as const
    })
  const share = bootstrapShareRatio(sums(base), sums(cand), {
    iterations: o.iterations,
    confidence: o.confidence,
    seed: seed + 7919,
  })
  const gated = o.gate.map((s) => stats[s].verdict)
  let verdict: Verdict = gated.includes('regression')
    ? 'regression'
    : gated.includes('improvement')
      ? 'improvement'
      : 'no change'
  // a busier machine slows every stage: only a stage that also took a larger share of the request stands
  // (an improvement on a quieter host is explained whatever its share: a stage elsewhere that
  // regressed shrinks every other stage's share)
  const candidateBusier = contention.busier === 'candidate' || contention.busier === 'both'
  const baselineBusier = contention.busier === 'baseline' || contention.busier === 'both'
  const explainedByContention =
    (verdict === 'regression' && candidateBusier && !(share.ratio.lo > 1 + o.threshold)) ||
    (verdict === 'improvement' && baselineBusier)
  if (explainedByContention) {
    reasons.push(
      `share of total ×${fmtRatio(share.ratio.estimate)} [${fmtRatio(share.ratio.lo)}, ${fmtRatio(share.ratio.hi)}]: ` +
        `no more than the busier host explains (${describeContention(contention)})`,
    )
    verdict = 'inconclusive'
  }
  return {
    kind: 'stage',
    model,
    stage,
    baselineRequests: baseMs.reduce((n, b) => n + b.length, 0),
    candidateRequests: candMs.reduce((n, b) => n + b.length, 0),
    stats,
    mannWhitney: mw,
    share,
    verdict,
    reasons,
  }
}

/** "foreign CPU 1.16 → 1.79 of 2 (candidate squeezed)" */
export function describeContention(c: Contention): string {
  const cpu = (l: HostLoad | null) => (l === null ? '?' : l.foreignCpus.toFixed(2))
  const squeezed = [c.baseline?.squeezed ? 'baseline' : '', c.candidate?.squeezed ? 'candidate' : '']
    .filter((x) => x !== '')
    .join(' and ')
  return (
    `foreign CPU ${cpu(c.baseline)} → ${cpu(c.candidate)} of ${c.candidate?.hostCpus ?? c.baseline?.hostCpus ?? '?'}` +
    (squeezed ? ` (${squeezed} squeezed: the engine used nearly all the CPU others left it)` : '')
  )
}

/** ok answers per second in each block; the last block only when it is the only one (it is cut short) */
function blockRates(blocks: RequestRecord[][], blockMs: number): number[][] {
  const full = blocks.length > 1 ? blocks.slice(0, -1) : blocks
  return full.map((b) => [b.length / (blockMs / 1000)])
}

/** Compares two selections of requests (see the module comment for how verdicts are reached). */
export function compareRuns(
  baseline: RunData,
  candidate: RunData,
  options: Partial<CompareOptions> = {},
): Comparison {
  const o: CompareOptions = { ...DEFAULT_COMPARE_OPTIONS, ...options }
  checkOptions(o)
  const base = prepare(baseline.requests, o)
  const cand = prepare(candidate.requests, o)
  const bLoad = hostLoad(baseline.host, base.startUs)
  const cLoad = hostLoad(candidate.host, cand.startUs)
  const contention: Contention = {
    baseline: bLoad,
    candidate: cLoad,
    busier: whichBusier(bLoad, cLoad, o.contentionToleranceCpus),
  }
  const rows: CompareRow[] = []
  const models = [...base.byModel.keys()].filter((m) => cand.byModel.has(m)).sort()
  let seed = o.seed
  for (const model of models) {
    const b = base.byModel.get(model)!
    const c = cand.byModel.get(model)!
    const bOk = b.blocks.some((x) => x.length > 0)
    const cOk = c.blocks.some((x) => x.length > 0)
    if (bOk && cOk) {
      for (const stage of COMPARED_STAGES) {
        rows.push(stageRow(model, stage, b.blocks, c.blocks, o, seed++, contention))
      }
      const rates = bootstrapCompare(blockRates(b.blocks, o.blockMs), blockRates(c.blocks, o.blockMs), {
        iterations: o.iterations,
        confidence: o.confidence,
        seed: seed++,
      })
      const r = rates.ratio.mean
      const verdict: Verdict =
        r.hi < 1 / (1 + o.threshold)
          ? contention.busier === 'candidate' || contention.busier === 'both'
            ? 'inconclusive'
            : 'regression'
          : r.lo > 1 + o.threshold
            ? contention.busier === 'baseline' || contention.busier === 'both'
              ? 'inconclusive'
              : 'improvement'
            : 'no change'
      rows.push({
        kind: 'throughput',
        model,
        baseline: rates.baseline.mean,
        candidate: rates.candidate.mean,
        ratio: r,
        verdict,
      })
    }
    const bRate = b.errors / b.all.length
    const cRate = c.errors / c.all.length
    const test = twoProportionTest(b.errors, b.all.length, c.errors, c.all.length)
    const significant = test.p < 1 - o.confidence
    rows.push({
      kind: 'error_rate',
      model,
      baseline: bRate,
      candidate: cRate,
      baselineRequests: b.all.length,
      candidateRequests: c.all.length,
      p: test.p,
      verdict:
        significant && cRate - bRate > o.maxErrorRateIncrease
          ? 'regression'
          : significant && bRate - cRate > o.maxErrorRateIncrease
            ? 'improvement'
            : 'no change',
    })
  }
  return {
    options: o,
    contention,
    rows,
    onlyInBaseline: [...base.byModel.keys()].filter((m) => !cand.byModel.has(m)).sort(),
    onlyInCandidate: [...cand.byModel.keys()].filter((m) => !base.byModel.has(m)).sort(),
    regressions: rows.filter((r) => r.verdict === 'regression'),
    improvements: rows.filter((r) => r.verdict === 'improvement'),
  }
}

function checkOptions(o: CompareOptions): void {
  const bad = (what: string) => {
    throw new InvalidInputError(what)
  }
  if (!(o.threshold >= 0 && Number.isFinite(o.threshold))) bad(`threshold ${o.threshold} must be >= 0`)
  if (!(o.minEffectMs >= 0 && Number.isFinite(o.minEffectMs))) bad(`min effect ${o.minEffectMs} must be >= 0`)
  if (!(o.confidence > 0.5 && o.confidence < 1)) bad(`confidence ${o.confidence} must be in (0.5, 1)`)
  if (!(o.blockMs > 0)) bad(`block ${o.blockMs} ms must be > 0`)
  if (!(o.warmupMs >= 0)) bad(`warm-up ${o.warmupMs} ms must be >= 0`)
  if (o.gate.length === 0) bad('gate on at least one statistic')
  if (!(o.contentionToleranceCpus >= 0)) bad(`contention tolerance ${o.contentionToleranceCpus} must be >= 0`)
  for (const s of o.gate) if (!SUMMARY_STATS.includes(s)) bad(`unknown statistic "${s}"`)
}

/** Mean of a stage over requests (ms), for reports that need one number. */
export function meanMs(records: readonly RequestRecord[], stage: ComparedStage): number {
  return mean(records.map((r) => r.durations_us[stage] / 1000))
}
