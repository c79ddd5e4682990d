/**
 * `breakid replay`: runs the live detector set over recorded telemetry — a ClickHouse time range or
 * a CSV/NDJSON file — and prints the alerts as NDJSON on stdout, one per line; what was read
 * (rows, skipped rows, sampling interval, columns) goes to stderr. See replay/.
 */
import { clickhouseEvents } from '../../replay/clickhouse-source.ts'
import { readReplayFile } from '../../replay/file-source.ts'
import { replay as runReplay, type ScoredPoint } from '../../replay/replay.ts'
import { SCORE_RESOLUTION } from '../../detectors/anomaly/detector.ts'
import { isoFromMicros } from '../../notify/webhook.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { parseTimeMicros } from '../../queries/params.ts'
import type { Command } from '../command.ts'
import { loadConfig } from '../../app/config.ts'
import { defaultDetectors } from '../../app/pipeline.ts'
import { openStore } from '../../app/runtime.ts'

const note = (line: string) => process.stderr.write(`breakid replay: ${line}\n`)

function interval(us: number | null): string {
  if (us === null) return 'unknown (fewer than two timestamps)'
  if (us >= 60e6) return `${(us / 60e6).toFixed(1)} min`
  if (us >= 1e6) return `${(us / 1e6).toFixed(1)} s`
  return `${(us / 1000).toFixed(0)} ms`
}

export const replay: Command = {
  summary:
    'run the detectors over recorded telemetry (ClickHouse range or CSV/NDJSON file); alerts as NDJSON',
  usage:
    'breakid replay --file data.csv [--instance NAME] [--input-format csv|ndjson] [--scores]   |   breakid replay --from=-1h [--to=now] [--instance NAME]',
  options: {
    file: { type: 'string' },
    from: { type: 'string' },
    to: { type: 'string' },
    'input-format': { type: 'string' },
    'page-rows': { type: 'string', default: '10000' },
    scores: { type: 'boolean', default: false },
  },
  help: {
    file: 'CSV (with header) or NDJSON with a timestamp column (ISO 8601 or epoch s/ms/µs)',
    from: 'ClickHouse source: start of the range (ISO 8601, epoch, or relative like -1h; default -1h)',
    to: 'ClickHouse source: end of the range (default now)',
    'input-format': 'csv or ndjson (default: from the extension, else the first character)',
    'page-rows': 'ClickHouse source: rows per page (default 10000)',
    scores:
      'instead of alerts, one NDJSON line per series point: timestamp, series, instance, value, score (0–1 under the alert policy: ≥ 0.5 exactly where an alert fired), model_score (the model alone, before the policy) and any alert transition there',
  },
  async run({ values }) {
    const cfg = loadConfig(values)
    const detectors = defaultDetectors(cfg.detectors)
    const scores = values.scores === true
    const out = new LineBuffer()
    const onPoint = scores ? (p: ScoredPoint) => out.write(scoreLine(p)) : undefined
    const instance = values.instance === undefined ? undefined : String(values.instance)
    let result: Awaited<ReturnType<typeof runReplay>>
    if (values.file !== undefined) {
      if (values.from !== undefined || values.to !== undefined) {
        throw new InvalidInputError('--file and --from/--to are two different sources: give one')
      }
      const fmt = values['input-format']
      if (fmt !== undefined && fmt !== 'csv' && fmt !== 'ndjson') {
        throw new InvalidInputError('--input-format: expected csv or ndjson')
      }
      const input = readReplayFile(String(values.file), {
        instance,
        fleet: values.fleet === undefined ? undefined : String(values.fleet),
        format: fmt as 'csv' | 'ndjson' | undefined,
      })
      note(
        `${input.rows} rows, ${input.skipped} skipped${input.skippedExamples.length ? ` (${input.skippedExamples.map((e) => `line ${e.line}: ${e.reason}`).join('; ')})` : ''}` +
          `${input.badValues ? `, ${input.badValues} non-numeric values left out` : ''}; ` +
          `sampling interval ${interval(input.intervalUs)}; instances ${input.instances.join(', ')}`,
      )
      note(
        `columns: timestamp=${input.columns.timestamp}; hw=[${input.columns.hw.join(', ')}]; ` +
          `span=[${input.columns.span.join(', ')}]; series=[${input.columns.series.join(', ')}]` +
          `${input.columns.ignored.length ? `; ignored (not numeric)=[${input.columns.ignored.join(', ')}]` : ''}`,
      )
      result = await runReplay(input.events, { detectors, onPoint })
    } else {
      const nowMs = Date.now()
      const time = (v: unknown, fallback: string, flag: string) => {
        const us = parseTimeMicros(String(v ?? fallback), nowMs)
        if (us === undefined) throw new InvalidInputError(`--${flag}: "${String(v)}" is not a time`)
        return us
      }
      const fromUs = time(values.from, '-1h', 'from')
      const toUs = time(values.to, 'now', 'to')
      if (!(toUs > fromUs)) throw new InvalidInputError('--to must be after --from')
      const pageRows = Number(values['page-rows'])
      if (!Number.isInteger(pageRows) || pageRows < 1)
        throw new InvalidInputError('--page-rows: a positive integer')
      const ch = await openStore(cfg)
      try {
        result = await runReplay(clickhouseEvents(ch, { fromUs, toUs, instance, pageRows }), {
          detectors,
          onPoint,
        })
      } finally {
        await ch.close()
      }
      note(`ClickHouse ${new Date(fromUs / 1000).toISOString()} → ${new Date(toUs / 1000).toISOString()}`)
    }
    if (!scores) for (const a of result.alerts) out.write(`${JSON.stringify(a)}\n`)
    out.flush()
    const s = result.stats
    note(
      `replayed ${s.spans} spans, ${s.hwSamples} hw samples, ${s.points} series points` +
        `${result.seriesDetector ? ` (series detector: ${result.seriesDetector})` : ''}; ${result.alerts.length} alert(s)`,
    )
    return 0
  },
}

const SCORE_SCALE = Math.round(1 / SCORE_RESOLUTION)
const rounded = (x: number | null) => (x === null ? null : Math.round(x * SCORE_SCALE) / SCORE_SCALE)

function scoreLine(p: ScoredPoint): string {
  const line: Record<string, unknown> = {
    timestamp: isoFromMicros(p.timestampUs),
    series: p.series,
    instance: p.instance,
    value: p.value,
    score: rounded(p.score),
    model_score: rounded(p.modelScore),
  }
  if (p.alerts.length) line.alert = p.alerts.join(',')
  return `${JSON.stringify(line)}\n`
}

/** stdout in chunks: one write per line would cost more than scoring a 20 000-point series */
class LineBuffer {
  private parts: string[] = []
  private size = 0

  write(line: string): void {
    this.parts.push(line)
    this.size += line.length
    if (this.size >= 1 << 16) this.flush()
  }

  flush(): void {
    if (this.parts.length) process.stdout.write(this.parts.join(''))
    this.parts = []
    this.size = 0
  }
}
