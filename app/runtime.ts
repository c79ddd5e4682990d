/** Builds the shared parts (transport, ClickHouse) from the configuration, the same way for every command. */
import type { Logger } from 'pino'
import { TelemetryEmitter } from '../engine/telemetry/emitter.ts'
import { KafkaWorkerProducer } from '../bus/kafka-worker.ts'
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
export type TelemetryConfig = Pick<
  BreakidConfig,
  'kafkaBrokers' | 'instance' | 'topicPrefix' | 'logLevel' | 'recordsPerMessage'
>

export function telemetryProducer(cfg: TelemetryConfig, transport: Transport): MessageProducer {
  if (cfg.kafkaBrokers.length === 0) return transport.producer()
  return new KafkaWorkerProducer({
    brokers: [...cfg.kafkaBrokers],
    clientId: `breakid-${cfg.instance}-telemetry`,
    topicPrefix: cfg.topicPrefix,
    logLevel: cfg.logLevel,
  })
}

/** The engine's telemetry emitter as every command configures it. */
export function telemetryEmitter(
  cfg: TelemetryConfig,
  transport: Transport,
  logger: Logger,
): TelemetryEmitter {
  return new TelemetryEmitter({
    producer: telemetryProducer(cfg, transport),
    logger,
    recordsPerMessage: cfg.recordsPerMessage,
  })
}

/** Runs until SIGINT/SIGTERM, then stops the components in reverse order. */
export async function runUntilSignal(
  logger: Logger,
  stops: (() => Promise<void>)[] | StartedParts,
): Promise<void> {
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve)
    process.once('SIGTERM', resolve)
  })
  logger.info('stopping')
  if (stops instanceof StartedParts) return stops.stop()
  for (const stop of stops.reverse()) await stop()
}

/**
 * What a command has started, to stop in reverse order: each part is added right after it started,
 * so `starting()` can stop exactly those when a later one fails — a command that cannot start prints
 * its error and exits instead of hanging on the servers it already opened.
 */
export class StartedParts {
  private readonly stops: { name: string; stop: () => Promise<void> | void }[] = []
  private stopping: Promise<void> | undefined

  constructor(private readonly logger?: Logger) {}

  /** Adds a started part; returns its stop, to call ahead of the others (it runs once either way). */
  add(name: string, stop: () => Promise<void> | void): () => Promise<void> {
    let stopped: Promise<void> | undefined
    const once = () => {
      stopped ??= (async () => stop())()
      return stopped
    }
    this.stops.push({ name, stop: once })
    return once
  }

  /**
   * Runs `start`; when it throws, stops what was added so far and rethrows (the first error is the
   * one the user sees; a failing stop is logged).
   */
  async starting<T>(start: () => Promise<T>): Promise<T> {
    try {
      return await start()
    } catch (err) {
      await this.stop().catch(() => {})
      throw err
    }
  }

  /** Stops everything in reverse order, each part even when one before it failed; once. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      let first: unknown
      for (const { name, stop } of this.stops.reverse()) {
        try {
          await stop()
        } catch (err) {
          first ??= err
          this.logger?.error({ err, part: name }, 'stopping failed')
        }
      }
      if (first !== undefined) throw first
    })()
    return this.stopping
  }
}

export { openStore, upStatePath } from './store.ts'
