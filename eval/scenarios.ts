/**
 * Synthetic, deterministic telemetry with ground truth for the evaluation harness: a simulator of
 * engine instances over event time, and the scenario suite that `breakid eval` scores.
 *
 * The simulator mirrors the engine's pipeline (engine/engine.ts) one second at a time as a fluid
 * queueing model, so every fault moves the same fields the real engine's fault moves:
 *
 *   arrivals ─▶ preprocessing pool (W workers, like engine/preprocess.ts; waiting for a slot counts
 *   as preprocess time) ─▶ dynamic batcher (rows queue, one batch runs at a time, batch cost
 *   c(rows) = fixed + per-row, like engine/batcher.ts) ─▶ postprocess ─▶ serialize
 *
 * - data_starvation: each preprocess item takes `delayMs` longer; once the pool's capacity W/delay
 *   falls below the arrival rate, requests pile up in front of it: preprocess_us and in_flight climb,
 *   the executor runs dry (executor_busy down, queue_depth ≈ 0, smaller batches).
 * - stage_stall: one stage (postprocess by default, or compute / deserialize) takes `ms` longer; a
 *   compute stall also cuts the executor's capacity (busy up, queue grows when it saturates).
 * - input_drift / output_drift: the per-request input_mean shifts / output_confidence drops.
 * - memory_leak: rss and heap grow steadily on top of the GC sawtooth.
 * - batch_size_misconfig: the batcher's max batch becomes 1 (or 2): batch_size 1, executor busy up,
 *   queue wait up and, where the load exceeds single-row capacity, the queue grows.
 * - error_burst: a fraction of requests fail at the executor (status server_error, later stages 0,
 *   as handleInfer leaves them).
 * - slow_serialization: serialize_us grows by `ms`; serialization is synchronous on the event loop,
 *   so event-loop delay grows with it.
 *
 * - a noisy neighbour (`host.neighbour`, not an engine fault): other processes take `cpus` CPUs of
 *   the 2-CPU host; once the engine's demand and theirs pass ~1.5 CPUs every CPU-bound stage
 *   (deserialize, preprocess, compute, postprocess, serialize) and the event loop slow in proportion,
 *   and the host's CPU use and pressure-stall share (PSI cpu some) rise — the engine is fine.
 *   `host.baseCpus` is a neighbour that was there all along (a busy host).
 *
 * Spans are sampled (`spanSampleRate`, default 0.25: ~30 spans/s at 120 req/s) to keep the suite
 * fast; hardware samples (one per second per instance, at the end of the interval) carry the full
 * arrival and completion counts. A span is emitted when its request completes, as the engine emits
 * it, with `timestamp_us` = arrival — so during a backlog, slow spans arrive late, as they do live.
 */
import { blankSpan, cpuDevice, type HwSample, NO_PRESSURE, type Span, stagesUs } from '../contract/records.ts'
import { FAULT_TYPES, type FaultType } from '../contract/faults.ts'
import { Prng } from './prng.ts'

export const SEVERITIES = ['low', 'medium', 'high'] as const
export type FaultSeverity = (typeof SEVERITIES)[number]

/** Magnitude of each fault at each severity, in the unit its name says. */
export const FAULT_MAGNITUDE: Record<FaultType, Record<FaultSeverity, number>> = {
  /** extra preprocessing ms per request (pool capacity 4 workers / delay vs ~120 req/s) */
  data_starvation: { low: 45, medium: 60, high: 120 },
  /** extra ms in the stalled stage */
  stage_stall: { low: 8, medium: 20, high: 100 },
  /** shift of the per-request input mean, in units of its own standard deviation */
  input_drift: { low: 1.5, medium: 3, high: 6 },
  /** drop of the mean output confidence (absolute, base 0.85) */
  output_drift: { low: 0.06, medium: 0.1, high: 0.2 },
  /** rss/heap growth, MB per second */
  memory_leak: { low: 1, medium: 3, high: 8 },
  /**
   * the batcher's max batch size while the fault lasts (configured: 8). These scenarios run at
   * BATCH_SCENARIO_RPS, where batches of ~4.6 keep the executor ~85 % busy: a cap of 3, 2 or 1
   * leaves it short of capacity by 15 %, 40 % or 70 %. (At the suite's 120 req/s batches are ~2 and a
   * cap of 2 would change nothing anyone could notice — no break to find.)
   */
  batch_size_misconfig: { low: 3, medium: 2, high: 1 },
  /** fraction of requests failing */
  error_burst: { low: 0.05, medium: 0.2, high: 0.5 },
  /** extra serialize ms per request */
  slow_serialization: { low: 5, medium: 10, high: 30 },
}

export type StallStage = 'deserialize' | 'postprocess' | 'compute'

/** What a scenario's ground truth can hold: an engine fault, or a noisy neighbour on the host. */
export type Condition = FaultType | 'noisy_neighbour'

export interface ScenarioFault {
  type: FaultType
  /** instance index within the scenario */
  instance: number
  /** seconds from the scenario's start */
  startS: number
  endS: number
  severity: FaultSeverity
  /** stage_stall only; default postprocess */
  stage?: StallStage
  /** the fault's magnitude instead of its severity's (held-out scenarios sample it) */
  magnitude?: number
}

/** The host around the engine (2 CPUs). */
export interface HostLoad {
  /** CPUs other processes use all along (a busy host). Default 0.1 */
  baseCpus?: number
  /** other processes that start and stop: CPUs on top of the base */
  neighbour?: { startS: number; endS: number; cpus: number }
}

export type LoadShape =
  | { kind: 'steady' }
  /** linear from 1× to `toFactor`× the base rate between `fromS` and `toS`, held after */
  | { kind: 'ramp'; fromS: number; toS: number; toFactor: number }
  /** `factor`× the base rate for `lengthS` every `everyS` seconds (first at `everyS`) */
  | { kind: 'bursts'; everyS: number; lengthS: number; factor: number }
  /** 1 + amplitude·sin(2πt/period), starting at the trough */
  | { kind: 'diurnal'; periodS: number; amplitude: number }

export interface Scenario {
  name: string
  seed: number
  durationS: number
  /** instances of the simulated fleet */
  instances: number
  /** true arrival rate per instance, req/s */
  baseRps: number
  /** relative jitter of durations and gauges (0.05 calm, 0.2 noisy) */
  noise: number
  load: LoadShape
  faults: ScenarioFault[]
  /** fraction of requests that emit a span; default 0.25 */
  spanSampleRate?: number
  /** no engine fault: a clean scenario pages at most for a noisy neighbour it has */
  clean: boolean
  host?: HostLoad
  /** tuned on (in-sample, default) or held out: scored, never tuned on */
  heldOut?: boolean
}

/** The event time every scenario starts at (2026-01-01T00:00:00Z), in µs. */
export const SCENARIO_EPOCH_US = 1_767_225_600_000_000

export interface GroundTruthFault {
  scenario: string
  type: Condition
  severity: FaultSeverity
  instance: string
  startUs: number
  endUs: number
}

export function instanceName(scenario: Scenario, i: number): string {
  return `${scenario.name}/i${i}`
}

/** CPUs a neighbour must take (with the engine's ~0.6) before the engine slows by a tenth or more */
export const NEIGHBOUR_SLOWS_ABOVE_CPUS = 1.05

export function groundTruth(s: Scenario): GroundTruthFault[] {
  const faults: GroundTruthFault[] = s.faults.map((f) => ({
    scenario: s.name,
    type: f.type,
    severity: f.severity,
    instance: instanceName(s, f.instance),
    startUs: SCENARIO_EPOCH_US + f.startS * 1e6,
    endUs: SCENARIO_EPOCH_US + f.endS * 1e6,
  }))
  // a neighbour that slows the engine is a break of the host, on every instance of it
  const n = s.host?.neighbour
  if (n && n.cpus + (s.host?.baseCpus ?? BASE_FOREIGN_CPUS) >= NEIGHBOUR_SLOWS_ABOVE_CPUS) {
    for (let i = 0; i < s.instances; i++) {
      faults.push({
        scenario: s.name,
        type: 'noisy_neighbour',
        severity: n.cpus >= 1.6 ? 'high' : n.cpus >= 1.3 ? 'medium' : 'low',
        instance: instanceName(s, i),
        startUs: SCENARIO_EPOCH_US + n.startS * 1e6,
        endUs: SCENARIO_EPOCH_US + n.endS * 1e6,
      })
    }
  }
  return faults
}

/** One second of a scenario: the spans completed in it (completion order), then each instance's sample. */
export interface SimStep {
  /** end of the second, µs */
  atUs: number
  spans: Span[]
  hw: HwSample[]
}

// Engine constants, chosen to match what `breakid up` measures on its demo model (executor busy
// ≈ 0.5 at 120 req/s, queue wait ≈ a few ms, total ≈ 15–20 ms).
const WORKERS = 4
const PREPROCESS_MS = 0.5
const DESERIALIZE_MS = 1
const POSTPROCESS_MS = 0.1
const SERIALIZE_MS = 0.3
const BATCH_FIXED_MS = 8
const BATCH_ROW_MS = 0.6
const MAX_BATCH = 8
const QUEUE_DELAY_MS = 10
const PREPROCESS_MAX_WAITING = 10_000
const BASE_RSS = 600e6
const BASE_HEAP = 120e6
const INPUT_MEAN = 0.45
const INPUT_MEAN_SD = 0.02
const CONFIDENCE = 0.85
const CONFIDENCE_SD = 0.04
/** the simulated host: 2 CPUs; other processes use this much when nothing else is said */
const HOST_CPUS = 2
const BASE_FOREIGN_CPUS = 0.1
/** above this much demand (engine + others, CPUs) the engine's CPU-bound work slows */
const CONTENDED_ABOVE_CPUS = 1.5

interface PendingSpan {
  doneUs: number
  span: Span
}

interface QueuedRequest {
  /** position in the instance's arrival order (fluid count) */
  index: number
  arrivalUs: number
  /** when it left preprocessing */
  leftUs: number
  failed: boolean
  span: Span
}

interface InstanceSim {
  name: string
  cumArrived: number
  cumPreprocessed: number
  cumExecuted: number
  preprocessQueue: QueuedRequest[]
  executorQueue: QueuedRequest[]
  prng: Prng
  preprocessBacklog: number
  queueRows: number
  leakedBytes: number
  heapSaw: number
  pending: PendingSpan[]
  seq: number
  batchSeq: number
  /** host readings: their own PRNG, so scenarios without a neighbour keep their telemetry */
  hostPrng: Prng
  psiTotalUs: number
  psiAvg10: number
  /** the engine's CPU demand last second (process_cpu before jitter) */
  engineCpu: number
}

function loadFactor(load: LoadShape, t: number): number {
  switch (load.kind) {
    case 'steady':
      return 1
    case 'ramp': {
      if (t <= load.fromS) return 1
      if (t >= load.toS) return load.toFactor
      return 1 + ((t - load.fromS) / (load.toS - load.fromS)) * (load.toFactor - 1)
    }
    case 'bursts': {
      const phase = t % load.everyS
      return t >= load.everyS && phase < load.lengthS ? load.factor : 1
    }
    case 'diurnal':
      return 1 - load.amplitude * Math.cos((2 * Math.PI * t) / load.periodS)
  }
}

const batchMs = (rows: number) => BATCH_FIXED_MS + BATCH_ROW_MS * rows

/**
 * Runs a scenario second by second. Deterministic: the same scenario gives the same records.
 */
export function* simulate(s: Scenario): Generator<SimStep> {
  const sampleRate = s.spanSampleRate ?? 0.25
  const sims: InstanceSim[] = Array.from({ length: s.instances }, (_, i) => ({
    name: instanceName(s, i),
    prng: new Prng(s.seed * 1009 + i * 7919 + 1),
    cumArrived: 0,
    cumPreprocessed: 0,
    cumExecuted: 0,
    preprocessQueue: [],
    executorQueue: [],
    preprocessBacklog: 0,
    queueRows: 0,
    leakedBytes: 0,
    heapSaw: 0,
    pending: [],
    seq: 0,
    batchSeq: 0,
    hostPrng: new Prng(s.seed * 7907 + i * 104_729 + 3),
    psiTotalUs: 0,
    psiAvg10: 0,
    engineCpu: 0.6,
  }))
  for (let t = 0; t < s.durationS; t++) {
    const stepStartUs = SCENARIO_EPOCH_US + t * 1e6
    const atUs = stepStartUs + 1e6
    const spans: Span[] = []
    const hw: HwSample[] = []
    sims.forEach((sim, i) => {
      const active = (type: FaultType) =>
        s.faults.find((f) => f.type === type && f.instance === i && t >= f.startS && t < f.endS)
      const mag = (type: FaultType) => {
        const f = active(type)
        return f ? (f.magnitude ?? FAULT_MAGNITUDE[type][f.severity]) : undefined
      }
      // the host: what the others use, and how much the engine's CPU-bound work slows for it
      const nb = s.host?.neighbour
      const foreignCpu =
        (s.host?.baseCpus ?? BASE_FOREIGN_CPUS) + (nb && t >= nb.startS && t < nb.endS ? nb.cpus : 0)
      const demand = sim.engineCpu + foreignCpu
      const slow = 1 + Math.max(0, demand - CONTENDED_ABOVE_CPUS) * 0.8
      const { prng } = sim
      const noise = s.noise
      const rate = s.baseRps * loadFactor(s.load, t)
      const arrivals = prng.poisson(rate)

      // preprocessing pool
      const starveMs = mag('data_starvation') ?? 0
      const itemMs = PREPROCESS_MS * slow + starveMs
      const poolCapacity = (WORKERS * 1000) / itemMs
      const backlogBefore = sim.preprocessBacklog
      const offered = backlogBefore + arrivals
      const preprocessed = Math.min(offered, poolCapacity)
      let backlog = offered - preprocessed
      let rejected = 0
      if (backlog > PREPROCESS_MAX_WAITING) {
        rejected = Math.round(backlog - PREPROCESS_MAX_WAITING) // answered 429, a server_error span
        backlog = PREPROCESS_MAX_WAITING
      }
      sim.preprocessBacklog = backlog

      // dynamic batcher + executor
      const stall = active('stage_stall')
      const stallStage: StallStage = stall?.stage ?? 'postprocess'
      const stallMs = stall ? (stall.magnitude ?? FAULT_MAGNITUDE.stage_stall[stall.severity]) : 0
      const computeExtraMs = stallStage === 'compute' ? stallMs : 0
      const maxBatch = mag('batch_size_misconfig') ?? MAX_BATCH
      const cost = (rows: number) => batchMs(rows) * slow + computeExtraMs
      const capacity = (maxBatch * 1000) / cost(maxBatch)
      const toExecutor = preprocessed + sim.queueRows
      const executed = Math.min(toExecutor, capacity)
      sim.queueRows = toExecutor - executed
      const saturated = sim.queueRows > 0.5 || preprocessed >= capacity * 0.98
      // Batch size: the rows collected during the queue delay, or during the previous batch when
      // batches run back to back; never more than the max batch.
      let rows = Math.min(maxBatch, 1 + (preprocessed * QUEUE_DELAY_MS) / 1000)
      const backToBack = (preprocessed * cost(rows)) / 1000
      if (backToBack > rows) rows = Math.min(maxBatch, backToBack)
      if (saturated) rows = maxBatch
      const batches = executed / Math.max(rows, 1)
      const busy = Math.min(1, (batches * cost(rows)) / 1000)

      const errorFraction = mag('error_burst') ?? 0
      const serializeExtraMs = mag('slow_serialization') ?? 0
      const drift = mag('input_drift') ?? 0
      const confidenceDrop = mag('output_drift') ?? 0
      const jit = () => prng.jitter(noise)

      // sampled requests: they arrive now, then move through the two queues in FIFO order, each
      // leaving a queue when the cumulative count served by that stage passes its arrival index
      const cumArrived0 = sim.cumArrived
      const cumPre0 = sim.cumPreprocessed
      const cumExec0 = sim.cumExecuted
      sim.cumArrived += arrivals
      // requests refused at the full backlog pass both stages at once, keeping the indices aligned
      sim.cumPreprocessed += preprocessed + rejected
      sim.cumExecuted += executed + rejected
      const sampled = prng.poisson(arrivals * sampleRate)
      const offsets = Array.from({ length: sampled }, () => prng.next()).sort((a, b) => a - b)
      for (const u of offsets) {
        const arrivalUs = stepStartUs + Math.floor(u * 1e6)
        const seq = ++sim.seq
        const failed = prng.next() < errorFraction
        const overloaded = rejected > 0 && prng.next() < rejected / Math.max(arrivals, 1)
        const deser = DESERIALIZE_MS * slow * jit() + (stallStage === 'deserialize' ? stallMs : 0)
        const span = blankSpan({
          timestamp_us: arrivalUs,
          trace_id: prng.hex(32),
          span_id: prng.hex(16),
          request_id: `${sim.name}-${seq}`,
          fleet: 'eval',
          host: `host-${i}`,
          instance: sim.name,
          model: 'resnet50',
          model_version: '1',
          status: failed || overloaded ? 'server_error' : 'ok',
          request_bytes: 12_400 + Math.floor(prng.next() * 200),
          deserialize_us: Math.round(deser * 1000),
        })
        if (overloaded) {
          span.error_class = 'BREAKID_PREPROCESS_BACKLOG'
          span.response_bytes = 60
          span.total_us = span.deserialize_us + Math.round(50 * jit())
          sim.pending.push({ doneUs: arrivalUs + span.total_us, span })
          continue
        }
        span.input_mean = INPUT_MEAN + INPUT_MEAN_SD * (prng.normal() + drift)
        span.input_std = 0.29 * prng.jitter(0.02)
        sim.preprocessQueue.push({ index: cumArrived0 + u * arrivals, arrivalUs, leftUs: 0, failed, span })
      }
      const leaveAt = (index: number, cum0: number, served: number) =>
        stepStartUs + Math.min(1, Math.max(0, (index - cum0) / Math.max(served, 1e-9))) * 1e6
      while (sim.preprocessQueue.length > 0 && sim.preprocessQueue[0]!.index <= sim.cumPreprocessed) {
        const r = sim.preprocessQueue.shift()!
        r.leftUs = Math.max(r.arrivalUs, leaveAt(r.index, cumPre0, preprocessed))
        r.span.preprocess_us = Math.round(r.leftUs - r.arrivalUs + itemMs * jit() * 1000)
        sim.executorQueue.push(r)
      }
      const baseQueueWaitMs =
        Math.min(QUEUE_DELAY_MS, 1000 / Math.max(preprocessed, 1)) / 2 + (busy * cost(rows)) / 2
      while (sim.executorQueue.length > 0 && sim.executorQueue[0]!.index <= sim.cumExecuted) {
        const r = sim.executorQueue.shift()!
        const span = r.span
        const executedUs = Math.max(r.leftUs, leaveAt(r.index, cumExec0, executed))
        const waitedUs = Math.round(executedUs - r.leftUs + baseQueueWaitMs * jit() * 1000)
        if (r.failed) {
          // the executor run failed: handleInfer leaves the later stages at 0, the total still counts
          span.error_class = 'Error'
          span.response_bytes = 48
          span.total_us = span.deserialize_us + span.preprocess_us + waitedUs + Math.round(cost(rows) * 1000)
        } else {
          // the executor ran `batches` batches of ~`rows` rows this second, in arrival order
          const batchIndex = Math.max(0, Math.floor((r.index - cumExec0) / Math.max(rows, 1)))
          span.batch_id = `${sim.name}-resnet50-${sim.batchSeq + 1 + batchIndex}`
          span.batch_size = Math.min(maxBatch, Math.max(1, Math.round(rows * prng.jitter(noise / 2))))
          span.queue_wait_us = waitedUs
          span.compute_us = Math.round(cost(span.batch_size) * jit() * 1000)
          span.postprocess_us = Math.round(
            (POSTPROCESS_MS * slow * jit() + (stallStage === 'postprocess' ? stallMs : 0)) * 1000,
          )
          span.serialize_us = Math.round((SERIALIZE_MS * slow * jit() + serializeExtraMs) * 1000)
          span.output_mean = 0.001 * prng.jitter(0.05)
          span.output_confidence = Math.min(
            1,
            Math.max(0, CONFIDENCE - confidenceDrop + CONFIDENCE_SD * prng.normal()),
          )
          span.response_bytes = 8_200
          span.total_us = stagesUs(span) + Math.round(50 * jit())
        }
        sim.pending.push({ doneUs: r.arrivalUs + span.total_us, span })
      }
      sim.batchSeq += Math.ceil(batches)

      // spans whose request completed by the end of this second, in completion order
      sim.pending.sort((a, b) => a.doneUs - b.doneUs)
      let n = 0
      while (n < sim.pending.length && sim.pending[n]!.doneUs <= atUs) n++
      for (const p of sim.pending.splice(0, n)) spans.push(p.span)

      // memory: GC sawtooth on the heap, a slow rss wobble, plus the leak
      sim.leakedBytes += (mag('memory_leak') ?? 0) * 1e6
      sim.heapSaw += rate * 2_000 * jit()
      let gcMs = 0.5 * jit()
      if (sim.heapSaw > 40e6) {
        sim.heapSaw = 0
        gcMs += 15 * jit()
      }
      const loopDelayMs =
        (2 + busy * 2) * slow * jit() + (serializeExtraMs > 0 ? serializeExtraMs * 1.5 * jit() : 0)
      const inPipelineMs =
        DESERIALIZE_MS + itemMs + baseQueueWaitMs + cost(rows) + POSTPROCESS_MS + SERIALIZE_MS
      // waiting in either queue, plus those inside a stage right now (Little's law)
      const inFlight = Math.max(
        0,
        Math.round(
          sim.cumArrived - sim.cumExecuted + (executed * inPipelineMs) / 1000 + prng.normal() * noise,
        ),
      )
      const processCpu = Math.min(16, (0.1 + busy * 0.9 + rate / 2000) * jit())
      sim.engineCpu = 0.1 + busy * 0.9 + rate / 2000
      // pressure stall: the share of the second some task waited for a CPU grows with the demand
      // beyond ~1.2 CPUs of the 2 (measured shape on the 2-core dev host: ~5 % idle-ish, 70–95 % saturated)
      const hp = sim.hostPrng
      const psiShare = Math.min(
        0.98,
        Math.max(0, 0.02 + Math.max(0, demand - 1.2) * 0.6 + 0.02 * hp.normal()),
      )
      sim.psiTotalUs += Math.round(psiShare * 1e6)
      sim.psiAvg10 += (psiShare * 100 - sim.psiAvg10) * (1 - Math.exp(-1 / 10))
      const hostCpu = Math.min(HOST_CPUS, processCpu + foreignCpu * (1 + 0.05 * hp.normal()))
      hw.push({
        timestamp_us: atUs,
        fleet: 'eval',
        host: `host-${i}`,
        instance: sim.name,
        interval_ms: 1000,
        process_cpu: processCpu,
        rss_bytes: Math.round(BASE_RSS + sim.leakedBytes + sim.heapSaw * 0.5 + 3e6 * prng.normal()),
        heap_used_bytes: Math.round(BASE_HEAP + sim.leakedBytes + sim.heapSaw),
        event_loop_delay_p99_ms: loopDelayMs,
        gc_ms: gcMs,
        queue_depth: Math.max(0, Math.round(sim.queueRows + (busy > 0.9 ? rows : 0))),
        in_flight: inFlight,
        arrivals,
        completions: Math.round(executed) + rejected,
        executor_busy: Math.min(1, Math.max(0, busy * prng.jitter(noise / 2))),
        devices: [cpuDevice()],
        run_id: null,
        host_cpu: Math.max(0, hostCpu),
        host_cpus: HOST_CPUS,
        ...NO_PRESSURE,
        psi_cpu_some_avg10: Math.round(sim.psiAvg10 * 100) / 100,
        psi_cpu_some_total_us: sim.psiTotalUs,
        cgroup_cpu_limit: null,
        cgroup_nr_throttled: null,
        cgroup_throttled_us: null,
      })
    })
    yield { atUs, spans, hw }
  }
}

/** Total instance-seconds of a scenario. */
export function instanceSeconds(s: Scenario): number {
  return s.durationS * s.instances
}

export interface SuiteOptions {
  /** instance-hours of clean traffic in total (spread over the clean scenarios). Default 4. */
  cleanInstanceHours?: number
  /** only scenarios whose name contains this */
  filter?: string
}

const WARMUP_S = 180
/** the arrival rate of the batch_size_misconfig scenarios: a busy instance, where batching matters */
const BATCH_SCENARIO_RPS = 360
const FAULT_S = 90
const TAIL_S = 60

/**
 * The suite: every fault type at every severity and two noise levels, on steady and on changing
 * load; overlapping faults; and clean runs with ramps, bursts and a (compressed) diurnal cycle.
 */
export function buildSuite(opts: SuiteOptions = {}): Scenario[] {
  const out: Scenario[] = []
  let seed = 1
  const noises = [
    { label: 'calm', noise: 0.05 },
    { label: 'noisy', noise: 0.2 },
  ]
  for (const type of FAULT_TYPES) {
    for (const severity of SEVERITIES) {
      for (const { label, noise } of noises) {
        const stage: StallStage | undefined =
          type === 'stage_stall' ? (['postprocess', 'compute', 'deserialize'] as const)[seed % 3] : undefined
        out.push({
          name: `${type}-${severity}-${label}`,
          seed: seed++,
          durationS: WARMUP_S + FAULT_S + TAIL_S,
          instances: 1,
          baseRps: type === 'batch_size_misconfig' ? BATCH_SCENARIO_RPS : 120,
          noise,
          // the noisy half also has a load ramp under the fault, so a detector must tell them apart
          load: label === 'noisy' ? { kind: 'ramp', fromS: 60, toS: 300, toFactor: 1.3 } : { kind: 'steady' },
          faults: [
            {
              type,
              instance: 0,
              startS: WARMUP_S,
              endS: WARMUP_S + FAULT_S,
              severity,
              ...(stage ? { stage } : {}),
            },
          ],
          clean: false,
        })
      }
    }
  }
  // overlapping faults, on two instances of one fleet
  const overlaps: [FaultType, FaultType][] = [
    ['input_drift', 'memory_leak'],
    ['error_burst', 'slow_serialization'],
    ['data_starvation', 'output_drift'],
  ]
  for (const [a, b] of overlaps) {
    out.push({
      name: `overlap-${a}+${b}`,
      seed: seed++,
      durationS: WARMUP_S + FAULT_S + 45 + TAIL_S,
      instances: 2,
      baseRps: 120,
      noise: 0.1,
      load: { kind: 'steady' },
      faults: [
        { type: a, instance: 0, startS: WARMUP_S, endS: WARMUP_S + FAULT_S, severity: 'medium' },
        { type: b, instance: 0, startS: WARMUP_S + 45, endS: WARMUP_S + FAULT_S + 45, severity: 'medium' },
        { type: a, instance: 1, startS: WARMUP_S + 20, endS: WARMUP_S + FAULT_S, severity: 'high' },
      ],
      clean: false,
    })
  }
  // clean traffic with realistic load changes; ~equal instance-hours each
  const cleanLoads: { label: string; load: LoadShape; noise: number }[] = [
    { label: 'steady', load: { kind: 'steady' }, noise: 0.2 },
    { label: 'ramp', load: { kind: 'ramp', fromS: 300, toS: 1500, toFactor: 1.6 }, noise: 0.1 },
    { label: 'bursts', load: { kind: 'bursts', everyS: 240, lengthS: 20, factor: 1.8 }, noise: 0.1 },
    { label: 'diurnal', load: { kind: 'diurnal', periodS: 1800, amplitude: 0.45 }, noise: 0.1 },
  ]
  const totalS = (opts.cleanInstanceHours ?? 4) * 3600
  const instances = 2
  const durationS = Math.max(600, Math.round(totalS / cleanLoads.length / instances))
  for (const c of cleanLoads) {
    out.push({
      name: `clean-${c.label}`,
      seed: seed++,
      durationS,
      instances,
      baseRps: 120,
      noise: c.noise,
      load: c.load,
      faults: [],
      clean: true,
    })
  }
  return opts.filter ? out.filter((s) => s.name.includes(opts.filter!)) : out
}

/**
 * The host scenarios: the engine is fine, the host is not. A neighbour that comes and takes 1.2–2
 * CPUs of the 2 (the right page: `host_contention`), a small one that slows nothing (no page), a host
 * busy all along with clean traffic (no page), and engine faults on a host busy all along (the fault's
 * own page, not `host_contention`: a neighbour that did not change explains nothing). In-sample:
 * host_contention's thresholds were set with these in view.
 */
export function buildHostSuite(opts: { filter?: string } = {}): Scenario[] {
  const out: Scenario[] = []
  let seed = 500
  const base = { durationS: WARMUP_S + FAULT_S + TAIL_S, instances: 1, baseRps: 120, faults: [] }
  for (const cpus of [1.2, 1.6, 2.0]) {
    for (const { label, noise, load } of [
      { label: 'calm', noise: 0.05, load: { kind: 'steady' } as LoadShape },
      { label: 'noisy', noise: 0.2, load: { kind: 'ramp', fromS: 60, toS: 300, toFactor: 1.3 } as LoadShape },
    ]) {
      out.push({
        ...base,
        name: `neighbour-${cpus}cpu-${label}`,
        seed: seed++,
        noise,
        load,
        clean: true,
        host: { neighbour: { startS: WARMUP_S, endS: WARMUP_S + FAULT_S, cpus } },
      })
    }
  }
  out.push({
    ...base,
    name: 'neighbour-small-0.5cpu',
    seed: seed++,
    noise: 0.1,
    load: { kind: 'steady' },
    clean: true,
    host: { neighbour: { startS: WARMUP_S, endS: WARMUP_S + FAULT_S, cpus: 0.5 } },
  })
  out.push({
    ...base,
    name: 'busy-host-clean-bursts',
    seed: seed++,
    durationS: 1800,
    noise: 0.1,
    load: { kind: 'bursts', everyS: 240, lengthS: 20, factor: 1.5 },
    clean: true,
    host: { baseCpus: 1.3 },
  })
  for (const type of ['data_starvation', 'stage_stall', 'slow_serialization'] as const) {
    out.push({
      ...base,
      name: `busy-host-${type}`,
      seed: seed++,
      noise: 0.1,
      load: { kind: 'steady' },
      faults: [{ type, instance: 0, startS: WARMUP_S, endS: WARMUP_S + FAULT_S, severity: 'medium' }],
      clean: false,
      host: { baseCpus: 1.3 },
    })
  }
  return opts.filter ? out.filter((s) => s.name.includes(opts.filter!)) : out
}

/**
 * The held-out scenarios: drawn from a seed range and parameter ranges the tuned suite does not use
 * (fault magnitudes between and beyond its severities, other request rates, noise levels, load
 * shapes, onsets and lengths, neighbours of other sizes), generated once and scored by every
 * `breakid eval`, never tuned on. A drop here that the tuned suite does not show is overfitting.
 */
export function buildHeldOut(opts: { filter?: string } = {}): Scenario[] {
  const rand = new Prng(90_001)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand.next() * xs.length)]!
  const between = (lo: number, hi: number) => lo + (hi - lo) * rand.next()
  const loads = (): LoadShape =>
    pick([
      { kind: 'steady' },
      {
        kind: 'ramp',
        fromS: Math.round(between(30, 120)),
        toS: Math.round(between(200, 400)),
        toFactor: between(0.7, 1.5),
      },
      {
        kind: 'bursts',
        everyS: Math.round(between(90, 300)),
        lengthS: Math.round(between(5, 30)),
        factor: between(1.2, 2),
      },
      { kind: 'diurnal', periodS: Math.round(between(600, 2400)), amplitude: between(0.1, 0.4) },
    ] as LoadShape[])
  const out: Scenario[] = []
  let seed = 70_000
  for (let k = 0; k < 2; k++) {
    for (const type of FAULT_TYPES) {
      const lo = Math.min(FAULT_MAGNITUDE[type].low, FAULT_MAGNITUDE[type].high)
      const hi = Math.max(FAULT_MAGNITUDE[type].low, FAULT_MAGNITUDE[type].high)
      // batch caps are whole rows; the others anywhere from 0.8 × the mildest to 1.2 × the strongest
      const magnitude =
        type === 'batch_size_misconfig' ? Math.round(between(1, 3.49)) : between(0.8 * lo, 1.2 * hi)
      const startS = Math.round(between(150, 260))
      const lengthS = Math.round(between(45, 150))
      const stage: StallStage | undefined =
        type === 'stage_stall' ? pick(['postprocess', 'compute', 'deserialize'] as const) : undefined
      out.push({
        name: `heldout-${type}-${k}`,
        seed: seed++,
        durationS: startS + lengthS + 60,
        instances: 1,
        baseRps:
          type === 'batch_size_misconfig' ? Math.round(between(300, 420)) : Math.round(between(70, 200)),
        noise: between(0.05, 0.25),
        load: loads(),
        faults: [
          {
            type,
            instance: 0,
            startS,
            endS: startS + lengthS,
            // the label only groups the report: stronger than medium is high (a smaller cap is stronger)
            severity: (
              type === 'batch_size_misconfig'
                ? magnitude <= FAULT_MAGNITUDE[type].medium
                : magnitude >= FAULT_MAGNITUDE[type].medium
            )
              ? 'high'
              : 'low',
            magnitude,
            ...(stage ? { stage } : {}),
          },
        ],
        clean: false,
        heldOut: true,
      })
    }
  }
  for (let k = 0; k < 4; k++) {
    const startS = Math.round(between(150, 260))
    const cpus = between(1.1, 2.2)
    out.push({
      name: `heldout-neighbour-${k}`,
      seed: seed++,
      durationS: startS + 120 + 60,
      instances: 1,
      baseRps: Math.round(between(70, 200)),
      noise: between(0.05, 0.25),
      load: loads(),
      faults: [],
      clean: true,
      host: { baseCpus: between(0, 0.4), neighbour: { startS, endS: startS + 120, cpus } },
      heldOut: true,
    })
  }
  for (let k = 0; k < 3; k++) {
    out.push({
      name: `heldout-clean-${k}`,
      seed: seed++,
      durationS: 1800,
      instances: 1,
      baseRps: Math.round(between(50, 250)),
      noise: between(0.05, 0.25),
      load: loads(),
      faults: [],
      clean: true,
      host: k === 2 ? { baseCpus: between(1.1, 1.4) } : undefined,
      heldOut: true,
    })
  }
  return opts.filter ? out.filter((s) => s.name.includes(opts.filter!)) : out
}
