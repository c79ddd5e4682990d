/**
 * Dynamic batcher (Triton's parameters): requests queue per model; a batch starts when
 * `maxBatchSize` rows are waiting or the oldest has waited `maxQueueDelayMs`, and only one batch runs
 * at a time. The queue is bounded: when `maxQueueRows` rows are waiting, `enqueue` rejects with
 * QueueFullError (answered 429 with Retry-After) instead of growing without limit.
 */
import { BreakidError, InvalidInputError } from '../ingest/errors.ts'
import type { ModelExecutor } from './executor.ts'
import { concatRows, type Tensor } from './tensors.ts'

export class QueueFullError extends BreakidError {
  constructor(model: string, rows: number) {
    super(`model ${model}: queue full (${rows} rows waiting)`, {
      code: 'BREAKID_QUEUE_FULL',
      retriable: true,
    })
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

export interface BatcherOptions {
  maxBatchSize?: number
  maxQueueDelayMs?: number
  maxQueueRows?: number
}

interface Pending {
  inputs: Tensor[]
  rows: number
  enqueuedAt: number
  resolve: (r: BatchResult) => void
  reject: (e: unknown) => void
}

export class DynamicBatcher {
  private queue: Pending[] = []
  private queuedRows = 0
  private running = false
  private timer: NodeJS.Timeout | undefined
  private batchSeq = 0
  readonly maxBatchSize: number
  readonly maxQueueDelayMs: number
  readonly maxQueueRows: number

  constructor(
    private readonly executor: ModelExecutor,
    private readonly instance: string,
    opts: BatcherOptions = {},
  ) {
    this.maxBatchSize = opts.maxBatchSize ?? 8
    this.maxQueueDelayMs = opts.maxQueueDelayMs ?? 2
    this.maxQueueRows = opts.maxQueueRows ?? 4096
  }

  /** rows waiting for the executor */
  get depth(): number {
    return this.queuedRows
  }

  enqueue(inputs: Tensor[]): Promise<BatchResult> {
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
    return new Promise((resolve, reject) => {
      this.queue.push({ inputs, rows, enqueuedAt: performance.now(), resolve, reject })
      this.queuedRows += rows
      this.schedule()
    })
  }

  private schedule(): void {
    if (this.running || this.queue.length === 0) return
    if (this.queuedRows >= this.maxBatchSize) {
      this.clearTimer()
      void this.runBatch()
      return
    }
    if (!this.timer) {
      const waited = performance.now() - this.queue[0]!.enqueuedAt
      this.timer = setTimeout(
        () => {
          this.timer = undefined
          if (!this.running) void this.runBatch()
        },
        Math.max(0, this.maxQueueDelayMs - waited),
      )
    }
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
  }

  private async runBatch(): Promise<void> {
    this.running = true
    const batch: Pending[] = []
    let rows = 0
    while (this.queue.length > 0 && (batch.length === 0 || rows + this.queue[0]!.rows <= this.maxBatchSize)) {
      const p = this.queue.shift()!
      batch.push(p)
      rows += p.rows
    }
    this.queuedRows -= rows
    const startedAt = performance.now()
    const batchId = `${this.instance}-${this.executor.meta.name}-${++this.batchSeq}`
    try {
      const { outputs, computeUs } = await this.executor.run(
        concatRows(
          this.executor.meta,
          batch.map((p) => p.inputs),
        ),
      )
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
          queueWaitUs: Math.round((startedAt - p.enqueuedAt) * 1000),
          computeUs,
        })
      }
    } catch (err) {
      for (const p of batch) p.reject(err)
    } finally {
      this.running = false
      this.schedule()
    }
  }

  /** Runs what is queued without waiting for fuller batches, until every request is answered (shutdown). */
  async drain(): Promise<void> {
    while (this.queue.length > 0 || this.running) {
      if (!this.running) {
        this.clearTimer()
        void this.runBatch()
      }
      await new Promise((r) => setTimeout(r, 1))
    }
  }
}
