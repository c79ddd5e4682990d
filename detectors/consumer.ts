/**
 * The live detector consumer (group `breakid-detect`): decodes spans and hardware samples, runs every
 * detector, and publishes their alert state changes to `breakid.alerts.v1`. The batch is committed
 * only after its alerts are published, so a crash cannot lose an alert (a redelivered batch yields
 * the same alert id, and the notifier suppresses the duplicate).
 *
 * Records that do not decode are counted and skipped here; the ingest consumer dead-letters them.
 *
 * With a `stateStore`, what the detectors learned survives a restart or a rebalance: every detector's
 * state is restored before the first record is consumed, checkpointed inside the batch handler once
 * `checkpoint.everyEventUs` (10 s) of event time or `checkpoint.everyRecords` (5000) records have
 * passed since the last checkpoint, and on stop after the consumer drained. The checkpoint is taken
 * before the batch commits, so stored state never runs ahead of the committed offsets by more than
 * the batch being committed, and after the batch's alerts are published, so a stored firing state
 * always has its published alert. A failed restore or checkpoint is logged and counted, not fatal:
 * detection goes on (from scratch, or with the previous checkpoint).
 *
 * Several members in one group (Kafka, `newDetectors` and a state store given): offsets are committed
 * only when the state is checkpointed, so the committed offsets and the stored state are those of one
 * moment. After every (re)join of the group a member starts over from fresh detectors, loads the
 * stored state of each instance on the first record it receives of it, and reads on from the
 * committed offsets — whoever owned a partition before, and however it stopped (a killed member's
 * records since its last checkpoint are replayed, reproducing its alerts with the same ids). Instances
 * whose partitions it gave away are gone with the old detectors, so it does not page them as silent.
 * Detector keys are instances or `<fleet>/<instance>/…`; fleet-wide keys (an SLO per model) see each
 * member's share of the fleet.
 *
 * Alerts end: on stop every open alert is resolved with `resolve_reason: 'shutdown'` (the detectors'
 * lifecycles are left inactive before the last checkpoint, so a restart neither resolves them again
 * nor fires from a half-held condition), and every `staleCheckEveryUs` of event time the alerts of
 * keys nothing evaluated for `staleAfterUs` resolve as `stale` (an instance or model that went away).
 * Cause over symptom is decided by the inhibitor (inhibit.ts) before anything is published.
 */
import type { Logger } from 'pino'
import { decodeMessage } from '../contract/container.ts'
import type { Alert, HwSample, Span } from '../contract/records.ts'
import { codecs, TOPICS } from '../contract/topics.ts'
import { Counters } from '../core/metrics.ts'
import type {
  Lifecycle,
  MessageBatch,
  MessageConsumer,
  MessageProducer,
  StreamingConsumer,
  TopicPartition,
  Transport,
} from '../bus/transport.ts'
import type { Detector } from './detector.ts'
import type { InhibitRule } from './inhibit.ts'
import { DEFAULT_STALE_AFTER_US, Paging } from './paging.ts'
import {
  type CheckpointOptions,
  DetectorCheckpoints,
  type DetectorStateStore,
  type StoredState,
} from './state-store.ts'

export const DETECT_GROUP = 'breakid-detect'

export interface DetectorConsumerOptions {
  transport: Transport
  detectors: Detector[]
  logger: Logger
  groupId?: string
  /** called for every alert published (the live view in `breakid up`) */
  onAlert?: (alert: Alert) => void
  /** called for every symptom kept from delivery (it rides on its root's `related`) */
  onInhibited?: (alert: Alert) => void
  /** the causal order (default CAUSAL_ORDER; [] disables inhibition) */
  inhibitRules?: readonly InhibitRule[]
  /** persists detector state (scope: the group id); without it every start relearns from scratch */
  stateStore?: DetectorStateStore
  checkpoint?: CheckpointOptions
  /** a fresh detector set: with a state store, members of one group hand state over (see above) */
  newDetectors?: () => Detector[]
  /** a firing alert whose key was not evaluated for this long (event time) resolves as stale. Default 10 min */
  staleAfterUs?: number
  /** resolve every open alert when stopping (reason shutdown). Default true */
  resolveOnStop?: boolean
}

export { DEFAULT_STALE_AFTER_US }

export class DetectorConsumer implements Lifecycle {
  readonly counters = new Counters('breakid_detect')
    .describe('records_total', 'counter', 'Records read and fed to the detectors, by topic')
    .describe(
      'evaluations_total',
      'counter',
      'Records evaluated, by detector type (one record seen by one detector)',
    )
    .describe(
      'decode_errors_total',
      'counter',
      'Records skipped because they did not decode, by topic and reason',
    )
    .describe(
      'alerts_total',
      'counter',
      'Alert state changes published, by type and status (firing, resolved)',
    )
    .describe(
      'alerts_inhibited_total',
      'counter',
      "Symptom alerts kept from delivery (they ride on their cause's related list), by type and status",
    )
    .describe('state_restored_keys_total', 'counter', 'Detector state keys restored from ClickHouse at start')
    .describe('state_rows_written_total', 'counter', 'Detector state rows checkpointed to ClickHouse')
    .describe('state_restore_errors_total', 'counter', 'Failed restores of detector state')
    .describe('state_checkpoint_errors_total', 'counter', 'Failed checkpoints of detector state')
    .describe(
      'rejoins_total',
      'counter',
      'Group (re)joins after which the detectors started over from stored state',
    )
    .describe(
      'batch_errors_total',
      'counter',
      'Batches that failed in group mode (replayed from the last checkpoint)',
    )
  private paging: Paging
  readonly consumer: MessageConsumer | StreamingConsumer
  private readonly alerts: MessageProducer
  private checkpoints: DetectorCheckpoints | undefined
  private detectors: Detector[]
  /** the batch being handled (group mode), awaited on stop */
  private inFlight: Promise<void> = Promise.resolve()
  /** group mode: the stored rows since the last (re)join, the instances applied, the offsets consumed */
  private readonly group:
    | { stored?: StoredState[]; loaded: Set<string>; next: Map<string, TopicPartition & { offset: string }> }
    | undefined
  private started = false
  /** a checkpoint came due while the inhibitor held an alert */
  private checkpointOwed = false

  constructor(private readonly opts: DetectorConsumerOptions) {
    this.alerts = opts.transport.producer()
    this.detectors = opts.detectors
    this.paging = this.newPaging()
    this.checkpoints = this.newCheckpoints()
    this.group = opts.newDetectors && opts.stateStore ? { loaded: new Set(), next: new Map() } : undefined
    this.consumer = this.group
      ? opts.transport.streamingConsumer({
          groupId: opts.groupId ?? DETECT_GROUP,
          topics: [TOPICS.spans, TOPICS.hw],
          onBatch: (batch) => {
            this.inFlight = this.handle(batch).catch((err) => {
              // the batch is not committed: after the next rejoin it comes again, from the checkpoint
              this.counters.inc('batch_errors_total')
              opts.logger.warn({ err }, 'detector batch failed; it is replayed from the last checkpoint')
            })
            return this.inFlight
          },
          onAssignment: () => this.rejoined(),
        })
      : opts.transport.consumer({
          groupId: opts.groupId ?? DETECT_GROUP,
          topics: [TOPICS.spans, TOPICS.hw],
          handler: (batch) => this.handle(batch),
          onHandlerError: (err) => opts.logger.warn({ err }, 'detector batch failed; retrying'),
        })
  }

  private newPaging(): Paging {
    return new Paging(this.detectors, {
      inhibitRules: this.opts.inhibitRules,
      staleAfterUs: this.opts.staleAfterUs,
    })
  }

  private newCheckpoints(): DetectorCheckpoints | undefined {
    const { stateStore, groupId, checkpoint } = this.opts
    return stateStore
      ? new DetectorCheckpoints(stateStore, groupId ?? DETECT_GROUP, this.detectors, checkpoint)
      : undefined
  }

  /** Group mode, after every (re)join: fresh detectors; state comes per instance as records arrive. */
  private rejoined(): void {
    if (!this.group || !this.opts.newDetectors) return
    this.detectors = this.opts.newDetectors()
    this.checkpoints = this.newCheckpoints()
    this.paging = this.newPaging()
    this.checkpointOwed = false
    this.group.stored = undefined
    this.group.loaded.clear()
    this.group.next.clear()
    this.counters.inc('rejoins_total')
  }

  /** Group mode: the stored state of `instance`, applied before its first record since the last join. */
  private async ensureLoaded(record: { fleet: string; instance: string }): Promise<void> {
    const g = this.group
    const id = `${record.fleet}/${record.instance}`
    if (!g || !this.checkpoints || g.loaded.has(id)) return
    g.stored ??= await this.checkpoints.load()
    const rows = DetectorCheckpoints.ofInstance(g.stored, record.fleet, record.instance)
    this.checkpoints.apply(rows)
    g.loaded.add(id)
    this.counters.inc('state_restored_keys_total', rows.length)
  }

  async start(): Promise<void> {
    if (this.checkpoints && !this.group) {
      try {
        await this.checkpoints.restore()
        this.counters.inc('state_restored_keys_total', this.checkpoints.stats.restoredKeys)
      } catch (err) {
        this.counters.inc('state_restore_errors_total')
        this.opts.logger.warn({ err }, 'could not restore detector state; detectors start from scratch')
      }
    }
    await this.alerts.start()
    await this.consumer.start()
    this.started = true
  }

  /** Drains, resolves every open alert (reason shutdown), then writes a last checkpoint. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.group && this.started) {
      // group mode commits with its checkpoints: stop fetching, finish the batch in hand, and keep
      // the membership until the last checkpoint below has committed
      ;(this.consumer as StreamingConsumer).pause()
      await this.inFlight
    } else await this.consumer.stop()
    const wasStarted = this.started
    this.started = false
    if (wasStarted) {
      const { publish, inhibited } = this.paging.close(this.opts.resolveOnStop !== false)
      this.noteInhibited(inhibited)
      await this.publish(publish).catch((err) =>
        this.opts.logger.error({ err }, 'could not publish the alerts resolved at shutdown'),
      )
    }
    await this.alerts.stop()
    if (wasStarted) await this.checkpoint()
    await this.consumer.stop()
  }

  /**
   * Writes the detectors' changed state now (no-op without a state store); in group mode it then
   * commits the offsets the state covers.
   */
  async checkpoint(): Promise<void> {
    if (!this.checkpoints) return
    try {
      const rows = await this.checkpoints.checkpoint()
      this.counters.inc('state_rows_written_total', rows)
      if (this.group) {
        const consumer = this.consumer as StreamingConsumer
        for (const { offset, ...tp } of this.group.next.values()) await consumer.commit(tp, offset)
        this.group.next.clear()
      }
    } catch (err) {
      this.counters.inc('state_checkpoint_errors_total')
      this.opts.logger.warn({ err }, 'detector state checkpoint failed; the next one retries')
    }
  }

  private async handle(batch: MessageBatch): Promise<void> {
    const isSpan = batch.topic === TOPICS.spans
    let checkpointDue = false
    let evaluated = 0
    for (const m of batch.messages) {
      const value = m.value ?? Buffer.alloc(0)
      const records = isSpan
        ? decodeMessage(codecs.span, value, m.headers)
        : decodeMessage(codecs.hw, value, m.headers)
      for (const r of records) {
        if (r.error) {
          this.counters.inc('decode_errors_total', 1, { topic: batch.topic, reason: r.error.reason })
          continue
        }
        if (this.group) await this.ensureLoaded(r.record as Span | HwSample)
        if (isSpan) {
          const span = r.record as Span
          this.paging.span(span)
          if (this.checkpoints?.note(span.timestamp_us)) checkpointDue = true
        } else {
          const sample = r.record as HwSample
          this.paging.hwSample(sample)
          if (this.checkpoints?.note(sample.timestamp_us)) checkpointDue = true
        }
        evaluated++
      }
    }
    // counted once per batch rather than per record: the labelled lookups would cost more than a detector
    this.counters.inc('records_total', evaluated, { topic: batch.topic })
    for (const d of this.opts.detectors) {
      if (isSpan ? d.onSpan : d.onHwSample)
        this.counters.inc('evaluations_total', evaluated, { detector: d.type })
    }
    for (const { detector, notice } of this.paging.notices()) this.opts.logger.warn({ detector }, notice)
    const { publish, inhibited } = this.paging.flush()
    this.noteInhibited(inhibited)
    await this.publish(publish)
    // after the alerts are out: a stored "firing" state always has its firing record published (so
    // not while an alert is held by the inhibitor: the checkpoint waits for it)
    const last = batch.messages[batch.messages.length - 1]
    if (this.group && last) {
      const next = (BigInt(last.offset) + 1n).toString()
      this.group.next.set(`${batch.topic}/${batch.partition}`, {
        topic: batch.topic,
        partition: batch.partition,
        offset: next,
      })
    }
    this.checkpointOwed ||= checkpointDue
    if (this.checkpointOwed && this.paging.heldCount === 0) {
      this.checkpointOwed = false
      await this.checkpoint()
    }
  }

  private noteInhibited(inhibited: Alert[]): void {
    for (const a of inhibited) {
      this.counters.inc('alerts_inhibited_total', 1, { type: a.type, status: a.status })
      this.opts.onInhibited?.(a)
    }
  }

  private async publish(alerts: Alert[]): Promise<void> {
    if (alerts.length === 0) return
    await this.alerts.send(
      TOPICS.alerts,
      alerts.map((a) => ({ key: a.dedup_key, value: codecs.alert.encode(a) })),
    )
    for (const a of alerts) {
      this.counters.inc('alerts_total', 1, { type: a.type, status: a.status })
      this.opts.logger.info({ alert: a.id, type: a.type, status: a.status, instance: a.instance }, a.summary)
      this.opts.onAlert?.(a)
    }
  }
}
