/**
 * The in-process stand-in for Kafka when no broker is configured: same message bytes, same consumer
 * contract (commit after the handler resolves, retry on failure, per-group offsets), one partition per
 * topic so order is total.
 *
 * Bounded: a topic holds at most `maxBacklog` messages that some group has not committed yet. A
 * producer that would exceed it waits (back-pressure, as Vector's buffers do by default) and the wait
 * is counted in `producerWaits`; nothing is dropped. Messages every group has committed are released.
 */
import { EventEmitter } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import type {
  ConsumerOptions,
  IncomingMessage,
  MessageConsumer,
  MessageProducer,
  OutgoingMessage,
  Transport,
} from './transport.ts'

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
    const state = { committedMessages: 0 }

    async function pollOnce(): Promise<boolean> {
      let progressed = false
      for (const topic of opts.topics) {
        const log = bus.log(topic)
        if (!log.groups.has(opts.groupId)) {
          log.groups.set(opts.groupId, opts.startFrom === 'latest' ? log.end : log.base)
        }
        const from = log.groups.get(opts.groupId)!
        if (from >= log.end) continue
        const slice = log.messages.slice(from - log.base, from - log.base + bus.maxBatch)
        const messages: IncomingMessage[] = slice.map((m, i) => ({
          topic,
          partition: 0,
          offset: String(from + i),
          key: m.key,
          value: m.value,
          headers: m.headers,
          timestampMs: m.timestampMs,
        }))
        const batch = { topic, partition: 0, messages }
        try {
          await opts.handler(batch)
        } catch (err) {
          opts.onHandlerError?.(err, batch)
          await sleep(bus.retryDelayMs)
          return true // retry the same batch on the next turn
        }
        log.groups.set(opts.groupId, from + messages.length)
        state.committedMessages += messages.length
        log.release()
        bus.events.emit(`commit:${topic}`)
        progressed = true
      }
      return progressed
    }

    async function run(): Promise<void> {
      while (running) {
        if (await pollOnce()) continue
        await new Promise<void>((resolve) => {
          const done = () => {
            wake.off('wake', done)
            resolve()
          }
          wake.on('wake', done)
          // Re-check now and then so stop() never waits on an event that will not come. Not unref'd:
          // a started consumer keeps the process alive until stopped, like a Kafka consumer's sockets.
          setTimeout(done, 100)
        })
      }
    }

    return {
      get committedMessages() {
        return state.committedMessages
      },
      start: async () => {
        if (running) return
        running = true
        for (const l of listeners) bus.events.on(l.event, l.fn)
        loop = run()
      },
      /** Drains: returns after the current batch is committed; later messages stay for the next start. */
      stop: async () => {
        running = false
        for (const l of listeners) bus.events.off(l.event, l.fn)
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
