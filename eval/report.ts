/** The evaluation report as JSON (machine-readable, committed) and Markdown (README-ready). */
import { isoFromMicros } from '../notify/webhook.ts'
import type { EvalReport } from './harness.ts'
import { EXPECTED_ALERT_TYPES } from './expected.ts'

const f3 = (x: number | null) => (x === null ? '—' : x.toFixed(3))
const f2 = (x: number | null) => (x === null ? '—' : x.toFixed(2))
const s1 = (x: number | null) => (x === null ? '—' : `${x.toFixed(1)} s`)
const ok = (b: boolean) => (b ? 'met' : '**missed**')

const LINE_WIDTH = 110

/**
 * JSON laid out the way the repository's formatter (biome, line width 110) lays it out, so the
 * committed report passes `biome check` as written: objects one key per line, arrays of scalars on
 * one line when the line fits, else one item per line.
 */
export function formatJson(value: unknown, indent = 0, prefix = 0): string {
  const pad = ' '.repeat(indent)
  const inner = ' '.repeat(indent + 2)
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null'
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]'
    if (value.every((v) => v === null || typeof v !== 'object')) {
      const one = `[${value.map((v) => JSON.stringify(v)).join(', ')}]`
      if (indent + prefix + one.length + 1 <= LINE_WIDTH) return one
    }
    return `[\n${value.map((v) => `${inner}${formatJson(v, indent + 2)}`).join(',\n')}\n${pad}]`
  }
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined)
  if (entries.length === 0) return '{}'
  const lines = entries.map(([k, v]) => {
    const key = `${JSON.stringify(k)}: `
    return `${inner}${key}${formatJson(v, indent + 2, key.length)}`
  })
  return `{\n${lines.join(',\n')}\n${pad}}`
}

/** The JSON document: the report with alerts reduced to what a reader needs. */
export function reportJson(report: EvalReport, machine: Record<string, unknown>): unknown {
  return {
    machine,
    generatedAt: report.generatedAt,
    detectors: report.detectors,
    expectedAlertTypes: EXPECTED_ALERT_TYPES,
    options: report.options,
    targets: report.targets,
    pageTargets: report.pageTargets,
    pages: report.pages,
    heldOutScore: report.heldOutScore
      ? { ...report.heldOutScore, outcomes: undefined, perType: report.heldOutScore.perType }
      : null,
    score: {
      ...report.score,
      outcomes: report.score.outcomes.map((o) => ({
        scenario: o.fault.scenario,
        type: o.fault.type,
        severity: o.fault.severity,
        instance: o.fault.instance,
        onset: isoFromMicros(o.fault.startUs),
        end: isoFromMicros(o.fault.endUs),
        detected: o.detected,
        alertType: o.alertType ?? null,
        eventDelayS: o.eventDelayS ?? null,
        webhookLatencyMs: o.webhookLatencyMs ?? null,
        delayS: o.delayS ?? null,
      })),
    },
    webhook: report.webhook,
    scenarios: report.scenarios.map((s) => ({
      name: s.name,
      clean: s.clean,
      instances: s.instances,
      durationS: s.durationS,
      path: s.path,
      heldOut: s.heldOut,
      busyHost: s.busyHost,
      spans: s.spans,
      hwSamples: s.hwSamples,
      liveMatchesOffline: s.liveMatchesOffline ?? null,
      wallMs: s.wallMs,
      alerts: s.alerts
        .filter((a) => a.status === 'firing')
        .map((a) => ({
          type: a.type,
          key: a.dedup_key,
          instance: a.instance,
          start: isoFromMicros(a.starts_at_us),
          firedAt: isoFromMicros(a.updated_at_us),
          summary: a.summary,
        })),
      pages: [...new Map(s.pages.filter((a) => a.status === 'firing').map((a) => [a.id, a])).values()].map(
        (a) => ({
          type: a.type,
          instance: a.instance,
          start: isoFromMicros(a.starts_at_us),
          related: (a.related ?? []).map((r) => r.type),
        }),
      ),
    })),
    wallMs: report.wallMs,
  }
}

/** The summary table printed by `breakid eval` (also the head of the Markdown report). */
export function summaryTable(report: EvalReport): string {
  const sc = report.score
  const ho = report.heldOutScore
  const p = report.pages.inSample
  const hp = report.pages.heldOut
  const t = report.targets
  const pt = report.pageTargets
  const both = (a: string, b: string | null) => [a, b ?? '—']
  const rows = [
    ['metric', 'in-sample', 'held-out', 'target', ''],
    [
      '**as reported before (every raised alert, symptoms count as right; engine faults, quiet hosts)**',
      '',
      '',
      '',
      '',
    ],
    [
      'recall (all fault types)',
      ...both(f3(sc.recall), ho && f3(ho.recall)),
      `≥ ${t.recall}`,
      ok(sc.meets.recall),
    ],
    [
      'precision',
      ...both(f3(sc.precision), ho && f3(ho.precision)),
      `≥ ${t.precision}`,
      ok(sc.meets.precision),
    ],
    ['detection delay p50 (onset → webhook)', ...both(s1(sc.delayP50S), ho && s1(ho.delayP50S)), '', ''],
    [
      'detection delay p95 (onset → webhook)',
      ...both(s1(sc.delayP95S), ho && s1(ho.delayP95S)),
      `≤ ${t.p95DelayS} s`,
      ok(sc.meets.p95DelayS),
    ],
    [
      'false alerts per instance-hour (clean)',
      ...both(f3(sc.falseAlertsPerInstanceHour), ho && f3(ho.falseAlertsPerInstanceHour)),
      `≤ ${t.falseAlertsPerInstanceHour}`,
      ok(sc.meets.falseAlertsPerInstanceHour),
    ],
    ['**strict: the pages (what was delivered)**', '', '', '', ''],
    [
      'strict precision (right type only)',
      ...both(f3(p.precision), hp && f3(hp.precision)),
      `≥ ${pt.precision}`,
      ok(p.meets.precision),
    ],
    [
      'strict recall (a page of the right type)',
      ...both(f3(p.recall), hp && f3(hp.recall)),
      `≥ ${pt.recall}`,
      ok(p.meets.recall),
    ],
    [
      'pages per incident',
      ...both(f2(p.pagesPerIncident), hp && f2(hp.pagesPerIncident)),
      `≤ ${pt.pagesPerIncident}`,
      ok(p.meets.pagesPerIncident),
    ],
    [
      'false pages per instance-hour, clean, quiet host',
      ...both(f3(p.clean.falsePagesPerInstanceHour), hp && f3(hp.clean.falsePagesPerInstanceHour)),
      `≤ ${pt.falsePagesPerInstanceHour}`,
      ok(p.clean.falsePagesPerInstanceHour <= pt.falsePagesPerInstanceHour),
    ],
    [
      'false pages per instance-hour, clean, busy host / neighbour',
      ...both(f3(p.busyHost.falsePagesPerInstanceHour), hp && f3(hp.busyHost.falsePagesPerInstanceHour)),
      `≤ ${pt.falsePagesPerInstanceHour}`,
      ok(p.busyHost.falsePagesPerInstanceHour <= pt.falsePagesPerInstanceHour),
    ],
    [
      'delay p95 of the right page (onset → webhook)',
      ...both(s1(p.delayP95S), hp && s1(hp.delayP95S)),
      '',
      '',
    ],
  ]
  return markdownTable(rows)
}

function markdownTable(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)))
  const line = (r: string[]) => `| ${r.map((v, c) => v.padEnd(widths[c]!)).join(' | ')} |`
  // the separator as the repository's formatter writes it, so the committed report passes biome
  return [line(rows[0]!), line(widths.map((w) => '-'.repeat(w))), ...rows.slice(1).map(line)].join('\n')
}

export function reportMarkdown(report: EvalReport, machine: Record<string, unknown>): string {
  const sc = report.score
  const out: string[] = []
  out.push('# breakid eval — detectors scored against ground truth', '')
  out.push(
    `Generated ${report.generatedAt} by \`breakid eval\` on ${String(machine.cpu)} (${String(machine.cores)} cores, ` +
      `${String(machine.node)}); detectors: ${report.detectors.map((d) => `\`${d}\``).join(', ')}. ` +
      `${report.scenarios.length} scenarios, ${sc.faults} faults, ${sc.cleanInstanceHours.toFixed(1)} clean instance-hours, ` +
      `${(report.wallMs / 1000).toFixed(0)} s wall.`,
    '',
  )
  out.push(summaryTable(report), '')
  const pg = report.pages.inSample
  out.push(
    `Overall (in-sample): as reported before ${sc.pass ? '**all targets met**' : '**targets not met**'}; ` +
      `strict pages ${pg.pass ? '**all targets met**' : '**targets not met**'}. ` +
      `In-sample: the tuned suite and the host suite (${pg.incidents} incidents, ${pg.pages} pages). ` +
      (report.pages.heldOut
        ? `Held-out: ${report.pages.heldOut.incidents} incidents and ${report.pages.heldOut.clean.instanceHours.toFixed(1)} + ` +
          `${report.pages.heldOut.busyHost.instanceHours.toFixed(1)} clean instance-hours (quiet + busy host) from ` +
          'seeds and parameter ranges nothing was tuned on (`buildHeldOut`).'
        : 'No held-out scenarios in this run.'),
    '',
  )
  out.push('## Pages per incident type (strict)', '')
  for (const [label, ps] of [
    ['in-sample', report.pages.inSample],
    ['held-out', report.pages.heldOut],
  ] as const) {
    if (!ps) continue
    const prow = [['incident type', 'incidents', 'right page', 'pages per incident', 'paged by']]
    for (const t of ps.perType) {
      prow.push([
        t.type,
        String(t.incidents),
        `${t.detected}/${t.incidents}`,
        f2(t.pagesPerIncident),
        Object.entries(t.pagedBy)
          .map(([k, v]) => `${k} ×${v}`)
          .join(', ') || '—',
      ])
    }
    out.push(`### ${label}`, '', markdownTable(prow), '')
    const wrong = Object.entries(ps.wrongPagesByType)
    out.push(
      `Pages that were not the right type: ${ps.pages - ps.rightPages} of ${ps.pages}` +
        (wrong.length ? ` — ${wrong.map(([k, v]) => `\`${k}\` ×${v}`).join(', ')}` : '') +
        `; on clean traffic ${ps.clean.falsePages} in ${ps.clean.instanceHours.toFixed(1)} instance-hours (quiet host), ` +
        `${ps.busyHost.falsePages} in ${ps.busyHost.instanceHours.toFixed(1)} (busy host or neighbour).`,
      '',
    )
  }
  out.push('## Per fault type (as reported before: every raised alert, in-sample)', '')
  const rows = [
    ['fault type', 'faults', 'detected', 'recall', 'delay p50', 'delay p95', 'detected by', 'missed'],
  ]
  for (const p of sc.perType) {
    rows.push([
      p.type,
      String(p.faults),
      String(p.detected),
      f2(p.recall),
      s1(p.delayP50S),
      s1(p.delayP95S),
      Object.entries(p.matchedBy)
        .map(([k, v]) => `${k} ×${v}`)
        .join(', ') || '—',
      Object.entries(p.missedBySeverity)
        .map(([k, v]) => `${k} ×${v}`)
        .join(', ') || '—',
    ])
  }
  out.push(markdownTable(rows), '')
  const falseTypes = Object.entries(sc.falseAlertsByType)
  out.push(
    `False alerts (matching no fault): ${sc.alerts - sc.truePositiveAlerts} of ${sc.alerts}` +
      (falseTypes.length ? ` — ${falseTypes.map(([k, v]) => `\`${k}\` ×${v}`).join(', ')}` : '') +
      `; on clean traffic: ${sc.cleanAlerts} in ${sc.cleanInstanceHours.toFixed(1)} instance-hours.`,
    '',
  )
  const w = report.webhook
  out.push(
    `Live path (EmbeddedBus → DetectorConsumer → breakid.alerts.v1 → WebhookNotifier → signed receiver): ` +
      `${w.delivered} webhook deliveries, publish→webhook latency p50 ${w.latencyP50Ms ?? '—'} ms, ` +
      `p95 ${w.latencyP95Ms ?? '—'} ms, ${w.invalidSignatures} invalid signatures` +
      (w.compared
        ? `; live and offline runs ${w.liveOfflineMismatches.length === 0 ? 'produced identical alerts in every live scenario' : `differ in ${w.liveOfflineMismatches.join(', ')}`}.`
        : '.'),
    '',
  )
  out.push('## Definitions', '')
  out.push(
    "- An alert **detects** a fault when it is about the faulty instance, its type is one of the fault type's " +
      '_primary_ alert types (`eval/expected.ts`), and it starts within [onset, end + ' +
      `${report.options.graceS} s]. It **matches** the fault under the same rule with the primary or the _symptom_ ` +
      'types (detectors that are right to fire during that break, e.g. the latency SLO during a stall).',
    '- **Recall**: faults with a detecting alert / faults. **Precision**: alerts matching some fault / all alerts ' +
      '(clean scenarios included; one alert = one alert id).',
    '- **Detection delay** (onset → webhook received) = event time from the fault onset to the evaluation that ' +
      "fired the alert (its firing record's `updated_at`) + the wall-clock latency measured on the live path from " +
      'the detector consumer publishing that alert to the webhook receiver having it. The simulator runs faster than ' +
      'real time, so the live path is under more load than in production; the latency is not discounted for that.',
    '- **False alerts per instance-hour**: alerts on the clean scenarios / their instance-hours.',
    '- Telemetry is synthetic and deterministic (`eval/scenarios.ts`, seeded PRNG): a per-second fluid ' +
      'model of the engine (preprocessing pool, dynamic batcher, executor) at 120 req/s per instance (360 req/s in ' +
      'the batch-size scenarios, where batching matters), 25 % of requests emitting spans, one hardware sample per ' +
      'second. Fault scenarios: 180 s warm-up, 90 s fault, 60 s tail; "noisy" variants have 4× the jitter and a ' +
      'load ramp under the fault.',
    '- **Pages** (strict): what the detector consumer delivered after the causal order kept symptoms on their root ' +
      "(`related`). A page is right only when its type is the incident's primary type (`FAULTS[type].primaryAlert`; " +
      '`host_contention` for a noisy neighbour) on its instance and it starts in the window; a symptom that was ' +
      'delivered during a fault is an extra page. Pages per incident = pages starting while an incident is active / ' +
      'incidents. Busy-host scenarios: other processes use 1.1–1.4 of the 2 CPUs all along, or a neighbour takes ' +
      '1.2–2 CPUs for a while and slows every CPU-bound stage (eval/scenarios.ts).',
    '- **In-sample vs held-out.** The thresholds were tuned on the tuned suite (every fault type × severity × noise, ' +
      'overlaps, clean ramps/bursts/diurnal) and host_contention on the host suite: those numbers are in-sample. The ' +
      'held-out scenarios come from other seeds and parameter ranges (magnitudes between and beyond the severities, ' +
      '70–420 req/s, other load shapes, onsets and lengths, neighbours of other sizes) and were never tuned on. ' +
      'Live runs on a real engine are in `bench/results/live-faults.md`.',
    '',
  )
  out.push('## Scenarios', '')
  const srows = [['scenario', 'set', 'path', 'incidents', 'raised', 'types raised', 'pages']]
  for (const s of report.scenarios) {
    const firing = s.alerts.filter((a) => a.status === 'firing')
    const paged = [
      ...new Map(s.pages.filter((a) => a.status === 'firing').map((a) => [a.id, a.type])).values(),
    ]
    srows.push([
      s.name,
      s.heldOut ? 'held-out' : 'in-sample',
      s.path,
      s.faults.map((f) => `${f.type}/${f.severity}`).join(', ') ||
        (s.busyHost ? 'clean, busy host' : 'clean'),
      String(firing.length),
      [...new Set(firing.map((a) => a.type))].join(', ') || '—',
      paged.join(', ') || '—',
    ])
  }
  out.push(markdownTable(srows), '')
  return out.join('\n')
}
