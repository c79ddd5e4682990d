/**
 * Scores alerts against ground truth.
 *
 * - An alert **detects** a fault when it is about the fault's instance (or about no single instance:
 *   a fleet-level alert), its type is one of the fault's primary types (expected.ts), and it starts
 *   (`starts_at_us`, the first breaching evaluation) within [onset, end + grace]. It **matches** the
 *   fault under the same rule with the primary or the symptom types.
 * - **recall** = faults with at least one detecting alert / faults.
 * - **precision** = alerts that match some fault / all alerts, over every scenario (alerts in clean
 *   scenarios are all false). One alert = one alert id (its firing record; resolved is bookkeeping).
 *   No alerts at all with faults present scores 0.
 * - **detection delay** of a detected fault (onset → webhook received) = event-time delay of the
 *   earliest detecting alert (`updated_at_us` of its firing record, the evaluation that fired it,
 *   minus the onset) + that alert's measured publish→webhook latency (wall clock, from the detector
 *   consumer publishing it to the receiver having its body) when it went through the live path.
 * - **false alerts per instance-hour** = alerts in clean scenarios / clean instance-hours.
 */
import type { Alert } from '../contract/records.ts'
import { type ExpectedTypes, expectedTypes } from './expected.ts'
import type { Condition, FaultSeverity, GroundTruthFault } from './scenarios.ts'

export interface EvalAlert {
  scenario: string
  /** the firing record */
  alert: Alert
  /** publish → webhook received, ms; undefined when the alert did not go through the live path */
  webhookLatencyMs?: number
}

export interface Targets {
  recall: number
  precision: number
  p95DelayS: number
  falseAlertsPerInstanceHour: number
}

export const TARGETS: Targets = Object.freeze({
  recall: 0.95,
  precision: 0.95,
  p95DelayS: 5,
  falseAlertsPerInstanceHour: 0.1,
})

export interface ScoreInput {
  faults: GroundTruthFault[]
  alerts: EvalAlert[]
  /** instance-hours of the clean scenarios */
  cleanInstanceHours: number
  /** names of the clean scenarios */
  cleanScenarios: ReadonlySet<string>
  /** how long after a fault ends an alert may still start and count. Default 30 s. */
  graceS?: number
  /** fault type → alert types that detect it / may accompany it; default expected.ts */
  expected?: (type: Condition) => ExpectedTypes
}

export interface FaultOutcome {
  fault: GroundTruthFault
  detected: boolean
  /** the earliest matching alert */
  alertId?: string
  alertType?: string
  /** event time from onset to the firing evaluation, s */
  eventDelayS?: number
  /** measured publish → webhook, ms (undefined: offline only) */
  webhookLatencyMs?: number
  /** eventDelayS + webhook latency, s */
  delayS?: number
}

export interface TypeSummary {
  type: Condition
  faults: number
  detected: number
  recall: number
  delayP50S: number | null
  delayP95S: number | null
  /** the alert types that matched faults of this type, with counts */
  matchedBy: Record<string, number>
  /** severities whose faults were missed, with counts */
  missedBySeverity: Partial<Record<FaultSeverity, number>>
}

export interface Score {
  faults: number
  detected: number
  recall: number
  alerts: number
  truePositiveAlerts: number
  precision: number
  delayP50S: number | null
  delayP95S: number | null
  cleanAlerts: number
  cleanInstanceHours: number
  falseAlertsPerInstanceHour: number
  /** alerts that matched no fault, by type (clean scenarios included) */
  falseAlertsByType: Record<string, number>
  perType: TypeSummary[]
  outcomes: FaultOutcome[]
  /** which targets are met */
  meets: Record<keyof Targets, boolean>
  pass: boolean
}

/** Nearest-rank percentile (p in 0..100); null for no values. */
export function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[rank - 1]!
}

/** Whether `alert` is about `fault` (same scenario and instance, inside the window) with one of `types`. */
export function matches(
  alert: EvalAlert,
  fault: GroundTruthFault,
  graceS: number,
  types: readonly string[],
): boolean {
  if (alert.scenario !== fault.scenario) return false
  const inst = alert.alert.instance
  if (inst !== fault.instance && inst !== '' && inst !== '*') return false
  if (!types.includes(alert.alert.type)) return false
  const start = alert.alert.starts_at_us
  return start >= fault.startUs && start <= fault.endUs + graceS * 1e6
}

export function score(input: ScoreInput, targets: Targets = TARGETS): Score {
  const graceS = input.graceS ?? 30
  const expected = input.expected ?? expectedTypes
  // one alert per id: the firing record
  const byId = new Map<string, EvalAlert>()
  for (const a of input.alerts) {
    if (a.alert.status !== 'firing') continue
    if (!byId.has(a.alert.id)) byId.set(a.alert.id, a)
  }
  const alerts = [...byId.values()]
  const matched = new Set<string>()
  const outcomes: FaultOutcome[] = input.faults.map((fault) => {
    const { primary, symptoms } = expected(fault.type)
    for (const a of alerts) if (matches(a, fault, graceS, [...primary, ...symptoms])) matched.add(a.alert.id)
    const hits = alerts.filter((a) => matches(a, fault, graceS, primary))
    if (hits.length === 0) return { fault, detected: false }
    const withDelay = hits.map((h) => {
      const eventDelayS = Math.max(0, (h.alert.updated_at_us - fault.startUs) / 1e6)
      return { h, eventDelayS, delayS: eventDelayS + (h.webhookLatencyMs ?? 0) / 1000 }
    })
    withDelay.sort((a, b) => a.delayS - b.delayS)
    const first = withDelay[0]!
    return {
      fault,
      detected: true,
      alertId: first.h.alert.id,
      alertType: first.h.alert.type,
      eventDelayS: first.eventDelayS,
      webhookLatencyMs: first.h.webhookLatencyMs,
      delayS: first.delayS,
    }
  })
  const falseAlertsByType: Record<string, number> = {}
  for (const a of alerts) {
    if (matched.has(a.alert.id)) continue
    falseAlertsByType[a.alert.type] = (falseAlertsByType[a.alert.type] ?? 0) + 1
  }
  const detected = outcomes.filter((o) => o.detected)
  const delays = detected.map((o) => o.delayS!)
  const cleanAlerts = alerts.filter((a) => input.cleanScenarios.has(a.scenario)).length
  const faults = input.faults.length
  const recall = faults === 0 ? 1 : detected.length / faults
  const precision = alerts.length === 0 ? (faults === 0 ? 1 : 0) : matched.size / alerts.length
  const falseRate = input.cleanInstanceHours > 0 ? cleanAlerts / input.cleanInstanceHours : 0
  const types = [...new Set(input.faults.map((f) => f.type))]
  const perType: TypeSummary[] = types.map((type) => {
    const mine = outcomes.filter((o) => o.fault.type === type)
    const hit = mine.filter((o) => o.detected)
    const matchedBy: Record<string, number> = {}
    for (const o of hit) matchedBy[o.alertType!] = (matchedBy[o.alertType!] ?? 0) + 1
    const missedBySeverity: Partial<Record<FaultSeverity, number>> = {}
    for (const o of mine) {
      if (!o.detected) missedBySeverity[o.fault.severity] = (missedBySeverity[o.fault.severity] ?? 0) + 1
    }
    const d = hit.map((o) => o.delayS!)
    return {
      type,
      faults: mine.length,
      detected: hit.length,
      recall: mine.length === 0 ? 1 : hit.length / mine.length,
      delayP50S: percentile(d, 50),
      delayP95S: percentile(d, 95),
      matchedBy,
      missedBySeverity,
    }
  })
  const p95 = percentile(delays, 95)
  const meets = {
    recall: recall >= targets.recall,
    precision: precision >= targets.precision,
    p95DelayS: p95 !== null && p95 <= targets.p95DelayS,
    falseAlertsPerInstanceHour: falseRate <= targets.falseAlertsPerInstanceHour,
  }
  return {
    faults,
    detected: detected.length,
    recall,
    alerts: alerts.length,
    truePositiveAlerts: matched.size,
    precision,
    delayP50S: percentile(delays, 50),
    delayP95S: p95,
    cleanAlerts,
    cleanInstanceHours: input.cleanInstanceHours,
    falseAlertsPerInstanceHour: falseRate,
    falseAlertsByType,
    perType,
    outcomes,
    meets,
    pass: Object.values(meets).every(Boolean),
  }
}

// ----- pages: what reached a person -----

/**
 * Strict scoring of what was delivered (the pages), not of what the detectors raised:
 *
 * - a **page** is a delivered alert (its firing record; symptoms the causal order kept from delivery
 *   are not pages). It is **right** only when its type is the primary type of a condition (fault or
 *   noisy neighbour) on its instance and it starts within [onset, end + grace]; a symptom that was
 *   delivered during a fault is an extra page, not a right one.
 * - **strict precision** = right pages / pages; **strict recall** = conditions with a right page /
 *   conditions.
 * - **pages per incident** = pages that start while a condition of their scenario is active
 *   ([onset, end + grace], any instance) / conditions. One page per break is 1.0.
 * - **false pages per instance-hour** on clean traffic: pages that are not right in scenarios
 *   without an engine fault / their instance-hours, for quiet hosts and for busy hosts (a neighbour
 *   there all along, or one that comes and goes: there `host_contention` is the right page).
 */
export interface PageTargets {
  precision: number
  recall: number
  pagesPerIncident: number
  falsePagesPerInstanceHour: number
}

export const PAGE_TARGETS: PageTargets = Object.freeze({
  precision: 0.9,
  recall: 0.9,
  pagesPerIncident: 1.2,
  falsePagesPerInstanceHour: 0.1,
})

export interface PageScoreInput {
  faults: GroundTruthFault[]
  /** every delivered record (firing and resolved; root updates repeat an id) */
  pages: EvalAlert[]
  /** clean scenarios on a quiet host, and their instance-hours */
  clean: { scenarios: ReadonlySet<string>; instanceHours: number }
  /** clean scenarios on a busy host (a neighbour all along, or coming and going) */
  busyHost: { scenarios: ReadonlySet<string>; instanceHours: number }
  graceS?: number
  expected?: (type: Condition) => ExpectedTypes
}

export interface PageTypeSummary {
  type: Condition
  incidents: number
  detected: number
  /** pages while incidents of this type were active / incidents */
  pagesPerIncident: number
  /** page types delivered during them, with counts */
  pagedBy: Record<string, number>
}

export interface PageScore {
  pages: number
  rightPages: number
  precision: number
  incidents: number
  detected: number
  recall: number
  pagesDuringIncidents: number
  pagesPerIncident: number
  delayP50S: number | null
  delayP95S: number | null
  clean: { instanceHours: number; falsePages: number; falsePagesPerInstanceHour: number }
  busyHost: { instanceHours: number; falsePages: number; falsePagesPerInstanceHour: number }
  /** pages that were not right, by type */
  wrongPagesByType: Record<string, number>
  perType: PageTypeSummary[]
  meets: Record<keyof PageTargets, boolean>
  pass: boolean
}

export function pageScore(input: PageScoreInput, targets: PageTargets = PAGE_TARGETS): PageScore {
  const graceS = input.graceS ?? 30
  const expected = input.expected ?? expectedTypes
  const byId = new Map<string, EvalAlert>()
  for (const a of input.pages) {
    if (a.alert.status === 'firing' && !byId.has(a.alert.id)) byId.set(a.alert.id, a)
  }
  const pages = [...byId.values()]
  const right = new Set<string>()
  const delays: number[] = []
  let detected = 0
  const inWindow = (a: EvalAlert, f: GroundTruthFault) =>
    a.scenario === f.scenario &&
    a.alert.starts_at_us >= f.startUs &&
    a.alert.starts_at_us <= f.endUs + graceS * 1e6
  for (const f of input.faults) {
    const hits = pages.filter((a) => matches(a, f, graceS, expected(f.type).primary))
    for (const h of hits) right.add(h.alert.id)
    if (hits.length === 0) continue
    detected++
    const first = Math.min(
      ...hits.map(
        (h) => Math.max(0, (h.alert.updated_at_us - f.startUs) / 1e6) + (h.webhookLatencyMs ?? 0) / 1000,
      ),
    )
    delays.push(first)
  }
  const during = pages.filter((a) => input.faults.some((f) => inWindow(a, f)))
  const wrongPagesByType: Record<string, number> = {}
  for (const a of pages) {
    if (!right.has(a.alert.id)) wrongPagesByType[a.alert.type] = (wrongPagesByType[a.alert.type] ?? 0) + 1
  }
  const falseIn = (names: ReadonlySet<string>) =>
    pages.filter((a) => names.has(a.scenario) && !right.has(a.alert.id)).length
  const rate = (n: number, h: number) => (h > 0 ? n / h : 0)
  const cleanFalse = falseIn(input.clean.scenarios)
  const busyFalse = falseIn(input.busyHost.scenarios)
  const types = [...new Set(input.faults.map((f) => f.type))]
  const perType: PageTypeSummary[] = types.map((type) => {
    const mine = input.faults.filter((f) => f.type === type)
    const pagedBy: Record<string, number> = {}
    const mineDuring = pages.filter((a) => mine.some((f) => inWindow(a, f)))
    for (const a of mineDuring) pagedBy[a.alert.type] = (pagedBy[a.alert.type] ?? 0) + 1
    return {
      type,
      incidents: mine.length,
      detected: mine.filter((f) => pages.some((a) => matches(a, f, graceS, expected(f.type).primary))).length,
      pagesPerIncident: mineDuring.length / mine.length,
      pagedBy,
    }
  })
  const incidents = input.faults.length
  const precision = pages.length === 0 ? (incidents === 0 ? 1 : 0) : right.size / pages.length
  const recall = incidents === 0 ? 1 : detected / incidents
  const pagesPerIncident = incidents === 0 ? 0 : during.length / incidents
  const cleanRate = rate(cleanFalse, input.clean.instanceHours)
  const busyRate = rate(busyFalse, input.busyHost.instanceHours)
  const meets = {
    precision: precision >= targets.precision,
    recall: recall >= targets.recall,
    pagesPerIncident: pagesPerIncident <= targets.pagesPerIncident,
    falsePagesPerInstanceHour: Math.max(cleanRate, busyRate) <= targets.falsePagesPerInstanceHour,
  }
  return {
    pages: pages.length,
    rightPages: right.size,
    precision,
    incidents,
    detected,
    recall,
    pagesDuringIncidents: during.length,
    pagesPerIncident,
    delayP50S: percentile(delays, 50),
    delayP95S: percentile(delays, 95),
    clean: {
      instanceHours: input.clean.instanceHours,
      falsePages: cleanFalse,
      falsePagesPerInstanceHour: cleanRate,
    },
    busyHost: {
      instanceHours: input.busyHost.instanceHours,
      falsePages: busyFalse,
      falsePagesPerInstanceHour: busyRate,
    },
    wrongPagesByType,
    perType,
    meets,
    pass: Object.values(meets).every(Boolean),
  }
}
