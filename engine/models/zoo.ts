/**
 * Model zoo: deterministic, generated-in-TypeScript ONNX models for load generation and benchmarks.
 *
 * Every model is built from a seeded PRNG (mulberry32), so the same (name, version, options) always gives
 * the same bytes. {@link ensureModel} caches the result as `<cacheDir>/<name>-v<version>-<hash>.onnx`,
 * where the hash covers the generator source, the seed and the options: a changed generator gets a new file.
 */
import { createHash } from 'node:crypto'
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { mulberry32 } from '../../core/prng.ts'
import {
  type AttrValue,
  attr,
  DEFAULT_OPSET,
  float32ToLE,
  GraphBuilder,
  IR_VERSION,
  int64ToLE,
  type ModelOptions as ProtoOptions,
} from './onnx-builder.ts'

/** Bump to force regeneration of every cached model even when no hashed source changed. */
export const GENERATOR_REVISION = 1

export type ModelName = 'mlp' | 'cnn' | 'resnet50' | 'transformer'
export const MODEL_NAMES: readonly ModelName[] = ['mlp', 'cnn', 'resnet50', 'transformer']

export type KServeDatatype = 'FP32' | 'INT64'

/** A tensor in KServe-v2 model metadata. `shape` uses -1 for the (dynamic) batch dimension. */
export interface TensorMeta {
  name: string
  datatype: KServeDatatype
  shape: number[]
}

/**
 * The values an input accepts beyond its datatype's own range (its contract: token ids within the
 * vocabulary). The engine checks them per request before batching, so one request the model cannot
 * run is answered 400 alone instead of failing the batch it would have joined.
 */
export interface ValueRange {
  min: number
  max: number
  /** what the range is, for the error message */
  what: string
}

/** KServe-v2 style model metadata (`GET /v2/models/{name}[/versions/{version}]`). */
export interface ModelMeta {
  name: string
  /** KServe v2 model versions are strings ("1", "2", ...). */
  version: string
  platform: 'onnxruntime_onnx'
  inputs: TensorMeta[]
  outputs: TensorMeta[]
}

/**
 * Generator options. `resnet50` uses both, `cnn` only `widthScale`; the other models ignore them, and an
 * option a model ignores does not affect its hash.
 */
/** Numeric precision of a generated model's weights and matrix products. */
export const PRECISIONS = ['fp32', 'int8'] as const
export type Precision = (typeof PRECISIONS)[number]

export interface ModelOptions {
  /**
   * fp32 (default), or int8: the same weights quantized per output channel (symmetric, int8 for
   * MatMul, uint8 around 128 for Conv), activations quantized per tensor at run time
   * (DynamicQuantizeLinear) and every Gemm/MatMul/Conv run as MatMulInteger/ConvInteger — onnxruntime's
   * dynamic quantization, written into the generated graph. Every model has it.
   */
  precision?: Precision
  /**
   * resnet50: multiplier on all channel widths (1 = real ResNet-50: 64..2048 channels). Default 1.
   * cnn: multiplier on its widths (1 = conv 16, conv 32, fc 64). Default 1.
   */
  widthScale?: number
  /** resnet50: input height/width, a multiple of 32, at least 32. Default 224. */
  resolution?: number
}

/** One generated input tensor: typed data in row-major order plus its full shape (batch included). */
export type GeneratedInput =
  | { name: string; datatype: 'FP32'; shape: number[]; data: Float32Array }
  | { name: string; datatype: 'INT64'; shape: number[]; data: BigInt64Array }

/** What {@link ModelDefinition.normalizeOptions} returns: only the options a model uses, defaults filled in. */
export type NormalizedOptions = Readonly<ModelOptions>

export interface ModelDefinition {
  readonly name: ModelName
  readonly description: string
  /** Default seed of a model version; version 2 simply uses a different seed. */
  seedFor(version: number): number
  /** Options with defaults filled in and irrelevant keys dropped (what gets hashed). */
  normalizeOptions(options?: ModelOptions): NormalizedOptions
  /** KServe-v2 metadata for this model version (shapes depend on options for resnet50). */
  meta(version?: number, options?: ModelOptions): ModelMeta
  /** Valid random inputs for a batch (deterministic for a seed; row i does not depend on batch). */
  inputGenerator(seed: number, batch: number, options?: ModelOptions): GeneratedInput[]
  /** Serialized ONNX ModelProto bytes. */
  generate(version?: number, options?: ModelOptions): Uint8Array
  /** Number of float parameters (weights + biases). */
  parameterCount(options?: ModelOptions): number
  /** The range an input's values must fall in beyond their datatype's, if the model has one. */
  inputRange(input: string): ValueRange | undefined
}

// ---------------------------------------------------------------------------------------------------------
// Deterministic randomness

// mulberry32 (core/prng.ts), re-exported for the model tests
export { mulberry32 }

type Rng = () => number

/** FNV-1a 32-bit hash of a string (used to derive seeds from names). */
function fnv1a(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** `n` values uniform in [-bound, bound). */
function uniform(rng: Rng, n: number, bound: number): Float32Array {
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) out[i] = (rng() * 2 - 1) * bound
  return out
}

/** `n` values ~ N(mean, std²) via Box-Muller. */
function normal(rng: Rng, n: number, std = 1, mean = 0): Float32Array {
  const out = new Float32Array(n)
  for (let i = 0; i < n; i += 2) {
    const u1 = 1 - rng()
    const u2 = rng()
    const r = Math.sqrt(-2 * Math.log(u1)) * std
    out[i] = mean + r * Math.cos(2 * Math.PI * u2)
    if (i + 1 < n) out[i + 1] = mean + r * Math.sin(2 * Math.PI * u2)
  }
  return out
}

// ---------------------------------------------------------------------------------------------------------
// Layer helpers

/** He-uniform weights (variance 2/fanIn, right before a ReLU) times `gain`. */
function heUniform(rng: Rng, n: number, fanIn: number, gain = 1): Float32Array {
  return uniform(rng, n, gain * Math.sqrt(6 / fanIn))
}

/** Fully connected layer: Gemm(x, W[out,in]ᵀ, b). */
function dense(
  g: GraphBuilder,
  rng: Rng,
  x: string,
  name: string,
  inF: number,
  outF: number,
  gain = 1,
): string {
  const wData = heUniform(rng, outF * inF, inF, gain)
  const bData = uniform(rng, outF, 1 / Math.sqrt(inF))
  if (INT8_GRAPHS.has(g)) return int8MatMul(g, x, name, transpose(wData, outF, inF), inF, outF, bData)
  const w = g.initializer(`${name}.weight`, wData, [outF, inF])
  const b = g.initializer(`${name}.bias`, bData, [outF])
  return g.op('Gemm', [x, w, b], { transB: attr.int(1) })
}

/** Conv2d with bias (BatchNorm folded in, as in an inference-optimised export). */
function conv2d(
  g: GraphBuilder,
  rng: Rng,
  x: string,
  name: string,
  p: { cin: number; cout: number; k: number; stride?: number; pad?: number; gain?: number },
): string {
  const { cin, cout, k, stride = 1, pad = Math.floor(k / 2), gain = 1 } = p
  const fanIn = cin * k * k
  const wData = heUniform(rng, cout * fanIn, fanIn, gain)
  const bData = uniform(rng, cout, 0.05)
  const convAttrs = {
    kernel_shape: attr.ints([k, k]),
    strides: attr.ints([stride, stride]),
    pads: attr.ints([pad, pad, pad, pad]),
  }
  if (INT8_GRAPHS.has(g)) return int8Conv(g, x, name, wData, bData, [cout, cin, k, k], convAttrs)
  const w = g.initializer(`${name}.weight`, wData, [cout, cin, k, k])
  const b = g.initializer(`${name}.bias`, bData, [cout])
  return g.op('Conv', [x, w, b], convAttrs)
}

// --- int8: onnxruntime-style dynamic quantization written into the graph ------------------------------

/** Graphs being built at int8 precision (marked by defineModel for the build, read by the layer helpers). */
const INT8_GRAPHS = new WeakSet<GraphBuilder>()

/** w[rows, cols] → wᵀ[cols, rows] */
function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(w.length)
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = w[r * cols + c]!
  return out
}

/**
 * Symmetric per-channel quantization to [−127, 127]: scale = max|w| / 127 per channel, q = round(w /
 * scale). `channelOf(i)` says which channel value i belongs to.
 */
function quantizeSymmetric(
  w: Float32Array,
  channels: number,
  channelOf: (i: number) => number,
): { q: Int8Array; scales: Float32Array } {
  const maxAbs = new Float32Array(channels)
  for (let i = 0; i < w.length; i++) {
    const c = channelOf(i)
    maxAbs[c] = Math.max(maxAbs[c]!, Math.abs(w[i]!))
  }
  const scales = maxAbs.map((m) => (m > 0 ? m / 127 : 1))
  const q = new Int8Array(w.length)
  for (let i = 0; i < w.length; i++) {
    q[i] = Math.max(-127, Math.min(127, Math.round(w[i]! / scales[channelOf(i)]!)))
  }
  return { q, scales }
}

/** x (float) → uint8 x, its scale and zero point, per tensor at run time. */
function quantizeActivations(g: GraphBuilder, x: string): [string, string, string] {
  const [xq, xs, xzp] = g.node('DynamicQuantizeLinear', [x], 3)
  return [xq!, xs!, xzp!]
}

/** y = x·W + b with W [inF, outF] in int8 per output column: MatMulInteger, then rescale. */
function int8MatMul(
  g: GraphBuilder,
  x: string,
  name: string,
  wData: Float32Array,
  inF: number,
  outF: number,
  bData: Float32Array,
): string {
  const { q, scales } = quantizeSymmetric(wData, outF, (i) => i % outF)
  const w = g.int8Initializer(`${name}.weight_q`, q, [inF, outF])
  const ws = g.initializer(`${name}.weight_scale`, scales, [outF])
  const b = g.initializer(`${name}.bias`, bData, [outF])
  const [xq, xs, xzp] = quantizeActivations(g, x)
  const acc = g.op('MatMulInteger', [xq, w, xzp])
  const y = g.op('Mul', [g.op('Mul', [g.op('Cast', [acc], { to: attr.int(1) }), xs]), ws])
  return g.op('Add', [y, b])
}

/**
 * Conv with weights [cout, cin, k, k] in 8 bits per output channel: onnxruntime's CPU ConvInteger
 * takes uint8 weights, so the symmetric int8 values are stored shifted by a zero point of 128.
 */
function int8Conv(
  g: GraphBuilder,
  x: string,
  name: string,
  wData: Float32Array,
  bData: Float32Array,
  dims: [number, number, number, number],
  convAttrs: Record<string, AttrValue>,
): string {
  const [cout, cin, k] = dims
  const perChannel = cin * k * k
  const { q, scales } = quantizeSymmetric(wData, cout, (i) => Math.floor(i / perChannel))
  const shifted = Uint8Array.from(q, (v) => v + 128)
  const w = g.int8Initializer(`${name}.weight_q`, shifted, dims)
  const wzp = g.int8Initializer(`${name}.weight_zero_point`, Uint8Array.of(128), [])
  const ws = g.initializer(`${name}.weight_scale`, scales, [cout, 1, 1])
  const b = g.initializer(`${name}.bias`, bData, [cout, 1, 1])
  const [xq, xs, xzp] = quantizeActivations(g, x)
  const acc = g.op('ConvInteger', [xq, w, xzp, wzp], convAttrs)
  const y = g.op('Mul', [g.op('Mul', [g.op('Cast', [acc], { to: attr.int(1) }), xs]), ws])
  return g.op('Add', [y, b])
}

/** MatMul against a [inF, outF] weight plus bias (works on any leading dims). */
function linear(g: GraphBuilder, rng: Rng, x: string, name: string, inF: number, outF: number): string {
  const wData = uniform(rng, inF * outF, Math.sqrt(6 / (inF + outF)))
  const bData = uniform(rng, outF, 0.02)
  if (INT8_GRAPHS.has(g)) return int8MatMul(g, x, name, wData, inF, outF, bData)
  const w = g.initializer(`${name}.weight`, wData, [inF, outF])
  const b = g.initializer(`${name}.bias`, bData, [outF])
  return g.op('Add', [g.op('MatMul', [x, w]), b])
}

function layerNorm(g: GraphBuilder, rng: Rng, x: string, name: string, d: number): string {
  const gamma = g.initializer(`${name}.gamma`, normal(rng, d, 0.05, 1), [d])
  const beta = g.initializer(`${name}.beta`, normal(rng, d, 0.05), [d])
  return g.op('LayerNormalization', [x, gamma, beta], { axis: attr.int(-1), epsilon: attr.float(1e-5) })
}

const softmaxLast = { axis: attr.int(-1) }

// ---------------------------------------------------------------------------------------------------------
// Model specs

interface ModelSpec {
  name: ModelName
  description: string
  /**
   * The ONNX doc string of one variant; default {@link description}. Written into the model bytes, so a
   * variant that existed before options did must keep its old text.
   */
  docString?(opts: ModelOptions): string
  normalize(options?: ModelOptions): NormalizedOptions
  io(opts: ModelOptions): { inputs: TensorMeta[]; outputs: TensorMeta[] }
  build(g: GraphBuilder, rng: Rng, opts: ModelOptions): void
  input(rng: Rng, batch: number, opts: ModelOptions): GeneratedInput[]
  /**
   * Input value ranges (not hashed: they describe what the generated graph accepts, not its bytes).
   * Default: none beyond the datatype's.
   */
  inputRanges?: Readonly<Record<string, ValueRange>>
}

const noOptions = (): Record<string, never> => ({})

function floatInput(name: string, rowShape: number[], batch: number, fill: (n: number) => Float32Array) {
  const n = batch * rowShape.reduce((a, b) => a * b, 1)
  return { name, datatype: 'FP32' as const, shape: [batch, ...rowShape], data: fill(n) }
}

// --- mlp: tabular scoring -----------------------------------------------------------------------------
const MLP_LAYERS = [16, 64, 32, 4]

const mlpSpec: ModelSpec = {
  name: 'mlp',
  description: 'Tabular scoring MLP: features[batch,16] -> Gemm/Relu 64 -> Gemm/Relu 32 -> Gemm 4 -> softmax',
  normalize: noOptions,
  io: () => ({
    inputs: [{ name: 'features', datatype: 'FP32', shape: [-1, 16] }],
    outputs: [{ name: 'scores', datatype: 'FP32', shape: [-1, 4] }],
  }),
  build(g, rng) {
    let h = g.input('features', 'float32', ['batch', MLP_LAYERS[0]!])
    for (let i = 1; i < MLP_LAYERS.length; i++) {
      const last = i === MLP_LAYERS.length - 1
      h = dense(g, rng, h, `fc${i}`, MLP_LAYERS[i - 1]!, MLP_LAYERS[i]!, last ? Math.SQRT1_2 : 1)
      if (!last) h = g.op('Relu', [h])
    }
    g.op('Softmax', [h], softmaxLast, 'scores')
    g.output('scores', 'float32', ['batch', MLP_LAYERS.at(-1)!])
  },
  input: (rng, batch) => [floatInput('features', [16], batch, (n) => normal(rng, n))],
}

// --- cnn: small image classifier ----------------------------------------------------------------------
const CNN_DESCRIPTION =
  'Small image classifier: image[batch,3,32,32] -> (Conv3x3/Relu/MaxPool2)x2 -> Flatten -> Gemm/Relu -> Gemm -> softmax probs[batch,10]'

/**
 * cnn options: only `widthScale` (w), default 1. At w = 1 the options normalize to `{}`, as before the
 * option existed, so plain `cnn` keeps its bytes (the options are written into the model metadata).
 */
function cnnOptions(options: ModelOptions = {}): NormalizedOptions {
  const widthScale = options.widthScale ?? 1
  if (!(widthScale > 0) || !Number.isFinite(widthScale)) throw new Error(`cnn: bad widthScale ${widthScale}`)
  return widthScale === 1 ? {} : { widthScale }
}

/** cnn channel widths at a width scale: conv1 16w, conv2 32w, fc1 64w (each rounded, at least 1). */
export function cnnWidths(widthScale = 1): { conv1: number; conv2: number; fc1: number } {
  const width = (c: number) => Math.max(1, Math.round(c * widthScale))
  return { conv1: width(16), conv2: width(32), fc1: width(64) }
}

const cnnSpec: ModelSpec = {
  name: 'cnn',
  description: `${CNN_DESCRIPTION}. Option widthScale (w) multiplies the widths (default 1: conv 16, conv 32, fc 64; w=4: 64, 128, 256).`,
  docString(opts) {
    const w = opts.widthScale ?? 1
    if (w === 1) return CNN_DESCRIPTION
    const c = cnnWidths(w)
    return `${CNN_DESCRIPTION}; width x${w}: conv ${c.conv1}, conv ${c.conv2}, fc ${c.fc1}`
  },
  normalize: cnnOptions,
  io: () => ({
    inputs: [{ name: 'image', datatype: 'FP32', shape: [-1, 3, 32, 32] }],
    outputs: [{ name: 'probs', datatype: 'FP32', shape: [-1, 10] }],
  }),
  build(g, rng, opts) {
    const c = cnnWidths(opts.widthScale)
    let h = g.input('image', 'float32', ['batch', 3, 32, 32])
    const pool = { kernel_shape: attr.ints([2, 2]), strides: attr.ints([2, 2]) }
    h = g.op('MaxPool', [g.op('Relu', [conv2d(g, rng, h, 'conv1', { cin: 3, cout: c.conv1, k: 3 })])], pool)
    h = g.op(
      'MaxPool',
      [g.op('Relu', [conv2d(g, rng, h, 'conv2', { cin: c.conv1, cout: c.conv2, k: 3 })])],
      pool,
    )
    h = g.op('Flatten', [h], { axis: attr.int(1) })
    h = g.op('Relu', [dense(g, rng, h, 'fc1', c.conv2 * 8 * 8, c.fc1)])
    h = dense(g, rng, h, 'fc2', c.fc1, 10, Math.SQRT1_2)
    g.op('Softmax', [h], softmaxLast, 'probs')
    g.output('probs', 'float32', ['batch', 10])
  },
  input: (rng, batch) => [floatInput('image', [3, 32, 32], batch, (n) => uniform(rng, n, 1))],
}

// --- transformer: small text encoder ------------------------------------------------------------------
const TF = { vocab: 1024, seq: 32, d: 64, heads: 4, ffn: 256, layers: 2 } as const

const transformerSpec: ModelSpec = {
  name: 'transformer',
  description:
    'Small text encoder: input_ids[batch,32] -> token+position embedding -> 2 post-LN encoder layers (4 heads, d=64, ffn=256) -> mean-pool embedding[batch,64]',
  normalize: noOptions,
  io: () => ({
    inputs: [{ name: 'input_ids', datatype: 'INT64', shape: [-1, TF.seq] }],
    outputs: [{ name: 'embedding', datatype: 'FP32', shape: [-1, TF.d] }],
  }),
  // Gather over the token table: onnxruntime fails the whole batch for an index outside it
  inputRanges: { input_ids: { min: 0, max: TF.vocab - 1, what: 'token ids within the vocabulary' } },
  build(g, rng) {
    const { vocab, seq, d, heads, ffn, layers } = TF
    const dh = d / heads
    const ids = g.input('input_ids', 'int64', ['batch', seq])
    const tok = g.initializer('embed.tokens', normal(rng, vocab * d, 0.5), [vocab, d])
    const pos = g.initializer('embed.positions', normal(rng, seq * d, 0.5), [seq, d])
    let x = g.op('Add', [g.op('Gather', [tok, ids], { axis: attr.int(0) }), pos]) // [B,T,d]
    const splitShape = g.int64Initializer('shape.split_heads', [0, 0, heads, dh], [4])
    const mergeShape = g.int64Initializer('shape.merge_heads', [0, 0, d], [3])
    const scale = g.scalar('attn.scale', 1 / Math.sqrt(dh))
    const toHeads = (t: string, perm: number[]) =>
      g.op('Transpose', [g.op('Reshape', [t, splitShape])], { perm: attr.ints(perm) })
    for (let l = 0; l < layers; l++) {
      const p = `layer${l}`
      const q = toHeads(linear(g, rng, x, `${p}.attn.q`, d, d), [0, 2, 1, 3]) // [B,H,T,dh]
      const k = toHeads(linear(g, rng, x, `${p}.attn.k`, d, d), [0, 2, 3, 1]) // [B,H,dh,T]
      const v = toHeads(linear(g, rng, x, `${p}.attn.v`, d, d), [0, 2, 1, 3]) // [B,H,T,dh]
      const scores = g.op('Mul', [g.op('MatMul', [q, k]), scale]) // [B,H,T,T]
      const probs = g.op('Softmax', [scores], softmaxLast)
      const ctx = g.op('Transpose', [g.op('MatMul', [probs, v])], { perm: attr.ints([0, 2, 1, 3]) })
      const attnOut = linear(g, rng, g.op('Reshape', [ctx, mergeShape]), `${p}.attn.out`, d, d)
      x = layerNorm(g, rng, g.op('Add', [x, attnOut]), `${p}.ln1`, d)
      const hidden = g.op('Relu', [linear(g, rng, x, `${p}.ffn.in`, d, ffn)])
      const ffnOut = linear(g, rng, hidden, `${p}.ffn.out`, ffn, d)
      x = layerNorm(g, rng, g.op('Add', [x, ffnOut]), `${p}.ln2`, d)
    }
    g.op('ReduceMean', [x], { axes: attr.ints([1]), keepdims: attr.int(0) }, 'embedding')
    g.output('embedding', 'float32', ['batch', d])
  },
  input(rng, batch) {
    const data = new BigInt64Array(batch * TF.seq)
    for (let i = 0; i < data.length; i++) data[i] = BigInt(Math.floor(rng() * TF.vocab))
    return [{ name: 'input_ids', datatype: 'INT64', shape: [batch, TF.seq], data }]
  },
}

// --- resnet50: ResNet-50-shaped bottleneck network ----------------------------------------------------
const RESNET_BLOCKS = [3, 4, 6, 3]

function resnetOptions(
  options: ModelOptions = {},
): Required<Pick<ModelOptions, 'widthScale' | 'resolution'>> {
  const widthScale = options.widthScale ?? 1
  const resolution = options.resolution ?? 224
  if (!(widthScale > 0) || !Number.isFinite(widthScale))
    throw new Error(`resnet50: bad widthScale ${widthScale}`)
  if (!Number.isInteger(resolution) || resolution < 32 || resolution % 32 !== 0) {
    throw new Error(`resnet50: resolution must be a positive multiple of 32, got ${resolution}`)
  }
  return { widthScale, resolution }
}

/** Bottleneck block (v1.5: stride on the 3x3 conv), projection shortcut when shape changes. */
function bottleneck(
  g: GraphBuilder,
  rng: Rng,
  x: string,
  name: string,
  p: { cin: number; planes: number; cout: number; stride: number },
): string {
  const { cin, planes, cout, stride } = p
  let y = g.op('Relu', [conv2d(g, rng, x, `${name}.conv1`, { cin, cout: planes, k: 1 })])
  y = g.op('Relu', [conv2d(g, rng, y, `${name}.conv2`, { cin: planes, cout: planes, k: 3, stride })])
  // Small gain on the last conv of the residual branch keeps activations bounded without BatchNorm.
  y = conv2d(g, rng, y, `${name}.conv3`, { cin: planes, cout, k: 1, gain: 0.2 })
  const shortcut =
    stride !== 1 || cin !== cout
      ? conv2d(g, rng, x, `${name}.downsample`, { cin, cout, k: 1, stride, gain: Math.SQRT1_2 })
      : x
  return g.op('Relu', [g.op('Add', [y, shortcut])])
}

const resnetSpec: ModelSpec = {
  name: 'resnet50',
  description:
    'ResNet-50-shaped classifier: 7x7 stem, bottleneck stages [3,4,6,3] (widths 64..512, expansion 4), ' +
    'global average pool, Gemm 1000 -> softmax probs. BatchNorm is folded into conv biases. ' +
    'Options widthScale/resolution give smaller variants.',
  normalize: resnetOptions,
  io(options) {
    const { resolution } = resnetOptions(options)
    return {
      inputs: [{ name: 'image', datatype: 'FP32', shape: [-1, 3, resolution, resolution] }],
      outputs: [{ name: 'probs', datatype: 'FP32', shape: [-1, 1000] }],
    }
  },
  build(g, rng, options) {
    const { widthScale, resolution } = resnetOptions(options)
    const width = (c: number) => Math.max(1, Math.round(c * widthScale))
    let h = g.input('image', 'float32', ['batch', 3, resolution, resolution])
    let cin = width(64)
    h = g.op('Relu', [conv2d(g, rng, h, 'stem.conv', { cin: 3, cout: cin, k: 7, stride: 2, pad: 3 })])
    h = g.op('MaxPool', [h], {
      kernel_shape: attr.ints([3, 3]),
      strides: attr.ints([2, 2]),
      pads: attr.ints([1, 1, 1, 1]),
    })
    RESNET_BLOCKS.forEach((blocks, stage) => {
      const planes = width(64 * 2 ** stage)
      const cout = planes * 4
      for (let b = 0; b < blocks; b++) {
        const stride = b === 0 && stage > 0 ? 2 : 1
        h = bottleneck(g, rng, h, `layer${stage + 1}.${b}`, { cin, planes, cout, stride })
        cin = cout
      }
    })
    h = g.op('Flatten', [g.op('GlobalAveragePool', [h])], { axis: attr.int(1) })
    h = dense(g, rng, h, 'fc', cin, 1000, 4) // larger gain: peaked, classifier-like probs
    g.op('Softmax', [h], softmaxLast, 'probs')
    g.output('probs', 'float32', ['batch', 1000])
  },
  input(rng, batch, options) {
    const { resolution } = resnetOptions(options)
    return [floatInput('image', [3, resolution, resolution], batch, (n) => uniform(rng, n, 1))]
  },
}

// ---------------------------------------------------------------------------------------------------------
// Registry

const SPECS: Record<ModelName, ModelSpec> = {
  mlp: mlpSpec,
  cnn: cnnSpec,
  resnet50: resnetSpec,
  transformer: transformerSpec,
}

/** Source of everything that shapes generated bytes; part of the cache hash. */
const SHARED_SOURCES: readonly unknown[] = [
  GraphBuilder,
  float32ToLE,
  int64ToLE,
  mulberry32,
  fnv1a,
  uniform,
  normal,
  heUniform,
  dense,
  conv2d,
  linear,
  layerNorm,
  bottleneck,
  resnetOptions,
  cnnOptions,
  cnnWidths,
  floatInput,
  transpose,
  quantizeSymmetric,
  quantizeActivations,
  int8MatMul,
  int8Conv,
  normalizeWith,
  docString,
]

function specSource(spec: ModelSpec): string {
  return [spec.build, spec.io, spec.normalize, spec.docString].map(String).join('\n')
}

function checkVersion(version: number): number {
  if (!Number.isInteger(version) || version < 1)
    throw new Error(`model version must be an integer >= 1: ${version}`)
  return version
}

/**
 * A model's options as it normalizes them, plus the precision (every model has it): omitted at fp32,
 * so fp32 models keep the bytes they had before precision existed.
 */
function normalizeWith(spec: ModelSpec, options?: ModelOptions): NormalizedOptions {
  const base = spec.normalize(options)
  const precision = options?.precision ?? 'fp32'
  if (!PRECISIONS.includes(precision)) {
    throw new Error(`${spec.name}: precision must be one of ${PRECISIONS.join(', ')}, got ${precision}`)
  }
  return precision === 'fp32' ? base : { ...base, precision }
}

function defineModel(spec: ModelSpec): ModelDefinition {
  const seedFor = (version: number) => fnv1a(`${spec.name}@v${checkVersion(version)}`)
  const normalize = (options?: ModelOptions) => normalizeWith(spec, options)
  const build = (version: number, options?: ModelOptions) => {
    const opts = normalize(options)
    const g = new GraphBuilder(spec.name)
    if (opts.precision === 'int8') INT8_GRAPHS.add(g)
    spec.build(g, mulberry32(seedFor(version)), opts)
    return g
  }
  return {
    name: spec.name,
    description: spec.description,
    seedFor,
    normalizeOptions: normalize,
    meta(version = 1, options) {
      const { inputs, outputs } = spec.io(normalize(options))
      return {
        name: spec.name,
        version: String(checkVersion(version)),
        platform: 'onnxruntime_onnx',
        inputs,
        outputs,
      }
    },
    inputGenerator(seed, batch, options) {
      if (!Number.isInteger(batch) || batch < 1) throw new Error(`batch must be an integer >= 1: ${batch}`)
      return spec.input(mulberry32(seed), batch, normalize(options))
    },
    generate(version = 1, options) {
      const protoOpts: ProtoOptions = {
        opset: DEFAULT_OPSET,
        modelVersion: version,
        docString: docString(spec, normalize(options)),
        metadata: {
          'breakid.model': spec.name,
          'breakid.version': String(version),
          'breakid.seed': String(seedFor(version)),
          'breakid.options': JSON.stringify(normalize(options)),
        },
      }
      return build(version, options).toBytes(protoOpts)
    },
    parameterCount: (options) => build(1, options).parameters,
    inputRange: (input) => spec.inputRanges?.[input],
  }
}

function docString(spec: ModelSpec, opts: NormalizedOptions): string {
  const doc = spec.docString?.(opts) ?? spec.description
  return opts.precision === 'int8'
    ? `${doc}; int8: weights per output channel, activations per tensor at run time (DynamicQuantizeLinear + MatMulInteger/ConvInteger)`
    : doc
}

/** The model registry. */
export const MODELS: Readonly<Record<ModelName, ModelDefinition>> = {
  mlp: defineModel(mlpSpec),
  cnn: defineModel(cnnSpec),
  resnet50: defineModel(resnetSpec),
  transformer: defineModel(transformerSpec),
}

export function isModelName(name: string): name is ModelName {
  return (MODEL_NAMES as readonly string[]).includes(name)
}

export function getModel(name: string): ModelDefinition {
  if (!isModelName(name)) throw new Error(`unknown model "${name}" (known: ${MODEL_NAMES.join(', ')})`)
  return MODELS[name]
}

/** The range of a zoo model's input beyond its datatype's (undefined: none, or not a zoo model). */
export function inputRange(model: string, input: string): ValueRange | undefined {
  return isModelName(model) ? MODELS[model].inputRange(input) : undefined
}

/** Hash identifying generated bytes: generator sources + IR/opset + seed + normalized options. */
export function modelHash(name: string, version = 1, options?: ModelOptions): string {
  const def = getModel(name)
  const spec = SPECS[def.name]
  const h = createHash('sha256')
  h.update(
    JSON.stringify({
      revision: GENERATOR_REVISION,
      ir: IR_VERSION,
      opset: DEFAULT_OPSET,
      name: def.name,
      version,
      seed: def.seedFor(version),
      options: def.normalizeOptions(options),
      description: spec.description,
    }),
  )
  h.update(specSource(spec))
  for (const src of SHARED_SOURCES) h.update(String(src))
  return h.digest('hex').slice(0, 12)
}

/** `<name>-v<version>-<hash>.onnx` */
export function modelFileName(name: string, version = 1, options?: ModelOptions): string {
  return `${name}-v${version}-${modelHash(name, version, options)}.onnx`
}

export interface EnsureModelOptions {
  /** Default `.cache/models` under the current working directory. */
  cacheDir?: string
  /** Default 1. */
  version?: number
  /** Generator options (resnet50 width/resolution scale). */
  options?: ModelOptions
}

export interface EnsuredModel {
  /** Absolute path of the cached .onnx file. */
  path: string
  meta: ModelMeta
  hash: string
  /** True when this call wrote the file, false when it was already cached. */
  generated: boolean
  /** Bound input generator for this model/options. */
  inputGenerator(seed: number, batch: number): GeneratedInput[]
}

const inFlight = new Map<string, Promise<boolean>>()
let tmpCounter = 0

async function exists(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile()
  } catch {
    return false
  }
}

async function writeIfMissing(path: string, make: () => Uint8Array): Promise<boolean> {
  if (await exists(path)) return false
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}-${tmpCounter++}`
  try {
    await writeFile(tmp, make())
    await rename(tmp, path) // atomic on POSIX; concurrent writers produce identical bytes anyway
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
  return true
}

/**
 * Makes sure the model file exists in the cache (generating it at most once, atomically) and returns its
 * path and KServe metadata. Safe to call concurrently, in-process and across processes.
 */
export async function ensureModel(name: string, opts: EnsureModelOptions = {}): Promise<EnsuredModel> {
  const def = getModel(name)
  const version = checkVersion(opts.version ?? 1)
  const options = opts.options
  const cacheDir = resolve(opts.cacheDir ?? join(process.cwd(), '.cache', 'models'))
  const hash = modelHash(def.name, version, options)
  const path = join(cacheDir, `${def.name}-v${version}-${hash}.onnx`)
  let pending = inFlight.get(path)
  if (!pending) {
    pending = (async () => {
      await mkdir(cacheDir, { recursive: true })
      return writeIfMissing(path, () => def.generate(version, options))
    })()
    inFlight.set(path, pending)
    pending.then(
      () => inFlight.delete(path),
      () => inFlight.delete(path),
    )
  }
  const generated = await pending
  return {
    path,
    meta: def.meta(version, options),
    hash,
    generated,
    inputGenerator: (seed, batch) => def.inputGenerator(seed, batch, options),
  }
}

/** Converts generated inputs to KServe-v2 JSON request inputs (`data` as plain numbers). */
export function toKServeInputs(
  inputs: readonly GeneratedInput[],
): { name: string; shape: number[]; datatype: KServeDatatype; data: number[] }[] {
  return inputs.map((t) => ({
    name: t.name,
    shape: [...t.shape],
    datatype: t.datatype,
    data: t.datatype === 'FP32' ? Array.from(t.data) : Array.from(t.data, Number),
  }))
}
