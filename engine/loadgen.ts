/**
 * Open-loop load generator for any Open Inference Protocol endpoint. Requests are sent on a schedule
 * whether or not earlier ones have answered, and latency is measured from the *scheduled* send time,
 * so a stalled server shows up as latency instead of hiding behind fewer requests (no coordinated
 * omission). Latencies go into an HdrHistogram (µs, 3 significant digits). Bounded by `durationMs`
 * and `maxOutstanding`.
 *
 * Arrival patterns (`arrivalSchedule`, a pure function of its options):
 * - `constant`: evenly spaced at `ratePerSec`;
 * - `poisson`: exponential gaps with mean 1/`ratePerSec` (seeded);
 * - `bursty`: on/off — each `burstPeriodMs` opens with a burst at `burstFactor` × `ratePerSec` lasting
 *   1/`burstFactor` of the period, then silence, so the mean rate is still `ratePerSec`;
 * - `diurnal`: the rate follows a sine from `minRatePerSec` (at t = 0) up to `ratePerSec` (at half the
 *   `periodMs`) and back.
 */
import http from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { build as buildHistogram, type Histogram } from 'hdr-histogram-js'
import { InvalidInputError } from '../core/errors.ts'
import { isRunId, RUN_ID_HEADER, runIdProblem } from '../contract/run-id.ts'
import { type GeneratedInput, toKServeInputs } from './models/zoo.ts'

export const ARRIVAL_PATTERNS = ['constant', 'poisson', 'bursty', 'diurnal'] as const
export type ArrivalPattern = (typeof ARRIVAL_PATTERNS)[number]

export interface ArrivalOptions {
  arrival?: ArrivalPattern
  /** constant/poisson: the rate; bursty: the mean rate; diurnal: the peak rate. Requests per second. */
  ratePerSec: number
  durationMs: number
  /** bursty: rate multiplier during a burst (> 1). Default 4. */
  burstFactor?: number
  /** bursty: length of one on+off cycle, ms. Default 10 000. */
  burstPeriodMs?: number
  /** diurnal: the trough rate, requests per second. Default ratePerSec / 10. */
  minRatePerSec?: number
  /** diurnal: length of one cycle, ms. Default 60 000. */
  periodMs?: number
  /** poisson: seeded so runs are repeatable. Default 42. */
  seed?: number
}

export interface LoadgenOptions extends ArrivalOptions {
  /** e.g. http://127.0.0.1:8000/v2/models/mlp/infer */
  url: string
  /**
   * request bodies to cycle through: JSON strings (sent as application/json), or prebuilt bodies with
   * their own headers (`inferBody(inputs, 'binary')`: the binary tensor extension)
   */
  bodies: (string | LoadgenBody)[]
  /** requests allowed in flight at once; beyond that a scheduled request is counted as dropped */
  maxOutstanding?: number
  timeoutMs?: number
  signal?: AbortSignal
  /** called every `progressIntervalMs` while the run lasts (the CLI's progress line) */
  onProgress?: (p: LoadgenProgress) => void
  /** default 1000 */
  progressIntervalMs?: number
  /** sent as the `breakid-run-id` header, so the engine tags these requests' spans with this run */
  runId?: string
}

export interface LoadgenProgress {
  elapsedMs: number
  sent: number
  ok: number
  /** answered with anything else, or not at all (status 0) */
  failed: number
  outstanding: number
  droppedAtClient: number
  /** answers per second since the previous progress call */
  recentThroughputPerSec: number
  /** of every answer so far */
  p99Ms: number
}

export interface LoadgenReport {
  /** open: requests on a schedule (runLoad); closed: `concurrency` workers, each sending when answered */
  mode?: 'open' | 'closed'
  /** the run id the requests carried, if any */
  runId?: string
  arrival: ArrivalPattern
  /** arrivals the schedule produced: sent + droppedAtClient */
  scheduled: number
  sent: number
  ok: number
  /** status code → count (0 = connection error or timeout) */
  statuses: Record<string, number>
  droppedAtClient: number
  durationMs: number
  /** 200 answers per second of the run */
  throughputPerSec: number
  latencyMs: { p50: number; p95: number; p99: number; p999: number; max: number; mean: number }
}

/** A prebuilt request body and the headers that describe it (content-type, Inference-Header-Content-Length). */
export interface LoadgenBody {
  bytes: Buffer
  headers: Record<string, string>
}

export const BODY_ENCODINGS = ['json', 'binary'] as const
export type BodyEncoding = (typeof BODY_ENCODINGS)[number]

/**
 * One KServe v2 inference request for `inputs`:
 * - `json`: the inputs as JSON `data` arrays (every value as decimal text);
 * - `binary`: the binary tensor extension, as Triton's perf_analyzer sends it — a JSON header whose
 *   inputs carry `parameters.binary_data_size`, then each input's raw little-endian bytes, with
 *   `Inference-Header-Content-Length` naming the header's length; outputs are asked for as binary too.
 */
export function inferBody(inputs: readonly GeneratedInput[], encoding: BodyEncoding): LoadgenBody {
  if (encoding === 'json') {
    const json = JSON.stringify({ inputs: toKServeInputs(inputs) })
    return { bytes: Buffer.from(json), headers: { 'content-type': 'application/json' } }
  }
  if (encoding !== 'binary') {
    throw new InvalidInputError(`body encoding "${encoding}" is not one of ${BODY_ENCODINGS.join(', ')}`)
  }
  const tensors = inputs.map((t) => littleEndianBytes(t.data))
  const header = Buffer.from(
    JSON.stringify({
      inputs: inputs.map((t, i) => ({
        name: t.name,
        shape: [...t.shape],
        datatype: t.datatype,
        parameters: { binary_data_size: tensors[i]!.length },
      })),
      parameters: { binary_data_output: true },
    }),
  )
  return {
    bytes: Buffer.concat([header, ...tensors]),
    headers: {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(header.length),
    },
  }
}

/** A typed array's values as little-endian bytes (a copy, whatever the host's byte order). */
function littleEndianBytes(data: Float32Array | BigInt64Array): Buffer {
  const b = Buffer.alloc(data.byteLength)
  if (data instanceof Float32Array) for (let i = 0; i < data.length; i++) b.writeFloatLE(data[i]!, i * 4)
  else for (let i = 0; i < data.length; i++) b.writeBigInt64LE(data[i]!, i * 8)
  return b
}

export function isLoopback(url: string): boolean {
  const host = new URL(url).hostname
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)
}

/** Validates the arrival options and fills in defaults; InvalidInputError names the bad one. */
function arrivalDefaults(o: ArrivalOptions): Required<ArrivalOptions> {
  const arrival = o.arrival ?? 'constant'
  if (!ARRIVAL_PATTERNS.includes(arrival)) {
    throw new InvalidInputError(`arrival "${arrival}" is not one of ${ARRIVAL_PATTERNS.join(', ')}`)
  }
  if (!(o.ratePerSec > 0) || !(o.durationMs > 0)) throw new InvalidInputError('rate and duration must be > 0')
  const r: Required<ArrivalOptions> = {
    arrival,
    ratePerSec: o.ratePerSec,
    durationMs: o.durationMs,
    burstFactor: o.burstFactor ?? 4,
    burstPeriodMs: o.burstPeriodMs ?? 10_000,
    minRatePerSec: o.minRatePerSec ?? o.ratePerSec / 10,
    periodMs: o.periodMs ?? 60_000,
    seed: o.seed ?? 42,
  }
  if (!(r.burstFactor >= 1)) throw new InvalidInputError('burst factor must be >= 1')
  if (!(r.burstPeriodMs > 0)) throw new InvalidInputError('burst period must be > 0')
  if (!(r.periodMs > 0)) throw new InvalidInputError('period must be > 0')
  if (!(r.minRatePerSec >= 0 && r.minRatePerSec <= r.ratePerSec)) {
    throw new InvalidInputError(`min rate ${r.minRatePerSec} must be between 0 and the rate ${r.ratePerSec}`)
  }
  return r
}

/**
 * Expected arrivals in [0, tMs): the integral of the pattern's rate. Arrival k is where this reaches k
 * (deterministic) or the k-th sum of unit exponentials (poisson), which is time-rescaling of a
 * (non-homogeneous) process.
 */
export function expectedArrivals(opts: ArrivalOptions, tMs: number): number {
  const o = arrivalDefaults(opts)
  const perMs = o.ratePerSec / 1000
  if (o.arrival === 'bursty') {
    const onMs = o.burstPeriodMs / o.burstFactor
    const cycles = Math.floor(tMs / o.burstPeriodMs)
    const into = tMs - cycles * o.burstPeriodMs
    return cycles * perMs * o.burstPeriodMs + perMs * o.burstFactor * Math.min(into, onMs)
  }
  if (o.arrival === 'diurnal') {
    const minPerMs = o.minRatePerSec / 1000
    const w = (2 * Math.PI) / o.periodMs
    // rate(t) = min + (max − min)(1 − cos ωt)/2
    return minPerMs * tMs + ((perMs - minPerMs) / 2) * (tMs - Math.sin(w * tMs) / w)
  }
  return perMs * tMs
}

/** The target rate at `tMs`, requests per second (for progress lines and tests). */
export function rateAt(opts: ArrivalOptions, tMs: number): number {
  const o = arrivalDefaults(opts)
  if (o.arrival === 'bursty') {
    return tMs % o.burstPeriodMs < o.burstPeriodMs / o.burstFactor ? o.ratePerSec * o.burstFactor : 0
  }
  if (o.arrival === 'diurnal') {
    const phase = (1 - Math.cos((2 * Math.PI * tMs) / o.periodMs)) / 2
    return o.minRatePerSec + (o.ratePerSec - o.minRatePerSec) * phase
  }
  return o.ratePerSec
}

/**
 * The send times (ms from the start, increasing, all < durationMs) of an arrival pattern. Pure and
 * lazy: the load generator pulls the next one when it is due.
 */
export function* arrivalSchedule(opts: ArrivalOptions): Generator<number> {
  const o = arrivalDefaults(opts)
  const lambda = (t: number) => expectedArrivals(o, t)
  let seed = o.seed
  const random = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31
    return seed / 2 ** 31
  }
  if (o.arrival === 'constant') {
    // exact spacing, no search needed
    const gap = 1000 / o.ratePerSec
    for (let k = 0; k * gap < o.durationMs; k++) yield k * gap
    return
  }
  let target = 0
  let last = 0
  for (;;) {
    // the first t with Λ(t) > target: gallop to a bound, then bisect (Λ is non-decreasing). Strictly
    // greater, so an arrival due exactly as a burst ends belongs to the next burst, not the silence.
    let lo = last
    let step = 1000 / o.ratePerSec
    let hi = Math.min(o.durationMs, last + step)
    // relative slack: Λ is summed in floating point, and a flat stretch must not count as a rise
    const above = target + 1e-9 * Math.max(1, target)
    while (lambda(hi) <= above) {
      if (hi >= o.durationMs) return
      lo = hi
      step *= 2
      hi = Math.min(o.durationMs, last + step)
    }
    if (lambda(lo) > above) hi = lo
    for (let i = 0; i < 64 && hi - lo > 1e-4; i++) {
      const mid = (lo + hi) / 2
      if (lambda(mid) > above) hi = mid
      else lo = mid
    }
    if (hi >= o.durationMs) return
    yield hi
    last = hi
    target += o.arrival === 'poisson' ? -Math.log(1 - random()) : 1
  }
}

/** Latency histogram in µs: 1 µs to 1 h, 3 significant digits, grows if a value is larger. */
export function newHistogram(): Histogram {
  // the pure-JS build: no WebAssembly to initialise, same answers
  return buildHistogram({
    useWebAssembly: false,
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 3,
    autoResize: true,
  })
}

export async function runLoad(opts: LoadgenOptions): Promise<LoadgenReport> {
  const arrival = arrivalDefaults(opts).arrival
  if (opts.bodies.length === 0) throw new InvalidInputError('loadgen needs at least one request body')
  if (opts.runId !== undefined && runIdProblem(opts.runId)) {
    throw new InvalidInputError(`run id "${opts.runId}": ${runIdProblem(opts.runId)}`)
  }
  const runHeader: Record<string, string> = opts.runId === undefined ? {} : { [RUN_ID_HEADER]: opts.runId }
  const schedule = arrivalSchedule(opts)
  const target = new URL(opts.url)
  const maxOutstanding = opts.maxOutstanding ?? 512
  const agent = new http.Agent({ keepAlive: true, maxSockets: maxOutstanding })
  const timeoutMs = opts.timeoutMs ?? 30_000
  const histogram = newHistogram()
  let maxLatencyMs = 0
  const statuses: Record<string, number> = {}
  let sent = 0
  let answered = 0
  let outstanding = 0
  let dropped = 0
  // headers built once per body: content-length and the body's own headers
  const bodies = opts.bodies.map((b) => {
    const { bytes, headers } =
      typeof b === 'string' ? { bytes: Buffer.from(b), headers: { 'content-type': 'application/json' } } : b
    return { bytes, headers: { ...headers, ...runHeader, 'content-length': String(bytes.length) } }
  })

  const one = (scheduledAt: number, body: { bytes: Buffer; headers: Record<string, string> }) => {
    outstanding++
    return post(target, agent, body, timeoutMs).then((status) => {
      outstanding--
      answered++
      const ms = performance.now() - scheduledAt
      histogram.recordValue(Math.max(1, Math.round(ms * 1000)))
      maxLatencyMs = Math.max(maxLatencyMs, ms)
      statuses[status] = (statuses[status] ?? 0) + 1
    })
  }

  const started = performance.now()
  const progressEveryMs = opts.progressIntervalMs ?? 1000
  let lastProgress = { at: started, answered: 0 }
  const progress = opts.onProgress
    ? setInterval(() => {
        const now = performance.now()
        const ok = statuses['200'] ?? 0
        opts.onProgress?.({
          elapsedMs: Math.round(now - started),
          sent,
          ok,
          failed: answered - ok,
          outstanding,
          droppedAtClient: dropped,
          recentThroughputPerSec: round2(
            ((answered - lastProgress.answered) * 1000) / (now - lastProgress.at),
          ),
          p99Ms: round2(histogram.getValueAtPercentile(99) / 1000),
        })
        lastProgress = { at: now, answered }
      }, progressEveryMs)
    : undefined
  const inflight = new Set<Promise<void>>()
  let next = schedule.next()
  try {
    while (!next.done && !opts.signal?.aborted) {
      const due = started + next.value
      const now = performance.now()
      if (due > now) {
        await new Promise((r) => setTimeout(r, due - now))
        continue
      }
      // catch up on every arrival that is due (timers are coarse); each keeps its own scheduled time
      while (!next.done && started + next.value <= performance.now()) {
        if (outstanding >= maxOutstanding) dropped++
        else {
          const p = one(started + next.value, bodies[sent % bodies.length]!)
          inflight.add(p)
          void p.then(() => inflight.delete(p))
          sent++
        }
        next = schedule.next()
      }
    }
    // the schedule can end before the run does (a burst's silence, a diurnal trough): the run still
    // lasts durationMs, so throughput is per the whole run
    // (in a loop: a timer may fire up to a millisecond before performance.now() says it is due)
    for (
      let restMs = started + opts.durationMs - performance.now();
      restMs > 0 && !opts.signal?.aborted;
      restMs = started + opts.durationMs - performance.now()
    ) {
      await sleep(restMs, undefined, { signal: opts.signal }).catch(() => {})
    }
    await Promise.all(inflight)
  } finally {
    if (progress) clearInterval(progress)
    agent.destroy()
  }
  const durationMs = performance.now() - started
  // a bucket's upper edge can lie above the largest value recorded: cap at the exact max
  const pct = (q: number) =>
    histogram.totalCount === 0 ? 0 : round2(Math.min(histogram.getValueAtPercentile(q) / 1000, maxLatencyMs))
  const report: LoadgenReport = {
    mode: 'open',
    ...(opts.runId === undefined ? {} : { runId: opts.runId }),
    arrival,
    scheduled: sent + dropped,
    sent,
    ok: statuses['200'] ?? 0,
    statuses,
    droppedAtClient: dropped,
    durationMs: Math.round(durationMs),
    throughputPerSec: round2(((statuses['200'] ?? 0) * 1000) / durationMs),
    latencyMs: {
      p50: pct(50),
      p95: pct(95),
      p99: pct(99),
      p999: pct(99.9),
      // exact, not bucketed: the worst request is what a stall shows
      max: round2(maxLatencyMs),
      mean: histogram.totalCount === 0 ? 0 : round2(histogram.mean / 1000),
    },
  }
  histogram.destroy()
  return report
}

function round2(x: number): number {
  return Math.round(x * 100) / 100
}

/** One progress line for a terminal. */
export function formatProgress(p: LoadgenProgress): string {
  return (
    `[loadgen] ${(p.elapsedMs / 1000).toFixed(0)}s sent ${p.sent} ok ${p.ok} failed ${p.failed} ` +
    `in-flight ${p.outstanding} dropped ${p.droppedAtClient} ${p.recentThroughputPerSec.toFixed(1)} ans/s p99 ${p.p99Ms} ms`
  )
}

// ---------------------------------------------------------------------------------------------------
// Closed loop and sweeps

export interface ClosedLoopOptions {
  url: string
  bodies: (string | LoadgenBody)[]
  /** workers, each sending its next request as soon as its last one is answered (1..4096) */
  concurrency: number
  durationMs: number
  timeoutMs?: number
  signal?: AbortSignal
  runId?: string
  /**
   * The interval one worker is expected to send at when nothing stalls, ms, for HdrHistogram's
   * coordinated-omission correction. Default: the median latency measured (a closed-loop worker sends
   * the moment it is answered, so its interval is the typical latency).
   */
  expectedIntervalMs?: number
}

export interface ClosedLoopReport extends LoadgenReport {
  mode: 'closed'
  concurrency: number
  /** the expected interval the correction used, ms */
  expectedIntervalMs: number
  /** the percentiles as measured, before the correction (what a naive closed-loop client reports) */
  latencyUncorrectedMs: LoadgenReport['latencyMs']
}

/**
 * Closed-loop load: `concurrency` workers, each waiting for its answer before sending again — the
 * mode of Triton's perf_analyzer `--concurrency-range`. A closed loop suffers coordinated omission: a
 * stall of S holds back the requests a worker would have sent during it, so S is recorded once
 * instead of once per request that should have waited. Its percentiles are therefore corrected as
 * HdrHistogram does (`copyCorrectedForCoordinatedOmission`): a latency V above the expected interval
 * E also records V − E, V − 2E, … down to E, the waits of the requests the stall held back. The
 * uncorrected percentiles are reported beside them. (The open loop, `runLoad`, needs no correction:
 * it measures from each request's scheduled time, and a request held back by a stall still counts its
 * wait; only requests dropped at `maxOutstanding` go unmeasured, and they are counted.)
 */
export async function runClosedLoop(opts: ClosedLoopOptions): Promise<ClosedLoopReport> {
  if (opts.bodies.length === 0) throw new InvalidInputError('loadgen needs at least one request body')
  if (!Number.isInteger(opts.concurrency) || opts.concurrency < 1 || opts.concurrency > 4096) {
    throw new InvalidInputError(`concurrency must be an integer from 1 to 4096, got ${opts.concurrency}`)
  }
  if (!(opts.durationMs > 0)) throw new InvalidInputError('duration must be > 0')
  if (opts.expectedIntervalMs !== undefined && !(opts.expectedIntervalMs > 0)) {
    throw new InvalidInputError('expected interval must be > 0 ms')
  }
  if (opts.runId !== undefined && runIdProblem(opts.runId)) {
    throw new InvalidInputError(`run id "${opts.runId}": ${runIdProblem(opts.runId)}`)
  }
  const target = new URL(opts.url)
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency })
  const timeoutMs = opts.timeoutMs ?? 30_000
  const runHeader: Record<string, string> = opts.runId === undefined ? {} : { [RUN_ID_HEADER]: opts.runId }
  const bodies = opts.bodies.map((b) => {
    const { bytes, headers } =
      typeof b === 'string' ? { bytes: Buffer.from(b), headers: { 'content-type': 'application/json' } } : b
    return { bytes, headers: { ...headers, ...runHeader, 'content-length': String(bytes.length) } }
  })
  const raw = newHistogram()
  const statuses: Record<string, number> = {}
  let maxLatencyMs = 0
  let sent = 0
  const started = performance.now()
  const end = started + opts.durationMs
  const worker = async () => {
    while (performance.now() < end && !opts.signal?.aborted) {
      const body = bodies[sent++ % bodies.length]!
      const t0 = performance.now()
      const status = await post(target, agent, body, timeoutMs)
      const ms = performance.now() - t0
      raw.recordValue(Math.max(1, Math.round(ms * 1000)))
      maxLatencyMs = Math.max(maxLatencyMs, ms)
      statuses[status] = (statuses[status] ?? 0) + 1
    }
  }
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, worker))
  } finally {
    agent.destroy()
  }
  const durationMs = performance.now() - started
  const expectedUs =
    opts.expectedIntervalMs !== undefined
      ? Math.max(1, Math.round(opts.expectedIntervalMs * 1000))
      : Math.max(1, raw.totalCount === 0 ? 1 : raw.getValueAtPercentile(50))
  const { corrected, uncorrected } = coordinatedOmissionSummary(raw, expectedUs, maxLatencyMs)
  const ok = statuses['200'] ?? 0
  const report: ClosedLoopReport = {
    mode: 'closed',
    ...(opts.runId === undefined ? {} : { runId: opts.runId }),
    arrival: 'constant',
    concurrency: opts.concurrency,
    scheduled: sent,
    sent,
    ok,
    statuses,
    droppedAtClient: 0,
    durationMs: Math.round(durationMs),
    throughputPerSec: round2((ok * 1000) / durationMs),
    expectedIntervalMs: round2(expectedUs / 1000),
    latencyMs: corrected,
    latencyUncorrectedMs: uncorrected,
  }
  raw.destroy()
  return report
}

/**
 * Percentiles (ms) of a latency histogram (µs) as measured and corrected for coordinated omission
 * at the expected interval (µs): HdrHistogram's copyCorrectedForCoordinatedOmission. Percentiles are
 * capped at the exact largest latency (a bucket's upper edge can lie above it).
 */
export function coordinatedOmissionSummary(
  raw: Histogram,
  expectedIntervalUs: number,
  maxLatencyMs: number,
): { corrected: LoadgenReport['latencyMs']; uncorrected: LoadgenReport['latencyMs'] } {
  const summary = (h: Histogram): LoadgenReport['latencyMs'] => {
    const pct = (q: number) =>
      h.totalCount === 0 ? 0 : round2(Math.min(h.getValueAtPercentile(q) / 1000, maxLatencyMs))
    return {
      p50: pct(50),
      p95: pct(95),
      p99: pct(99),
      p999: pct(99.9),
      max: round2(maxLatencyMs),
      mean: h.totalCount === 0 ? 0 : round2(h.mean / 1000),
    }
  }
  if (raw.totalCount === 0) return { corrected: summary(raw), uncorrected: summary(raw) }
  const copy = raw.copyCorrectedForCoordinatedOmission(Math.max(1, Math.round(expectedIntervalUs)))
  const result = { corrected: summary(copy), uncorrected: summary(raw) }
  copy.destroy()
  return result
}

/**
 * Sweep levels as perf_analyzer takes them: a list (`50,100,200`) or a range `start:end:step`
 * (`1:16:3` → 1, 4, 7, 10, 13, 16; the end is included when a step lands on it). At most 100 levels.
 */
export function parseLevels(text: string, what: string, opts: { integer?: boolean } = {}): number[] {
  const t = text.trim()
  const fail = (why: string): never => {
    throw new InvalidInputError(`${what}: "${text}" ${why} (a list 50,100,200 or a range start:end:step)`)
  }
  let levels: number[]
  const range = /^(\d+(?:\.\d+)?):(\d+(?:\.\d+)?)(?::(\d+(?:\.\d+)?))?$/.exec(t)
  if (range) {
    const [start, stop, step] = [Number(range[1]), Number(range[2]), Number(range[3] ?? 1)]
    if (!(step > 0)) fail('needs a step > 0')
    if (stop < start) fail('ends before it starts')
    levels = []
    for (let v = start; v <= stop + 1e-9 && levels.length <= 100; v += step)
      levels.push(Math.round(v * 1e6) / 1e6)
  } else {
    levels = t.split(',').map((x) => (x.trim() === '' ? Number.NaN : Number(x)))
  }
  if (levels.length === 0 || levels.length > 100) fail('must give 1 to 100 levels')
  for (const v of levels) {
    if (!Number.isFinite(v) || v <= 0) fail('needs numbers > 0')
    if (opts.integer && !Number.isInteger(v)) fail('needs whole numbers')
  }
  return levels
}

export interface SweepOptions {
  /** open-loop rates (requests per second) or closed-loop concurrencies */
  mode: 'rate' | 'concurrency'
  levels: readonly number[]
  /** measured time per level */
  durationMs: number
  /** load sent before each level's measurement and discarded. Default 0 */
  warmupMs?: number
  /** stop after the first level whose p99 exceeds this, ms (perf_analyzer's --latency-threshold) */
  latencyLimitMs?: number
  url: string
  bodies: (string | LoadgenBody)[]
  timeoutMs?: number
  maxOutstanding?: number
  signal?: AbortSignal
  /** the run id of level i: `runId(level, i)`; default none */
  runId?: (level: number, index: number) => string | undefined
  /** called after each level (progress lines) */
  onLevel?: (level: SweepLevel) => void
}

export interface SweepLevel {
  level: number
  report: LoadgenReport
}

/** The load runners a sweep calls (injectable for tests). */
export interface LoadRunners {
  open: typeof runLoad
  closed: typeof runClosedLoop
}

/**
 * A sweep over load levels, one after the other, each with its own warm-up (discarded) and
 * measurement, stopping early past `latencyLimitMs` — Triton perf_analyzer's `--request-rate-range`
 * and `--concurrency-range`.
 */
export async function runSweep(
  opts: SweepOptions,
  runners: LoadRunners = { open: runLoad, closed: runClosedLoop },
): Promise<{ levels: SweepLevel[]; stoppedEarly: boolean }> {
  const out: SweepLevel[] = []
  for (const [i, level] of opts.levels.entries()) {
    if (opts.signal?.aborted) break
    const runId = opts.runId?.(level, i)
    const one = (durationMs: number, id: string | undefined) =>
      opts.mode === 'rate'
        ? runners.open({
            url: opts.url,
            bodies: opts.bodies,
            ratePerSec: level,
            durationMs,
            timeoutMs: opts.timeoutMs,
            maxOutstanding: opts.maxOutstanding,
            signal: opts.signal,
            runId: id,
          })
        : runners.closed({
            url: opts.url,
            bodies: opts.bodies,
            concurrency: level,
            durationMs,
            timeoutMs: opts.timeoutMs,
            signal: opts.signal,
            runId: id,
          })
    if ((opts.warmupMs ?? 0) > 0) {
      const warm = runId === undefined ? undefined : isRunId(`${runId}.warmup`) ? `${runId}.warmup` : 'warmup'
      await one(opts.warmupMs!, warm)
    }
    const report = await one(opts.durationMs, runId)
    const result = { level, report }
    out.push(result)
    opts.onLevel?.(result)
    if (opts.latencyLimitMs !== undefined && report.latencyMs.p99 > opts.latencyLimitMs) {
      return { levels: out, stoppedEarly: i < opts.levels.length - 1 }
    }
  }
  return { levels: out, stoppedEarly: false }
}

/**
 * One POST; resolves with its HTTP status once the response has been read, 0 when it failed (refused,
 * reset, or no answer within `timeoutMs`). Never rejects.
 */
function post(
  target: URL,
  agent: http.Agent,
  body: { bytes: Buffer; headers: Record<string, string> },
  timeoutMs: number,
): Promise<number> {
  return new Promise<number>((resolve) => {
    let settled = false
    const done = (status: number) => {
      if (!settled) {
        settled = true
        resolve(status)
      }
    }
    const req = http.request(
      target,
      { method: 'POST', agent, headers: body.headers, timeout: timeoutMs },
      (res) => {
        res.resume()
        res.on('end', () => done(res.statusCode ?? 0))
        res.on('error', () => done(0))
      },
    )
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', () => done(0))
    req.end(body.bytes)
  })
}
