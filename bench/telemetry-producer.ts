/**
 * What the telemetry path costs the engine's process, without the engine: the TelemetryEmitter fed a
 * steady span rate (emitted in 10 bursts per second, as requests would over a flush interval) with the
 * production producer (KafkaWorkerProducer: kafkajs on its own thread, to the real broker at
 * KAFKA_BROKERS or 127.0.0.1:9092). The engine benchmark (telemetry-overhead.ts) answers the
 * question as asked, but on a 2-core host with the load generator and the broker beside the engine its
 * run-to-run spread is larger than the differences measured here; CPU time per span is the steadier
 * measure (it counts what the process's threads ran, not what they waited for).
 *
 * Part 1, CPU per span, old and new side by side: the same variants of this checkout's code
 * (`current`) and of the baseline commit's (`baseline`, telemetry-baseline.ts: by default where this
 * branch left main), each measurement in a fresh process (no JIT or GC state shared), rounds
 * interleaved so drift of the machine hits all alike, the median reported:
 *   null        emitter + Avro encoding, a producer that discards (the floor: what any transport pays)
 *   containers  up to 64 records of one instance per Kafka message (contract/container.ts, default)
 *   single      (TELEMETRY_BENCH_VARIANTS=…,single) one record per Kafka message
 *   <variant>:<ms>  the variant with the emitter flushing every <ms> instead of 100 ms
 * Each measurement warms up (the JIT, the connection) at the rate before it counts. Reported per
 * variant: CPU µs per span of the whole process and by thread — the event loop, the producer thread
 * (the threads that appeared when the producer started) and the rest (V8's GC and compiler helpers,
 * libuv) — from /proc/self/task/<tid>/schedstat, and the producer thread's wake-ups per second (on the
 * 2-core VM this ran on a wake-up alone cost ~100 µs of CPU).
 *
 * Part 2 (`--contention`, current code only), what the producer thread takes from serving under
 * contention: two busy processes (nice 0, one per core: the engine and its neighbours wanting every
 * cycle) count loop iterations while the emitter runs at the same rate with the producer thread at
 * nice 0 or nice 10 (the default), and with no emitter at all. Reported: the busy processes' work rate
 * vs no emitter, and the spans delivered (a nice thread must still keep up: none dropped).
 *
 * Run: node --import tsx bench/telemetry-producer.ts [spansPerSecond=4000] [seconds=8] [rounds=3] [--contention]
 *   TELEMETRY_BENCH_BASELINE=<commit>  TELEMETRY_BENCH_VARIANTS=null,containers[,single]
 *   TELEMETRY_BENCH_WARMUP_S=3  TELEMETRY_BENCH_OUT=<file> (default bench/results/telemetry-producer.json)
 * Topics are prefixed bench-tprod-<run id>-. The load average before and after is recorded: on a shared
 * host it says how far to trust the numbers.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { MessageProducer } from '../bus/transport.ts'
import { KafkaTransport } from '../bus/kafka.ts'
import { makeSpan } from '../contract/synthetic.ts'
import { TOPICS } from '../contract/topics.ts'
import { createLogger } from '../core/logger.ts'
import { machineInfo } from '../core/machine.ts'
import { baselineRoot, type CodeRoot, currentRoot } from './telemetry-baseline.ts'

const RESULT_PATH =
  process.env.TELEMETRY_BENCH_OUT ??
  fileURLToPath(new URL('./results/telemetry-producer.json', import.meta.url))
const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',')

/** `null`, `containers` or `single`, optionally with `:<flush interval ms>` */
type VariantName = string
const VARIANTS: VariantName[] = process.env.TELEMETRY_BENCH_VARIANTS?.split(',') ?? ['null', 'containers']

interface ChildConfig {
  root: string
  variant: VariantName
  rate: number
  warmupS: number
  seconds: number
  brokers: string[]
  topicPrefix: string
  nice?: number
}

/** CPU and wake-ups of a thread class over the measured window */
interface ThreadUse {
  cpuNs: number
  wakeups: number
}
interface ChildResult {
  spans: number
  wallS: number
  main: ThreadUse
  producer: ThreadUse
  other: ThreadUse
  sent: number
  dropped: number
}

/** CPU ns and voluntary context switches so far of each thread of this process */
function threads(): Map<string, ThreadUse> {
  const out = new Map<string, ThreadUse>()
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const cpuNs = Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0])
      const status = readFileSync(`/proc/self/task/${tid}/status`, 'utf8')
      const wakeups = Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0)
      out.set(tid, { cpuNs, wakeups })
    } catch {
      // the thread ended between readdir and read
    }
  }
  return out
}

// ---------------------------------------------------------------- child: one measurement

async function child(cfg: ChildConfig): Promise<void> {
  const load = (path: string) => import(pathToFileURL(join(cfg.root, path)).href)
  const { TelemetryEmitter } = await load('engine/telemetry/emitter.ts')
  const { KafkaWorkerProducer } = await load('bus/kafka-worker.ts')
  const [kind, flushMs] = cfg.variant.split(':')
  const producer: MessageProducer =
    kind === 'null'
      ? { start: async () => {}, stop: async () => {}, send: async () => {} }
      : new KafkaWorkerProducer({
          brokers: cfg.brokers,
          topicPrefix: cfg.topicPrefix,
          logLevel: 'error',
          nice: cfg.nice,
        })
  const emitter = new TelemetryEmitter({
    producer,
    logger: createLogger('error'),
    recordsPerMessage: kind === 'single' ? 1 : undefined,
    flushIntervalMs: flushMs ? Number(flushMs) : undefined,
  })
  const spans = Array.from({ length: 5_000 }, (_, i) =>
    makeSpan(i, { trace_id: i.toString(16).padStart(32, '0'), instance: 'engine-0' }),
  )
  const before = new Set(threads().keys())
  await emitter.start()
  const producerTids = new Set([...threads().keys()].filter((t) => !before.has(t)))
  let n = 0
  const burst = setInterval(() => {
    for (let i = 0; i < cfg.rate / 10; i++) emitter.emitSpan(spans[n++ % spans.length]!)
  }, 100)
  await new Promise((r) => setTimeout(r, cfg.warmupS * 1_000))
  const sum = (m: Map<string, ThreadUse>, pick: (tid: string) => boolean): ThreadUse => {
    const u = { cpuNs: 0, wakeups: 0 }
    for (const [tid, t] of m) {
      if (!pick(tid)) continue
      u.cpuNs += t.cpuNs
      u.wakeups += t.wakeups
    }
    return u
  }
  const classes = (m: Map<string, ThreadUse>) => ({
    main: sum(m, (t) => Number(t) === process.pid),
    producer: sum(m, (t) => producerTids.has(t)),
    other: sum(m, (t) => Number(t) !== process.pid && !producerTids.has(t)),
  })
  process.send!({ window: 'start' })
  const t0 = classes(threads())
  const n0 = n
  const start = performance.now()
  await new Promise((r) => setTimeout(r, cfg.seconds * 1_000))
  const t1 = classes(threads())
  const spansEmitted = n - n0
  const wallS = (performance.now() - start) / 1_000
  process.send!({ window: 'end' })
  clearInterval(burst)
  await emitter.stop()
  const delta = (k: keyof typeof t0): ThreadUse => ({
    cpuNs: t1[k].cpuNs - t0[k].cpuNs,
    wakeups: t1[k].wakeups - t0[k].wakeups,
  })
  const result: ChildResult = {
    spans: spansEmitted,
    wallS,
    main: delta('main'),
    producer: delta('producer'),
    other: delta('other'),
    sent: emitter.sent,
    dropped: emitter.dropped,
  }
  process.send!({ result }, () => process.exit(0))
}

/** One measurement in a fresh process; `onWindow` is called when its measured window starts and ends. */
function measure(
  cfg: ChildConfig,
  onWindow?: (edge: 'start' | 'end') => Promise<void>,
): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const p = fork(fileURLToPath(import.meta.url), ['--child', JSON.stringify(cfg)], {
      execArgv: ['--import', 'tsx'],
    })
    p.on('message', async (m: { window?: 'start' | 'end'; result?: ChildResult }) => {
      if (m.window) await onWindow?.(m.window)
      if (m.result) resolve(m.result)
    })
    p.once('exit', (code) => {
      if (code !== 0) reject(new Error(`benchmark child exited ${code}`))
    })
  })
}

// ---------------------------------------------------------------- the busy neighbours (part 2)

function busy(): void {
  // counts iterations of a fixed chunk of work; reports the count when asked
  let iterations = 0
  let x = 0
  process.on('message', () => process.send!({ iterations }))
  const spin = () => {
    const until = performance.now() + 20
    while (performance.now() < until) {
      for (let i = 0; i < 1000; i++) x = (x * 31 + i) % 1_000_003
      iterations++
    }
    setImmediate(spin)
  }
  spin()
}

// ---------------------------------------------------------------- parent

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const r2 = (x: number) => Math.round(x * 100) / 100

async function main(): Promise<void> {
  const args = process.argv.slice(2).filter((a) => !a.startsWith('--'))
  const contention = process.argv.includes('--contention')
  const rate = Number(args[0] ?? 4000)
  const seconds = Number(args[1] ?? 8)
  const rounds = Number(args[2] ?? 3)
  const warmupS = Number(process.env.TELEMETRY_BENCH_WARMUP_S ?? 3)
  const topicPrefix = `bench-tprod-${Date.now()}-`
  await new KafkaTransport({ brokers, topicPrefix }).ensureTopics([TOPICS.spans, TOPICS.hw])
  const roots: CodeRoot[] = [baselineRoot(), currentRoot()]
  const loadAtStart = loadavg().map(r2)
  const t0 = performance.now()
  const cfg = (root: CodeRoot, variant: VariantName, nice?: number): ChildConfig => ({
    root: root.root,
    variant,
    rate,
    warmupS,
    seconds,
    brokers,
    topicPrefix,
    nice,
  })
  console.log(
    `${rate} spans/s, ${warmupS} s warm-up + ${seconds} s measured, ${rounds} rounds; baseline ${roots[0]!.commit}, current ${roots[1]!.commit}; load average ${loadAtStart.join(' ')}`,
  )

  // part 1: CPU per span, baseline and current side by side
  type Acc = { total: number[]; main: number[]; producer: number[]; other: number[]; wakeups: number[] }
  const acc = new Map<string, Acc>()
  const pairs = roots.flatMap((root) => VARIANTS.map((variant) => ({ root, variant })))
  for (let r = 0; r < rounds; r++) {
    for (const { root, variant } of r % 2 ? [...pairs].reverse() : pairs) {
      const got = await measure(cfg(root, variant))
      const us = (ns: number) => ns / 1e3 / got.spans
      const key = `${root.name} ${variant}`
      if (!acc.has(key)) acc.set(key, { total: [], main: [], producer: [], other: [], wakeups: [] })
      const a = acc.get(key)!
      a.main.push(us(got.main.cpuNs))
      a.producer.push(us(got.producer.cpuNs))
      a.other.push(us(got.other.cpuNs))
      a.total.push(us(got.main.cpuNs + got.producer.cpuNs + got.other.cpuNs))
      a.wakeups.push(got.producer.wakeups / got.wallS)
      if (got.dropped > 0) console.log(`  ${key}: ${got.dropped} spans dropped`)
      console.log(
        `round ${r} ${key.padEnd(20)} ${r2(a.total.at(-1)!)} µs/span (loop ${r2(a.main.at(-1)!)}, producer thread ${r2(a.producer.at(-1)!)}, other ${r2(a.other.at(-1)!)}), producer wake-ups ${Math.round(a.wakeups.at(-1)!)}/s`,
      )
    }
  }
  const cpuPerSpan = Object.fromEntries(
    [...acc].map(([key, a]) => [
      key,
      {
        us_per_span: r2(median(a.total)),
        event_loop_us_per_span: r2(median(a.main)),
        producer_thread_us_per_span: r2(median(a.producer)),
        other_threads_us_per_span: r2(median(a.other)),
        producer_wakeups_per_s: Math.round(median(a.wakeups)),
        runs_us_per_span: a.total.map(r2),
      },
    ]),
  )
  const get = (key: string) => cpuPerSpan[key]?.us_per_span
  const ratios: Record<string, number> = {}
  for (const v of VARIANTS) {
    const [old, now] = [get(`baseline ${v}`), get(`current ${v}`)]
    if (old && now) ratios[`${v}: current / baseline`] = r2(now / old)
  }
  // what the Kafka path adds above the null producer, old and new
  const above = (root: string) => {
    const k = get(`${root} containers`)
    const z = get(`${root} null`)
    return k !== undefined && z !== undefined ? r2(k - z) : undefined
  }
  const kafkaPath = { baseline_us_per_span: above('baseline'), current_us_per_span: above('current') }
  console.log('CPU per span (median):', JSON.stringify(cpuPerSpan, null, 1))
  console.log('current / baseline:', JSON.stringify(ratios))
  console.log('the Kafka path above the null producer:', JSON.stringify(kafkaPath))

  // part 2: contention
  let part2: Record<string, unknown> | undefined
  if (contention) {
    const busyProcs: ChildProcess[] = [0, 1].map(() =>
      fork(fileURLToPath(import.meta.url), ['--busy'], { execArgv: ['--import', 'tsx'] }),
    )
    const busyIterations = async () => {
      const counts = await Promise.all(
        busyProcs.map(
          (p) =>
            new Promise<number>((resolve) => {
              p.once('message', (m: { iterations: number }) => resolve(m.iterations))
              p.send({})
            }),
        ),
      )
      return counts.reduce((a, b) => a + b, 0)
    }
    await new Promise((r) => setTimeout(r, 1_000))
    const contended: Record<string, { busyPerS: number[]; dropped: number; sent: number; spans: number }> = {}
    const part2Variants = ['no emitter', 'containers, nice 0', 'containers, nice 10'] as const
    const current = roots[1]!
    for (let r = 0; r < rounds; r++) {
      for (const name of r % 2 ? [...part2Variants].reverse() : part2Variants) {
        contended[name] ??= { busyPerS: [], dropped: 0, sent: 0, spans: 0 }
        const a = contended[name]!
        if (name === 'no emitter') {
          const before = await busyIterations()
          const start = performance.now()
          await new Promise((res) => setTimeout(res, seconds * 1_000))
          a.busyPerS.push(((await busyIterations()) - before) / ((performance.now() - start) / 1_000))
        } else {
          let before = 0
          let startedAt = 0
          let perS = 0
          const got = await measure(
            cfg(current, 'containers', name.endsWith('10') ? 10 : 0),
            async (edge) => {
              if (edge === 'start') {
                before = await busyIterations()
                startedAt = performance.now()
              } else perS = ((await busyIterations()) - before) / ((performance.now() - startedAt) / 1_000)
            },
          )
          a.busyPerS.push(perS)
          a.dropped += got.dropped
          a.sent += got.sent
          a.spans += got.spans
        }
        console.log(`contended round ${r} ${name.padEnd(20)} busy work ${Math.round(a.busyPerS.at(-1)!)}/s`)
      }
    }
    for (const p of busyProcs) p.kill()
    const base = median(contended['no emitter']!.busyPerS)
    part2 = Object.fromEntries(
      Object.entries(contended).map(([name, a]) => [
        name,
        {
          busy_work_vs_no_emitter: Math.round((median(a.busyPerS) / base) * 1000) / 1000,
          ...(name === 'no emitter' ? {} : { spans: a.spans, sent: a.sent, dropped: a.dropped }),
        },
      ]),
    )
    console.log('under contention:', JSON.stringify(part2))
  }

  const result = {
    bench: 'telemetry-producer',
    machine: machineInfo(),
    load_average_1_5_15m: { start: loadAtStart, end: loadavg().map(r2) },
    brokers,
    code: Object.fromEntries(roots.map((r) => [r.name, r.commit])),
    spans_per_s: rate,
    warmup_s: warmupS,
    seconds_per_measurement: seconds,
    rounds,
    wall_s: Math.round((performance.now() - t0) / 1000),
    cpu_per_span: cpuPerSpan,
    current_vs_baseline: ratios,
    kafka_path_above_null: kafkaPath,
    ...(part2 ? { under_contention: part2 } : {}),
  }
  writeFileSync(RESULT_PATH, `${JSON.stringify(result, null, 2)}\n`)
  console.log(`wrote ${RESULT_PATH}`)
  process.exit(0)
}

if (process.argv[2] === '--child') await child(JSON.parse(process.argv[3]!) as ChildConfig)
else if (process.argv[2] === '--busy') busy()
else await main()
