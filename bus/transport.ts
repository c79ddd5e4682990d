/**
 * The message transport seen by every component: Kafka in production, the embedded bus on one
 * machine. Both deliver the same bytes with the same guarantees: per-partition order, offsets
 * committed only after the handler resolved (at-least-once), and a failed handler retried with
 * backoff on the same batch instead of skipping it.
 */

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

/** Resolve to commit the whole batch. Throw to have the same batch redelivered after a backoff. */
export type BatchHandler = (batch: MessageBatch) => Promise<void>

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
  send(topic: string, messages: OutgoingMessage[]): Promise<void>
}

export interface MessageConsumer extends Lifecycle {
  /** messages handed to the handler and committed so far */
  readonly committedMessages: number
}

export interface Transport {
  readonly kind: 'kafka' | 'embedded'
  ensureTopics(topics: string[], partitions?: number): Promise<void>
  producer(): MessageProducer
  consumer(opts: ConsumerOptions): MessageConsumer
  close(): Promise<void>
}
