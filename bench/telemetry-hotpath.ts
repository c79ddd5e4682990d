/**
 * The event loop's share of telemetry per span, old and new side by side: each piece the engine runs
 * per request or per flush, timed on realistic spans in a fresh process per code version and round
 * (this checkout's `current`, the baseline commit's `baseline`: telemetry-baseline.ts), rounds
 * interleaved, CPU time (process.cpuUsage) per span, median over passes and rounds:
 *
 *   emit_span            TelemetryEmitter.emitSpan (the request path: buffer the span)
 *   flush_encode         a flush of 370 spans (what 100 ms hold at 3 700 req/s) with a producer that
 *                        takes the messages and does nothing (and lends memory, as the producer
 *                        thread does): grouping, Avro-encoding into containers
 *   metrics_batch1/4     the /metrics recorder fed a span, every request its own batch / batches of 4
 *   otlp_sample_enqueue  the OTLP exporter's sampling decision and enqueue (the otlp mode only)
 *
 * The producer thread's share is bench/telemetry-producer.ts's.
 *
 * Run: node --import tsx bench/telemetry-hotpath.ts [rounds=3]
 *   TELEMETRY_BENCH_BASELINE=<commit>  TELEMETRY_BENCH_OUT=<file> (default bench/results/telemetry-hotpath.json)
 */
import { fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { Span } from '../contract/records.ts'
import { makeSpan } from '../contract/synthetic.ts'
import { createLogger } from '../core/logger.ts'
import { machineInfo } from '../core/machine.ts'
import { baselineRoot, type CodeRoot, currentRoot } from './telemetry-baseline.ts'

const RESULT_PATH =
  process.env.TELEMETRY_BENCH_OUT ??
  fileURLToPath(new URL('./results/telemetry-hotpath.json', import.meta.url))
const SPANS = 20_000
const PASSES = 9
const FLUSH_SPANS = 370

type Costs = Record<string, number>

/** median CPU µs per span of `passes` passes over `spans` */
function time(spans: Span[], f: (s: Span) => void, after?: () => void): number {
  const passes: number[] = []
  for (let k = 0; k < PASSES; k++) {
    const c0 = process.cpuUsage()
    for (const s of spans) f(s)
    after?.()
    const c = process.cpuUsage(c0)
    passes.push((c.user + c.system) / spans.length)
  }
  return median(passes)
}

async function child(root: string): Promise<void> {
  const load = (path: string) => import(pathToFileURL(join(root, path)).href)
  const { TelemetryEmitter } = await load('engine/telemetry/emitter.ts')
  const { MetricsRecorder } = await load('engine/telemetry/metrics-recorder.ts')
  const { OtlpSpanExporter } = await load('engine/telemetry/otlp.ts')
  const spansOf = (batchSize: number) =>
    Array.from({ length: SPANS }, (_, i) =>
      makeSpan(i, {
        trace_id: randomBytes(16).toString('hex'),
        span_id: randomBytes(8).toString('hex'),
        request_id: `0190a1b2-c3d4-7${(i % 4096).toString(16).padStart(3, '0')}-8abc-${i.toString(16).padStart(12, '0')}`,
        batch_id: `engine-0-mlp-${Math.floor(i / batchSize)}`,
        batch_size: batchSize,
        instance: 'engine-0',
      }),
    )
  const spans = spansOf(1)
  // a producer that takes the messages and does nothing, and lends memory as the producer thread does
  // (code that does not borrow ignores it)
  const pool: Buffer[] = []
  const producer = {
    start: async () => {},
    stop: async () => {},
    send: async () => {},
    borrow: (bytes: number) => {
      const i = pool.findIndex((b) => b.length >= bytes)
      return i >= 0 ? pool.splice(i, 1)[0]! : Buffer.from(new SharedArrayBuffer(Math.ceil(bytes * 1.25)))
    },
    giveBack: (b: Buffer) => void (pool.length < 4 && pool.push(b)),
  }
  const quiet = {
    producer,
    logger: createLogger('silent'),
    flushIntervalMs: 3_600_000,
  }
  const costs: Costs = {}
  {
    const emitter = new TelemetryEmitter({ ...quiet, maxBatch: 1_000_000, maxBuffered: 1_000_000 })
    costs.emit_span = time(
      spans,
      (s) => emitter.emitSpan(s),
      () => void emitter.flush(),
    )
    await emitter.flush()
  }
  {
    const emitter = new TelemetryEmitter({ ...quiet, maxBatch: 1_000_000, maxBuffered: 1_000_000 })
    const chunks: Span[][] = []
    for (let i = 0; i < spans.length; i += FLUSH_SPANS) chunks.push(spans.slice(i, i + FLUSH_SPANS))
    const passes: number[] = []
    for (let k = 0; k < PASSES; k++) {
      let cpu = 0
      for (const chunk of chunks) {
        for (const s of chunk) emitter.emitSpan(s)
        const c0 = process.cpuUsage()
        await emitter.flush()
        const c = process.cpuUsage(c0)
        cpu += c.user + c.system
      }
      passes.push(cpu / spans.length)
    }
    costs.flush_encode = median(passes)
  }
  for (const batchSize of [1, 4]) {
    const recorder = new MetricsRecorder({ executors: () => [] })
    const batched = batchSize === 1 ? spans : spansOf(batchSize)
    costs[`metrics_batch${batchSize}`] = time(batched, (s) => recorder.observe(s))
    recorder.stop()
  }
  {
    const exporter = new OtlpSpanExporter({
      sampleRatio: 0.1,
      maxQueueSize: 100_000,
      scheduledDelayMs: 3_600_000,
      exporter: {
        export: (_s: unknown, cb: (r: { code: number }) => void) => cb({ code: 0 }),
        shutdown: async () => {},
      },
    })
    costs.otlp_sample_enqueue = time(spans, (s) => exporter.observe(s, {}))
    void exporter.shutdown()
  }
  process.send!({ costs }, () => process.exit(0))
}

function measure(root: CodeRoot): Promise<Costs> {
  return new Promise((resolve, reject) => {
    const p = fork(fileURLToPath(import.meta.url), ['--child', root.root], { execArgv: ['--import', 'tsx'] })
    p.on('message', (m: { costs?: Costs }) => m.costs && resolve(m.costs))
    p.once('exit', (code) => code !== 0 && reject(new Error(`benchmark child exited ${code}`)))
  })
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const r3 = (x: number) => Math.round(x * 1000) / 1000

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 3)
  const roots = [baselineRoot(), currentRoot()]
  const loadAtStart = loadavg().map((x) => Math.round(x * 100) / 100)
  console.log(
    `baseline ${roots[0]!.commit}, current ${roots[1]!.commit}; ${rounds} rounds; load average ${loadAtStart.join(' ')}`,
  )
  const runs = new Map<string, Costs[]>()
  for (let r = 0; r < rounds; r++) {
    for (const root of r % 2 ? [...roots].reverse() : roots) {
      const costs = await measure(root)
      runs.set(root.name, [...(runs.get(root.name) ?? []), costs])
      console.log(
        `round ${r} ${root.name.padEnd(8)} ${JSON.stringify(Object.fromEntries(Object.entries(costs).map(([k, v]) => [k, r3(v)])))}`,
      )
    }
  }
  const summary: Record<string, Record<string, number>> = {}
  for (const [name, list] of runs) {
    summary[name] = Object.fromEntries(
      Object.keys(list[0]!).map((k) => [`${k}_us`, r3(median(list.map((c) => c[k]!)))]),
    )
  }
  const ratios = Object.fromEntries(
    Object.keys(summary.current!).map((k) => [
      k,
      Math.round((summary.current![k]! / summary.baseline![k]!) * 100) / 100,
    ]),
  )
  console.log('µs per span (median):', JSON.stringify(summary))
  console.log('current / baseline:', JSON.stringify(ratios))
  const result = {
    bench: 'telemetry-hotpath',
    machine: machineInfo(),
    load_average_1_5_15m: { start: loadAtStart, end: loadavg().map((x) => Math.round(x * 100) / 100) },
    code: Object.fromEntries(roots.map((r) => [r.name, r.commit])),
    rounds,
    spans_per_pass: SPANS,
    passes: PASSES,
    flush_spans: FLUSH_SPANS,
    us_per_span: summary,
    current_vs_baseline: ratios,
  }
  writeFileSync(RESULT_PATH, `${JSON.stringify(result, null, 2)}\n`)
  console.log(`wrote ${RESULT_PATH}`)
}

if (process.argv[2] === '--child') await child(process.argv[3]!)
else await main()
