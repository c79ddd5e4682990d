/**
 * Cause over symptom: one break often shows up in several detectors. Under data starvation the
 * preprocess stage regresses, the latency distribution drifts, the p99 SLO breaks and, once the fault
 * clears, the backlog drains in large batches; under a noisy neighbour every latency detector fires.
 * Measured before this module: one starvation episode in `breakid up` paged six times, and one stage
 * stall in `breakid eval` up to six.
 *
 * A causal order (`CAUSAL_ORDER`, cause ⟹ symptom, optionally per stage) says which alert explains
 * which. When a symptom fires on an instance while one of its causes is active there (firing, or
 * resolved less than `graceUs` ago), the symptom is **not delivered**: it becomes evidence of the
 * *root* — the delivered alert at the top of its chain of causes — whose record carries it in
 * `related` (id, type, stage, onset, summary). The root's record is published again with the longer
 * `related` list: the alerts topic and table keep every symptom (ReplacingMergeTree keeps the newest
 * record of an id), and the notifier delivers each (id, status) once, so the update pages nobody. A
 * symptom's resolved record is not delivered either: nobody gets the resolution of a page they never
 * got. Chains work through inhibited alerts: a symptom of a symptom has the same root.
 *
 * A symptom can fire before its cause — in `breakid up` the latency drift of a starvation fired
 * 23–254 ms before the starvation detector confirmed the idle executor, on every run; under a noisy
 * neighbour the latency detectors react within a second while pressure needs a few samples to be
 * sure. So a symptom that fires while one of its causes is *pending* on that instance (the cause's
 * condition holds but has not been held long enough; detectors report it via `pendingInstances`)
 * waits — Alertmanager's `group_wait`, but only then: it becomes evidence if the cause fires, is
 * delivered if the cause clears, and delivered anyway after `maxHoldUs` of event time.
 *
 * Pressure on the host explains its latency symptoms for as long as it lasts (`whilePending` rules):
 * a symptom that fires while the host is under pressure the engine did not cause (host_contention
 * pending) waits until that pressure ends, not `maxHoldUs` — it rides on host_contention if that
 * confirms, is dropped (counted, never paged) if it resolves first, and is delivered only if it is
 * still firing `settleUs` after the pressure ended: it outlived what could explain it. Measured live
 * before this rule on the 2-core host: two busy loops beside a clean run paged latency drift 40 s
 * before host_contention confirmed; a bursty neighbour paged the p99 SLO on a clean run.
 *
 * Some detectors only ever see consequences (`GROUP_WAIT_TYPES`: the latency distribution, the SLO,
 * the queue, the event loop): they react within a second, while the detector of the cause may not
 * even be pending yet — a stage regression closes its interval when the next one's first span arrives,
 * a starved or misconfigured batcher needs two samples. Measured in `breakid eval`: stalls paged
 * latency drift and the stage regression, a batch cap of 1 paged the queue growth first. So those
 * wait `groupWaitUs` (5 s of event time; Alertmanager's `group_wait` is 30 s) for a cause even when
 * none is pending yet; every other alert goes out at once when nothing explains it. Within one batch,
 * causes are decided before their symptoms.
 */
import type { Alert, RelatedAlert } from '../contract/records.ts'
import type { AlertType, Stage } from '../contract/vocabulary.ts'

/** `source` explains `target` (cause ⟹ symptom) on the same instance. */
export interface InhibitRule {
  source: AlertType
  target: AlertType
  /** only sources naming one of these stages (default: any) */
  sourceStages?: readonly Stage[]
  /** only targets naming one of these stages (default: any) */
  targetStages?: readonly Stage[]
  /** how long after the source resolves its targets stay explained, µs (default 60 s) */
  graceUs?: number
  /**
   * the source's pending condition alone explains the target (pressure on the host): the target
   * waits as long as the source is pending, and is dropped if it resolves meanwhile
   */
  whilePending?: boolean
}

/** symptoms of anything that makes requests slower */
const LATENCY: readonly AlertType[] = ['stage_latency_regression', 'latency_drift', 'slo_p99_breach']

const edges = (
  source: AlertType,
  targets: readonly AlertType[],
  more: Omit<InhibitRule, 'source' | 'target'> = {},
): InhibitRule[] => targets.map((target) => ({ source, target, ...more }))

/**
 * The causal order. Each line is a mechanism, not a correlation:
 * - a host that takes the engine's CPUs slows its CPU work — compute, the queue in front of it,
 *   (de)serialization, the event loop, effective batches — but does not make a stage wait: live on a
 *   saturated host, contention that was explaining everything took the page of a 100 ms postprocess
 *   stall, so preprocess and postprocess regressions (where stalls and starvation show) stay pages;
 * - starvation piles requests up before the executor (latency, queue growth once it drains, 429s
 *   when the preprocessing backlog overflows), and looks like contention to a latency-only eye;
 * - a queue that grows makes requests wait (queue_wait, drift, SLO);
 * - batches below what the load allows build that queue;
 * - (de)serialization that dominates is the regression of those stages, and blocks the event loop
 *   (it runs on it);
 * - a blocked event loop delays every stage of every request;
 * - a compute stage that slows builds the queue in front of it;
 * - a stage that regresses moves the latency distribution, which breaks the SLO;
 * - failed requests end early and change the latency distribution;
 * - inputs that moved move the outputs (live: an input drift paged output drift too).
 */
export const CAUSAL_ORDER: readonly InhibitRule[] = [
  // pure consequences of slower CPU work wait out the pressure. Small batches are also a fault of
  // their own (a misconfigured batcher): held for the pressure, a 20 s misconfiguration ended unpaged
  // in the live matrix on the busy host, so they wait only as long as any symptom (15 s)
  ...edges('host_contention', ['latency_drift', 'slo_p99_breach', 'queue_growth', 'event_loop_blocked'], {
    whilePending: true,
  }),
  ...edges('host_contention', ['batch_underutilized']),
  ...edges('host_contention', ['stage_latency_regression'], {
    targetStages: ['compute', 'queue_wait', 'deserialize', 'serialize'],
    whilePending: true,
  }),
  ...edges('accelerator_starved', [...LATENCY, 'queue_growth', 'host_contention', 'error_rate_spike']),
  ...edges('queue_growth', ['latency_drift', 'slo_p99_breach']),
  ...edges('queue_growth', ['stage_latency_regression'], { targetStages: ['queue_wait'] }),
  ...edges('batch_underutilized', ['queue_growth', 'latency_drift', 'slo_p99_breach']),
  // a request's compute time is its batch's: batches capped small, then full while the backlog
  // drains, move it (live, cnn:w=16 at 100 req/s: 25 ms per batch of 3, 55 ms per batch of 8 after)
  ...edges('batch_underutilized', ['stage_latency_regression'], { targetStages: ['queue_wait', 'compute'] }),
  ...edges('serialization_dominant', ['latency_drift', 'slo_p99_breach', 'event_loop_blocked']),
  ...edges('serialization_dominant', ['stage_latency_regression'], {
    targetStages: ['deserialize', 'serialize'],
  }),
  ...edges('event_loop_blocked', LATENCY),
  ...edges('stage_latency_regression', ['queue_growth'], { sourceStages: ['compute'] }),
  ...edges('stage_latency_regression', ['stage_latency_regression'], {
    sourceStages: ['compute'],
    targetStages: ['queue_wait'],
  }),
  ...edges('stage_latency_regression', ['latency_drift', 'slo_p99_breach']),
  ...edges('latency_drift', ['slo_p99_breach']),
  ...edges('error_rate_spike', ['latency_drift']),
  ...edges('input_drift', ['output_drift']),
]

/** Detectors of consequences only: they wait `groupWaitUs` for a cause before they page. */
export const GROUP_WAIT_TYPES: ReadonlySet<string> = new Set<AlertType>([
  'latency_drift',
  'slo_p99_breach',
  'queue_growth',
  'event_loop_blocked',
])

const DEFAULT_GRACE_US = 60_000_000
/** the root of a symptom that was explained but belongs to no delivered alert (host pressure) */
const NO_ROOT = ''

/** What the caller knows besides the alerts: which causes are about to fire, and the time. */
export interface InhibitContext {
  /** `<cause type>/<instance>` of every cause whose condition holds but has not fired yet */
  pending: ReadonlySet<string>
  /** the event time the telemetry has reached, µs */
  nowUs: number
}

/** An alert the inhibitor knows on an instance: delivered (a root) or evidence of one. */
interface Known {
  id: string
  type: string
  stage: string | null
  startsUs: number
  /** event time until which it explains its symptoms (∞ while firing) */
  untilUs: number
  /** the delivered alert whose `related` carries it; its own id for a root */
  rootId: string
}

/** A root's newest record and the symptoms it carries. */
interface Root {
  record: Alert
  related: RelatedAlert[]
}

/** A symptom waiting on a pending cause; its resolved record if it resolved meanwhile. */
interface Held {
  firing: Alert
  resolved?: Alert
  /** event time at which the pressure that held it was last seen pending, µs (held for pressure) */
  pressureSeenUs?: number
}

export interface InhibitResult {
  /** records to publish: delivered alerts, and roots re-published with a longer `related` */
  publish: Alert[]
  /** symptoms kept from delivery (each is in its root's `related`) */
  inhibited: Alert[]
}

export class Inhibitor {
  /** instance → alert id → what is known of it */
  private readonly known = new Map<string, Map<string, Known>>()
  private readonly roots = new Map<string, Root>()
  /** target alerts waiting on a pending cause, by alert id, in arrival order */
  private readonly held = new Map<string, Held>()
  private readonly rules: readonly InhibitRule[]

  /** type → how many causes it has above it (0: a root cause); orders a batch causes first */
  private readonly depth = new Map<string, number>()

  constructor(
    rules: readonly InhibitRule[] = CAUSAL_ORDER,
    /** longest a symptom waits on a pending cause, µs of event time */
    private readonly maxHoldUs = 15_000_000,
    /** how long a consequence-only alert waits for a cause that is not pending yet, µs */
    private readonly groupWaitUs = 5_000_000,
    /** a symptom held for pressure is delivered if still firing this long after the pressure ended */
    private readonly settleUs = 30_000_000,
    /** …and at the latest after this long, whatever the pressure does, µs */
    private readonly maxPressureHoldUs = 300_000_000,
  ) {
    this.rules = rules
    // longest chain of causes above each type (the order is acyclic once stages are considered;
    // a type that is its own cause for another stage counts once)
    const types = new Set(rules.flatMap((r) => [r.source, r.target]))
    const depthOf = (t: string, seen: Set<string>): number => {
      if (seen.has(t)) return 0
      const above = rules.filter((r) => r.target === t && r.source !== t)
      return above.length === 0
        ? 0
        : 1 + Math.max(...above.map((r) => depthOf(r.source, new Set([...seen, t]))))
    }
    for (const t of types) this.depth.set(t, depthOf(t, new Set()))
  }

  /** symptoms waiting on a pending cause */
  get heldCount(): number {
    return this.held.size
  }

  /**
   * Decides what of `alerts` (in event-time order) is delivered. Without `ctx` nothing is held.
   * Returns the records to publish and the symptoms kept from delivery.
   */
  filter(alerts: Alert[], ctx?: InhibitContext): InhibitResult {
    const publish: Alert[] = []
    const inhibited: Alert[] = []
    /** roots whose `related` grew in this call */
    const grown = new Set<string>()
    // within a batch the causes first, so a symptom raised in the same batch as its cause rides on it
    const ordered = [...alerts].sort((x, y) => (this.depth.get(x.type) ?? 0) - (this.depth.get(y.type) ?? 0))
    for (const a of ordered) {
      const waiting = this.held.get(a.id)
      if (waiting) {
        if (a.status === 'resolved') waiting.resolved = a
        continue
      }
      const known = this.find(a)
      if (a.status === 'resolved') {
        this.ended(a)
        if (known && known.rootId !== a.id) {
          inhibited.push(a)
          continue
        }
        const root = this.roots.get(a.id)
        publish.push(root ? this.withRelated(a, root) : a)
        if (root) root.record = publish[publish.length - 1]!
        continue
      }
      if (known) {
        // the same firing record again (a redelivered batch): decided as before
        if (known.rootId === a.id) publish.push(this.roots.get(a.id)?.record ?? a)
        else inhibited.push(a)
        continue
      }
      const cause = this.activeCause(a)
      if (cause) {
        this.attach(a, cause.rootId, grown)
        inhibited.push(a)
      } else if (ctx && (this.causePending(a, ctx) || this.waitsForGroup(a))) {
        this.held.set(a.id, { firing: a })
      } else {
        this.deliver(a)
        publish.push(a)
      }
    }
    // the held: evidence once a cause fired, delivered once none is pending any more or after too long
    for (const [id, h] of this.held) {
      const cause = this.activeCause(h.firing)
      if (cause) {
        this.attach(h.firing, cause.rootId, grown)
        inhibited.push(h.firing)
        if (h.resolved) {
          this.ended(h.resolved)
          inhibited.push(h.resolved)
        }
      } else if (ctx && this.pressureHolds(h, ctx)) {
        if (!h.resolved) continue
        // it ended while the host was under pressure: explained, never paged
        this.register(h.firing, NO_ROOT)
        this.ended(h.resolved)
        inhibited.push(h.firing, h.resolved)
      } else if (
        !ctx ||
        ctx.nowUs - h.firing.updated_at_us > this.maxHoldUs ||
        (!this.causePending(h.firing, ctx) &&
          !(this.waitsForGroup(h.firing) && ctx.nowUs - h.firing.updated_at_us < this.groupWaitUs))
      ) {
        this.deliver(h.firing)
        publish.push(h.firing)
        if (h.resolved) {
          this.ended(h.resolved)
          publish.push(h.resolved)
        }
      } else continue
      this.held.delete(id)
    }
    // a root published in this call carries its symptoms in that record; an older one is published again
    for (const rootId of grown) {
      const root = this.roots.get(rootId)!
      const i = publish.lastIndexOf(root.record)
      const updated = this.withRelated(root.record, root)
      if (i >= 0) publish[i] = updated
      else publish.push(updated)
      root.record = updated
    }
    if (ctx) this.forget(ctx.nowUs)
    return { publish, inhibited }
  }

  /**
   * Shutdown: hands out every held alert (a hold must not lose an alert). When the stop also resolves
   * every open alert (`resolving`), those held for pressure that had not outlived it are explained
   * and come back as inhibited; a handover (another member resumes from the checkpoint, which does
   * not hold the inhibitor's state) publishes them, so no resolution ever goes out without its firing.
   */
  releaseAll(resolving = true): InhibitResult {
    const publish: Alert[] = []
    const inhibited: Alert[] = []
    for (const h of this.held.values()) {
      const records = h.resolved ? [h.firing, h.resolved] : [h.firing]
      if (resolving && h.pressureSeenUs !== undefined) {
        this.register(h.firing, NO_ROOT)
        inhibited.push(...records)
      } else {
        this.deliver(h.firing)
        publish.push(...records)
      }
    }
    this.held.clear()
    return { publish, inhibited }
  }

  /**
   * Whether `h` still waits because the host is (or was until `settleUs` ago) under pressure that
   * explains it, and notes when that pressure was last seen.
   */
  private pressureHolds(h: Held, ctx: InhibitContext): boolean {
    if (this.causePending(h.firing, ctx, true)) h.pressureSeenUs = ctx.nowUs
    if (h.pressureSeenUs === undefined) return false
    // judged at the symptom's own end when it has one, not when its resolution happens to be read
    const atUs = h.resolved?.updated_at_us ?? ctx.nowUs
    if (atUs - h.firing.updated_at_us > this.maxPressureHoldUs) return false
    return atUs - h.pressureSeenUs < this.settleUs
  }

  /** A resolved alert explains its symptoms for its grace period after it ended. */
  private ended(resolved: Alert): void {
    const k = this.find(resolved)
    if (k) k.untilUs = resolved.updated_at_us + this.graceOf(resolved.type)
  }

  /** a consequence-only alert with some cause in the order waits for it a moment */
  private waitsForGroup(a: Alert): boolean {
    return this.groupWaitUs > 0 && GROUP_WAIT_TYPES.has(a.type) && this.rules.some((r) => r.target === a.type)
  }

  private deliver(a: Alert): void {
    this.register(a, a.id)
    this.roots.set(a.id, { record: a, related: [...(a.related ?? [])] })
  }

  private register(a: Alert, rootId: string): void {
    let byId = this.known.get(a.instance)
    if (!byId) {
      byId = new Map()
      this.known.set(a.instance, byId)
    }
    byId.set(a.id, {
      id: a.id,
      type: a.type,
      stage: a.stage,
      startsUs: a.starts_at_us,
      untilUs: Number.POSITIVE_INFINITY,
      rootId,
    })
  }

  /** Makes `a` evidence of the root `rootId`. */
  private attach(a: Alert, rootId: string, grown: Set<string>): void {
    this.register(a, rootId)
    const root = this.roots.get(rootId)
    if (!root || root.related.some((r) => r.id === a.id)) return
    root.related.push({
      id: a.id,
      type: a.type,
      stage: a.stage,
      starts_at_us: a.starts_at_us,
      summary: a.summary,
    })
    grown.add(rootId)
  }

  private withRelated(record: Alert, root: Root): Alert {
    const lastSymptomUs = Math.max(record.updated_at_us, ...root.related.map((r) => r.starts_at_us))
    return {
      ...record,
      related: [...root.related],
      // the newest record of an id wins in the alerts table: the update must not look older
      updated_at_us: record.status === 'firing' ? lastSymptomUs : record.updated_at_us,
    }
  }

  private find(a: Alert): Known | undefined {
    return this.known.get(a.instance)?.get(a.id)
  }

  private graceOf(type: string): number {
    let grace = 0
    for (const r of this.rules) if (r.source === type) grace = Math.max(grace, r.graceUs ?? DEFAULT_GRACE_US)
    return grace
  }

  private explains(r: InhibitRule, cause: { type: string; stage: string | null }, a: Alert): boolean {
    return (
      r.source === cause.type &&
      r.target === a.type &&
      (!r.sourceStages ||
        (cause.stage !== null && (r.sourceStages as readonly string[]).includes(cause.stage))) &&
      (!r.targetStages || (a.stage !== null && (r.targetStages as readonly string[]).includes(a.stage)))
    )
  }

  /** The active cause of `a` on its instance, if any: the earliest to start. */
  private activeCause(a: Alert): Known | undefined {
    let best: Known | undefined
    for (const k of this.known.get(a.instance)?.values() ?? []) {
      // a symptom dropped for pressure explains nothing after it: what fires later is judged on its own
      if (k.id === a.id || k.rootId === NO_ROOT || k.untilUs < a.starts_at_us) continue
      if (!this.rules.some((r) => this.explains(r, k, a))) continue
      if (!best || k.startsUs < best.startsUs) best = k
    }
    return best
  }

  /** a cause of `a` is pending on its instance (with `pressure`: one whose pending explains it) */
  private causePending(a: Alert, ctx: InhibitContext, pressure = false): boolean {
    return this.rules.some(
      (r) =>
        r.target === a.type &&
        (!pressure || r.whilePending === true) &&
        (!r.targetStages || (a.stage !== null && (r.targetStages as readonly string[]).includes(a.stage))) &&
        ctx.pending.has(`${r.source}/${a.instance}`),
    )
  }

  /** Drops what can no longer explain anything (resolved longer ago than its grace). */
  private forget(nowUs: number): void {
    const referenced = new Set<string>()
    for (const [instance, byId] of this.known) {
      for (const [id, k] of byId) {
        if (k.untilUs < nowUs) byId.delete(id)
        else referenced.add(k.rootId)
      }
      if (byId.size === 0) this.known.delete(instance)
    }
    // a root nothing refers to any more (itself included) cannot grow: its record is final
    for (const id of this.roots.keys()) if (!referenced.has(id)) this.roots.delete(id)
  }
}
