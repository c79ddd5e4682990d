/**
 * `breakid serve`: the inference engine alone, emitting telemetry to Kafka (or, with no broker
 * configured, to an in-process pipeline into chDB so nothing is lost).
 */
import { rmSync, writeFileSync } from 'node:fs'
import { faultsFromFlags } from '../../engine/faults.ts'
import { buildEngineApp } from '../../engine/http.ts'
import { parseSampleRatio } from '../../engine/telemetry/otlp.ts'
import { createLogger } from '../../core/logger.ts'
import { queriesPlugin } from '../../queries/http.ts'
import {
  batchingFromFlags,
  parseCacheEntries,
  parseModelsFlag,
  parsePort,
  parseRunIdFlag,
} from '../../app/flags.ts'
import type { Command } from '../command.ts'
import { loadConfig } from '../../app/config.ts'
import { engineFromConfig } from '../../app/engine.ts'
import { localPipeline } from '../../app/pipeline.ts'
import { openTransport, runUntilSignal, StartedParts } from '../../app/runtime.ts'
import { queryLimits, resolveApiToken } from '../../app/access.ts'

/** `name[@version][:w=0.5,r=32]` → a model spec */
export const serve: Command = {
  summary: 'serve models over the Open Inference Protocol (KServe v2) with telemetry',
  usage: 'breakid serve [--port 8000] [--models mlp,cnn] [--fault type@start-end[:delayMs]]',
  options: {
    port: { type: 'string', default: '8000' },
    host: { type: 'string', default: '127.0.0.1' },
    models: { type: 'string', default: 'mlp' },
    fault: { type: 'string', multiple: true },
    scenario: { type: 'string' },
    'ground-truth': { type: 'string' },
    'max-batch-size': { type: 'string', default: '8' },
    'max-queue-delay-ms': { type: 'string' },
    batching: { type: 'string', default: 'static' },
    'preferred-batch-sizes': { type: 'string' },
    'latency-target-ms': { type: 'string', default: '50' },
    'queue-deadline-ms': { type: 'string' },
    'cache-entries': { type: 'string', default: '0' },
    'otlp-sample-ratio': { type: 'string', default: '0.1' },
    'run-id': { type: 'string' },
  },
  help: {
    port: 'HTTP port (default 8000)',
    host: 'listen address (default 127.0.0.1)',
    models:
      'comma-separated models, several versions allowed: name[@version][:w=…,r=…] (default mlp), e.g. mlp@1,mlp@2,cnn',
    fault:
      'inject a fault window (repeatable): type@startS-endS[:N | :param=value,…], e.g. data_starvation@30-60:50, error_burst@10-20:rate=0.2',
    scenario:
      'JSON file of fault windows: {"faults":[{"type","startS","endS", ...params}]} (with --fault: both)',
    'ground-truth': 'write the injected fault windows to this file as NDJSON once serving starts',
    'max-batch-size': 'dynamic batcher: most rows per batch (default 8)',
    'max-queue-delay-ms':
      'dynamic batcher: longest wait for a fuller batch (default 2 for static; adaptive: its upper bound, default none)',
    batching: 'none (every request alone) | static (Triton dynamic batcher) | adaptive (default static)',
    'preferred-batch-sizes': 'static: start a batch as soon as one of these sizes can be formed, e.g. 4,8',
    'latency-target-ms': 'adaptive: budget for queue wait + compute per request (default 50)',
    'queue-deadline-ms': 'answer 504 to a request still queued after this long (default: no deadline)',
    'cache-entries': 'result cache capacity in entries, LRU; 0 turns it off (default 0)',
    'otlp-sample-ratio':
      'share of ordinary requests exported as OTLP traces with --otlp-endpoint (default 0.1; errors and requests above the rolling p99 always)',
    'run-id':
      "run id on every span and sample (default serve-<UTC time>-<random>); a request's breakid-run-id header overrides it for that request",
  },
  async run({ values }) {
    const cfg = loadConfig(values)
    const logger = createLogger(cfg.logLevel)
    const runId = parseRunIdFlag(values['run-id'], 'serve')
    const settings = {
      models: parseModelsFlag(String(values.models)),
      faults: faultsFromFlags(values.fault as string[] | undefined, values.scenario as string | undefined),
      batching: batchingFromFlags(values),
      cacheEntries: parseCacheEntries(values['cache-entries']),
      runId,
      otlpSampleRatio: parseSampleRatio(values['otlp-sample-ratio']),
    }
    const parts = new StartedParts(logger)
    await parts.starting(async () => {
      const transport = await openTransport(cfg, logger)
      parts.add('transport', () => transport.close())
      const local = await localPipeline(cfg, transport, logger)
      if (local) parts.add('pipeline', () => local.stop())
      const engine = engineFromConfig({ ...cfg, ...settings }, { transport, logger })
      const token = resolveApiToken(cfg)
      parts.add('api token', () => {
        if (token.path) rmSync(token.path, { force: true })
      })
      // the engine starts when the app gets ready and stops when it closes (engine/http.ts)
      const app = buildEngineApp(engine, { apiToken: token.token, tokenHint: token.hint, manageEngine: true })
      parts.add('engine', () => app.close())
      if (local) {
        await app.register(queriesPlugin, {
          ch: local.ch,
          limits: queryLimits(cfg),
          apiToken: token.token,
          tokenHint: token.hint,
        })
      }
      process.stdout.write(`run: ${runId}\n`)
      const address = await app.listen({ host: String(values.host), port: parsePort(values.port) })
      if (values['ground-truth'])
        writeFileSync(String(values['ground-truth']), engine.faults.groundTruthNdjson())
      logger.info(
        {
          address,
          models: engine.registry.index().map((m) => `${m.name}@${m.version}`),
          transport: transport.kind,
          apiToken: token.path ?? 'configured',
        },
        'serving; the model repository and query API need "Authorization: Bearer <apiToken>"',
      )
    })
    await runUntilSignal(logger, parts)
    return 0
  },
}
