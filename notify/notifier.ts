/**
 * The webhook notifier: consumes `breakid.alerts.v1` (consumer group `breakid-notify`) and POSTs each
 * alert to every route whose filters match, in topic order.
 *
 * Guarantees
 * - Nothing is lost while a receiver is down: a batch's offsets are committed only after every
 *   matching route accepted each of its alerts (2xx), or refused one for good (a 4xx other than
 *   408/429, see webhook.ts `classifyFailure`), which is dead-lettered: counted, logged at error, and
 *   the alert's bytes published to `breakid.deadletter.v1` with the reason in headers, as the ingest
 *   consumer does for records it cannot read. Retriable failures are retried without limit while the
 *   notifier runs.
 * - Order per route: a route gets alert n+1 only after alert n is settled. Routes of one alert are
 *   served side by side, so a down route delays the others by at most one alert's worth of waiting
 *   (they share the consumer offset) but never makes them lose or reorder anything.
 * - At most once per route and (alert id, status) within the dedup window: the keys of the last
 *   `dedupCapacity` (default 10 000) settled deliveries are kept in an LRU (a hit refreshes the key,
 *   a full window forgets its least recently used key). Detectors publish the same id again when a
 *   batch of theirs is redelivered; those repeats are counted in `duplicates_suppressed`. The window
 *   lives in memory: after a restart the uncommitted tail is delivered again, so every request also
 *   carries `Idempotency-Key: <id>:<status>` for receivers to dedupe on.
 * - Fleet grouping: each body carries the alert's group (./groups.ts) — the instances of the fleet
 *   firing the same break right now — so one break on many instances reads as one.
 *
 * Time: one attempt is bounded by `timeoutMs`. The backoff (full jitter, doubling from
 * `initialDelayMs` to `maxDelayMs`, a longer server Retry-After honoured up to `maxRetryAfterMs`) is
 * kept per route across handler calls, and a handler call returns within about `handlerBudgetMs` +
 * `timeoutMs`: when the next wait would pass the budget the handler throws, the transport backs off
 * and redelivers the batch (Kafka heartbeats meanwhile instead of losing the group session), and the
 * delivery resumes where it was. That is why this loop does not use ingest/retry.ts, whose backoff
 * state lives in one call.
 *
 * stop() aborts the backoff wait at once, lets an attempt already on the wire finish (bounded by
 * `timeoutMs`), and leaves the unfinished batch uncommitted for the next start.
 */
import { type AlertGroup, FleetGroups } from './groups.ts'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import type { Alert, Severity } from '../contract/records.ts'
import { codecs, TOPICS } from '../contract/topics.ts'
import {
  BreakidError,
  DownstreamError,
  InvalidInputError,
  isRetriable,
  RecordDecodeError,
} from '../core/errors.ts'
import { Counters } from '../core/metrics.ts'
import type {
  IncomingMessage,
  Lifecycle,
  MessageBatch,
  MessageConsumer,
  MessageProducer,
  Transport,
} from '../bus/transport.ts'
import { DEFAULT_TIMEOUT_MS, deliver, parseWebhookUrl, redactUrl, type WebhookFormat } from './webhook.ts'

export const NOTIFY_GROUP = 'breakid-notify'

export interface NotifyRoute {
  /** label in counters and logs; default `route-<index>`. Letters, digits, `_.:-`. */
  name?: string
  url: string
  /** signs every request to this route */
  secret?: string
  /** default 'json' */
  format?: WebhookFormat
  /** only these alert types; default all */
  types?: string[]
  /** only alerts at least this severe; default 'info' (all) */
  minSeverity?: Severity
}

export interface RetryEvent {
  route: string
  alertId: string
  status: Alert['status']
  /** failed attempts of this delivery so far */
  failures: number
  /** the wait before the next attempt */
  delayMs: number
  /** the server's Retry-After, when it sent one */
  retryAfterMs: number | undefined
  error: Error
}

export interface WebhookNotifierOptions {
  transport: Transport
  routes: NotifyRoute[]
  logger: Logger
  /** default 'breakid-notify' */
  groupId?: string
  /** first backoff ceiling. Default 500. */
  initialDelayMs?: number
  /** largest backoff ceiling. Default 30 000. */
  maxDelayMs?: number
  /** a server's Retry-After is honoured up to this. Default 300 000 (5 min). */
  maxRetryAfterMs?: number
  /** one attempt, connect to last body byte. Default 5000. */
  timeoutMs?: number
  /** how long one handler call may keep waiting before handing back to the transport. Default 3000. */
  handlerBudgetMs?: number
  /** settled (route, id, status) keys remembered for dedup. Default 10 000. */
  dedupCapacity?: number
  /** where permanently refused alerts go; null: count and log only. Default breakid.deadletter.v1. */
  deadLetterTopic?: string | null
  /** called before each backoff wait (live views, tests) */
  onRetry?: (event: RetryEvent) => void
}

export interface NotifierStats {
  delivered: number
  retries: number
  failed_permanently: number
  duplicates_suppressed: number
  decode_errors: number
}

interface ResolvedRoute {
  name: string
  url: string
  secret: string | undefined
  format: WebhookFormat
  types: ReadonlySet<string> | undefined
  minRank: number
}

/** Backoff of the one delivery a route is working on; it survives the handler being re-entered. */
interface PendingDelivery {
  key: string
  failures: number
  notBeforeMs: number
}

const SEVERITY_RANK: Record<Severity, number> = { info: 0, warning: 1, critical: 2 }
const ROUTE_NAME = /^[A-Za-z0-9_.:-]{1,64}$/

/** Thrown out of the handler so the transport keeps the batch; never a failure of its own. */
class HandlerYield extends BreakidError {
  constructor(reason: 'stopping' | 'budget') {
    super(`notify handler yields (${reason}); the batch will be redelivered`, {
      code: 'BREAKID_NOTIFY_YIELD',
      retriable: true,
    })
  }
}

/** Insertion-ordered Map as an LRU of settled delivery keys → the message that settled them. */
class SettledKeys {
  private readonly map = new Map<string, string>()
  constructor(private readonly capacity: number) {}
  get(key: string): string | undefined {
    const origin = this.map.get(key)
    if (origin !== undefined) {
      this.map.delete(key)
      this.map.set(key, origin)
    }
    return origin
  }
  add(key: string, origin: string): void {
    this.map.delete(key)
    this.map.set(key, origin)
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value!)
  }
  get size(): number {
    return this.map.size
  }
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback
  if (!Number.isFinite(v) || v <= 0)
    throw new InvalidInputError(`${name} must be a positive number, got ${v}`)
  return v
}

function resolveRoutes(routes: NotifyRoute[]): ResolvedRoute[] {
  const names = new Set<string>()
  return routes.map((r, i) => {
    const name = r.name ?? `route-${i}`
    if (!ROUTE_NAME.test(name))
      throw new InvalidInputError(`route name ${JSON.stringify(name)} is not a label`)
    if (names.has(name)) throw new InvalidInputError(`route name ${name} is used twice`)
    names.add(name)
    parseWebhookUrl(r.url)
    if (r.secret !== undefined && r.secret.length === 0) {
      throw new InvalidInputError(`route ${name}: secret must not be empty`)
    }
    const format = r.format ?? 'json'
    if (format !== 'json' && format !== 'slack')
      throw new InvalidInputError(`route ${name}: unknown format ${format}`)
    const minSeverity = r.minSeverity ?? 'info'
    if (!(minSeverity in SEVERITY_RANK)) {
      throw new InvalidInputError(`route ${name}: unknown severity ${minSeverity}`)
    }
    return Object.freeze({
      name,
      url: r.url,
      secret: r.secret,
      format,
      types: r.types === undefined ? undefined : new Set(r.types),
      minRank: SEVERITY_RANK[minSeverity],
    })
  })
}

export class WebhookNotifier implements Lifecycle {
  /** breakid_notify_{delivered,retries,failed_permanently,duplicates_suppressed}_total{route}, decode_errors_total{reason} */
  readonly counters = new Counters('breakid_notify')
  private readonly routes: readonly ResolvedRoute[]
  private readonly log: Logger
  private readonly consumer: MessageConsumer
  private readonly deadLetters: MessageProducer | undefined
  private readonly deadLetterTopic: string | null
  private readonly settled: SettledKeys
  private readonly groups = new FleetGroups()
  private readonly pending = new Map<string, PendingDelivery>()
  /** per topic/partition: the highest offset this process finished, so a redelivered batch skips it */
  private readonly finished = new Map<string, bigint>()
  private readonly cfg: {
    initialDelayMs: number
    maxDelayMs: number
    maxRetryAfterMs: number
    timeoutMs: number
    handlerBudgetMs: number
  }
  private abort = new AbortController()
  private state: 'idle' | 'running' | 'stopping' = 'idle'
  private stopped: Promise<void> | undefined

  constructor(private readonly opts: WebhookNotifierOptions) {
    this.routes = Object.freeze(resolveRoutes(opts.routes))
    this.cfg = Object.freeze({
      initialDelayMs: positive('initialDelayMs', opts.initialDelayMs, 500),
      maxDelayMs: positive('maxDelayMs', opts.maxDelayMs, 30_000),
      maxRetryAfterMs: positive('maxRetryAfterMs', opts.maxRetryAfterMs, 300_000),
      timeoutMs: positive('timeoutMs', opts.timeoutMs, DEFAULT_TIMEOUT_MS),
      handlerBudgetMs: positive('handlerBudgetMs', opts.handlerBudgetMs, 3_000),
    })
    this.settled = new SettledKeys(Math.floor(positive('dedupCapacity', opts.dedupCapacity, 10_000)))
    this.log = opts.logger.child({ component: 'notify' })
    this.deadLetterTopic = opts.deadLetterTopic === undefined ? TOPICS.deadLetter : opts.deadLetterTopic
    this.deadLetters = this.deadLetterTopic === null ? undefined : opts.transport.producer()
    this.consumer = opts.transport.consumer({
      groupId: opts.groupId ?? NOTIFY_GROUP,
      topics: [TOPICS.alerts],
      handler: (batch) => this.handle(batch),
      onHandlerError: (err, batch) => {
        if (err instanceof HandlerYield) return // expected: stopping, or handing back to heartbeat
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
    // Offsets may have moved while stopped (another member, a reset); only the dedup window carries over.
    this.finished.clear()
    await this.deadLetters?.start()
    await this.consumer.start()
    this.log.info(
      { routes: this.routes.map((r) => ({ name: r.name, target: redactUrl(r.url), format: r.format })) },
      'webhook notifier started',
    )
  }

  /** Aborts backoff waits, drains the attempt in flight, leaves unfinished work uncommitted. Idempotent. */
  async stop(): Promise<void> {
    if (this.state === 'idle') return this.stopped
    if (this.state === 'running') {
      this.state = 'stopping'
      this.abort.abort()
      this.stopped = (async () => {
        try {
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
      failed_permanently: this.counters.total('failed_permanently_total'),
      duplicates_suppressed: this.counters.total('duplicates_suppressed_total'),
      decode_errors: this.counters.total('decode_errors_total'),
    }
  }

  private matches(route: ResolvedRoute, alert: Alert): boolean {
    if (route.types !== undefined && !route.types.has(alert.type)) return false
    return SEVERITY_RANK[alert.severity] >= route.minRank
  }

  private async handle(batch: MessageBatch): Promise<void> {
    const deadline = Date.now() + this.cfg.handlerBudgetMs
    const partitionKey = `${batch.topic}/${batch.partition}`
    for (const message of batch.messages) {
      const offset = BigInt(message.offset)
      const done = this.finished.get(partitionKey)
      if (done !== undefined && offset <= done) continue // finished before the batch came back
      if (this.abort.signal.aborted) throw new HandlerYield('stopping')
      // Yield between alerts too, so a long batch to a slow receiver cannot starve the heartbeat.
      if (Date.now() > deadline) throw new HandlerYield('budget')
      await this.handleMessage(batch, message, deadline)
      this.finished.set(partitionKey, offset)
    }
  }

  private async handleMessage(
    batch: MessageBatch,
    message: IncomingMessage,
    deadline: number,
  ): Promise<void> {
    let alert: Alert
    try {
      alert = codecs.alert.decode(message.value ?? Buffer.alloc(0))
    } catch (err) {
      if (!(err instanceof RecordDecodeError)) throw err
      this.counters.inc('decode_errors_total', 1, { reason: err.reason })
      this.log.warn({ offset: message.offset, reason: err.reason, err: err.message }, 'alert record skipped')
      return
    }
    const origin = `${batch.topic}/${batch.partition}/${message.offset}`
    const group = this.groups.observe(alert)
    const routes = this.routes.filter((r) => this.matches(r, alert))
    const results = await Promise.allSettled(
      routes.map((r) => this.deliverToRoute(r, alert, group, batch, message, origin, deadline)),
    )
    // Every route has settled (nothing left in flight) before the batch is handed back.
    for (const r of results) if (r.status === 'rejected') throw r.reason
  }

  private async deliverToRoute(
    route: ResolvedRoute,
    alert: Alert,
    group: AlertGroup,
    batch: MessageBatch,
    message: IncomingMessage,
    origin: string,
    deadline: number,
  ): Promise<void> {
    const key = `${route.name}\u0000${alert.id}\u0000${alert.status}`
    const settledBy = this.settled.get(key)
    if (settledBy !== undefined) {
      // The same message coming back (partly delivered when its batch was handed back) is no duplicate.
      if (settledBy !== origin) {
        this.counters.inc('duplicates_suppressed_total', 1, { route: route.name })
        this.log.debug(
          { route: route.name, alert: alert.id, status: alert.status },
          'duplicate alert suppressed',
        )
      }
      return
    }
    let pending = this.pending.get(route.name)
    if (pending?.key !== key) {
      pending = { key, failures: 0, notBeforeMs: 0 }
      this.pending.set(route.name, pending)
    }
    const signal = this.abort.signal
    for (;;) {
      const now = Date.now()
      const waitMs = pending.notBeforeMs - now
      if (waitMs > 0) {
        // Spend what is left of the budget waiting, then hand back if the wait is longer than that.
        const overBudget = now + waitMs > deadline
        try {
          await sleep(overBudget ? Math.max(0, deadline - now) : waitMs, undefined, { signal })
        } catch {
          throw new HandlerYield('stopping')
        }
        if (overBudget) throw new HandlerYield('budget')
      }
      if (signal.aborted) throw new HandlerYield('stopping')
      try {
        // Not aborted by stop(): an attempt on the wire finishes (within timeoutMs) so its outcome is known.
        const res = await deliver(route.url, alert, {
          secret: route.secret,
          format: route.format,
          timeoutMs: this.cfg.timeoutMs,
          group,
        })
        this.settle(route, key, origin)
        this.counters.inc('delivered_total', 1, { route: route.name })
        this.log.debug(
          {
            route: route.name,
            alert: alert.id,
            status: alert.status,
            http: res.status,
            failures: pending.failures,
          },
          'alert delivered',
        )
        return
      } catch (err) {
        if (!isRetriable(err)) {
          await this.deadLetter(route, alert, batch, message, err)
          this.settle(route, key, origin)
          return
        }
        pending.failures++
        const retryAfterMs = err instanceof DownstreamError ? err.retryAfterMs : undefined
        const delayMs = this.backoffMs(pending.failures, retryAfterMs)
        pending.notBeforeMs = Date.now() + delayMs
        this.counters.inc('retries_total', 1, { route: route.name })
        const error = err instanceof Error ? err : new Error(String(err))
        // One warning per delivery, then debug: a receiver down for hours should not flood the log.
        const level = pending.failures === 1 ? 'warn' : 'debug'
        this.log[level](
          { route: route.name, alert: alert.id, failures: pending.failures, delayMs, err: error.message },
          'webhook delivery failed; retrying',
        )
        this.opts.onRetry?.({
          route: route.name,
          alertId: alert.id,
          status: alert.status,
          failures: pending.failures,
          delayMs,
          retryAfterMs,
          error,
        })
      }
    }
  }

  /** Full jitter under a doubling ceiling; a longer Retry-After from the server wins, up to its cap. */
  private backoffMs(failures: number, retryAfterMs: number | undefined): number {
    const ceiling = Math.min(this.cfg.maxDelayMs, this.cfg.initialDelayMs * 2 ** (failures - 1))
    const jittered = Math.random() * ceiling
    if (retryAfterMs === undefined) return jittered
    return Math.max(jittered, Math.min(retryAfterMs, this.cfg.maxRetryAfterMs))
  }

  private settle(route: ResolvedRoute, key: string, origin: string): void {
    this.settled.add(key, origin)
    if (this.pending.get(route.name)?.key === key) this.pending.delete(route.name)
  }

  private async deadLetter(
    route: ResolvedRoute,
    alert: Alert,
    batch: MessageBatch,
    message: IncomingMessage,
    err: unknown,
  ): Promise<void> {
    const reason = err instanceof Error ? err.message : String(err)
    if (this.deadLetters !== undefined && this.deadLetterTopic !== null) {
      // Throws (retriable) if the bus is down: the batch comes back and the delivery is tried again.
      await this.deadLetters.send(this.deadLetterTopic, [
        {
          key: `${batch.topic}/${batch.partition}/${message.offset}`,
          value: message.value ?? Buffer.alloc(0),
          headers: {
            'breakid-source-topic': batch.topic,
            'breakid-source-partition': String(batch.partition),
            'breakid-source-offset': message.offset,
            'breakid-reason': 'webhook_rejected',
            'breakid-error': `route ${route.name}: ${reason}`,
          },
        },
      ])
    }
    this.counters.inc('failed_permanently_total', 1, { route: route.name })
    this.log.error(
      { route: route.name, alert: alert.id, status: alert.status, type: alert.type, err: reason },
      'webhook refused the alert for good; dead-lettered',
    )
  }
}
