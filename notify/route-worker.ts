/**
 * One webhook route's delivery loop: its own bounded queue, its own backoff, its own give-up policy,
 * so a receiver that is down delays only itself.
 *
 * - Order: the route takes its alerts one at a time, oldest first; alert n+1 is sent after alert n
 *   is delivered or given up.
 * - Retry: core/retry.ts (full jitter, doubling from `initialDelayMs` to `maxDelayMs`, a longer
 *   Retry-After honoured up to `maxRetryAfterMs`), on the injected core/clock.ts Clock.
 * - Give up (dead letter): a permanent refusal (4xx other than 408/429), `maxAttempts` failed
 *   attempts, or an alert older than `giveUpAfterMs` since it reached the route (counted from its
 *   arrival, not its first attempt, so a long outage cannot hold a queue of alerts for
 *   `giveUpAfterMs` each). While the route is failing, an alert already that old is given up without
 *   another attempt. Giving up publishes the alert to the dead-letter topic first (retried until it
 *   works or the notifier stops), so a give-up is as durable as a delivery.
 * - Full queue (`queueCapacity` waiting alerts): the oldest waiting alert is given up with reason
 *   `queue_full`; nothing blocks the consumer or the other routes.
 * - Stop: backoff waits end at once, an attempt on the wire finishes (bounded by `timeoutMs`), and
 *   whatever is unfinished stays owed, so the commit does not pass it and a restart redelivers it.
 */
import type { Logger } from 'pino'
import type { AlertGroup } from './groups.ts'
import type { PartitionProgress } from './progress.ts'
import type { ResolvedRoute } from './routes.ts'
import { deliveryKey, type SettledKeys } from './dedup.ts'
import { deliver, failureReason } from './webhook.ts'
import type { IncomingMessage } from '../bus/transport.ts'
import type { Alert } from '../contract/records.ts'
import { DownstreamError } from '../core/errors.ts'
import type { Counters } from '../core/metrics.ts'
import type { Clock } from '../core/clock.ts'
import { type GiveUpReason, retry } from '../core/retry.ts'

/** One alert owed to one route. */
export interface Delivery {
  alert: Alert
  group: AlertGroup
  /** the alerts-topic message it came from; its bytes are what a dead letter carries */
  message: IncomingMessage
  /** `<topic>/<partition>/<offset>` */
  origin: string
  progress: PartitionProgress
  offset: bigint
}

/** Why a route gave up on an alert; the dead letter's reason is `webhook_<cause>`. */
export type GiveUpCause = 'rejected' | 'attempts' | 'deadline' | 'budget' | 'queue_full'

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

export interface RouteWorkerDeps {
  route: ResolvedRoute
  log: Logger
  /** breakid_notify counters; this worker writes its route's series */
  counters: Counters
  clock: Clock
  dedup: SettledKeys
  /** publishes the alert to the dead-letter topic; throws when it cannot (the bus is down) */
  deadLetter(route: ResolvedRoute, delivery: Delivery, cause: GiveUpCause, err: unknown): Promise<void>
  /** the route finished `delivery` (delivered, suppressed or given up) */
  settled(delivery: Delivery): void
  onRetry?: (event: RetryEvent) => void
}

interface Queued {
  delivery: Delivery
  /** clock time it reached the route */
  arrivedAtMs: number
}

export class RouteWorker {
  readonly route: ResolvedRoute
  private readonly waiting: Queued[] = []
  /** index of the oldest waiting entry in `waiting` (a deque without O(n) shifts) */
  private head = 0
  private inFlight: Queued | undefined
  private readonly givingUp = new Set<Promise<void>>()
  private wake: (() => void) | undefined
  private loop: Promise<void> | undefined
  /** clock time of the first failure of the current outage; undefined while the route is healthy */
  private failingSinceMs: number | undefined
  private outageFailures = 0
  private readonly labels: { route: string }

  constructor(
    private readonly deps: RouteWorkerDeps,
    private readonly signal: AbortSignal,
  ) {
    this.route = deps.route
    this.labels = { route: this.route.name }
    // every series of the route exists from the start, so a dashboard shows 0 rather than nothing
    for (const name of ['delivered_total', 'retries_total', 'duplicates_suppressed_total']) {
      deps.counters.inc(name, 0, this.labels)
    }
    this.gauge()
    signal.addEventListener('abort', () => this.wake?.(), { once: true })
  }

  /** alerts waiting plus the one in flight */
  get depth(): number {
    return this.waiting.length - this.head + (this.inFlight ? 1 : 0)
  }

  start(): void {
    this.loop ??= this.run()
  }

  /** Resolves when the loop and every give-up in progress ended (after the signal aborted). */
  async stopped(): Promise<void> {
    this.wake?.()
    await this.loop
    await Promise.all(this.givingUp)
  }

  enqueue(delivery: Delivery): void {
    if (this.waiting.length - this.head >= this.route.queueCapacity) {
      const oldest = this.shift()!
      const full = new Error(`route ${this.route.name}: queue full (${this.route.queueCapacity} waiting)`)
      const p: Promise<void> = this.giveUp(oldest.delivery, 'queue_full', full)
        .catch(() => {}) // only when stopping: the alert stays owed and is redelivered
        .finally(() => this.givingUp.delete(p))
      this.givingUp.add(p)
    }
    this.waiting.push({ delivery, arrivedAtMs: this.deps.clock.now() })
    this.gauge()
    this.wake?.()
  }

  private shift(): Queued | undefined {
    if (this.head >= this.waiting.length) return undefined
    const q = this.waiting[this.head]!
    this.waiting[this.head++] = undefined as unknown as Queued
    if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting.splice(0, this.head)
      this.head = 0
    }
    return q
  }

  private gauge(): void {
    this.deps.counters.set('queue_depth', this.depth, this.labels)
  }

  private async run(): Promise<void> {
    while (!this.signal.aborted) {
      const next = this.shift()
      if (next === undefined) {
        await new Promise<void>((resolve) => {
          this.wake = resolve
        })
        this.wake = undefined
        continue
      }
      this.inFlight = next
      this.gauge()
      try {
        await this.process(next)
      } catch (err) {
        // Only a give-up cut short by stop() lands here: the alert stays owed (uncommitted).
        this.deps.log.debug({ route: this.route.name, err }, 'delivery left for the next start')
      } finally {
        this.inFlight = undefined
        this.gauge()
      }
    }
  }

  private async process({ delivery, arrivedAtMs }: Queued): Promise<void> {
    const { alert, origin } = delivery
    const { route, counters, clock, log } = this.deps
    const key = deliveryKey(route.name, alert)
    const settledBy = this.deps.dedup.get(key)
    if (settledBy !== undefined) {
      // The same message coming back after a restart of the notifier (not of the process) is no duplicate.
      if (settledBy !== origin) {
        counters.inc('duplicates_suppressed_total', 1, this.labels)
        log.debug({ route: route.name, alert: alert.id, status: alert.status }, 'duplicate alert suppressed')
      }
      this.deps.settled(delivery)
      return
    }
    const policy = route.retry
    const budgetMs = policy.giveUpAfterMs - (clock.now() - arrivedAtMs)
    if (this.failingSinceMs !== undefined && budgetMs <= 0) {
      const err = new Error(
        `route ${route.name} failing and the alert is older than ${policy.giveUpAfterMs} ms`,
      )
      await this.giveUp(delivery, 'deadline', err)
      return
    }
    let stoppedBecause: GiveUpReason | undefined
    let failures = 0
    try {
      const res = await retry(
        async () => {
          try {
            // Not aborted by stop(): an attempt on the wire finishes (within timeoutMs) so its outcome is known.
            return await deliver(route.url, alert, {
              secret: route.secret,
              format: route.format,
              timeoutMs: route.timeoutMs,
              group: delivery.group,
              receiver: route.name,
              externalUrl: route.externalUrl,
            })
          } catch (err) {
            failures++
            counters.inc('failures_total', 1, { route: route.name, reason: failureReason(err) })
            this.noteFailure(alert, failures, err)
            throw err
          }
        },
        {
          retries: policy.maxAttempts - 1,
          initialDelayMs: policy.initialDelayMs,
          maxDelayMs: policy.maxDelayMs,
          maxRetryAfterMs: policy.maxRetryAfterMs,
          deadlineMs: Math.max(0, budgetMs),
          signal: this.signal,
          clock,
          retryAfterMs: (err) => (err instanceof DownstreamError ? err.retryAfterMs : undefined),
          onRetry: (err, attempt, delayMs) => {
            counters.inc('retries_total', 1, this.labels)
            const error = err instanceof Error ? err : new Error(String(err))
            this.deps.onRetry?.({
              route: route.name,
              alertId: alert.id,
              status: alert.status,
              failures: attempt,
              delayMs,
              retryAfterMs: err instanceof DownstreamError ? err.retryAfterMs : undefined,
              error,
            })
          },
          onGiveUp: (_err, reason) => {
            stoppedBecause = reason
          },
        },
      )
      this.deps.dedup.add(key, origin)
      counters.inc('delivered_total', 1, this.labels)
      this.noteRecovery()
      log.debug(
        { route: route.name, alert: alert.id, status: alert.status, http: res.status, failures },
        'alert delivered',
      )
      this.deps.settled(delivery)
    } catch (err) {
      if (stoppedBecause === undefined || stoppedBecause === 'aborted') return // owed: redelivered later
      const cause: GiveUpCause = stoppedBecause === 'not_retriable' ? 'rejected' : stoppedBecause
      await this.giveUp(delivery, cause, err)
    }
  }

  /** One warning per outage, not per attempt: a receiver down for hours must not flood the log. */
  private noteFailure(alert: Alert, failures: number, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err)
    this.outageFailures++
    if (this.failingSinceMs === undefined) {
      this.failingSinceMs = this.deps.clock.now()
      this.deps.log.warn(
        { route: this.route.name, alert: alert.id, err: message },
        'webhook route failing; retrying with backoff (the other routes go on)',
      )
    } else {
      this.deps.log.debug(
        { route: this.route.name, alert: alert.id, failures, err: message },
        'attempt failed',
      )
    }
  }

  private noteRecovery(): void {
    if (this.failingSinceMs === undefined) return
    this.deps.log.info(
      {
        route: this.route.name,
        failedForMs: this.deps.clock.now() - this.failingSinceMs,
        failures: this.outageFailures,
      },
      'webhook route delivering again',
    )
    this.failingSinceMs = undefined
    this.outageFailures = 0
  }

  /** Dead-letters the alert (retried until it works or stop), then settles it for this route. */
  private async giveUp(delivery: Delivery, cause: GiveUpCause, err: unknown): Promise<void> {
    const { route, counters, log } = this.deps
    await retry(() => this.deps.deadLetter(route, delivery, cause, err), {
      retries: Number.POSITIVE_INFINITY,
      initialDelayMs: 100,
      maxDelayMs: 5_000,
      signal: this.signal,
      clock: this.deps.clock,
      onRetry: (dlqErr) => log.warn({ route: route.name, err: dlqErr }, 'dead letter not written; retrying'),
    })
    this.deps.dedup.add(deliveryKey(route.name, delivery.alert), delivery.origin)
    counters.inc('gave_up_total', 1, { route: route.name, reason: cause })
    const { alert } = delivery
    log.error(
      {
        route: route.name,
        alert: alert.id,
        status: alert.status,
        type: alert.type,
        cause,
        err: err instanceof Error ? err.message : String(err),
      },
      'webhook route gave up on the alert; dead-lettered',
    )
    this.deps.settled(delivery)
  }
}
