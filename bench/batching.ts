/**
 * Dynamic batching: none vs static vs adaptive, on the CNN and a wider CNN, side by side in one run.
 *
 * Models (default `cnn,cnn:w=8`): the default `cnn` (conv 16/32, fc 64) costs onnxruntime only ~0.1–0.2 ms
 * per call at batch 1, less than the engine's HTTP work per request, so batching can gain little on it;
 * `cnn:w=8` (conv 128/256, fc 512, still a CIFAR-10-scale classifier, ~7 ms at batch 1, 2.8× more rows/s
 * at batch 16) is a CNN whose compute outweighs HTTP, as an image model's usually does
 * (bench/ort-batch-scaling.ts measures onnxruntime alone; `cnn:w=4` gains only 1.4× there).
 * The models run one after the other, each through all three modes with the same load steps.
 *
 * Each mode gets a fresh engine (the model under test, telemetry off so only batching differs) behind real
 * HTTP on 127.0.0.1, and the open-loop load generator (engine/loadgen.ts, Poisson arrivals, latency
 * from the scheduled send time) runs in a child process so it does not share the engine's event loop.
 * Requests use the binary tensor extension by default (JSON header + raw little-endian FP32, binary
 * outputs), as Triton's perf_analyzer sends them: with JSON bodies the engine's event loop spends
 * ~1.5 ms per cnn request turning 3 072 decimal numbers into floats, which no batching can amortize.
 * Per mode:
 *
 *   - low load: LOW_RATE req/s for LOW_SECONDS; p50/p99 there;
 *   - saturation: the offered rate steps up (RATES, STEP_SECONDS each) until a step fails; the
 *     saturation point is the highest rate where ≥ 99 % of the requests scheduled answered 200 (client
 *     drops and timeouts count as failures) and p99 ≤ P99_BOUND_MS; two failed steps in a row end the
 *     ramp, then REFINE_ROUNDS bisection steps narrow the gap between the highest passing and the
 *     lowest failing rate. Its throughput and p99 are reported.
 *
 * Targets (issue 3): adaptive ≥ 2× the saturation throughput of no batching at a p99 no worse than 2×
 * no-batching's p99 at its own saturation point, and adaptive's p99 at low load below static's.
 *
 * Run: node --import tsx bench/batching.ts [stepSeconds=3] [p99BoundMs=250] [json|binary=binary] [models=cnn,cnn:w=8]
 * (models as `breakid serve --models` takes them, e.g. `cnn` or `resnet50:w=0.5,r=32`, the demo model)
 * Writes bench/results/batching.json with machineInfo(), one entry per model.
 */
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { BatcherOptions, BatcherStats, BatchingMode } from '../engine/batcher.ts'
import {
  BODY_ENCODINGS,
  type BodyEncoding,
  inferBody,
  type LoadgenOptions,
  type LoadgenReport,
  runLoad,
} from '../engine/loadgen.ts'
import { getModel } from '../engine/models/zoo.ts'
import type { ModelSpec } from '../engine/registry.ts'
import { machineInfo } from '../core/machine.ts'

const STEP_SECONDS = Number(process.argv[2] ?? 3)
const LOW_RATE = 20
const LOW_SECONDS = 30
// generous because the 2-core host is shared: neighbours' CPU bursts put 100 ms+ into the tail at
// any load, while past saturation the p99 runs into seconds
const P99_BOUND_MS = Number(process.argv[3] ?? 250)
// binary tensor extension by default, as Triton's perf_analyzer sends: with JSON the engine's event
// loop spends its time turning thousands of decimal numbers into floats, and batching cannot help that
const BODY = (process.argv[4] ?? 'binary') as BodyEncoding
if (process.argv[2] !== '--loadgen' && !BODY_ENCODINGS.includes(BODY)) {
  throw new Error(`body encoding "${BODY}" is not one of ${BODY_ENCODINGS.join(', ')}`)
}
const MODELS_FLAG = process.argv[2] === '--loadgen' ? '' : (process.argv[5] ?? 'cnn,cnn:w=8')
const OK_FRACTION = 0.99
/** bisection steps between the highest passing and the lowest failing rate of the ladder (to within 4 %) */
const REFINE_ROUNDS = 3
const RATES = [50, 100, 150, 200, 250, 300, 350, 400, 500, 600, 700, 800, 1000, 1200, 1500, 2000]
const MODEL_CACHE_DIR = fileURLToPath(new URL('../.cache/models', import.meta.url))
const MAX_BATCH = 16

const MODES: { mode: BatchingMode; batching: BatcherOptions; describe: string }[] = [
  { mode: 'none', batching: { mode: 'none' }, describe: 'every request alone' },
  {
    mode: 'static',
    batching: { mode: 'static', maxBatchSize: MAX_BATCH, maxQueueDelayMs: 5, preferredBatchSizes: [8, 16] },
    describe: `max ${MAX_BATCH}, delay 5 ms, preferred 8,16`,
  },
  {
    mode: 'adaptive',
    batching: { mode: 'adaptive', maxBatchSize: MAX_BATCH, latencyTargetMs: 50 },
    describe: `max ${MAX_BATCH}, latency target 50 ms`,
  },
]

/** child process: one load step, report as JSON on stdout */
if (process.argv[2] === '--loadgen') {
  const opts = JSON.parse(process.argv[3]!) as Omit<LoadgenOptions, 'bodies'>
  const encoding = process.argv[4] as BodyEncoding
  const spec = JSON.parse(process.argv[5]!) as ModelSpec
  const bodies = Array.from({ length: 16 }, (_, seed) =>
    inferBody(getModel(spec.name).inputGenerator(seed, 1, spec.options), encoding),
  )
  const cpu0 = process.cpuUsage()
  const report = await runLoad({ ...opts, bodies })
  const cpu = process.cpuUsage(cpu0)
  process.stdout.write(JSON.stringify({ ...report, cpuUs: cpu.user + cpu.system } satisfies StepReport))
  process.exit(0)
}

/** the models under test (parent only; imported late so the child stays light) */
const MODEL_SPECS: ModelSpec[] = MODELS_FLAG
  ? (await import('../app/flags.ts')).parseModelsFlag(MODELS_FLAG)
  : []
/** `cnn`, `cnn:w=4`, `resnet50:w=0.5,r=32`: how a spec is written on the command line */
const specLabel = (spec: ModelSpec) => {
  const o = spec.options ?? {}
  const kv = [
    o.widthScale !== undefined ? `w=${o.widthScale}` : '',
    o.resolution !== undefined ? `r=${o.resolution}` : '',
  ].filter(Boolean)
  return `${spec.name}${spec.version ? `@${spec.version}` : ''}${kv.length ? `:${kv.join(',')}` : ''}`
}

/** a load step's report, with the load generator's own CPU time during the run */
type StepReport = LoadgenReport & { cpuUs: number }

function loadStep(spec: ModelSpec, url: string, ratePerSec: number, seconds: number): Promise<StepReport> {
  const opts: Omit<LoadgenOptions, 'bodies'> = {
    url,
    ratePerSec,
    durationMs: seconds * 1000,
    arrival: 'poisson',
    timeoutMs: 5000,
    maxOutstanding: 1024,
    seed: ratePerSec,
  }
  const self = fileURLToPath(import.meta.url)
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', self, '--loadgen', JSON.stringify(opts), BODY, JSON.stringify(spec)],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    )
    let out = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
    })
    child.on('error', reject)
    child.on('exit', (code) => {
      if (code !== 0) reject(new Error(`loadgen exited ${code}`))
      else resolve(JSON.parse(out) as StepReport)
    })
  })
}

interface Step {
  rate: number
  pass: boolean
  okFraction: number
  throughputPerSec: number
  p50: number
  p99: number
  meanBatch: number
  /** per answered request, µs: the engine process's CPU (all of it: HTTP, parsing, compute — onnxruntime-node
   * computes on the event loop), the executor's compute within it, and the load generator's CPU */
  perRequestUs: { engineCpu: number; compute: number; loadgenCpu: number }
}

async function startEngine(model: ModelSpec, batching: BatcherOptions) {
  // imported here, not at the top: the load-generator child loads only what it needs
  const [{ engineFromConfig }, { buildEngineApp }, { createLogger }, { EmbeddedBus }] = await Promise.all([
    import('../app/engine.ts'),
    import('../engine/http.ts'),
    import('../core/logger.ts'),
    import('../bus/embedded-bus.ts'),
  ])
  const logger = createLogger('silent')
  const engine = engineFromConfig(
    {
      kafkaBrokers: [],
      topicPrefix: '',
      logLevel: 'silent',
      recordsPerMessage: 64,
      modelCacheDir: MODEL_CACHE_DIR,
      fleet: 'bench',
      instance: 'bench-batching',
      executionProvider: 'cpu',
      otlpEndpoint: undefined,
      models: [model],
      telemetry: false,
      hwIntervalMs: 3_600_000,
      batching,
    },
    { transport: new EmbeddedBus(), logger },
  )
  await engine.start()
  const app = buildEngineApp(engine)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  const executor = () => engine.models.get(model.name)!.executor
  return {
    url: `http://127.0.0.1:${port}/v2/models/${model.name}/infer`,
    /** mean rows per batch since the last call */
    meanBatch: (() => {
      let rows = 0
      let batches = 0
      return (answered: number) => {
        const e = executor()
        const mean = e.batches > batches ? (answered - rows) / (e.batches - batches) : 0
        rows = answered
        batches = e.batches
        return mean
      }
    })(),
    stats: () => engine.models.get(model.name)!.batcher.stats,
    busyUs: () => executor().busyUs,
    close: async () => {
      await app.close()
      await engine.stop()
    },
  }
}

type Row = { mode: string; low: { p99: number; p50: number }; saturation: Step | null; config: string }

/** All three modes on one model: low load, then the ramp to saturation; its results, ratios and targets. */
async function benchModel(spec: ModelSpec) {
  const label = specLabel(spec)
  const modelT0 = performance.now()
  console.log(`\n=== ${label} ===`)
  // All three engines up at once; every load step runs the modes back to back, so a noisy neighbour
  // on the host hits all of them alike (an idle engine costs nothing).
  const engines = await Promise.all(
    MODES.map(async (m) => ({ ...m, engine: await startEngine(spec, m.batching) })),
  )
  const answered = new Map<BatchingMode, number>()
  const track = (mode: BatchingMode, r: StepReport) => {
    answered.set(mode, (answered.get(mode) ?? 0) + r.ok)
    return r
  }
  for (const { mode, engine } of engines) {
    track(mode, await loadStep(spec, engine.url, 100, 2)) // warm-up: JIT, sockets, the adaptive cost fit
    engine.meanBatch(answered.get(mode)!)
  }
  const lows = new Map<BatchingMode, { report: LoadgenReport; meanBatch: number }>()
  for (const { mode, engine } of engines) {
    const report = track(mode, await loadStep(spec, engine.url, LOW_RATE, LOW_SECONDS))
    lows.set(mode, { report, meanBatch: engine.meanBatch(answered.get(mode)!) })
    console.log(
      `${mode.padEnd(8)} low load ${LOW_RATE} req/s: p50 ${report.latencyMs.p50} p99 ${report.latencyMs.p99} ms`,
    )
  }
  const stepsOf = new Map<BatchingMode, Step[]>(MODES.map((m) => [m.mode, []]))
  const step = async ({ mode, engine }: (typeof engines)[number], rate: number): Promise<Step> => {
    const cpu0 = process.cpuUsage()
    const busy0 = engine.busyUs()
    const r = track(mode, await loadStep(spec, engine.url, rate, STEP_SECONDS))
    const cpu = process.cpuUsage(cpu0)
    const perOk = (us: number) => (r.ok > 0 ? Math.round(us / r.ok) : 0)
    const scheduled = r.sent + r.droppedAtClient
    const okFraction = scheduled > 0 ? r.ok / scheduled : 0
    const s: Step = {
      rate,
      pass: okFraction >= OK_FRACTION && r.latencyMs.p99 <= P99_BOUND_MS,
      okFraction: r2(okFraction),
      throughputPerSec: r.throughputPerSec,
      p50: r.latencyMs.p50,
      p99: r.latencyMs.p99,
      meanBatch: r2(engine.meanBatch(answered.get(mode)!)),
      perRequestUs: {
        engineCpu: perOk(cpu.user + cpu.system),
        compute: perOk(engine.busyUs() - busy0),
        loadgenCpu: perOk(r.cpuUs),
      },
    }
    stepsOf.get(mode)!.push(s)
    console.log(
      `${mode.padEnd(8)} ${String(rate).padStart(5)} req/s: ok ${(okFraction * 100).toFixed(1)}% ` +
        `thr ${r.throughputPerSec}/s p50 ${r.latencyMs.p50} p99 ${r.latencyMs.p99} ms batch ${s.meanBatch} ` +
        `µs/req engine ${s.perRequestUs.engineCpu} (compute ${s.perRequestUs.compute}) loadgen ${s.perRequestUs.loadgenCpu}` +
        `${s.pass ? '' : '  ✗'}${mode === 'adaptive' ? ` ${adaptiveNote(engine.stats())}` : ''}`,
    )
    return s
  }
  const saturated = new Set<BatchingMode>()
  // two failed steps in a row end a mode's ramp, so one noisy step does not decide its saturation
  const failedInARow = new Map<BatchingMode, number>()
  for (const rate of RATES) {
    if (saturated.size === engines.length) break
    for (const e of engines) {
      if (saturated.has(e.mode)) continue
      const s = await step(e, rate)
      failedInARow.set(e.mode, s.pass ? 0 : (failedInARow.get(e.mode) ?? 0) + 1)
      if (failedInARow.get(e.mode)! >= 2) saturated.add(e.mode)
    }
  }
  // The ladder's rungs are up to a third apart, too coarse to decide a 2× ratio: bisect each mode's
  // gap between its highest passing rate and the lowest failing rate above it, rounds interleaved
  // across the modes like the ladder.
  for (let round = 0; round < REFINE_ROUNDS; round++) {
    for (const e of engines) {
      const steps = stepsOf.get(e.mode)!
      const lo = saturationOf(steps)?.rate
      if (lo === undefined) continue
      const hi = Math.min(...steps.filter((s) => !s.pass && s.rate > lo).map((s) => s.rate))
      if (!Number.isFinite(hi) || hi - lo <= lo * 0.04) continue
      await step(e, Math.round((lo + hi) / 2))
    }
  }
  const modes: Record<string, unknown>[] = []
  for (const { mode, describe, batching, engine } of engines) {
    const steps = stepsOf.get(mode)!
    const low = lows.get(mode)!
    modes.push({
      mode,
      config: describe,
      batching,
      low: {
        rate: LOW_RATE,
        p50: low.report.latencyMs.p50,
        p99: low.report.latencyMs.p99,
        ok: low.report.ok,
        meanBatch: r2(low.meanBatch),
      },
      saturation: saturationOf(steps),
      steps,
      adaptiveStats: mode === 'adaptive' ? engine.stats() : undefined,
    })
    await engine.close()
  }

  const rows = modes as unknown as Row[]
  const by = (m: string) => rows.find((r) => r.mode === m)!
  const none = by('none')
  const stat = by('static')
  const adaptive = by('adaptive')
  const thrRatio = ratio(adaptive.saturation?.throughputPerSec, none.saturation?.throughputPerSec)
  const p99Ratio = ratio(adaptive.saturation?.p99, none.saturation?.p99)
  const lowRatio = ratio(adaptive.low.p99, stat.low.p99)
  const staticThrRatio = ratio(stat.saturation?.throughputPerSec, none.saturation?.throughputPerSec)
  const targets = {
    adaptiveThroughputVsNone: { ratio: thrRatio, target: '≥ 2', met: thrRatio !== null && thrRatio >= 2 },
    adaptiveP99AtSaturationVsNone: {
      ratio: p99Ratio,
      target: '≤ 2',
      met: p99Ratio !== null && p99Ratio <= 2,
    },
    adaptiveLowLoadP99VsStatic: { ratio: lowRatio, target: '< 1', met: lowRatio !== null && lowRatio < 1 },
  }
  return {
    model: label,
    spec,
    seconds: Math.round((performance.now() - modelT0) / 1000),
    modes,
    ratios: { staticThroughputVsNone: staticThrRatio },
    targets,
  }
}

const r2 = (x: number) => Math.round(x * 100) / 100
/** the passing step at the highest rate (steps run out of rate order once the bisection starts) */
const saturationOf = (steps: Step[]): Step | null =>
  steps.filter((s) => s.pass).reduce<Step | null>((best, s) => (best && best.rate >= s.rate ? best : s), null)
const ratio = (a: number | undefined, b: number | undefined) =>
  a !== undefined && b !== undefined && b > 0 ? r2(a / b) : null
const adaptiveNote = (s: BatcherStats) =>
  `[target ${s.lastTargetRows} rows, waits ${s.waits}, cost ${Math.round(s.cost.fixedUs)}+${Math.round(s.cost.perRowUs)}·n µs, loop host share ${r2(s.loopHostShare)}]`
const met = (t: { met: boolean }) => (t.met ? 'MET' : 'NOT MET')

const t0 = performance.now()
const loadBefore = loadavg()
const perModel: Awaited<ReturnType<typeof benchModel>>[] = []
for (const spec of MODEL_SPECS) perModel.push(await benchModel(spec))
const loadAfter = loadavg()

console.log(
  `\n${BODY} bodies, open loop (Poisson), saturation = highest rate with ≥ ${OK_FRACTION * 100}% 200s and p99 ≤ ${P99_BOUND_MS} ms`,
)
console.log(
  'model                 mode      config                                 sat req/s  thr/s     p99@sat ms  batch  low p50 ms  low p99 ms',
)
for (const m of perModel) {
  for (const r of m.modes as unknown as Row[]) {
    const s = r.saturation
    console.log(
      `${m.model.padEnd(21)} ${r.mode.padEnd(9)} ${r.config.padEnd(38)} ${String(s?.rate ?? '-').padStart(9)}  ${String(s?.throughputPerSec ?? '-').padStart(8)}  ${String(s?.p99 ?? '-').padStart(10)}  ${String(s?.meanBatch ?? '-').padStart(5)}  ${String(r.low.p50).padStart(10)}  ${String(r.low.p99).padStart(10)}`,
    )
  }
}
for (const m of perModel) {
  const t = m.targets
  console.log(`\n${m.model}:`)
  console.log(`  static / none saturation throughput: ${m.ratios.staticThroughputVsNone}×`)
  console.log(
    `  adaptive / none saturation throughput: ${t.adaptiveThroughputVsNone.ratio}× (target ≥ 2): ${met(t.adaptiveThroughputVsNone)}`,
  )
  console.log(
    `  adaptive p99 at its saturation / none p99 at its saturation: ${t.adaptiveP99AtSaturationVsNone.ratio}× (target ≤ 2): ${met(t.adaptiveP99AtSaturationVsNone)}`,
  )
  console.log(
    `  adaptive / static p99 at ${LOW_RATE} req/s: ${t.adaptiveLowLoadP99VsStatic.ratio}× (target < 1): ${met(t.adaptiveLowLoadP99VsStatic)}`,
  )
}
console.log(
  `\nrun took ${((performance.now() - t0) / 1000).toFixed(0)} s (${perModel.map((m) => `${m.model} ${m.seconds} s`).join(', ')}); host load average (1 min) ${r2(loadBefore[0]!)} before, ${r2(loadAfter[0]!)} after, on ${machineInfo().cores} cores`,
)

writeFileSync(
  new URL('./results/batching.json', import.meta.url),
  `${JSON.stringify(
    {
      machine: { ...machineInfo(), loadavg1mBefore: r2(loadBefore[0]!), loadavg1mAfter: r2(loadAfter[0]!) },
      method: {
        models: perModel.map((m) => m.model),
        body:
          BODY === 'binary'
            ? 'binary tensor extension (Inference-Header-Content-Length: JSON header + raw little-endian FP32; binary outputs), as Triton perf_analyzer sends'
            : 'JSON (inputs as decimal numbers)',
        arrival: 'poisson',
        stepSeconds: STEP_SECONDS,
        rates: RATES,
        lowRate: LOW_RATE,
        lowSeconds: LOW_SECONDS,
        p99BoundMs: P99_BOUND_MS,
        okFraction: OK_FRACTION,
        loadgen: 'child process, engine/loadgen.ts',
        perRequestUs:
          'engine CPU per answered request = process.cpuUsage of the engine process over the step / 200s (only the mode under load is busy); compute = executor busy time / 200s; loadgen = the child process CPU / 200s',
        telemetry: false,
      },
      targetsNote:
        'per model: adaptive ≥ 2× none saturation throughput, adaptive p99 at saturation ≤ 2× none p99 at saturation, adaptive low-load p99 < static',
      models: perModel,
    },
    null,
    2,
  )}\n`,
)
