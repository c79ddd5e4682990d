/**
 * `breakid detectors`: every detector with whether it runs, what it reads and its effective settings
 * (defaults, overridden by the configuration: flags > environment > file), so a user sees what will
 * page before it does.
 */
import { ALERT_TYPES } from '../../contract/vocabulary.ts'
import { loadConfig } from '../../app/config.ts'
import { readsOf, resolveDetectorConfig } from '../../detectors/registry.ts'
import { DETECTOR_SOURCES, TELEMETRY_SOURCES, type TelemetrySource } from '../../detectors/sources.ts'
import type { Command } from '../command.ts'

export const detectorsCommand: Command = {
  summary: 'list every detector: on or off, what it reads, its effective settings',
  usage: 'breakid detectors [--json] [--detectors type.setting=value,…] [--config file.json]',
  options: { json: { type: 'boolean', default: false } },
  help: { json: 'one JSON document instead of text' },
  async run({ values }) {
    const cfg = loadConfig(values)
    const resolved = resolveDetectorConfig(cfg.detectors)
    const rows = resolved.map((r) => {
      const reads = readsOf(r.definition)
      return {
        type: r.definition.type,
        enabled: r.enabled,
        detects: ALERT_TYPES[r.definition.type],
        reads: { spans: [...reads.spans], hw: [...reads.hw] },
        sources: DETECTOR_SOURCES[r.definition.type],
        settings: Object.fromEntries(
          Object.entries(r.definition.spec).map(([name, spec]) => [
            name,
            { value: r.settings[name], default: spec.default, doc: spec.doc },
          ]),
        ),
      }
    })
    if (values.json) {
      process.stdout.write(
        `${JSON.stringify({ staleAfterMs: cfg.staleAfterMs, detectors: rows }, null, 2)}\n`,
      )
      return 0
    }
    const out: string[] = []
    for (const d of rows) {
      out.push(`${d.type}  ${d.enabled ? 'on' : 'OFF'} — ${d.detects}`)
      out.push(`  reads spans: ${d.reads.spans.join(', ') || '—'}`)
      out.push(`  reads hw samples: ${d.reads.hw.join(', ') || '—'}`)
      const on = (Object.keys(TELEMETRY_SOURCES) as TelemetrySource[])
        .filter((src) => d.sources[src] !== false)
        .map((src) => (d.sources[src] === true ? src : `${src} (${d.sources[src]})`))
      out.push(`  works on: ${on.join('; ') || '—'}`)
      const width = Math.max(...Object.keys(d.settings).map((k) => k.length))
      for (const [name, s] of Object.entries(d.settings)) {
        const value = JSON.stringify(s.value)
        const changed = value === JSON.stringify(s.default) ? '' : ` (default ${JSON.stringify(s.default)})`
        out.push(`  ${name.padEnd(width)}  ${value}${changed} — ${s.doc}`)
      }
      out.push('')
    }
    out.push(`alerts nothing evaluated for ${cfg.staleAfterMs} ms resolve as stale (staleAfterMs)`)
    process.stdout.write(`${out.join('\n')}\n`)
    return 0
  },
}
