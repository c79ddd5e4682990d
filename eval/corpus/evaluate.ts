/**
 * Scores a detector on the labelled corpus with the window score (eval/window-score.ts), the tuning
 * and the held-out part apart, and renders the report (`bench/results/corpus-score.{json,md}`).
 * The detector is a function from a written CSV file to its detection times, so what is scored is
 * what `breakid replay --file` does with the file (app/corpus-eval.ts passes the replay path).
 */
import { formatJson } from '../report.ts'
import {
  type CorpusScore,
  perfectDetections,
  type SeriesScore,
  scoreCorpus,
  scoreSeries,
} from '../window-score.ts'
import { type CorpusSeries, type CorpusSplit, writeCorpus } from './corpus.ts'

/** A detector under test: the CSV file of one series → when it raised each alert (µs). */
export type DetectFile = (csvPath: string) => Promise<number[]>

export interface SeriesRun {
  series: CorpusSeries
  detectionsUs: number[]
  /** wall time of the detector on this file, ms (parsing included) */
  wallMs: number
}

export interface PartScore {
  part: CorpusSplit | 'all'
  series: number
  points: number
  score: CorpusScore
  /** the same scorer on the perfect detector's detections (must be 100) */
  perfect: number
  /** and on no detections (must be 0) */
  silent: number
}

export interface CorpusReport {
  generatedAt: string
  detector: string
  parts: PartScore[]
  runs: SeriesRun[]
  /** per window kind and part: windows and how many were detected */
  byKind: { kind: string; part: CorpusSplit; windows: number; detected: number }[]
  /** per family and part: false alerts and score */
  byFamily: (FamilyCounts & { normalized: number | null })[]
  wallMs: number
}

/** What a family scored in one part of the corpus. */
export interface FamilyCounts {
  family: string
  part: CorpusSplit
  series: number
  windows: number
  detected: number
  falseAlerts: number
  raw: number
}

interface FamilyTotals extends FamilyCounts {
  nullRaw: number
  perfectRaw: number
}

export async function evaluateCorpus(
  corpus: readonly CorpusSeries[],
  dir: string,
  detect: DetectFile,
  detector: string,
): Promise<CorpusReport> {
  const paths = writeCorpus(dir, corpus)
  const runs: SeriesRun[] = []
  const t0 = performance.now()
  for (let i = 0; i < corpus.length; i++) {
    const start = performance.now()
    const detectionsUs = await detect(paths[i]!)
    runs.push({ series: corpus[i]!, detectionsUs, wallMs: performance.now() - start })
  }
  const wallMs = performance.now() - t0
  const parts: PartScore[] = (['tuning', 'held-out', 'all'] as const).map((part) => {
    const chosen = runs.filter((r) => part === 'all' || r.series.split === part)
    const toScore = chosen.map((r) => ({
      name: r.series.name,
      timestampsUs: r.series.timestampsUs,
      windows: r.series.windows,
      detectionsUs: r.detectionsUs,
    }))
    return {
      part,
      series: chosen.length,
      points: chosen.reduce((a, r) => a + r.series.values.length, 0),
      score: scoreCorpus(toScore),
      perfect: scoreCorpus(toScore.map((s) => ({ ...s, detectionsUs: perfectDetections(s) }))).normalized,
      silent: scoreCorpus(toScore.map((s) => ({ ...s, detectionsUs: [] }))).normalized,
    }
  })
  const byKind = new Map<string, { kind: string; part: CorpusSplit; windows: number; detected: number }>()
  const byFamily = new Map<string, FamilyTotals>()
  for (const r of runs) {
    const s = scoreSeries({ ...r.series, detectionsUs: r.detectionsUs })
    const part = r.series.split
    // windows ending in probation are not scored; the rest keep their order
    const scoredKinds = r.series.windows.filter((w) => w.endUs >= r.series.timestampsUs[s.probationPoints]!)
    const detectedWindows = new Set(s.detections.filter((d) => d.kind === 'tp').map((d) => d.window))
    scoredKinds.forEach((w, k) => {
      const key = `${part}/${w.kind}`
      const e = byKind.get(key) ?? { kind: w.kind, part, windows: 0, detected: 0 }
      e.windows++
      if (detectedWindows.has(k)) e.detected++
      byKind.set(key, e)
    })
    const fkey = `${part}/${r.series.family}`
    const f = byFamily.get(fkey) ?? {
      family: r.series.family,
      part,
      series: 0,
      windows: 0,
      detected: 0,
      falseAlerts: 0,
      raw: 0,
      nullRaw: 0,
      perfectRaw: 0,
    }
    f.series++
    f.windows += s.windows
    f.detected += s.detected
    f.falseAlerts += s.falsePositives
    f.raw += s.raw
    f.nullRaw += s.nullRaw
    f.perfectRaw += s.perfectRaw
    byFamily.set(fkey, f)
  }
  return {
    generatedAt: new Date().toISOString(),
    detector,
    parts,
    runs,
    byKind: [...byKind.values()].sort((a, b) => a.part.localeCompare(b.part) || a.kind.localeCompare(b.kind)),
    byFamily: [...byFamily.values()]
      .map(({ nullRaw, perfectRaw, ...f }) => ({
        ...f,
        normalized: perfectRaw > nullRaw ? (100 * (f.raw - nullRaw)) / (perfectRaw - nullRaw) : null,
      }))
      .sort((a, b) => a.part.localeCompare(b.part) || a.family.localeCompare(b.family)),
    wallMs,
  }
}

const r1 = (x: number) => Math.round(x * 10) / 10
const r3 = (x: number) => Math.round(x * 1000) / 1000

function seriesRow(r: SeriesRun, s: SeriesScore) {
  return {
    name: r.series.name,
    family: r.series.family,
    split: r.series.split,
    points: s.points,
    intervalS: r.series.intervalS,
    windows: s.windows,
    detected: s.detected,
    falseAlerts: s.falsePositives,
    alerts: r.detectionsUs.length,
    raw: r3(s.raw),
    normalized: s.normalized === null ? null : r1(s.normalized),
    wallMs: r1(r.wallMs),
  }
}

export function corpusReportJson(
  report: CorpusReport,
  machine: Record<string, unknown>,
  before?: unknown,
): Record<string, unknown> {
  return {
    machine,
    generatedAt: report.generatedAt,
    detector: report.detector,
    profile: report.parts[0]?.score.profile,
    parts: report.parts.map((p) => ({
      part: p.part,
      series: p.series,
      points: p.points,
      windows: p.score.windows,
      detected: p.score.detected,
      falseAlerts: p.score.falsePositives,
      raw: r3(p.score.raw),
      nullRaw: r3(p.score.nullRaw),
      perfectRaw: r3(p.score.perfectRaw),
      score: r1(p.score.normalized),
      silentDetectorScore: r1(p.silent),
      perfectDetectorScore: r1(p.perfect),
    })),
    byKind: report.byKind,
    byFamily: report.byFamily.map((f) => ({
      ...f,
      raw: r3(f.raw),
      normalized: f.normalized === null ? null : r1(f.normalized),
    })),
    series: report.runs.map((r) => seriesRow(r, scoreSeries({ ...r.series, detectionsUs: r.detectionsUs }))),
    wallMs: Math.round(report.wallMs),
    ...(before === undefined ? {} : { before }),
  }
}

export { formatJson }

interface PartRow {
  part: string
  score: number
  windows: number
  detected: number
  falseAlerts: number
  series: number
}

/** Reads the parts of an earlier report (corpus-score JSON) for the side-by-side table. */
export function partsOf(json: unknown): PartRow[] | undefined {
  if (typeof json !== 'object' || json === null) return undefined
  const parts = (json as { parts?: unknown }).parts
  if (!Array.isArray(parts)) return undefined
  return parts as PartRow[]
}

export function corpusReportMarkdown(
  report: CorpusReport,
  machine: Record<string, unknown>,
  before?: { label: string; json: unknown },
): string {
  const j = corpusReportJson(report, machine)
  const parts = j.parts as (PartRow & { silentDetectorScore: number; perfectDetectorScore: number })[]
  const beforeParts = before ? partsOf(before.json) : undefined
  const lines: string[] = [
    '# Generic detector on the labelled corpus (window score)',
    '',
    `Generated ${report.generatedAt} by \`breakid eval --corpus\` on ${String(machine.cpu)} (${String(machine.cores)} cores), ${String(machine.node)}.`,
    `Detector: ${report.detector}. Every series is written as CSV and replayed as \`breakid replay --file\` does.`,
    '',
    'Score: NAB-style window score, standard profile (true positive 1.0, false positive 0.11, missed window 1.0),',
    'first 15 % of each series (at most 750 points) not scored; 0 = a detector that never alerts, 100 = perfect.',
    'The **tuning** part is what thresholds were chosen on (in-sample); the **held-out** part (series whose seed',
    'is divisible by 3, and the two families `gpu-power` and `hit-ratio`) was never tuned on.',
    '',
    '| part | series | windows | detected | false alerts | score | never alerts | perfect |' +
      (beforeParts ? ` ${before!.label} |` : ''),
    '|---|---|---|---|---|---|---|---|' + (beforeParts ? '---|' : ''),
  ]
  for (const p of parts) {
    const b = beforeParts?.find((x) => x.part === p.part)
    lines.push(
      `| ${p.part} | ${p.series} | ${p.windows} | ${p.detected} | ${p.falseAlerts} | **${p.score.toFixed(1)}** | ` +
        `${p.silentDetectorScore.toFixed(1)} | ${p.perfectDetectorScore.toFixed(1)} |` +
        (beforeParts
          ? ` ${b ? `${b.score.toFixed(1)} (${b.detected}/${b.windows} detected, ${b.falseAlerts} false)` : '—'} |`
          : ''),
    )
  }
  lines.push('', '## By kind of anomaly', '', '| part | kind | windows | detected |', '|---|---|---|---|')
  for (const k of report.byKind) lines.push(`| ${k.part} | ${k.kind} | ${k.windows} | ${k.detected} |`)
  lines.push(
    '',
    '## By family',
    '',
    '| part | family | series | windows | detected | false alerts | score |',
    '|---|---|---|---|---|---|---|',
  )
  for (const f of report.byFamily)
    lines.push(
      `| ${f.part} | ${f.family} | ${f.series} | ${f.windows} | ${f.detected} | ${f.falseAlerts} | ` +
        `${f.normalized === null ? `raw ${f.raw.toFixed(2)}` : f.normalized.toFixed(1)} |`,
    )
  lines.push(
    '',
    '## Per series',
    '',
    '| series | part | points | interval | windows | detected | false alerts | alerts | score | replay ms |',
    '|---|---|---|---|---|---|---|---|---|---|',
  )
  for (const s of j.series as ReturnType<typeof seriesRow>[])
    lines.push(
      `| ${s.name} | ${s.split} | ${s.points} | ${s.intervalS} s | ${s.windows} | ${s.detected} | ${s.falseAlerts} | ` +
        `${s.alerts} | ${s.normalized === null ? `raw ${s.raw}` : s.normalized} | ${s.wallMs} |`,
    )
  lines.push(
    '',
    `Total replay time ${(report.wallMs / 1000).toFixed(1)} s for ${parts.at(-1)?.series ?? 0} series.`,
    '',
  )
  return lines.join('\n')
}
