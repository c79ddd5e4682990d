/**
 * The in-process stand-in for Kafka when no broker is configured: same message bytes, same consumer
 * contract (commit after the handler resolves, retry on failure, per-group offsets), one partition per
 * topic so order is total.
 *
 * A handler that resolves with a `PartialCommit` moves the consumer's read position past the batch
 * while the group's committed offset stays lower (see transport.ts); a restarted consumer reads from
 * the committed offset again.
 *
 * Bounded: a topic holds at most `maxBacklog` messages that some group has not committed yet. A
 * producer that would exceed it waits (back-pressure, as Vector's buffers do by default) and the wait
 * is counted in `producerWaits`; nothing is dropped. Messages every group has committed are released.
 */
import { EventEmitter } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { backoffDelayMs } from '../core/retry.ts'
import type {
  Committed,
  ConsumerOptions,
  IncomingMessage,
  MessageConsumer,
  MessageProducer,
  OutgoingMessage,
  PartialCommit,
  PartitionLag,
  StreamingConsumer,
  StreamingConsumerOptions,
  Transport,
} from './transport.ts'
import { consumerHandle } from './transport.ts'

interface StoredMessage {
  key: Buffer | null
  value: Buffer
  headers: Record<string, string>
  timestampMs: number
}

class TopicLog {
  /** offset of messages[0] */
  base = 0
  messages: StoredMessage[] = []
  readonly groups = new Map<string, number>()
  /** metadata committed beside each group's offset (streaming consumers) */
  readonly metadata = new Map<string, string>()
  get end(): number {
    return this.base + this.messages.length
  }
  uncommitted(): number {
    if (this.groups.size === 0) return 0
    return this.end - Math.min(...this.groups.values())
  }
  release(): void {
    if (this.groups.size === 0) return
    const low = Math.min(...this.groups.values())
    if (low > this.base) {
      this.messages = this.messages.slice(low - this.base)
      this.base = low
    }
  }
}

export interface EmbeddedBusOptions {
  maxBacklog?: number
  maxBatch?: number
  retryDelayMs?: number
}

export class EmbeddedBus implements Transport {
  readonly kind = 'embedded'
  producerWaits = 0
  private readonly topics = new Map<string, TopicLog>()
  private readonly events = new EventEmitter()
  private readonly maxBacklog: number
  private readonly maxBatch: number
  private readonly retryDelayMs: number

  constructor(opts: EmbeddedBusOptions = {}) {
    this.maxBacklog = opts.maxBacklog ?? 200_000
    this.maxBatch = opts.maxBatch ?? 2_000
    this.retryDelayMs = opts.retryDelayMs ?? 200
    this.events.setMaxListeners(0)
  }

  private log(topic: string): TopicLog {
    let log = this.topics.get(topic)
    if (!log) {
      log = new TopicLog()
      this.topics.set(topic, log)
    }
    return log
  }

  async ensureTopics(topics: string[]): Promise<void> {
    for (const t of topics) this.log(t)
  }

  /** Messages ever appended to a topic (for tests and summaries). */
  endOffset(topic: string): number {
    return this.topics.get(topic)?.end ?? 0
  }

  /** The offset `groupId` will resume `topic` from after a restart; undefined before it first read. */
  committedOffset(topic: string, groupId: string): number | undefined {
    return this.topics.get(topic)?.groups.get(groupId)
  }

  /** Moves a group's commit forward (never back), releasing what every group has committed. */
  private commitGroup(topic: string, groupId: string, offset: number): boolean {
    const log = this.log(topic)
    if (offset <= (log.groups.get(groupId) ?? -1)) return false
    log.groups.set(groupId, offset)
    log.release()
    this.events.emit(`commit:${topic}`)
    return true
  }

  private async append(topic: string, messages: OutgoingMessage[]): Promise<void> {
    const log = this.log(topic)
    while (log.uncommitted() + messages.length > this.maxBacklog && log.uncommitted() > 0) {
      this.producerWaits++
      await new Promise((resolve) => this.events.once(`commit:${topic}`, resolve))
    }
    const now = Date.now()
    for (const m of messages) {
      log.messages.push({
        key: m.key === null ? null : Buffer.from(m.key),
        value: m.value,
        headers: m.headers ?? {},
        timestampMs: now,
      })
    }
    this.events.emit(`append:${topic}`)
  }

  producer(): MessageProducer {
    return {
      start: async () => {},
      stop: async () => {},
      send: (topic, messages) => this.append(topic, messages),
    }
  }

  consumer(opts: ConsumerOptions): MessageConsumer {
    const bus = this
    let running = false
    let loop: Promise<void> | undefined
    const wake = new EventEmitter()
    const listeners = opts.topics.map((t) => {
      const fn = () => wake.emit('wake')
      return { event: `append:${t}`, fn }
    })
    const state: { committedMessages: number; phase: 'idle' | 'consuming' | 'stopped' } = {
      committedMessages: 0,
      phase: 'idle',
    }
    /** topic → next offset to read; ahead of the group's commit after a PartialCommit */
    const positions = new Map<string, number>()
    /** failed handler attempts in a row per topic: the backoff before the same batch again */
    const failures = new Map<string, number>()

    async function pollOnce(): Promise<boolean> {
      let progressed = false
      for (const topic of opts.topics) {
        const log = bus.log(topic)
        if (!log.groups.has(opts.groupId)) {
          log.groups.set(opts.groupId, opts.startFrom === 'latest' ? log.end : log.base)
        }
        const committed = log.groups.get(opts.groupId)!
        const from = Math.max(committed, positions.get(topic) ?? committed)
        if (from >= log.end) continue
        const messages = bus.read(topic, from)
        const batch = { topic, partition: 0, messages }
        let partial: PartialCommit | undefined
        try {
          partial = (await opts.handler(batch)) ?? undefined
        } catch (err) {
          opts.onHandlerError?.(err, batch)
          const attempt = failures.get(topic) ?? 0
          failures.set(topic, attempt + 1)
          await sleep(
            backoffDelayMs(attempt, undefined, { initialDelayMs: bus.retryDelayMs, maxDelayMs: 30_000 }),
          )
          return true // retry the same batch on the next turn
        }
        failures.delete(topic)
        const next = from + messages.length
        positions.set(topic, next)
        bus.commitGroup(topic, opts.groupId, partial ? offsetWithin(partial.commitOffset, next) : next)
        state.committedMessages += messages.length
        progressed = true
      }
      return progressed
    }

    async function run(): Promise<void> {
      while (running) {
        if (await pollOnce()) continue
        await nextWake(wake)
      }
    }

    return consumerHandle(state, opts, {
      start: async () => {
        if (running) return
        running = true
        positions.clear() // read again from the commit, as a restarted Kafka consumer does
        state.phase = 'consuming'
        for (const l of listeners) bus.events.on(l.event, l.fn)
        loop = run()
      },
      /** Drains: returns after the current batch is committed; later messages stay for the next start. */
      stop: async () => {
        running = false
        if (state.phase === 'consuming') state.phase = 'stopped'
        for (const l of listeners) bus.events.off(l.event, l.fn)
        wake.emit('wake')
        await loop
      },
      commit: async (topic, _partition, offset) => {
        if (!running) return
        // Bounded by the log's end, not the read position: a handler may commit what it was handed
        // before the batch's own commit ran.
        bus.commitGroup(topic, opts.groupId, offsetWithin(offset, bus.log(topic).end))
      },
    })
  }

  /** Up to `maxBatch` messages of `topic` from offset `from` (one partition: 0). */
  private read(topic: string, from: number): IncomingMessage[] {
    const log = this.log(topic)
    const slice = log.messages.slice(from - log.base, from - log.base + this.maxBatch)
    return slice.map((m, i) => ({
      topic,
      partition: 0,
      offset: String(from + i),
      key: m.key,
      value: m.value,
      headers: m.headers,
      timestampMs: m.timestampMs,
    }))
  }

  /** One partition per topic; a group that has read nothing yet counts from the oldest message kept. */
  async consumerLag(groupId: string, topics: readonly string[]): Promise<PartitionLag[]> {
    return topics.map((topic) => {
      const log = this.log(topic)
      const committed = log.groups.get(groupId)
      return {
        topic,
        partition: 0,
        committed: committed === undefined ? null : String(committed),
        high: String(log.end),
        lag: log.end - (committed ?? log.base),
      }
    })
  }

  /**
   * A consumer that fetches ahead of its commits (see StreamingConsumer): one partition per topic,
   * delivered from the group's committed offset on start, committed when its owner says so.
   */
  streamingConsumer(opts: StreamingConsumerOptions): StreamingConsumer {
    const bus = this
    const state = { running: false, paused: false }
    /** the next offset to deliver, per topic */
    const delivered = new Map<string, number>()
    const wake = new EventEmitter()
    const onAppend = () => wake.emit('wake')
    let loop: Promise<void> | undefined

    async function run(): Promise<void> {
      while (state.running) {
        let progressed = false
        for (const topic of opts.topics) {
          if (!state.running || state.paused) break
          const log = bus.log(topic)
          const from = Math.max(delivered.get(topic) ?? log.base, log.base)
          if (from >= log.end) continue
          const messages = bus.read(topic, from)
          delivered.set(topic, from + messages.length)
          await opts.onBatch({ topic, partition: 0, messages }, { heartbeat: async () => {} })
          progressed = true
        }
        if (!progressed) await nextWake(wake)
      }
    }

    return {
      get state() {
        return state.running ? ('consuming' as const) : ('stopped' as const)
      },
      groupId: opts.groupId,
      topics: opts.topics,
      start: async () => {
        if (state.running) return
        state.running = true
        state.paused = false
        for (const topic of opts.topics) {
          const log = bus.log(topic)
          if (!log.groups.has(opts.groupId)) {
            log.groups.set(opts.groupId, opts.startFrom === 'latest' ? log.end : log.base)
          }
          delivered.set(topic, log.groups.get(opts.groupId)!)
          bus.events.on(`append:${topic}`, onAppend)
        }
        opts.onAssignment?.(opts.topics.map((topic) => ({ topic, partition: 0 })))
        loop = run()
      },
      pause: () => {
        state.paused = true
      },
      commit: async (tp, offset, metadata) => {
        if (!state.running || !opts.topics.includes(tp.topic) || tp.partition !== 0) return false
        const log = bus.log(tp.topic)
        const before = log.groups.get(opts.groupId) ?? log.base
        log.groups.set(opts.groupId, Number(offset))
        log.metadata.set(opts.groupId, metadata ?? '')
        if (Number(offset) > before) {
          log.release()
          bus.events.emit(`commit:${tp.topic}`)
        }
        return true
      },
      committed: async (tp): Promise<Committed> => {
        const log = bus.log(tp.topic)
        const offset = log.groups.get(opts.groupId)
        return {
          offset: offset === undefined ? null : String(offset),
          metadata: log.metadata.get(opts.groupId) ?? '',
        }
      },
      stop: async () => {
        if (!state.running) return
        state.running = false
        for (const topic of opts.topics) bus.events.off(`append:${topic}`, onAppend)
        wake.emit('wake')
        await loop
      },
    }
  }

  /** Waits until `groupId` has committed everything appended to `topic` so far. */
  async drained(topic: string, groupId: string): Promise<void> {
    const log = this.log(topic)
    const target = log.end
    while ((log.groups.get(groupId) ?? -1) < target) {
      await new Promise((resolve) => this.events.once(`commit:${topic}`, resolve))
    }
  }

  async close(): Promise<void> {}
}

/** A commit offset from a handler, bounded: committing past what exists would skip future messages. */
function offsetWithin(offset: string, limit: number): number {
  const n = Number(offset)
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`commit offset ${offset} is not an offset`)
  return Math.min(n, limit)
}

/**
 * Resolves at the next append (`wake`) or after 100 ms: a consumer re-checks now and then so stop()
 * never waits on an event that will not come. Not unref'd: a started consumer keeps the process alive
 * until stopped, like a Kafka consumer's sockets.
 */
function nextWake(wake: EventEmitter): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      wake.off('wake', done)
      resolve()
    }
    wake.on('wake', done)
    setTimeout(done, 100)
  })
}
