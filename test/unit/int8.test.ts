/**
 * The int8 variant of every generated model: the graph really computes in integers (MatMulInteger /
 * ConvInteger after DynamicQuantizeLinear, no float Gemm/Conv left), fp32 bytes are unchanged by the
 * new option, the deviation from fp32 on the test inputs is reported, small and not zero, and the
 * int8 model served by the engine answers the test inputs within that reported deviation.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import ort from 'onnxruntime-node'
import { decodeModel } from '../../engine/models/onnx-builder.ts'
import {
  DEVIATION_SEEDS,
  type PrecisionDeviation,
  precisionDeviation,
} from '../../engine/models/precision.ts'
import { ensureModel, MODELS, type ModelOptions, modelHash, toKServeInputs } from '../../engine/models/zoo.ts'
import { parseModelFlag } from '../../app/flags.ts'
import { type EngineHarness, MODEL_CACHE_DIR, startEngineHarness } from '../helpers/engine-harness.ts'

const TINY_RESNET: ModelOptions = { widthScale: 1 / 16, resolution: 64 }
/** model → its options and the largest deviation accepted (outputs: probabilities, or an embedding) */
const CASES: [string, ModelOptions, number][] = [
  ['mlp', {}, 0.05],
  ['cnn', {}, 0.05],
  ['transformer', {}, 0.1],
  ['resnet50', TINY_RESNET, 0.05],
]

const ops = (bytes: Uint8Array) => decodeModel(bytes).graph!.node!.map((n) => n.opType!)
const count = (list: string[], op: string) => list.filter((o) => o === op).length

describe('int8 graphs', () => {
  for (const [name, options] of CASES) {
    test(`${name}: integer matrix products, no float Gemm/Conv`, () => {
      const def = MODELS[name as keyof typeof MODELS]
      const fp32 = ops(def.generate(1, options))
      const int8 = ops(def.generate(1, { ...options, precision: 'int8' }))
      const products = count(fp32, 'Gemm') + count(fp32, 'Conv') + count(fp32, 'MatMul')
      assert.equal(count(int8, 'Gemm') + count(int8, 'Conv'), 0)
      // the transformer's attention (activations × activations) stays float: 2 per layer
      assert.equal(count(int8, 'MatMul'), name === 'transformer' ? 4 : 0)
      const integer = count(int8, 'MatMulInteger') + count(int8, 'ConvInteger')
      assert.equal(integer, products - count(int8, 'MatMul'))
      assert.equal(count(int8, 'DynamicQuantizeLinear'), integer)
    })
  }

  test('fp32 is the default: its bytes and cache file do not change with the option', () => {
    assert.deepEqual(MODELS.cnn.generate(1, { precision: 'fp32' }), MODELS.cnn.generate(1))
    assert.equal(modelHash('cnn', 1, { precision: 'fp32' }), modelHash('cnn', 1))
    assert.notEqual(modelHash('cnn', 1, { precision: 'int8' }), modelHash('cnn', 1))
    assert.throws(() => MODELS.mlp.generate(1, { precision: 'int4' as 'int8' }), /precision must be one of/)
  })

  test('the --model flag takes p=int8', () => {
    assert.deepEqual(parseModelFlag('resnet50:w=0.5,r=32,p=int8').options, {
      widthScale: 0.5,
      resolution: 32,
      precision: 'int8',
    })
    assert.throws(() => parseModelFlag('mlp:p=int4'), /precision p="int4"/)
  })
})

describe('deviation from fp32 on the test inputs', () => {
  const reports = new Map<string, PrecisionDeviation>()
  before(async () => {
    for (const [name, options] of CASES) {
      reports.set(name, await precisionDeviation(name, options, 'int8', { cacheDir: MODEL_CACHE_DIR }))
    }
  })

  for (const [name, , bound] of CASES) {
    test(`${name}: reported, small, and not zero (it is quantized)`, () => {
      const r = reports.get(name)!
      assert.ok(r.maxAbs > 1e-5, `${name}: ${r.maxAbs} — no deviation means nothing was quantized`)
      assert.ok(r.maxAbs < bound, `${name}: max deviation ${r.maxAbs} over ${bound}`)
      assert.ok(r.meanAbs <= r.maxAbs)
      assert.ok(r.values > 0)
    })
  }

  describe('the int8 mlp served by the engine stays within the reported deviation', () => {
    let h: EngineHarness
    let fp32: ort.InferenceSession
    before(async () => {
      h = await startEngineHarness({ models: [{ name: 'mlp', options: { precision: 'int8' } }] })
      fp32 = await ort.InferenceSession.create((await ensureModel('mlp', { cacheDir: MODEL_CACHE_DIR })).path)
    })
    after(async () => {
      await h.close()
      await fp32.release()
    })
    test('every output value of every test input, alone and in batches of 8', async () => {
      const reported = reports.get('mlp')!.maxAbs
      let worst = 0
      for (const batch of [1, 8]) {
        for (const seed of DEVIATION_SEEDS) {
          const inputs = MODELS.mlp.inputGenerator(seed, batch)
          const res = await h.app.inject({
            method: 'POST',
            url: '/v2/models/mlp/infer',
            headers: { 'content-type': 'application/json' },
            payload: JSON.stringify({ inputs: toKServeInputs(inputs) }),
          })
          assert.equal(res.statusCode, 200, res.body)
          const served = (res.json() as { outputs: { data: number[] }[] }).outputs[0]!.data
          const t = inputs[0]!
          const expected = (await fp32.run({ features: new ort.Tensor('float32', t.data, t.shape) })).scores!
            .data as Float32Array
          assert.equal(served.length, expected.length)
          for (let i = 0; i < served.length; i++) worst = Math.max(worst, Math.abs(served[i]! - expected[i]!))
        }
      }
      assert.ok(worst > 0, 'the served model is the int8 one')
      assert.ok(worst <= reported + 1e-6, `served deviation ${worst} above the reported ${reported}`)
    })
  })
})
