/**
 * What the telemetry path costs the engine's process, without the engine: the TelemetryEmitter fed a
 * steady span rate (emitted in 10 bursts per second, as requests would over a flush interval) with the
 * production producer (KafkaWorkerProducer: kafkajs on its own thread, to the real broker at
 * KAFKA_BROKERS or 127.0.0.1:9092). The engine benchmark (telemetry-overhead.ts) answers the
 * question as asked, but on a 2-core host with the load generator and the broker beside the engine its
 * run-to-run spread (±5 %) is larger than the differences measured here.
 *
 * Part 1, CPU per span (no contention; variants interleaved over rounds, median reported):
 *   null        emitter + Avro encoding, a producer that discards (the floor: what any transport pays)
 *   single      one record per Kafka message (the contract before containers)
 *   containers  up to 64 records of one instance per message (contract/container.ts, default)
 * Reported per variant: process CPU ms per second (every thread: event loop, producer thread, V8's GC
 * helpers) and µs per span, from /proc/self/task/<tid>/schedstat; the event loop's share separately.
 *
 * Part 2, what the producer thread takes from serving under contention: two busy processes (nice 0,
 * one per core: the engine and its neighbours wanting every cycle) count loop iterations while the
 * emitter runs at the same rate with the producer thread at nice 0 or nice 10 (the default), and
 * with no emitter at all. Reported: the busy processes' work rate vs no emitter, and the spans
 * delivered (a nice thread must still keep up: none dropped).
 *
 * Run: node --import tsx bench/telemetry-producer.ts [spansPerSecond=2000] [seconds=6] [rounds=3]
 * Writes bench/results/telemetry-producer.json. Topics are prefixed bench-tprod-<run id>-.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { TelemetryEmitter } from '../engine/telemetry/emitter.ts'
import { KafkaWorkerProducer } from '../bus/kafka-worker.ts'
import { TOPICS } from '../contract/topics.ts'
import { createLogger } from '../core/logger.ts'
import { KafkaTransport } from '../bus/kafka.ts'
import type { MessageProducer } from '../bus/transport.ts'
import { makeSpan } from '../contract/synthetic.ts'
import { machineInfo } from '../core/machine.ts'

const RESULT_PATH = fileURLToPath(new URL('./results/telemetry-producer.json', import.meta.url))
const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',')

/** CPU ns so far of every thread of this process, and of the main thread */
function threadCpuNs(): { all: number; loop: number } {
  let all = 0
  let loop = 0
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const ns = Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0])
      all += ns
      if (Number(tid) === process.pid) loop = ns
    } catch {
      // the thread ended between readdir and read
    }
  }
  return { all, loop }
}

// ---------------------------------------------------------------- the busy neighbours (part 2)

if (process.argv[2] === '--busy') {
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
} else {
  await main()
}

async function main(): Promise<void> {
  const rate = Number(process.argv[2] ?? 2000)
  const seconds = Number(process.argv[3] ?? 6)
  const rounds = Number(process.argv[4] ?? 3)
  const logger = createLogger('error')
  const prefix = `bench-tprod-${Date.now()}-`
  await new KafkaTransport({ brokers, topicPrefix: prefix }).ensureTopics([TOPICS.spans, TOPICS.hw])
  const spans = Array.from({ length: 5_000 }, (_, i) =>
    makeSpan(i, { trace_id: i.toString(16).padStart(32, '0'), instance: 'engine-0' }),
  )
  const t0 = performance.now()

  type Variant = { name: string; recordsPerMessage: number; nice?: number; kafka: boolean }
  /** Runs the emitter at `rate` spans/s for `seconds`; returns CPU used and what was delivered. */
  async function run(v: Variant, during?: () => Promise<number>) {
    const producer: MessageProducer = v.kafka
      ? new KafkaWorkerProducer({ brokers, topicPrefix: prefix, logLevel: 'error', nice: v.nice })
      : { start: async () => {}, stop: async () => {}, send: async () => {} }
    const emitter = new TelemetryEmitter({ producer, logger, recordsPerMessage: v.recordsPerMessage })
    await emitter.start()
    await new Promise((r) => setTimeout(r, 1_000)) // the thread's start-up is not part of the cost
    const before = threadCpuNs()
    const busyBefore = await during?.()
    const start = performance.now()
    let n = 0
    const burst = setInterval(() => {
      for (let i = 0; i < rate / 10; i++) emitter.emitSpan(spans[n++ % spans.length]!)
    }, 100)
    await new Promise((r) => setTimeout(r, seconds * 1_000))
    clearInterval(burst)
    const busyAfter = await during?.()
    const wall = (performance.now() - start) / 1_000
    const after = threadCpuNs()
    await emitter.stop()
    return {
      cpuMsPerS: (after.all - before.all) / 1e6 / wall,
      loopMsPerS: (after.loop - before.loop) / 1e6 / wall,
      usPerSpan: (after.all - before.all) / 1e3 / n,
      spans: n,
      sent: emitter.sent,
      dropped: emitter.dropped,
      busyPerS: busyBefore === undefined ? undefined : (busyAfter! - busyBefore) / wall,
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  const r1 = (x: number) => Math.round(x * 10) / 10

  // part 1: CPU per span
  const variants: Variant[] = [
    { name: 'null', recordsPerMessage: 64, kafka: false },
    { name: 'single', recordsPerMessage: 1, kafka: true },
    { name: 'containers', recordsPerMessage: 64, kafka: true },
  ]
  const part1: Record<
    string,
    { cpuMsPerS: number[]; loopMsPerS: number[]; usPerSpan: number[]; dropped: number }
  > = {}
  for (let r = 0; r < rounds; r++) {
    for (const v of r % 2 ? [...variants].reverse() : variants) {
      const got = await run(v)
      part1[v.name] ??= { cpuMsPerS: [], loopMsPerS: [], usPerSpan: [], dropped: 0 }
      const acc = part1[v.name]!
      acc.cpuMsPerS.push(got.cpuMsPerS)
      acc.loopMsPerS.push(got.loopMsPerS)
      acc.usPerSpan.push(got.usPerSpan)
      acc.dropped += got.dropped
      console.log(
        `round ${r} ${v.name.padEnd(10)} ${r1(got.cpuMsPerS)} ms CPU/s, ${r1(got.usPerSpan)} µs/span`,
      )
    }
  }
  const cpu = Object.fromEntries(
    Object.entries(part1).map(([name, a]) => [
      name,
      {
        cpu_ms_per_s: r1(median(a.cpuMsPerS)),
        event_loop_ms_per_s: r1(median(a.loopMsPerS)),
        us_per_span: r1(median(a.usPerSpan)),
        dropped: a.dropped,
      },
    ]),
  )
  const above = (name: string) => cpu[name]!.us_per_span - cpu.null!.us_per_span
  const transportCost = {
    single_us_per_span: r1(above('single')),
    containers_us_per_span: r1(above('containers')),
    containers_vs_single: Math.round((above('containers') / above('single')) * 100) / 100,
  }
  console.log('CPU per span:', JSON.stringify(cpu))
  console.log('the Kafka path above the null producer:', JSON.stringify(transportCost))

  // part 2: contention
  const busy: ChildProcess[] = [0, 1].map(() =>
    fork(fileURLToPath(import.meta.url), ['--busy'], { execArgv: ['--import', 'tsx'] }),
  )
  const busyIterations = async () => {
    const counts = await Promise.all(
      busy.map(
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
  const noEmitter = async () => {
    const a = await busyIterations()
    const start = performance.now()
    await new Promise((r) => setTimeout(r, seconds * 1_000))
    return ((await busyIterations()) - a) / ((performance.now() - start) / 1_000)
  }
  const part2Variants: (Variant | 'none')[] = [
    'none',
    { name: 'containers, nice 0', recordsPerMessage: 64, nice: 0, kafka: true },
    { name: 'containers, nice 10', recordsPerMessage: 64, nice: 10, kafka: true },
  ]
  for (let r = 0; r < rounds; r++) {
    for (const v of r % 2 ? [...part2Variants].reverse() : part2Variants) {
      const name = v === 'none' ? 'no emitter' : v.name
      contended[name] ??= { busyPerS: [], dropped: 0, sent: 0, spans: 0 }
      const acc = contended[name]!
      if (v === 'none') acc.busyPerS.push(await noEmitter())
      else {
        const got = await run(v, busyIterations)
        acc.busyPerS.push(got.busyPerS!)
        acc.dropped += got.dropped
        acc.sent += got.sent
        acc.spans += got.spans
      }
      console.log(`contended round ${r} ${name.padEnd(20)} busy work ${Math.round(acc.busyPerS.at(-1)!)}/s`)
    }
  }
  for (const p of busy) p.kill()
  const base = median(contended['no emitter']!.busyPerS)
  const part2 = Object.fromEntries(
    Object.entries(contended).map(([name, a]) => [
      name,
      {
        busy_work_vs_no_emitter: Math.round((median(a.busyPerS) / base) * 1000) / 1000,
        ...(name === 'no emitter' ? {} : { spans: a.spans, sent: a.sent, dropped: a.dropped }),
      },
    ]),
  )
  console.log('under contention:', JSON.stringify(part2))

  const result = {
    bench: 'telemetry-producer',
    machine: machineInfo(),
    brokers,
    spans_per_s: rate,
    seconds_per_round: seconds,
    rounds,
    wall_s: Math.round((performance.now() - t0) / 1000),
    cpu_per_span: cpu,
    kafka_path_above_null: transportCost,
    under_contention: part2,
  }
  writeFileSync(RESULT_PATH, `${JSON.stringify(result, null, 2)}\n`)
  console.log(`wrote ${RESULT_PATH}`)
  process.exit(0)
}
