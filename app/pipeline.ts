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
