/**
 * `breakid experiment --plan plan.json`: a grid of engine settings × load levels, each cell warmed up
 * (discarded) and measured `repetitions` times, stored as runs; then the Pareto table (throughput, p99,
 * cost per 1,000), the best configuration meeting the SLO, and each cell against the best.
 */
import { writeFileSync } from 'node:fs'
import { InvalidInputError } from '../../core/errors.ts'
import { createLogger } from '../../core/logger.ts'
import { newRunId, runIdProblem } from '../../contract/run-id.ts'
import { gridCells, loadPlan, renderExperiment } from '../../compare/experiment.ts'
import { loadConfig } from '../../app/config.ts'
import { runExperiment } from '../../app/experiment.ts'
import type { Command } from '../command.ts'

const FORMATS = ['table', 'markdown', 'json'] as const

export const experiment: Command = {
  summary:
    'run a grid of engine settings × load levels and report the Pareto front, cost and the best config',
  usage: 'breakid experiment --plan plan.json [--format table|markdown|json] [--out report.json] [--id NAME]',
  options: {
    plan: { type: 'string' },
    format: { type: 'string', default: 'table' },
    out: { type: 'string' },
    id: { type: 'string' },
  },
  help: {
    plan: 'the plan: model, settings (lists: batching, maxBatchSize, maxQueueDelayMs, cacheEntries, preprocessWorkers, precision), load (rates or concurrency), durationS, warmupS, repetitions, slo, pricing (README: "Prove a change")',
    format: 'table (default), markdown or json',
    out: 'also write the report as JSON to this file',
    id: 'experiment id, the prefix of every cell run id (default: the plan name or exp-<UTC time>-<random>)',
  },
  async run({ values }) {
    if (values.plan === undefined) throw new InvalidInputError('--plan: name the plan file')
    const format = String(values.format) as (typeof FORMATS)[number]
    if (!FORMATS.includes(format))
      throw new InvalidInputError(`--format: expected one of ${FORMATS.join(', ')}`)
    const plan = loadPlan(String(values.plan))
    const cfg = loadConfig(values)
    const id =
      values.id === undefined
        ? plan.name
          ? `${plan.name}-${newRunId('x').slice(-4)}`
          : newRunId('exp')
        : String(values.id)
    const problem = runIdProblem(`${id}.c00.r00.warmup`)
    if (problem) throw new InvalidInputError(`--id "${id}": ${problem} (with the cell suffix)`)
    const cells = gridCells(plan)
    const seconds = cells.length * plan.repetitions * (plan.durationS + plan.warmupS)
    const say = (line: string) => process.stderr.write(`${line}\n`)
    say(`run: ${id}`)
    say(
      `[experiment] ${cells.length} cells × ${plan.repetitions} repetition(s): about ${Math.ceil(seconds / 60)} min of load`,
    )
    const report = await runExperiment({
      plan,
      cfg,
      logger: createLogger(cfg.logLevel),
      experimentId: id,
      out: say,
    })
    if (values.out !== undefined) writeFileSync(String(values.out), renderExperiment(report, 'json'))
    process.stdout.write(`${renderExperiment(report, format)}\n`)
    return 0
  },
}
