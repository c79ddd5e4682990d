/** One pipeline component per command, for running breakid as separate services against Kafka. */
import { createLogger } from '../../core/logger.ts'
import { InvalidInputError } from '../../core/errors.ts'
import type { Command } from '../command.ts'
import { type BreakidConfig, loadConfig } from '../../app/config.ts'
import { defaultDetectors, startPipeline, webhookRoutes } from '../../app/pipeline.ts'
import { observePipeline, type ServiceName, startOpsServer } from '../../app/ops.ts'
import { openStore, openTransport, runUntilSignal } from '../../app/runtime.ts'

function requireKafka(cfg: BreakidConfig, name: string): void {
  if (cfg.kafkaBrokers.length === 0) {
    throw new InvalidInputError(
      `${name} reads from Kafka: set KAFKA_BROKERS or --kafka-brokers (or use "breakid up" to run everything embedded)`,
    )
  }
}

function component(
  name: ServiceName,
  summary: string,
  parts: { ingest?: boolean; detect?: boolean; notify?: boolean },
): Command {
  return {
    summary,
    usage: `KAFKA_BROKERS=host:9092 breakid ${name}`,
    options: {},
    help: {},
    async run({ values }) {
      const cfg = loadConfig(values)
      requireKafka(cfg, `breakid ${name}`)
      const routes = parts.notify ? webhookRoutes(cfg) : undefined
      if (parts.notify && routes!.length === 0) {
        throw new InvalidInputError(
          'breakid notify: no webhook configured (--webhook-url, BREAKID_WEBHOOK_URLS or webhookRoutes in --config)',
        )
      }
      const logger = createLogger(cfg.logLevel)
      // first, so probes get answers (alive, not ready yet) while Kafka and ClickHouse connect
      const ops = await startOpsServer(cfg, name, logger)
      const stops: (() => Promise<void>)[] = [() => ops.close()]
      try {
        const transport = await openTransport(cfg, logger)
        stops.push(() => transport.close())
        // ingest writes rows; detect keeps its baselines there so a restart resumes instead of relearning
        // a ClickHouse server that is down at start is waited for (logged), not a failed start
        const ch =
          parts.ingest || parts.detect ? await openStore(cfg, { waitForServer: { logger } }) : undefined
        stops.push(async () => void (await ch?.close()))
        const pipeline = await startPipeline({
          transport,
          logger,
          clickhouse: parts.ingest ? ch : undefined,
          detectorState: parts.detect ? ch : undefined,
          detectors: parts.detect ? defaultDetectors(cfg.detectors) : undefined,
          newDetectors: parts.detect ? () => defaultDetectors(cfg.detectors) : undefined,
          staleAfterMs: cfg.staleAfterMs,
          routes,
        })
        stops.push(() => pipeline.stop())
        observePipeline(ops, pipeline, transport, ch)
        ops.markStarted()
        logger.info({ component: name, brokers: cfg.kafkaBrokers }, 'running')
      } catch (err) {
        for (const stop of stops.reverse()) await stop().catch(() => {})
        throw err
      }
      await runUntilSignal(logger, stops)
      return 0
    },
  }
}

export const ingest = component(
  'ingest',
  'consume telemetry from Kafka into ClickHouse (group breakid-ingest)',
  {
    ingest: true,
  },
)
export const detect = component(
  'detect',
  'run the detectors on Kafka telemetry, publish alerts (group breakid-detect)',
  {
    detect: true,
  },
)
export const notify = component('notify', 'deliver alerts from Kafka to webhooks (group breakid-notify)', {
  notify: true,
})

export const migrateCommand: Command = {
  summary: 'create or upgrade the ClickHouse tables',
  usage: 'breakid migrate [--clickhouse-url URL]',
  options: {},
  help: {},
  async run({ values }) {
    const cfg = loadConfig(values)
    const ch = await openStore(cfg)
    console.log(
      `schema up to date in ${ch.embedded ? cfg.dataDir : 'ClickHouse server'} (database ${cfg.database})`,
    )
    await ch.close()
    return 0
  },
}
