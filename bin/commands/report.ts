/**
 * `breakid report`: a self-contained HTML (or Markdown) report of a time range for an incident
 * ticket (dashboard/report.ts). Like `breakid query`, it asks a running `up`/`dashboard`/`collect`
 * that holds the data directory, else opens the store itself.
 */
import { writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { InvalidInputError } from '../../core/errors.ts'
import { gatherReport, type QueryRunner, renderHtml, renderMarkdown } from '../../dashboard/report.ts'
import { runNamedQuery } from '../../queries/runner.ts'
import { loadConfig } from '../../app/config.ts'
import { costFigure, queryLimits } from '../../app/access.ts'
import type { Command } from '../command.ts'
import { runningUp, viaRunningUp, withStore } from './query.ts'

export const report: Command = {
  summary: 'write a self-contained HTML (or Markdown) report of a time range for an incident ticket',
  usage:
    'breakid report (--from <time> [--to now] | --run <id>) [--format html|md] [--out file|-] [--title text]',
  options: {
    from: { type: 'string' },
    to: { type: 'string' },
    run: { type: 'string' },
    format: { type: 'string', default: 'html' },
    out: { type: 'string' },
    title: { type: 'string' },
  },
  help: {
    from: 'start of the range: ISO 8601, epoch seconds or ms, or relative (--from=-30m; default -1h)',
    to: 'end of the range (default now)',
    run: 'a run id (printed by up, serve and loadgen; breakid query runs lists them) instead of a range: its first to last request',
    format: 'html (default: one file, inline CSS and SVG, no external fetches) or md',
    out: 'file to write (default breakid-report-<from>.<html|md> here); - writes to stdout',
    title: 'heading of the report (default "breakid incident report")',
  },
  async run({ values }) {
    const cfg = loadConfig(values)
    const format = String(values.format)
    if (format !== 'html' && format !== 'md') throw new InvalidInputError('--format: expected html or md')
    const optional = (v: unknown) => (v === undefined ? undefined : String(v))
    const request = {
      from: optional(values.from),
      to: optional(values.to),
      run: optional(values.run),
      title: optional(values.title),
      cost: costFigure(cfg),
    }
    const up = runningUp(cfg)
    const source = cfg.clickhouseUrl ? `ClickHouse ${new URL(cfg.clickhouseUrl).host}` : `chDB ${cfg.dataDir}`
    const data = up
      ? await gatherReport(
          (name, params) => viaRunningUp(cfg, up, `/api/queries/${encodeURIComponent(name)}`, params),
          { ...request, source },
        )
      : await withStore(cfg, (ch) => {
          const run: QueryRunner = (name, params) =>
            runNamedQuery(ch, name, params, { limits: queryLimits(cfg) })
          return gatherReport(run, { ...request, source })
        })
    const text = format === 'html' ? renderHtml(data) : renderMarkdown(data)
    const stamp = `${new Date(data.fromS * 1000).toISOString().slice(0, 19).replace(/[-:]/g, '')}Z`
    const out =
      values.out === undefined ? `breakid-report-${request.run ?? stamp}.${format}` : String(values.out)
    if (out === '-') {
      process.stdout.write(text)
      return 0
    }
    writeFileSync(out, text)
    process.stderr.write(
      `breakid report: wrote ${resolve(out)} (${text.length.toLocaleString('en-US')} bytes; ${data.alerts.length} alerts, ${data.fleet.reduce((a, r) => a + Number(r.requests ?? 0), 0).toLocaleString('en-US')} requests)\n`,
    )
    return 0
  },
}
