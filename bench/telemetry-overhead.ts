/**
 * What does telemetry cost the engine? The same engine (models mlp and cnn, default batching) under the
 * same open-loop load (runLoad, constant arrivals, on 127.0.0.1), side by side. Modes:
 *
 *   off     telemetry: false — no spans emitted, no hardware samples emitted, /metrics recorder not
 *           fed (the control). The engine still builds each request's span object and trace ids (the
 *           `traceparent` response header needs them) and runs the hardware sampler's timer.
 *   on      everything production does per request: the span handed to the TelemetryEmitter (buffered
 *           as an object; Avro single-object encoding of a whole batch into one buffer in the flush,
 *           every 100 ms or 1000 records), the Triton /metrics recorder fed by every span, a hardware
 *           sample Avro-encoded every second — and the TRANSPORT: when a broker answers at
 *           KAFKA_BROKERS (else 127.0.0.1:9092), every record goes to that Kafka broker through the
 *           kafkajs producer on its own thread (bus/kafka-worker.ts: acks=all,
 *           idempotent, keyed by instance, containers of up to 64 records per message:
 *           contract/container.ts).
 *           Without a broker (or TELEMETRY_BENCH_TRANSPORT=embedded) the EmbeddedBus, drained by a
 *           consumer inside the engine process (which then pays for the consumer too).
 *   otlp    `on` plus OTLP/HTTP trace export (sample ratio 0.1; errors and requests above the rolling
 *           p99 always), to a receiver in the sink process (a collector stand-in: reads and acks).
 *   inline  (only when named in TELEMETRY_BENCH_MODES) `on` with the kafkajs producer on the engine's
 *           event loop instead of its own thread (`breakid serve` and `up` use the thread, app/runtime.ts):
 *           what the thread saves.
 *   single  (only when named in TELEMETRY_BENCH_MODES) `on` with one record per Kafka message (no
 *           containers, the contract before containers): what containers save.
 *   baseline  (only when named in TELEMETRY_BENCH_MODES) `on` as the baseline commit has it (its
 *           engine/, bus/, contract/ and core/, extracted by telemetry-baseline.ts: by default where
 *           this branch left main, or TELEMETRY_BENCH_BASELINE): old and new telemetry in one run.
 *
 * Not included in any mode: scraping /metrics (no scraper runs), a Kafka consumer in the engine's
 * process (with a broker, the sink process's consumer group reads every record back only after the
 * measured rounds — in production the ingester runs on other machines), the broker itself (a JVM on
 * the same host here; on other machines in production).
 *
 * Processes: one per engine mode (so GC and JIT state do not leak between modes), the sink, and this
 * parent running the load generator; all engines start up front and stay idle except when loaded.
 * Rounds are interleaved (off, on, otlp, then rotated) so drift of the machine hits every mode alike.
 * Per model:
 *
 *   - calibration: every engine twice at an offered rate far above what it can answer (warm-up);
 *     then `off` is offered 1.5× what it last answered while it answers ≥ 10 % more: the last
 *     answer is the saturation capacity C of this machine (engine + load generator together);
 *   - below saturation: offered 0.5·C; compared: median and p99 latency as the load generator sees
 *     it, and the engine's own median (request received → response sent, fastify hooks, the same in
 *     every mode), which leaves out the load generator waiting for a core (deltas in µs vs off);
 *   - at saturation: offered 2·C (the excess is dropped at the client: maxOutstanding 256); compared:
 *     throughput (ratio vs off), engine process CPU µs per request (all its threads: event loop,
 *     onnxruntime, Kafka producer) and event-loop thread CPU µs per request (Linux schedstat of the main
 *     thread; the event loop is what saturates first when the host has cores to spare for the other
 *     threads).
 *     `cpu_bound_throughput_ratio` = cpu_off / cpu_mode and `loop_bound_throughput_ratio` =
 *     loop_off / loop_mode are the throughput ratios a CPU-bound or loop-bound engine would see; they
 *     move less than throughput when other processes compete for the cores.
 *
 * Targets from issue 3: ≤ 2 % throughput loss, ≤ 50 µs added median latency. runLoad reports latency
 * rounded to 10 µs; per-round deltas are paired (mode vs the off round next to it) and the median over
 * rounds is reported. Checks in the result: every span of every engine with telemetry on is on the
 * broker (read back and decoded by the sink), none dropped or invalid, every kept OTLP span exported.
 *
 * Run: node --import tsx bench/telemetry-overhead.ts [rounds=8] [roundSeconds=1.5]
 *   TELEMETRY_BENCH_MODELS=mlp,cnn  TELEMETRY_BENCH_MODES=off,on,otlp[,inline][,single]
 *   TELEMETRY_BENCH_TRANSPORT=embedded (no broker)  TELEMETRY_BENCH_CPU_PROF=<dir> (--cpu-prof per mode)
 *   TELEMETRY_BENCH_OUT=<file> (default bench/results/telemetry-overhead.json)
 */
import { type ChildProcess, fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { type AddressInfo, connect } from 'node:net'
import { loadavg } from 'node:os'
import { performance as perfHooks } from 'node:perf_hooks'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Engine } from '../engine/engine.ts'
import { buildEngineApp } from '../engine/http.ts'
import { type LoadgenReport, runLoad } from '../engine/loadgen.ts'
import { getModel, toKServeInputs } from '../engine/models/zoo.ts'
import { TelemetryEmitter } from '../engine/telemetry/emitter.ts'
import { KafkaWorkerProducer } from '../bus/kafka-worker.ts'
import { MetricsRecorder } from '../engine/telemetry/metrics-recorder.ts'
import { OtlpSpanExporter } from '../engine/telemetry/otlp.ts'
import type { Span } from '../contract/records.ts'
import { decodeMessage } from '../contract/container.ts'
import { codecs, TOPICS } from '../contract/topics.ts'
import { createLogger } from '../core/logger.ts'
import { EmbeddedBus } from '../bus/embedded-bus.ts'
import { KafkaTransport } from '../bus/kafka.ts'
import type { MessageConsumer, MessageProducer } from '../bus/transport.ts'
import { makeSpan } from '../contract/synthetic.ts'
import { machineInfo } from '../core/machine.ts'
import { baselineRoot, currentRoot } from './telemetry-baseline.ts'

type Mode = 'off' | 'on' | 'otlp' | 'inline' | 'single' | 'baseline'
const MODES: Mode[] = (process.env.TELEMETRY_BENCH_MODES?.split(',') as Mode[] | undefined) ?? [
  'off',
  'on',
  'otlp',
]
const MODELS =
  (process.env.TELEMETRY_BENCH_MODELS?.split(',') as ('mlp' | 'cnn')[] | undefined) ??
  (['mlp', 'cnn'] as const)
const CPU_PROF_DIR = process.env.TELEMETRY_BENCH_CPU_PROF
/** the warm-up and capacity burst per mode and model, ms */
const CALIB_MS = 3_000
const MODEL_CACHE_DIR = fileURLToPath(new URL('../.cache/models', import.meta.url))
const RESULT_PATH =
  process.env.TELEMETRY_BENCH_OUT ??
  fileURLToPath(new URL('./results/telemetry-overhead.json', import.meta.url))

interface ChildStats {
  mode: Mode
  transport: Transport
  completions: number
  spansSent: number
  hwSent: number
  telemetryDropped: number
  telemetryInvalid: number
  /** embedded transport only: records drained (and decode failures) by the in-process consumer */
  drained: number
  decodeFailures: number
  otlpExported: number
  otlpDropped: number
  otlpKept: number
}

/** Where `on` and `otlp` engines send their telemetry. */
type Transport = 'kafka' | 'kafka-inline' | 'embedded'

/** KAFKA_BROKERS, else 127.0.0.1:9092 when something answers there; undefined: no broker. */
async function findBrokers(): Promise<string[] | undefined> {
  if (process.env.TELEMETRY_BENCH_TRANSPORT === 'embedded') return undefined
  const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',').filter(Boolean)
  const [host, port] = brokers[0]!.split(':')
  const up = await new Promise<boolean>((resolve) => {
    const socket = connect({ host, port: Number(port) })
    socket.setTimeout(1_000)
    socket.once('connect', () => resolve(true))
    socket.once('error', () => resolve(false))
    socket.once('timeout', () => resolve(false))
  }).finally(() => {})
  return up ? brokers : undefined
}

/**
 * CPU µs of this process's main thread (the event loop) so far: Linux's per-thread schedstat (ns on
 * a CPU), which unlike event-loop utilization does not count time the thread was runnable but
 * descheduled. Elsewhere: event-loop busy wall time.
 */
function loopCpuUs(): number {
  try {
    return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]) / 1000
  } catch {
    return perfHooks.eventLoopUtilization().active * 1000
  }
}

// ---------------------------------------------------------------- child: one engine in one mode

interface ChildConfig {
  mode: Mode
  /** where the engine and telemetry code come from (the baseline mode's); default this checkout */
  root?: string
  transport: Transport
  brokers?: string[]
  topicPrefix: string
  /** the sink process's OTLP/HTTP receiver */
  otlpEndpoint?: string
}

/** The engine and telemetry classes a child runs: this checkout's, or those under `root`. */
async function codeAt(root: string | undefined) {
  if (!root) return { Engine, buildEngineApp, TelemetryEmitter, KafkaWorkerProducer }
  const load = (path: string) => import(pathToFileURL(join(root, path)).href)
  return {
    Engine: (await load('engine/engine.ts')).Engine as typeof Engine,
    buildEngineApp: (await load('engine/http.ts')).buildEngineApp as typeof buildEngineApp,
    TelemetryEmitter: (await load('engine/telemetry/emitter.ts')).TelemetryEmitter as typeof TelemetryEmitter,
    KafkaWorkerProducer: (await load('bus/kafka-worker.ts'))
      .KafkaWorkerProducer as typeof KafkaWorkerProducer,
  }
}

async function child(cfg: ChildConfig): Promise<void> {
  const { mode } = cfg
  const logger = createLogger('silent')
  const code = await codeAt(cfg.root)
  let producer: MessageProducer
  let drain: MessageConsumer | undefined
  let drained = 0
  let decodeFailures = 0
  if (cfg.transport === 'kafka') {
    // production: kafkajs on its own thread, to the broker (bus/kafka-worker.ts)
    producer = new code.KafkaWorkerProducer({
      brokers: cfg.brokers!,
      topicPrefix: cfg.topicPrefix,
      logLevel: 'error',
    })
  } else if (cfg.transport === 'kafka-inline') {
    // kafkajs on the engine's event loop (what `breakid serve` does without the worker), for comparison
    producer = new KafkaTransport({ brokers: cfg.brokers!, topicPrefix: cfg.topicPrefix }).producer()
  } else {
    // no broker: the embedded bus, drained by a consumer in this process (it costs the engine CPU that
    // a Kafka consumer elsewhere would not)
    const bus = new EmbeddedBus()
    producer = bus.producer()
    drain = bus.consumer({
      groupId: 'bench-drain',
      topics: [TOPICS.spans, TOPICS.hw],
      handler: async (batch) => {
        // every record decoded: the consumer's cost is part of this mode (see above)
        const codec = batch.topic === TOPICS.spans ? codecs.span : codecs.hw
        for (const m of batch.messages) {
          for (const r of decodeMessage<unknown>(codec, m.value ?? Buffer.alloc(0))) {
            if (r.error) decodeFailures++
            else drained++
          }
        }
      },
    })
    await drain.start()
  }
  const emitter = new code.TelemetryEmitter({
    producer,
    logger,
    recordsPerMessage: mode === 'single' ? 1 : undefined,
  })
  const otlp =
    mode === 'otlp' ? new OtlpSpanExporter({ endpoint: cfg.otlpEndpoint!, sampleRatio: 0.1 }) : undefined

  const engine = new code.Engine({
    models: MODELS.map((name) => ({ name })),
    modelCacheDir: MODEL_CACHE_DIR,
    logger,
    emitter,
    identity: { fleet: 'bench', host: 'bench', instance: `bench-${mode}` },
    telemetry: mode !== 'off',
    spanObservers: otlp ? [otlp.observe] : [],
  })
  await engine.start()
  const app = code.buildEngineApp(engine)
  // server-side latency (request received → response sent), the same hooks in every mode: unlike the
  // load generator's latency it leaves out the client's own waits for a core
  let serverUs: number[] = []
  const receivedAt = new WeakMap<object, bigint>()
  app.addHook('onRequest', async (req) => {
    receivedAt.set(req, process.hrtime.bigint())
  })
  app.addHook('onResponse', async (req) => {
    const t0 = receivedAt.get(req)
    if (t0 !== undefined) serverUs.push(Number(process.hrtime.bigint() - t0) / 1000)
  })
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  process.send!({ ready: url })
  process.on('message', async (msg: { stop?: boolean; cpu?: boolean }) => {
    if (msg.cpu) {
      // CPU time of this engine process so far (all its threads: the event loop, onnxruntime's, the
      // Kafka producer's): per-request CPU is what telemetry adds, and unlike latency it barely moves
      // when other processes compete for the cores. `loopUs`: the event loop thread's CPU alone.
      const u = process.cpuUsage()
      const serverP50Us = serverUs.length > 0 ? median(serverUs) : 0
      serverUs = []
      process.send!({
        cpuUs: u.user + u.system,
        loopUs: loopCpuUs(),
        completions: engine.completions,
        serverP50Us,
      })
      return
    }
    if (!msg.stop) return
    await app.close()
    await engine.stop()
    await otlp?.shutdown()
    await emitter.stop()
    await drain?.stop()
    const stats: ChildStats = {
      mode,
      transport: cfg.transport,
      completions: engine.completions,
      spansSent: emitter.sent,
      hwSent: 0,
      telemetryDropped: emitter.dropped,
      telemetryInvalid: emitter.invalid,
      drained,
      decodeFailures,
      otlpExported: otlp?.exported ?? 0,
      otlpDropped: otlp?.dropped ?? 0,
      otlpKept: otlp ? otlp.kept.error + otlp.kept.slow + otlp.kept.ratio : 0,
    }
    process.send!({ stats }, () => process.exit(0))
  })
}

// ---------------------------------------------------------------- sink: what runs on other machines

/**
 * The other side of the wire, in its own process: the OTLP/HTTP receiver (a collector stand-in that
 * reads and acknowledges each export), and at the end a Kafka consumer group that reads every record
 * the engines produced, decodes each one and counts them by topic and instance. The consumer runs only
 * after the measured rounds: in production the ingester is on another machine.
 */
async function sink(): Promise<void> {
  let otlpRequests = 0
  let otlpBytes = 0
  const receiver = http.createServer((req, res) => {
    req.on('data', (c: Buffer) => {
      otlpBytes += c.length
    })
    req.on('end', () => {
      otlpRequests++
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r))
  const { port } = receiver.address() as AddressInfo
  process.send!({ ready: `http://127.0.0.1:${port}` })
  process.on(
    'message',
    async (msg: { drain?: { brokers: string[]; topicPrefix: string; expect: number } }) => {
      if (!msg.drain) return
      const { brokers, topicPrefix, expect } = msg.drain
      if (brokers.length === 0) {
        // no broker: the engines drained their embedded buses themselves
        receiver.close()
        const none = { spans: 0, hw: 0, perInstance: {}, decodeFailures: 0, otlpRequests, otlpBytes }
        process.send!({ drained: none }, () => process.exit(0))
        return
      }
      const perInstance: Record<string, number> = {}
      let spans = 0
      let hw = 0
      let decodeFailures = 0
      const consumer = new KafkaTransport({ brokers, topicPrefix }).consumer({
        groupId: 'bench-sink',
        topics: [TOPICS.spans, TOPICS.hw],
        handler: async (batch) => {
          for (const m of batch.messages) {
            if (batch.topic === TOPICS.spans) {
              for (const r of decodeMessage(codecs.span, m.value!)) {
                if (r.error) decodeFailures++
                else {
                  perInstance[r.record.instance] = (perInstance[r.record.instance] ?? 0) + 1
                  spans++
                }
              }
            } else {
              for (const r of decodeMessage(codecs.hw, m.value!)) {
                if (r.error) decodeFailures++
                else hw++
              }
            }
          }
        },
      })
      await consumer.start()
      const deadline = Date.now() + 60_000
      while (spans < expect && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250))
      await consumer.stop()
      receiver.close()
      process.send!({ drained: { spans, hw, perInstance, decodeFailures, otlpRequests, otlpBytes } }, () =>
        process.exit(0),
      )
    },
  )
}

// ---------------------------------------------------------------- parent: load and compare

interface Engines {
  url: Record<Mode, string>
  procs: Record<Mode, ChildProcess>
  transport: Record<Mode, Transport>
  sink: ChildProcess
  brokers: string[] | undefined
  topicPrefix: string
}

function forkSelf(args: string[], profileAs?: string): ChildProcess {
  return fork(fileURLToPath(import.meta.url), args, {
    execArgv: [
      '--import',
      'tsx',
      ...(CPU_PROF_DIR && profileAs ? ['--cpu-prof', '--cpu-prof-dir', `${CPU_PROF_DIR}/${profileAs}`] : []),
    ],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
}

function ready(p: ChildProcess, what: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`${what} exited early (${code})`))
    p.once('error', reject)
    p.once('exit', onExit)
    p.on('message', (m: { ready?: string }) => {
      if (m.ready) {
        p.off('exit', onExit)
        resolve(m.ready)
      }
    })
  })
}

async function startEngines(): Promise<Engines> {
  const brokers = await findBrokers()
  const topicPrefix = `bench-telemetry-${Date.now()}-${randomBytes(3).toString('hex')}-`
  if (brokers) {
    // topics made up front, as a deployment has them (no auto-creation racing the first send)
    const admin = new KafkaTransport({ brokers, topicPrefix })
    await admin.ensureTopics([TOPICS.spans, TOPICS.hw])
  }
  const sink = forkSelf(['--sink'])
  const otlpEndpoint = await ready(sink, 'sink')
  const url = {} as Record<Mode, string>
  const procs = {} as Record<Mode, ChildProcess>
  const transport = {} as Record<Mode, Transport>
  await Promise.all(
    MODES.map(async (mode) => {
      transport[mode] = !brokers || mode === 'off' ? 'embedded' : mode === 'inline' ? 'kafka-inline' : 'kafka'
      const root = mode === 'baseline' ? baselineRoot().root : undefined
      const cfg: ChildConfig = { mode, root, transport: transport[mode], brokers, topicPrefix, otlpEndpoint }
      procs[mode] = forkSelf(['--child', JSON.stringify(cfg)], mode)
      url[mode] = await ready(procs[mode], `engine ${mode}`)
    }),
  )
  return { url, procs, transport, sink, brokers, topicPrefix }
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

interface Drained {
  spans: number
  hw: number
  perInstance: Record<string, number>
  decodeFailures: number
  otlpRequests: number
  otlpBytes: number
}

/** After the engines flushed: the sink reads back every record from the broker (bounded: 60 s). */
function drainSink(e: Engines, expect: number): Promise<Drained> {
  return new Promise((resolve) => {
    e.sink.on('message', (m: { drained?: Drained }) => {
      if (m.drained) resolve(m.drained)
    })
    e.sink.send({ drain: { brokers: e.brokers ?? [], topicPrefix: e.topicPrefix, expect } })
  })
}

interface CpuReading {
  cpuUs: number
  loopUs: number
  completions: number
  /** median server-side latency of the requests answered since the previous reading */
  serverP50Us: number
}

/** The engine process's CPU µs, event-loop busy µs and completed requests so far. */
function cpuOf(p: ChildProcess): Promise<CpuReading> {
  return new Promise((resolve) => {
    const onMessage = (m: Partial<CpuReading>) => {
      if (m.cpuUs === undefined) return
      p.off('message', onMessage)
      resolve(m as CpuReading)
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
 * The cost of each piece, µs per span, measured in this process on realistic spans (median of 5 passes
 * over 20 000 spans). On the request path: TelemetryEmitter.emitSpan (buffers the object), the /metrics
 * recorder, the OTLP sampler + enqueue. In the emitter's flush, off the request path but on the same
 * event loop: Avro-encoding a batch into one buffer (`flush_encode_us`, with a producer that takes
 * the messages and does nothing) — next to what encoding one record at a time on the request path cost
 * before (`avro_encode_per_record_us`, RecordCodec.encode). OTLP, off the request path: building the
 * OTel spans of a kept request.
 */
async function hotPathCosts(): Promise<Record<string, number>> {
  const spans = Array.from({ length: 20_000 }, (_, i) =>
    makeSpan(i, { trace_id: randomBytes(16).toString('hex'), request_id: `bench-on-${i}` }),
  )
  const recorder = new MetricsRecorder({ executors: () => [] })
  const exporter = new OtlpSpanExporter({
    sampleRatio: 0.1,
    maxQueueSize: 100_000,
    scheduledDelayMs: 3_600_000,
    exporter: { export: (_s, cb) => cb({ code: 0 }), shutdown: async () => {} },
  })
  const nullProducer: MessageProducer = { start: async () => {}, stop: async () => {}, send: async () => {} }
  const emitter = new TelemetryEmitter({
    producer: nullProducer,
    logger: createLogger('silent'),
    maxBatch: 1_000_000,
    maxBuffered: 1_000_000,
    flushIntervalMs: 3_600_000,
  })
  const time = async (f: (s: Span) => void, after?: () => Promise<void>) => {
    const passes: number[] = []
    for (let k = 0; k < 5; k++) {
      const t0 = performance.now()
      for (const s of spans) f(s)
      passes.push(((performance.now() - t0) * 1000) / spans.length)
      await after?.()
    }
    return round(median(passes), 2)
  }
  const flushPasses: number[] = []
  const costs = {
    emit_span_us: await time(
      (s) => emitter.emitSpan(s),
      async () => {
        const t0 = performance.now()
        await emitter.flush()
        flushPasses.push(((performance.now() - t0) * 1000) / spans.length)
      },
    ),
    flush_encode_us: 0,
    avro_encode_per_record_us: await time((s) => codecs.span.encode(s)),
    metrics_recorder_us: await time(recorder.observe),
    otlp_sample_enqueue_us: await time(exporter.observe),
    otlp_build_kept_span_us: await time((s) => exporter.toReadableSpans({ span: s, reason: 'ratio' })),
  }
  costs.flush_encode_us = round(median(flushPasses), 2)
  recorder.stop()
  await emitter.stop()
  void exporter.shutdown()
  return costs
}

interface RoundResult {
  mode: Mode
  round: number
  report: LoadgenReport
  /** engine process CPU µs (all threads) per completed request during the round */
  cpuUsPerRequest: number
  /** engine event-loop busy µs per completed request during the round */
  loopUsPerRequest: number
  /** median server-side latency during the round, µs */
  serverP50Us: number
}

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 8)
  const roundMs = Number(process.argv[3] ?? 1.5) * 1000
  const started = Date.now()
  // other work on the host makes the side-by-side numbers noisy: recorded so a reader can judge them
  const loadAverageAtStart = loadavg().map((x) => round(x, 2))
  const hotPath = await hotPathCosts()
  console.log(`request-path cost per span (µs): ${JSON.stringify(hotPath)}`)
  const engines = await startEngines()
  const out: Record<string, unknown>[] = []
  try {
    for (const model of MODELS) {
      const bodies = bodiesFor(model)
      // every engine gets the same warm-up (JIT, onnxruntime arenas, sockets): two short bursts far
      // above capacity; the second, on warm engines, measures the capacity C of `off` on this machine
      // (a single burst on a cold engine once measured half of what `off` then answered)
      const calib: Partial<Record<Mode, LoadgenReport>> = {}
      for (let pass = 0; pass < 2; pass++) {
        for (const mode of MODES) calib[mode] = await load(engines.url[mode], model, bodies, 20_000, CALIB_MS)
      }
      // A burst at 20 000 req/s measures the load generator drowning as much as the engine (runs
      // gave 1 700–4 000 req/s for the same mlp): climb from there, offering 1.5× what `off` last
      // answered while that answers ≥ 10 % more, so "at saturation" (2·C) is past the knee.
      let capacity = calib.off!.throughputPerSec
      for (let step = 0; step < 4; step++) {
        const tried = await load(engines.url.off, model, bodies, Math.round(capacity * 1.5), CALIB_MS)
        if (tried.throughputPerSec < capacity * 1.1) break
        capacity = tried.throughputPerSec
      }
      console.log(
        `${model}: saturation capacity ≈ ${capacity} req/s (burst at 20000 req/s: off ${calib.off!.throughputPerSec}, on ${calib.on?.throughputPerSec}, otlp ${calib.otlp?.throughputPerSec}; then climbed)`,
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
            const done = Math.max(1, after.completions - before.completions)
            results.push({
              mode,
              round: r,
              report,
              cpuUsPerRequest: (after.cpuUs - before.cpuUs) / done,
              loopUsPerRequest: (after.loopUs - before.loopUs) / done,
              serverP50Us: after.serverP50Us,
            })
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
          const offRound = (r: number) => results.find((x) => x.mode === 'off' && x.round === r)!
          const offCpu = (r: number) => offRound(r).cpuUsPerRequest
          const offLoop = (r: number) => offRound(r).loopUsPerRequest
          summary[mode] = {
            transport: engines.transport[mode],
            cpu_us_per_request: round(median(mine.map((x) => x.cpuUsPerRequest)), 1),
            loop_us_per_request: round(median(mine.map((x) => x.loopUsPerRequest)), 1),
            throughput_per_s: round(median(tput), 1),
            p50_us: round(median(p50), 0),
            p99_us: round(median(p99), 0),
            server_p50_us: round(median(mine.map((x) => x.serverP50Us)), 0),
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
                  loop_delta_us_per_request: round(
                    median(mine.map((x) => x.loopUsPerRequest - offLoop(x.round))),
                    1,
                  ),
                  // the same for an engine whose event loop is the bottleneck (spare cores for the
                  // other threads): 1 - loop_off / loop_mode
                  loop_bound_throughput_ratio: round(
                    median(mine.map((x) => offLoop(x.round) / x.loopUsPerRequest)),
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
                  server_p50_delta_us: round(
                    median(mine.map((x) => x.serverP50Us - offRound(x.round).serverP50Us)),
                    0,
                  ),
                }),
          }
        }
        // under contention the calibration burst can underestimate C: then "at saturation" is not
        const offTput = (summary.off as { throughput_per_s: number }).throughput_per_s
        if (factor > 1) summary.off_saturated = offTput < 0.95 * rate
        out.push(summary)
        const line = (m: Mode) => {
          const s = summary[m] as Record<string, number>
          return `${m.padEnd(6)} cpu ${String(s.cpu_us_per_request).padStart(6)} loop ${String(s.loop_us_per_request).padStart(6)} µs/req ${String(s.throughput_per_s).padStart(8)}/s p50 ${String(s.p50_us).padStart(7)} µs p99 ${String(s.p99_us).padStart(8)} µs${
            m === 'off'
              ? ''
              : `  Δcpu ${s.cpu_delta_us_per_request} (ratio ${s.cpu_bound_throughput_ratio}) Δloop ${s.loop_delta_us_per_request} (ratio ${s.loop_bound_throughput_ratio})  tput ratio ${s.throughput_ratio_vs_off}  Δp50 ${s.p50_delta_us} µs  Δp99 ${s.p99_delta_us} µs  Δserver p50 ${s.server_p50_delta_us} µs`
          }`
        }
        console.log(
          `${model} ${regime} (${rate} req/s offered, ${rounds}×${roundMs / 1000} s per mode${factor > 1 && !summary.off_saturated ? '; off kept up: NOT saturated' : ''}):`,
        )
        for (const m of MODES) console.log(`  ${line(m)}`)
      }
    }
  } finally {
    const stats = await stopEngines(engines)
    // one span per answered request of every engine with telemetry on (emitter.sent also counts the
    // hardware samples)
    const spansExpected = stats.reduce((n, c) => n + (c.mode === 'off' ? 0 : c.completions), 0)
    // the records on the broker, read back by the sink's consumer group after the engines flushed
    const drained = await drainSink(engines, engines.brokers ? spansExpected : 0)
    console.log(`children: ${JSON.stringify(stats)}`)
    console.log(`sink: ${JSON.stringify(drained)}`)
    const telemetryOn = stats.filter((c) => c.mode !== 'off')
    const result = {
      machine: machineInfo(),
      wall_s: Math.round((Date.now() - started) / 1000),
      load_average_1_5_15m: { start: loadAverageAtStart, end: loadavg().map((x) => round(x, 2)) },
      code: {
        current: currentRoot().commit,
        ...(MODES.includes('baseline') ? { baseline: baselineRoot().commit } : {}),
      },
      targets: { max_throughput_loss: 0.02, max_added_median_latency_us: 50 },
      // issue 14 item 6: telemetry at saturation costs at most 3 % of throughput, 1 % the goal
      targets_issue_14: { max_throughput_loss: 0.03, goal_throughput_loss: 0.01 },
      transport: engines.brokers
        ? `kafka ${engines.brokers.join(',')}`
        : 'embedded bus (no broker reachable)',
      hot_path_us_per_span: hotPath,
      results: out,
      children: stats,
      sink: drained,
      checks: {
        // every engine with telemetry on emitted a span per answered request, none dropped or invalid
        spans_sent_ge_completions: telemetryOn.every((c) => c.spansSent >= c.completions),
        telemetry_dropped: telemetryOn.reduce((n, c) => n + c.telemetryDropped + c.telemetryInvalid, 0),
        // every span is on the broker (or drained from the embedded bus) and decodes
        all_spans_arrived: engines.brokers
          ? telemetryOn.every((c) => (drained.perInstance[`bench-${c.mode}`] ?? 0) >= c.completions)
          : telemetryOn.every((c) => c.drained >= c.spansSent),
        decode_failures: drained.decodeFailures + stats.reduce((n, c) => n + c.decodeFailures, 0),
        otlp_exported_all_kept: stats.every((c) => c.otlpExported + c.otlpDropped === c.otlpKept),
      },
    }
    writeFileSync(RESULT_PATH, `${JSON.stringify(result, null, 2)}\n`)
    console.log(`wrote ${RESULT_PATH} (${result.wall_s} s)`)
  }
}

if (process.argv[2] === '--child') await child(JSON.parse(process.argv[3]!) as ChildConfig)
else if (process.argv[2] === '--sink') await sink()
else await main()
