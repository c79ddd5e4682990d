/**
 * Small typed ONNX graph builder over `onnx-proto` (protobufjs static code, ONNX v1.10.2 schema).
 *
 * Produces serialized ModelProto bytes that onnxruntime can load directly. Initializers are stored as
 * little-endian `raw_data`; graph inputs/outputs may use symbolic dimensions (e.g. `'batch'`) so a single
 * model serves any batch size.
 *
 * onnx-proto quirk: the package is CommonJS (`module.exports = { onnx }`) while its .d.ts declares
 * `export namespace onnx`. TypeScript accepts `import { onnx } from 'onnx-proto'`, but Node's ESM loader
 * cannot see that named export (it only exposes `default`), so it must be imported as a default import.
 */
import onnxProto from 'onnx-proto'
import type { onnx as OnnxTypes } from 'onnx-proto'

const { onnx } = onnxProto

/** The ONNX IR version written by this builder (the newest the onnx-proto 8.x schema knows). */
export const IR_VERSION = 8
/** Default default-domain opset. 17 is the first with LayerNormalization; it still has ReduceMean `axes` as an attribute. */
export const DEFAULT_OPSET = 17

export type ElemType = 'float32' | 'int64' | 'int8' | 'uint8'

/** A dimension: a fixed size, or a symbolic name such as `'batch'` (dim_param). */
export type Dim = number | string

/** Explicitly typed attribute values (ONNX distinguishes INT from FLOAT, so plain numbers are ambiguous). */
export type AttrValue =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  | { kind: 'ints'; value: readonly number[] }
  | { kind: 'floats'; value: readonly number[] }
  | { kind: 'string'; value: string }

export const attr = {
  int: (value: number): AttrValue => ({ kind: 'int', value }),
  float: (value: number): AttrValue => ({ kind: 'float', value }),
  ints: (value: readonly number[]): AttrValue => ({ kind: 'ints', value }),
  floats: (value: readonly number[]): AttrValue => ({ kind: 'floats', value }),
  string: (value: string): AttrValue => ({ kind: 'string', value }),
} as const

export interface ModelOptions {
  /** Default-domain opset version (default {@link DEFAULT_OPSET}). */
  opset?: number
  producerName?: string
  producerVersion?: string
  /** ModelProto.model_version. */
  modelVersion?: number
  docString?: string
  /** Stored as ModelProto.metadata_props (keys sorted for deterministic output). */
  metadata?: Record<string, string>
}

const ELEM_TYPE: Record<ElemType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
  int8: onnx.TensorProto.DataType.INT8,
  uint8: onnx.TensorProto.DataType.UINT8,
}

const ATTR_TYPE = onnx.AttributeProto.AttributeType

function checkDims(dims: readonly number[], length: number, name: string): void {
  for (const d of dims) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`initializer ${name}: invalid dim ${d}`)
  }
  const expected = dims.reduce((a, b) => a * b, 1)
  if (expected !== length) {
    throw new Error(`initializer ${name}: ${length} elements but dims [${dims.join(', ')}] need ${expected}`)
  }
}

/** Float32 values as little-endian bytes (explicit, so output does not depend on host endianness). */
export function float32ToLE(data: Float32Array): Uint8Array {
  const out = new Uint8Array(data.length * 4)
  const view = new DataView(out.buffer)
  for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i]!, true)
  return out
}

/** Int64 values as little-endian bytes. */
export function int64ToLE(data: readonly number[] | BigInt64Array): Uint8Array {
  const out = new Uint8Array(data.length * 8)
  const view = new DataView(out.buffer)
  for (let i = 0; i < data.length; i++) view.setBigInt64(i * 8, BigInt(data[i]!), true)
  return out
}

function encodeAttr(name: string, v: AttrValue): OnnxTypes.AttributeProto {
  switch (v.kind) {
    case 'int':
      if (!Number.isInteger(v.value)) throw new Error(`attribute ${name}: int expected, got ${v.value}`)
      return onnx.AttributeProto.create({ name, type: ATTR_TYPE.INT, i: v.value })
    case 'float':
      return onnx.AttributeProto.create({ name, type: ATTR_TYPE.FLOAT, f: v.value })
    case 'ints':
      for (const x of v.value) {
        if (!Number.isInteger(x)) throw new Error(`attribute ${name}: ints expected, got ${x}`)
      }
      return onnx.AttributeProto.create({ name, type: ATTR_TYPE.INTS, ints: [...v.value] })
    case 'floats':
      return onnx.AttributeProto.create({ name, type: ATTR_TYPE.FLOATS, floats: [...v.value] })
    case 'string':
      return onnx.AttributeProto.create({
        name,
        type: ATTR_TYPE.STRING,
        s: new TextEncoder().encode(v.value),
      })
  }
}

function valueInfo(name: string, elemType: ElemType, shape: readonly Dim[]) {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType: ELEM_TYPE[elemType],
        shape: {
          dim: shape.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })),
        },
      },
    },
  })
}

/**
 * Incrementally builds an ONNX graph. Value names are plain strings; {@link GraphBuilder.fresh} mints
 * unique names, and {@link GraphBuilder.op} returns the output name(s) so graphs compose functionally.
 */
export class GraphBuilder {
  readonly name: string
  private readonly nodes: OnnxTypes.NodeProto[] = []
  private readonly inits: OnnxTypes.TensorProto[] = []
  private readonly inputs: OnnxTypes.ValueInfoProto[] = []
  private readonly outputs: OnnxTypes.ValueInfoProto[] = []
  private readonly names = new Set<string>()
  private readonly counters = new Map<string, number>()
  private paramCount = 0

  constructor(name: string) {
    this.name = name
  }

  /** Number of scalar parameters held in initializers so far. */
  get parameters(): number {
    return this.paramCount
  }

  /** A new unique value name with the given prefix (`conv` → `conv_0`, `conv_1`, ...). */
  fresh(prefix: string): string {
    let n = this.counters.get(prefix) ?? 0
    let name = `${prefix}_${n}`
    while (this.names.has(name)) name = `${prefix}_${++n}`
    this.counters.set(prefix, n + 1)
    this.names.add(name)
    return name
  }

  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`duplicate value name: ${name}`)
    this.names.add(name)
    return name
  }

  /** Declares a graph input. Use a string dim (e.g. `'batch'`) for a dynamic dimension. */
  input(name: string, elemType: ElemType, shape: readonly Dim[]): string {
    this.inputs.push(valueInfo(this.claim(name), elemType, shape))
    return name
  }

  /** Declares an existing value as a graph output. */
  output(name: string, elemType: ElemType, shape: readonly Dim[]): string {
    if (!this.names.has(name)) throw new Error(`output ${name} is not produced by the graph`)
    this.outputs.push(valueInfo(name, elemType, shape))
    return name
  }

  /** Adds a float32 initializer (weights), stored as little-endian raw_data. Returns its name. */
  initializer(name: string, data: Float32Array | readonly number[], dims: readonly number[]): string {
    return this.pushFloat(this.claim(name), data, dims)
  }

  private pushFloat(name: string, data: Float32Array | readonly number[], dims: readonly number[]): string {
    const arr = data instanceof Float32Array ? data : Float32Array.from(data)
    checkDims(dims, arr.length, name)
    this.inits.push(
      onnx.TensorProto.create({
        name,
        dataType: ELEM_TYPE.float32,
        dims: [...dims],
        rawData: float32ToLE(arr),
      }),
    )
    this.paramCount += arr.length
    return name
  }

  /** Adds an int64 initializer (shapes, axes, indices), stored as little-endian raw_data. */
  int64Initializer(name: string, data: readonly number[] | BigInt64Array, dims: readonly number[]): string {
    checkDims(dims, data.length, name)
    this.inits.push(
      onnx.TensorProto.create({
        name: this.claim(name),
        dataType: ELEM_TYPE.int64,
        dims: [...dims],
        rawData: int64ToLE(data),
      }),
    )
    return name
  }

  /** Adds an 8-bit integer initializer (quantized weights, zero points), stored as raw_data. */
  int8Initializer(name: string, data: Int8Array | Uint8Array, dims: readonly number[]): string {
    checkDims(dims, data.length, name)
    this.inits.push(
      onnx.TensorProto.create({
        name: this.claim(name),
        dataType: data instanceof Int8Array ? ELEM_TYPE.int8 : ELEM_TYPE.uint8,
        dims: [...dims],
        rawData: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)),
      }),
    )
    this.paramCount += data.length
    return name
  }

  /** Float32 scalar constant (rank 0) as an initializer, named uniquely from `prefix`. */
  scalar(prefix: string, value: number): string {
    return this.pushFloat(this.fresh(prefix), [value], [])
  }

  /**
   * Adds a node. `outputs` is a count (names are minted from the lower-cased op type) or explicit names.
   * Returns the output names.
   */
  node(
    opType: string,
    inputs: readonly string[],
    outputs: number | readonly string[] = 1,
    attrs: Record<string, AttrValue> = {},
    domain = '',
  ): string[] {
    for (const i of inputs) {
      if (i !== '' && !this.names.has(i)) throw new Error(`${opType}: unknown input ${i}`)
    }
    const outs =
      typeof outputs === 'number'
        ? Array.from({ length: outputs }, () => this.fresh(opType.toLowerCase()))
        : outputs.map((o) => this.claim(o))
    this.nodes.push(
      onnx.NodeProto.create({
        name: `${opType}_${this.nodes.length}`,
        opType,
        domain,
        input: [...inputs],
        output: outs,
        attribute: Object.keys(attrs)
          .sort()
          .map((k) => encodeAttr(k, attrs[k]!)),
      }),
    )
    return outs
  }

  /** Single-output convenience over {@link GraphBuilder.node}; `out` names the output explicitly. */
  op(opType: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, out?: string): string {
    return this.node(opType, inputs, out === undefined ? 1 : [out], attrs)[0]!
  }

  /** The ModelProto as a protobufjs message object. */
  toModelProto(opts: ModelOptions = {}): OnnxTypes.ModelProto {
    if (this.inputs.length === 0) throw new Error('graph has no inputs')
    if (this.outputs.length === 0) throw new Error('graph has no outputs')
    const metadata = opts.metadata ?? {}
    return onnx.ModelProto.create({
      irVersion: IR_VERSION,
      opsetImport: [{ domain: '', version: opts.opset ?? DEFAULT_OPSET }],
      producerName: opts.producerName ?? 'breakid',
      producerVersion: opts.producerVersion ?? '1',
      modelVersion: opts.modelVersion ?? 1,
      docString: opts.docString ?? '',
      metadataProps: Object.keys(metadata)
        .sort()
        .map((key) => ({ key, value: metadata[key]! })),
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: this.inits,
        input: this.inputs,
        output: this.outputs,
      },
    })
  }

  /** Serialized ModelProto bytes (deterministic for the same sequence of builder calls). */
  toBytes(opts: ModelOptions = {}): Uint8Array {
    return onnx.ModelProto.encode(this.toModelProto(opts)).finish()
  }
}

/** Decodes ModelProto bytes (useful in tests and for inspection). */
export function decodeModel(bytes: Uint8Array): OnnxTypes.ModelProto {
  return onnx.ModelProto.decode(bytes)
}
