/** Parsers for flag values, each with an error that names the flag. */
import { InvalidInputError } from '../core/errors.ts'
import { newRunId, runIdProblem } from '../contract/run-id.ts'
import { type BatcherOptions, parseBatchingMode } from '../engine/batcher.ts'
import type { ModelSpec } from '../engine/engine.ts'
import {
  isModelName,
  MODEL_NAMES,
  type ModelOptions,
  PRECISIONS,
  type Precision,
} from '../engine/models/zoo.ts'

/** `90`, `90s`, `1500ms`, `2m`, `1h` → milliseconds (a bare number is seconds). */
export function parseDurationMs(value: unknown, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(String(value).trim())
  if (!m) throw new InvalidInputError(`--${flag}: "${value}" is not a duration (e.g. 90s, 1500ms, 2m)`)
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h']
  const ms = Number(m[1]) * unit
  if (ms <= 0) throw new InvalidInputError(`--${flag}: must be greater than zero`)
  return ms
}

export function parsePositive(
  value: unknown,
  flag: string,
  opts: { integer?: boolean; max?: number } = {},
): number {
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0 || (opts.integer && !Number.isInteger(n)) || (opts.max && n > opts.max)) {
    const what = opts.integer ? 'a positive integer' : 'a positive number'
    throw new InvalidInputError(`--${flag}: "${value}" is not ${what}${opts.max ? ` up to ${opts.max}` : ''}`)
  }
  return n
}

export function parsePort(value: unknown, flag = 'port'): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0 || n > 65_535)
    throw new InvalidInputError(`--${flag}: "${value}" is not a port`)
  return n
}

export function parseModelFlag(flag: string): ModelSpec {
  const m = /^([a-z0-9]+)(?:@(\d+))?(?::(.*))?$/.exec(flag.trim())
  if (!m || !isModelName(m[1]!)) {
    throw new InvalidInputError(
      `--model: "${flag}" is not one of ${MODEL_NAMES.join(', ')} (name[@version][:w=…,r=…,p=fp32|int8])`,
    )
  }
  const spec: ModelSpec = { name: m[1]!, version: m[2] ? Number(m[2]) : undefined }
  if (m[3]) {
    const opts: ModelOptions = {}
    for (const kv of m[3].split(',')) {
      const [k, v] = kv.split('=')
      if (k === 'w') opts.widthScale = parsePositive(v, 'model w')
      else if (k === 'r') opts.resolution = parsePositive(v, 'model r', { integer: true })
      else if (k === 'p') {
        if (!(PRECISIONS as readonly string[]).includes(String(v))) {
          throw new InvalidInputError(`--model: precision p="${v}" is not one of ${PRECISIONS.join(', ')}`)
        }
        opts.precision = v as Precision
      } else
        throw new InvalidInputError(
          `--model: unknown option "${k}" (w=widthScale, r=resolution, p=precision)`,
        )
    }
    spec.options = opts
  }
  return spec
}

/**
 * `mlp@1,mlp@2,resnet50:w=0.5,r=32` → one spec per model version. Commas inside a model's options
 * (followed by `key=`) do not separate models.
 */
export function parseModelsFlag(flag: string): ModelSpec[] {
  return flag
    .split(/,(?![a-z]+=)/)
    .filter((part) => part.trim() !== '')
    .map(parseModelFlag)
}

/** `--cache-entries`: a count, 0 turning the result cache off */
export function parseCacheEntries(value: unknown): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0) {
    throw new InvalidInputError(`--cache-entries: "${value}" is not an integer >= 0`)
  }
  return n
}

/** `--run-id`: a valid run id as given, or a fresh one named after the command (contract/run-id.ts). */
export function parseRunIdFlag(value: unknown, kind: string): string {
  if (value === undefined) return newRunId(kind)
  const problem = runIdProblem(value)
  if (problem) throw new InvalidInputError(`--run-id: "${value}": ${problem}`)
  return value as string
}

/** The dynamic batcher's flags (`serve`): --max-batch-size, --batching, --preferred-batch-sizes, ... */
export function batchingFromFlags(values: Record<string, unknown>): BatcherOptions {
  const optional = (flag: string) =>
    values[flag] === undefined ? undefined : parsePositive(values[flag], flag)
  return {
    maxBatchSize: parsePositive(values['max-batch-size'], 'max-batch-size', { integer: true }),
    maxQueueDelayMs: optional('max-queue-delay-ms'),
    mode: parseBatchingMode(String(values.batching)),
    preferredBatchSizes: values['preferred-batch-sizes']
      ?.toString()
      .split(',')
      .map((v) => parsePositive(v, 'preferred-batch-sizes', { integer: true })),
    latencyTargetMs: parsePositive(values['latency-target-ms'], 'latency-target-ms'),
    defaultDeadlineMs: optional('queue-deadline-ms'),
  }
}
