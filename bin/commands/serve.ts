/**
 * `breakid serve`: the inference engine alone, emitting telemetry to Kafka (or, with no broker
 * configured, to an in-process pipeline into chDB so nothing is lost).
 */
import { Engine, type ModelSpec } from '../../engine/engine.ts'
import { FaultSchedule, parseFaultSpec } from '../../engine/faults.ts'
import { buildEngineApp } from '../../engine/http.ts'
import { isModelName, MODEL_NAMES } from '../../engine/models/zoo.ts'
import { TelemetryEmitter } from '../../engine/telemetry/emitter.ts'
import { InvalidInputError } from '../../ingest/errors.ts'
import { createLogger } from '../../ingest/logger.ts'
import { queriesPlugin } from '../../queries/http.ts'
import { parsePort, parsePositive } from '../args.ts'
import type { Command } from '../cli.ts'
import { loadConfig } from '../config.ts'
import { defaultDetectors, startPipeline, webhookRoutes } from '../pipeline.ts'
import { openStore, openTransport, runUntilSignal } from '../runtime.ts'

/** `name[@version][:w=0.5,r=32]` → a model spec */
export function parseModelFlag(flag: string): ModelSpec {
  const m = /^([a-z0-9]+)(?:@(\d+))?(?::(.*))?$/.exec(flag.trim())
  if (!m || !isModelName(m[1]!)) {
    throw new InvalidInputError(
      `--model: "${flag}" is not one of ${MODEL_NAMES.join(', ')} (name[@version][:w=…,r=…])`,
    )
  }
  const spec: ModelSpec = { name: m[1]!, version: m[2] ? Number(m[2]) : undefined }
  if (m[3]) {
    const opts: Record<string, number> = {}
    for (const kv of m[3].split(',')) {
      const [k, v] = kv.split('=')
      if (k === 'w') opts.widthScale = parsePositive(v, 'model w')
      else if (k === 'r') opts.resolution = parsePositive(v, 'model r', { integer: true })
      else throw new InvalidInputError(`--model: unknown option "${k}" (w=widthScale, r=resolution)`)
    }
    spec.options = opts
  }
  return spec
}

export const serve: Command = {
  summary: 'serve models over the Open Inference Protocol (KServe v2) with telemetry',
  usage: 'breakid serve [--port 8000] [--models mlp,cnn] [--fault type@start-end[:delayMs]]',
  options: {
    port: { type: 'string', default: '8000' },
    host: { type: 'string', default: '127.0.0.1' },
    models: { type: 'string', default: 'mlp' },
    fault: { type: 'string', multiple: true },
    'max-batch-size': { type: 'string', default: '8' },
    'max-queue-delay-ms': { type: 'string', default: '2' },
  },
  help: {
    port: 'HTTP port (default 8000)',
    host: 'listen address (default 127.0.0.1)',
    models: 'comma-separated models: name[@version][:w=…,r=…] (default mlp)',
    fault: 'inject a fault window (repeatable), e.g. data_starvation@30-60:50',
    'max-batch-size': 'dynamic batcher: most rows per batch (default 8)',
    'max-queue-delay-ms': 'dynamic batcher: longest wait for a fuller batch (default 2)',
  },
  async run({ values }) {
    const cfg = loadConfig(values)
    const logger = createLogger(cfg.logLevel)
    const models = String(values.models).split(',').map(parseModelFlag)
    const transport = await openTransport(cfg, logger)
    // Without Kafka nothing outside this process can read the telemetry: store and watch it here.
    const embedded = transport.kind === 'embedded'
    const ch = embedded ? await openStore(cfg) : undefined
    const pipeline = embedded
      ? await startPipeline({
          transport,
          logger,
          clickhouse: ch,
          detectors: defaultDetectors(),
          routes: webhookRoutes(cfg),
        })
      : undefined
    const emitter = new TelemetryEmitter({ producer: transport.producer(), logger })
    const engine = new Engine({
      models,
      modelCacheDir: cfg.modelCacheDir,
      logger,
      emitter,
      faults: new FaultSchedule(((values.fault as string[] | undefined) ?? []).map(parseFaultSpec)),
      identity: { fleet: cfg.fleet, instance: cfg.instance },
      executor: { executionProvider: cfg.executionProvider },
      batching: {
        maxBatchSize: parsePositive(values['max-batch-size'], 'max-batch-size', { integer: true }),
        maxQueueDelayMs: parsePositive(values['max-queue-delay-ms'], 'max-queue-delay-ms'),
      },
    })
    await engine.start()
    const app = buildEngineApp(engine)
    if (ch) await app.register(queriesPlugin, { ch })
    const address = await app.listen({ host: String(values.host), port: parsePort(values.port) })
    logger.info({ address, models: [...engine.models.keys()], transport: transport.kind }, 'serving')
    await runUntilSignal(logger, [
      async () => {
        await pipeline?.stop()
        await ch?.close()
      },
      () => engine.stop(),
      () => app.close(),
    ])
    return 0
  },
}
