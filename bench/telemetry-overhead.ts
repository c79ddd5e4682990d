/**
 * What does telemetry cost the engine? The same engine (models mlp and cnn, default batching) under the
 * same open-loop load (runLoad, constant arrivals, on 127.0.0.1), side by side in one process tree:
 *
 *   off   telemetry: false — no spans, no hardware samples, no /metrics recorder (the control)
 *   on    every span and hardware sample Avro-encoded by the TelemetryEmitter onto an EmbeddedBus, a
 *         consumer group draining both topics (first record of every batch decoded, to prove the
 *         bytes are valid), the Triton /metrics recorder fed by every span
 *   otlp  `on` plus OTLP trace export (ratio 0.1, errors and slow requests always) to a local
 *         OTLP/HTTP receiver in the same child process
 *
 * Each mode is its own child process (so GC and JIT state do not leak between modes), all three are
 * started up front and stay idle except when loaded; the parent runs the load generator. Rounds are
 * interleaved (off, on, otlp, then rotated) so drift of the machine hits every mode alike. Per model:
 *
 *   - calibration: the `off` engine at an offered rate far above what it can answer; the achieved
 *     throughput is the saturation capacity C of this machine (engine + load generator together);
 *   - below saturation: offered 0.5·C; compared: median and p99 latency (deltas in µs vs off);
 *   - at saturation: offered 2·C (the excess is dropped at the client: maxOutstanding 256); compared:
 *     throughput (ratio vs off) and engine CPU µs per request.
 *
 * Targets from issue 3: ≤ 2 % throughput loss, ≤ 50 µs added median latency. runLoad reports latency
 * rounded to 10 µs; per-round deltas are paired (mode vs the off round next to it) and the median over
 * rounds is reported.
 *
 * Run: node --import tsx bench/telemetry-overhead.ts [rounds=8] [roundSeconds=1.5]
 * Writes bench/results/telemetry-overhead.json.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { Engine } from '../engine/engine.ts'
import { buildEngineApp } from '../engine/http.ts'
import { type LoadgenReport, runLoad } from '../engine/loadgen.ts'
import { getModel, toKServeInputs } from '../engine/models/zoo.ts'
import { TelemetryEmitter } from '../engine/telemetry/emitter.ts'
import { MetricsRecorder } from '../engine/telemetry/metrics-recorder.ts'
import { OtlpSpanExporter } from '../engine/telemetry/otlp.ts'
import type { Span } from '../ingest/contract/records.ts'
import { codecs, TOPICS } from '../ingest/contract/topics.ts'
import { createLogger } from '../ingest/logger.ts'
import { EmbeddedBus } from '../ingest/transport/embedded-bus.ts'
import { makeSpan } from '../test/helpers/records.ts'
import { machineInfo } from './machine.ts'

type Mode = 'off' | 'on' | 'otlp'
const MODES: Mode[] = ['off', 'on', 'otlp']
const MODELS = ['mlp', 'cnn'] as const
/** the warm-up and capacity burst per mode and model, ms */
const CALIB_MS = 3_000
const MODEL_CACHE_DIR = fileURLToPath(new URL('../.cache/models', import.meta.url))
const RESULT_PATH =
  process.env.TELEMETRY_BENCH_OUT ??
  fileURLToPath(new URL('./results/telemetry-overhead.json', import.meta.url))

interface ChildStats {
  mode: Mode
  completions: number
  spansSent: number
  telemetryDropped: number
  drained: number
  decodeFailures: number
  otlpExported: number
  otlpDropped: number
  otlpReceived: number
}

// ---------------------------------------------------------------- child: one engine in one mode

async function child(mode: Mode): Promise<void> {
  const logger = createLogger('silent')
  const bus = new EmbeddedBus()
  const emitter = new TelemetryEmitter({ producer: bus.producer(), logger })
  let drained = 0
  let decodeFailures = 0
  const drain = bus.consumer({
    groupId: 'bench-drain',
    topics: [TOPICS.spans, TOPICS.hw],
    handler: async (batch) => {
      drained += batch.messages.length
      const first = batch.messages[0]
      if (!first?.value) return
      try {
        if (batch.topic === TOPICS.spans) codecs.span.decode(first.value)
        else codecs.hw.decode(first.value)
      } catch {
        decodeFailures++
      }
    },
  })
  await drain.start()

  let otlpReceived = 0
  let receiver: http.Server | undefined
  let otlp: OtlpSpanExporter | undefined
  if (mode === 'otlp') {
    receiver = http.createServer((req, res) => {
      req.resume()
      req.on('end', () => {
        otlpReceived++
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
      })
    })
    await new Promise<void>((r) => receiver!.listen(0, '127.0.0.1', r))
    const { port } = receiver.address() as AddressInfo
    otlp = new OtlpSpanExporter({ endpoint: `http://127.0.0.1:${port}`, sampleRatio: 0.1 })
  }

  const engine = new Engine({
    models: MODELS.map((name) => ({ name })),
    modelCacheDir: MODEL_CACHE_DIR,
    logger,
    emitter,
    identity: { fleet: 'bench', host: 'bench', instance: `bench-${mode}` },
    telemetry: mode !== 'off',
    spanObservers: otlp ? [otlp.observe] : [],
  })
  await engine.start()
  const app = buildEngineApp(engine)
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  process.send!({ ready: url })
  process.on('message', async (msg: { stop?: boolean; cpu?: boolean }) => {
    if (msg.cpu) {
      // CPU time of this engine process so far: per-request CPU is what telemetry adds, and unlike
      // latency it barely moves when other processes compete for the cores
      const u = process.cpuUsage()
      process.send!({ cpuUs: u.user + u.system, completions: engine.completions })
      return
    }
    if (!msg.stop) return
    await app.close()
    await engine.stop()
    await otlp?.shutdown()
    await emitter.stop()
    await drain.stop()
    receiver?.close()
    const stats: ChildStats = {
      mode,
      completions: engine.completions,
      spansSent: emitter.sent,
      telemetryDropped: emitter.dropped,
      drained,
      decodeFailures,
      otlpExported: otlp?.exported ?? 0,
      otlpDropped: otlp?.dropped ?? 0,
      otlpReceived,
    }
    process.send!({ stats }, () => process.exit(0))
  })
}

// ---------------------------------------------------------------- parent: load and compare

interface Engines {
  url: Record<Mode, string>
  procs: Record<Mode, ChildProcess>
}

async function startEngines(): Promise<Engines> {
  const url = {} as Record<Mode, string>
  const procs = {} as Record<Mode, ChildProcess>
  await Promise.all(
    MODES.map(
      (mode) =>
        new Promise<void>((resolve, reject) => {
          const p = fork(fileURLToPath(import.meta.url), ['--child', mode], {
            execArgv: ['--import', 'tsx'],
            stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
          })
          procs[mode] = p
          p.once('error', reject)
          p.once('exit', (code) => reject(new Error(`engine ${mode} exited early (${code})`)))
          p.on('message', (m: { ready?: string }) => {
            if (m.ready) {
              url[mode] = m.ready
              resolve()
            }
          })
        }),
    ),
  )
  for (const p of Object.values(procs)) p.removeAllListeners('exit')
  return { url, procs }
}

async function stopEngines(e: Engines): Promise<ChildStats[]> {
  return Promise.all(
    MODES.map(
      (mode) =>
        new Promise<ChildStats>((resolve) => {
          const p = e.procs[mode]
          p.on('message', (m: { stats?: ChildStats }) => {
            if (m.stats) resolve(m.stats)
          })
          p.send({ stop: true })
        }),
    ),
  )
}

/** The engine process's CPU µs and completed requests so far. */
function cpuOf(p: ChildProcess): Promise<{ cpuUs: number; completions: number }> {
  return new Promise((resolve) => {
    const onMessage = (m: { cpuUs?: number; completions?: number }) => {
      if (m.cpuUs === undefined) return
      p.off('message', onMessage)
      resolve({ cpuUs: m.cpuUs, completions: m.completions! })
    }
    p.on('message', onMessage)
    p.send({ cpu: true })
  })
}

function bodiesFor(model: (typeof MODELS)[number]): string[] {
  return Array.from({ length: 8 }, (_, seed) =>
    JSON.stringify({ inputs: toKServeInputs(getModel(model).inputGenerator(seed, 1)) }),
  )
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  const n = s.length
  return n === 0 ? Number.NaN : n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2
}
const round = (x: number, d = 4) => Math.round(x * 10 ** d) / 10 ** d

async function load(url: string, model: string, bodies: string[], rate: number, ms: number) {
  return runLoad({
    url: `${url}/v2/models/${model}/infer`,
    bodies,
    ratePerSec: rate,
    durationMs: ms,
    maxOutstanding: 256,
    timeoutMs: 10_000,
  })
}

/**
 * The request-path cost of each piece, µs per span, measured in this process on realistic spans
 * (median of 5 passes over 20 000 spans): Avro encoding in TelemetryEmitter.emitSpan, the /metrics
 * recorder, the OTLP sampler + enqueue; and, off the request path, building the OTLP spans of a kept
 * request.
 */
function hotPathCosts(): Record<string, number> {
  const spans = Array.from({ length: 20_000 }, (_, i) =>
    makeSpan(i, { trace_id: randomBytes(16).toString('hex') }),
  )
  const recorder = new MetricsRecorder({ executors: () => [] })
  const exporter = new OtlpSpanExporter({
    sampleRatio: 0.1,
    maxQueueSize: 100_000,
    scheduledDelayMs: 3_600_000,
    exporter: { export: (_s, cb) => cb({ code: 0 }), shutdown: async () => {} },
  })
  const time = (f: (s: Span) => void) => {
    const passes: number[] = []
    for (let k = 0; k < 5; k++) {
      const t0 = performance.now()
      for (const s of spans) f(s)
      passes.push(((performance.now() - t0) * 1000) / spans.length)
    }
    return round(median(passes), 2)
  }
  const costs = {
    avro_encode_us: time((s) => codecs.span.encode(s)),
    metrics_recorder_us: time(recorder.observe),
    otlp_sample_enqueue_us: time(exporter.observe),
    otlp_build_kept_span_us: time((s) => exporter.toReadableSpans({ span: s, reason: 'ratio' })),
  }
  recorder.stop()
  void exporter.shutdown()
  return costs
}

interface RoundResult {
  mode: Mode
  round: number
  report: LoadgenReport
  /** engine process CPU µs per completed request during the round */
  cpuUsPerRequest: number
}

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 8)
  const roundMs = Number(process.argv[3] ?? 1.5) * 1000
  const started = Date.now()
  // other work on the host makes the side-by-side numbers noisy: recorded so a reader can judge them
  const loadAverageAtStart = loadavg().map((x) => round(x, 2))
  const hotPath = hotPathCosts()
  console.log(`request-path cost per span (µs): ${JSON.stringify(hotPath)}`)
  const engines = await startEngines()
  const out: Record<string, unknown>[] = []
  try {
    for (const model of MODELS) {
      const bodies = bodiesFor(model)
      // every engine gets the same warm-up (JIT, onnxruntime arenas, sockets): a short burst far above
      // capacity, which also measures the capacity C of `off` on this machine
      const calib: Partial<Record<Mode, LoadgenReport>> = {}
      for (const mode of MODES) calib[mode] = await load(engines.url[mode], model, bodies, 20_000, CALIB_MS)
      const capacity = calib.off!.throughputPerSec
      console.log(
        `${model}: saturation capacity ≈ ${capacity} req/s (offered 20000 for ${CALIB_MS / 1000} s; on ${calib.on!.throughputPerSec}, otlp ${calib.otlp!.throughputPerSec})`,
      )
      for (const [regime, factor] of [
        ['below saturation', 0.5],
        ['at saturation', 2],
      ] as const) {
        const rate = Math.max(1, Math.round(capacity * factor))
        const results: RoundResult[] = []
        for (let r = 0; r < rounds; r++) {
          const order = MODES.map((_, i) => MODES[(i + r) % MODES.length]!)
          for (const mode of order) {
            const before = await cpuOf(engines.procs[mode])
            const report = await load(engines.url[mode], model, bodies, rate, roundMs)
            const after = await cpuOf(engines.procs[mode])
            const cpuUsPerRequest =
              (after.cpuUs - before.cpuUs) / Math.max(1, after.completions - before.completions)
            results.push({ mode, round: r, report, cpuUsPerRequest })
          }
        }
        const off = (r: number) => results.find((x) => x.mode === 'off' && x.round === r)!.report
        const summary: Record<string, unknown> = {
          model,
          regime,
          offered_per_s: rate,
          capacity_per_s: capacity,
          round_s: roundMs / 1000,
          rounds,
        }
        for (const mode of MODES) {
          const mine = results.filter((x) => x.mode === mode)
          const tput = mine.map((x) => x.report.throughputPerSec)
          const p50 = mine.map((x) => x.report.latencyMs.p50 * 1000)
          const p99 = mine.map((x) => x.report.latencyMs.p99 * 1000)
          const offCpu = (r: number) =>
            results.find((x) => x.mode === 'off' && x.round === r)!.cpuUsPerRequest
          summary[mode] = {
            cpu_us_per_request: round(median(mine.map((x) => x.cpuUsPerRequest)), 1),
            throughput_per_s: round(median(tput), 1),
            p50_us: round(median(p50), 0),
            p99_us: round(median(p99), 0),
            non_200: mine.reduce((n, x) => n + x.report.sent - x.report.ok, 0),
            dropped_at_client: mine.reduce((n, x) => n + x.report.droppedAtClient, 0),
            ...(mode === 'off'
              ? {}
              : {
                  cpu_delta_us_per_request: round(
                    median(mine.map((x) => x.cpuUsPerRequest - offCpu(x.round))),
                    1,
                  ),
                  // the throughput a CPU-bound engine loses to telemetry: 1 - cpu_off / cpu_mode
                  cpu_bound_throughput_ratio: round(
                    median(mine.map((x) => offCpu(x.round) / x.cpuUsPerRequest)),
                  ),
                  throughput_ratio_vs_off: round(
                    median(mine.map((x) => x.report.throughputPerSec / off(x.round).throughputPerSec)),
                  ),
                  p50_delta_us: round(
                    median(mine.map((x) => (x.report.latencyMs.p50 - off(x.round).latencyMs.p50) * 1000)),
                    0,
                  ),
                  p99_delta_us: round(
                    median(mine.map((x) => (x.report.latencyMs.p99 - off(x.round).latencyMs.p99) * 1000)),
                    0,
                  ),
                }),
          }
        }
        out.push(summary)
        const line = (m: Mode) => {
          const s = summary[m] as Record<string, number>
          return `${m.padEnd(4)} cpu ${String(s.cpu_us_per_request).padStart(6)} µs/req ${String(s.throughput_per_s).padStart(8)}/s p50 ${String(s.p50_us).padStart(7)} µs p99 ${String(s.p99_us).padStart(8)} µs${
            m === 'off'
              ? ''
              : `  Δcpu ${s.cpu_delta_us_per_request} µs/req (cpu-bound ratio ${s.cpu_bound_throughput_ratio})  ratio ${s.throughput_ratio_vs_off}  Δp50 ${s.p50_delta_us} µs  Δp99 ${s.p99_delta_us} µs`
          }`
        }
        console.log(`${model} ${regime} (${rate} req/s offered, ${rounds}×${roundMs / 1000} s per mode):`)
        for (const m of MODES) console.log(`  ${line(m)}`)
      }
    }
  } finally {
    const stats = await stopEngines(engines)
    const on = stats.find((s) => s.mode === 'on')!
    console.log(`children: ${JSON.stringify(stats)}`)
    const result = {
      machine: machineInfo(),
      wall_s: Math.round((Date.now() - started) / 1000),
      load_average_1_5_15m: { start: loadAverageAtStart, end: loadavg().map((x) => round(x, 2)) },
      targets: { max_throughput_loss: 0.02, max_added_median_latency_us: 50 },
      hot_path_us_per_span: hotPath,
      results: out,
      children: stats,
      checks: {
        // the `on` engine really emitted every span and the consumer read them all
        on_spans_sent_eq_completions: on.spansSent >= on.completions,
        on_drained_all: on.drained === on.spansSent,
        decode_failures: stats.reduce((n, s) => n + s.decodeFailures, 0),
      },
    }
    writeFileSync(RESULT_PATH, `${JSON.stringify(result, null, 2)}\n`)
    console.log(`wrote ${RESULT_PATH} (${result.wall_s} s)`)
  }
}

if (process.argv[2] === '--child') await child(process.argv[3] as Mode)
else await main()
