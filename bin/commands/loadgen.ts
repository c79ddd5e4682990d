/** `breakid loadgen`: open-loop load against an Open Inference Protocol endpoint. */
import {
  ARRIVAL_PATTERNS,
  type ArrivalPattern,
  formatProgress,
  inferBody,
  isLoopback,
  parseLevels,
  runClosedLoop,
  runLoad,
  runSweep,
} from '../../engine/loadgen.ts'
import { getModel, isModelName, MODEL_NAMES } from '../../engine/models/zoo.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { parseDurationMs, parsePositive } from '../../app/flags.ts'
import type { Command } from '../command.ts'
import { parseModelFlag, parseRunIdFlag } from '../../app/flags.ts'

export const loadgen: Command = {
  summary:
    'send open- or closed-loop load (or a sweep of levels) to a KServe v2 endpoint; latency percentiles',
  usage:
    'breakid loadgen --url http://127.0.0.1:8000 --model mlp [--rate 100 | --concurrency 8 | --sweep-rates 50:200:50 | --sweep-concurrency 1:16:3] [--duration 30s] [--arrival constant|poisson|bursty|diurnal] [--binary]',
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:8000' },
    model: { type: 'string', default: 'mlp' },
    rate: { type: 'string', default: '100' },
    duration: { type: 'string', default: '30s' },
    arrival: { type: 'string', default: 'constant' },
    'burst-factor': { type: 'string', default: '4' },
    'burst-period': { type: 'string', default: '10s' },
    'min-rate': { type: 'string' },
    period: { type: 'string', default: '60s' },
    'max-outstanding': { type: 'string', default: '512' },
    timeout: { type: 'string', default: '30s' },
    seed: { type: 'string', default: '42' },
    binary: { type: 'boolean', default: false },
    progress: { type: 'boolean', default: false },
    'allow-remote': { type: 'boolean', default: false },
    'run-id': { type: 'string' },
    concurrency: { type: 'string' },
    'sweep-rates': { type: 'string' },
    'sweep-concurrency': { type: 'string' },
    warmup: { type: 'string' },
    'latency-threshold-ms': { type: 'string' },
    'expected-interval-ms': { type: 'string' },
  },
  help: {
    url: 'engine base URL (default http://127.0.0.1:8000)',
    model: `model to load: ${MODEL_NAMES.join(', ')} (with :w=…,r=… as served)`,
    rate: 'requests per second; bursty: the mean, diurnal: the peak (default 100)',
    duration: 'how long to send, then stop (default 30s)',
    arrival: `${ARRIVAL_PATTERNS.join(' | ')} (default constant)`,
    'burst-factor':
      'bursty: rate multiplier inside a burst; a burst lasts 1/factor of each period (default 4)',
    'burst-period': 'bursty: length of one burst + silence cycle (default 10s)',
    'min-rate': 'diurnal: the trough rate, requests per second (default rate/10)',
    period: 'diurnal: length of one trough → peak → trough cycle (default 60s)',
    'max-outstanding':
      'requests in flight at once; a request due beyond that is dropped and counted (default 512)',
    timeout: 'per-request timeout; a timed-out request counts as status 0 (default 30s)',
    seed: 'seed of the poisson arrivals (default 42)',
    binary:
      'send the binary tensor extension (Inference-Header-Content-Length: JSON header + raw little-endian tensors, binary outputs), as Triton perf_analyzer does; default: JSON bodies',
    progress: 'print a progress line on stderr every second (default: only when stderr is a terminal)',
    'allow-remote': 'allow a non-loopback target (off by default: load tests stay on this machine)',
    'run-id':
      'run id sent with every request (breakid-run-id header): the engine tags their spans with it (default loadgen-<UTC time>-<random>); a sweep suffixes it per level (.r<rate> or .c<concurrency>)',
    concurrency:
      'closed loop instead of --rate: this many workers, each sending when answered; percentiles corrected for coordinated omission',
    'sweep-rates': 'open-loop sweep: rates as a list 50,100,200 or a range start:end:step, one run each',
    'sweep-concurrency':
      'closed-loop sweep: concurrencies as a list or a range start:end:step (perf_analyzer --concurrency-range)',
    warmup: 'sweeps: load sent before each level and discarded (default 0)',
    'latency-threshold-ms':
      'sweeps: stop after the first level whose p99 exceeds this (perf_analyzer --latency-threshold)',
    'expected-interval-ms':
      'closed loop: the interval a worker sends at when nothing stalls, for the coordinated-omission correction (default: the median latency)',
  },
  async run({ values }) {
    const base = String(values.url).replace(/\/$/, '')
    if (!values['allow-remote'] && !isLoopback(base)) {
      throw new InvalidInputError(
        `--url ${base} is not a loopback address; pass --allow-remote to load another host`,
      )
    }
    const spec = parseModelFlag(String(values.model))
    if (!isModelName(spec.name)) throw new InvalidInputError(`unknown model ${spec.name}`)
    const arrival = String(values.arrival)
    if (!(ARRIVAL_PATTERNS as readonly string[]).includes(arrival)) {
      throw new InvalidInputError(`--arrival: "${arrival}" is not one of ${ARRIVAL_PATTERNS.join(', ')}`)
    }
    const burstFactor = parsePositive(values['burst-factor'], 'burst-factor')
    if (burstFactor < 1) throw new InvalidInputError('--burst-factor: must be >= 1')
    const ratePerSec = parsePositive(values.rate, 'rate')
    const minRatePerSec =
      values['min-rate'] === undefined ? undefined : parseNonNegative(values['min-rate'], 'min-rate')
    if (minRatePerSec !== undefined && minRatePerSec > ratePerSec) {
      throw new InvalidInputError(`--min-rate ${minRatePerSec} is above --rate ${ratePerSec}`)
    }
    const encoding = values.binary ? 'binary' : 'json'
    const bodies = Array.from({ length: 16 }, (_, seed) =>
      inferBody(getModel(spec.name).inputGenerator(seed, 1, spec.options), encoding),
    )
    const showProgress = Boolean(values.progress) || process.stderr.isTTY === true
    const runId = parseRunIdFlag(values['run-id'], 'loadgen')
    // stderr: stdout is the JSON report
    process.stderr.write(`run: ${runId}\n`)
    const url = `${base}/v2/models/${spec.name}/infer`
    const durationMs = parseDurationMs(values.duration, 'duration')
    const timeoutMs = parseDurationMs(values.timeout, 'timeout')
    const maxOutstanding = parsePositive(values['max-outstanding'], 'max-outstanding', { integer: true })
    const modes = ['concurrency', 'sweep-rates', 'sweep-concurrency'].filter((f) => values[f] !== undefined)
    if (modes.length > 1) throw new InvalidInputError(`choose one of --${modes.join(', --')}`)
    if (values['sweep-rates'] !== undefined || values['sweep-concurrency'] !== undefined) {
      const byRate = values['sweep-rates'] !== undefined
      const levels = byRate
        ? parseLevels(String(values['sweep-rates']), '--sweep-rates')
        : parseLevels(String(values['sweep-concurrency']), '--sweep-concurrency', { integer: true })
      const result = await runSweep({
        mode: byRate ? 'rate' : 'concurrency',
        levels,
        durationMs,
        warmupMs: values.warmup === undefined ? 0 : parseDurationMs(values.warmup, 'warmup'),
        latencyLimitMs:
          values['latency-threshold-ms'] === undefined
            ? undefined
            : parsePositive(values['latency-threshold-ms'], 'latency-threshold-ms'),
        url,
        bodies,
        timeoutMs,
        maxOutstanding,
        runId: (level) => `${runId.slice(0, 50)}.${byRate ? 'r' : 'c'}${level}`,
        onLevel: ({ level, report: r }) =>
          process.stderr.write(
            `[sweep] ${byRate ? 'rate' : 'concurrency'} ${level}: ${r.throughputPerSec} ok/s, p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, errors ${r.sent - r.ok}\n`,
          ),
      })
      console.log(JSON.stringify(result, null, 2))
      return result.levels.some((l) => l.report.ok > 0) ? 0 : 1
    }
    if (values.concurrency !== undefined) {
      const report = await runClosedLoop({
        url,
        bodies,
        concurrency: parsePositive(values.concurrency, 'concurrency', { integer: true, max: 4096 }),
        durationMs,
        timeoutMs,
        runId,
        expectedIntervalMs:
          values['expected-interval-ms'] === undefined
            ? undefined
            : parsePositive(values['expected-interval-ms'], 'expected-interval-ms'),
      })
      console.log(JSON.stringify(report, null, 2))
      return report.ok > 0 ? 0 : 1
    }
    const report = await runLoad({
      url,
      bodies,
      ratePerSec,
      durationMs,
      arrival: arrival as ArrivalPattern,
      burstFactor,
      burstPeriodMs: parseDurationMs(values['burst-period'], 'burst-period'),
      minRatePerSec,
      periodMs: parseDurationMs(values.period, 'period'),
      maxOutstanding,
      timeoutMs,
      seed: parseNonNegative(values.seed, 'seed'),
      runId,
      onProgress: showProgress ? (p) => process.stderr.write(`${formatProgress(p)}\n`) : undefined,
    })
    console.log(JSON.stringify(report, null, 2))
    return report.ok > 0 ? 0 : 1
  },
}

function parseNonNegative(value: unknown, flag: string): number {
  const n = Number(value)
  if (String(value).trim() === '' || !Number.isFinite(n) || n < 0) {
    throw new InvalidInputError(`--${flag}: "${value}" is not a number >= 0`)
  }
  return n
}
