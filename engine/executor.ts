/**
 * Runs one model on onnxruntime-node. Batches run one at a time per model — the way one
 * accelerator stream executes — so "time inside model execution / wall time" is the executor's busy
 * fraction, the accelerator-busy signal on any execution provider.
 */
import * as ort from 'onnxruntime-node'
import type { ModelMeta } from './models/zoo.ts'
import type { Tensor } from './tensors.ts'

export interface ExecutorOptions {
  /** onnxruntime intra-op threads. Default 1: on small hosts the event loop needs the other cores. */
  intraOpThreads?: number
  /** 'cpu' (default) or 'cuda' where onnxruntime-node was installed with CUDA (see README) */
  executionProvider?: 'cpu' | 'cuda'
}

export class ModelExecutor {
  /** µs spent inside session.run since start */
  busyUs = 0
  batches = 0

  private constructor(
    readonly meta: ModelMeta,
    readonly device: string,
    private readonly session: ort.InferenceSession,
  ) {}

  static async load(path: string, meta: ModelMeta, opts: ExecutorOptions = {}): Promise<ModelExecutor> {
    const provider = opts.executionProvider ?? 'cpu'
    const session = await ort.InferenceSession.create(path, {
      executionProviders: [provider],
      intraOpNumThreads: opts.intraOpThreads ?? 1,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
    })
    return new ModelExecutor(meta, provider, session)
  }

  /**
   * Runs one batch; returns output tensors in metadata order, the compute time in µs and when the
   * compute started (performance.now() ms).
   *
   * onnxruntime-node runs a session synchronously on the event loop, deferred by a setImmediate. Timed
   * from the call, compute would include however long the loop spends on I/O callbacks before that
   * immediate runs (measured: 1.2–3 ms against 0.18 ms of real compute for the cnn on a busy loop),
   * which inflates compute_us, the busy ratio and the adaptive batcher's cost model. So the clock
   * starts in an immediate queued right before the session's own — they run back to back — and stops
   * when the session's promise resolves (a microtask right after its immediate).
   */
  async run(inputs: Tensor[]): Promise<{ outputs: Tensor[]; computeUs: number; startedAt: number }> {
    const feeds: Record<string, ort.Tensor> = {}
    for (const t of inputs)
      feeds[t.name] = new ort.Tensor(t.datatype === 'INT64' ? 'int64' : 'float32', t.data, t.shape)
    let t0 = performance.now()
    setImmediate(() => {
      t0 = performance.now()
    })
    const result = await this.session.run(feeds)
    const computeUs = Math.round((performance.now() - t0) * 1000)
    this.busyUs += computeUs
    this.batches++
    const outputs = this.meta.outputs.map((o) => {
      const r = result[o.name]!
      return {
        name: o.name,
        datatype: o.datatype,
        shape: r.dims.map(Number),
        data: r.data as Float32Array,
      }
    })
    return { outputs, computeUs, startedAt: t0 }
  }

  async close(): Promise<void> {
    await this.session.release()
  }
}
