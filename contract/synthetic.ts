/** Deterministic records for tests and benchmarks: single records (makeSpan, …) and a whole fleet (FleetGenerator). */
import { Prng } from '../core/prng.ts'
import { type Alert, cpuDevice, type HwSample, NO_PRESSURE, type Span } from './records.ts'

export function makeSpan(i: number, over: Partial<Span> = {}): Span {
  return {
    timestamp_us: 1_767_225_600_000_000 + i * 1000,
    // two's complement for negative i: ids stay hex of their full width
    trace_id: BigInt.asUintN(128, BigInt(i + 1))
      .toString(16)
      .padStart(32, '0'),
    span_id: BigInt.asUintN(64, BigInt(i + 1))
      .toString(16)
      .padStart(16, '0'),
    request_id: `req-${i}`,
    fleet: 'test',
    host: 'host-a',
    instance: 'engine-0',
    model: 'mlp',
    model_version: '1',
    device: 'cpu',
    batch_id: `b-${Math.floor(i / 4)}`,
    batch_size: 4,
    status: 'ok',
    error_class: null,
    cache_hit: i % 7 === 0,
    request_bytes: 200 + (i % 13),
    response_bytes: 90,
    deserialize_us: 20 + (i % 5),
    preprocess_us: 40 + (i % 11),
    queue_wait_us: 500 + (i % 97),
    compute_us: 900 + (i % 31),
    postprocess_us: 15,
    serialize_us: 12,
    total_us: 1500 + (i % 140),
    input_mean: 0.01 * (i % 50),
    input_std: 1,
    output_mean: 0.25,
    output_confidence: 0.8,
    run_id: null,
    ...over,
  }
}

export function makeHwSample(i: number, over: Partial<HwSample> = {}): HwSample {
  return {
    timestamp_us: 1_767_225_600_000_000 + i * 1_000_000,
    fleet: 'test',
    host: 'host-a',
    instance: 'engine-0',
    interval_ms: 1000,
    process_cpu: 0.8,
    rss_bytes: 300_000_000,
    heap_used_bytes: 50_000_000,
    event_loop_delay_p99_ms: 2,
    gc_ms: 1,
    queue_depth: 2,
    in_flight: 4,
    arrivals: 200,
    completions: 200,
    executor_busy: 0.6,
    devices: [cpuDevice()],
    run_id: null,
    host_cpu: 1.1,
    host_cpus: 2,
    ...NO_PRESSURE,
    psi_cpu_some_avg10: 1.5,
    psi_cpu_some_total_us: 1_000_000 + i * 15_000,
    psi_io_some_avg10: 0.2,
    psi_io_some_total_us: 200_000 + i * 2_000,
    psi_io_full_avg10: 0.1,
    psi_io_full_total_us: 100_000 + i * 1_000,
    cgroup_cpu_limit: null,
    cgroup_nr_throttled: null,
    cgroup_throttled_us: null,
    process_cpu_wait: null,
    ...over,
  }
}

export function makeAlert(over: Partial<Alert> = {}): Alert {
  return {
    id: 'a-1',
    type: 'accelerator_starved',
    severity: 'critical',
    status: 'firing',
    dedup_key: 'accelerator_starved/engine-0/mlp',
    fleet: 'test',
    instance: 'engine-0',
    model: 'mlp',
    stage: 'preprocess',
    starts_at_us: 1_767_225_600_000_000,
    ends_at_us: null,
    updated_at_us: 1_767_225_600_000_000,
    statistic: 'executor_busy',
    observed: 0.1,
    baseline: 0.6,
    threshold: 0.3,
    summary: 'executor idle while requests wait',
    suspected_cause: 'preprocessing cannot keep up',
    suggested_action: 'add preprocessing workers',
    exemplar_request_ids: ['req-1', 'it\'s "quoted"'],
    run_id: null,
    resolve_reason: null,
    related: [],
    ...over,
  }
}

/** A model of the simulated fleet: where its time goes (medians, µs) and what its payloads weigh. */
interface FleetModel {
  name: string
  device: string
  /** median durations per request, µs; compute is per batch and shared by the batch's requests */
  deserialize: number
  preprocess: number
  computePerBatch: number
  computePerRow: number
  postprocess: number
  serialize: number
  maxBatch: number
  requestBytes: number
  responseBytes: number
  inputMean: number
  inputStd: number
}

const FLEET_MODELS: readonly FleetModel[] = [
  {
    name: 'resnet50',
    device: 'gpu0:NVIDIA H100 80GB HBM3',
    deserialize: 180,
    preprocess: 900,
    computePerBatch: 2_400,
    computePerRow: 310,
    postprocess: 40,
    serialize: 25,
    maxBatch: 16,
    requestBytes: 150_000,
    responseBytes: 4_200,
    inputMean: 0.45,
    inputStd: 0.22,
  },
  {
    name: 'bert-base',
    device: 'gpu0:NVIDIA H100 80GB HBM3',
    deserialize: 60,
    preprocess: 350,
    computePerBatch: 1_800,
    computePerRow: 220,
    postprocess: 90,
    serialize: 30,
    maxBatch: 32,
    requestBytes: 2_400,
    responseBytes: 1_100,
    inputMean: 3_100,
    inputStd: 2_300,
  },
  {
    name: 'mlp',
    device: 'cpu',
    deserialize: 25,
    preprocess: 45,
    computePerBatch: 300,
    computePerRow: 40,
    postprocess: 15,
    serialize: 12,
    maxBatch: 8,
    requestBytes: 420,
    responseBytes: 90,
    inputMean: 0,
    inputStd: 1,
  },
]

export interface FleetOptions {
  /** engine instances (default 200, four to a host) */
  instances?: number
  /** requests per second per instance (default 500: 200 × 500 = 100 000 spans/s) */
  rpsPerInstance?: number
  seed?: number
  /** first arrival, µs (default 2026-01-01T00:00:00Z, a whole minute) */
  startUs?: number
  /**
   * request ids as the engine makes them: `sequence` (`<instance>-<n>`, today's engine, the default)
   * or `uuid7` (time-ordered random UUIDs, 74 random bits each)
   */
  requestIds?: 'sequence' | 'uuid7'
}

interface InstanceState {
  name: string
  host: string
  model: FleetModel
  /** per-instance speed: some hosts are slower */
  speed: number
  batchSeq: number
  requestSeq: number
  /** requests left in the open batch, its id, size and compute time */
  batchLeft: number
  batchId: string
  batchSize: number
  batchComputeUs: number
}

/**
 * Spans of a fleet at steady load, in arrival order across the fleet: Poisson arrivals spread over
 * the instances, each instance serving one model (resnet50, bert-base, mlp in turn) in dynamic
 * batches whose requests share the batch's compute time, log-normal stage durations around each
 * model's medians, 0.3 % errors, 3 % cache hits (no batch, no compute), random W3C trace and span
 * ids and the engine's request ids (or UUIDv7s), as the engine and its clients produce them.
 * Deterministic for a seed; about a microsecond of CPU per span.
 */
export class FleetGenerator {
  private readonly rng: Prng
  private readonly instances: InstanceState[]
  private readonly meanGapUs: number
  private readonly uuid7: boolean
  private nowUs: number
  private produced = 0

  constructor(opts: FleetOptions = {}) {
    const count = opts.instances ?? 200
    this.rng = new Prng(opts.seed ?? 1)
    this.meanGapUs = 1e6 / (count * (opts.rpsPerInstance ?? 500))
    this.nowUs = opts.startUs ?? 1_767_225_600_000_000
    this.uuid7 = opts.requestIds === 'uuid7'
    this.instances = Array.from({ length: count }, (_, i) => ({
      name: `engine-${String(i).padStart(3, '0')}`,
      host: `host-${String(Math.floor(i / 4)).padStart(3, '0')}`,
      model: FLEET_MODELS[i % FLEET_MODELS.length]!,
      speed: this.rng.jitter(0.1),
      batchSeq: 0,
      requestSeq: 0,
      batchLeft: 0,
      batchId: '',
      batchSize: 0,
      batchComputeUs: 0,
    }))
  }

  /** the arrival time of the next span, µs */
  get timeUs(): number {
    return this.nowUs
  }

  /** spans generated so far */
  get count(): number {
    return this.produced
  }

  next(): Span {
    const r = this.rng
    this.nowUs += Math.max(1, Math.round(-Math.log(1 - r.next()) * this.meanGapUs))
    const inst = this.instances[Math.floor(r.next() * this.instances.length)]!
    const m = inst.model
    const dur = (median: number, sigma = 0.25) =>
      Math.max(1, Math.round(median * inst.speed * r.jitter(sigma)))
    const cacheHit = r.next() < 0.03
    const roll = r.next()
    const status = roll < 0.002 ? 'client_error' : roll < 0.003 ? 'server_error' : 'ok'
    if (!cacheHit && inst.batchLeft === 0) {
      inst.batchSize = 1 + Math.floor(r.next() * m.maxBatch)
      inst.batchLeft = inst.batchSize
      inst.batchId = `${inst.name}-${m.name}-${++inst.batchSeq}`
      inst.batchComputeUs = dur(m.computePerBatch + m.computePerRow * inst.batchSize, 0.1)
    }
    const ran = !cacheHit && status !== 'client_error'
    if (ran) inst.batchLeft--
    const stages = {
      deserialize_us: dur(m.deserialize),
      preprocess_us: status === 'client_error' ? 0 : dur(m.preprocess),
      queue_wait_us: ran ? dur(400, 0.8) : 0,
      compute_us: ran ? inst.batchComputeUs : 0,
      postprocess_us: ran && status === 'ok' ? dur(m.postprocess) : 0,
      serialize_us: dur(m.serialize),
    }
    let total = 5 + Math.round(r.next() * 40)
    for (const v of Object.values(stages)) total += v
    const ms = Math.floor(this.nowUs / 1000)
    this.produced++
    return {
      timestamp_us: this.nowUs,
      trace_id: r.hex(32),
      span_id: r.hex(16),
      request_id: this.uuid7
        ? // UUIDv7: 48 bits of milliseconds, version 7, 74 random bits
          `${ms
            .toString(16)
            .padStart(12, '0')
            .replace(
              /^(.{8})/,
              '$1-',
            )}-7${r.hex(3)}-${(8 + Math.floor(r.next() * 4)).toString(16)}${r.hex(3)}-${r.hex(12)}`
        : `${inst.name}-${++inst.requestSeq}`,
      fleet: 'prod',
      host: inst.host,
      instance: inst.name,
      model: m.name,
      model_version: '3',
      device: m.device,
      batch_id: ran ? inst.batchId : '',
      batch_size: ran ? inst.batchSize : 0,
      status,
      error_class: status === 'ok' ? null : status === 'client_error' ? 'InvalidInput' : 'OrtError',
      cache_hit: cacheHit,
      request_bytes: Math.round(m.requestBytes * r.jitter(0.15)),
      response_bytes: status === 'ok' ? Math.round(m.responseBytes * r.jitter(0.05)) : 120,
      ...stages,
      total_us: total,
      input_mean: m.inputMean + m.inputStd * 0.1 * r.normal(),
      input_std: m.inputStd * r.jitter(0.05),
      output_mean: 0.5 + 0.05 * r.normal(),
      output_confidence: Math.min(1, 0.85 + 0.08 * r.normal()),
      run_id: null,
    }
  }
}
