/**
 * Validation of Open Inference Protocol (KServe v2) JSON inference requests against a model's
 * metadata. Every problem is an InvalidInputError whose message names the tensor and what is wrong,
 * answered with 400.
 */
import { InvalidInputError } from '../core/errors.ts'
import type { ModelMeta } from './models/zoo.ts'
import type { Tensor } from './tensors.ts'
import { binaryInputSlices, decodeBinaryTensor } from './v2-binary.ts'
import type { V2InferRequest, V2RequestTensor } from './v2-types.ts'

/** JSON schema fastify checks before the handler runs (shape of the body, not its semantics). */
export const v2InferBodySchema = {
  type: 'object',
  required: ['inputs'],
  properties: {
    id: { type: 'string' },
    inputs: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        // `data` may be absent: binary tensor data is checked against the header in toTensors
        required: ['name', 'shape', 'datatype'],
        properties: {
          name: { type: 'string' },
          shape: { type: 'array', items: { type: 'integer', minimum: 0 } },
          datatype: { type: 'string' },
          data: { type: 'array' },
          parameters: { type: 'object' },
        },
      },
    },
    outputs: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name'],
        properties: { name: { type: 'string' }, parameters: { type: 'object' } },
      },
    },
    parameters: { type: 'object' },
  },
} as const

function flatten(data: unknown[], out: unknown[] = []): unknown[] {
  for (const v of data) {
    if (Array.isArray(v)) flatten(v, out)
    else out.push(v)
  }
  return out
}

/**
 * The request's inputs as tensors in the model's input order, validated. `binary` is the body after
 * the JSON header (binary tensor extension); inputs with `binary_data_size` take their bytes from it.
 */
export function toTensors(meta: ModelMeta, body: V2InferRequest, maxRows: number, binary?: Buffer): Tensor[] {
  for (const o of body.outputs ?? []) {
    if (!meta.outputs.some((m) => m.name === o.name)) {
      throw new InvalidInputError(
        `unknown output "${o.name}"; model ${meta.name} produces ${meta.outputs.map((m) => m.name).join(', ')}`,
      )
    }
  }
  const slices = binaryInputSlices(body.inputs, binary)
  const byName = new Map(body.inputs.map((t) => [t.name, t]))
  for (const t of body.inputs) {
    if (!meta.inputs.some((i) => i.name === t.name)) {
      throw new InvalidInputError(
        `unexpected input "${t.name}"; model ${meta.name} takes ${meta.inputs.map((i) => i.name).join(', ')}`,
      )
    }
  }
  let rows: number | undefined
  return meta.inputs.map((spec) => {
    const t = byName.get(spec.name)
    if (!t) throw new InvalidInputError(`missing input "${spec.name}"`)
    if (t.datatype !== spec.datatype) {
      throw new InvalidInputError(`input "${t.name}": datatype ${t.datatype}, expected ${spec.datatype}`)
    }
    if (t.shape.length !== spec.shape.length) {
      throw new InvalidInputError(
        `input "${t.name}": shape [${t.shape}] has rank ${t.shape.length}, expected [${spec.shape}]`,
      )
    }
    spec.shape.forEach((d, i) => {
      if (d !== -1 && t.shape[i] !== d) {
        throw new InvalidInputError(`input "${t.name}": shape [${t.shape}] does not match [${spec.shape}]`)
      }
    })
    const n = t.shape[0]!
    if (n < 1 || n > maxRows)
      throw new InvalidInputError(`input "${t.name}": batch ${n} outside 1..${maxRows}`)
    if (rows !== undefined && n !== rows)
      throw new InvalidInputError('inputs disagree on the batch dimension')
    rows = n
    const expected = t.shape.reduce((a, b) => a * b, 1)
    const bytes = slices.get(t.name)
    if (bytes !== undefined) {
      return {
        name: spec.name,
        datatype: spec.datatype,
        shape: t.shape,
        data: decodeBinaryTensor(t.name, spec.datatype, expected, bytes),
      } as Tensor
    }
    if (!Array.isArray(t.data)) {
      throw new InvalidInputError(`input "${t.name}": no "data" and no binary_data_size`)
    }
    const flat = flatten(t.data)
    if (flat.length !== expected) {
      throw new InvalidInputError(
        `input "${t.name}": ${flat.length} values for shape [${t.shape}] (${expected})`,
      )
    }
    if (spec.datatype === 'INT64') {
      const data = new BigInt64Array(expected)
      for (let i = 0; i < expected; i++) {
        const v = flat[i]
        if (typeof v !== 'number' || !Number.isInteger(v)) {
          throw new InvalidInputError(`input "${t.name}": value ${i} is not an integer`)
        }
        data[i] = BigInt(v)
      }
      return { name: spec.name, datatype: 'INT64', shape: t.shape, data }
    }
    const data = new Float32Array(expected)
    for (let i = 0; i < expected; i++) {
      const v = flat[i]
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        throw new InvalidInputError(`input "${t.name}": value ${i} is not a finite number`)
      }
      data[i] = v
    }
    return { name: spec.name, datatype: 'FP32', shape: t.shape, data }
  })
}
