/**
 * Triton's model configuration extension (`GET /v2/models/{m}[/versions/{v}]/config`): a loaded
 * model as the JSON form of Triton's `ModelConfig` message (model_config.proto), so NVIDIA's own
 * clients (`tritonclient`'s get_model_config) and tools that read it (perf_analyzer, model
 * navigators) find what they expect: the platform, the batch limit, tensors with Triton's
 * `TYPE_*` data types and dims without the batch dimension, the dynamic batcher and where it runs.
 */
import type { DynamicBatcher } from './batcher.ts'
import type { LoadedModel } from './registry.ts'
import type { KServeDatatype, TensorMeta } from './models/zoo.ts'

const DATA_TYPE: Record<KServeDatatype, string> = { FP32: 'TYPE_FP32', INT64: 'TYPE_INT64' }

interface ConfigTensor {
  name: string
  data_type: string
  dims: number[]
}

export interface TritonModelConfig {
  name: string
  platform: string
  backend: string
  version_policy: { specific: { versions: number[] } }
  max_batch_size: number
  input: ConfigTensor[]
  output: ConfigTensor[]
  instance_group: { name: string; kind: 'KIND_CPU' | 'KIND_GPU'; count: number }[]
  dynamic_batching?: { preferred_batch_size: number[]; max_queue_delay_microseconds: number }
}

/** A tensor's dims as Triton writes them: without the leading (-1) batch dimension when batching. */
function tensor(t: TensorMeta, batching: boolean): ConfigTensor {
  const dims = batching && t.shape[0] === -1 ? t.shape.slice(1) : t.shape
  return { name: t.name, data_type: DATA_TYPE[t.datatype], dims }
}

function dynamicBatching(b: DynamicBatcher): TritonModelConfig['dynamic_batching'] {
  if (b.mode === 'none') return undefined
  return {
    preferred_batch_size: [...b.preferredBatchSizes].sort((x, y) => x - y),
    // adaptive batching has no fixed delay (its bound may be ∞): Triton's 0 means "no waiting bound"
    max_queue_delay_microseconds: Number.isFinite(b.maxQueueDelayMs)
      ? Math.round(b.maxQueueDelayMs * 1000)
      : 0,
  }
}

export function modelConfig(model: LoadedModel): TritonModelConfig {
  const { meta, executor, batcher } = model
  const batching = batcher.mode !== 'none'
  const config: TritonModelConfig = {
    name: meta.name,
    platform: meta.platform,
    backend: 'onnxruntime',
    version_policy: { specific: { versions: [Number(meta.version)] } },
    max_batch_size: batching ? batcher.maxBatchSize : 0,
    input: meta.inputs.map((t) => tensor(t, batching)),
    output: meta.outputs.map((t) => tensor(t, batching)),
    instance_group: [
      { name: `${meta.name}_0`, kind: executor.device === 'cpu' ? 'KIND_CPU' : 'KIND_GPU', count: 1 },
    ],
  }
  const dynamic = dynamicBatching(batcher)
  if (dynamic) config.dynamic_batching = dynamic
  return config
}
