/**
 * The Kafka → ClickHouse writer (consumer group `breakid-ingest`). Each batch is decoded (a message is
 * one record or a container of several: contract/container.ts), records that are not ours go to the
 * dead-letter topic one by one with the reason in headers (source offset `offset:index` for a
 * container's record), and the good records are
 * inserted; the transport commits the offsets only after this resolves, so ClickHouse has the rows
 * before Kafka forgets them. A retriable insert failure throws, and the same batch comes back.
 */
import type { Logger } from 'pino'
import type { ClickHouse } from '../store/client.ts'
import {
  alertsTable,
  type DeadLetter,
  deadLettersTable,
  hwSamplesTable,
  spansTable,
  type TableSpec,
} from '../store/tables.ts'
import { type InsertFormat, insertRecords } from '../store/writer.ts'
import type { RecordCodec } from '../contract/codec.ts'
import { decodeMessage, isContainer } from '../contract/container.ts'
import { codecs, TOPICS } from '../contract/topics.ts'
import { isRetriable } from '../core/errors.ts'
import { Counters, Histogram } from '../core/metrics.ts'
import type {
  Lifecycle,
  MessageBatch,
  MessageConsumer,
  MessageProducer,
  Transport,
} from '../bus/transport.ts'

export const INGEST_GROUP = 'breakid-ingest'

interface Route<R> {
  codec: RecordCodec<R>
  table: TableSpec<R>
}

const route = <R>(codec: RecordCodec<R>, table: TableSpec<R>) =>
  ({ codec, table }) as unknown as Route<unknown>

const ROUTES = new Map<string, Route<unknown>>([
  [TOPICS.spans, route(codecs.span, spansTable)],
  [TOPICS.hw, route(codecs.hw, hwSamplesTable)],
  [TOPICS.alerts, route(codecs.alert, alertsTable)],
])

interface Decoded {
  offset: string
  value: Buffer
  record: unknown
}

interface Rejected {
  offset: string
  value: Buffer
  reason: string
  error: string
}

/** A valid breakid record of another type on this topic (e.g. a hardware sample among spans). */
function wrongTypeMessage(route: Route<unknown>, value: Buffer): string | undefined {
  const other = Object.values(codecs).find((c) => (c as unknown) !== route.codec && c.recognises(value))
  return other ? `a ${other.name} record on the ${route.table.name} topic` : undefined
}

export interface IngesterOptions {
  transport: Transport
  clickhouse: ClickHouse
  logger: Logger
  groupId?: string
  insertFormat?: InsertFormat
}

export class Ingester implements Lifecycle {
  readonly counters = new Counters('breakid_ingest')
    .describe(
      'records_consumed_total',
      'counter',
      'Records read from Kafka, by topic (a container counts each record)',
    )
    .describe('rows_stored_total', 'counter', 'Rows written to ClickHouse, by table')
    .describe(
      'dead_letters_total',
      'counter',
      'Records sent to the dead-letter topic, by source topic and reason',
    )
    .describe(
      'batch_retries_total',
      'counter',
      'Batches handed back for redelivery after a retriable failure, by topic',
    )
  /** one observation per INSERT statement, refused ones included */
  readonly insertLatency = new Histogram(
    'breakid_ingest_insert_duration_seconds',
    'Duration of one ClickHouse INSERT, by table',
  )
  readonly consumer: MessageConsumer
  private readonly deadLetters: MessageProducer

  constructor(private readonly opts: IngesterOptions) {
    this.deadLetters = opts.transport.producer()
    this.consumer = opts.transport.consumer({
      groupId: opts.groupId ?? INGEST_GROUP,
      topics: [TOPICS.spans, TOPICS.hw, TOPICS.alerts, TOPICS.deadLetter],
      handler: (batch) => this.handle(batch),
      onHandlerError: (err, batch) => {
        this.counters.inc('batch_retries_total', 1, { topic: batch.topic })
        opts.logger.warn(
          { err, topic: batch.topic, messages: batch.messages.length },
          'ingest batch failed; retrying',
        )
      },
    })
  }

  async start(): Promise<void> {
    await this.deadLetters.start()
    await this.consumer.start()
  }

  async stop(): Promise<void> {
    await this.consumer.stop()
    await this.deadLetters.stop()
  }

  private async handle(batch: MessageBatch): Promise<void> {
    if (batch.topic === TOPICS.deadLetter) return this.storeDeadLetters(batch)
    const route = ROUTES.get(batch.topic)
    if (!route) return
    const decoded: Decoded[] = []
    const rejected: Rejected[] = []
    for (const m of batch.messages) {
      const value = m.value ?? Buffer.alloc(0)
      // a container's records are dead-lettered one by one: `offset:index` names each
      const inContainer = isContainer(value)
      for (const r of decodeMessage(route.codec, value, m.headers)) {
        const offset = inContainer ? `${m.offset}:${r.index}` : m.offset
        if (!r.error) {
          decoded.push({ offset, value: r.bytes, record: r.record })
          continue
        }
        const wrongType = r.error.reason === 'truncated' ? undefined : wrongTypeMessage(route, r.bytes)
        rejected.push({
          offset,
          value: r.bytes,
          reason: wrongType ? 'wrong_type' : r.error.reason,
          error: wrongType ?? r.error.message,
        })
      }
    }
    // per delivery: a batch redelivered after a failure is read (and counted) again
    this.counters.inc('records_consumed_total', decoded.length + rejected.length, { topic: batch.topic })
    await this.deadLetter(batch, rejected)
    try {
      await this.insert(
        route,
        decoded.map((d) => d.record),
      )
    } catch (err) {
      if (isRetriable(err)) throw err // the transport redelivers the batch after a backoff
      // ClickHouse refused the data itself (a value out of a column's range): find the records it
      // refuses one by one, dead-letter them, and store the rest instead of blocking the topic.
      const refused: Rejected[] = []
      for (const d of decoded) {
        try {
          await this.insert(route, [d.record])
        } catch (one) {
          if (isRetriable(one)) throw one
          refused.push({
            offset: d.offset,
            value: d.value,
            reason: 'rejected_by_clickhouse',
            error: (one as Error).message,
          })
        }
      }
      await this.deadLetter(batch, refused)
    }
  }

  private async insert(route: Route<unknown>, records: unknown[]): Promise<void> {
    await this.timed(route.table.name, () =>
      insertRecords(this.opts.clickhouse, route.table, records, this.opts.insertFormat),
    )
    this.counters.inc('rows_stored_total', records.length, { table: route.table.name })
  }

  private async timed(table: string, insert: () => Promise<void>): Promise<void> {
    const started = performance.now()
    try {
      await insert()
    } finally {
      this.insertLatency.observe((performance.now() - started) / 1000, { table })
    }
  }

  private async deadLetter(batch: MessageBatch, rejected: Rejected[]): Promise<void> {
    if (rejected.length === 0) return
    await this.deadLetters.send(
      TOPICS.deadLetter,
      rejected.map((r) => ({
        key: `${batch.topic}/${batch.partition}/${r.offset}`,
        value: r.value,
        headers: {
          'breakid-source-topic': batch.topic,
          'breakid-source-partition': String(batch.partition),
          'breakid-source-offset': r.offset,
          'breakid-reason': r.reason,
          'breakid-error': r.error,
        },
      })),
    )
    for (const r of rejected)
      this.counters.inc('dead_letters_total', 1, { topic: batch.topic, reason: r.reason })
    this.opts.logger.warn(
      { topic: batch.topic, count: rejected.length, first: rejected[0]!.error },
      'records rejected to the dead-letter topic',
    )
  }

  private async storeDeadLetters(batch: MessageBatch): Promise<void> {
    const rows: DeadLetter[] = batch.messages.map((m) => ({
      received_at_us: m.timestampMs * 1000,
      source_topic: m.headers['breakid-source-topic'] ?? 'unknown',
      source_partition: Number(m.headers['breakid-source-partition'] ?? 0),
      source_offset: m.headers['breakid-source-offset'] ?? m.offset,
      reason: m.headers['breakid-reason'] ?? 'unknown',
      error: m.headers['breakid-error'] ?? '',
      payload: m.value ?? Buffer.alloc(0),
    }))
    this.counters.inc('records_consumed_total', rows.length, { topic: batch.topic })
    await this.timed(deadLettersTable.name, () =>
      insertRecords(this.opts.clickhouse, deadLettersTable, rows, this.opts.insertFormat),
    )
    this.counters.inc('rows_stored_total', rows.length, { table: deadLettersTable.name })
  }
}
