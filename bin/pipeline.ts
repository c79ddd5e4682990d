/**
 * The consumers behind the engine — ingest (→ ClickHouse), detect (→ alerts) and notify
 * (→ webhooks) — started from one configuration. `breakid up` runs all three in one process; the
 * `ingest`, `detect` and `notify` commands run one each against Kafka.
 */
import type { Logger } from 'pino'
import { type NotifyRoute, WebhookNotifier } from '../detectors/notify/notifier.ts'
import { DetectorConsumer } from '../detectors/consumer.ts'
import type { Detector } from '../detectors/detector.ts'
import { StarvationDetector } from '../detectors/starvation/detector.ts'
import type { ClickHouse } from '../ingest/clickhouse/client.ts'
import type { Alert } from '../ingest/contract/records.ts'
import { Ingester } from '../ingest/ingester.ts'
import type { Transport } from '../ingest/transport/transport.ts'
import type { BreakidConfig } from './config.ts'

export function defaultDetectors(): Detector[] {
  return [new StarvationDetector()]
}

export function webhookRoutes(cfg: BreakidConfig, extra: NotifyRoute[] = []): NotifyRoute[] {
  return [...cfg.webhookUrls.map((url) => ({ url, secret: cfg.webhookSecret })), ...extra]
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
  detectors?: Detector[]
  routes?: NotifyRoute[]
  onAlert?: (alert: Alert) => void
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
  if (opts.detectors) {
    p.detector = new DetectorConsumer({
      transport,
      detectors: opts.detectors,
      logger: logger.child({ c: 'detect' }),
      onAlert: opts.onAlert,
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
