/**
 * Breaks detected on telemetry a foreign system produced, through the collector and the live
 * detector set (`defaultDetectors()`, the detector consumer on the embedded bus):
 *
 * - Starvation replayed through OTLP alone: a Triton server with an ensemble `pipeline` = Python
 *   `preprocess` (CPU, 4 instances) → `resnet50` (GPU, dynamic batching). Its traces (Triton's spans,
 *   serialized by the OpenTelemetry JS SDK) go to /v1/traces and its Triton and DCGM metrics, as an
 *   OpenTelemetry Collector scraping them forwards them, to /v1/metrics. Preprocessing slows from 3 to
 *   70 ms: requests pile up in front of it while the GPU model's queue stays empty and the GPU idles.
 *   `accelerator_starved` fires, and resolves when preprocessing recovers. A control run without
 *   `acceleratorModels` (the preprocess backlog then reads as a backlog at the executor) does not fire
 *   it: the option is what makes the difference, and the check can fail.
 * - Scraped pages: a local HTTP server serves a Triton and a DCGM page; hardware samples carry the GPU
 *   utilisation; load stops and `accelerator_idle_no_load` fires.
 *
 * Event time only: OTLP points carry their timestamps, the scraper's clock is injected, and each step
 * waits for the detector consumer to drain before the next.
 */
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, it } from 'node:test'
import { ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api'
import pino from 'pino'
import { defaultDetectors, startPipeline } from '../../app/pipeline.ts'
import { EmbeddedBus } from '../../bus/embedded-bus.ts'
import { Collector, type CollectorOptions } from '../../collect/collector.ts'
import type { Alert } from '../../contract/records.ts'
import { TOPICS } from '../../contract/topics.ts'
import { DETECT_GROUP } from '../../detectors/consumer.ts'
import { BusRecords } from '../helpers/bus-records.ts'
import { hr, OtelJs, toProtobuf } from '../helpers/otel-js.ts'
import { type ModelInterval, TritonMetrics } from '../helpers/triton-metrics.ts'

const logger = pino({ level: 'silent' })
const T0_NS = 1_767_225_600_000_000_000n // 2026-01-01T00:00:00Z
const STEP_S = 10 // a Prometheus scrape interval
const GPU = 'GPU-9d3f1c52-6a1e-4a53-8d0e-3b7f2c1a0e11'

/** the scenario's GPU at `utilization`: 500 W more at full load than its idle `idleW` */
const gpuAt = (utilization: number, idleW: number, temperatureC: number) => ({
  uuid: GPU,
  utilization,
  fbUsedMiB: 9_000,
  fbFreeMiB: 72_000,
  powerW: idleW + 500 * utilization,
  temperatureC,
})

async function startStack(opts: Partial<CollectorOptions>) {
  const bus = new EmbeddedBus()
  const alerts: Alert[] = []
  const pipeline = await startPipeline({
    transport: bus,
    logger,
    detectors: defaultDetectors(),
    onAlert: (a) => alerts.push(a),
  })
  const records = new BusRecords(bus)
  await records.start()
  const collector = new Collector({ producer: bus.producer(), logger, otlpPort: 0, ...opts })
  await collector.start()
  return {
    bus,
    alerts,
    records,
    collector,
    /** everything on the bus has been through the detectors */
    async settled() {
      await bus.drained(TOPICS.spans, DETECT_GROUP)
      await bus.drained(TOPICS.hw, DETECT_GROUP)
      await records.drained()
    },
    async stop() {
      await collector.stop()
      await records.stop()
      await pipeline.stop()
    },
  }
}

// ---------------------------------------------------------------- starvation through OTLP ----------

interface Phase {
  /** requests per second reaching the end of the pipeline */
  completedPerS: number
  /** mean time a request waits for a preprocess instance, and its compute (µs) */
  preprocessQueueUs: number
  preprocessComputeUs: number
  /** preprocess requests waiting at the end of the step */
  preprocessPending: number
  /** resnet50: executions per second, a batch's compute (µs), queue wait, pending */
  resnetExecPerS: number
  resnetBatchComputeUs: number
  resnetQueueUs: number
  resnetPending: number
}

const NORMAL: Phase = {
  completedPerS: 100,
  preprocessQueueUs: 500,
  preprocessComputeUs: 3_000,
  preprocessPending: 0,
  resnetExecPerS: 25, // batches of 4
  resnetBatchComputeUs: 12_000,
  resnetQueueUs: 5_000,
  resnetPending: 1,
}

// 4 preprocess instances at 70 ms serve 57 req/s of the 100 arriving: a backlog grows in front of
// them while resnet50 gets smaller batches less often
const STARVED: Phase = {
  completedPerS: 57,
  preprocessQueueUs: 500_000,
  preprocessComputeUs: 70_000,
  preprocessPending: 200,
  resnetExecPerS: 40,
  resnetBatchComputeUs: 6_000,
  resnetQueueUs: 2_000,
  resnetPending: 0,
}

/** Advances the three models' counters by one step of `p`; returns the GPU's busy fraction. */
function advance(m: TritonMetrics, p: Phase): number {
  const n = p.completedPerS * STEP_S
  const exec = p.resnetExecPerS * STEP_S
  const pre = p.preprocessQueueUs + p.preprocessComputeUs
  const resnet = p.resnetQueueUs + p.resnetBatchComputeUs
  const model = (i: Omit<ModelInterval, 'requests'>): ModelInterval => ({ requests: n, ...i })
  // the ensemble: one execution per request, its "compute" the composing models' time (as Triton reports it)
  m.advance(
    'pipeline',
    model({
      executions: n,
      requestUs: n * (pre + resnet + 500),
      computeInferUs: n * (pre + resnet),
      pending: 0,
    }),
  )
  m.advance(
    'preprocess',
    model({
      executions: n,
      requestUs: n * pre,
      queueUs: n * p.preprocessQueueUs,
      computeInferUs: n * p.preprocessComputeUs,
      pending: p.preprocessPending,
    }),
  )
  // Triton credits a batch's compute to each request in it
  m.advance(
    'resnet50',
    model({
      executions: exec,
      requestUs: n * resnet,
      queueUs: n * p.resnetQueueUs,
      computeInputUs: n * p.resnetBatchComputeUs * 0.1,
      computeInferUs: n * p.resnetBatchComputeUs * 0.8,
      computeOutputUs: n * p.resnetBatchComputeUs * 0.1,
      pending: p.resnetPending,
    }),
  )
  const busy = (exec * p.resnetBatchComputeUs) / (STEP_S * 1e6)
  m.gpus = [gpuAt(busy, 120, 50)]
  return busy
}

/** One sampled request of the ensemble as Triton traces it: root, ensemble span, two composing models. */
function ensembleRequest(otel: OtelJs, t0: bigint, p: Phase, requestId: string): void {
  const tracer = otel.tracer('triton-server')
  let at = t0
  const after = (us: number) => {
    at += BigInt(Math.round(us * 1000))
    return hr(at)
  }
  const root = tracer.startSpan('InferRequest', { kind: SpanKind.SERVER, startTime: hr(t0) }, ROOT_CONTEXT)
  root.addEvent('HTTP_RECV_START', after(5))
  root.addEvent('HTTP_RECV_END', after(180))
  const attrs = (name: string) => ({
    'triton.model_name': name,
    'triton.model_version': 1,
    'triton.request_id': requestId,
  })
  const ens = tracer.startSpan(
    'pipeline',
    { kind: SpanKind.SERVER, startTime: after(20), attributes: attrs('pipeline') },
    trace.setSpan(ROOT_CONTEXT, root),
  )
  ens.addEvent('REQUEST_START', hr(at))
  ens.addEvent('QUEUE_START', after(2))
  const step = (name: string, queueUs: number, computeUs: number) => {
    const span = tracer.startSpan(
      name,
      { kind: SpanKind.SERVER, startTime: after(10), attributes: attrs(name) },
      trace.setSpan(ROOT_CONTEXT, ens),
    )
    span.addEvent('REQUEST_START', hr(at))
    span.addEvent('QUEUE_START', after(3))
    const compute = tracer.startSpan(
      'compute',
      { kind: SpanKind.SERVER, startTime: after(queueUs) },
      trace.setSpan(ROOT_CONTEXT, span),
    )
    compute.addEvent('COMPUTE_START', hr(at))
    compute.addEvent('COMPUTE_INPUT_END', after(computeUs * 0.1))
    compute.addEvent('COMPUTE_OUTPUT_START', after(computeUs * 0.8))
    compute.addEvent('COMPUTE_END', after(computeUs * 0.1))
    compute.end(hr(at))
    span.addEvent('REQUEST_END', after(5))
    span.end(hr(at))
  }
  step('preprocess', p.preprocessQueueUs, p.preprocessComputeUs)
  step('resnet50', p.resnetQueueUs, p.resnetBatchComputeUs)
  ens.addEvent('REQUEST_END', after(10))
  ens.end(hr(at))
  root.addEvent('INFER_RESPONSE_COMPLETE', after(5))
  root.addEvent('HTTP_SEND_START', after(5))
  root.addEvent('HTTP_SEND_END', after(90))
  root.end(after(5))
}

const PHASES: Phase[] = [
  ...Array.from({ length: 18 }, () => NORMAL),
  ...Array.from({ length: 6 }, () => STARVED),
  ...Array.from({ length: 6 }, () => NORMAL),
]
const STARVED_FROM = 18
const TRACED_PER_STEP = 4 // Triton's trace rate samples a few requests

async function replayStarvation(opts: Partial<CollectorOptions>) {
  const stack = await startStack(opts)
  const metrics = new TritonMetrics()
  const otel = new OtelJs({
    'service.name': 'triton',
    'service.instance.id': 'triton-a',
    'host.name': 'gpu-node-7',
  })
  const post = async (path: string, body: Buffer) => {
    const res = await fetch(`${stack.collector.otlpUrl}${path}`, {
      method: 'POST',
      body: new Uint8Array(body),
      headers: { 'content-type': 'application/x-protobuf' },
    })
    assert.equal(res.status, 200, `${path}: ${res.status}`)
  }
  const busy: number[] = []
  try {
    for (const [k, phase] of PHASES.entries()) {
      const stepNs = T0_NS + BigInt(k * STEP_S) * 1_000_000_000n
      for (let r = 0; r < TRACED_PER_STEP; r++) {
        ensembleRequest(otel, stepNs + BigInt(r) * 2_000_000_000n, phase, `req-${k}-${r}`)
      }
      await post('/v1/traces', toProtobuf(otel.take()))
      busy.push(advance(metrics, phase))
      const resource = {
        'service.name': 'triton',
        'service.instance.id': 'triton-a',
        'host.name': 'gpu-node-7',
      }
      await post(
        '/v1/metrics',
        metrics.otlpRequest(resource, stepNs + BigInt(STEP_S) * 1_000_000_000n, T0_NS),
      )
      await stack.settled()
    }
    return { ...stack, busy }
  } finally {
    await stack.stop()
  }
}

describe('a starvation replayed through OTLP alone', { timeout: 120_000 }, () => {
  it('fires accelerator_starved on the Triton instance while preprocessing starves the GPU, then resolves', async () => {
    const { alerts, records, collector } = await replayStarvation({ acceleratorModels: ['resnet50'] })
    assert.equal(records.spans.length, PHASES.length * TRACED_PER_STEP, 'one span per traced request')
    assert.equal(collector.counters.total('incomplete'), 0)
    assert.ok(records.spans.every((s) => s.instance === 'triton-a' && s.model === 'pipeline'))
    // the first round only records counters; every later one is a sample
    assert.equal(records.hw.length, PHASES.length - 1)
    const starvedSample = records.hw[STARVED_FROM]! // the first interval of the starved phase
    assert.equal(starvedSample.instance, 'triton-a')
    assert.equal(starvedSample.queue_depth, 0, 'the GPU model has no backlog')
    assert.ok(starvedSample.in_flight > 40, `in flight ${starvedSample.in_flight}: requests pile up`)
    assert.equal(starvedSample.executor_busy, 0.24)
    assert.equal(starvedSample.devices[0]!.utilization, 0.24)

    const starved = alerts.filter((a) => a.type === 'accelerator_starved')
    assert.deepEqual(
      starved.map((a) => a.status),
      ['firing', 'resolved'],
      `alerts: ${alerts.map((a) => `${a.type}:${a.status}`).join(', ')}`,
    )
    const firing = starved[0]!
    assert.equal(firing.instance, 'triton-a')
    assert.equal(firing.model, 'pipeline')
    const firedAtStep = Number(BigInt(firing.updated_at_us) * 1000n - T0_NS) / 1e9 / STEP_S
    assert.ok(firedAtStep > STARVED_FROM && firedAtStep <= STARVED_FROM + 3, `fired at step ${firedAtStep}`)
    assert.ok(firing.exemplar_request_ids.every((id) => id.startsWith('req-')))
    // nothing pages before the break
    const startedBefore = alerts.filter(
      (a) => a.starts_at_us < Number((T0_NS + BigInt(STARVED_FROM * STEP_S) * 1_000_000_000n) / 1000n),
    )
    assert.deepEqual(
      startedBefore.map((a) => a.type),
      [],
      'no alert on the normal phase',
    )
  })

  it('control: without acceleratorModels the preprocess backlog reads as the executor queue, and it does not fire', async () => {
    const { alerts, records } = await replayStarvation({})
    assert.ok(records.hw[STARVED_FROM]!.queue_depth >= 200)
    assert.deepEqual(
      alerts.filter((a) => a.type === 'accelerator_starved'),
      [],
    )
  })
})

// ---------------------------------------------------------------- scraped pages, idle GPU ----------

describe('Triton and DCGM pages scraped over HTTP', { timeout: 120_000 }, () => {
  it('hardware samples carry GPU utilisation, and an idle GPU with no load fires accelerator_idle_no_load', async () => {
    const metrics = new TritonMetrics()
    const scraped = { triton: 0, dcgm: 0 }
    const server: Server = createServer((req, res) => {
      const page =
        req.url === '/metrics' ? metrics.tritonPage() : req.url === '/dcgm' ? metrics.dcgmPage() : undefined
      if (page === undefined) {
        res.writeHead(404).end()
        return
      }
      scraped[req.url === '/metrics' ? 'triton' : 'dcgm']++
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(page)
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    let nowMs = Number(T0_NS / 1_000_000n)
    const load = (requestsPerS: number, util: number) => {
      const n = requestsPerS * STEP_S
      metrics.advance('resnet50', {
        requests: n,
        executions: n / 4,
        requestUs: n * 17_000,
        queueUs: n * 5_000,
        computeInferUs: n * 12_000 * (util / 0.3),
        pending: requestsPerS > 0 ? 1 : 0,
      })
      metrics.gpus = [gpuAt(util, 70, 40)]
    }
    load(100, 0.3)
    const stack = await startStack({
      otlpPort: null,
      scrape: [
        { url: `${base}/metrics`, instance: 'triton-a' },
        { url: `${base}/dcgm`, instance: 'triton-a' },
      ],
      scrapeIntervalMs: 3_600_000,
      now: () => nowMs,
    })
    // the round start() began is awaited, and no timer schedules another: rounds are driven below
    await stack.collector.scraper.stop()
    try {
      const steps = [...Array.from({ length: 15 }, () => 'busy'), ...Array.from({ length: 40 }, () => 'idle')]
      for (const phase of steps) {
        nowMs += STEP_S * 1000
        if (phase === 'busy') load(100, 0.3)
        else load(0, 0.01)
        await stack.collector.scraper.scrapeOnce()
        await stack.settled()
      }
      assert.equal(scraped.triton, steps.length + 1, 'the first round at start, then one per step')
      assert.equal(scraped.dcgm, steps.length + 1)
      const hw = stack.records.hw
      assert.equal(hw.length, steps.length)
      assert.deepEqual(
        hw[3]!.devices.map((d) => [d.device, d.utilization, d.memory_used_bytes]),
        [[GPU, 0.3, 9_000 * 1024 * 1024]],
      )
      assert.equal(hw[3]!.completions, 1000)
      assert.equal(hw[3]!.executor_busy, 0.3)
      assert.equal(hw.at(-1)!.devices[0]!.utilization, 0.01)
      assert.deepEqual(
        [hw[3]!.process_cpu, hw[3]!.rss_bytes, hw[3]!.heap_used_bytes],
        [0, 0, 0],
        'no exporter reports the serving process',
      )
      const idle = stack.alerts.filter((a) => a.type === 'accelerator_idle_no_load')
      assert.deepEqual(
        idle.map((a) => [a.status, a.instance, a.severity]),
        [['firing', 'triton-a', 'info']],
        `alerts: ${stack.alerts.map((a) => `${a.type}:${a.status}`).join(', ')}`,
      )
      assert.deepEqual(
        stack.alerts.filter((a) => a.type !== 'accelerator_idle_no_load').map((a) => a.type),
        [],
        'no other alert',
      )
    } finally {
      await stack.stop()
      await new Promise<void>((r) => server.close(() => r()))
    }
  })
})
