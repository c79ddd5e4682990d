/**
 * onnxruntime-node alone, no HTTP: how much batching can gain per model, before any serving overhead.
 *
 * For each model spec (default the cnn at widths 1, 2, 4, 8) and batch size (1, 4, 8, 16, 32) it times
 * `session.run` with the engine's session options (engine/executor.ts: CPU, 1 intra-op thread,
 * graphOptimizationLevel 'all') and reports ms per call, ms per row, rows/s and the gain in rows/s over
 * batch 1. The time is split into short rounds and the fastest round counts (wall clock); the process CPU
 * time per call (median over rounds) is reported too. Both keep a noisy neighbour on a shared host from
 * inflating the numbers much: being descheduled only slows some rounds and costs no CPU time.
 *
 * Run: node --import tsx bench/ort-batch-scaling.ts [secondsPerPoint=0.5] [models=cnn,cnn:w=2,cnn:w=4,cnn:w=8]
 * (models as `breakid serve --models` takes them). Writes bench/results/ort-batch-scaling.json.
 */
import { writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import ort from 'onnxruntime-node'
import { parseModelsFlag } from '../app/flags.ts'
import { ensureModel, getModel } from '../engine/models/zoo.ts'
import { machineInfo } from '../core/machine.ts'

const SECONDS_PER_POINT = Number(process.argv[2] ?? 0.5)
const MODELS_FLAG = process.argv[3] ?? 'cnn,cnn:w=2,cnn:w=4,cnn:w=8'
const BATCHES = [1, 4, 8, 16, 32]
const ROUNDS = 10
const MODEL_CACHE_DIR = fileURLToPath(new URL('../.cache/models', import.meta.url))

const r3 = (x: number) => Math.round(x * 1000) / 1000
const min = (xs: number[]) => Math.min(...xs)
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

interface Point {
  batch: number
  /** fastest round's wall-clock ms per call */
  msPerCall: number
  /** median round's process CPU ms per call (onnxruntime computes on the calling thread here) */
  cpuMsPerCall: number
  msPerRow: number
  rowsPerSec: number
  /** rows/s relative to batch 1 */
  gainVsBatch1: number
}

const loadBefore = loadavg()
const results: { model: string; parameters: number; points: Point[] }[] = []
for (const spec of parseModelsFlag(MODELS_FLAG)) {
  const label = spec.options?.widthScale ? `${spec.name}:w=${spec.options.widthScale}` : spec.name
  const model = await ensureModel(spec.name, { cacheDir: MODEL_CACHE_DIR, options: spec.options })
  const session = await ort.InferenceSession.create(model.path, {
    executionProviders: ['cpu'],
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  })
  const points: Point[] = []
  for (const batch of BATCHES) {
    const feeds: Record<string, ort.Tensor> = {}
    for (const t of model.inputGenerator(batch, batch)) {
      feeds[t.name] =
        t.datatype === 'FP32'
          ? new ort.Tensor('float32', t.data, t.shape)
          : new ort.Tensor('int64', t.data, t.shape)
    }
    for (let i = 0; i < 3; i++) await session.run(feeds) // warm-up
    const wallPerRound: number[] = []
    const cpuPerRound: number[] = []
    for (let round = 0; round < ROUNDS; round++) {
      const t0 = performance.now()
      const cpu0 = process.cpuUsage()
      let calls = 0
      while (performance.now() - t0 < (SECONDS_PER_POINT * 1000) / ROUNDS || calls < 2) {
        await session.run(feeds)
        calls++
      }
      const cpu = process.cpuUsage(cpu0)
      wallPerRound.push((performance.now() - t0) / calls)
      cpuPerRound.push((cpu.user + cpu.system) / 1000 / calls)
    }
    const ms = min(wallPerRound)
    points.push({
      batch,
      msPerCall: r3(ms),
      cpuMsPerCall: r3(median(cpuPerRound)),
      msPerRow: r3(ms / batch),
      rowsPerSec: Math.round((1000 * batch) / ms),
      gainVsBatch1: 0,
    })
  }
  for (const p of points) p.gainVsBatch1 = Math.round((p.rowsPerSec / points[0]!.rowsPerSec) * 100) / 100
  await session.release()
  results.push({ model: label, parameters: getModel(spec.name).parameterCount(spec.options), points })
}
const loadAfter = loadavg()

console.log(
  `onnxruntime-node ${ort.env.versions.common}, CPU, 1 intra-op thread; ms per call = fastest of ${ROUNDS} rounds (wall), cpu = median round's CPU ms per call`,
)
console.log(
  `model        params     ${BATCHES.map((b) => `b=${b} ms`.padStart(10)).join('')}  ${BATCHES.map((b) => `rows/s@${b}`.padStart(11)).join('')}  gain@16  gain@32  ${BATCHES.map((b) => `cpu@${b}`.padStart(9)).join('')}`,
)
for (const r of results) {
  const at = (b: number) => r.points.find((p) => p.batch === b)!
  console.log(
    `${r.model.padEnd(12)} ${String(r.parameters).padStart(9)}  ${r.points.map((p) => String(p.msPerCall).padStart(10)).join('')}  ${r.points.map((p) => String(p.rowsPerSec).padStart(11)).join('')}  ${`${at(16).gainVsBatch1}×`.padStart(7)}  ${`${at(32).gainVsBatch1}×`.padStart(7)}  ${r.points.map((p) => String(p.cpuMsPerCall).padStart(9)).join('')}`,
  )
}
console.log(
  `host load average (1 min) ${loadBefore[0]!.toFixed(2)} before, ${loadAfter[0]!.toFixed(2)} after`,
)

writeFileSync(
  new URL('./results/ort-batch-scaling.json', import.meta.url),
  `${JSON.stringify(
    {
      machine: {
        ...machineInfo(),
        loadavg1mBefore: Math.round(loadBefore[0]! * 100) / 100,
        loadavg1mAfter: Math.round(loadAfter[0]! * 100) / 100,
      },
      method: {
        runtime: `onnxruntime-node ${ort.env.versions.common}`,
        session: { executionProviders: ['cpu'], intraOpNumThreads: 1, graphOptimizationLevel: 'all' },
        secondsPerPoint: SECONDS_PER_POINT,
        rounds: ROUNDS,
        statistic:
          'msPerCall: the fastest round (wall clock, mean ms per session.run call in the round); cpuMsPerCall: median over rounds of process CPU ms per call',
        batches: BATCHES,
      },
      models: results,
    },
    null,
    2,
  )}\n`,
)
