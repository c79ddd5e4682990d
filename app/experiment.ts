/**
 * Runs an experiment plan (compare/experiment.ts): for every repetition, every cell of the grid in
 * turn — a fresh engine with the cell's settings, warm-up load under the run id `<cell run>.warmup`
 * (discarded), then the measured load under `<experiment>.<cell>.r<repetition>` — with telemetry
 * ingested into the store like any run, so each cell's runs can be compared or queried afterwards.
 * Repetitions go round the whole grid (c01 c02 … c01 c02 …) rather than one cell at a time, so a
 * slow stretch of the machine falls on several cells instead of all repetitions of one.
 */
import type { Logger } from 'pino'
import { compareRuns } from '../compare/compare.ts'
import { readCost } from '../compare/cost.ts'
import {
  bestCell,
  type CellResult,
  type CellRun,
  type ExperimentPlan,
  type ExperimentReport,
  gridCells,
  markParetoFront,
  pooledRun,
  summarizeCell,
  totalVerdict,
} from '../compare/experiment.ts'
import { type NamedQuery, parseSelection, readRun } from '../compare/source.ts'
import { buildEngineApp } from '../engine/http.ts'
import { inferBody, runClosedLoop, runLoad } from '../engine/loadgen.ts'
import { precisionDeviation } from '../engine/models/precision.ts'
import { getModel } from '../engine/models/zoo.ts'
import { runNamedQuery } from '../queries/runner.ts'
import type { BreakidConfig } from './config.ts'
import { parseModelFlag } from './flags.ts'
import { defaultDetectors, startPipeline } from './pipeline.ts'
import { engineFromConfig } from './engine.ts'
import { openStore, openTransport } from './runtime.ts'

export interface ExperimentRunOptions {
  plan: ExperimentPlan
  cfg: BreakidConfig
  logger: Logger
  experimentId: string
  /** progress lines */
  out: (line: string) => void
}

export async function runExperiment(o: ExperimentRunOptions): Promise<ExperimentReport> {
  const { plan, cfg, logger } = o
  const model = parseModelFlag(plan.model)
  const cells = gridCells(plan)
  const pricing = plan.pricing ?? cfg.pricing
  const ch = await openStore(cfg)
  const transport = await openTransport(cfg, logger)
  const pipeline = await startPipeline({ transport, logger, clickhouse: ch, detectors: defaultDetectors() })
  const bodies = Array.from({ length: plan.distinctInputs }, (_, seed) =>
    inferBody(getModel(model.name).inputGenerator(seed, 1, model.options), 'json'),
  )
  const measured = new Map<string, { runId: string; report: Awaited<ReturnType<typeof runLoad>> }[]>()
  let emitted = 0
  try {
    for (let rep = 1; rep <= plan.repetitions; rep++) {
      for (const cell of cells) {
        const runId = `${o.experimentId}.${cell.id}.r${rep}`
        const s = cell.settings
        const engine = engineFromConfig(
          {
            ...cfg,
            // the cells are measured without OTLP export, whatever the configuration says (as before)
            otlpEndpoint: undefined,
            models: [{ name: model.name, options: { ...model.options, precision: s.precision } }],
            batching: { mode: s.batching, maxBatchSize: s.maxBatchSize, maxQueueDelayMs: s.maxQueueDelayMs },
            cacheEntries: s.cacheEntries,
            preprocess: { workers: s.preprocessWorkers },
            runId: `${runId}.warmup`,
          },
          { transport, logger },
        )
        await engine.start()
        const app = buildEngineApp(engine)
        const address = await app.listen({ host: '127.0.0.1', port: 0 })
        const url = `${address}/v2/models/${model.name}/infer`
        const load = (durationMs: number) =>
          cell.load.mode === 'rate'
            ? runLoad({ url, bodies, ratePerSec: cell.load.level, durationMs, maxOutstanding: 4096 })
            : runClosedLoop({ url, bodies, concurrency: cell.load.level, durationMs })
        try {
          if (plan.warmupS > 0) await load(plan.warmupS * 1000)
          await engine.sampler.tick() // the warm-up's last sample stays in the warm-up run
          engine.runId = runId
          const report = await load(plan.durationS * 1000)
          await engine.sampler.tick()
          measured.set(cell.id, [...(measured.get(cell.id) ?? []), { runId, report }])
          o.out(
            `[experiment] ${runId}: ${report.throughputPerSec} ok/s, p50 ${report.latencyMs.p50} ms, p99 ${report.latencyMs.p99} ms, ${report.sent - report.ok} errors`,
          )
        } finally {
          await app.close()
          await engine.stop()
          emitted += engine.completions
        }
      }
    }
    await waitForIngest(pipeline, emitted, o.out)
    const query: NamedQuery = (name, params) => runNamedQuery(ch, name, params)
    const results: CellResult[] = []
    for (const cell of cells) {
      const runs: CellRun[] = []
      for (const { runId, report } of measured.get(cell.id) ?? []) {
        const selection = parseSelection(`run:${runId}`)
        const { requests, host } = await readRun(query, selection)
        const cost = pricing
          ? (await readCost(query, selection, pricing)).reduce((sum, row) => sum + row.cost, 0)
          : null
        runs.push({
          runId,
          throughputPerSec: report.throughputPerSec,
          p50Ms: report.latencyMs.p50,
          p99Ms: report.latencyMs.p99,
          sent: report.sent + report.droppedAtClient,
          ok: report.ok,
          cost,
          requests,
          host,
        })
      }
      results.push(summarizeCell(cell, runs, plan.slo))
    }
    markParetoFront(results)
    const best = bestCell(results)
    // cells are judged against the best, or (no cell meets the SLO) against the lowest p99
    const reference = best ?? results.reduce((a, b) => (b.p99Ms < a.p99Ms ? b : a))
    if (reference) {
      const pooledBest = pooledRun(reference.runs)
      for (const c of results) {
        if (c === reference || c.runs.every((r) => r.requests.length === 0)) continue
        // blocks of a tenth of a repetition (at most the 2 s of compare's default), so a short run has some
        const blockMs = Math.max(100, Math.min(2000, (plan.durationS * 1000) / 10))
        const comparison = compareRuns(pooledBest, pooledRun(c.runs), {
          warmupMs: 0,
          iterations: 400,
          blockMs,
        })
        c.vsBest = totalVerdict(comparison)
      }
    }
    const precisions = [...new Set(cells.map((c) => c.settings.precision))].filter((p) => p !== 'fp32')
    const precision = []
    for (const p of precisions) {
      const d = await precisionDeviation(model.name, model.options ?? {}, p, { cacheDir: cfg.modelCacheDir })
      precision.push({ precision: p, maxAbs: d.maxAbs, meanAbs: d.meanAbs, maxAbsFp32: d.maxAbsFp32 })
    }
    return {
      experiment: o.experimentId,
      plan,
      cells: results,
      best: best?.cell.id ?? null,
      reference: reference?.cell.id ?? null,
      precision,
      currency: pricing?.currency ?? null,
    }
  } finally {
    await pipeline.stop()
    await transport.close()
    await ch.close()
  }
}

/** Waits (bounded) until the ingester stored every span the engines emitted. */
async function waitForIngest(
  pipeline: Awaited<ReturnType<typeof startPipeline>>,
  emitted: number,
  out: (line: string) => void,
): Promise<void> {
  const deadline = Date.now() + 60_000
  for (;;) {
    const stored = pipeline.ingester?.counters.get('rows_stored_total', { table: 'spans' }) ?? emitted
    if (stored >= emitted) return
    if (Date.now() > deadline) {
      out(
        `[experiment] ingest did not catch up in time (${stored}/${emitted} spans stored); the report reads what is stored`,
      )
      return
    }
    await new Promise((r) => setTimeout(r, 100))
  }
}
