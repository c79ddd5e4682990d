/**
 * Kafka transport over kafkajs. Offsets are resolved and committed only after the handler resolved
 * for the whole batch; a failed handler is retried in place (with backoff) so a batch is never
 * skipped and per-partition order holds. Consumer-group rebalances may redeliver a batch: the
 * handlers downstream are idempotent or count on at-least-once.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { backoffDelayMs } from '../core/retry.ts'
import {
  type Admin,
  type Batch,
  type EachBatchHandler,
  type Consumer,
  type IHeaders,
  Kafka,
  type KafkaConfig,
  logLevel,
  Partitioners,
  type Producer,
} from 'kafkajs'
import type { Logger } from 'pino'
// before any connection: stops kafkajs's idle timer loop (see the module)
import './kafkajs-idle-fix.ts'
import {
  type Committed,
  consumerHandle,
  type ConsumerOptions,
  type ConsumerState,
  type IncomingMessage,
  type MessageConsumer,
  type MessageProducer,
  MessageRefusedError,
  type PartialCommit,
  type PartitionLag,
  type StreamingConsumer,
  type StreamingConsumerOptions,
  type TopicPartition,
  type Transport,
} from './transport.ts'

/** Commit errors that mean "the group is rebalancing": wait for the next join and ask again. */
const REBALANCE_ERRORS = new Set([
  'REBALANCE_IN_PROGRESS',
  'ILLEGAL_GENERATION',
  'UNKNOWN_MEMBER_ID',
  'NOT_COORDINATOR',
  'COORDINATOR_NOT_AVAILABLE',
])

export interface KafkaTransportOptions {
  brokers: string[]
  clientId?: string
  logger?: Logger
  /** backoff between attempts of a failed handler */
  handlerRetryDelayMs?: number
  /**
   * Prepended to every topic name on the broker (not in the code): several breakid deployments, or
   * test runs, can share one cluster without reading each other's records. Default ''.
   */
  topicPrefix?: string
}

/**
 * Kafka error types that refuse a produce request for what it holds: resending it cannot succeed.
 * kafkajs marks them non-retriable, as it does its own "retries exhausted" (a broker that is down),
 * so `retriable` alone cannot tell them apart.
 */
const REFUSED_TYPES = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'INVALID_RECORD'])

/**
 * A MessageRefusedError for a kafkajs error that refuses the messages (searched through its
 * causes: kafkajs wraps the broker's error in its retrier's), else undefined.
 */
export function refusal(err: unknown): MessageRefusedError | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const type = (e as { type?: unknown }).type
    if (typeof type === 'string' && REFUSED_TYPES.has(type)) {
      return new MessageRefusedError(`Kafka refused the messages: ${e.message}`, type.toLowerCase(), err)
    }
  }
  return undefined
}

function headersToStrings(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (v === undefined) continue
    out[k] = Array.isArray(v) ? String(v[0]) : String(v)
  }
  return out
}

export class KafkaTransport implements Transport {
  readonly kind = 'kafka'
  private readonly kafka: Kafka
  private readonly retryDelayMs: number
  private readonly prefix: string
  /** connected on the first lag read and kept for the next (a scrape every few seconds) */
  private admin: Promise<Admin> | undefined
  private readonly logger: Logger | undefined

  constructor(opts: KafkaTransportOptions) {
    const log = opts.logger
    const config: KafkaConfig = {
      clientId: opts.clientId ?? 'breakid',
      brokers: opts.brokers,
      connectionTimeout: 3_000,
      retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 5_000 },
      // kafkajs logs through its own logger; route it into pino so there is one log stream.
      logLevel: logLevel.WARN,
      logCreator: () => (entry) => {
        const { message, ...extra } = entry.log
        if (!log) return
        if (entry.level <= logLevel.ERROR) log.error({ kafka: entry.namespace, ...extra }, message)
        else log.warn({ kafka: entry.namespace, ...extra }, message)
      },
    }
    this.kafka = new Kafka(config)
    this.retryDelayMs = opts.handlerRetryDelayMs ?? 500
    this.prefix = opts.topicPrefix ?? ''
    this.logger = opts.logger
  }

  /** the broker-side name of a topic */
  brokerTopic(topic: string): string {
    return this.prefix + topic
  }

  async ensureTopics(topics: string[], partitions = 1): Promise<void> {
    const admin = this.kafka.admin()
    await admin.connect()
    try {
      const existing = new Set(await admin.listTopics())
      const missing = topics.map((t) => this.brokerTopic(t)).filter((t) => !existing.has(t))
      if (missing.length > 0) {
        await admin.createTopics({
          waitForLeaders: true,
          topics: missing.map((topic) => ({ topic, numPartitions: partitions, replicationFactor: 1 })),
        })
      }
    } finally {
      await admin.disconnect()
    }
  }

  producer(): MessageProducer {
    const producer: Producer = this.kafka.producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      idempotent: true,
      maxInFlightRequests: 1,
    })
    let connected = false
    return {
      start: async () => {
        if (connected) return
        await producer.connect()
        connected = true
      },
      stop: async () => {
        if (!connected) return
        connected = false
        await producer.disconnect()
      },
      send: async (topic, messages) => {
        try {
          await producer.send({
            topic: this.brokerTopic(topic),
            acks: -1,
            messages: messages.map((m) => ({ key: m.key, value: m.value, headers: m.headers })),
          })
        } catch (err) {
          throw refusal(err) ?? err
        }
      },
    }
  }

  consumer(opts: ConsumerOptions): MessageConsumer {
    const consumer: Consumer = this.kafka.consumer({
      groupId: this.prefix + opts.groupId,
      sessionTimeout: 10_000,
      heartbeatInterval: 1_000,
      maxWaitTimeInMs: 200,
      retry: { retries: 10 },
    })
    const state: { committedMessages: number; running: boolean; phase: ConsumerState } = {
      committedMessages: 0,
      running: false,
      phase: 'idle',
    }
    // readiness follows the group protocol: consuming once partitions are assigned, not at connect
    consumer.on(consumer.events.GROUP_JOIN, () => {
      if (state.running) state.phase = 'consuming'
    })
    consumer.on(consumer.events.REBALANCING, () => {
      if (state.running) state.phase = 'joining'
    })
    consumer.on(consumer.events.CRASH, (e) => {
      // kafkajs restarts the consumer itself after a retriable crash; otherwise it is gone for good
      state.phase = e.payload.restart ? 'joining' : 'crashed'
    })
    const retryDelayMs = this.retryDelayMs
    const prefix = this.prefix
    /** broker topic/partition → the offset this consumer last committed, so no commit goes backwards */
    const committed = new Map<string, bigint>()
    return consumerHandle(state, opts, {
      start: () =>
        this.join(
          consumer,
          state,
          opts,
          async ({ batch, resolveOffset, commitOffsetsIfNecessary, heartbeat, isRunning, isStale }) => {
            if (batch.messages.length === 0) return
            const mb = this.incoming(batch)
            let partial: PartialCommit | undefined
            for (let attempt = 0; ; attempt++) {
              if (!isRunning() || isStale()) return // uncommitted: redelivered to whoever owns it next
              try {
                partial = (await opts.handler(mb)) ?? undefined
                break
              } catch (err) {
                opts.onHandlerError?.(err, mb)
                await heartbeat()
                // capped well under the session timeout: the group must not think this member dead
                await sleep(
                  backoffDelayMs(attempt, undefined, { initialDelayMs: retryDelayMs, maxDelayMs: 5_000 }),
                )
              }
            }
            // Resolving moves the fetch position; with autoCommit off, only the explicit commit below
            // (and commit()) reach the broker, so a PartialCommit keeps the unfinished tail uncommitted.
            resolveOffset(batch.lastOffset())
            const next = BigInt(batch.lastOffset()) + 1n
            const commitTo = partial ? minOffset(BigInt(partial.commitOffset), next) : next
            const key = `${batch.topic}/${batch.partition}`
            if (commitTo > (committed.get(key) ?? -1n)) {
              await commitOffsetsIfNecessary({
                topics: [
                  {
                    topic: batch.topic,
                    partitions: [{ partition: batch.partition, offset: commitTo.toString() }],
                  },
                ],
              })
              committed.set(key, commitTo)
            }
            state.committedMessages += mb.messages.length
            await heartbeat()
          },
        ),
      stop: async () => {
        if (!state.running) return
        state.running = false
        state.phase = 'stopped'
        await consumer.disconnect()
        committed.clear() // the group's offsets may move while stopped
      },
      commit: async (topic, partition, offset) => {
        if (!state.running) return
        const key = `${prefix + topic}/${partition}`
        const to = BigInt(offset)
        if (to <= (committed.get(key) ?? -1n)) return
        // kafkajs retries retriable failures and does nothing once the consumer stopped; a commit that
        // fails for good (partition revoked by a rebalance) leaves the offset to whoever owns it now.
        await consumer.commitOffsets([{ topic: prefix + topic, partition, offset: to.toString() }])
        committed.set(key, to)
      },
    })
  }

  async consumerLag(groupId: string, topics: readonly string[]): Promise<PartitionLag[]> {
    this.admin ??= (async () => {
      const admin = this.kafka.admin()
      await admin.connect()
      return admin
    })()
    try {
      const admin = await this.admin
      const brokerTopics = topics.map((t) => this.brokerTopic(t))
      const committed = new Map<string, string>()
      for (const t of await admin.fetchOffsets({ groupId: this.prefix + groupId, topics: brokerTopics })) {
        for (const p of t.partitions) committed.set(`${t.topic}/${p.partition}`, p.offset)
      }
      const out: PartitionLag[] = []
      for (const [i, topic] of brokerTopics.entries()) {
        for (const p of await admin.fetchTopicOffsets(topic)) {
          const c = committed.get(`${topic}/${p.partition}`)
          const has = c !== undefined && BigInt(c) >= 0n
          const from = has ? BigInt(c) : BigInt(p.low)
          const lag = BigInt(p.high) - from
          out.push({
            topic: topics[i]!,
            partition: p.partition,
            committed: has ? c : null,
            high: p.high,
            lag: Number(lag > 0n ? lag : 0n),
          })
        }
      }
      return out
    } catch (err) {
      // a fresh admin next time: the broker may have moved or the connection died
      const stale = this.admin
      this.admin = undefined
      await stale?.then((a) => a.disconnect()).catch(() => {})
      throw err
    }
  }

  /** Starts `consumer` once: joins its group, subscribes to the topics and hands every batch to `eachBatch`. */
  private async join(
    consumer: Consumer,
    state: { running: boolean; phase: ConsumerState },
    opts: { topics: readonly string[]; startFrom?: 'earliest' | 'latest' },
    eachBatch: EachBatchHandler,
  ): Promise<void> {
    if (state.running) return
    state.running = true
    state.phase = 'joining'
    await consumer.connect()
    for (const topic of opts.topics) {
      await consumer.subscribe({
        topic: this.prefix + topic,
        fromBeginning: (opts.startFrom ?? 'earliest') === 'earliest',
      })
    }
    // offsets are resolved and committed by the handlers: a batch counts only once it is handled
    await consumer.run({ eachBatchAutoResolve: false, autoCommit: false, eachBatch })
  }

  /** A fetched batch in the transport's terms (topic without the prefix, headers as strings). */
  private incoming(batch: Batch): { topic: string; partition: number; messages: IncomingMessage[] } {
    const topic = batch.topic.slice(this.prefix.length)
    const messages = batch.messages.map((m) => ({
      topic,
      partition: batch.partition,
      offset: m.offset,
      key: m.key,
      value: m.value,
      headers: headersToStrings(m.headers),
      timestampMs: Number(m.timestamp),
    }))
    return { topic, partition: batch.partition, messages }
  }

  streamingConsumer(opts: StreamingConsumerOptions): StreamingConsumer {
    const prefix = this.prefix
    const consumer: Consumer = this.kafka.consumer({
      groupId: prefix + opts.groupId,
      sessionTimeout: 10_000,
      heartbeatInterval: 1_000,
      maxWaitTimeInMs: 200,
      // a fetch of several MiB per partition: ingest is cheaper per record in big batches
      maxBytesPerPartition: 8 * 1024 * 1024,
      maxBytes: 32 * 1024 * 1024,
      retry: { retries: 10 },
    })
    const admin = this.kafka.admin()
    const owned = new Set<string>()
    const key = (tp: TopicPartition) => `${tp.topic}\u0000${tp.partition}`
    const state = { running: false, adminConnected: false, phase: 'idle' as ConsumerState }
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      const assignment = (e.payload as { memberAssignment: Record<string, number[]> }).memberAssignment
      const partitions: TopicPartition[] = []
      for (const [topic, ps] of Object.entries(assignment)) {
        for (const partition of ps) partitions.push({ topic: topic.slice(prefix.length), partition })
      }
      owned.clear()
      for (const tp of partitions) owned.add(key(tp))
      state.phase = 'consuming'
      opts.onAssignment?.(partitions)
    })
    consumer.on(consumer.events.REBALANCING, () => {
      state.phase = 'joining'
      // until the next join says what is ours: kafkajs takes the new generation before it emits
      // GROUP_JOIN, and a commit in between would be accepted for a partition another member owns
      owned.clear()
    })
    consumer.on(consumer.events.CRASH, (e) => {
      if (!(e.payload as { restart?: boolean }).restart) state.phase = 'crashed'
    })
    return {
      get state() {
        return state.phase
      },
      groupId: opts.groupId,
      topics: opts.topics,
      start: () =>
        this.join(consumer, state, opts, async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
          if (batch.messages.length === 0 || !isRunning() || isStale()) return
          await opts.onBatch(this.incoming(batch), { heartbeat })
          // the fetch position moves on; what is committed is the owner's decision (commit below)
          resolveOffset(batch.lastOffset())
        }),
      pause: () => {
        consumer.pause(opts.topics.map((t) => ({ topic: prefix + t })))
      },
      commit: async (tp, offset, metadata) => {
        // a rebalance answers false at once: the caller may be inside a batch, and kafkajs can only
        // rejoin the group once that batch returns; after the join the partition is delivered again
        // from its committed offset, to whoever owns it then
        for (let attempt = 0; state.running && attempt < 8; attempt++) {
          if (!owned.has(key(tp))) return false
          try {
            await consumer.commitOffsets([
              { topic: prefix + tp.topic, partition: tp.partition, offset, metadata: metadata ?? null },
            ])
            return true
          } catch (err) {
            const type = (err as { type?: string }).type ?? ''
            this.logger?.debug({ err, type, tp }, 'commit failed')
            if (REBALANCE_ERRORS.has(type) || (err as Error).message?.includes('not initialized'))
              return false
            await sleep(backoffDelayMs(attempt, undefined, { maxDelayMs: 5_000 }))
          }
        }
        return false
      },
      committed: async (tp): Promise<Committed> => {
        if (!state.adminConnected) {
          await admin.connect()
          state.adminConnected = true
        }
        const [topic] = await admin.fetchOffsets({
          groupId: prefix + opts.groupId,
          topics: [prefix + tp.topic],
        })
        const p = topic?.partitions.find((x) => x.partition === tp.partition)
        const offset = p && Number(p.offset) >= 0 ? p.offset : null
        return { offset, metadata: p?.metadata ?? '' }
      },
      stop: async () => {
        if (!state.running) return
        state.running = false
        state.phase = 'stopped'
        owned.clear()
        await consumer.disconnect()
        if (state.adminConnected) await admin.disconnect()
      },
    }
  }

  async close(): Promise<void> {
    const admin = this.admin
    this.admin = undefined
    await admin?.then((a) => a.disconnect()).catch(() => {})
  }
}

function minOffset(a: bigint, b: bigint): bigint {
  return a < b ? a : b
}
