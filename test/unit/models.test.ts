import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import onnxProto from 'onnx-proto'
import ort from 'onnxruntime-node'
import { attr, GraphBuilder } from '../../engine/models/onnx-builder.ts'
import {
  cnnWidths,
  ensureModel,
  type GeneratedInput,
  getModel,
  MODEL_NAMES,
  MODELS,
  type ModelName,
  type ModelOptions,
  modelHash,
  mulberry32,
  toKServeInputs,
} from '../../engine/models/zoo.ts'

/** Tiny ResNet-50-shaped variant: same [3,4,6,3] bottleneck layout, 1/16 width, 64x64 input. */
const TINY_RESNET: ModelOptions = { widthScale: 1 / 16, resolution: 64 }
const optionsFor = (name: ModelName): ModelOptions | undefined =>
  name === 'resnet50' ? TINY_RESNET : undefined
const SOFTMAX_OUTPUTS: Record<ModelName, boolean> = {
  mlp: true,
  cnn: true,
  resnet50: true,
  transformer: false,
}

let cacheDir = ''
before(async () => {
  cacheDir = await mkdtemp(join(tmpdir(), 'breakid-models-'))
})
after(async () => {
  await rm(cacheDir, { recursive: true, force: true })
})

function toFeeds(inputs: readonly GeneratedInput[]): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {}
  for (const t of inputs) {
    feeds[t.name] =
      t.datatype === 'FP32'
        ? new ort.Tensor('float32', t.data, t.shape)
        : new ort.Tensor('int64', t.data, t.shape)
  }
  return feeds
}

/** Repeats the first row of each generated input `batch` times. */
function repeatFirstRow(inputs: readonly GeneratedInput[], batch: number): GeneratedInput[] {
  return inputs.map((t): GeneratedInput => {
    const rowLen = t.data.length / t.shape[0]!
    const shape = [batch, ...t.shape.slice(1)]
    if (t.datatype === 'FP32') {
      const data = new Float32Array(rowLen * batch)
      for (let b = 0; b < batch; b++) data.set(t.data.subarray(0, rowLen), b * rowLen)
      return { ...t, shape, data }
    }
    const data = new BigInt64Array(rowLen * batch)
    for (let b = 0; b < batch; b++) data.set(t.data.subarray(0, rowLen), b * rowLen)
    return { ...t, shape, data }
  })
}

test('mulberry32 is deterministic and in [0, 1)', () => {
  const a = mulberry32(42)
  const b = mulberry32(42)
  for (let i = 0; i < 1000; i++) {
    const x = a()
    assert.equal(x, b())
    assert.ok(x >= 0 && x < 1)
  }
  assert.notEqual(mulberry32(1)(), mulberry32(2)())
})

test('GraphBuilder: dynamic batch dim, raw float data, typed attributes', async () => {
  const g = new GraphBuilder('tiny')
  const x = g.input('x', 'float32', ['batch', 2])
  const w = g.initializer('w', [1, 2, 3, 4], [2, 2])
  const y = g.op('Gemm', [x, w], { transB: attr.int(1), alpha: attr.float(2) }, 'y')
  g.output(y, 'float32', ['batch', 2])
  assert.throws(() => g.initializer('w', [1], [1]), /duplicate/)
  assert.throws(() => g.initializer('bad', [1, 2, 3], [2, 2]), /elements/)
  assert.throws(() => g.op('Relu', ['missing']), /unknown input/)
  const bytes = g.toBytes()
  const decoded = onnxProto.onnx.ModelProto.decode(bytes)
  // protobufjs decodes int64 fields as Long objects (when the long package is present), not numbers.
  assert.equal(String(decoded.opsetImport[0]?.version), '17')
  assert.equal(decoded.graph!.input![0]?.type?.tensorType?.shape?.dim?.[0]?.dimParam, 'batch')
  assert.equal(decoded.graph!.initializer![0]?.rawData?.length, 16)
  const session = await ort.InferenceSession.create(bytes)
  const out = await session.run({
    x: new ort.Tensor('float32', Float32Array.from([1, 1, 2, 0, 0, 1]), [3, 2]),
  })
  // y = 2 * x · wᵀ, w = [[1,2],[3,4]]
  assert.deepEqual(Array.from(out.y!.data as Float32Array), [6, 14, 4, 12, 4, 8])
  assert.deepEqual(out.y!.dims, [3, 2])
})

test('registry metadata is KServe-v2 shaped', () => {
  assert.deepEqual([...MODEL_NAMES].sort(), Object.keys(MODELS).sort())
  assert.throws(() => getModel('nope'), /unknown model/)
  const meta = MODELS.mlp.meta()
  assert.deepEqual(meta, {
    name: 'mlp',
    version: '1',
    platform: 'onnxruntime_onnx',
    inputs: [{ name: 'features', datatype: 'FP32', shape: [-1, 16] }],
    outputs: [{ name: 'scores', datatype: 'FP32', shape: [-1, 4] }],
  })
  assert.equal(MODELS.mlp.meta(2).version, '2')
  assert.deepEqual(MODELS.cnn.meta().inputs[0]?.shape, [-1, 3, 32, 32])
  assert.deepEqual(MODELS.cnn.meta().outputs[0]?.shape, [-1, 10])
  assert.deepEqual(MODELS.transformer.meta().inputs[0], {
    name: 'input_ids',
    datatype: 'INT64',
    shape: [-1, 32],
  })
  assert.deepEqual(MODELS.transformer.meta().outputs[0]?.shape, [-1, 64])
  assert.deepEqual(MODELS.resnet50.meta().inputs[0]?.shape, [-1, 3, 224, 224])
  assert.deepEqual(MODELS.resnet50.meta(1, TINY_RESNET).inputs[0]?.shape, [-1, 3, 64, 64])
  assert.deepEqual(MODELS.resnet50.meta().outputs[0]?.shape, [-1, 1000])
  assert.throws(() => MODELS.resnet50.meta(1, { resolution: 100 }), /multiple of 32/)
})

test('input generators are deterministic, prefix-stable and valid', () => {
  const a = MODELS.mlp.inputGenerator(5, 4)
  assert.deepEqual(a, MODELS.mlp.inputGenerator(5, 4))
  assert.notDeepEqual(a, MODELS.mlp.inputGenerator(6, 4))
  const one = MODELS.mlp.inputGenerator(5, 1)[0]!
  assert.deepEqual(one.shape, [1, 16])
  assert.deepEqual(one.data, (a[0]!.data as Float32Array).slice(0, 16))
  const ids = MODELS.transformer.inputGenerator(1, 3)[0]!
  assert.equal(ids.datatype, 'INT64')
  assert.deepEqual(ids.shape, [3, 32])
  for (const v of ids.data) assert.ok(v >= 0n && v < 1024n)
  const [json] = toKServeInputs([ids])
  assert.equal(json?.data.length, 96)
  assert.equal(typeof json?.data[0], 'number')
  assert.throws(() => MODELS.mlp.inputGenerator(1, 0), /batch/)
})

test('resnet50 has the real ResNet-50 parameter count at full width', () => {
  // torchvision resnet50: 25,557,032 params incl. BatchNorm; here BN is folded into conv biases.
  const params = MODELS.resnet50.parameterCount()
  assert.ok(params > 25_400_000 && params < 25_600_000, `params=${params}`)
})

for (const name of MODEL_NAMES) {
  describe(`model ${name}`, () => {
    const options = optionsFor(name)
    const def = MODELS[name]

    test('generation is deterministic and versioned', () => {
      const a = def.generate(1, options)
      const b = def.generate(1, options)
      assert.ok(a.length > 0)
      assert.deepEqual(Buffer.from(a), Buffer.from(b))
      const v2 = def.generate(2, options)
      assert.equal(v2.length, a.length)
      assert.notDeepEqual(Buffer.from(v2), Buffer.from(a))
      assert.notEqual(modelHash(name, 1, options), modelHash(name, 2, options))
      assert.equal(modelHash(name, 1, options), modelHash(name, 1, options))
    })

    test('ensureModel caches atomically and runs at batch 1 and 4', async () => {
      const [first, concurrent] = await Promise.all([
        ensureModel(name, { cacheDir, options }),
        ensureModel(name, { cacheDir, options }),
      ])
      assert.equal(first.path, concurrent.path)
      assert.match(basename(first.path), new RegExp(`^${name}-v1-[0-9a-f]{12}\\.onnx$`))
      assert.deepEqual(Buffer.from(await readFile(first.path)), Buffer.from(def.generate(1, options)))
      const mtime = (await stat(first.path)).mtimeMs
      const again = await ensureModel(name, { cacheDir, options })
      assert.equal(again.generated, false)
      assert.equal(again.path, first.path)
      assert.equal((await stat(first.path)).mtimeMs, mtime)
      assert.deepEqual(again.meta, def.meta(1, options))

      const session = await ort.InferenceSession.create(first.path)
      const { meta } = first
      assert.deepEqual(
        session.inputNames,
        meta.inputs.map((t) => t.name),
      )
      assert.deepEqual(
        session.outputNames,
        meta.outputs.map((t) => t.name),
      )

      const outName = meta.outputs[0]!.name
      const outShape = meta.outputs[0]!.shape
      const rowLen = outShape.slice(1).reduce((x, y) => x * y, 1)

      const single = await session.run(toFeeds(first.inputGenerator(11, 1)))
      const singleOut = single[outName]!
      assert.deepEqual(singleOut.dims, [1, ...outShape.slice(1)])

      const batch = 4
      const varied = await session.run(toFeeds(first.inputGenerator(11, batch)))
      assert.deepEqual(varied[outName]!.dims, [batch, ...outShape.slice(1)])

      const repeated = await session.run(toFeeds(repeatFirstRow(first.inputGenerator(11, 1), batch)))
      const out = repeated[outName]!
      assert.equal(out.type, 'float32')
      assert.deepEqual(out.dims, [batch, ...outShape.slice(1)])
      const data = out.data as Float32Array
      const row0 = data.subarray(0, rowLen)
      for (const x of data) assert.ok(Number.isFinite(x))
      for (let b = 1; b < batch; b++) {
        assert.deepEqual(
          data.subarray(b * rowLen, (b + 1) * rowLen),
          row0,
          `batch row ${b} differs from row 0`,
        )
      }
      // Batch 1 vs batch 4: same maths, possibly different kernels, so allow float rounding.
      const s = singleOut.data as Float32Array
      for (let i = 0; i < rowLen; i++)
        assert.ok(Math.abs(s[i]! - row0[i]!) < 1e-4, `batch-1 vs batch-4 at ${i}`)

      // Different inputs give different outputs (model is not degenerate).
      const v = varied[outName]!.data as Float32Array
      assert.notDeepEqual(v.subarray(0, rowLen), v.subarray(rowLen, 2 * rowLen))

      if (SOFTMAX_OUTPUTS[name]) {
        for (let b = 0; b < batch; b++) {
          let sum = 0
          for (let i = 0; i < rowLen; i++) {
            const p = v[b * rowLen + i]!
            assert.ok(p >= 0 && p <= 1)
            sum += p
          }
          assert.ok(Math.abs(sum - 1) < 1e-5, `row ${b} sums to ${sum}`)
        }
      }
    })
  })
}

test('changed options give a different cache file', async () => {
  const a = await ensureModel('resnet50', { cacheDir, options: TINY_RESNET })
  const b = await ensureModel('resnet50', { cacheDir, options: { ...TINY_RESNET, resolution: 32 } })
  assert.notEqual(a.path, b.path)
  assert.deepEqual(b.meta.inputs[0]?.shape, [-1, 3, 32, 32])
  const mlp2 = await ensureModel('mlp', { cacheDir, version: 2 })
  assert.match(basename(mlp2.path), /^mlp-v2-[0-9a-f]{12}\.onnx$/)
  assert.equal(mlp2.meta.version, '2')
  await assert.rejects(ensureModel('mlp', { cacheDir, version: 0 }), /version/)
})

describe('cnn width option', () => {
  /** sha256 of `cnn` v1 as generated before the width option existed: plain `cnn` must keep its bytes */
  const CNN_V1_SHA256 = '5db2a0f63268fc5f2260bf56c63fd0497e186913e1f986dabf459250ba74fa76'
  const WIDE: ModelOptions = { widthScale: 4 }
  const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')
  const initializerShapes = (bytes: Uint8Array) =>
    Object.fromEntries(
      onnxProto.onnx.ModelProto.decode(bytes).graph!.initializer!.map((t) => [t.name!, t.dims!.map(Number)]),
    )

  test('plain cnn is unchanged and is cnn:w=1', () => {
    const plain = MODELS.cnn.generate(1)
    assert.equal(sha256(plain), CNN_V1_SHA256)
    assert.deepEqual(Buffer.from(MODELS.cnn.generate(1, { widthScale: 1 })), Buffer.from(plain))
    assert.deepEqual(MODELS.cnn.normalizeOptions({ widthScale: 1 }), {})
    assert.deepEqual(MODELS.cnn.normalizeOptions({ resolution: 64 }), {}, 'cnn ignores resolution')
    assert.equal(modelHash('cnn', 1, { widthScale: 1 }), modelHash('cnn'))
    assert.equal(MODELS.cnn.parameterCount(), 136_874)
  })

  test('cnn:w=4 has conv 64, conv 128, fc 256 and the cnn input/output shapes', () => {
    assert.deepEqual(cnnWidths(4), { conv1: 64, conv2: 128, fc1: 256 })
    assert.deepEqual(cnnWidths(), { conv1: 16, conv2: 32, fc1: 64 })
    assert.deepEqual(MODELS.cnn.meta(1, WIDE), MODELS.cnn.meta())
    assert.deepEqual(MODELS.cnn.normalizeOptions(WIDE), { widthScale: 4 })
    assert.deepEqual(initializerShapes(MODELS.cnn.generate(1, WIDE)), {
      'conv1.weight': [64, 3, 3, 3],
      'conv1.bias': [64],
      'conv2.weight': [128, 64, 3, 3],
      'conv2.bias': [128],
      'fc1.weight': [256, 128 * 8 * 8],
      'fc1.bias': [256],
      'fc2.weight': [10, 256],
      'fc2.bias': [10],
    })
    assert.equal(MODELS.cnn.parameterCount(WIDE), 2_175_626)
    assert.throws(() => MODELS.cnn.generate(1, { widthScale: 0 }), /widthScale/)
  })

  test('cnn:w=4 generation is deterministic and cached under its own file', async () => {
    const a = MODELS.cnn.generate(1, WIDE)
    assert.deepEqual(Buffer.from(a), Buffer.from(MODELS.cnn.generate(1, WIDE)))
    assert.notEqual(modelHash('cnn', 1, WIDE), modelHash('cnn'))
    const [wide, plain] = await Promise.all([
      ensureModel('cnn', { cacheDir, options: WIDE }),
      ensureModel('cnn', { cacheDir }),
    ])
    assert.notEqual(wide.path, plain.path)
    assert.deepEqual(Buffer.from(await readFile(wide.path)), Buffer.from(a))
    assert.deepEqual(Buffer.from(await readFile(plain.path)), Buffer.from(MODELS.cnn.generate(1)))
  })

  test('cnn:w=4 runs; plain cnn and cnn:w=1 give the same output', async () => {
    const input = MODELS.cnn.inputGenerator(7, 2)
    const run = async (bytes: Uint8Array) => {
      const session = await ort.InferenceSession.create(bytes)
      const out = (await session.run(toFeeds(input))).probs!
      await session.release()
      return out
    }
    const wide = await run(MODELS.cnn.generate(1, WIDE))
    assert.deepEqual(wide.dims, [2, 10])
    const p = wide.data as Float32Array
    for (let b = 0; b < 2; b++) {
      const sum = p.subarray(b * 10, (b + 1) * 10).reduce((x, y) => x + y, 0)
      assert.ok(Math.abs(sum - 1) < 1e-5, `row ${b} sums to ${sum}`)
    }
    const plain = await run(MODELS.cnn.generate(1))
    const w1 = await run(MODELS.cnn.generate(1, { widthScale: 1 }))
    assert.deepEqual(Array.from(w1.data as Float32Array), Array.from(plain.data as Float32Array))
    assert.notDeepEqual(Array.from(p), Array.from(plain.data as Float32Array))
  })
})
