/**
 * `breakid compare`: a candidate run against a baseline, per model and stage, as a CI gate — exit 1
 * when a regression passes the threshold, 0 otherwise (compare/compare.ts says how verdicts are
 * reached). Reads the store, or a running `breakid up` over its query API.
 */
import { InvalidInputError } from '../../core/errors.ts'
import { COMPARE_FORMATS, type CompareFormat, renderComparison } from '../../compare/report.ts'
import { type CompareOptions, compareRuns, DEFAULT_COMPARE_OPTIONS } from '../../compare/compare.ts'
import { readCost } from '../../compare/cost.ts'
import { type NamedQuery, parseSelection, readRun } from '../../compare/source.ts'
import { SUMMARY_STATS, type SummaryStat } from '../../compare/stats.ts'
import { runNamedQuery } from '../../queries/runner.ts'
import { parseDurationMs, parsePositive } from '../../app/flags.ts'
import { loadConfig } from '../../app/config.ts'
import { queryLimits } from '../../app/access.ts'
import type { Command } from '../command.ts'
import { runningUp, viaRunningUp, withStore } from './query.ts'

const d = DEFAULT_COMPARE_OPTIONS

export const compare: Command = {
  summary: 'compare a candidate run with a baseline per model and stage; exit 1 on a regression (CI gate)',
  usage:
    'breakid compare --baseline run:<id>|FROM..TO --candidate run:<id>|FROM..TO [--threshold 0.25] [--min-effect-ms 1] [--format table|markdown|json]',
  options: {
    baseline: { type: 'string' },
    candidate: { type: 'string' },
    model: { type: 'string' },
    threshold: { type: 'string', default: String(d.threshold) },
    'min-effect-ms': { type: 'string', default: String(d.minEffectMs) },
    confidence: { type: 'string', default: String(d.confidence) },
    gate: { type: 'string', default: d.gate.join(',') },
    warmup: { type: 'string', default: `${d.warmupMs}ms` },
    block: { type: 'string', default: `${d.blockMs}ms` },
    iterations: { type: 'string', default: String(d.iterations) },
    seed: { type: 'string', default: String(d.seed) },
    'max-error-rate-increase': { type: 'string', default: String(d.maxErrorRateIncrease) },
    'contention-tolerance': { type: 'string', default: String(d.contentionToleranceCpus) },
    format: { type: 'string', default: 'table' },
  },
  help: {
    baseline: 'what to compare against: run:<run id>, or a time range FROM..TO (ISO 8601, epoch, now, -2h)',
    candidate: 'what is judged: run:<run id> or FROM..TO',
    model: 'only this model (default: every model in both)',
    threshold: `relative minimum effect: the ratio's confidence interval must clear 1 + this (default ${d.threshold})`,
    'min-effect-ms': `absolute minimum effect: the difference's interval must clear it, ms (default ${d.minEffectMs})`,
    confidence: `two-sided confidence of intervals and rank test (default ${d.confidence})`,
    gate: `statistics that decide a verdict, of ${SUMMARY_STATS.join(',')} (default ${d.gate.join(',')})`,
    warmup: `dropped from the start of each run (default ${d.warmupMs / 1000}s)`,
    block: `block bootstrap window: requests this close in time are resampled together (default ${d.blockMs / 1000}s)`,
    iterations: `bootstrap resamples (default ${d.iterations})`,
    seed: 'bootstrap seed (default 1): the same data and seed give the same report',
    'max-error-rate-increase': `error-rate increase that is a regression, 0..1 (default ${d.maxErrorRateIncrease})`,
    'contention-tolerance': `CPUs of foreign load the runs may differ by before slowdowns count as the host's (default ${d.contentionToleranceCpus})`,
    format: 'table (default), markdown (a pull-request comment) or json',
  },
  async run({ values }) {
    if (values.baseline === undefined || values.candidate === undefined) {
      throw new InvalidInputError('name both --baseline and --candidate (run:<id> or FROM..TO)')
    }
    const baseline = parseSelection(String(values.baseline))
    const candidate = parseSelection(String(values.candidate))
    const format = String(values.format) as CompareFormat
    if (!COMPARE_FORMATS.includes(format)) {
      throw new InvalidInputError(`--format: expected one of ${COMPARE_FORMATS.join(', ')}`)
    }
    const options = compareOptions(values)
    const cfg = loadConfig(values)
    const model = values.model === undefined ? undefined : String(values.model)
    const up = runningUp(cfg)
    const work = async (query: NamedQuery) => {
      const [b, c] = [await readRun(query, baseline, { model }), await readRun(query, candidate, { model })]
      for (const [sel, run] of [
        [baseline, b],
        [candidate, c],
      ] as const) {
        if (run.requests.length === 0) {
          throw new InvalidInputError(
            `${sel.label}: no requests stored for it ("breakid query runs" lists the runs)`,
          )
        }
      }
      const cost = cfg.pricing
        ? {
            baseline: await readCost(query, baseline, cfg.pricing),
            candidate: await readCost(query, candidate, cfg.pricing),
            currency: cfg.pricing.currency,
          }
        : undefined
      return { comparison: compareRuns(b, c, options), cost }
    }
    const { comparison, cost } = up
      ? await work((name, params) =>
          viaRunningUp(cfg, up, `/api/queries/${encodeURIComponent(name)}`, params),
        )
      : await withStore(cfg, (ch) =>
          work((name, params) => runNamedQuery(ch, name, params, { limits: queryLimits(cfg) })),
        )
    process.stdout.write(
      `${renderComparison({ baseline: baseline.label, candidate: candidate.label, comparison, cost }, format)}\n`,
    )
    return comparison.regressions.length > 0 ? 1 : 0
  },
}

function compareOptions(values: Record<string, unknown>): CompareOptions {
  const fraction = (flag: string, lo: number, hi: number) => {
    const n = Number(values[flag])
    if (!Number.isFinite(n) || n < lo || n > hi) {
      throw new InvalidInputError(`--${flag}: "${values[flag]}" is not a number from ${lo} to ${hi}`)
    }
    return n
  }
  const gate = String(values.gate)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
  for (const s of gate) {
    if (!(SUMMARY_STATS as readonly string[]).includes(s)) {
      throw new InvalidInputError(`--gate: "${s}" is not one of ${SUMMARY_STATS.join(', ')}`)
    }
  }
  const warmup = String(values.warmup)
  return {
    threshold: fraction('threshold', 0, 100),
    minEffectMs: fraction('min-effect-ms', 0, 1e7),
    confidence: fraction('confidence', 0.5, 0.9999),
    gate: gate as SummaryStat[],
    warmupMs: warmup === '0' || warmup === '0s' ? 0 : parseDurationMs(warmup, 'warmup'),
    blockMs: parseDurationMs(values.block, 'block'),
    iterations: parsePositive(values.iterations, 'iterations', { integer: true, max: 100_000 }),
    seed: fraction('seed', 0, 2 ** 32 - 1),
    maxErrorRateIncrease: fraction('max-error-rate-increase', 0, 1),
    contentionToleranceCpus: fraction('contention-tolerance', 0, 1024),
  }
}
