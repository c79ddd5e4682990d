/**
 * The webhook notifier: consumes `breakid.alerts.v1` (consumer group `breakid-notify`) and hands each
 * alert to every route whose filters match. Each route delivers on its own (./route-worker.ts: its
 * own bounded queue, backoff and give-up policy), so a receiver that is down delays only itself.
 *
 * Guarantees
 * - At least once per route: the alerts topic's offsets are committed only up to the first alert
 *   some route still owes (./progress.ts) — every route has delivered it (2xx) or durably given up on
 *   it (dead letter: counted, logged at error, the alert's bytes published to
 *   `breakid.deadletter.v1` with the reason in headers). The consumer reads on past a down route's
 *   backlog (the transport's PartialCommit), so the other routes keep getting new alerts; a restart
 *   redelivers from the oldest owed alert, and every request carries `Idempotency-Key:
 *   <id>:<status>` so the receivers that already had the repeats drop them.
 * - Order per route: a route gets alert n+1 only after alert n is settled.
 * - At most once per route and (alert id, status) within the dedup window (./dedup.ts, default
 *   10 000 keys): detectors publish the same id again when a batch of theirs is redelivered; those
 *   repeats are counted in `duplicates_suppressed_total`.
 * - Fleet grouping: each body carries the alert's group (./groups.ts).
 * - Bounded: each route holds at most `queueCapacity` waiting alerts (then gives up its oldest,
 *   reason `queue_full`), so the alerts read past the commit are bounded by the routes' capacities.
 *
 * Counters (`breakid_notify_*`, Prometheus text via core/metrics.ts `renderPrometheus`):
 * delivered_total{route}, failures_total{route,reason}, retries_total{route},
 * gave_up_total{route,reason}, duplicates_suppressed_total{route}, queue_depth{route},
 * pending_alerts, read_total, decode_errors_total{reason}, commit_errors_total.
 *
 * stop() ends backoff waits at once, lets attempts on the wire finish (bounded by `timeoutMs`),
 * commits what every route finished, and leaves the rest uncommitted for the next start.
 */
import { FleetGroups } from './groups.ts'
import type { Logger } from 'pino'
import type { Alert } from '../contract/records.ts'
import { codecs, TOPICS } from '../contract/topics.ts'
import { BreakidError, InvalidInputError, RecordDecodeError } from '../core/errors.ts'
import { Counters } from '../core/metrics.ts'
import { type Clock, systemClock } from '../core/clock.ts'
import type {
  IncomingMessage,
  Lifecycle,
  MessageBatch,
  MessageConsumer,
  MessageProducer,
  PartialCommit,
  Transport,
} from '../bus/transport.ts'
import { SettledKeys } from './dedup.ts'
import { PartitionProgress } from './progress.ts'
import { type Delivery, type GiveUpCause, type RetryEvent, RouteWorker } from './route-worker.ts'
import {
  type NotifyRoute,
  type ResolvedRoute,
  type RouteRetryPolicy,
  redactUrl,
  resolveRoutes,
  SEVERITY_RANK,
} from './routes.ts'

export type { NotifyRoute } from './routes.ts'
export type { RetryEvent } from './route-worker.ts'

export const NOTIFY_GROUP = 'breakid-notify'

export interface WebhookNotifierOptions {
  transport: Transport
  routes: NotifyRoute[]
  logger: Logger
  /** default 'breakid-notify' */
  groupId?: string
  /** defaults of every route's retry policy (routes.ts RouteRetryPolicy); a route's own wins */
  initialDelayMs?: number
  maxDelayMs?: number
  maxRetryAfterMs?: number
  maxAttempts?: number
  giveUpAfterMs?: number
  /** default of every route's attempt timeout. Default 5000. */
  timeoutMs?: number
  /** default of every route's queue capacity. Default 1000. */
  queueCapacity?: number
  /** settled (route, id, status) keys remembered for dedup. Default 10 000. */
  dedupCapacity?: number
  /** where given-up alerts go; null: count and log only. Default breakid.deadletter.v1. */
  deadLetterTopic?: string | null
  /** backoff waits and alert ages are measured on it (tests step a fake one). Default: real time. */
  clock?: Clock
  /** called before each backoff wait (live views, tests) */
  onRetry?: (event: RetryEvent) => void
}

export interface NotifierStats {
  delivered: number
  retries: number
  /** alerts routes gave up on (dead-lettered), every reason */
  gave_up: number
  duplicates_suppressed: number
  decode_errors: number
  /** alert records read from the topic (decodable or not), each once per session */
  read: number
  /** alerts read from the topic that some route still owes */
  pending: number
}

/** Thrown out of the handler while stopping, so the transport keeps the batch; never a failure. */
class HandlerYield extends BreakidError {
  constructor() {
    super('notify handler yields (stopping); the batch will be redelivered', {
      code: 'BREAKID_NOTIFY_YIELD',
    })
  }
}

/** A partition's progress plus the commit this process asked the transport for. */
interface PartitionState {
  progress: PartitionProgress
  /** highest offset handed to the transport to commit */
  requested: bigint
  committing: Promise<void> | undefined
}

function describeCounters(c: Counters): Counters {
  return c
    .describe('delivered_total', 'counter', 'alerts a route delivered (2xx)')
    .describe('failures_total', 'counter', 'failed delivery attempts by route and reason')
    .describe('retries_total', 'counter', 'backoff waits before another attempt, by route')
    .describe('gave_up_total', 'counter', 'alerts a route gave up on and dead-lettered, by reason')
    .describe('duplicates_suppressed_total', 'counter', 'repeats of a delivered (id, status) not sent again')
    .describe('queue_depth', 'gauge', 'alerts waiting for a route, the one in flight included')
    .describe('pending_alerts', 'gauge', 'alerts read from the topic that some route still owes')
    .describe('read_total', 'counter', 'alert records read from the topic')
    .describe('decode_errors_total', 'counter', 'alert records that did not decode, skipped')
    .describe('commit_errors_total', 'counter', 'offset commits that failed (retried on the next one)')
}

export class WebhookNotifier implements Lifecycle {
  readonly counters = describeCounters(new Counters('breakid_notify'))
  private readonly routes: readonly ResolvedRoute[]
  private readonly log: Logger
  readonly consumer: MessageConsumer
  private readonly deadLetters: MessageProducer | undefined
  private readonly deadLetterTopic: string | null
  private readonly settledKeys: SettledKeys
  private readonly clock: Clock
  private groups = new FleetGroups()
  private workers: RouteWorker[] = []
  private readonly partitions = new Map<string, PartitionState>()
  private abort = new AbortController()
  private state: 'idle' | 'running' | 'stopping' = 'idle'
  private stopped: Promise<void> | undefined

  constructor(private readonly opts: WebhookNotifierOptions) {
    const retry: Partial<RouteRetryPolicy> = {}
    for (const k of [
      'initialDelayMs',
      'maxDelayMs',
      'maxRetryAfterMs',
      'maxAttempts',
      'giveUpAfterMs',
    ] as const) {
      if (opts[k] !== undefined) retry[k] = opts[k]
    }
    this.routes = Object.freeze(
      resolveRoutes(opts.routes, { retry, timeoutMs: opts.timeoutMs, queueCapacity: opts.queueCapacity }),
    )
    const dedup = opts.dedupCapacity ?? 10_000
    if (!Number.isInteger(dedup) || dedup <= 0) {
      throw new InvalidInputError(`dedupCapacity must be a positive whole number, got ${dedup}`)
    }
    this.settledKeys = new SettledKeys(dedup)
    this.clock = opts.clock ?? systemClock
    this.log = opts.logger.child({ component: 'notify' })
    this.deadLetterTopic = opts.deadLetterTopic === undefined ? TOPICS.deadLetter : opts.deadLetterTopic
    this.deadLetters = this.deadLetterTopic === null ? undefined : opts.transport.producer()
    this.counters.set('pending_alerts', 0)
    this.counters.inc('commit_errors_total', 0)
    this.counters.inc('read_total', 0)
    this.consumer = opts.transport.consumer({
      groupId: opts.groupId ?? NOTIFY_GROUP,
      topics: [TOPICS.alerts],
      handler: (batch) => this.handle(batch),
      onHandlerError: (err, batch) => {
        if (err instanceof HandlerYield) return // expected while stopping
        this.log.warn(
          { err, topic: batch.topic, messages: batch.messages.length },
          'notify batch failed; retrying',
        )
      },
    })
  }

  async start(): Promise<void> {
    if (this.state === 'stopping') await this.stopped
    if (this.state !== 'idle') return
    this.state = 'running'
    this.stopped = undefined
    this.abort = new AbortController()
    // Offsets may have moved while stopped (another member, a reset): what is owed is read again.
    this.partitions.clear()
    this.groups = new FleetGroups()
    this.workers = this.routes.map(
      (route) =>
        new RouteWorker(
          {
            route,
            log: this.log,
            counters: this.counters,
            clock: this.clock,
            dedup: this.settledKeys,
            deadLetter: (r, d, cause, err) => this.deadLetter(r, d, cause, err),
            settled: (d) => this.settled(d),
            onRetry: this.opts.onRetry,
          },
          this.abort.signal,
        ),
    )
    for (const w of this.workers) w.start()
    await this.deadLetters?.start()
    await this.consumer.start()
    this.log.info(
      {
        routes: this.routes.map((r) => ({ name: r.name, target: redactUrl(r.url), format: r.format })),
      },
      'webhook notifier started',
    )
  }

  /** Ends backoff waits, drains attempts in flight, commits what is finished. Idempotent. */
  async stop(): Promise<void> {
    if (this.state === 'idle') return this.stopped
    if (this.state === 'running') {
      this.state = 'stopping'
      this.abort.abort()
      this.stopped = (async () => {
        try {
          await Promise.all(this.workers.map((w) => w.stopped()))
          // Commit while the consumer still runs; a handler call meanwhile yields (aborted).
          await Promise.all([...this.partitions.values()].map((p) => this.commitOwed(p)))
          await this.consumer.stop()
          await this.deadLetters?.stop()
        } finally {
          this.state = 'idle'
        }
      })()
    }
    return this.stopped
  }

  stats(): NotifierStats {
    return {
      delivered: this.counters.total('delivered_total'),
      retries: this.counters.total('retries_total'),
      gave_up: this.counters.total('gave_up_total'),
      duplicates_suppressed: this.counters.total('duplicates_suppressed_total'),
      decode_errors: this.counters.total('decode_errors_total'),
      read: this.counters.get('read_total'),
      pending: this.counters.get('pending_alerts'),
    }
  }

  private matches(route: ResolvedRoute, alert: Alert): boolean {
    if (route.types !== undefined && !route.types.has(alert.type)) return false
    return SEVERITY_RANK[alert.severity] >= route.minRank
  }

  private partition(topic: string, partition: number): PartitionState {
    const key = `${topic}/${partition}`
    let p = this.partitions.get(key)
    if (!p) {
      p = { progress: new PartitionProgress(topic, partition), requested: -1n, committing: undefined }
      this.partitions.set(key, p)
    }
    return p
  }

  /** Hands the batch's alerts to the routes without waiting for any delivery. */
  private async handle(batch: MessageBatch): Promise<PartialCommit> {
    if (this.abort.signal.aborted) throw new HandlerYield()
    const state = this.partition(batch.topic, batch.partition)
    for (const message of batch.messages) {
      const offset = BigInt(message.offset)
      if (state.progress.seen(offset)) continue // still owed from before the batch came back
      this.accept(state.progress, batch, message, offset)
    }
    this.updatePending()
    const commitOffset = state.progress.lowWater()
    if (commitOffset > state.requested) state.requested = commitOffset
    return { commitOffset: commitOffset.toString() }
  }

  private accept(
    progress: PartitionProgress,
    batch: MessageBatch,
    message: IncomingMessage,
    offset: bigint,
  ): void {
    this.counters.inc('read_total')
    let alert: Alert
    try {
      alert = codecs.alert.decode(message.value ?? Buffer.alloc(0), message.headers)
    } catch (err) {
      if (!(err instanceof RecordDecodeError)) throw err
      this.counters.inc('decode_errors_total', 1, { reason: err.reason })
      this.log.warn({ offset: message.offset, reason: err.reason, err: err.message }, 'alert record skipped')
      progress.accept(offset, 0)
      return
    }
    const group = this.groups.observe(alert)
    const workers = this.workers.filter((w) => this.matches(w.route, alert))
    progress.accept(offset, workers.length)
    const origin = `${batch.topic}/${batch.partition}/${message.offset}`
    for (const w of workers) w.enqueue({ alert, group, message, origin, progress, offset })
  }

  private settled(delivery: Delivery): void {
    delivery.progress.settle(delivery.offset)
    this.updatePending()
    const state = this.partitions.get(`${delivery.progress.topic}/${delivery.progress.partition}`)
    // a delivery of a previous session (stop, then start) has no say over this session's offsets
    if (state?.progress !== delivery.progress || this.state !== 'running') return
    void this.commitOwed(state)
  }

  private updatePending(): void {
    let pending = 0
    for (const p of this.partitions.values()) pending += p.progress.pending
    this.counters.set('pending_alerts', pending)
  }

  /** Commits the partition up to its low-water mark; one commit at a time, coalescing the rest. */
  private commitOwed(state: PartitionState): Promise<void> {
    if (state.committing) return state.committing
    const run = async (): Promise<void> => {
      try {
        for (;;) {
          const to = state.progress.lowWater()
          if (to <= state.requested) return
          await this.consumer.commit(state.progress.topic, state.progress.partition, to.toString())
          state.requested = to
        }
      } catch (err) {
        // The next settle (or batch) tries again; a partition lost to a rebalance is committed by its new owner.
        this.counters.inc('commit_errors_total')
        this.log.warn(
          { err, topic: state.progress.topic, partition: state.progress.partition },
          'commit failed',
        )
      }
    }
    // cleared in a later microtask, after the assignment below, even when run() finishes at once
    const p: Promise<void> = run().finally(() => {
      if (state.committing === p) state.committing = undefined
    })
    state.committing = p
    return p
  }

  private async deadLetter(
    route: ResolvedRoute,
    delivery: Delivery,
    cause: GiveUpCause,
    err: unknown,
  ): Promise<void> {
    if (this.deadLetters === undefined || this.deadLetterTopic === null) return
    const { message } = delivery
    const reason = err instanceof Error ? err.message : String(err)
    await this.deadLetters.send(this.deadLetterTopic, [
      {
        key: delivery.origin,
        value: message.value ?? Buffer.alloc(0),
        headers: {
          'breakid-source-topic': message.topic,
          'breakid-source-partition': String(message.partition),
          'breakid-source-offset': message.offset,
          'breakid-reason': `webhook_${cause}`,
          'breakid-route': route.name,
          'breakid-error': `route ${route.name}: ${reason}`,
        },
      },
    ])
  }
}
