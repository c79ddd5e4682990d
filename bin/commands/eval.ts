/**
 * `breakid eval`: runs the scenario suite (eval/) through the live detector set, scores it
 * against ground truth and writes bench/results/eval.{md,json}. Exits 0 when every target is met,
 * 3 when the run completed but a target is missed (so CI can tell a regression from a crash).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { machineInfo } from '../../core/machine.ts'
import { type LiveMode, runEval } from '../../eval/harness.ts'
import { formatJson, reportJson, reportMarkdown, summaryTable } from '../../eval/report.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { parsePositive } from '../../app/flags.ts'
import type { Command } from '../command.ts'
import { defaultDetectors } from '../../app/pipeline.ts'

const LIVE_MODES: readonly LiveMode[] = ['none', 'faults', 'all']

export const evalCommand: Command = {
  summary: 'score the detectors on a suite of synthetic scenarios with ground truth',
  usage: 'breakid eval [--live faults|all|none] [--clean-hours 10] [--filter NAME] [--out bench/results]',
  options: {
    live: { type: 'string', default: 'faults' },
    'clean-hours': { type: 'string', default: '10' },
    filter: { type: 'string' },
    grace: { type: 'string', default: '30' },
    out: { type: 'string', default: 'bench/results' },
    quiet: { type: 'boolean', default: false },
    'compare-offline': { type: 'boolean', default: false },
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
  },
  async run({ values }) {
    const live = String(values.live) as LiveMode
    if (!LIVE_MODES.includes(live))
      throw new InvalidInputError(`--live: expected one of ${LIVE_MODES.join(', ')}`)
    const cleanInstanceHours = parsePositive(values['clean-hours'], 'clean-hours', { max: 1000 })
    const graceS = parsePositive(values.grace, 'grace', { max: 3600 })
    const report = await runEval({
      detectors: defaultDetectors,
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
    process.stdout.write(`\nreport: ${join(out, 'eval.md')}, ${join(out, 'eval.json')}\n`)
    return report.score.pass ? 0 : 3
  },
}
