/**
 * Runs the scenario suite through the detectors and scores it.
 *
 * Two paths, the same detectors and the same paging (detectors/paging.ts: stale sweep, causal
 * inhibitor, shutdown):
 * - **offline**: records go straight into the detectors in emission order (spans completed in a
 *   second, then that second's hardware samples) — fast, used for the long clean runs.
 * - **live**: the real path: records are Avro-encoded onto an EmbeddedBus → DetectorConsumer →
 *   `breakid.alerts.v1` → WebhookNotifier → a real webhook receiver (signed). The feed is stepped one
 *   simulated second at a time and waits until the consumer has committed it, so the detectors see
 *   the same interleaving as offline. Each alert's publish→webhook latency is measured on the wall
 *   clock (from the consumer's `onAlert`, called once the alert is published, to the receiver having
 *   the body). With `compareOffline`, live scenarios also run offline and the alerts are compared
 *   (a mismatch would mean the live path loses, duplicates or reorders something).
 *
 * Three sets of scenarios: the tuned suite (every threshold was set with it in view: in-sample), the
 * host suite (noisy neighbours and busy hosts; in-sample for host_contention), and the held-out set
 * (other seeds and parameter ranges, scored and never tuned on). Each is scored twice: the lenient
 * scoring of every alert the detectors raised (symptoms count as right — the figures this harness
 * always reported) and the strict scoring of the pages, what the pipeline delivered (score.ts).
 */
import pino from 'pino'
import type { Alert } from '../contract/records.ts'
import { codecs, TOPICS } from '../contract/topics.ts'
import { EmbeddedBus } from '../bus/embedded-bus.ts'
import { DETECT_GROUP, DetectorConsumer } from '../detectors/consumer.ts'
import type { Detector } from '../detectors/detector.ts'
import { Paging } from '../detectors/paging.ts'
import { WebhookNotifier } from '../notify/notifier.ts'
import { type Receiver, startReceiver } from '../notify/receiver.ts'
import {
  type EvalAlert,
  PAGE_TARGETS,
  type PageScore,
  type PageTargets,
  pageScore,
  percentile,
  type Score,
  score,
  type Targets,
  TARGETS,
} from './score.ts'
import {
  buildHeldOut,
  buildHostSuite,
  buildSuite,
  type GroundTruthFault,
  groundTruth,
  instanceSeconds,
  type Scenario,
  simulate,
} from './scenarios.ts'

export type LiveMode = 'none' | 'faults' | 'all'

export interface EvalOptions {
  /** a fresh detector set (called once per scenario and path: detectors keep state) */
  detectors: () => Detector[]
  /** which scenarios go through the live path. Default 'faults'. */
  live?: LiveMode
  /** also run live scenarios offline and report whether the alerts agree (doubles their cost). Default false. */
  compareOffline?: boolean
  cleanInstanceHours?: number
  filter?: string
  graceS?: number
  targets?: Targets
  /** progress lines */
  log?: (line: string) => void
  /** the scenarios to run instead of the three suites (tests) */
  scenarios?: Scenario[]
  /** run the held-out set too. Default true */
  heldOut?: boolean
  pageTargets?: PageTargets
}

export interface ScenarioResult {
  name: string
  clean: boolean
  instances: number
  durationS: number
  path: 'live' | 'offline'
  faults: GroundTruthFault[]
  /** every transition the detectors raised (symptoms kept from delivery included) */
  alerts: Alert[]
  /** what was published: the pages, their resolutions, roots re-published with their symptoms */
  pages: Alert[]
  heldOut: boolean
  /** the host had other load (a busy host or a neighbour) */
  busyHost: boolean
  spans: number
  hwSamples: number
  /** live scenarios: whether live and offline produced the same (id, status) transitions */
  liveMatchesOffline?: boolean
  wallMs: number
}

export interface EvalReport {
  generatedAt: string
  detectors: string[]
  options: { live: LiveMode; cleanInstanceHours: number; graceS: number; filter: string | null }
  targets: Targets
  /** lenient scoring of every raised alert, in-sample scenarios (the figures reported before pages) */
  score: Score
  /** the same on the held-out scenarios */
  heldOutScore: Score | null
  pageTargets: PageTargets
  /** strict scoring of the pages */
  pages: { inSample: PageScore; heldOut: PageScore | null }
  webhook: {
    delivered: number
    latencyP50Ms: number | null
    latencyP95Ms: number | null
    invalidSignatures: number
    /** live scenarios whose alerts differ from the offline run (checked with compareOffline) */
    liveOfflineMismatches: string[]
    compared: boolean
  }
  scenarios: ScenarioResult[]
  wallMs: number
}

/**
 * Feeds a scenario straight into the detectors and the consumer's paging, one simulated second at a
 * time, and stops at the end as the consumer does; returns every raised transition and every page.
 */
export function runOffline(
  s: Scenario,
  detectors: Detector[],
): { alerts: Alert[]; pages: Alert[]; spans: number; hwSamples: number } {
  const paging = new Paging(detectors)
  const alerts: Alert[] = []
  const pages: Alert[] = []
  let spans = 0
  let hwSamples = 0
  const take = (r: { raised: Alert[]; publish: Alert[] }) => {
    alerts.push(...r.raised)
    pages.push(...r.publish)
  }
  for (const step of simulate(s)) {
    for (const span of step.spans) {
      spans++
      paging.span(span)
    }
    take(paging.flush())
    for (const sample of step.hw) {
      hwSamples++
      paging.hwSample(sample)
    }
    take(paging.flush())
  }
  take(paging.close())
  return { alerts, pages, spans, hwSamples }
}

const transitionKey = (a: Pick<Alert, 'id' | 'status'>) => `${a.id}:${a.status}`

/**
 * Runs a scenario through EmbeddedBus → DetectorConsumer → alerts topic → WebhookNotifier →
 * `receiver`. Returns the alerts published and, per transition, publish→webhook latency (ms).
 */
export async function runLive(
  s: Scenario,
  detectors: Detector[],
  receiver: Receiver,
  received: Map<string, number>,
  secret: string,
): Promise<{
  alerts: Alert[]
  pages: Alert[]
  latencyMs: Map<string, number>
  spans: number
  hwSamples: number
}> {
  const logger = pino({ level: 'silent' })
  const bus = new EmbeddedBus({ retryDelayMs: 10 })
  await bus.ensureTopics(Object.values(TOPICS))
  const published = new Map<string, number>()
  const alerts: Alert[] = []
  const pages: Alert[] = []
  const consumer = new DetectorConsumer({
    transport: bus,
    detectors,
    logger,
    onAlert: (a) => {
      // a root published again with a longer `related` keeps its first publish time
      if (!published.has(transitionKey(a))) published.set(transitionKey(a), Date.now())
      pages.push(a)
    },
    onInhibited: (a) => alerts.push(a),
  })
  const notifier = new WebhookNotifier({
    transport: bus,
    routes: [{ name: 'eval-receiver', url: receiver.url, secret }],
    logger,
    initialDelayMs: 20,
    maxDelayMs: 500,
  })
  await notifier.start()
  await consumer.start()
  const producer = bus.producer()
  let spans = 0
  let hwSamples = 0
  try {
    for (const step of simulate(s)) {
      if (step.spans.length > 0) {
        await producer.send(
          TOPICS.spans,
          step.spans.map((r) => ({ key: r.instance, value: codecs.span.encode(r) })),
        )
        spans += step.spans.length
      }
      await producer.send(
        TOPICS.hw,
        step.hw.map((r) => ({ key: r.instance, value: codecs.hw.encode(r) })),
      )
      hwSamples += step.hw.length
      // one simulated second at a time, so spans of second t reach the detectors before sample t
      await bus.drained(TOPICS.spans, DETECT_GROUP)
      await bus.drained(TOPICS.hw, DETECT_GROUP)
      // The bus and the consumer loop chain promises only; without a macrotask turn per step the
      // notifier's HTTP I/O would wait for the whole scenario and the latency would measure that.
      await new Promise<void>((resolve) => setImmediate(resolve))
    }
    // every published transition delivered (bounded: a stuck delivery shows up as a missing latency)
    const deadline = Date.now() + 15_000
    while ([...published.keys()].some((k) => !received.has(k)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5))
    }
  } finally {
    await consumer.stop()
    // the resolutions published at the stop are delivered too
    const deadline = Date.now() + 15_000
    while ([...published.keys()].some((k) => !received.has(k)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5))
    }
    await notifier.stop()
  }
  // raised = delivered + kept from delivery; a root's re-published records are one transition
  const seen = new Set(alerts.map(transitionKey))
  for (const a of pages) {
    if (seen.has(transitionKey(a))) continue
    seen.add(transitionKey(a))
    alerts.push(a)
  }
  const latencyMs = new Map<string, number>()
  for (const [k, at] of published) {
    const got = received.get(k)
    if (got !== undefined) latencyMs.set(k, Math.max(0, got - at))
  }
  return { alerts, pages, latencyMs, spans, hwSamples }
}

function sameTransitions(a: Alert[], b: Alert[]): boolean {
  const ka = [...new Set(a.map(transitionKey))].sort()
  const kb = [...new Set(b.map(transitionKey))].sort()
  return ka.length === kb.length && ka.every((k, i) => k === kb[i])
}

export async function runEval(opts: EvalOptions): Promise<EvalReport> {
  const started = Date.now()
  const live = opts.live ?? 'faults'
  const cleanInstanceHours = opts.cleanInstanceHours ?? 4
  const graceS = opts.graceS ?? 30
  const targets = opts.targets ?? TARGETS
  const log = opts.log ?? (() => {})
  const suite = opts.scenarios ?? [
    ...buildSuite({ cleanInstanceHours, filter: opts.filter }),
    ...buildHostSuite({ filter: opts.filter }),
    ...(opts.heldOut === false ? [] : buildHeldOut({ filter: opts.filter })),
  ]
  const secret = 'breakid-eval'
  const received = new Map<string, number>()
  let invalidSignatures = 0
  let delivered = 0
  const receiver =
    live === 'none'
      ? undefined
      : await startReceiver({
          secret,
          onAlert: (r) => {
            delivered++
            if (r.signatureValid !== true) invalidSignatures++
            if (r.alert) {
              const k = transitionKey(r.alert)
              if (!received.has(k)) received.set(k, r.receivedAtMs)
            }
          },
        })
  const results: ScenarioResult[] = []
  const evalAlerts: EvalAlert[] = []
  const evalPages: EvalAlert[] = []
  const latencies: number[] = []
  const mismatches: string[] = []
  try {
    for (const s of suite) {
      const t0 = Date.now()
      const goesLive = receiver !== undefined && (live === 'all' || (live === 'faults' && !s.clean))
      let alerts: Alert[]
      let pages: Alert[]
      let spans: number
      let hwSamples: number
      let path: ScenarioResult['path'] = 'offline'
      let agree: boolean | undefined
      let latencyMs = new Map<string, number>()
      if (goesLive) {
        const r = await runLive(s, opts.detectors(), receiver, received, secret)
        if (opts.compareOffline) {
          agree = sameTransitions(r.pages, runOffline(s, opts.detectors()).pages)
          if (!agree) mismatches.push(s.name)
        }
        ;({ alerts, pages, spans, hwSamples, latencyMs } = r)
        latencies.push(...r.latencyMs.values())
        path = 'live'
      } else {
        ;({ alerts, pages, spans, hwSamples } = runOffline(s, opts.detectors()))
      }
      for (const a of alerts) {
        evalAlerts.push({ scenario: s.name, alert: a, webhookLatencyMs: latencyMs.get(transitionKey(a)) })
      }
      for (const a of pages) {
        evalPages.push({ scenario: s.name, alert: a, webhookLatencyMs: latencyMs.get(transitionKey(a)) })
      }
      const result: ScenarioResult = {
        name: s.name,
        clean: s.clean,
        instances: s.instances,
        durationS: s.durationS,
        path,
        faults: groundTruth(s),
        alerts,
        pages,
        heldOut: s.heldOut === true,
        busyHost: s.host !== undefined,
        spans,
        hwSamples,
        wallMs: Date.now() - t0,
        ...(agree === undefined ? {} : { liveMatchesOffline: agree }),
      }
      results.push(result)
      const firing = alerts.filter((a) => a.status === 'firing')
      const paged = [
        ...new Map(pages.filter((a) => a.status === 'firing').map((a) => [a.id, a.type])).values(),
      ]
      log(
        `${s.name.padEnd(44)} ${path.padEnd(7)} ${String(firing.length).padStart(3)} raised, ` +
          `${String(paged.length).padStart(2)} paged${paged.length ? ` [${paged.join(', ')}]` : ''}` +
          `  ${(result.wallMs / 1000).toFixed(1)} s`,
      )
    }
  } finally {
    await receiver?.stop()
  }
  const partition = (heldOut: boolean) => {
    const scenarios = suite.filter((s) => (s.heldOut === true) === heldOut)
    const names = new Set(scenarios.map((s) => s.name))
    const hours = (xs: Scenario[]) => xs.reduce((n, s) => n + instanceSeconds(s), 0) / 3600
    const quiet = scenarios.filter((s) => s.clean && s.host === undefined)
    const busy = scenarios.filter((s) => s.clean && s.host !== undefined)
    const faults = scenarios.flatMap(groundTruth)
    // the figures as reported before cover what they always covered: engine faults and quiet clean
    // traffic, not the host scenarios added with host_contention
    const engineOnly = scenarios.filter((s) => s.host === undefined)
    const engineNames = new Set(engineOnly.map((s) => s.name))
    const lenient = score(
      {
        faults: engineOnly.flatMap(groundTruth),
        alerts: evalAlerts.filter((a) => engineNames.has(a.scenario)),
        cleanInstanceHours: hours(quiet),
        cleanScenarios: new Set(quiet.map((s) => s.name)),
        graceS,
      },
      targets,
    )
    const strict = pageScore(
      {
        faults,
        pages: evalPages.filter((a) => names.has(a.scenario)),
        clean: { scenarios: new Set(quiet.map((s) => s.name)), instanceHours: hours(quiet) },
        busyHost: { scenarios: new Set(busy.map((s) => s.name)), instanceHours: hours(busy) },
        graceS,
      },
      opts.pageTargets ?? PAGE_TARGETS,
    )
    return { count: scenarios.length, lenient, strict, cleanHours: hours(quiet) }
  }
  const inSample = partition(false)
  const heldOut = partition(true)
  const hasHeldOut = heldOut.count > 0
  const probe = opts.detectors()
  return {
    generatedAt: new Date().toISOString(),
    detectors: probe.map((d) => d.type),
    options: { live, cleanInstanceHours: inSample.cleanHours, graceS, filter: opts.filter ?? null },
    targets,
    score: inSample.lenient,
    heldOutScore: hasHeldOut ? heldOut.lenient : null,
    pageTargets: opts.pageTargets ?? PAGE_TARGETS,
    pages: { inSample: inSample.strict, heldOut: hasHeldOut ? heldOut.strict : null },
    webhook: {
      delivered,
      latencyP50Ms: percentile(latencies, 50),
      latencyP95Ms: percentile(latencies, 95),
      invalidSignatures,
      liveOfflineMismatches: mismatches,
      compared: opts.compareOffline === true,
    },
    scenarios: results,
    wallMs: Date.now() - started,
  }
}
