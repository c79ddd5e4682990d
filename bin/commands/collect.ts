/**
 * `breakid collect`: takes in foreign telemetry — OTLP/HTTP traces and metrics (Triton, any
 * OpenTelemetry-instrumented server) and Prometheus scrapes (Triton /metrics, DCGM exporter) — and
 * puts it on the telemetry topics as the engine's own records. With no Kafka configured it also runs
 * the ingest into chDB, the detectors and the notifier in this process, like `breakid serve`.
 */
import { readFileSync } from 'node:fs'
import { Collector } from '../../collect/collector.ts'
import { parseSpanMapping } from '../../collect/generic/server-spans.ts'
import { parseScrapeTarget } from '../../collect/prometheus/scraper.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { createLogger } from '../../core/logger.ts'
import { parseDurationMs, parsePort } from '../../app/flags.ts'
import type { Command } from '../command.ts'
import { loadConfig } from '../../app/config.ts'
import { defaultDetectors, startPipeline, webhookRoutes } from '../../app/pipeline.ts'
import { openStore, openTransport, runUntilSignal, telemetryProducer } from '../../app/runtime.ts'

function spanMapping(file: unknown) {
  if (file === undefined) return undefined
  try {
    return parseSpanMapping(JSON.parse(readFileSync(String(file), 'utf8')))
  } catch (err) {
    if (err instanceof InvalidInputError) throw err
    throw new InvalidInputError(`--span-mapping: cannot read ${String(file)}: ${(err as Error).message}`)
  }
}

const modelList = (value: unknown): string[] | undefined =>
  value === undefined
    ? undefined
    : String(value)
        .split(',')
        .map((m) => m.trim())
        .filter(Boolean)

export const collect: Command = {
  summary: 'take in OTLP traces/metrics and Prometheus scrapes (Triton, DCGM, any OTel server)',
  usage:
    'breakid collect [--otlp-port 4318] [--otlp-host 0.0.0.0] [--scrape [instance=]URL ...] [--scrape-interval 10s]',
  options: {
    'otlp-port': { type: 'string', default: '4318' },
    'otlp-host': { type: 'string', default: '127.0.0.1' },
    scrape: { type: 'string', multiple: true },
    'scrape-interval': { type: 'string', default: '10s' },
    'triton-models': { type: 'string' },
    'accelerator-models': { type: 'string' },
    'max-wait': { type: 'string', default: '30s' },
    'span-mapping': { type: 'string' },
  },
  help: {
    'otlp-port': 'OTLP/HTTP port for POST /v1/traces and /v1/metrics (default 4318)',
    'otlp-host': 'listen address (default 127.0.0.1; 0.0.0.0 to take telemetry from other hosts)',
    scrape:
      'Prometheus endpoint to scrape (repeatable): [instance=]http://host:port/metrics; targets with one instance merge into one hardware sample',
    'scrape-interval': 'time between scrapes (default 10s)',
    'triton-models': 'comma-separated Triton models counted in hardware samples (default all)',
    'accelerator-models':
      'comma-separated Triton models that run on the accelerator: only their compute is executor busy time and only their queue the executor queue (name them when CPU preprocessing models or ensembles share the server; default all)',
    'max-wait': 'how long a trace waits for its late parts (default 30s)',
    'span-mapping':
      'JSON file: {"modelAttributes":[…],"modelVersionAttributes":[…],"stages":{"<span name>":"<stage>"}}',
  },
  async run({ values }) {
    const cfg = loadConfig(values)
    const logger = createLogger(cfg.logLevel)
    const scrape = ((values.scrape as string[] | undefined) ?? []).map(parseScrapeTarget)
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
    const collector = new Collector({
      producer: telemetryProducer(cfg, transport),
      logger: logger.child({ c: 'collect' }),
      fleet: cfg.fleet,
      otlpPort: parsePort(values['otlp-port'], 'otlp-port'),
      otlpHost: String(values['otlp-host']),
      scrape,
      scrapeIntervalMs: parseDurationMs(values['scrape-interval'], 'scrape-interval'),
      tritonModels: modelList(values['triton-models']),
      acceleratorModels: modelList(values['accelerator-models']),
      maxWaitMs: parseDurationMs(values['max-wait'], 'max-wait'),
      spanMapping: spanMapping(values['span-mapping']),
      recordsPerMessage: cfg.recordsPerMessage,
    })
    await collector.start()
    logger.info(
      {
        otlp: collector.otlpUrl,
        scrape: scrape.map((t) => `${t.instance}=${t.url}`),
        transport: transport.kind,
      },
      'collecting',
    )
    await runUntilSignal(logger, [
      async () => {
        await pipeline?.stop()
        await ch?.close()
      },
      () => collector.stop(),
    ])
    return 0
  },
}
