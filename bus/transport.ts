/**
 * The message transport seen by every component: Kafka in production, the embedded bus on one
 * machine. Both deliver the same bytes with the same guarantees: per-partition order, offsets
 * committed only after the handler resolved (at-least-once), and a failed handler retried with
 * backoff on the same batch instead of skipping it.
 */

import { BreakidError } from '../core/errors.ts'

/**
 * The broker refused messages for what they hold (larger than the topic's `max.message.bytes`, a
 * record it finds invalid): sending the same bytes again cannot succeed, so it is not retriable. A
 * sender splits the send to find the refused record and sends the others (the telemetry emitter
 * does). `reason` is the broker's error type in lower case, e.g. `message_too_large`.
 */
export class MessageRefusedError extends BreakidError {
  constructor(
    message: string,
    readonly reason: string,
    cause?: unknown,
  ) {
    super(message, { code: 'BREAKID_MESSAGE_REFUSED', cause })
  }
}

export interface OutgoingMessage {
  key: string | null
  value: Buffer
  headers?: Record<string, string>
}

export interface IncomingMessage {
  topic: string
  partition: number
  offset: string
  key: Buffer | null
  value: Buffer | null
  headers: Record<string, string>
  timestampMs: number
}

export interface MessageBatch {
  topic: string
  partition: number
  messages: IncomingMessage[]
}

/**
 * Resolve to commit the whole batch. Throw to have the same batch redelivered after a backoff.
 * Resolve with a `PartialCommit` to move on past the batch while committing less of it.
 */
// biome-ignore lint/suspicious/noConfusingVoidType: most handlers commit the whole batch and return nothing
export type BatchHandler = (batch: MessageBatch) => Promise<void | PartialCommit>

/**
 * For a handler that keeps the batch's messages in its own (bounded) state and finishes them later,
 * as the notifier does per webhook route: the consumer reads on past the batch, but commits only up
 * to `commitOffset` — the offset of the first message not finished (Kafka's "next offset to read").
 * The handler commits the rest with `MessageConsumer.commit` as it finishes; whatever is still
 * uncommitted at a restart or rebalance is delivered again from `commitOffset`.
 */
export interface PartialCommit {
  commitOffset: string
}

export interface ConsumerOptions {
  groupId: string
  topics: string[]
  handler: BatchHandler
  /** where a group with no committed offset starts. Default 'earliest': nothing is missed. */
  startFrom?: 'earliest' | 'latest'
  /** called for each failed handler attempt (the batch will be retried) */
  onHandlerError?: (err: unknown, batch: MessageBatch) => void
}

export interface Lifecycle {
  start(): Promise<void>
  /** drains in-flight work; safe to call twice */
  stop(): Promise<void>
}

export interface MessageProducer extends Lifecycle {
  /**
   * Resolves when the broker has every message. Rejects with MessageRefusedError when the broker
   * refused the send for what it holds; any other rejection may heal on a later try.
   */
  send(topic: string, messages: OutgoingMessage[]): Promise<void>
}

/**
 * Where a consumer is: `joining` from start() until it is assigned partitions (Kafka's group join;
 * at once on the embedded bus) and again during a rebalance, `consuming` while it fetches, `crashed`
 * after an error the client gave up on (it will not consume again until restarted), `stopped`.
 */
export type ConsumerState = 'idle' | 'joining' | 'consuming' | 'crashed' | 'stopped'

export interface MessageConsumer extends Lifecycle {
  /** messages handed to the handler and consumed (committed, or partly committed) so far */
  readonly committedMessages: number
  /**
   * Commits `offset` (the next offset to read) of a partition this consumer reads, outside a
   * handler call; for handlers that resolved with a `PartialCommit`. Never moves a commit backwards.
   * A no-op when the consumer is not running.
   */
  commit(topic: string, partition: number, offset: string): Promise<void>
  readonly state: ConsumerState
  /** the group as the code names it (without the transport's topic prefix) */
  readonly groupId: string
  readonly topics: readonly string[]
}

/**
 * A consumer's handle over its live state (what it has consumed, its phase) and its operations: how
 * both transports hand out a MessageConsumer.
 */
export function consumerHandle(
  state: { readonly committedMessages: number; readonly phase: ConsumerState },
  opts: Pick<ConsumerOptions, 'groupId' | 'topics'>,
  ops: Pick<MessageConsumer, 'start' | 'stop' | 'commit'>,
): MessageConsumer {
  return {
    get committedMessages() {
      return state.committedMessages
    },
    get state() {
      return state.phase
    },
    groupId: opts.groupId,
    topics: [...opts.topics],
    ...ops,
  }
}

/** One partition of a consumer group's position: its committed offset against the log's end. */
export interface PartitionLag {
  topic: string
  partition: number
  /** the next offset the group will read; null when it has committed none (it starts at the earliest) */
  committed: string | null
  /** the high watermark: the offset the next produced message will get */
  high: string
  /** messages the group has still to commit: high − committed (high − low before the first commit) */
  lag: number
}

/** One partition of a topic. */
export interface TopicPartition {
  topic: string
  partition: number
}

/** A partition's committed position: the next offset to read (null: none yet) and the note beside it. */
export interface Committed {
  offset: string | null
  metadata: string
}

export interface StreamingConsumerOptions {
  groupId: string
  topics: string[]
  startFrom?: 'earliest' | 'latest'
  /**
   * Each fetched batch, per partition in offset order. Resolving asks for more; a handler that waits
   * (its queue is full) stops the fetching: that is the back-pressure, and `heartbeat` keeps the
   * group membership while it waits. Must not throw. Nothing is committed for it: the owner commits
   * with `commit` once what it took is durable, so fetching runs ahead of committing.
   */
  onBatch(batch: MessageBatch, ctx: { heartbeat(): Promise<void> }): Promise<void>
  /**
   * The partitions this member owns, after every (re)join of the group and before batches of the new
   * assignment. After a rebalance a partition is delivered again from its committed offset.
   */
  onAssignment?(partitions: TopicPartition[]): void
}

/** A consumer whose owner decides when offsets are committed (ingest: after the insert is acknowledged). */
export interface StreamingConsumer extends Lifecycle {
  /**
   * Commits `offset` (the next one to read) of a partition with `metadata` beside it. Resolves false,
   * committing nothing, when this member no longer owns the partition or the group is rebalancing:
   * after the (re)join the partition is delivered again from its committed offset.
   */
  commit(tp: TopicPartition, offset: string, metadata?: string): Promise<boolean>
  /** the committed offset of a partition and its metadata, as the group's coordinator has them */
  committed(tp: TopicPartition): Promise<Committed>
  /** stops fetching; the membership stays, so the batches taken can still be committed before stop() */
  pause(): void
  /** as MessageConsumer's, for the ops endpoints (app/ops.ts) */
  readonly state: ConsumerState
  readonly groupId: string
  readonly topics: readonly string[]
}

export interface Transport {
  readonly kind: 'kafka' | 'embedded'
  ensureTopics(topics: string[], partitions?: number): Promise<void>
  producer(): MessageProducer
  consumer(opts: ConsumerOptions): MessageConsumer
  /** Every partition of `topics`: where `groupId` has committed against the high watermark. */
  consumerLag(groupId: string, topics: readonly string[]): Promise<PartitionLag[]>
  streamingConsumer(opts: StreamingConsumerOptions): StreamingConsumer
  close(): Promise<void>
}
