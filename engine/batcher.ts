/**
 * Dynamic batcher (Triton's parameters) per model, in one of three modes:
 *
 * - `none`: every request runs as its own batch, in arrival order, without waiting.
 * - `static` (default; Triton's dynamic batcher): a batch starts when `maxBatchSize` rows wait, as
 *   soon as a prefix of the queue adds up to one of `preferredBatchSizes` (the largest such), or when
 *   the oldest request has waited `maxQueueDelayMs`.
 * - `adaptive`: the queue delay is chosen per batch from the observed arrival rate and a fitted cost
 *   model `compute(n) = a + b·n` so that the batch grows to the size the arrival rate needs (the
 *   executor keeps up) without the expected queue wait + compute exceeding `latencyTargetMs`. The
 *   executor's thread is the event loop (onnxruntime-node computes there), so the share of the loop
 *   busy with other work (HTTP, parsing) counts against it: a loop near saturation asks for fuller
 *   batches even when compute alone is cheap. At low load that size is one request and nothing waits;
 *   under saturation batches grow to the largest size whose compute fits the target (at most
 *   `maxBatchSize`).
 *
 * In every mode one batch runs at a time per model (the executor is one stream), and a batch takes
 * requests whole, in arrival order. The queue is bounded: when `maxQueueRows` rows are waiting,
 * `enqueue` rejects with QueueFullError (answered 429 with Retry-After) instead of growing without
 * limit. A request may carry a deadline; if it expires while queued it is rejected with
 * DeadlineExceededError (answered 504) and never computed. A batch that fails is run again request
 * by request, so one bad request fails alone and its batch-mates are answered.
 */
import { type Clock, systemClock, type Timer } from '../core/clock.ts'
import { BreakidError, InvalidInputError } from '../core/errors.ts'
import type { ModelExecutor } from './executor.ts'
import { concatRows, type Tensor } from './tensors.ts'

export class QueueFullError extends BreakidError {
  constructor(model: string, rows: number) {
    super(`model ${model}: queue full (${rows} rows waiting)`, {
      code: 'BREAKID_QUEUE_FULL',
    })
  }
}

/**
 * The request's own deadline passed while it waited in the queue; it was never computed. Not
 * retriable: the deadline is the client's and has already passed — resending the same request with the
 * same budget would only add load to a server that could not meet it (the client may decide to retry
 * with a new deadline). Answered 504 (the server did not answer in the time the client allowed).
 */
export class DeadlineExceededError extends BreakidError {
  constructor(model: string, deadlineMs: number, waitedMs: number) {
    super(
      `model ${model}: deadline of ${deadlineMs} ms exceeded after ${waitedMs.toFixed(1)} ms in the queue`,
      { code: 'BREAKID_DEADLINE_EXCEEDED' },
    )
  }
}

export interface BatchResult {
  /** this request's rows of every output */
  outputs: Tensor[]
  batchId: string
  batchSize: number
  queueWaitUs: number
  computeUs: number
}

export type BatchingMode = 'none' | 'static' | 'adaptive'

/** adaptive: time constant of the arrival-rate estimate, ms (how fast it follows a change in load) */
const RATE_WINDOW_MS = 100
/** adaptive: the event loop's load is re-measured over windows at least this long, ms */
const LOOP_WINDOW_MS = 250
export const BATCHING_MODES: readonly BatchingMode[] = ['none', 'static', 'adaptive']

/** `--batching` → a mode, or an error naming the choices */
export function parseBatchingMode(value: string): BatchingMode {
  const mode = BATCHING_MODES.find((m) => m === value)
  if (!mode) throw new InvalidInputError(`--batching: "${value}" is not one of ${BATCHING_MODES.join(', ')}`)
  return mode
}

export interface BatcherOptions {
  /** default 'static' */
  mode?: BatchingMode
  /** most rows per batch. Default 8. */
  maxBatchSize?: number
  /**
   * static: the longest the oldest request waits for a fuller batch (default 2 ms). adaptive: the
   * upper bound of the tuned delay (default: no bound beyond `latencyTargetMs`).
   */
  maxQueueDelayMs?: number
  /** static: start a batch as soon as one of these sizes (rows) can be formed. Default none. */
  preferredBatchSizes?: number[]
  /** most rows waiting; beyond, enqueue rejects with QueueFullError. Default 4096. */
  maxQueueRows?: number
  /** adaptive: budget for queue wait + compute of a request, ms. Default 50. */
  latencyTargetMs?: number
  /** deadline of requests that carry none, ms from enqueue (Triton's default queue timeout). Default none. */
  defaultDeadlineMs?: number
  /**
   * Replaces `maxBatchSize` while it returns a number (a fault that forces small batches); read every
   * time a batch is formed.
   */
  maxBatchSizeOverride?: () => number | undefined
  /** time, timers and the event loop's load; default the system clock (tests step a manual one) */
  clock?: Clock
}

export interface EnqueueOptions {
  /** ms from now; expired while queued → DeadlineExceededError, never computed */
  deadlineMs?: number
}

/** What the batcher has observed and decided; for /metrics, logs and tests. */
export interface BatcherStats {
  mode: BatchingMode
  batches: number
  /** requests rejected because their deadline passed in the queue */
  expired: number
  /** batches that failed and were run again request by request, so only the bad request failed */
  isolatedBatches: number
  /** requests that failed alone while a batch-mate succeeded alone (answered 400) */
  inputFaults: number
  /** adaptive: times the executor was left idle to let a batch fill */
  waits: number
  /** adaptive: the last queue delay chosen, ms (0 = ran at once) */
  lastDelayMs: number
  /** adaptive: the last target batch size, rows */
  lastTargetRows: number
  /** adaptive: observed arrival rate, rows per second */
  arrivalRowsPerSec: number
  /** adaptive: fitted compute cost, µs: fixedUs + perRowUs · rows */
  cost: { fixedUs: number; perRowUs: number }
  /**
   * adaptive: share of the event loop's time spent outside the model (HTTP, parsing, serialization),
   * 0..1 — the thread onnxruntime-node runs sessions on, so that work competes with compute
   */
  loopHostShare: number
}

interface Pending {
  inputs: Tensor[]
  rows: number
  enqueuedAt: number
  deadlineMs?: number
  deadlineTimer?: Timer
  resolve: (r: BatchResult) => void
  reject: (e: unknown) => void
}

/**
 * compute_us ≈ a + b·rows by least squares over recent batches, each observation's weight decaying
 * by `decay` per newer one, so the fit follows a drifting machine.
 */
class CostModel {
  private w = 0
  private sx = 0
  private sy = 0
  private sxx = 0
  private sxy = 0
  constructor(private readonly decay = 0.98) {}

  observe(rows: number, us: number): void {
    const d = this.decay
    this.w = this.w * d + 1
    this.sx = this.sx * d + rows
    this.sy = this.sy * d + us
    this.sxx = this.sxx * d + rows * rows
    this.sxy = this.sxy * d + rows * us
  }

  /**
   * { a, b } in µs. `reliable`: the batches span several sizes and fit the affine model. Without
   * that (one size seen so far, or a fit with a < 0 or b < 0 — e.g. on a contended host, where the
   * big batches are exactly those formed while everything ran slow), half the mean cost is assumed
   * fixed: an uninformed prior that lets batching prove itself.
   */
  fit(): { a: number; b: number; reliable: boolean } {
    if (this.w === 0) return { a: 0, b: 0, reliable: false }
    const mx = this.sx / this.w
    const my = this.sy / this.w
    const varX = this.sxx / this.w - mx * mx
    if (varX > 0.25) {
      const b = (this.sxy / this.w - mx * my) / varX
      const a = my - b * mx
      if (a >= 0 && b >= 0) return { a, b, reliable: true }
    }
    return { a: my / 2, b: my / 2 / mx, reliable: false }
  }
}

export class DynamicBatcher {
  private queue: Pending[] = []
  private queuedRows = 0
  private running = false
  /** the batch in the executor, so drain can wait for it */
  private current: Promise<void> | undefined
  private timer: Timer | undefined
  /** adaptive: a batch starts early once this many rows wait (the timer covers the rest) */
  private targetRows = Number.POSITIVE_INFINITY
  private batchSeq = 0
  private expired = 0
  private waits = 0
  /** batches that failed and were run again request by request */
  private isolatedBatches = 0
  /** requests that failed alone while a batch-mate succeeded: answered as bad input */
  private inputFaults = 0
  private lastDelayMs = 0
  private lastTargetRows = 1
  private readonly cost = new CostModel()
  /** adaptive: compute µs so far, and the window the event loop's load is measured over */
  private computeUsTotal = 0
  private loopWindow: { at: number; activeMs: number; idleMs: number; computeUs: number } | undefined
  /** adaptive: smoothed share of the event loop's time busy outside compute */
  private loopHostShare = 0
  private loopMeasured = false
  /**
   * adaptive: rows arrived, each decaying with time constant RATE_WINDOW_MS, so rows / window is the
   * recent arrival rate. A count over time, not an average of gaps: requests reach the queue in
   * bunches (the event loop parses several bodies back to back), and near-zero gaps inside a bunch
   * would make the rate look many times higher than it is.
   */
  private decayedRows = 0
  private lastArrivalAt: number | undefined
  readonly mode: BatchingMode
  readonly maxBatchSize: number
  readonly maxQueueDelayMs: number
  readonly maxQueueRows: number
  readonly preferredBatchSizes: readonly number[]
  readonly latencyTargetMs: number
  readonly defaultDeadlineMs: number | undefined
  private readonly maxBatchSizeOverride: (() => number | undefined) | undefined
  private readonly clock: Clock

  constructor(
    private readonly executor: ModelExecutor,
    private readonly instance: string,
    opts: BatcherOptions = {},
  ) {
    this.mode = opts.mode ?? 'static'
    if (!BATCHING_MODES.includes(this.mode))
      throw new InvalidInputError(`batching mode "${this.mode}" is not one of ${BATCHING_MODES.join(', ')}`)
    this.maxBatchSize = opts.maxBatchSize ?? 8
    this.maxQueueDelayMs = opts.maxQueueDelayMs ?? (this.mode === 'adaptive' ? Number.POSITIVE_INFINITY : 2)
    this.maxQueueRows = opts.maxQueueRows ?? 4096
    this.preferredBatchSizes = [...(opts.preferredBatchSizes ?? [])].sort((x, y) => y - x)
    this.latencyTargetMs = opts.latencyTargetMs ?? 50
    this.defaultDeadlineMs = opts.defaultDeadlineMs
    this.maxBatchSizeOverride = opts.maxBatchSizeOverride
    this.clock = opts.clock ?? systemClock
    for (const [name, v] of [
      ['maxBatchSize', this.maxBatchSize],
      ['maxQueueRows', this.maxQueueRows],
      ...this.preferredBatchSizes.map((p) => ['preferredBatchSizes', p] as const),
    ] as const) {
      if (!Number.isInteger(v) || v < 1)
        throw new InvalidInputError(`${name}: ${v} is not a positive integer`)
    }
    if (!(this.maxQueueDelayMs >= 0))
      throw new InvalidInputError(`maxQueueDelayMs: ${this.maxQueueDelayMs} < 0`)
    if (!(this.latencyTargetMs > 0))
      throw new InvalidInputError(`latencyTargetMs: ${this.latencyTargetMs} ≤ 0`)
  }

  /** rows waiting for the executor */
  get depth(): number {
    return this.queuedRows
  }

  /** requests waiting for the executor (Triton's nv_inference_pending_request_count) */
  get pendingRequests(): number {
    return this.queue.length
  }

  get stats(): BatcherStats {
    const { a, b } = this.cost.fit()
    return {
      mode: this.mode,
      batches: this.batchSeq,
      expired: this.expired,
      isolatedBatches: this.isolatedBatches,
      inputFaults: this.inputFaults,
      waits: this.waits,
      lastDelayMs: this.lastDelayMs,
      lastTargetRows: this.lastTargetRows,
      arrivalRowsPerSec: this.arrivalRowsPerMs() * 1000,
      cost: { fixedUs: a, perRowUs: b },
      loopHostShare: this.loopHostShare,
    }
  }

  /** the max batch size in force now (the override, while it returns one) */
  private maxRows(): number {
    const override = this.maxBatchSizeOverride?.()
    return Math.max(1, Math.floor(override ?? this.maxBatchSize))
  }

  enqueue(inputs: Tensor[], opts: EnqueueOptions = {}): Promise<BatchResult> {
    const rows = inputs[0]?.shape[0] ?? 0
    if (rows > this.maxQueueRows) {
      // retrying cannot help a request larger than the whole queue: a client error, not a 429
      return Promise.reject(
        new InvalidInputError(
          `model ${this.executor.meta.name}: ${rows} rows exceed the queue's ${this.maxQueueRows}`,
        ),
      )
    }
    if (this.queuedRows + rows > this.maxQueueRows) {
      return Promise.reject(new QueueFullError(this.executor.meta.name, this.queuedRows))
    }
    const deadlineMs = opts.deadlineMs ?? this.defaultDeadlineMs
    if (deadlineMs !== undefined && !(deadlineMs > 0)) {
      this.expired++
      return Promise.reject(new DeadlineExceededError(this.executor.meta.name, deadlineMs, 0))
    }
    const now = this.clock.now()
    this.observeArrival(now, rows)
    return new Promise((resolve, reject) => {
      const p: Pending = { inputs, rows, enqueuedAt: now, deadlineMs, resolve, reject }
      if (deadlineMs !== undefined) p.deadlineTimer = this.clock.timeout(deadlineMs, () => this.expire(p))
      this.queue.push(p)
      this.queuedRows += rows
      this.schedule()
    })
  }

  private expire(p: Pending): void {
    const i = this.queue.indexOf(p)
    if (i < 0) return // already taken into a batch
    this.queue.splice(i, 1)
    this.queuedRows -= p.rows
    this.expired++
    p.reject(
      new DeadlineExceededError(this.executor.meta.name, p.deadlineMs ?? 0, this.clock.now() - p.enqueuedAt),
    )
    // the oldest request may have gone: the delay counts from the new oldest
    this.clearTimer()
    this.schedule()
  }

  private observeArrival(now: number, rows: number): void {
    if (this.mode !== 'adaptive') return
    this.decayedRows = this.decayedRowsAt(now) + rows
    this.lastArrivalAt = now
  }

  private decayedRowsAt(now: number): number {
    if (this.lastArrivalAt === undefined) return 0
    return this.decayedRows * Math.exp(-(now - this.lastArrivalAt) / RATE_WINDOW_MS)
  }

  /** recent arrivals, rows per ms; decays during a silence, so a load that stopped stops waits */
  private arrivalRowsPerMs(now = this.clock.now()): number {
    return this.decayedRowsAt(now) / RATE_WINDOW_MS
  }

  private schedule(): void {
    if (this.running || this.queue.length === 0) return
    if (this.mode === 'none') {
      void this.runBatch(1)
      return
    }
    const max = this.mode === 'adaptive' ? this.adaptiveMaxRows() : this.maxRows()
    if (this.queuedRows >= max) {
      this.clearTimer()
      void this.runBatch(max)
      return
    }
    if (this.mode === 'static') this.scheduleStatic(max)
    else this.scheduleAdaptive(max)
  }

  private scheduleStatic(max: number): void {
    // Triton: the largest preferred size that a prefix of the queue forms exactly starts at once
    if (this.preferredBatchSizes.length > 0) {
      const prefixes = new Set<number>()
      let sum = 0
      for (const p of this.queue) {
        sum += p.rows
        if (sum > max) break
        prefixes.add(sum)
      }
      const preferred = this.preferredBatchSizes.find((s) => s <= max && prefixes.has(s))
      if (preferred !== undefined) {
        this.clearTimer()
        void this.runBatch(preferred)
        return
      }
    }
    this.armTimer(this.maxQueueDelayMs, max)
  }

  /** adaptive: the largest batch whose expected compute fits the latency target, within the max */
  private adaptiveMaxRows(): number {
    const max = this.maxRows()
    const { a, b, reliable } = this.cost.fit()
    // a cap from an unreliable fit could starve a saturated executor of the batches it needs
    if (!reliable || b <= 0) return max
    const byTarget = Math.floor((this.latencyTargetMs * 1000 - a) / b)
    return Math.max(1, Math.min(max, byTarget))
  }

  /**
   * adaptive: re-measures the share of the event loop's time busy outside compute. onnxruntime-node
   * runs every session synchronously on the event loop, so the executor shares its thread with HTTP,
   * parsing and serialization: once that thread is saturated, a smaller fixed cost per batch is
   * throughput even though the executor alone looks far from busy. (Work of other models on the same
   * loop counts here too, which only errs towards batching under load.) A share over a window, not a
   * cost per row: multiplied by a momentary arrival rate, a per-row cost would turn every burst at low
   * load into a wait.
   */
  private measureLoop(now: number): void {
    const w = this.loopWindow
    if (!w) {
      this.loopWindow = { at: now, ...this.clock.eventLoop(), computeUs: this.computeUsTotal }
      return
    }
    // a window spanning a quiet spell measures it as quiet: a busy past does not make a calm present wait
    if (now - w.at < LOOP_WINDOW_MS) return
    const loop = this.clock.eventLoop()
    const active = loop.activeMs - w.activeMs
    const idle = loop.idleMs - w.idleMs
    const hostMs = Math.max(0, active - (this.computeUsTotal - w.computeUs) / 1000)
    const share = Math.min(1, hostMs / Math.max(1, active + idle))
    this.loopHostShare = this.loopMeasured ? 0.5 * this.loopHostShare + 0.5 * share : share
    this.loopMeasured = true
    this.loopWindow = { at: now, ...loop, computeUs: this.computeUsTotal }
  }

  private scheduleAdaptive(max: number): void {
    const now = this.clock.now()
    const waitedMs = now - this.queue[0]!.enqueuedAt
    const lambda = this.arrivalRowsPerMs(now) // rows per ms
    const { a: aUs, b: bUs } = this.cost.fit()
    const a = aUs / 1000
    const b = bUs / 1000
    this.measureLoop(now)
    // The batch size at which the thread keeps up with the arrivals: of its time, the share u goes to
    // work outside the model and λ·(a/n + b) to compute, so u + λ·(a/n + b) ≤ 1, n ≥ a·λ/(1 − u − b·λ).
    // 25 % headroom absorbs bursts; past capacity (u + b·λ ≥ 1) the most allowed. With u = 0 (an idle
    // loop) this is the executor's own balance.
    const free = 1 - this.loopHostShare - b * lambda
    const need = free <= 0 ? max : Math.ceil((1.25 * a * lambda) / free)
    const target = Math.max(1, Math.min(max, need))
    this.lastTargetRows = target
    if (target <= this.queuedRows || lambda <= 0) {
      this.runNow(max)
      return
    }
    const fillMs = (target - this.queuedRows) / lambda
    const budgetMs = this.latencyTargetMs - (a + b * target) - waitedMs
    const delayMs = Math.min(fillMs, budgetMs, this.maxQueueDelayMs - waitedMs)
    // no request is likely to arrive within the delay: waiting would only add latency
    if (delayMs <= 0 || delayMs * lambda < 1) {
      this.runNow(max)
      return
    }
    if (!this.timer) this.waits++
    this.lastDelayMs = delayMs
    this.targetRows = target
    this.armTimer(delayMs + waitedMs, max)
  }

  private runNow(max: number): void {
    this.lastDelayMs = 0
    this.clearTimer()
    void this.runBatch(max)
  }

  /** a batch of up to `max` rows once the oldest request has waited `delayMs` (one timer at a time) */
  private armTimer(delayMs: number, max: number): void {
    if (this.mode === 'adaptive' && this.queuedRows >= this.targetRows) {
      this.runNow(max)
      return
    }
    if (this.timer) return
    const waited = this.clock.now() - this.queue[0]!.enqueuedAt
    this.timer = this.clock.timeout(Math.max(0, delayMs - waited), () => {
      this.timer = undefined
      if (!this.running && this.queue.length > 0) void this.runBatch(this.currentMax())
    })
  }

  private currentMax(): number {
    if (this.mode === 'none') return 1
    return this.mode === 'adaptive' ? this.adaptiveMaxRows() : this.maxRows()
  }

  private clearTimer(): void {
    this.timer?.cancel()
    this.timer = undefined
    this.targetRows = Number.POSITIVE_INFINITY
  }

  /** Runs the longest prefix of the queue within `maxRows` (at least one request). */
  private runBatch(maxRows: number): Promise<void> {
    this.current = this.executeBatch(maxRows)
    return this.current
  }

  private async executeBatch(maxRows: number): Promise<void> {
    this.running = true
    this.clearTimer()
    const batch: Pending[] = []
    let rows = 0
    const one = this.mode === 'none'
    while (this.queue.length > 0 && (batch.length === 0 || (!one && rows + this.queue[0]!.rows <= maxRows))) {
      const p = this.queue.shift()!
      p.deadlineTimer?.cancel()
      batch.push(p)
      rows += p.rows
    }
    this.queuedRows -= rows
    try {
      await this.compute(batch, rows)
    } catch (err) {
      if (batch.length === 1) batch[0]!.reject(err)
      else await this.isolate(batch)
    } finally {
      this.running = false
      this.schedule()
    }
  }

  /** Runs `batch` as one execution and answers each request its own rows; throws what the executor threw. */
  private async compute(batch: Pending[], rows: number): Promise<void> {
    const batchId = `${this.instance}-${this.executor.meta.name}-${++this.batchSeq}`
    // the wait for the executor ends when compute starts (`computeStartedAt`), not when it is called
    const {
      outputs,
      computeUs,
      startedAt: computeStartedAt,
    } = await this.executor.run(
      concatRows(
        this.executor.meta,
        batch.map((p) => p.inputs),
      ),
    )
    this.cost.observe(rows, computeUs)
    this.computeUsTotal += computeUs
    let row = 0
    for (const p of batch) {
      const mine = outputs.map((o) => {
        const size = o.data.length / rows
        return {
          ...o,
          shape: [p.rows, ...o.shape.slice(1)],
          data: o.data.subarray(row * size, (row + p.rows) * size),
        } as Tensor
      })
      row += p.rows
      p.resolve({
        outputs: mine,
        batchId,
        batchSize: rows,
        queueWaitUs: Math.round((computeStartedAt - p.enqueuedAt) * 1000),
        computeUs,
      })
    }
  }

  /**
   * A batch of several requests failed: one bad request must not fail its batch-mates, so each runs
   * alone (one after another: the executor is one stream). A request that fails alone while a
   * batch-mate succeeds alone was failed by its own input: InvalidInputError (400). When every one
   * fails alone, the model or the executor is at fault and each gets the error it caused.
   */
  private async isolate(batch: Pending[]): Promise<void> {
    this.isolatedBatches++
    const failed: { p: Pending; err: unknown }[] = []
    for (const p of batch) {
      try {
        await this.compute([p], p.rows)
      } catch (err) {
        failed.push({ p, err })
      }
    }
    const someSucceeded = failed.length < batch.length
    for (const { p, err } of failed) {
      if (someSucceeded && !(err instanceof BreakidError)) {
        this.inputFaults++
        p.reject(
          new InvalidInputError(
            `model ${this.executor.meta.name} cannot run this request's input: ${(err as Error).message}`,
            err,
          ),
        )
      } else p.reject(err)
    }
  }

  /** Runs what is queued without waiting for fuller batches, until every request is answered (shutdown). */
  async drain(): Promise<void> {
    while (this.queue.length > 0 || this.running) {
      if (!this.running) {
        this.clearTimer()
        void this.runBatch(this.currentMax())
      }
      await this.current
    }
  }
}
