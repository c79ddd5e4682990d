/** Builds the shared parts (transport, ClickHouse) from the configuration, the same way for every command. */
import type { Logger } from 'pino'
import { type ClickHouse, openClickHouse } from '../ingest/clickhouse/client.ts'
import { migrate } from '../ingest/clickhouse/migrations.ts'
import { TOPICS } from '../ingest/contract/topics.ts'
import { EmbeddedBus } from '../ingest/transport/embedded-bus.ts'
import { KafkaTransport } from '../ingest/transport/kafka.ts'
import type { Transport } from '../ingest/transport/transport.ts'
import type { BreakidConfig } from './config.ts'

export async function openTransport(cfg: BreakidConfig, logger: Logger): Promise<Transport> {
  const transport =
    cfg.kafkaBrokers.length > 0
      ? new KafkaTransport({
          brokers: [...cfg.kafkaBrokers],
          logger,
          clientId: `breakid-${cfg.instance}`,
          topicPrefix: cfg.topicPrefix,
        })
      : new EmbeddedBus()
  await transport.ensureTopics(Object.values(TOPICS))
  return transport
}

export async function openStore(cfg: BreakidConfig): Promise<ClickHouse> {
  const ch = openClickHouse({ url: cfg.clickhouseUrl, dataDir: cfg.dataDir, database: cfg.database })
  await migrate(ch)
  return ch
}

/** Runs until SIGINT/SIGTERM, then stops the components in reverse order. */
export async function runUntilSignal(logger: Logger, stops: (() => Promise<void>)[]): Promise<void> {
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve)
    process.once('SIGTERM', resolve)
  })
  logger.info('stopping')
  for (const stop of stops.reverse()) await stop()
}
