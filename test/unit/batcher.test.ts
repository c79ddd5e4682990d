/**
 * The dynamic batcher's modes, deadlines, queue bound and drain, against a fake executor (the
 * ModelExecutor shape the batcher uses: meta, run(), busyUs) that records every batch and either holds
 * it until the test releases it or takes a simulated compute time. Each output row is its input × 2, so
 * a request that got another request's rows cannot pass.
 *
 * Time is a ManualClock the tests step by hand (the batcher's `clock` option): delays, deadlines,
 * arrival rates and the event loop's load are exact, and no test sleeps or reads the wall clock.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import {
  type BatcherOptions,
  type BatchResult,
  DeadlineExceededError,
  DynamicBatcher,
  QueueFullError,
} from '../../engine/batcher.ts'
import { Engine } from '../../engine/engine.ts'
import type { ModelExecutor } from '../../engine/executor.ts'
import { buildEngineApp } from '../../engine/http.ts'
import { getModel, type ModelMeta, toKServeInputs } from '../../engine/models/zoo.ts'
import { TelemetryEmitter } from '../../engine/telemetry/emitter.ts'
import type { Tensor } from '../../engine/tensors.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { createLogger } from '../../core/logger.ts'
import { EmbeddedBus } from '../../bus/embedded-bus.ts'
import { ManualClock } from '../helpers/manual-clock.ts'
import { waitFor } from '../helpers/wait.ts'

const META: ModelMeta = {
  name: 'fake',
  version: '1',
  platform: 'onnxruntime_onnx',
  inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 1] }],
  outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 1] }],
}

interface Call {
  rows: number
  values: number[]
  startedAt: number
}

/**
 * A fake executor on the test's clock. `costUs(rows)` set: each batch takes that long (`onLoop`: busy
 * on the event loop, as onnxruntime-node computes; otherwise a timer); unset: held until `release()`.
 * `fails(values)` true: the batch throws, as onnxruntime does for an input it cannot run.
 */
class FakeExecutor {
  readonly meta = META
  busyUs = 0
  readonly calls: Call[] = []
  private held: (() => void)[] = []
  fails: ((values: number[]) => boolean) | undefined
  constructor(
    readonly clock: ManualClock,
    private readonly costUs?: (rows: number) => number,
    private readonly onLoop = false,
  ) {}

  async run(inputs: Tensor[]): Promise<{ outputs: Tensor[]; computeUs: number; startedAt: number }> {
    const x = inputs[0]!
    const rows = x.shape[0]!
    const startedAt = this.clock.now()
    const values = Array.from(x.data as Float32Array)
    this.calls.push({ rows, values, startedAt })
    const us = this.costUs?.(rows) ?? 0
    if (this.costUs && this.onLoop) {
      await Promise.resolve()
      this.clock.busy(us / 1000)
    } else if (this.costUs) await new Promise<void>((r) => this.clock.timeout(us / 1000, r))
    else await new Promise<void>((r) => this.held.push(r))
    if (this.fails?.(values)) throw new Error(`cannot run ${values.join(',')}`)
    this.busyUs += us
    const y = Float32Array.from(x.data as Float32Array, (v) => v * 2)
    return { outputs: [{ name: 'y', datatype: 'FP32', shape: [rows, 1], data: y }], computeUs: us, startedAt }
  }

  /** lets every held batch finish */
  release(): void {
    for (const r of this.held.splice(0)) r()
  }

  get sizes(): number[] {
    return this.calls.map((c) => c.rows)
  }
}

function batcher(exec: FakeExecutor, opts: BatcherOptions): DynamicBatcher {
  return new DynamicBatcher(exec as unknown as ModelExecutor, 'test', { clock: exec.clock, ...opts })
}

/** a request of `values.length` rows */
function req(...values: number[]): Tensor[] {
  return [{ name: 'x', datatype: 'FP32', shape: [values.length, 1], data: Float32Array.from(values) }]
}

function assertOwnRows(result: BatchResult, values: number[]): void {
  assert.deepEqual(
    Array.from(result.outputs[0]!.data as Float32Array),
    values.map((v) => v * 2),
  )
  assert.deepEqual(result.outputs[0]!.shape, [values.length, 1])
}

/** Steps the clock (1 ms at a time) and releases held batches until every promise settles. */
async function releaseUntilSettled<T>(exec: FakeExecutor, promises: Promise<T>[]): Promise<T[]> {
  let settled = false
  const all = Promise.all(promises).finally(() => {
    settled = true
  })
  all.catch(() => {}) // the caller awaits it; settling early on a rejection is not unhandled
  await exec.clock.advanceUntil(() => {
    exec.release()
    return settled
  })
  return all
}

/** `.then(...settledAs)`: a result or an error, never a rejection */
const settledAs = [
  (value: BatchResult) => ({ value, error: undefined }),
  (error: Error) => ({ value: undefined, error }),
] as const

/** Whether a promise has settled yet (read after stepping the clock). */
function track(p: Promise<unknown>): { settled: boolean } {
  const state = { settled: false }
  p.then(
    () => {
      state.settled = true
    },
    () => {
      state.settled = true
    },
  )
  return state
}

describe('mode none', () => {
  test('every request runs alone, at once, even when several are queued', async () => {
    const exec = new FakeExecutor(new ManualClock())
    const b = batcher(exec, { mode: 'none', maxBatchSize: 8, maxQueueDelayMs: 1000 })
    const values = [[1], [2, 3], [4], [5], [6]]
    const pending = values.map((v) => b.enqueue(req(...v)))
    assert.equal(exec.calls.length, 1, 'the first request started without waiting')
    assert.equal(b.depth, 5, 'the other rows wait for the executor')
    const results = await releaseUntilSettled(exec, pending)
    assert.deepEqual(exec.sizes, [1, 2, 1, 1, 1], 'one request per batch, in arrival order')
    for (const [i, r] of results.entries()) assertOwnRows(r, values[i]!)
    assert.equal(new Set(results.map((r) => r.batchId)).size, values.length)
  })
})

describe('mode static', () => {
  test('the default mode; a batch starts as soon as maxBatchSize rows wait, never larger', async () => {
    const exec = new FakeExecutor(new ManualClock())
    const b = batcher(exec, { maxBatchSize: 4, maxQueueDelayMs: 50 })
    assert.equal(b.mode, 'static')
    const values = [[1], [2], [3, 4], [5], [6, 7, 8, 9], [10]]
    const pending = values.map((v) => b.enqueue(req(...v)))
    assert.deepEqual(exec.sizes, [4], 'four rows: started without waiting for the delay')
    const results = await releaseUntilSettled(exec, pending)
    // whole requests in order: [5] + [6..9] would be 5 rows, so [6..9] goes to the next batch and
    // [10] alone runs after the delay
    assert.deepEqual(exec.sizes, [4, 1, 4, 1])
    for (const [i, r] of results.entries()) assertOwnRows(r, values[i]!)
  })

  test('fewer rows than maxBatchSize wait maxQueueDelayMs, then run together', async () => {
    const exec = new FakeExecutor(new ManualClock(), () => 100)
    const b = batcher(exec, { maxBatchSize: 8, maxQueueDelayMs: 80 })
    const t0 = exec.clock.now()
    const pending = [b.enqueue(req(1)), b.enqueue(req(2)), b.enqueue(req(3))]
    await exec.clock.advance(79.9)
    assert.equal(exec.calls.length, 0, 'nothing runs before the delay')
    await exec.clock.advance(0.1)
    assert.deepEqual(exec.sizes, [3], 'all three run together when the delay ends')
    const results = await releaseUntilSettled(exec, pending)
    assert.equal(exec.calls[0]!.startedAt - t0, 80)
    assert.equal(results[0]!.queueWaitUs, 80_000)
    for (const [i, r] of results.entries()) assertOwnRows(r, [i + 1])
  })

  test('preferred batch sizes start a batch as soon as one can be formed, the largest first', async () => {
    const exec = new FakeExecutor(new ManualClock())
    const b = batcher(exec, { maxBatchSize: 8, maxQueueDelayMs: 10_000, preferredBatchSizes: [2, 4] })
    const first = b.enqueue(req(1))
    assert.equal(exec.calls.length, 0, '1 row is not a preferred size: it waits')
    const second = b.enqueue(req(2))
    assert.deepEqual(exec.sizes, [2], 'a preferred size formed: started at once')
    // while that batch runs, 3 + 1 rows queue: prefixes are 3 and 4 → the batch of 4 when it ends
    const third = b.enqueue(req(3, 4, 5))
    const fourth = b.enqueue(req(6))
    const results = await releaseUntilSettled(exec, [first, second, third, fourth])
    assert.deepEqual(exec.sizes, [2, 4])
    assertOwnRows(results[2]!, [3, 4, 5])
    assertOwnRows(results[3]!, [6])
  })

  test('maxBatchSizeOverride replaces maxBatchSize while it returns a number', async () => {
    const exec = new FakeExecutor(new ManualClock())
    let override: number | undefined = 2
    const b = batcher(exec, {
      maxBatchSize: 6,
      maxQueueDelayMs: 10_000,
      maxBatchSizeOverride: () => override,
    })
    const pending = [1, 2, 3, 4].map((v) => b.enqueue(req(v)))
    assert.deepEqual(exec.sizes, [2])
    override = undefined
    const more = [5, 6, 7, 8].map((v) => b.enqueue(req(v)))
    await releaseUntilSettled(exec, [...pending, ...more])
    assert.deepEqual(exec.sizes, [2, 6])
  })
})

describe('mode adaptive', () => {
  // compute(n) = 4 ms + 0.5 ms · n: batching pays
  const cost = (rows: number) => 4000 + 500 * rows

  test('at a low arrival rate nothing waits: each request runs alone, at once', async () => {
    const exec = new FakeExecutor(new ManualClock(), cost)
    const b = batcher(exec, { mode: 'adaptive', maxBatchSize: 16, latencyTargetMs: 50 })
    const results: BatchResult[] = []
    for (let i = 0; i < 12; i++) {
      const p = b.enqueue(req(i))
      assert.equal(exec.calls.length, i + 1, `request ${i} started synchronously`)
      results.push(...(await releaseUntilSettled(exec, [p])))
      await exec.clock.advance(25) // 40 req/s against ~220/s of capacity
    }
    assert.ok(exec.sizes.every((n) => n === 1))
    assert.equal(b.stats.lastDelayMs, 0)
    assert.equal(b.stats.lastTargetRows, 1)
    for (const [i, r] of results.entries()) assertOwnRows(r, [i])
  })

  test('under load it batches, bounded by maxBatchSize and by what fits the latency target', async () => {
    const exec = new FakeExecutor(new ManualClock(), cost)
    // the target allows (12 ms - 4 ms) / 0.5 ms = 16 rows of compute; maxBatchSize caps at 10
    const b = batcher(exec, { mode: 'adaptive', maxBatchSize: 10, latencyTargetMs: 12 })
    const pending: Promise<BatchResult>[] = []
    // ~1 request/ms for 300 ms: far past the ~220/s one-at-a-time capacity
    for (let i = 0; i < 300; i++) {
      pending.push(b.enqueue(req(i)))
      if (i % 2 === 1) await exec.clock.advance(1)
    }
    const observedRate = b.stats.arrivalRowsPerSec
    const results = await releaseUntilSettled(exec, pending)
    for (const [i, r] of results.entries()) assertOwnRows(r, [i])
    const sizes = exec.sizes
    assert.ok(Math.max(...sizes) === 10, `largest batch ${Math.max(...sizes)} is maxBatchSize`)
    assert.ok(sizes.every((n) => n <= 10))
    assert.ok(sizes.length < 300 / 4, `${sizes.length} batches for 300 requests`)
    assert.ok(observedRate > 100, `arrival rate ${observedRate}/s observed`)
    const { fixedUs, perRowUs } = b.stats.cost
    assert.ok(
      Math.abs(fixedUs - 4000) < 1 && Math.abs(perRowUs - 500) < 1,
      `cost fit ${fixedUs} + ${perRowUs}·n`,
    )
  })

  test('the latency target caps the batch below maxBatchSize when compute would not fit', async () => {
    const exec = new FakeExecutor(new ManualClock(), cost)
    // (9 ms - 4 ms) / 0.5 ms = 10 rows fit the target; maxBatchSize would allow 64
    const b = batcher(exec, { mode: 'adaptive', maxBatchSize: 64, latencyTargetMs: 9 })
    const pending: Promise<BatchResult>[] = []
    for (let i = 0; i < 200; i++) {
      pending.push(b.enqueue(req(i)))
      if (i % 4 === 3) await exec.clock.advance(1)
    }
    await releaseUntilSettled(exec, pending)
    // the first two batches teach the fit (before it, half the cost is assumed fixed: smaller batches)
    const learned = exec.sizes.slice(2)
    assert.ok(
      learned.every((n) => n <= 10),
      `batch sizes ${learned.join(',')}`,
    )
    assert.ok(learned.includes(10), 'it still batches up to what fits')
  })

  test('while the executor is idle at a moderate rate it waits to form the batch the rate needs', async () => {
    const exec = new FakeExecutor(new ManualClock(), cost)
    const b = batcher(exec, { mode: 'adaptive', maxBatchSize: 16, latencyTargetMs: 100 })
    // teach the cost model more than one batch size: [1] alone, then what queued behind it
    await releaseUntilSettled(exec, [b.enqueue(req(1)), b.enqueue(req(2)), b.enqueue(req(3))])
    // arrivals every 2 ms need batches of ≥ 3 (n / λ ≥ 4 ms + 0.5 ms · n)
    const pending: Promise<BatchResult>[] = []
    // long enough for the rate estimate (a 100 ms window) to settle
    for (let i = 0; i < 200; i++) {
      pending.push(b.enqueue(req(i)))
      await exec.clock.advance(2)
    }
    await releaseUntilSettled(exec, pending)
    const later = exec.sizes.slice(-20)
    const mean = later.reduce((x, y) => x + y, 0) / later.length
    assert.ok(b.stats.waits >= 5, `waited for a fuller batch ${b.stats.waits} times`)
    assert.ok(b.stats.lastTargetRows >= 2, `target ${b.stats.lastTargetRows} rows`)
    assert.ok(mean >= 2, `mean batch ${mean}: ${later.join(',')}`)
  })
})

describe('adaptive and a busy event loop', () => {
  test('when other work keeps the event loop busy, it waits for fuller batches though compute is cheap', async () => {
    // Compute runs on the event loop (as onnxruntime-node's does) and is cheap; the rest of the loop's
    // time goes to other work (what HTTP costs a real engine under load). The executor alone would
    // never need a batch at this rate (see the next test), but each batch's fixed cost is loop time the
    // rest is short of.
    const exec = new FakeExecutor(new ManualClock(), (rows) => 300 + 50 * rows, true)
    const b = batcher(exec, { mode: 'adaptive', maxBatchSize: 8, latencyTargetMs: 50 })
    exec.clock.loopLoad = 1
    const pending: Promise<BatchResult>[] = []
    for (let i = 0; i < 200; i++) {
      pending.push(b.enqueue(req(i)))
      await exec.clock.advance(2)
    }
    exec.clock.loopLoad = 0
    const results = await releaseUntilSettled(exec, pending)
    for (const [i, r] of results.entries()) assertOwnRows(r, [i])
    const { loopHostShare, waits, lastTargetRows } = b.stats
    assert.ok(loopHostShare > 0.5, `loop busy outside compute ${loopHostShare} of the time`)
    assert.ok(waits >= 5, `waited for a fuller batch ${waits} times`)
    assert.ok(lastTargetRows >= 2, `target ${lastTargetRows} rows`)
    assert.ok(exec.sizes.some((n) => n >= 2) && exec.sizes.every((n) => n <= 8), exec.sizes.join(','))
  })

  test('an idle loop leaves the decision to the executor: a modest rate of cheap requests runs alone', async () => {
    const exec = new FakeExecutor(new ManualClock(), (rows) => 300 + 50 * rows, true)
    const b = batcher(exec, { mode: 'adaptive', maxBatchSize: 8, latencyTargetMs: 50 })
    for (let i = 0; i < 60; i++) {
      await releaseUntilSettled(exec, [b.enqueue(req(i))])
      await exec.clock.advance(5)
    }
    assert.ok(exec.sizes.every((n) => n === 1))
    assert.equal(b.stats.lastTargetRows, 1)
    assert.equal(b.stats.waits, 0)
  })
})

describe('deadlines', () => {
  test('a request whose deadline passes in the queue is answered DeadlineExceeded and never computed', async () => {
    const exec = new FakeExecutor(new ManualClock())
    const b = batcher(exec, { maxBatchSize: 1, maxQueueDelayMs: 0 })
    const running = b.enqueue(req(1)) // holds the executor
    const late = b.enqueue(req(2), { deadlineMs: 40 })
    const lateState = track(late)
    const patient = b.enqueue(req(3), { deadlineMs: 60_000 })
    await exec.clock.advance(39.9)
    assert.equal(lateState.settled, false, 'not before its deadline')
    await exec.clock.advance(0.1)
    assert.equal(lateState.settled, true, 'answered when its deadline passed')
    const err = await late.then(
      () => assert.fail('expired request was answered'),
      (e: unknown) => e,
    )
    assert.ok(err instanceof DeadlineExceededError)
    assert.equal(err.retriable, false)
    assert.equal(err.code, 'BREAKID_DEADLINE_EXCEEDED')
    assert.match(err.message, /deadline of 40 ms exceeded after 40\.0 ms/)
    assert.equal(b.depth, 1, 'its row left the queue')
    const [first, third] = await releaseUntilSettled(exec, [running, patient])
    assertOwnRows(first!, [1])
    assertOwnRows(third!, [3])
    assert.deepEqual(
      exec.calls.map((c) => c.values),
      [[1], [3]],
      'the expired request never reached the executor',
    )
    assert.equal(b.stats.expired, 1)
  })

  test('defaultDeadlineMs applies to requests that carry none; a non-positive deadline fails at once', async () => {
    const exec = new FakeExecutor(new ManualClock())
    const b = batcher(exec, { mode: 'none', defaultDeadlineMs: 20 })
    const running = b.enqueue(req(1))
    const queued = assert.rejects(b.enqueue(req(2)), DeadlineExceededError)
    await exec.clock.advance(20)
    await queued
    await assert.rejects(b.enqueue(req(3), { deadlineMs: 0 }), DeadlineExceededError)
    const [r] = await releaseUntilSettled(exec, [running])
    assertOwnRows(r!, [1])
    assert.deepEqual(exec.sizes, [1])
    assert.equal(b.stats.expired, 2)
  })

  test('a request taken into a batch before its deadline is answered normally', async () => {
    const exec = new FakeExecutor(new ManualClock())
    const b = batcher(exec, { mode: 'none' })
    const p = b.enqueue(req(7), { deadlineMs: 20 })
    await exec.clock.advance(40) // deadline passes while it computes, not while queued
    const [r] = await releaseUntilSettled(exec, [p])
    assertOwnRows(r!, [7])
    assert.equal(b.stats.expired, 0)
  })
})

test('through the engine: an expired request is answered 504 and the next one 200', async () => {
  const logger = createLogger('silent')
  const clock = new ManualClock()
  const engine = new Engine({
    models: [{ name: 'mlp' }],
    modelCacheDir: fileURLToPath(new URL('../../.cache/models', import.meta.url)),
    logger,
    emitter: new TelemetryEmitter({ producer: new EmbeddedBus().producer(), logger }),
    telemetry: false,
    hwIntervalMs: 3_600_000,
    // one row waits 300 ms for a fuller batch; its deadline is 40 ms
    batching: { mode: 'static', maxBatchSize: 2, maxQueueDelayMs: 300, defaultDeadlineMs: 40, clock },
  })
  await engine.start()
  const app = buildEngineApp(engine)
  try {
    const body = { inputs: toKServeInputs(getModel('mlp').inputGenerator(1, 1)) }
    const post = () =>
      app.inject({
        method: 'POST',
        url: '/v2/models/mlp/infer',
        payload: body,
        headers: { 'content-type': 'application/json' },
      })
    const answer = post()
    await waitFor(() => engine.models.get('mlp')!.batcher.depth === 1, { message: 'the request queued' })
    await clock.advance(40)
    const late = await answer
    assert.equal(late.statusCode, 504, late.body)
    assert.match((late.json() as { error: string }).error, /deadline of 40 ms exceeded/)
    assert.equal(engine.errors.get('BREAKID_DEADLINE_EXCEEDED'), 1)
    assert.equal(engine.models.get('mlp')!.executor.batches, 0, 'never computed')
    // two rows start a batch at once, within the deadline
    const full = await Promise.all(Array.from({ length: 2 }, post))
    assert.deepEqual(
      full.map((r) => r.statusCode),
      [200, 200],
    )
  } finally {
    await app.close()
    await engine.stop()
  }
})

describe('a failing batch', () => {
  test('is run again request by request: only the bad request fails, as bad input', async () => {
    const exec = new FakeExecutor(new ManualClock())
    exec.fails = (values) => values.includes(666)
    const b = batcher(exec, { maxBatchSize: 8, maxQueueDelayMs: 5 })
    const pending = [[1], [666], [2, 3]].map((v) => b.enqueue(req(...v)))
    const [first, bad, third] = await releaseUntilSettled(
      exec,
      pending.map((p) => p.then(...settledAs)),
    )
    assert.deepEqual(exec.sizes, [4, 1, 1, 2], 'the batch, then each request alone')
    assertOwnRows(first!.value!, [1])
    assertOwnRows(third!.value!, [2, 3])
    assert.ok(bad!.error instanceof InvalidInputError, String(bad!.error))
    assert.match(bad!.error.message, /cannot run this request's input: cannot run 666/)
    assert.deepEqual([b.stats.isolatedBatches, b.stats.inputFaults], [1, 1])
    // the batcher keeps serving
    assertOwnRows((await releaseUntilSettled(exec, [b.enqueue(req(5))]))[0]!, [5])
  })

  test('when every request fails alone too, each gets the executor error (a server fault)', async () => {
    const exec = new FakeExecutor(new ManualClock())
    exec.fails = () => true
    const b = batcher(exec, { maxBatchSize: 2, maxQueueDelayMs: 5 })
    const outcomes = await releaseUntilSettled(
      exec,
      [b.enqueue(req(1)), b.enqueue(req(2))].map((p) => p.then(...settledAs)),
    )
    for (const o of outcomes) {
      assert.ok(o.error instanceof Error && !(o.error instanceof InvalidInputError), String(o.error))
    }
    assert.deepEqual(exec.sizes, [2, 1, 1])
    assert.deepEqual([b.stats.isolatedBatches, b.stats.inputFaults], [1, 0])
  })
})

describe('the queue bound', () => {
  for (const mode of ['none', 'static', 'adaptive'] as const) {
    test(`${mode}: past maxQueueRows enqueue rejects with a retriable QueueFullError`, async () => {
      const exec = new FakeExecutor(new ManualClock())
      const b = batcher(exec, { mode, maxBatchSize: 1, maxQueueRows: 3 })
      const running = b.enqueue(req(0)) // in the executor, not in the queue
      const queued = [b.enqueue(req(1, 2)), b.enqueue(req(3))]
      assert.equal(b.depth, 3)
      const err = await b.enqueue(req(4)).then(
        () => assert.fail('accepted past the bound'),
        (e: unknown) => e,
      )
      assert.ok(err instanceof QueueFullError)
      assert.equal(err.retriable, true)
      await assert.rejects(b.enqueue(req(1, 2, 3, 4)), InvalidInputError, 'larger than the whole queue')
      const results = await releaseUntilSettled(exec, [running, ...queued])
      assertOwnRows(results[1]!, [1, 2])
      assert.equal(b.depth, 0)
      assertOwnRows(await releaseUntilSettled(exec, [b.enqueue(req(9))]).then((r) => r[0]!), [9])
    })
  }
})

describe('drain', () => {
  for (const mode of ['static', 'adaptive'] as const) {
    test(`${mode}: drain answers every queued request without waiting out the delay`, async () => {
      const exec = new FakeExecutor(new ManualClock(), () => 1000)
      const b = batcher(exec, { mode, maxBatchSize: 2, maxQueueDelayMs: 60_000, latencyTargetMs: 60_000 })
      const pending = [1, 2, 3, 4, 5].map((v) => b.enqueue(req(v)))
      const t0 = exec.clock.now()
      let drained = false
      const draining = b.drain().then(() => {
        drained = true
      })
      // each batch computes for 1 ms of clock time; the 60 s delay never passes
      await exec.clock.advanceUntil(() => drained)
      await draining
      assert.ok(exec.clock.now() - t0 <= 5, `drained after ${exec.clock.now() - t0} ms of clock time`)
      assert.equal(b.depth, 0)
      const results = await Promise.all(pending)
      for (const [i, r] of results.entries()) assertOwnRows(r, [i + 1])
      assert.ok(exec.sizes.every((n) => n <= 2))
      assert.equal(
        exec.sizes.reduce((x, y) => x + y, 0),
        5,
      )
    })
  }
})

test('invalid options are refused with a clear error', () => {
  const exec = new FakeExecutor(new ManualClock())
  assert.throws(() => batcher(exec, { mode: 'bogus' as 'none' }), /batching mode "bogus"/)
  assert.throws(() => batcher(exec, { preferredBatchSizes: [0] }), /preferredBatchSizes/)
  assert.throws(() => batcher(exec, { latencyTargetMs: 0 }), /latencyTargetMs/)
})
