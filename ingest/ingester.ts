/**
 * The Kafka → ClickHouse writer (consumer group `breakid-ingest`), pipelined so that fetching and
 * converting overlap inserting, and idempotent so that a block inserted twice is stored once.
 *
 *   fetch (kafkajs) ─▶ convert into the partition's open block (routes.ts) ─▶ seal ─▶ insert ─▶ commit
 *
 * - **Blocks.** Each topic-partition fills one block at a time with the records of consecutive
 *   offsets. A block is sealed at `blockRows` rows, or `maxDelayMs` after its first record (so a
 *   quiet partition is stored within that time), and inserted as one Native block.
 * - **Overlap and back-pressure.** Sealed blocks go to ClickHouse in the background (`insertConcurrency`
 *   at once, each partition's in order) while the consumer fetches and converts the next ones. At
 *   `maxBlocksInFlight` sealed blocks not yet committed the consumer waits (and heartbeats): the queue
 *   is bounded and a slow or hung ClickHouse holds the fetching back, never the group membership.
 * - **Commit after the acknowledgement.** A block's offsets are committed after ClickHouse
 *   acknowledged its insert and its dead letters are on their topic, in offset order per partition.
 * - **Idempotence.** Every insert carries the token `topic/partition/first-last` (its offsets), and
 *   ClickHouse drops a block whose token it has seen (store/tables.ts DEDUP_WINDOW_BLOCKS). For a
 *   replay to repeat the tokens it must cut the same blocks, so before a block is inserted its cut
 *   is committed as metadata beside the partition's committed offset (`cuts=…`): whoever reads the
 *   partition next — this process after a crash, another member after a rebalance — cuts there too.
 *   That commit is fenced by Kafka's group generation: a member that lost the partition cannot note
 *   a cut, and then does not insert.
 * - **Bad records** go to the dead-letter topic one by one (`offset:index` inside a container) and
 *   the rest of their block is stored; rows ClickHouse itself refuses are found message by message,
 *   then record by record, each with a token derived from the block's.
 * - A retriable insert failure is retried with backoff (0.5 s doubling to 30 s) for as long as it
 *   takes; the block stays in flight and the queue fills behind it.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import { isRetriable } from '../core/errors.ts'
import { Counters, Histogram } from '../core/metrics.ts'
import { retry } from '../core/retry.ts'
import { isContainer } from '../contract/container.ts'
import { TOPICS } from '../contract/topics.ts'
import type {
  IncomingMessage,
  Lifecycle,
  MessageBatch,
  MessageProducer,
  StreamingConsumer,
  TopicPartition,
  Transport,
} from '../bus/transport.ts'
import type { ClickHouse } from '../store/client.ts'
import { insertBlock } from '../store/writer.ts'
import { ingestRoutes, type Rejected, type Route, type RowBlock, recordBytes } from './routes.ts'

export const INGEST_GROUP = 'breakid-ingest'

export interface IngesterOptions {
  transport: Transport
  clickhouse: ClickHouse
  logger: Logger
  groupId?: string
  /** seal a block at this many rows. Default 100 000 (bench/results/ingest.json) */
  blockRows?: number
  /**
   * …or this long after its first record, ms. Default 2 000: rows reach ClickHouse within seconds
   * (detection runs on Kafka, not on ClickHouse), and each insert is a part ClickHouse merges again
   * later — at 16 000 spans/s a partition (a 100 000 spans/s fleet over 6) a block is then ~32 000 rows.
   */
  maxDelayMs?: number
  /** sealed blocks not yet committed, all partitions together; the consumer waits beyond. Default 4 */
  maxBlocksInFlight?: number
  /** inserts running at once. Default 2 */
  insertConcurrency?: number
  /** how long stop() waits for the blocks in flight; what is left is delivered again. Default 30 s */
  drainTimeoutMs?: number
  /** first backoff of a failed insert, ms (doubling to 30 s). Default 500 */
  retryDelayMs?: number
}

/** Metadata committed beside a partition's offset: the block cuts decided but not committed yet. */
const CUTS_PREFIX = 'breakid-ingest/1 cuts='

export function formatCuts(cuts: readonly bigint[]): string {
  return CUTS_PREFIX + cuts.join(',')
}

export function parseCuts(metadata: string): bigint[] {
  if (!metadata.startsWith(CUTS_PREFIX)) return []
  return metadata
    .slice(CUTS_PREFIX.length)
    .split(',')
    .filter((s) => /^\d+$/.test(s))
    .map((s) => BigInt(s))
}

interface Block {
  tp: TopicPartition
  /** offsets [first, next) */
  first: bigint
  next: bigint
  rows: RowBlock
  rejected: Rejected[]
  /** kept until committed: the per-record fallback reads them again */
  messages: IncomingMessage[]
  openedAt: number
  token: string
}

interface Partition {
  tp: TopicPartition
  route: Route
  /** the offset after the last message taken into a block */
  next: bigint | undefined
  /** cuts noted by the previous owner that this one must repeat, ascending */
  cuts: bigint[]
  /** the committed offset as this member last saw or set it */
  committed: bigint | undefined
  open: Block | undefined
  /** sealed and not yet committed, in offset order */
  sealed: Block[]
  /** each block's insert and commit, in order */
  chain: Promise<void>
  owned: boolean
}

const tpKey = (tp: TopicPartition) => `${tp.topic}/${tp.partition}`

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
    .describe('batch_retries_total', 'counter', 'Block inserts retried after a retriable failure, by topic')
    .describe(
      'backpressure_waits_total',
      'counter',
      'Waits of the consumer for room among the blocks in flight',
    )
  /** one observation per INSERT statement, refused ones included */
  readonly insertLatency = new Histogram(
    'breakid_ingest_insert_duration_seconds',
    'Duration of one ClickHouse INSERT, by table',
  )
  readonly consumer: StreamingConsumer
  private readonly deadLetters: MessageProducer
  private readonly routes = ingestRoutes()
  private readonly partitions = new Map<string, Partition>()
  private readonly loading = new Map<string, Promise<Partition>>()
  private readonly o: Required<Omit<IngesterOptions, 'transport' | 'clickhouse' | 'logger' | 'groupId'>>
  private inFlight = 0
  private insertsRunning = 0
  private readonly waiters: (() => void)[] = []
  private timer: NodeJS.Timeout | undefined
  /** no new batches are taken (stop() began) */
  private stopping = false
  /** aborted when the drain timed out: blocks still retrying give up */
  private abandon = new AbortController()
  private running = false

  constructor(private readonly opts: IngesterOptions) {
    this.o = {
      blockRows: opts.blockRows ?? 100_000,
      maxDelayMs: opts.maxDelayMs ?? 2_000,
      maxBlocksInFlight: opts.maxBlocksInFlight ?? 4,
      insertConcurrency: opts.insertConcurrency ?? 2,
      drainTimeoutMs: opts.drainTimeoutMs ?? 30_000,
      retryDelayMs: opts.retryDelayMs ?? 500,
    }
    this.deadLetters = opts.transport.producer()
    this.consumer = opts.transport.streamingConsumer({
      groupId: opts.groupId ?? INGEST_GROUP,
      topics: [TOPICS.spans, TOPICS.hw, TOPICS.alerts, TOPICS.deadLetter],
      onBatch: (batch, ctx) => this.onBatch(batch, ctx.heartbeat),
      onAssignment: (tps) => this.onAssignment(tps),
    })
  }

  async start(): Promise<void> {
    if (this.running) return
    this.running = true
    this.stopping = false
    this.abandon = new AbortController()
    await this.deadLetters.start()
    await this.consumer.start()
    this.timer = setInterval(() => this.sealOverdue(), Math.max(10, Math.min(250, this.o.maxDelayMs / 2)))
  }

  /** Seals the open blocks, waits for every block in flight (up to drainTimeoutMs), leaves the group. */
  async stop(): Promise<void> {
    if (!this.running) return
    this.running = false
    this.stopping = true
    this.consumer.pause()
    clearInterval(this.timer)
    for (const p of this.partitions.values()) if (p.open && p.cuts.length === 0) this.seal(p)
    const chains = Promise.all([...this.partitions.values()].map((p) => p.chain))
    const drained = await Promise.race([
      chains.then(() => true),
      sleep(this.o.drainTimeoutMs, false, { ref: false }),
    ])
    if (!drained) {
      this.opts.logger.warn(
        { blocks: this.inFlight },
        'ingest stopped with blocks in flight; they are delivered again on the next start',
      )
    }
    // blocks still retrying give up now instead of outliving the consumer
    this.abandon.abort(new Error('ingest stopped'))
    await this.consumer.stop()
    await this.deadLetters.stop()
    for (const w of this.waiters.splice(0)) w()
  }

  /** blocks sealed and not yet committed (for tests and the metrics) */
  get blocksInFlight(): number {
    return this.inFlight
  }

  /**
   * After every (re)join kafkajs delivers each partition again from its committed offset, so every
   * partition starts over: its committed offset and noted cuts are read anew on its next batch. Blocks
   * of the old assignment still in flight finish their insert (their tokens make a repeat harmless) but
   * commit nothing.
   */
  private onAssignment(tps: TopicPartition[]): void {
    this.opts.logger.info({ partitions: tps.map(tpKey) }, 'ingest partitions assigned')
    for (const p of this.partitions.values()) {
      p.owned = false
      if (p.open) p.route.release(p.open.rows)
      p.open = undefined
    }
    this.partitions.clear()
  }

  private partition(tp: TopicPartition): Promise<Partition> | Partition {
    const key = tpKey(tp)
    const known = this.partitions.get(key)
    if (known) return known
    let loading = this.loading.get(key)
    if (!loading) {
      loading = (async () => {
        const route = this.routes.get(tp.topic)!
        // the cuts the previous owner noted beyond the committed offset: this member repeats them
        const c = await this.consumer.committed(tp)
        const committed = c.offset === null ? undefined : BigInt(c.offset)
        const cuts = parseCuts(c.metadata).filter((x) => committed === undefined || x > committed)
        const p: Partition = {
          tp,
          route,
          next: undefined,
          cuts,
          committed,
          open: undefined,
          sealed: [],
          chain: Promise.resolve(),
          owned: true,
        }
        this.partitions.set(key, p)
        return p
      })().finally(() => this.loading.delete(key))
      this.loading.set(key, loading)
    }
    return loading
  }

  private async onBatch(batch: MessageBatch, heartbeat: () => Promise<void>): Promise<void> {
    if (!this.routes.has(batch.topic) || this.stopping) return
    const p = await this.partition({ topic: batch.topic, partition: batch.partition })
    for (const m of batch.messages) {
      const offset = BigInt(m.offset)
      // after a rebalance the partition comes again from its committed offset: skip what is taken
      if (p.next !== undefined && offset < p.next) continue
      while (p.cuts.length > 0 && p.cuts[0]! <= offset) p.cuts.shift() // cuts behind us (retention)
      if (!p.open) {
        p.open = {
          tp: p.tp,
          first: offset,
          next: offset,
          rows: p.route.acquire(),
          rejected: [],
          messages: [],
          openedAt: Date.now(),
          token: '',
        }
      }
      const block = p.open
      const before = block.rows.native.rows + block.rejected.length
      block.rows.append(m, block.rejected)
      this.counters.inc('records_consumed_total', block.rows.native.rows + block.rejected.length - before, {
        topic: batch.topic,
      })
      block.messages.push(m)
      block.next = offset + 1n
      p.next = block.next
      if (p.cuts.length > 0 ? block.next >= p.cuts[0]! : block.rows.native.rows >= this.o.blockRows) {
        if (p.cuts.length > 0) p.cuts.shift()
        this.seal(p)
      }
    }
    // back-pressure: wait for room, keeping the membership alive meanwhile; a rebalance ends the
    // wait, since the group can only rejoin once this batch returns
    while (this.inFlight >= this.o.maxBlocksInFlight && !this.stopping && p.owned) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 1_000)
        this.waiters.push(() => {
          clearTimeout(t)
          resolve()
        })
      })
      this.counters.inc('backpressure_waits_total')
      try {
        await heartbeat()
      } catch {
        break
      }
    }
  }

  /** Blocks whose first record waited maxDelayMs go out, unless a noted cut is still ahead. */
  private sealOverdue(): void {
    const now = Date.now()
    for (const p of this.partitions.values()) {
      if (p.open && p.cuts.length === 0 && now - p.open.openedAt >= this.o.maxDelayMs) this.seal(p)
    }
  }

  private seal(p: Partition): void {
    const block = p.open
    if (!block) return
    p.open = undefined
    block.token = `${block.tp.topic}/${block.tp.partition}/${block.first}-${block.next - 1n}`
    p.sealed.push(block)
    this.inFlight++
    p.chain = p.chain.then(() => this.complete(p, block))
  }

  private async complete(p: Partition, block: Block): Promise<void> {
    this.opts.logger.debug({ block: block.token, rows: block.rows.native.rows }, 'block sealed')
    try {
      // 1. note the cut before inserting, so that whoever replays this partition cuts here too. A
      //    partition started over meanwhile (a rejoin) neither inserts nor commits: its new epoch may
      //    have read the committed cuts before this note landed
      const noted =
        p.owned &&
        (await this.consumer.commit(
          p.tp,
          String(p.committed ?? block.first),
          formatCuts(p.sealed.map((b) => b.next)),
        )) &&
        p.owned
      if (!noted) {
        this.opts.logger.info(
          { block: block.token },
          'partition no longer ours; its new owner stores this block',
        )
        p.owned = false
        return // the partition moved on: its new owner inserts this range
      }
      // 2. rows and dead letters; both retried until they are through (or ingest stops)
      await this.insert(block)
      await this.sendDeadLetters(block)
      // 3. commit (not from a partition started over: its metadata belongs to the new epoch now)
      p.sealed.shift()
      if (
        p.owned &&
        (await this.consumer.commit(p.tp, String(block.next), formatCuts(p.sealed.map((b) => b.next))))
      ) {
        p.committed = block.next
      } else p.owned = false
    } catch (err) {
      // stopping while the insert still fails: the range is delivered again on the next start
      this.opts.logger.warn({ err, block: block.token }, 'block abandoned; it is delivered again')
      p.owned = false
    } finally {
      if (p.sealed[0] === block) p.sealed.shift()
      this.inFlight--
      p.route.release(block.rows)
      for (const w of this.waiters.splice(0)) w()
    }
  }

  /** Inserts a block, retrying what may heal; rows ClickHouse refuses are found and dead-lettered. */
  private async insert(block: Block): Promise<void> {
    const route = this.routes.get(block.tp.topic)!
    try {
      await this.insertWithRetry(route, block.rows, block.token)
    } catch (err) {
      if (isRetriable(err)) throw err
      // ClickHouse refused the data itself: message by message, then record by record
      for (const m of block.messages) {
        const one = route.acquire()
        try {
          one.append(m, [])
          await this.insertWithRetry(route, one, `${block.token}@${m.offset}`)
        } catch (refused) {
          if (isRetriable(refused)) throw refused
          await this.insertRecordByRecord(route, block, m)
        } finally {
          route.release(one)
        }
      }
    }
  }

  private async insertRecordByRecord(route: Route, block: Block, m: IncomingMessage): Promise<void> {
    const skip = new Set(block.rejected.map((r) => r.offset))
    const value = m.value ?? Buffer.alloc(0)
    const container = isContainer(value)
    const count = container ? value.readUInt32BE(4) : 1
    for (let i = 0; i < count; i++) {
      const offset = container ? `${m.offset}:${i}` : m.offset
      if (skip.has(offset)) continue
      const one = route.acquire()
      try {
        one.append(m, [], i)
        await this.insertWithRetry(route, one, `${block.token}@${offset}`)
      } catch (refused) {
        if (isRetriable(refused)) throw refused
        block.rejected.push({
          offset,
          value: recordBytes(value, i),
          reason: 'rejected_by_clickhouse',
          error: (refused as Error).message,
        })
      } finally {
        route.release(one)
      }
    }
  }

  /** Inserts a block, retrying with the project's backoff (core/retry.ts) until it is stored or ingest stops. */
  private insertWithRetry(route: Route, rows: RowBlock, token: string): Promise<void> {
    return retry(
      async () => {
        while (this.insertsRunning >= this.o.insertConcurrency) {
          await new Promise<void>((resolve) => this.waiters.push(resolve))
        }
        this.insertsRunning++
        const started = performance.now()
        try {
          await insertBlock(this.opts.clickhouse, route.table, rows.native, { token }).finally(() =>
            this.insertLatency.observe((performance.now() - started) / 1000, { table: route.table.name }),
          )
          this.counters.inc('rows_stored_total', rows.native.rows, { table: route.table.name })
        } finally {
          this.insertsRunning--
          for (const w of this.waiters.splice(0)) w()
        }
      },
      {
        ...this.retryPolicy(),
        onRetry: (err, _attempt, delayMs) => {
          this.counters.inc('batch_retries_total', 1, { topic: token.slice(0, token.indexOf('/')) })
          this.opts.logger.warn(
            { err, block: token, retryInMs: delayMs },
            'ClickHouse insert failed; retrying',
          )
        },
      },
    )
  }

  /** Until stored or stopped: a block is never skipped, so the retries have no count, only the stop. */
  private retryPolicy() {
    return {
      retries: Number.POSITIVE_INFINITY,
      initialDelayMs: this.o.retryDelayMs,
      maxDelayMs: 30_000,
      signal: this.abandon.signal,
    }
  }

  private async sendDeadLetters(block: Block): Promise<void> {
    const rejected = block.rejected
    if (rejected.length === 0) return
    const { topic, partition } = block.tp
    await retry(
      () =>
        this.deadLetters.send(
          TOPICS.deadLetter,
          rejected.map((r) => ({
            key: `${topic}/${partition}/${r.offset}`,
            value: r.value,
            headers: {
              'breakid-source-topic': topic,
              'breakid-source-partition': String(partition),
              'breakid-source-offset': r.offset,
              'breakid-reason': r.reason,
              'breakid-error': r.error,
            },
          })),
        ),
      // a dead letter is data too: retried like an insert, whatever the producer calls the error
      { ...this.retryPolicy(), retriable: () => true },
    )
    for (const r of rejected) this.counters.inc('dead_letters_total', 1, { topic, reason: r.reason })
    this.opts.logger.warn(
      { topic, count: rejected.length, first: rejected[0]!.error },
      'records rejected to the dead-letter topic',
    )
  }
}
