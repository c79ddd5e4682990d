/**
 * Validation of Open Inference Protocol (KServe v2) JSON inference requests against a model's
 * metadata. Every problem is an InvalidInputError whose message names the tensor and what is wrong,
 * answered with 400.
 */
import { InvalidInputError } from '../core/errors.ts'
import { inputRange, type ModelMeta } from './models/zoo.ts'
import type { Tensor, TensorData } from './tensors.ts'
import { binaryInputSlices, decodeBinaryTensor } from './v2-binary.ts'
import { outOfRange } from './v2-datatypes.ts'
import type { V2InferRequest } from './v2-types.ts'

/**
 * Longest request `id`, characters. The id travels into the span (and ClickHouse, and Kafka, where
 * a 2 MiB id once made a span the broker refused); a UUID is 36.
 */
export const MAX_ID_LENGTH = 256
/** Longest tensor name, datatype or string parameter value, characters. */
export const MAX_NAME_LENGTH = 256
/** Most entries in a `parameters` object; most inputs (and outputs) a request names. */
export const MAX_PARAMETERS = 64
export const MAX_TENSORS = 64
/** Most levels of nested `data` arrays: a tensor's rank (the zoo's are at most 4) with room to spare. */
export const MAX_DATA_DEPTH = 32

/** `parameters`: protocol parameter values are strings, numbers or booleans, never nested. */
const parametersSchema = {
  type: 'object',
  maxProperties: MAX_PARAMETERS,
  additionalProperties: { type: ['string', 'number', 'boolean'], maxLength: MAX_NAME_LENGTH },
} as const

/**
 * JSON schema fastify checks before the handler runs (shape of the body, not its semantics). Every
 * string is bounded, so a request cannot carry a huge value into a span; fastify answers 400 naming
 * the field and the limit.
 */
export const v2InferBodySchema = {
  type: 'object',
  required: ['inputs'],
  properties: {
    id: { type: 'string', maxLength: MAX_ID_LENGTH },
    inputs: {
      type: 'array',
      minItems: 1,
      maxItems: MAX_TENSORS,
      items: {
        type: 'object',
        // `data` may be absent: binary tensor data is checked against the header in toTensors
        required: ['name', 'shape', 'datatype'],
        properties: {
          name: { type: 'string', maxLength: MAX_NAME_LENGTH },
          shape: { type: 'array', maxItems: MAX_DATA_DEPTH, items: { type: 'integer', minimum: 0 } },
          datatype: { type: 'string', maxLength: MAX_NAME_LENGTH },
          data: { type: 'array' },
          parameters: parametersSchema,
        },
      },
    },
    outputs: {
      type: 'array',
      maxItems: MAX_TENSORS,
      items: {
        type: 'object',
        required: ['name'],
        properties: { name: { type: 'string', maxLength: MAX_NAME_LENGTH }, parameters: parametersSchema },
      },
    },
    parameters: parametersSchema,
  },
} as const

/**
 * The values of nested `data` arrays in row-major order. Iterative, with the depth bounded: a body of
 * 10 000 nested arrays is a 400 here, not a stack overflow.
 */
function flatten(input: string, data: unknown[]): unknown[] {
  const out: unknown[] = []
  const arrays: unknown[][] = [data]
  const next: number[] = [0]
  while (arrays.length > 0) {
    const top = arrays.length - 1
    const array = arrays[top]!
    const i = next[top]!
    if (i === array.length) {
      arrays.pop()
      next.pop()
      continue
    }
    next[top] = i + 1
    const v = array[i]
    if (!Array.isArray(v)) out.push(v)
    else if (arrays.length === MAX_DATA_DEPTH) {
      throw new InvalidInputError(`input "${input}": "data" is nested deeper than ${MAX_DATA_DEPTH} levels`)
    } else {
      arrays.push(v)
      next.push(0)
    }
  }
  return out
}

/** The model's own range for an input (token ids within the vocabulary), checked per request. */
function checkModelRange(model: string, input: string, data: TensorData): void {
  const range = inputRange(model, input)
  if (!range) return
  for (let i = 0; i < data.length; i++) {
    const v = Number(data[i])
    if (v < range.min || v > range.max) {
      throw new InvalidInputError(
        `input "${input}": value ${i} (${v}) is outside ${range.min}..${range.max} (${model}: ${range.what})`,
      )
    }
  }
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
      const data = decodeBinaryTensor(t.name, spec.datatype, expected, bytes)
      checkModelRange(meta.name, t.name, data)
      return { name: spec.name, datatype: spec.datatype, shape: t.shape, data } as Tensor
    }
    if (!Array.isArray(t.data)) {
      throw new InvalidInputError(`input "${t.name}": no "data" and no binary_data_size`)
    }
    const flat = flatten(t.name, t.data)
    if (flat.length !== expected) {
      throw new InvalidInputError(
        `input "${t.name}": ${flat.length} values for shape [${t.shape}] (${expected})`,
      )
    }
    const problem = outOfRange(t.name, spec.datatype, flat)
    if (problem !== undefined) throw new InvalidInputError(problem)
    let tensor: Tensor
    if (spec.datatype === 'INT64') {
      const data = new BigInt64Array(expected)
      for (let i = 0; i < expected; i++) data[i] = BigInt(flat[i] as number)
      tensor = { name: spec.name, datatype: 'INT64', shape: t.shape, data }
    } else {
      tensor = {
        name: spec.name,
        datatype: 'FP32',
        shape: t.shape,
        data: Float32Array.from(flat as number[]),
      }
    }
    checkModelRange(meta.name, t.name, tensor.data)
    return tensor
  })
}
