/**
 * A comparison as text: an aligned table for a terminal, Markdown for a pull-request comment, and
 * JSON (everything, for machines). Each stage row shows p50/p95/p99/mean as baseline → candidate
 * with the ratio's confidence interval, the rank test and the verdict.
 */
import { type Comparison, type CompareRow, describeContention, type StageRow } from './compare.ts'
import type { CostRow } from './cost.ts'
import { SUMMARY_STATS } from './stats.ts'

export const COMPARE_FORMATS = ['table', 'markdown', 'json'] as const
export type CompareFormat = (typeof COMPARE_FORMATS)[number]

export interface CompareReportInput {
  baseline: string
  candidate: string
  comparison: Comparison
  /** cost per selection, when pricing is configured */
  cost?: { baseline: CostRow[]; candidate: CostRow[]; currency: string }
}

const ms = (x: number) =>
  Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)) : '-'
const ratio = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '∞')
const pct = (x: number) => `${(x * 100).toFixed(2)}%`

function statCell(row: StageRow, s: (typeof SUMMARY_STATS)[number]): string {
  const c = row.stats[s]
  return `${ms(c.baseline)}→${ms(c.candidate)} ×${ratio(c.ratio.estimate)} [${ratio(c.ratio.lo)},${ratio(c.ratio.hi)}]`
}

function rankCell(row: StageRow): string {
  const p = row.mannWhitney.p
  return `p=${p < 1e-4 ? p.toExponential(0) : p.toFixed(4)} δ=${row.mannWhitney.cliffsDelta.toFixed(2)}`
}

function cells(row: CompareRow): string[] {
  if (row.kind === 'stage') {
    return [
      row.model,
      row.stage,
      `${row.baselineRequests}/${row.candidateRequests}`,
      ...SUMMARY_STATS.map((s) => statCell(row, s)),
      rankCell(row),
      row.verdict,
    ]
  }
  if (row.kind === 'throughput') {
    return [
      row.model,
      'throughput (ok/s)',
      '',
      `${row.baseline.toFixed(1)}→${row.candidate.toFixed(1)} ×${ratio(row.ratio.estimate)} [${ratio(row.ratio.lo)},${ratio(row.ratio.hi)}]`,
      '',
      '',
      '',
      '',
      row.verdict,
    ]
  }
  return [
    row.model,
    'error rate',
    `${row.baselineRequests}/${row.candidateRequests}`,
    `${pct(row.baseline)}→${pct(row.candidate)}`,
    '',
    '',
    '',
    `p=${row.p < 1e-4 ? row.p.toExponential(0) : row.p.toFixed(4)}`,
    row.verdict,
  ]
}

const HEADER = [
  'model',
  'stage',
  'n base/cand',
  'p50 ms',
  'p95 ms',
  'p99 ms',
  'mean ms',
  'Mann–Whitney',
  'verdict',
]

function headline(r: CompareReportInput): string {
  const c = r.comparison
  const o = c.options
  const names = (rows: CompareRow[]) =>
    rows.map((x) => `${x.model}/${x.kind === 'stage' ? x.stage : x.kind}`).join(', ')
  const unsure = c.rows.filter((x) => x.verdict === 'inconclusive')
  const what =
    c.regressions.length > 0
      ? `REGRESSION in ${names(c.regressions)}`
      : [
          c.improvements.length > 0
            ? `no regression; improved: ${names(c.improvements)}`
            : unsure.length > 0
              ? 'no regression'
              : 'no change',
          unsure.length > 0 ? `inconclusive (busier host): ${names(unsure)}` : '',
        ]
          .filter((x) => x !== '')
          .join('; ')
  const rule =
    `threshold ×${(1 + o.threshold).toFixed(2)} and +${o.minEffectMs} ms at ${(o.confidence * 100).toFixed(0)}% confidence ` +
    `on ${o.gate.join(', ')}; warm-up ${o.warmupMs / 1000} s dropped, ${o.blockMs / 1000} s blocks`
  const k = c.contention
  const inconclusive = c.rows.filter((x) => x.verdict === 'inconclusive').length
  const host =
    k.baseline === null && k.candidate === null
      ? 'host load: not reported by the hardware samples'
      : `host load: ${describeContention(k)}` +
        (k.busier === 'neither'
          ? ''
          : ` — ${k.busier === 'both' ? 'both runs were short of CPU' : `the ${k.busier}'s host was busier`}` +
            (inconclusive > 0
              ? `; ${inconclusive} row(s) inconclusive: rerun on a quieter machine to judge them`
              : '; no row needed the allowance'))
  return `${what}\nbaseline ${r.baseline}  vs  candidate ${r.candidate}  (${rule})\n${host}`
}

function costLines(r: CompareReportInput): string[][] {
  if (!r.cost) return []
  const sum = (rows: CostRow[], k: keyof CostRow) => rows.reduce((s, x) => s + (Number(x[k]) || 0), 0)
  const per1k = (rows: CostRow[]) => {
    const ok = sum(rows, 'ok')
    return ok > 0 ? (sum(rows, 'cost') / ok) * 1000 : Number.NaN
  }
  const fmt = (x: number) => (Number.isFinite(x) ? x.toPrecision(3) : '-')
  const cur = r.cost.currency
  return [
    ['', 'baseline', 'candidate'],
    [`cost per 1,000 inferences (${cur})`, fmt(per1k(r.cost.baseline)), fmt(per1k(r.cost.candidate))],
    [
      `executor idle (${cur})`,
      fmt(sum(r.cost.baseline, 'idle_cost')),
      fmt(sum(r.cost.candidate, 'idle_cost')),
    ],
    [
      `  of it starved (${cur})`,
      fmt(sum(r.cost.baseline, 'starved_cost')),
      fmt(sum(r.cost.candidate, 'starved_cost')),
    ],
    [
      `cache saved compute (${cur})`,
      fmt(sum(r.cost.baseline, 'cache_saved_cost')),
      fmt(sum(r.cost.candidate, 'cache_saved_cost')),
    ],
  ]
}

function aligned(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}

function markdownTable(rows: string[][]): string {
  const esc = (c: string) => c.replace(/\|/g, '\\|')
  const [head, ...body] = rows
  return [
    `| ${head!.map(esc).join(' | ')} |`,
    `| ${head!.map(() => '---').join(' | ')} |`,
    ...body.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n')
}

export function renderComparison(r: CompareReportInput, format: CompareFormat): string {
  const c = r.comparison
  if (format === 'json') {
    return JSON.stringify(
      {
        baseline: r.baseline,
        candidate: r.candidate,
        verdict:
          c.regressions.length > 0 ? 'regression' : c.improvements.length > 0 ? 'improvement' : 'no change',
        ...c,
        cost: r.cost,
      },
      null,
      2,
    )
  }
  const notes: string[] = []
  if (c.onlyInBaseline.length > 0)
    notes.push(`only in the baseline (not compared): ${c.onlyInBaseline.join(', ')}`)
  if (c.onlyInCandidate.length > 0)
    notes.push(`only in the candidate (not compared): ${c.onlyInCandidate.join(', ')}`)
  if (c.rows.length === 0)
    notes.push('nothing to compare: no model has requests in both selections after the warm-up')
  const table = [HEADER, ...c.rows.map(cells)]
  const reasons = c.rows.flatMap((row) =>
    row.kind === 'stage' && row.reasons.length > 0
      ? [`${row.model}/${row.stage} ${row.verdict}: ${row.reasons.join('; ')}`]
      : [],
  )
  const cost = costLines(r)
  if (format === 'markdown') {
    const [first, second, third] = headline(r).split('\n')
    const icon = c.regressions.length > 0 ? '❌' : '✅'
    return [
      `### ${icon} breakid compare: ${first}`,
      '',
      `${second}`,
      '',
      `${third}`,
      '',
      markdownTable(table),
      ...(reasons.length > 0 ? ['', ...reasons.map((x) => `- ${x}`)] : []),
      ...(cost.length > 0 ? ['', markdownTable(cost)] : []),
      ...(notes.length > 0 ? ['', ...notes.map((x) => `> ${x}`)] : []),
      '',
      '<sub>cells: baseline→candidate, ×ratio [confidence interval of the ratio, block bootstrap]; Mann–Whitney U p-value and Cliff’s δ (candidate vs baseline)</sub>',
    ].join('\n')
  }
  return [
    headline(r),
    '',
    aligned(table),
    ...(reasons.length > 0 ? ['', ...reasons] : []),
    ...(cost.length > 0 ? ['', aligned(cost)] : []),
    ...(notes.length > 0 ? ['', ...notes] : []),
  ].join('\n')
}
