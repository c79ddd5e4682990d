/** Builds the shared parts (transport, ClickHouse) from the configuration, the same way for every command. */
import { dirname, join } from 'node:path'
import type { Logger } from 'pino'
import { TelemetryEmitter } from '../engine/telemetry/emitter.ts'
import { KafkaWorkerProducer } from '../bus/kafka-worker.ts'
import { type ClickHouse, openClickHouse } from '../store/client.ts'
import { migrate } from '../store/migrations.ts'
import { TOPICS } from '../contract/topics.ts'
import { EmbeddedBus } from '../bus/embedded-bus.ts'
import { KafkaTransport } from '../bus/kafka.ts'
import type { MessageProducer, Transport } from '../bus/transport.ts'
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

/**
 * The engine's telemetry producer. With Kafka it runs on its own thread (bus/kafka-worker.ts):
 * kafkajs costs tens of µs of CPU per message, which would otherwise come out of the event loop that
 * serves requests. The embedded bus is in-process by nature and stays on the transport.
 */
export function telemetryProducer(cfg: BreakidConfig, transport: Transport): MessageProducer {
  if (cfg.kafkaBrokers.length === 0) return transport.producer()
  return new KafkaWorkerProducer({
    brokers: [...cfg.kafkaBrokers],
    clientId: `breakid-${cfg.instance}-telemetry`,
    topicPrefix: cfg.topicPrefix,
    logLevel: cfg.logLevel,
  })
}

/** The engine's telemetry emitter as every command configures it. */
export function telemetryEmitter(cfg: BreakidConfig, transport: Transport, logger: Logger): TelemetryEmitter {
  return new TelemetryEmitter({
    producer: telemetryProducer(cfg, transport),
    logger,
    recordsPerMessage: cfg.recordsPerMessage,
  })
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

/** Where a running `breakid up` says how to reach it (its pid and query API URL). */
export function upStatePath(dataDir: string): string {
  return join(dirname(dataDir), 'up.json')
}
