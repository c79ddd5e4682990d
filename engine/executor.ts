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

  /** Runs one batch; returns output tensors in metadata order and the compute time in µs. */
  async run(inputs: Tensor[]): Promise<{ outputs: Tensor[]; computeUs: number }> {
    const feeds: Record<string, ort.Tensor> = {}
    for (const t of inputs)
      feeds[t.name] = new ort.Tensor(t.datatype === 'INT64' ? 'int64' : 'float32', t.data, t.shape)
    const t0 = performance.now()
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
    return { outputs, computeUs }
  }

  async close(): Promise<void> {
    await this.session.release()
  }
}
