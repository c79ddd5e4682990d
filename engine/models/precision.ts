/**
 * How far a reduced-precision variant of a generated model answers from fp32: both run in
 * onnxruntime (as the executor loads them, from the model cache) on the same test inputs, at the
 * batch sizes the engine forms, and the largest absolute difference of any output value is the
 * deviation reported beside the speed in `breakid experiment`.
 *
 * Batch sizes matter: int8 activations are quantized per tensor at run time, so a row's answer
 * depends on its batch-mates; the deviation is the largest over every batch size measured.
 */
import ort from 'onnxruntime-node'
import { ensureModel, type ModelOptions, type Precision } from './zoo.ts'

/** The test inputs: these generator seeds, at these batch sizes. */
export const DEVIATION_SEEDS: readonly number[] = [0, 1, 2, 3, 4, 5, 6, 7]
export const DEVIATION_BATCH_SIZES: readonly number[] = [1, 8]

export interface PrecisionDeviation {
  model: string
  precision: Precision
  /** output values compared (over every seed, batch size and output) */
  values: number
  /** max |variant − fp32| over those values */
  maxAbs: number
  meanAbs: number
  /** max |fp32| over the same values, for scale */
  maxAbsFp32: number
}

export interface DeviationOptions {
  cacheDir?: string
  seeds?: readonly number[]
  batchSizes?: readonly number[]
}

/** Runs one model file on generated inputs; returns every output tensor's values, in a fixed order. */
export async function runOnTestInputs(
  name: string,
  options: ModelOptions,
  opts: DeviationOptions = {},
): Promise<Float32Array[]> {
  const model = await ensureModel(name, { cacheDir: opts.cacheDir, options })
  const session = await ort.InferenceSession.create(model.path, {
    intraOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  })
  try {
    const outputs: Float32Array[] = []
    for (const batch of opts.batchSizes ?? DEVIATION_BATCH_SIZES) {
      for (const seed of opts.seeds ?? DEVIATION_SEEDS) {
        const feeds = Object.fromEntries(
          model
            .inputGenerator(seed, batch)
            .map((t) => [
              t.name,
              new ort.Tensor(t.datatype === 'FP32' ? 'float32' : 'int64', t.data, t.shape),
            ]),
        )
        const result = await session.run(feeds)
        for (const out of model.meta.outputs) outputs.push(result[out.name]!.data as Float32Array)
      }
    }
    return outputs
  } finally {
    await session.release()
  }
}

/** The deviation of `precision` from fp32 for a model (same name and options otherwise). */
export async function precisionDeviation(
  name: string,
  options: ModelOptions,
  precision: Precision,
  opts: DeviationOptions = {},
): Promise<PrecisionDeviation> {
  const reference = await runOnTestInputs(name, { ...options, precision: 'fp32' }, opts)
  const variant = await runOnTestInputs(name, { ...options, precision }, opts)
  let values = 0
  let maxAbs = 0
  let sumAbs = 0
  let maxAbsFp32 = 0
  for (let t = 0; t < reference.length; t++) {
    const a = reference[t]!
    const b = variant[t]!
    for (let i = 0; i < a.length; i++) {
      const d = Math.abs(a[i]! - b[i]!)
      values++
      sumAbs += d
      maxAbs = Math.max(maxAbs, d)
      maxAbsFp32 = Math.max(maxAbsFp32, Math.abs(a[i]!))
    }
  }
  return { model: name, precision, values, maxAbs, meanAbs: values > 0 ? sumAbs / values : 0, maxAbsFp32 }
}
