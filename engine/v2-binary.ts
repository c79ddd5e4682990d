/**
 * The Open Inference Protocol's binary tensor data extension (Triton's `binary_tensor_data`): a body
 * whose first `Inference-Header-Content-Length` bytes are the JSON inference header and whose rest is
 * raw little-endian tensor data, one slice per input that carries `parameters.binary_data_size`, in
 * input order. Outputs asked for with `parameters.binary_data` (or the request-level
 * `binary_data_output`) come back the same way: JSON header, then their raw bytes.
 *
 * Every malformed body is an InvalidInputError (400) naming the input and the sizes that disagree.
 */
import { endianness } from 'node:os'
import { InvalidInputError } from '../core/errors.ts'
import type { Tensor, TensorData } from './tensors.ts'
import type { V2InferRequest, V2RequestTensor } from './v2-types.ts'

/** The header naming the JSON part's length, on requests and on binary responses (lower case, as node sees it). */
export const INFERENCE_HEADER_LENGTH = 'inference-header-content-length'
export const BINARY_CONTENT_TYPE = 'application/octet-stream'

const LITTLE_ENDIAN_HOST = endianness() === 'LE'

/** A parse failure of the body itself (400). */
export class BinaryBodyError extends InvalidInputError {
  constructor(message: string) {
    super(message, undefined, 'BREAKID_BINARY_BODY')
  }
}

/** Splits a binary-extension body into its JSON header text and the tensor bytes after it. */
export function splitBinaryBody(body: Buffer, headerLength: string): { json: string; tail: Buffer } {
  const n = /^\d+$/.test(headerLength.trim()) ? Number(headerLength.trim()) : Number.NaN
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new BinaryBodyError(`Inference-Header-Content-Length "${headerLength}" is not a positive integer`)
  }
  if (n > body.length) {
    throw new BinaryBodyError(`Inference-Header-Content-Length ${n} exceeds the body's ${body.length} bytes`)
  }
  return { json: body.subarray(0, n).toString('utf8'), tail: body.subarray(n) }
}

function binaryDataSize(t: V2RequestTensor): number | undefined {
  const size = t.parameters?.binary_data_size
  if (size === undefined) return undefined
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new InvalidInputError(
      `input "${t.name}": binary_data_size ${JSON.stringify(size)} is not a byte count`,
    )
  }
  return size
}

/**
 * The binary data of each input that declares `binary_data_size`, cut from `tail` in input order.
 * The declared sizes must add up to exactly the bytes after the JSON header.
 */
export function binaryInputSlices(
  inputs: readonly V2RequestTensor[],
  tail: Buffer | undefined,
): Map<string, Buffer> {
  const slices = new Map<string, Buffer>()
  const available = tail?.length ?? 0
  let offset = 0
  for (const t of inputs) {
    const size = binaryDataSize(t)
    if (size === undefined) continue
    if (tail === undefined) {
      throw new InvalidInputError(
        `input "${t.name}": binary_data_size given but the request carries no binary data (no Inference-Header-Content-Length header)`,
      )
    }
    if (t.data !== undefined) {
      throw new InvalidInputError(`input "${t.name}": both "data" and binary_data_size given`)
    }
    if (offset + size > available) {
      throw new InvalidInputError(
        `input "${t.name}": binary_data_size ${size} at offset ${offset} runs past the ${available} bytes of binary data`,
      )
    }
    slices.set(t.name, tail.subarray(offset, offset + size))
    offset += size
  }
  if (offset !== available) {
    throw new InvalidInputError(
      `binary data is ${available} bytes but the inputs' binary_data_size add up to ${offset}`,
    )
  }
  return slices
}

/** Decodes one input's little-endian bytes, already checked to be `elements` × the element size. */
export function decodeBinaryTensor(
  name: string,
  datatype: 'FP32' | 'INT64',
  elements: number,
  bytes: Buffer,
): TensorData {
  const width = datatype === 'INT64' ? 8 : 4
  if (bytes.length !== elements * width) {
    throw new InvalidInputError(
      `input "${name}": binary_data_size ${bytes.length} does not match ${elements} ${datatype} values (${elements * width} bytes)`,
    )
  }
  // a copy: aligned for the typed array, and not a view into the request body
  const copy = new Uint8Array(bytes)
  if (!LITTLE_ENDIAN_HOST) {
    const b = Buffer.from(copy.buffer, copy.byteOffset, copy.byteLength)
    if (width === 8) b.swap64()
    else b.swap32()
  }
  if (datatype === 'INT64') return new BigInt64Array(copy.buffer, 0, elements)
  const data = new Float32Array(copy.buffer, 0, elements)
  for (let i = 0; i < elements; i++) {
    if (!Number.isFinite(data[i]!)) {
      throw new InvalidInputError(`input "${name}": value ${i} is not a finite number`)
    }
  }
  return data
}

/** A tensor's data as little-endian bytes. */
function tensorBytes(data: TensorData): Buffer {
  const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  if (LITTLE_ENDIAN_HOST) return view
  const copy = Buffer.from(view)
  return data instanceof BigInt64Array ? copy.swap64() : copy.swap32()
}

export interface RenderedResponse {
  /** a JSON string, or JSON header + binary output data */
  body: string | Buffer
  /** set on binary responses: bytes of the JSON header (the Inference-Header-Content-Length) */
  headerLength?: number
}

/**
 * The inference response: the requested outputs (all, in model order, when the request names none),
 * each as JSON `data` or, when asked for, as binary data after the JSON header.
 */
export function renderInferResponse(
  head: { model_name: string; model_version: string; id: string },
  outputs: readonly Tensor[],
  request: Pick<V2InferRequest, 'outputs' | 'parameters'>,
): RenderedResponse {
  const wanted =
    request.outputs && request.outputs.length > 0
      ? request.outputs.map((r) => {
          const o = outputs.find((t) => t.name === r.name)
          if (!o) throw new InvalidInputError(`unknown output "${r.name}"`)
          return { tensor: o, binary: r.parameters?.binary_data ?? request.parameters?.binary_data_output }
        })
      : outputs.map((o) => ({ tensor: o, binary: request.parameters?.binary_data_output }))
  const binary: Buffer[] = []
  const json = JSON.stringify({
    ...head,
    outputs: wanted.map(({ tensor: o, binary: asBinary }) => {
      if (asBinary === true) {
        const bytes = tensorBytes(o.data)
        binary.push(bytes)
        return {
          name: o.name,
          datatype: o.datatype,
          shape: o.shape,
          parameters: { binary_data_size: bytes.length },
        }
      }
      return {
        name: o.name,
        datatype: o.datatype,
        shape: o.shape,
        data: o.data instanceof BigInt64Array ? Array.from(o.data, Number) : Array.from(o.data),
      }
    }),
  })
  if (binary.length === 0) return { body: json }
  const header = Buffer.from(json)
  return { body: Buffer.concat([header, ...binary]), headerLength: header.length }
}
