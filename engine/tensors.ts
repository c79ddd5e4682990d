/**
 * Request tensors in the engine's internal form: typed arrays with a leading batch dimension, one
 * entry per model input, validated against the model's metadata.
 */
import type { ModelMeta, TensorMeta } from './models/zoo.ts'

export type TensorData = Float32Array | BigInt64Array

export interface Tensor {
  name: string
  datatype: TensorMeta['datatype']
  /** full shape, batch first */
  shape: number[]
  data: TensorData
}

/** elements in one batch row of a tensor of this metadata */
export function rowSize(meta: TensorMeta): number {
  return meta.shape.slice(1).reduce((a, b) => a * b, 1)
}

/** Concatenates the rows of several requests' tensors, input by input. */
export function concatRows(meta: ModelMeta, parts: Tensor[][]): Tensor[] {
  return meta.inputs.map((input, i) => {
    const rows = parts.reduce((n, p) => n + p[i]!.shape[0]!, 0)
    const size = rowSize(input)
    const data = input.datatype === 'INT64' ? new BigInt64Array(rows * size) : new Float32Array(rows * size)
    let offset = 0
    for (const p of parts) {
      const t = p[i]!
      ;(data as Float32Array).set(t.data as Float32Array, offset)
      offset += t.data.length
    }
    return { name: input.name, datatype: input.datatype, shape: [rows, ...input.shape.slice(1)], data }
  })
}

/** Mean and standard deviation of numeric data (input/output summaries for drift detection). */
export function summarize(data: TensorData): { mean: number; std: number } {
  const n = data.length
  if (n === 0) return { mean: 0, std: 0 }
  let sum = 0
  let sq = 0
  for (let i = 0; i < n; i++) {
    const v = Number(data[i])
    sum += v
    sq += v * v
  }
  const mean = sum / n
  return { mean, std: Math.sqrt(Math.max(0, sq / n - mean * mean)) }
}
