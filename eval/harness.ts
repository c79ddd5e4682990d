/**
 * Runs the scenario suite through the detectors and scores it.
 *
 * Two paths, the same detectors:
 * - **offline**: records go straight into the detectors in emission order (spans completed in a
 *   second, then that second's hardware samples) — fast, used for the long clean runs.
 * - **live**: the real path: records are Avro-encoded onto an EmbeddedBus → DetectorConsumer →
 *   `breakid.alerts.v1` → WebhookNotifier → a real webhook receiver (signed). The feed is stepped one
 *   simulated second at a time and waits until the consumer has committed it, so the detectors see
 *   the same interleaving as offline. Each alert's publish→webhook latency is measured on the wall
 *   clock (from the consumer's `onAlert`, called once the alert is published, to the receiver having
 *   the body). With `compareOffline`, live scenarios also run offline and the alerts are compared
 *   (a mismatch would mean the live path loses, duplicates or reorders something).
 */
import pino from 'pino'
import type { Alert } from '../contract/records.ts'
import { codecs, TOPICS } from '../contract/topics.ts'
import { EmbeddedBus } from '../bus/embedded-bus.ts'
import { DETECT_GROUP, DetectorConsumer } from '../detectors/consumer.ts'
import type { Detector } from '../detectors/detector.ts'
import { WebhookNotifier } from '../notify/notifier.ts'
import { type Receiver, startReceiver } from '../notify/receiver.ts'
import { percentile, type Score, score, type Targets, TARGETS, type EvalAlert } from './score.ts'
import {
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
  /** the scenarios to run instead of buildSuite() (tests) */
  scenarios?: Scenario[]
}

export interface ScenarioResult {
  name: string
  clean: boolean
  instances: number
  durationS: number
  path: 'live' | 'offline'
  faults: GroundTruthFault[]
  alerts: Alert[]
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
  score: Score
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

/** Feeds a scenario straight into the detectors; returns every alert transition. */
export function runOffline(
  s: Scenario,
  detectors: Detector[],
): { alerts: Alert[]; spans: number; hwSamples: number } {
  const alerts: Alert[] = []
  let spans = 0
  let hwSamples = 0
  for (const step of simulate(s)) {
    for (const span of step.spans) {
      spans++
      for (const d of detectors) if (d.onSpan) alerts.push(...d.onSpan(span))
    }
    for (const sample of step.hw) {
      hwSamples++
      for (const d of detectors) if (d.onHwSample) alerts.push(...d.onHwSample(sample))
    }
  }
  return { alerts, spans, hwSamples }
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
): Promise<{ alerts: Alert[]; latencyMs: Map<string, number>; spans: number; hwSamples: number }> {
  const logger = pino({ level: 'silent' })
  const bus = new EmbeddedBus({ retryDelayMs: 10 })
  await bus.ensureTopics(Object.values(TOPICS))
  const published = new Map<string, number>()
  const alerts: Alert[] = []
  const consumer = new DetectorConsumer({
    transport: bus,
    detectors,
    logger,
    onAlert: (a) => {
      published.set(transitionKey(a), Date.now())
      alerts.push(a)
    },
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
    await notifier.stop()
  }
  const latencyMs = new Map<string, number>()
  for (const [k, at] of published) {
    const got = received.get(k)
    if (got !== undefined) latencyMs.set(k, Math.max(0, got - at))
  }
  return { alerts, latencyMs, spans, hwSamples }
}

function sameTransitions(a: Alert[], b: Alert[]): boolean {
  const ka = a.map(transitionKey).sort()
  const kb = b.map(transitionKey).sort()
  return ka.length === kb.length && ka.every((k, i) => k === kb[i])
}

export async function runEval(opts: EvalOptions): Promise<EvalReport> {
  const started = Date.now()
  const live = opts.live ?? 'faults'
  const cleanInstanceHours = opts.cleanInstanceHours ?? 4
  const graceS = opts.graceS ?? 30
  const targets = opts.targets ?? TARGETS
  const log = opts.log ?? (() => {})
  const suite = opts.scenarios ?? buildSuite({ cleanInstanceHours, filter: opts.filter })
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
  const latencies: number[] = []
  const mismatches: string[] = []
  try {
    for (const s of suite) {
      const t0 = Date.now()
      const goesLive = receiver !== undefined && (live === 'all' || (live === 'faults' && !s.clean))
      let alerts: Alert[]
      let spans: number
      let hwSamples: number
      let path: ScenarioResult['path'] = 'offline'
      let agree: boolean | undefined
      let latencyMs = new Map<string, number>()
      if (goesLive) {
        const r = await runLive(s, opts.detectors(), receiver, received, secret)
        if (opts.compareOffline) {
          agree = sameTransitions(r.alerts, runOffline(s, opts.detectors()).alerts)
          if (!agree) mismatches.push(s.name)
        }
        ;({ alerts, spans, hwSamples, latencyMs } = r)
        latencies.push(...r.latencyMs.values())
        path = 'live'
      } else {
        ;({ alerts, spans, hwSamples } = runOffline(s, opts.detectors()))
      }
      for (const a of alerts) {
        evalAlerts.push({ scenario: s.name, alert: a, webhookLatencyMs: latencyMs.get(transitionKey(a)) })
      }
      const result: ScenarioResult = {
        name: s.name,
        clean: s.clean,
        instances: s.instances,
        durationS: s.durationS,
        path,
        faults: groundTruth(s),
        alerts,
        spans,
        hwSamples,
        wallMs: Date.now() - t0,
        ...(agree === undefined ? {} : { liveMatchesOffline: agree }),
      }
      results.push(result)
      const firing = alerts.filter((a) => a.status === 'firing')
      log(
        `${s.name.padEnd(44)} ${path.padEnd(7)} ${String(firing.length).padStart(3)} alert(s)` +
          `${firing.length ? ` [${[...new Set(firing.map((a) => a.type))].join(', ')}]` : ''}` +
          `  ${(result.wallMs / 1000).toFixed(1)} s`,
      )
    }
  } finally {
    await receiver?.stop()
  }
  const cleanSet = new Set(suite.filter((s) => s.clean).map((s) => s.name))
  const cleanHours = suite.filter((s) => s.clean).reduce((n, s) => n + instanceSeconds(s), 0) / 3600
  const sc = score(
    {
      faults: suite.flatMap(groundTruth),
      alerts: evalAlerts,
      cleanInstanceHours: cleanHours,
      cleanScenarios: cleanSet,
      graceS,
    },
    targets,
  )
  const probe = opts.detectors()
  return {
    generatedAt: new Date().toISOString(),
    detectors: probe.map((d) => d.type),
    options: { live, cleanInstanceHours: cleanHours, graceS, filter: opts.filter ?? null },
    targets,
    score: sc,
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
