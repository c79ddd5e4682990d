/**
 * `breakid report`: what happened in a time range, as one file an engineer attaches to an incident
 * ticket — self-contained HTML (inline CSS and SVG, no script, no external fetch: its
 * Content-Security-Policy forbids them) or Markdown. Sections: summary, alerts with their evidence
 * and exemplar requests, throughput and tail latency, the top bottlenecks by stage and model, stage
 * shares over time, hardware use.
 *
 * Every number comes from a named query (queries/sql/*.sql) through `QueryRunner`, so the report
 * reads a store directly or asks a running breakid over its API, and follows the queries' SQL when
 * the tables change.
 */
import { STAGES } from '../contract/vocabulary.ts'
import { InvalidInputError } from '../core/errors.ts'
import { toObjects } from '../queries/format.ts'
import { parseTimeMicros } from '../queries/params.ts'
import type { QueryResult } from '../queries/runner.ts'
import { escapeHtml } from './pages.ts'
import { PALETTE, STAGE_COLORS } from './palette.ts'
import type { CostFigure } from './plugin.ts'
import { type SvgBand, sparkline, svgTimeChart } from './svg-chart.ts'

/** Runs a named query with string parameters (a store directly, or a running breakid's API). */
export type QueryRunner = (name: string, params: Record<string, string>) => Promise<QueryResult>

export interface ReportRequest {
  /** the range as a user writes it: ISO 8601, epoch, `now`, `-1h` (default -1h .. now) */
  from?: string
  to?: string
  /** a run id instead of a range: the run's first to last request (the `runs` named query) */
  run?: string
  title?: string
  /** where the data came from, printed in the header */
  source?: string
  /** what the range cost (run-cost), when pricing is configured */
  cost?: CostFigure
  /** epoch ms relative times count from (default now) */
  nowMs?: number
  /** alerts whose exemplar requests are looked up (default 10; 3 exemplars each) */
  exemplarAlerts?: number
}

type Row = Record<string, unknown>

export interface RelatedSymptom {
  id: string
  type: string
  stage: string | null
  starts_at_us: number
  summary: string
}

export interface ReportAlert {
  row: Row
  startS: number
  endS: number | null
  related: RelatedSymptom[]
  exemplars: Row[]
}

export interface ReportData {
  title: string
  fromS: number
  toS: number
  generatedAt: string
  source?: string
  run?: string
  stepS: number
  /** stage-breakdown rows */
  breakdown: Row[]
  /** fleet-over-time rows */
  fleet: Row[]
  /** stage-shares-over-time rows */
  shares: Row[]
  alerts: ReportAlert[]
  hardware: Row[]
  /** run-cost rows per instance, and the currency, when pricing is configured */
  cost?: { rows: Row[]; currency: string }
}

const NICE_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21_600, 43_200, 86_400]

/** ClickHouse `YYYY-MM-DD hh:mm:ss[.ffffff]` (UTC) → epoch seconds */
export function epochSeconds(text: unknown): number | null {
  if (typeof text !== 'string') return null
  const m = /^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:\.(\d+))?/.exec(text)
  if (!m) return null
  const whole = Date.parse(`${m[1]}T${m[2]}Z`) / 1000
  return m[3] ? whole + Number(`0.${m[3]}`) : whole
}

function resolveTime(text: string, nowMs: number, flag: string): number {
  const us = parseTimeMicros(text, nowMs)
  if (us === undefined) {
    throw new InvalidInputError(
      `--${flag}: "${text}" is not a time (ISO 8601, epoch seconds or ms, now, or relative like -30m)`,
    )
  }
  return us / 1e6
}

/** Asks the named queries for everything the report shows. */
export async function gatherReport(run: QueryRunner, req: ReportRequest): Promise<ReportData> {
  const nowMs = req.nowMs ?? Date.now()
  const rows = async (name: string, params: Record<string, string>) => toObjects(await run(name, params))
  let fromS: number
  let toS: number
  if (req.run !== undefined) {
    if (req.from !== undefined || req.to !== undefined) {
      throw new InvalidInputError('--run names the range itself: leave out --from and --to')
    }
    const runs = await rows('runs', { since: '0', limit: '10000' })
    const found = runs.find((r) => r.run === req.run)
    if (!found) {
      throw new InvalidInputError(
        `no requests with run id "${req.run}" in the store (breakid query runs lists the runs)`,
      )
    }
    fromS = epochSeconds(found.first_request)!
    // through the last request's bucket, so it is counted
    toS = epochSeconds(found.last_request)! + 1
  } else {
    fromS = resolveTime(req.from ?? '-1h', nowMs, 'from')
    toS = resolveTime(req.to ?? 'now', nowMs, 'to')
  }
  if (!(toS > fromS)) throw new InvalidInputError(`--to must be after --from (${req.from} .. ${req.to})`)
  const stepS = NICE_STEPS.find((s) => s >= (toS - fromS) / 120) ?? 86_400
  const range = { from: fromS.toFixed(6), to: toS.toFixed(6) }
  const [breakdown, fleet, shares, alertRows, hardware, cost] = await Promise.all([
    rows('stage-breakdown', range),
    rows('fleet-over-time', { ...range, step: String(stepS) }),
    rows('stage-shares-over-time', { ...range, step: String(stepS) }),
    rows('alerts-in-range', { ...range, limit: '500' }),
    rows('hardware-summary', range),
    // a run's report costs that run's requests and samples alone
    req.cost ? rows(req.cost.query, { ...range, ...req.cost.params, run: req.run ?? '' }) : undefined,
  ])
  const alerts: ReportAlert[] = alertRows.map((row) => {
    let related: RelatedSymptom[] = []
    try {
      const parsed = JSON.parse(String(row.related ?? '[]')) as unknown
      if (Array.isArray(parsed)) related = parsed as RelatedSymptom[]
    } catch {
      related = []
    }
    return {
      row,
      startS: epochSeconds(row.starts_at) ?? fromS,
      endS: epochSeconds(row.ends_at),
      related,
      exemplars: [],
    }
  })
  // the requests an alert names, looked up near the alert's start (fewer partitions to read)
  for (const a of alerts.slice(0, req.exemplarAlerts ?? 10)) {
    const ids = (Array.isArray(a.row.exemplar_request_ids) ? a.row.exemplar_request_ids : []).slice(0, 3)
    for (const id of ids) {
      const window = { from: (a.startS - 600).toFixed(6), to: ((a.endS ?? toS) + 600).toFixed(6) }
      const [span] = await rows('request', { id: String(id), ...window })
      if (span) a.exemplars.push(span)
    }
  }
  return {
    title: req.title ?? 'breakid incident report',
    fromS,
    toS,
    generatedAt: new Date(nowMs).toISOString(),
    source: req.source,
    run: req.run,
    stepS,
    breakdown,
    fleet,
    shares,
    alerts,
    hardware,
    cost: req.cost && cost ? { rows: cost, currency: req.cost.currency } : undefined,
  }
}

// ---------------------------------------------------------------------------------------------------
// what both formats say

const num = (v: unknown) => (typeof v === 'number' ? v : Number(v ?? 0))
const iso = (s: number | null) => (s === null ? '–' : `${new Date(s * 1000).toISOString().slice(0, 19)}Z`)

function fixed(v: unknown, digits = 1): string {
  if (v === null || v === undefined || v === '') return '–'
  const n = Number(v)
  if (!Number.isFinite(n)) return String(v)
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 })
}
const ms = (v: unknown) => (v === null || v === undefined ? '–' : `${fixed(v, num(v) < 10 ? 2 : 1)} ms`)
function pct(v: unknown): string {
  if (v === null || v === undefined) return '–'
  const p = num(v) * 100
  return p > 0 && p < 0.1 ? '<0.1 %' : `${fixed(p, 1)} %`
}
function duration(seconds: number): string {
  if (seconds < 120) return `${seconds.toFixed(1)} s`
  if (seconds < 7200) return `${(seconds / 60).toFixed(1)} min`
  return `${(seconds / 3600).toFixed(1)} h`
}

interface ModelLine {
  model: string
  requests: number
  errors: number
  rps: number
  p50: unknown
  p95: unknown
  p99: unknown
  mean: unknown
}

/** per model: requests and errors from the buckets, exact percentiles from the stage breakdown */
function modelLines(d: ReportData): ModelLine[] {
  const seconds = d.toS - d.fromS
  const by = new Map<string, ModelLine>()
  for (const r of d.fleet) {
    const m = String(r.model)
    const line = by.get(m) ?? {
      model: m,
      requests: 0,
      errors: 0,
      rps: 0,
      p50: null,
      p95: null,
      p99: null,
      mean: null,
    }
    line.requests += num(r.requests)
    line.errors += num(r.errors)
    by.set(m, line)
  }
  for (const r of d.breakdown) {
    if (r.stage !== 'total') continue
    const line = by.get(String(r.model))
    if (!line) continue
    Object.assign(line, { p50: r.p50_ms, p95: r.p95_ms, p99: r.p99_ms, mean: r.mean_ms })
  }
  for (const line of by.values()) line.rps = line.requests / seconds
  return [...by.values()].sort((a, b) => b.requests - a.requests)
}

/** stage rows (no totals) by share of request time, largest first */
function bottlenecks(d: ReportData, limit = 10): Row[] {
  return d.breakdown
    .filter((r) => r.stage !== 'total')
    .sort((a, b) => num(b.share_of_total) - num(a.share_of_total))
    .slice(0, limit)
}

interface Series {
  xs: number[]
  rps: (number | null)[]
  errorsPerS: (number | null)[]
  p99ByModel: Map<string, (number | null)[]>
}

function series(d: ReportData): Series {
  const xs = [...new Set(d.fleet.map((r) => epochSeconds(r.bucket)!))].sort((a, b) => a - b)
  const at = new Map(xs.map((x, i) => [x, i]))
  const rps: (number | null)[] = xs.map(() => null)
  const errorsPerS: (number | null)[] = xs.map(() => null)
  const p99ByModel = new Map<string, (number | null)[]>()
  for (const r of d.fleet) {
    const i = at.get(epochSeconds(r.bucket)!)!
    rps[i] = (rps[i] ?? 0) + num(r.requests_per_s)
    const rate = num(r.requests) > 0 ? num(r.requests_per_s) * (num(r.errors) / num(r.requests)) : 0
    errorsPerS[i] = (errorsPerS[i] ?? 0) + rate
    const m = String(r.model)
    if (!p99ByModel.has(m))
      p99ByModel.set(
        m,
        xs.map(() => null),
      )
    const col = p99ByModel.get(m)!
    // the worst instance of the model in that bucket
    col[i] = Math.max(col[i] ?? 0, num(r.p99_ms))
  }
  return { xs, rps, errorsPerS, p99ByModel }
}

interface CostLine {
  perThousand: number | null
  total: number
  starved: number
  idle: number
  currency: string
}

function costLine(d: ReportData): CostLine | undefined {
  if (!d.cost) return undefined
  const sum = (k: string) => d.cost!.rows.reduce((a, r) => a + (Number(r[k]) || 0), 0)
  const ok = sum('ok')
  return {
    perThousand: ok > 0 ? (sum('cost') / ok) * 1000 : null,
    total: sum('cost'),
    starved: sum('starved_cost'),
    idle: sum('idle_cost'),
    currency: d.cost.currency,
  }
}

const money = (v: number | null, currency: string) =>
  v === null ? '–' : `${v.toLocaleString('en-US', { maximumSignificantDigits: 4 })} ${currency}`

function headline(d: ReportData): string[] {
  const lines = modelLines(d)
  const requests = lines.reduce((a, l) => a + l.requests, 0)
  const errors = lines.reduce((a, l) => a + l.errors, 0)
  const s = series(d)
  const peak = Math.max(0, ...s.rps.filter((v): v is number => v !== null))
  const top = bottlenecks(d, 1)[0]
  const firing = d.alerts.filter((a) => a.row.status === 'firing').length
  const cost = costLine(d)
  return [
    ...(cost
      ? [
          `cost ${money(cost.perThousand, cost.currency)} per 1,000 answered requests (${money(cost.total, cost.currency)} in all; idle executor time ${money(cost.idle, cost.currency)}, of it starved ${money(cost.starved, cost.currency)})`,
        ]
      : []),
    `${requests.toLocaleString('en-US')} requests (${fixed(requests / (d.toS - d.fromS), 1)}/s on average, peak ${fixed(peak, 1)}/s in ${d.stepS} s buckets), error rate ${requests ? pct(errors / requests) : '–'}`,
    `${d.alerts.length} alert${d.alerts.length === 1 ? '' : 's'} in the range (${firing} still firing)${d.alerts.length ? `: ${[...new Set(d.alerts.map((a) => String(a.row.type)))].join(', ')}` : ''}`,
    top
      ? `largest share of request time: ${top.stage} on ${top.model}, ${pct(top.share_of_total)} (p99 ${ms(top.p99_ms)})`
      : 'no requests in the range',
  ]
}

// ---------------------------------------------------------------------------------------------------
// HTML

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#16191d;background:#fff;margin:0 auto;max-width:980px;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d5dae1;padding-bottom:4px}h3{font-size:15px;margin:16px 0 6px}
.meta{color:#4a5360}code{background:#eef1f4;padding:0 3px;border-radius:3px;font-size:12.5px;word-break:break-all}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums;margin:6px 0}th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #e3e7ec;vertical-align:top}
th{color:#4a5360;font-size:12px}td.n,th.n{text-align:right}
.badge{display:inline-block;padding:0 8px;border-radius:10px;font-size:12px;font-weight:600;border:1px solid currentColor}
.firing,.critical{color:#b3212a;background:#fde8e9}.resolved,.info{color:#1d6e40;background:#e2f5ea}.warning{color:#7a4f00;background:#fff3d6}
.alert{border:1px solid #d5dae1;border-radius:8px;padding:4px 14px 10px;margin:12px 0}
.action{border-left:4px solid #0b62c4;background:#eef1f4;padding:6px 10px;border-radius:4px}
.bar{display:inline-block;height:8px;background:#0b62c4;border-radius:2px;vertical-align:middle;margin-left:6px}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;vertical-align:baseline}
.key{white-space:nowrap;margin-right:8px}figure{margin:8px 0 16px}figcaption{font-size:12px;color:#4a5360}
ul.summary li{margin:2px 0}footer{margin-top:32px;color:#4a5360;font-size:12px}
@media (prefers-color-scheme:dark){body{background:#0f1318;color:#e6e9ee}.meta,th,figcaption,footer{color:#a3acb9}code,.action{background:#1f262f}th,td{border-color:#2f3844}h2{border-color:#2f3844}.alert{border-color:#2f3844}
.firing,.critical{color:#ff8a8a;background:#3a1a1d}.resolved,.info{color:#6fdca0;background:#12301f}.warning{color:#f5c46a;background:#33280f}svg text{fill:#a3acb9}}
`

/** the command's flags that make this report again */
const madeBy = (d: ReportData) => (d.run ? `--run ${d.run}` : `--from ${iso(d.fromS)} --to ${iso(d.toS)}`)

const esc = (v: unknown) => escapeHtml(v === null || v === undefined ? '–' : String(v))

/**
 * A table's head as both renderers take it: one label per column, `>` before the label of a numeric
 * (right-aligned) column.
 */
type Head = readonly string[]

const isNumeric = (label: string | undefined) => label?.startsWith('>') ?? false
const labelOf = (label: string) => label.replace(/^>/, '')

function htmlTable(head: Head, rows: string[][]): string {
  const n = (i: number) => (isNumeric(head[i]) ? ' class="n"' : '')
  return `<table><thead><tr>${head.map((h, i) => `<th${n(i)}>${escapeHtml(labelOf(h))}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c, i) => `<td${n(i)}>${c}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`
}

function bandsOf(d: ReportData): SvgBand[] {
  return d.alerts.map((a) => ({
    startS: a.startS,
    endS: a.endS,
    label: `${String(a.row.type)} ${String(a.row.instance)}/${String(a.row.model)} ${iso(a.startS)} → ${a.endS ? iso(a.endS) : 'firing'}`,
  }))
}

function exemplarTable(spans: Row[]): string {
  return htmlTable(
    ['request', '>total', ...STAGES.map((s) => `>${s}`)],
    spans.map((s) => [
      `<code>${esc(s.request_id)}</code><br><span class="meta">trace <code>${esc(s.trace_id)}</code></span>`,
      ms(num(s.total_us) / 1000),
      ...STAGES.map((st) => ms(num(s[`${st}_us`]) / 1000)),
    ]),
  )
}

function alertHtml(a: ReportAlert): string {
  const r = a.row
  const related = a.related.length
    ? htmlTable(
        ['symptom', 'stage', 'started', 'summary'],
        a.related.map((x) => [esc(x.type), esc(x.stage), esc(iso(x.starts_at_us / 1e6)), esc(x.summary)]),
      )
    : '<p class="meta">none (no other detector raised a symptom of this break)</p>'
  const ids = Array.isArray(r.exemplar_request_ids) ? (r.exemplar_request_ids as unknown[]) : []
  return `<section class="alert" id="alert-${esc(r.id)}">
<h3>${esc(r.type)} <span class="badge ${esc(r.status)}">${esc(r.status)}</span> <span class="badge ${esc(r.severity)}">${esc(r.severity)}</span></h3>
<p>${esc(r.summary)}</p>
<p class="meta">${esc(r.instance)} / ${esc(r.model)} · stage ${esc(r.stage)} · started ${esc(iso(a.startS))} · ${a.endS ? `ended ${esc(iso(a.endS))} after ${duration(a.endS - a.startS)}${r.resolve_reason ? ` (${esc(r.resolve_reason)})` : ''}` : 'still firing'} · id <code>${esc(r.id)}</code></p>
${htmlTable(
  ['evidence', '>baseline', '>observed', '>threshold'],
  [[`<code>${esc(r.statistic)}</code>`, fixed(r.baseline, 4), fixed(r.observed, 4), fixed(r.threshold, 4)]],
)}
<p><strong>Suspected cause:</strong> ${esc(r.suspected_cause)}</p>
<p class="action"><strong>Suggested action:</strong> ${esc(r.suggested_action)}</p>
<h3>Related symptoms</h3>${related}
<h3>Exemplar requests</h3>${a.exemplars.length ? exemplarTable(a.exemplars) : ids.length ? `<p>${ids.map((id) => `<code>${esc(id)}</code>`).join(' ')}</p>` : '<p class="meta">none recorded</p>'}
</section>`
}

export function renderHtml(d: ReportData): string {
  const lines = modelLines(d)
  const s = series(d)
  const bands = bandsOf(d)
  const models = [...s.p99ByModel.keys()].sort().slice(0, PALETTE.length)
  const shareXs = [...new Set(d.shares.map((r) => epochSeconds(r.bucket)!))].sort((a, b) => a - b)
  const shareAt = new Map(shareXs.map((x, i) => [x, i]))
  const shareCols = STAGES.map((st) => {
    const col: (number | null)[] = shareXs.map(() => null)
    for (const r of d.shares) if (r.stage === st) col[shareAt.get(epochSeconds(r.bucket)!)!] = num(r.share)
    return { label: st, color: STAGE_COLORS[st]!, values: col }
  })
  const top = bottlenecks(d)
  const maxShare = Math.max(0.0001, ...top.map((r) => num(r.share_of_total)))
  const csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>${esc(d.title)} ${esc(iso(d.fromS))} – ${esc(iso(d.toS))}</title>
<style>${CSS}</style>
</head>
<body>
<header>
<h1>${esc(d.title)}</h1>
<p class="meta">${esc(iso(d.fromS))} → ${esc(iso(d.toS))} (${duration(d.toS - d.fromS)})${d.run ? ` · run <code>${esc(d.run)}</code>` : ''}${d.source ? ` · ${esc(d.source)}` : ''} · generated ${esc(d.generatedAt)}</p>
</header>
<main>
<h2>Summary</h2>
<ul class="summary">${headline(d)
    .map((l) => `<li>${esc(l)}</li>`)
    .join('')}</ul>
<h2>Alerts</h2>
${d.alerts.length ? d.alerts.map(alertHtml).join('\n') : '<p class="meta">No alert was active in this range.</p>'}
<h2>Throughput and tail latency</h2>
${svgTimeChart({
  title: 'Requests per second, all models (shaded: alerts)',
  xs: s.xs,
  fromS: d.fromS,
  toS: d.toS,
  bands,
  series: [
    { label: 'requests/s', color: PALETTE[0]!, values: s.rps },
    { label: 'errors/s', color: '#d62830', values: s.errorsPerS },
  ],
  formatY: (v) => fixed(v, 1),
})}
${svgTimeChart({ title: 'p99 latency per model, worst instance (ms)', xs: s.xs, fromS: d.fromS, toS: d.toS, bands, series: models.map((m, i) => ({ label: m, color: PALETTE[i % PALETTE.length]!, values: s.p99ByModel.get(m)! })), formatY: (v) => fixed(v, 1) })}
${htmlTable(...modelColumns(lines, 'html'))}
<h2>Top bottlenecks by stage and model</h2>
<p class="meta">Share of request time each stage took over the range (exact percentiles).</p>
${htmlTable(
  ['model', 'stage', 'share of request time', '>p50', '>p95', '>p99', '>mean'],
  top.map((r) => [
    esc(r.model),
    `<span class="sw" style="background:${STAGE_COLORS[String(r.stage)] ?? '#999'}"></span>${esc(r.stage)}`,
    `${pct(r.share_of_total)}<span class="bar" style="width:${Math.round((num(r.share_of_total) / maxShare) * 160)}px"></span>`,
    ms(r.p50_ms),
    ms(r.p95_ms),
    ms(r.p99_ms),
    ms(r.mean_ms),
  ]),
)}
${svgTimeChart({ title: 'Share of request time by stage over time, all models (stacked)', xs: shareXs, fromS: d.fromS, toS: d.toS, bands, series: shareCols, stacked: true, yMax: 1, formatY: (v) => `${Math.round(v * 100)} %` })}
<h2>Hardware use</h2>
${
  d.hardware.length
    ? htmlTable(...hardwareColumns(d, 'html'))
    : '<p class="meta">No hardware samples in this range.</p>'
}
${costHtml(d)}
</main>
<footer>Made by <code>breakid report ${esc(madeBy(d))}</code> from the named queries stage-breakdown, fleet-over-time, stage-shares-over-time, alerts-in-range, request and hardware-summary${d.cost ? ' and run-cost' : ''}${d.run ? ' (the range of the run: runs)' : ''}. CPU figures are CPU-seconds per second; PSI is the share of time tasks waited (some, 10 s average).</footer>
</body>
</html>
`
}

/** The per-model table of both report formats (the model name escaped for HTML). */
function modelColumns(lines: readonly ModelLine[], format: 'html' | 'md'): [string[], string[][]] {
  const head = ['model', '>requests', '>requests/s', '>error rate', '>p50', '>p95', '>p99', '>mean']
  const rows = lines.map((l) => [
    format === 'html' ? esc(l.model) : l.model,
    l.requests.toLocaleString('en-US'),
    fixed(l.rps, 1),
    l.requests ? pct(l.errors / l.requests) : '–',
    ms(l.p50),
    ms(l.p95),
    ms(l.p99),
    ms(l.mean),
  ])
  return [head, rows]
}

/**
 * The hardware table of both report formats: HTML with units in the cells and two more columns
 * (event loop, in flight), Markdown with units in the header.
 */
function hardwareColumns(d: ReportData, format: 'html' | 'md'): [string[], string[][]] {
  const html = format === 'html'
  const unit = (v: string, u: string) => (html ? `${v} ${u}` : v)
  const head = [
    'instance',
    '>samples',
    html ? '>executor busy mean / max' : '>busy mean / max',
    '>process CPU',
    '>host CPU',
    html ? '>peak RSS' : '>peak RSS MiB',
    '>device util.',
    html ? '>power' : '>power W',
    html ? '>PSI cpu / mem / io max' : '>PSI cpu/mem/io max %',
    ...(html ? ['>event loop p99 max', '>in flight max'] : []),
  ]
  const rows = d.hardware.map((h) => [
    html ? esc(h.instance) : String(h.instance),
    fixed(h.samples, 0),
    `${pct(h.busy_mean)} / ${pct(h.busy_max)}`,
    fixed(h.process_cpu_mean, 2),
    fixed(h.host_cpu_mean, 2),
    unit(fixed(h.rss_max_mib, 0), 'MiB'),
    h.device_utilization_mean === null ? '–' : pct(h.device_utilization_mean),
    h.power_mean_w === null ? '–' : unit(fixed(h.power_mean_w, 0), 'W'),
    unit(
      `${fixed(h.psi_cpu_some_max, 1)} / ${fixed(h.psi_memory_some_max, 1)} / ${fixed(h.psi_io_some_max, 1)}`,
      '%',
    ),
    ...(html ? [ms(h.event_loop_p99_max_ms), fixed(h.in_flight_max, 0)] : []),
  ])
  return [head, rows]
}

function costColumns(d: ReportData): { head: Head; rows: string[][] } {
  const c = d.cost!.currency
  return {
    head: ['instance', 'type', '>billed', '>cost', '>per 1,000 answered', '>idle executor', '>of it starved'],
    // plain text: the HTML renderer escapes it, Markdown takes it as it is
    rows: d.cost!.rows.map((r) => [
      String(r.instance ?? '–'),
      String(r.instance_type || '–'),
      `${fixed(r.billed_s, 0)} s`,
      money(num(r.cost), c),
      r.cost_per_1k === null || r.cost_per_1k === undefined ? '–' : money(num(r.cost_per_1k), c),
      money(num(r.idle_cost), c),
      money(num(r.starved_cost), c),
    ]),
  }
}

function costHtml(d: ReportData): string {
  if (!d.cost) return ''
  const { head, rows } = costColumns(d)
  return `<h2>Cost</h2>\n<p class="meta">From the configured pricing (run-cost): billed time per instance, idle executor time and the part of it inside accelerator_starved alerts.</p>\n${htmlTable(
    head,
    rows.map((r) => r.map((c) => escapeHtml(c))),
  )}`
}

// ---------------------------------------------------------------------------------------------------
// Markdown

/** a table cell: pipes escaped, line breaks folded */
function cell(v: unknown): string {
  return String(v ?? '–')
    .replace(/\|/g, '\\|')
    .replace(/\r?\n/g, ' ')
}

function mdTable(head: Head, rows: string[][]): string {
  const align = head.map((h) => (isNumeric(h) ? '---:' : '---'))
  const names = head.map(labelOf)
  return [
    `| ${names.join(' | ')} |`,
    `| ${align.join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ].join('\n')
}

export function renderMarkdown(d: ReportData): string {
  const lines = modelLines(d)
  const s = series(d)
  const out: string[] = []
  out.push(
    `# ${d.title}`,
    '',
    `${iso(d.fromS)} → ${iso(d.toS)} (${duration(d.toS - d.fromS)})${d.run ? ` · run \`${d.run}\`` : ''}${d.source ? ` · ${d.source}` : ''} · generated ${d.generatedAt}`,
    '',
    '## Summary',
    '',
    ...headline(d).map((l) => `- ${l}`),
    '',
    '## Alerts',
    '',
  )
  if (d.alerts.length === 0) out.push('No alert was active in this range.', '')
  for (const a of d.alerts) {
    const r = a.row
    out.push(
      `### ${String(r.type)} — ${String(r.status)}, ${String(r.severity)}`,
      '',
      cell(r.summary),
      '',
      `- where: ${cell(r.instance)} / ${cell(r.model)}, stage ${cell(r.stage)}`,
      `- when: ${iso(a.startS)} → ${a.endS ? `${iso(a.endS)} (${duration(a.endS - a.startS)}${r.resolve_reason ? `, ${cell(r.resolve_reason)}` : ''})` : 'still firing'}`,
      `- evidence: \`${cell(r.statistic)}\` baseline ${fixed(r.baseline, 4)}, observed ${fixed(r.observed, 4)}, threshold ${fixed(r.threshold, 4)}`,
      `- suspected cause: ${cell(r.suspected_cause)}`,
      `- **suggested action:** ${cell(r.suggested_action)}`,
      `- related symptoms: ${a.related.length ? a.related.map((x) => `${x.type}${x.stage ? ` (${x.stage})` : ''}`).join(', ') : 'none'}`,
      `- alert id: \`${cell(r.id)}\``,
      '',
    )
    if (a.exemplars.length) {
      out.push(
        mdTable(
          ['request', 'trace', '>total', ...STAGES.map((st) => `>${st}`)],
          a.exemplars.map((x) => [
            `\`${cell(x.request_id)}\``,
            `\`${cell(x.trace_id)}\``,
            ms(num(x.total_us) / 1000),
            ...STAGES.map((st) => ms(num(x[`${st}_us`]) / 1000)),
          ]),
        ),
        '',
      )
    }
  }
  out.push(
    '## Throughput and tail latency',
    '',
    `requests/s \`${sparkline(s.rps)}\` peak ${fixed(Math.max(0, ...s.rps.filter((v): v is number => v !== null)), 1)}`,
    '',
    ...[...s.p99ByModel.entries()].flatMap(([m, col]) => [
      `p99 ${m} \`${sparkline(col)}\` peak ${ms(Math.max(0, ...col.filter((v): v is number => v !== null)))}`,
      '',
    ]),
    mdTable(...modelColumns(lines, 'md')),
    '',
    '## Top bottlenecks by stage and model',
    '',
    mdTable(
      ['model', 'stage', '>share of request time', '>p50', '>p95', '>p99', '>mean'],
      bottlenecks(d).map((r) => [
        String(r.model),
        String(r.stage),
        pct(r.share_of_total),
        ms(r.p50_ms),
        ms(r.p95_ms),
        ms(r.p99_ms),
        ms(r.mean_ms),
      ]),
    ),
    '',
    '## Hardware use',
    '',
  )
  out.push(
    d.hardware.length ? mdTable(...hardwareColumns(d, 'md')) : 'No hardware samples in this range.',
    '',
  )
  if (d.cost) {
    const { head, rows } = costColumns(d)
    out.push('## Cost', '', mdTable(head, rows), '')
  }
  out.push(`_Made by \`breakid report ${madeBy(d)} --format md\`._`, '')
  return out.join('\n')
}
