/**
 * Fault injection: every fault type, injected on a running engine (the `mlp` model on
 * onnxruntime-node, telemetry read back as Avro from the embedded bus), shows up in the telemetry where
 * it should — the stalled stage's duration, input_mean / output_confidence, the error status and
 * class, the batch size, heap and RSS in a hardware sample — and nowhere outside its window. Each
 * window lies hours after engine start; a test moves the schedule's clock into one window (or back to
 * zero, where none is active) with `faults.startClock`. Also: parsing of `--fault` flags and scenario
 * files, and the ground truth.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { after, before, describe, test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import type { EngineOptions } from '../../engine/engine.ts'
import { FAULT_TYPES } from '../../contract/faults.ts'
import {
  FaultSchedule,
  type FaultWindow,
  faultParams,
  faultsFromFlags,
  leakedBytes,
  loadScenarioFile,
  parseFaultSpec,
  parseScenario,
  releaseLeakedMemory,
} from '../../engine/faults.ts'
import { type EnsuredModel, ensureModel, toKServeInputs } from '../../engine/models/zoo.ts'
import type { Span } from '../../contract/records.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { createLogger } from '../../core/logger.ts'
import { type EngineHarness, MODEL_CACHE_DIR, startEngineHarness } from '../helpers/engine-harness.ts'

const _logger = createLogger('silent')
const HOUR_MS = 3_600_000
const MIB = 1024 * 1024
const TRACEPARENT = /^00-[0-9a-f]{32}-([0-9a-f]{16})-01$/
/**
 * Injected delays: far above what any stage takes on its own, even on a loaded 2-core machine, so
 * "this stage carries the delay, the others do not" cannot be confused by noise.
 */
const STALL_MS = 150
const STALL_US = STALL_MS * 1000
/** timers may fire up to 1 ms before their nominal delay on the µs clock */
const TIMER_SLACK_US = 1000

type InjectResponse = Awaited<ReturnType<FastifyInstance['inject']>>

type Harness = EngineHarness
/** the harness with this file's instance name; hardware samples only when a test calls tick() */
const startHarness = (opts: Partial<EngineOptions>): Promise<Harness> =>
  startEngineHarness({ identity: { fleet: 'test', host: 'host-a', instance: 'engine-faults' }, ...opts })

let generated: EnsuredModel
let seed = 1

/** `rows` rows of valid, distinct input (a new seed every call). */
function features(rows: number): Float32Array {
  return generated.inputGenerator(seed++, rows)[0]!.data as Float32Array
}

function inferBody(data: Float32Array) {
  return {
    inputs: toKServeInputs([{ name: 'features', datatype: 'FP32', shape: [data.length / 16, 16], data }]),
  }
}

function post(app: FastifyInstance, payload: unknown): Promise<InjectResponse> {
  return app.inject({
    method: 'POST',
    url: '/v2/models/mlp/infer',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify(payload),
  })
}

async function spanOf(h: Harness, res: InjectResponse): Promise<Span> {
  const id = TRACEPARENT.exec(String(res.headers.traceparent))?.[1]
  assert.ok(id, `traceparent ${res.headers.traceparent}`)
  const span = (await h.spans()).find((s) => s.span_id === id)
  assert.ok(span, `span ${id}`)
  return span
}

function outputData(res: InjectResponse): number[] {
  assert.equal(res.statusCode, 200, res.body)
  return (res.json() as { outputs: { data: number[] }[] }).outputs[0]!.data
}

/** One window per fault, an hour each, in this order from hour 1; hour 0 has none. */
const WINDOWS: Omit<FaultWindow, 'startMs' | 'endMs'>[] = [
  { type: 'data_starvation', delayMs: STALL_MS },
  { type: 'stage_stall', stage: 'preprocess', delayMs: STALL_MS },
  { type: 'stage_stall', stage: 'postprocess', delayMs: STALL_MS },
  { type: 'stage_stall', stage: 'serialize', delayMs: STALL_MS },
  { type: 'input_drift' }, // default shift 1.5 σ
  { type: 'output_drift', factor: 0.5 },
  { type: 'memory_leak', bytesPerRequest: MIB },
  { type: 'error_burst' }, // default rate 0.5
  { type: 'slow_serialization', delayMs: STALL_MS, factor: 0 },
  { type: 'slow_serialization', factor: 500 },
]
const schedule = () =>
  new FaultSchedule(WINDOWS.map((w, i) => ({ ...w, startMs: (i + 1) * HOUR_MS, endMs: (i + 2) * HOUR_MS })))

/** Moves the schedule's clock into window `i` of WINDOWS (a minute into it). */
function enter(h: Harness, i: number): void {
  h.engine.faults.startClock(Date.now() - (i + 1) * HOUR_MS - 60_000)
}
/** The same request inside fault window `i` and after it: both answers and their spans. */
async function inAndAfter(h: Harness, i: number, data: Float32Array) {
  enter(h, i)
  const resDuring = await post(h.app, inferBody(data))
  leave(h)
  const resOutside = await post(h.app, inferBody(data))
  return { resDuring, resOutside, during: await spanOf(h, resDuring), outside: await spanOf(h, resOutside) }
}

/** Back to time zero: no window is active. */
function leave(h: Harness): void {
  h.engine.faults.startClock()
  for (const t of FAULT_TYPES) assert.equal(h.engine.faults.active(t), undefined, t)
}

before(async () => {
  generated = await ensureModel('mlp', { cacheDir: MODEL_CACHE_DIR })
})

describe('faults on a running engine', () => {
  let h: Harness
  before(async () => {
    h = await startHarness({ faults: schedule() })
    // warm-up: the first inference of a session is slower than the rest
    assert.equal((await post(h.app, inferBody(features(1)))).statusCode, 200)
  })
  after(async () => {
    await h.close()
    releaseLeakedMemory()
  })

  test('data_starvation: preprocess_us carries the delay, compute_us does not', async () => {
    enter(h, 0)
    const during = await spanOf(h, await post(h.app, inferBody(features(1))))
    leave(h)
    const outside = await spanOf(h, await post(h.app, inferBody(features(1))))
    assert.ok(during.preprocess_us >= STALL_US - TIMER_SLACK_US, `preprocess_us ${during.preprocess_us}`)
    assert.ok(during.compute_us < STALL_US, `compute_us ${during.compute_us}`)
    assert.ok(outside.preprocess_us < STALL_US, `outside: preprocess_us ${outside.preprocess_us}`)
  })

  for (const [i, stage] of [
    [1, 'preprocess'],
    [2, 'postprocess'],
    [3, 'serialize'],
  ] as const) {
    test(`stage_stall of ${stage}: only ${stage}_us carries the delay`, async () => {
      enter(h, i)
      const during = await spanOf(h, await post(h.app, inferBody(features(1))))
      leave(h)
      const outside = await spanOf(h, await post(h.app, inferBody(features(1))))
      assert.equal(during.status, 'ok')
      for (const s of ['preprocess', 'postprocess', 'serialize'] as const) {
        const v = during[`${s}_us`]
        if (s === stage) assert.ok(v >= STALL_US - TIMER_SLACK_US, `${s}_us ${v} in the window`)
        else assert.ok(v < STALL_US, `${s}_us ${v} must not carry the stall`)
        assert.ok(outside[`${s}_us`] < STALL_US, `outside: ${s}_us ${outside[`${s}_us`]}`)
      }
      assert.ok(during.total_us >= STALL_US - TIMER_SLACK_US)
    })
  }

  test('input_drift: input_mean moves by 1.5 σ, σ stays, and the model sees the shifted input', async () => {
    const { resDuring, resOutside, during, outside } = await inAndAfter(h, 4, features(1))
    const sigma = outside.input_std!
    assert.ok(sigma > 0)
    const moved = during.input_mean! - outside.input_mean!
    assert.ok(
      Math.abs(moved - 1.5 * sigma) < 1e-4 * (1 + sigma),
      `mean moved ${moved}, 1.5 σ = ${1.5 * sigma}`,
    )
    assert.ok(Math.abs(during.input_std! - sigma) < 1e-4 * (1 + sigma), 'a shift keeps σ')
    assert.notDeepEqual(outputData(resDuring), outputData(resOutside), 'the model answered the shifted input')
  })

  test('output_drift: output_confidence drops as rows are mixed toward uniform', async () => {
    const { resDuring, resOutside, during, outside } = await inAndAfter(h, 5, features(2))
    // mlp has 4 classes: confidence' = 0.5 × confidence + 0.5 / 4
    const want = 0.5 * outside.output_confidence! + 0.125
    assert.ok(Math.abs(during.output_confidence! - want) < 1e-6, `${during.output_confidence} vs ${want}`)
    assert.ok(during.output_confidence! < outside.output_confidence!)
    // the client gets the flattened probabilities too; rows still sum to 1
    const flat = outputData(resDuring)
    const normal = outputData(resOutside)
    for (const [k, v] of flat.entries()) assert.ok(Math.abs(v - (0.5 * normal[k]! + 0.125)) < 1e-6)
    assert.ok(Math.abs(flat.slice(0, 4).reduce((a, b) => a + b, 0) - 1) < 1e-5)
    assert.ok(Math.abs(during.input_mean! - outside.input_mean!) < 1e-9, 'inputs untouched')
  })

  test('memory_leak: heap and RSS grow in a hardware sample inside the window, and are released after it', async () => {
    const gc = exposeGc()
    gc()
    const base = await h.engine.sampler.tick()
    enter(h, 6)
    const REQUESTS = 48
    for (let i = 0; i < REQUESTS; i++)
      assert.equal((await post(h.app, inferBody(features(1)))).statusCode, 200)
    assert.equal(leakedBytes(), REQUESTS * MIB)
    gc() // what is left is what the fault retains
    const leaking = await h.engine.sampler.tick()
    const heapGrowth = leaking.heap_used_bytes - base.heap_used_bytes
    const rssGrowth = leaking.rss_bytes - base.rss_bytes
    assert.ok(heapGrowth >= 0.8 * REQUESTS * MIB, `heap grew ${(heapGrowth / MIB).toFixed(1)} MiB`)
    assert.ok(rssGrowth >= 0.5 * REQUESTS * MIB, `rss grew ${(rssGrowth / MIB).toFixed(1)} MiB`)

    // the window is over: the next request lets go, and a GC returns the heap
    leave(h)
    assert.equal((await post(h.app, inferBody(features(1)))).statusCode, 200)
    assert.equal(leakedBytes(), 0)
    gc()
    const released = await h.engine.sampler.tick()
    assert.ok(
      released.heap_used_bytes < leaking.heap_used_bytes - 0.8 * REQUESTS * MIB,
      `heap ${(released.heap_used_bytes / MIB).toFixed(1)} MiB after release, ${(leaking.heap_used_bytes / MIB).toFixed(1)} MiB leaking`,
    )
  })

  test('error_burst: half the requests fail with 500 InjectedFaultError, spans server_error; none outside', async () => {
    enter(h, 7)
    const during = []
    for (let i = 0; i < 10; i++) during.push(await post(h.app, inferBody(features(1))))
    leave(h)
    const outside = []
    for (let i = 0; i < 4; i++) outside.push(await post(h.app, inferBody(features(1))))

    const failed = during.filter((r) => r.statusCode === 500)
    assert.equal(failed.length, 5, `statuses ${during.map((r) => r.statusCode).join(',')}`)
    assert.equal(during.filter((r) => r.statusCode === 200).length, 5)
    for (const res of failed) {
      assert.match((res.json() as { error: string }).error, /injected fault/)
      const span = await spanOf(h, res)
      assert.equal(span.status, 'server_error')
      assert.equal(span.error_class, 'BREAKID_INJECTED_FAULT')
      assert.equal(span.compute_us, 0, 'a failed request never reached the executor')
    }
    for (const res of outside) {
      assert.equal(res.statusCode, 200)
      const span = await spanOf(h, res)
      assert.equal(span.status, 'ok')
      assert.equal(span.error_class, null)
    }
    assert.ok((h.engine.errors.get('BREAKID_INJECTED_FAULT') ?? 0) >= 5)
  })

  test('slow_serialization: serialize_us carries the delay; re-stringifying does the extra work', async () => {
    enter(h, 8)
    const delayed = await spanOf(h, await post(h.app, inferBody(features(1))))
    leave(h)
    const outside = await spanOf(h, await post(h.app, inferBody(features(1))))
    assert.ok(delayed.serialize_us >= STALL_US - TIMER_SLACK_US, `serialize_us ${delayed.serialize_us}`)
    assert.ok(delayed.postprocess_us < STALL_US && delayed.compute_us < STALL_US)
    assert.ok(outside.serialize_us < STALL_US, `outside: serialize_us ${outside.serialize_us}`)

    // factor 500: the response is stringified 500 more times inside the serialize stage
    const before = h.engine.faults.overheadBytes
    enter(h, 9)
    const res = await post(h.app, inferBody(features(1)))
    const restringified = await spanOf(h, res)
    leave(h)
    const after = h.engine.faults.overheadBytes
    assert.ok(after - before >= 500 * res.body.length, `${after - before} extra bytes stringified`)
    const control = await spanOf(h, await post(h.app, inferBody(features(1))))
    assert.equal(h.engine.faults.overheadBytes, after, 'no extra work outside the window')
    assert.ok(
      restringified.serialize_us > control.serialize_us,
      `serialize_us ${restringified.serialize_us} in the window vs ${control.serialize_us}`,
    )
  })
})

describe('slow serialization in a shared batch', () => {
  let h: Harness
  before(async () => {
    h = await startHarness({
      batching: { maxBatchSize: 8, maxQueueDelayMs: 150 },
      faults: new FaultSchedule([
        { type: 'slow_serialization', factor: 10000, startMs: HOUR_MS, endMs: 2 * HOUR_MS },
      ]),
    })
  })
  after(async () => {
    await h.close()
  })

  test("one request's serialization is not counted in its batch mates' postprocess", async () => {
    h.engine.faults.startClock(Date.now() - HOUR_MS - 60_000)
    const responses = await Promise.all(Array.from({ length: 6 }, () => post(h.app, inferBody(features(1)))))
    leave(h)
    const spans = await Promise.all(responses.map((r) => spanOf(h, r)))
    assert.ok(
      spans.some((s) => s.batch_size > 1),
      `batch sizes ${spans.map((s) => s.batch_size)}`,
    )
    // each span's serialize stage holds its own 10 000 stringifications (~8 ms here, well above
    // scheduling noise); before the fix the batch mates that resumed after it counted them again in
    // their postprocess
    const leastSerialize = Math.min(...spans.map((s) => s.serialize_us))
    for (const s of spans)
      assert.ok(
        s.postprocess_us < leastSerialize / 2,
        `postprocess ${s.postprocess_us} µs vs serialize ≥ ${leastSerialize} µs`,
      )
  })
})

describe('batch_size_misconfig on a batching engine', () => {
  let h: Harness
  before(async () => {
    // batches start when 8 rows wait or after 150 ms, so concurrent requests share batches
    h = await startHarness({
      batching: { maxBatchSize: 8, maxQueueDelayMs: 150 },
      faults: new FaultSchedule([{ type: 'batch_size_misconfig', startMs: HOUR_MS, endMs: 2 * HOUR_MS }]),
    })
  })
  after(async () => {
    await h.close()
  })

  const burst = async () => {
    const responses = await Promise.all(Array.from({ length: 6 }, () => post(h.app, inferBody(features(1)))))
    for (const r of responses) assert.equal(r.statusCode, 200, r.body)
    return Promise.all(responses.map((r) => spanOf(h, r)))
  }

  test('inside the window every batch holds at most 1 row; outside, concurrent requests share batches', async () => {
    h.engine.faults.startClock(Date.now() - HOUR_MS - 60_000)
    assert.equal(h.engine.faults.maxBatchSizeOverride(), 1)
    const during = await burst()
    h.engine.faults.startClock()
    assert.equal(h.engine.faults.maxBatchSizeOverride(), undefined)
    const outside = await burst()

    for (const s of during) assert.ok(s.batch_size <= 1, `batch_size ${s.batch_size} in the window`)
    assert.equal(new Set(during.map((s) => s.batch_id)).size, during.length, 'one batch per request')
    // control: the same burst without the fault is batched
    assert.ok(
      outside.some((s) => s.batch_size > 1),
      `batch sizes outside: ${outside.map((s) => s.batch_size).join(',')}`,
    )
  })
})

describe('memory_leak bounds', () => {
  after(() => releaseLeakedMemory())

  test('retention stops at maxBytes; the next request outside the window releases it', () => {
    const s = new FaultSchedule([
      { type: 'memory_leak', startMs: 0, endMs: HOUR_MS, bytesPerRequest: MIB, maxBytes: 3 * MIB },
    ])
    s.startClock()
    for (let i = 0; i < 5; i++) s.onRequest()
    assert.equal(leakedBytes(), 3 * MIB)
    s.startClock(Date.now() - 2 * HOUR_MS)
    s.onRequest()
    assert.equal(leakedBytes(), 0)
  })
})

describe('fault specs, scenario files and ground truth', () => {
  test('flag shorthand sets the first parameter; param=value lists set any', () => {
    assert.deepEqual(parseFaultSpec('data_starvation@25-40:80'), {
      type: 'data_starvation',
      startMs: 25_000,
      endMs: 40_000,
      delayMs: 80,
    })
    assert.deepEqual(parseFaultSpec('error_burst@1.5-3:0.2'), {
      type: 'error_burst',
      startMs: 1500,
      endMs: 3000,
      rate: 0.2,
    })
    assert.deepEqual(parseFaultSpec('stage_stall@10-20:stage=serialize,delayMs=30'), {
      type: 'stage_stall',
      startMs: 10_000,
      endMs: 20_000,
      stage: 'serialize',
      delayMs: 30,
    })
    assert.equal(parseFaultSpec('input_drift@0-5:shift=-2').shift, -2)
    assert.equal(parseFaultSpec('memory_leak@0-5:bytesPerRequest=1024').bytesPerRequest, 1024)
    assert.deepEqual(parseFaultSpec('batch_size_misconfig@0-5'), {
      type: 'batch_size_misconfig',
      startMs: 0,
      endMs: 5000,
    })
  })

  test('bad flags are InvalidInputError naming the problem', () => {
    const cases: [string, RegExp][] = [
      ['data_starvation', /expected type@startS-endS/],
      ['nope@1-2', /unknown fault type "nope"; known: data_starvation, stage_stall/],
      ['data_starvation@5-5', /0 <= start < end/],
      ['data_starvation@9-5', /0 <= start < end/],
      ['error_burst@1-2:rate=1.5', /rate must be a number in \[0, 1\]/],
      ['error_burst@1-2:delayMs=5', /unknown parameter "delayMs" \(takes rate\)/],
      ['stage_stall@1-2:stage=compute', /stage must be one of preprocess, postprocess, serialize/],
      ['batch_size_misconfig@1-2:maxBatchSize=1.5', /an integer/],
      ['output_drift@1-2:factor', /"factor" is not param=value/],
      ['memory_leak@1-2:bytesPerRequest=abc', /bytesPerRequest must be an integer/],
    ]
    for (const [spec, message] of cases) {
      assert.throws(
        () => parseFaultSpec(spec),
        (err: unknown) => {
          assert.ok(err instanceof InvalidInputError, spec)
          assert.match(err.message, message, spec)
          return true
        },
      )
    }
  })

  test('a scenario file lists windows with their parameters; --fault flags add to it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'breakid-scenario-'))
    try {
      const path = join(dir, 'scenario.json')
      writeFileSync(
        path,
        JSON.stringify({
          faults: [
            { type: 'input_drift', startS: 10, endS: 20, shift: 2 },
            { type: 'stage_stall', startS: 30, endS: 40, stage: 'preprocess', delayMs: 25 },
            { type: 'memory_leak', startS: 5, endS: 50 },
          ],
        }),
      )
      assert.deepEqual(loadScenarioFile(path), [
        { type: 'input_drift', startMs: 10_000, endMs: 20_000, shift: 2 },
        { type: 'stage_stall', startMs: 30_000, endMs: 40_000, stage: 'preprocess', delayMs: 25 },
        { type: 'memory_leak', startMs: 5000, endMs: 50_000 },
      ])
      const both = faultsFromFlags(['error_burst@1-2'], path)
      assert.deepEqual(
        both.map((w) => w.type),
        ['error_burst', 'input_drift', 'stage_stall', 'memory_leak'],
      )
      assert.deepEqual(faultsFromFlags(undefined), [])

      writeFileSync(path, '{"faults": [')
      assert.throws(() => loadScenarioFile(path), /not JSON/)
      assert.throws(() => loadScenarioFile(join(dir, 'missing.json')), /cannot read/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('bad scenarios are InvalidInputError naming the entry', () => {
    const cases: [unknown, RegExp][] = [
      [[], /expected \{"faults"/],
      [{ windows: [] }, /expected \{"faults"/],
      [{ faults: [42] }, /faults\[0\]: expected an object/],
      [{ faults: [{ type: 'boom', startS: 1, endS: 2 }] }, /faults\[0\]: unknown fault type "boom"/],
      [{ faults: [{ type: 'error_burst', startS: '1', endS: 2 }] }, /startS and endS must be numbers/],
      [
        {
          faults: [
            { type: 'error_burst', startS: 1, endS: 2 },
            { type: 'error_burst', startS: 3, endS: 2 },
          ],
        },
        /faults\[1\]: .*0 <= start < end/,
      ],
      [{ faults: [{ type: 'error_burst', startS: 1, endS: 2, shift: 1 }] }, /has no parameter "shift"/],
      [{ faults: [{ type: 'error_burst', startS: 1, endS: 2, rate: '0.5' }] }, /rate must be a number/],
      [{ faults: [{ type: 'error_burst', startS: 1, endS: 2, rate: -1 }] }, /rate must be a number in/],
    ]
    for (const [doc, message] of cases) {
      assert.throws(
        () => parseScenario(doc, 'x.json'),
        (err: unknown) => {
          assert.ok(err instanceof InvalidInputError, JSON.stringify(doc))
          assert.match(err.message, message, JSON.stringify(doc))
          return true
        },
      )
    }
    // the schedule itself refuses a parameter its type does not take
    assert.throws(
      () => new FaultSchedule([{ type: 'error_burst', startMs: 0, endMs: 1, delayMs: 5 }]),
      /unknown parameter "delayMs"/,
    )
  })

  test('every type has documented defaults; ground truth carries them, as NDJSON with ISO times', () => {
    for (const t of FAULT_TYPES) {
      const p = faultParams({ type: t, startMs: 0, endMs: 1 })
      assert.ok(Object.keys(p).length > 0, t)
      for (const v of Object.values(p)) assert.ok(v !== undefined, t)
    }
    assert.deepEqual(faultParams({ type: 'input_drift', startMs: 0, endMs: 1 }), { shift: 1.5 })
    assert.deepEqual(faultParams({ type: 'memory_leak', startMs: 0, endMs: 1 }), {
      bytesPerRequest: 256 * 1024,
      maxBytes: 512 * MIB,
    })

    const s = new FaultSchedule([
      { type: 'error_burst', startMs: 10_000, endMs: 20_000 },
      { type: 'stage_stall', startMs: 5000, endMs: 6000, stage: 'serialize' },
    ])
    const origin = Date.UTC(2026, 10, 26, 12, 0, 0)
    s.startClock(origin)
    const lines = s
      .groundTruthNdjson()
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as unknown)
    assert.deepEqual(lines, [
      {
        type: 'error_burst',
        params: { rate: 0.5 },
        start: '2026-11-26T12:00:10.000Z',
        end: '2026-11-26T12:00:20.000Z',
      },
      {
        type: 'stage_stall',
        params: { delayMs: 100, stage: 'serialize' },
        start: '2026-11-26T12:00:05.000Z',
        end: '2026-11-26T12:00:06.000Z',
      },
    ])
    assert.equal(s.groundTruth()[0]!.startEpochMs, origin + 10_000)
  })
})

/** A handle on V8's garbage collector without starting node with --expose-gc. */
function exposeGc(): () => void {
  setFlagsFromString('--expose-gc')
  return runInNewContext('gc') as () => void
}
