/**
 * The preprocessing stage: a fixed pool of `workers` slots, like a data loader with N workers. The
 * pool is what makes data starvation real: when each item takes longer (a slow feature store, an
 * expensive decode), the pool's throughput falls below the arrival rate, requests pile up in front of
 * it and the executor behind it runs dry. Waiting for a slot counts as preprocessing time.
 *
 * Bounded: at most `maxWaiting` requests wait for a slot; more are rejected (PreprocessBacklogError,
 * answered 429) rather than queued without limit.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { BreakidError } from '../core/errors.ts'
import type { FaultSchedule } from './faults.ts'
import { summarize, type Tensor } from './tensors.ts'

export class PreprocessBacklogError extends BreakidError {
  constructor(waiting: number) {
    super(`preprocessing backlog full (${waiting} requests waiting)`, {
      code: 'BREAKID_PREPROCESS_BACKLOG',
    })
  }
}

export interface PreprocessOptions {
  workers?: number
  maxWaiting?: number
}

export class PreprocessPool {
  private busy = 0
  private readonly waiting: (() => void)[] = []
  readonly workers: number
  readonly maxWaiting: number

  constructor(
    private readonly faults: FaultSchedule,
    opts: PreprocessOptions = {},
  ) {
    this.workers = opts.workers ?? 4
    this.maxWaiting = opts.maxWaiting ?? 10_000
  }

  get backlog(): number {
    return this.waiting.length
  }

  /**
   * Returns the preprocessed inputs (what the model runs on) and their summary statistics (for drift).
   * A stage_stall of preprocess waits before taking a worker, so it slows this request only, while
   * data_starvation holds the worker and so throttles the whole pool.
   */
  async run(inputs: Tensor[]): Promise<{ mean: number; std: number; inputs: Tensor[] }> {
    // awaited only when there is a wait: an await of nothing yields to other requests (faults.ts)
    const stalled = this.faults.stall('preprocess')
    if (stalled) await stalled
    if (this.busy >= this.workers) {
      if (this.waiting.length >= this.maxWaiting) throw new PreprocessBacklogError(this.waiting.length)
      await new Promise<void>((resolve) => this.waiting.push(resolve))
    } else {
      this.busy++
    }
    try {
      const starvation = this.faults.active('data_starvation')
      if (starvation) await sleep(starvation.delayMs ?? 50)
      const prepared = this.faults.driftInputs(inputs)
      return { ...summarize(prepared[0]!.data), inputs: prepared }
    } finally {
      const next = this.waiting.shift()
      if (next) next()
      else this.busy--
    }
  }
}
