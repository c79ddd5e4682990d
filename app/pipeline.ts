/**
 * The consumers behind the engine — ingest (→ ClickHouse), detect (→ alerts) and notify
 * (→ webhooks) — started from one configuration. `breakid up` runs all three in one process; the
 * `ingest`, `detect` and `notify` commands run one each against Kafka.
 */
import type { Logger } from 'pino'
import { type NotifyRoute, WebhookNotifier } from '../notify/notifier.ts'
import { DetectorConsumer } from '../detectors/consumer.ts'
import type { Detector } from '../detectors/detector.ts'
import { buildDetectors, type DetectorConfig } from '../detectors/registry.ts'
import { ClickHouseStateStore } from '../detectors/state-store.ts'
import type { ClickHouse } from '../store/client.ts'
import type { Alert } from '../contract/records.ts'
import { Ingester } from '../ingest/ingester.ts'
import type { Transport } from '../bus/transport.ts'
import type { BreakidConfig } from './config.ts'
import { openStore } from './store.ts'

/**
 * The live detector set as configured (detectors/registry.ts: every detector with its settings;
 * `config.detectors` overrides settings and turns detectors off). Fresh on every call: detectors keep
 * state, so each consumer or evaluation run gets its own.
 */
export function defaultDetectors(config: DetectorConfig = {}): Detector[] {
  return buildDetectors(config)
}

/** The configured routes: `--webhook-url`s, then the config file's `webhookRoutes`, then `extra`. */
export function webhookRoutes(cfg: BreakidConfig, extra: NotifyRoute[] = []): NotifyRoute[] {
  return [
    ...cfg.webhookUrls.map((url) => ({ url, secret: cfg.webhookSecret })),
    ...cfg.webhookRoutes.map((r) => ({ ...r, secret: r.secret ?? cfg.webhookSecret })),
    ...extra,
  ]
}

export interface Pipeline {
  ingester?: Ingester
  detector?: DetectorConsumer
  notifier?: WebhookNotifier
  stop(): Promise<void>
}

export async function startPipeline(opts: {
  transport: Transport
  logger: Logger
  clickhouse?: ClickHouse
  /** where detector state is checkpointed; defaults to `clickhouse`. Give it alone to persist state
   *  without running the ingester (`breakid detect`) */
  detectorState?: ClickHouse
  detectors?: Detector[]
  /** builds the same detector set afresh: members of a Kafka group hand state over (detectors/consumer.ts) */
  newDetectors?: () => Detector[]
  routes?: NotifyRoute[]
  onAlert?: (alert: Alert) => void
  /** a firing alert nothing evaluated for this long (event time) resolves as stale, ms */
  staleAfterMs?: number
}): Promise<Pipeline> {
  const { transport, logger } = opts
  const p: Pipeline = {
    stop: async () => {
      // upstream first, so each stage drains into a consumer that is still running
      await p.detector?.stop()
      await p.notifier?.stop()
      await p.ingester?.stop()
    },
  }
  if (opts.clickhouse) {
    p.ingester = new Ingester({
      transport,
      clickhouse: opts.clickhouse,
      logger: logger.child({ c: 'ingest' }),
    })
    await p.ingester.start()
  }
  const stateCh = opts.detectorState ?? opts.clickhouse
  if (opts.detectors) {
    p.detector = new DetectorConsumer({
      transport,
      detectors: opts.detectors,
      logger: logger.child({ c: 'detect' }),
      onAlert: opts.onAlert,
      stateStore: stateCh ? new ClickHouseStateStore(stateCh) : undefined,
      // on Kafka, several detect processes share the partitions: state moves with them (consumer.ts)
      newDetectors: transport.kind === 'kafka' ? opts.newDetectors : undefined,
      staleAfterUs: opts.staleAfterMs === undefined ? undefined : opts.staleAfterMs * 1000,
    })
    await p.detector.start()
  }
  if (opts.routes && opts.routes.length > 0) {
    p.notifier = new WebhookNotifier({
      transport,
      routes: opts.routes,
      logger: logger.child({ c: 'notify' }),
    })
    await p.notifier.start()
  }
  return p
}

/**
 * The consumers as configured (ClickHouse ingest, the detectors, the webhook routes plus `extraRoutes`)
 * on `transport`.
 */
export function pipelineFromConfig(
  cfg: BreakidConfig,
  deps: { transport: Transport; logger: Logger; clickhouse: ClickHouse; extraRoutes?: NotifyRoute[] },
): Promise<Pipeline> {
  return startPipeline({
    transport: deps.transport,
    logger: deps.logger,
    clickhouse: deps.clickhouse,
    detectors: defaultDetectors(cfg.detectors),
    staleAfterMs: cfg.staleAfterMs,
    routes: webhookRoutes(cfg, deps.extraRoutes),
  })
}

/**
 * `serve` and `collect` without Kafka: nothing outside this process can read the telemetry, so it is
 * stored and watched here (chDB and the whole pipeline). With Kafka: nothing (undefined).
 */
export async function localPipeline(
  cfg: BreakidConfig,
  transport: Transport,
  logger: Logger,
): Promise<{ ch: ClickHouse; pipeline: Pipeline; stop(): Promise<void> } | undefined> {
  if (transport.kind !== 'embedded') return undefined
  const ch = await openStore(cfg)
  const pipeline = await pipelineFromConfig(cfg, { transport, logger, clickhouse: ch }).catch(async (err) => {
    await ch.close()
    throw err
  })
  return {
    ch,
    pipeline,
    async stop() {
      await pipeline.stop()
      await ch.close()
    },
  }
}

/**
 * Waits (bounded) until `spansEmitted` spans are stored and every alert raised has been delivered or
 * dead-lettered. Undefined when it drained, else what was left (for the user).
 */
export async function drainPipeline(
  p: Pipeline,
  spansEmitted: number,
  timeoutMs = 60_000,
): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const stored = p.ingester?.counters.get('rows_stored_total', { table: 'spans' }) ?? spansEmitted
    const raised = p.detector?.counters.total('alerts_total') ?? 0
    const stats = p.notifier?.stats()
    // every alert raised was read, and no route owes one any more (delivered or dead-lettered)
    const settled = stats ? (stats.pending === 0 ? stats.read : 0) : raised
    if (stored >= spansEmitted && settled >= raised) return undefined
    if (Date.now() > deadline) {
      return `stored ${stored}/${spansEmitted} spans, alerts settled ${settled}/${raised}`
    }
    await new Promise((r) => setTimeout(r, 100))
  }
}
