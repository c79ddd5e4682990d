/**
 * The live detector consumer (group `breakid-detect`): decodes spans and hardware samples, runs every
 * detector, and publishes their alert state changes to `breakid.alerts.v1`. The batch is committed
 * only after its alerts are published, so a crash cannot lose an alert (a redelivered batch yields
 * the same alert id, and the notifier suppresses the duplicate).
 *
 * Records that do not decode are counted and skipped here; the ingest consumer dead-letters them.
 */
import type { Logger } from 'pino'
import type { Alert } from '../ingest/contract/records.ts'
import { codecs, TOPICS } from '../ingest/contract/topics.ts'
import { RecordDecodeError } from '../ingest/errors.ts'
import { Counters } from '../ingest/metrics.ts'
import type {
  Lifecycle,
  MessageBatch,
  MessageConsumer,
  MessageProducer,
  Transport,
} from '../ingest/transport/transport.ts'
import type { Detector } from './detector.ts'

export const DETECT_GROUP = 'breakid-detect'

export interface DetectorConsumerOptions {
  transport: Transport
  detectors: Detector[]
  logger: Logger
  groupId?: string
  /** called for every alert published (the live view in `breakid up`) */
  onAlert?: (alert: Alert) => void
}

export class DetectorConsumer implements Lifecycle {
  readonly counters = new Counters('breakid_detect')
  private readonly consumer: MessageConsumer
  private readonly alerts: MessageProducer

  constructor(private readonly opts: DetectorConsumerOptions) {
    this.alerts = opts.transport.producer()
    this.consumer = opts.transport.consumer({
      groupId: opts.groupId ?? DETECT_GROUP,
      topics: [TOPICS.spans, TOPICS.hw],
      handler: (batch) => this.handle(batch),
      onHandlerError: (err) => opts.logger.warn({ err }, 'detector batch failed; retrying'),
    })
  }

  async start(): Promise<void> {
    await this.alerts.start()
    await this.consumer.start()
  }

  async stop(): Promise<void> {
    await this.consumer.stop()
    await this.alerts.stop()
  }

  private async handle(batch: MessageBatch): Promise<void> {
    const raised: Alert[] = []
    const isSpan = batch.topic === TOPICS.spans
    for (const m of batch.messages) {
      try {
        if (isSpan) {
          const span = codecs.span.decode(m.value ?? Buffer.alloc(0))
          for (const d of this.opts.detectors) if (d.onSpan) raised.push(...d.onSpan(span))
        } else {
          const sample = codecs.hw.decode(m.value ?? Buffer.alloc(0))
          for (const d of this.opts.detectors) if (d.onHwSample) raised.push(...d.onHwSample(sample))
        }
        this.counters.inc('records_total', 1, { topic: batch.topic })
      } catch (err) {
        if (!(err instanceof RecordDecodeError)) throw err
        this.counters.inc('decode_errors_total', 1, { topic: batch.topic, reason: err.reason })
      }
    }
    if (raised.length === 0) return
    await this.alerts.send(
      TOPICS.alerts,
      raised.map((a) => ({ key: a.dedup_key, value: codecs.alert.encode(a) })),
    )
    for (const a of raised) {
      this.counters.inc('alerts_total', 1, { type: a.type, status: a.status })
      this.opts.logger.info({ alert: a.id, type: a.type, status: a.status, instance: a.instance }, a.summary)
      this.opts.onAlert?.(a)
    }
  }
}
