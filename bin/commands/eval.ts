/**
 * `breakid eval`: runs the scenario suite (eval/) through the live detector set, scores it
 * against ground truth and writes bench/results/eval.{md,json}. Exits 0 when every target is met,
 * 3 when the run completed but a target is missed (so CI can tell a regression from a crash).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { replayDetections } from '../../app/corpus-eval.ts'
import { buildCorpus } from '../../eval/corpus/corpus.ts'
import {
  corpusReportJson,
  corpusReportMarkdown,
  evaluateCorpus,
  formatJson as formatCorpusJson,
} from '../../eval/corpus/evaluate.ts'
import { machineInfo } from '../../core/machine.ts'
import { type LiveMode, runEval } from '../../eval/harness.ts'
import { formatJson, reportJson, reportMarkdown, summaryTable } from '../../eval/report.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { parsePositive } from '../../app/flags.ts'
import type { Command } from '../command.ts'
import { loadConfig } from '../../app/config.ts'
import { defaultDetectors } from '../../app/pipeline.ts'

const LIVE_MODES: readonly LiveMode[] = ['none', 'faults', 'all']

export const evalCommand: Command = {
  summary: 'score the detectors on a suite of synthetic scenarios with ground truth',
  usage:
    'breakid eval [--live faults|all|none] [--clean-hours 10] [--filter NAME] [--out bench/results]   |   ' +
    'breakid eval --corpus [--corpus-dir .breakid/corpus] [--part tuning|held-out|all] [--name corpus-score]',
  options: {
    live: { type: 'string', default: 'faults' },
    'clean-hours': { type: 'string', default: '10' },
    filter: { type: 'string' },
    grace: { type: 'string', default: '30' },
    out: { type: 'string', default: 'bench/results' },
    quiet: { type: 'boolean', default: false },
    'compare-offline': { type: 'boolean', default: false },
    corpus: { type: 'boolean', default: false },
    'corpus-dir': { type: 'string', default: '.breakid/corpus' },
    part: { type: 'string', default: 'all' },
    name: { type: 'string', default: 'corpus-score' },
    before: { type: 'string' },
    'no-held-out': { type: 'boolean', default: false },
  },
  help: {
    live: 'scenarios run through bus → detector consumer → webhook notifier → receiver: faults (default), all, none',
    'clean-hours':
      'instance-hours of clean traffic (ramps, bursts, diurnal) for the false-alert rate (default 10)',
    filter: 'only scenarios whose name contains this (the report then covers those only)',
    grace: 'seconds after a fault ends during which a starting alert still counts (default 30)',
    out: 'folder for eval.md and eval.json (default bench/results)',
    quiet: 'no per-scenario progress lines',
    'compare-offline': 'also run live scenarios offline and check both give the same alerts (slower)',
    corpus:
      'instead of the scenarios: the generic detector on the labelled corpus (eval/corpus), window score, tuning and held-out side by side',
    'corpus-dir': 'where the corpus CSV files and labels.json are written (default .breakid/corpus)',
    part: 'corpus part to run: tuning, held-out or all (default all)',
    name: 'corpus report file name under --out, without extension (default corpus-score)',
    before:
      'an earlier corpus report (JSON) to print side by side, e.g. bench/results/corpus-score-before.json',
    'no-held-out': 'skip the held-out scenarios (scored by default, never tuned on)',
  },
  async run({ values }) {
    if (values.corpus === true) return runCorpus(values)
    const live = String(values.live) as LiveMode
    if (!LIVE_MODES.includes(live))
      throw new InvalidInputError(`--live: expected one of ${LIVE_MODES.join(', ')}`)
    const cleanInstanceHours = parsePositive(values['clean-hours'], 'clean-hours', { max: 1000 })
    const graceS = parsePositive(values.grace, 'grace', { max: 3600 })
    const cfg = loadConfig(values)
    const report = await runEval({
      detectors: () => defaultDetectors(cfg.detectors),
      heldOut: values['no-held-out'] !== true,
      live,
      cleanInstanceHours,
      graceS,
      compareOffline: values['compare-offline'] === true,
      filter: values.filter === undefined ? undefined : String(values.filter),
      log: values.quiet ? undefined : (line) => process.stdout.write(`${line}\n`),
    })
    const machine = machineInfo()
    const out = String(values.out)
    mkdirSync(out, { recursive: true })
    writeFileSync(join(out, 'eval.json'), `${formatJson(reportJson(report, machine))}\n`)
    writeFileSync(join(out, 'eval.md'), reportMarkdown(report, machine))
    process.stdout.write(`\n${summaryTable(report)}\n\nper fault type:\n`)
    for (const p of report.score.perType) {
      process.stdout.write(
        `  ${p.type.padEnd(22)} ${p.detected}/${p.faults} detected` +
          `${p.delayP95S === null ? '' : `, delay p95 ${p.delayP95S.toFixed(1)} s`}` +
          `${Object.keys(p.matchedBy).length ? ` by ${Object.keys(p.matchedBy).join(', ')}` : ''}\n`,
      )
    }
    process.stdout.write('\npages per incident type (strict, in-sample):\n')
    for (const p of report.pages.inSample.perType) {
      process.stdout.write(
        `  ${p.type.padEnd(22)} ${p.detected}/${p.incidents} right, ${p.pagesPerIncident.toFixed(2)} pages per incident` +
          ` (${Object.entries(p.pagedBy)
            .map(([k, v]) => `${k} ×${v}`)
            .join(', ')})\n`,
      )
    }
    process.stdout.write(`\nreport: ${join(out, 'eval.md')}, ${join(out, 'eval.json')}\n`)
    return report.score.pass && report.pages.inSample.pass ? 0 : 3
  },
}

async function runCorpus(values: Record<string, unknown>): Promise<number> {
  const part = String(values.part)
  if (part !== 'tuning' && part !== 'held-out' && part !== 'all')
    throw new InvalidInputError('--part: expected tuning, held-out or all')
  const corpus = buildCorpus({
    split: part === 'all' ? undefined : part,
    filter: values.filter === undefined ? undefined : String(values.filter),
  })
  const report = await evaluateCorpus(
    corpus,
    String(values['corpus-dir']),
    replayDetections,
    'the live detector set as `breakid replay --file` runs it (series detector: anomaly)',
  )
  const machine = machineInfo()
  const out = String(values.out)
  mkdirSync(out, { recursive: true })
  const beforePath = values.before === undefined ? undefined : String(values.before)
  let before: { label: string; json: unknown } | undefined
  if (beforePath !== undefined) {
    if (!existsSync(beforePath)) throw new InvalidInputError(`--before: ${beforePath} does not exist`)
    before = { label: `before (${beforePath})`, json: JSON.parse(readFileSync(beforePath, 'utf8')) }
  }
  const name = String(values.name)
  writeFileSync(join(out, `${name}.json`), `${formatCorpusJson(corpusReportJson(report, machine))}\n`)
  writeFileSync(join(out, `${name}.md`), corpusReportMarkdown(report, machine, before))
  if (!values.quiet) {
    for (const r of report.runs) {
      const d = r.detectionsUs.length
      process.stdout.write(
        `  ${r.series.name.padEnd(20)} ${r.series.split.padEnd(9)} ${String(d).padStart(5)} alert(s)\n`,
      )
    }
  }
  process.stdout.write(
    '\npart       series  windows  detected  false alerts   score  (never alerts 0, perfect 100)\n',
  )
  for (const p of report.parts) {
    process.stdout.write(
      `${p.part.padEnd(10)} ${String(p.series).padStart(6)} ${String(p.score.windows).padStart(8)} ` +
        `${String(p.score.detected).padStart(9)} ${String(p.score.falsePositives).padStart(13)} ` +
        `${p.score.normalized.toFixed(1).padStart(7)}  (${p.silent.toFixed(0)}, ${p.perfect.toFixed(0)})\n`,
    )
  }
  process.stdout.write(`\nreport: ${join(out, `${name}.md`)}, ${join(out, `${name}.json`)}\n`)
  return 0
}
