/**
 * Minimal labelled counters and gauges shared by every component; rendered in the Prometheus text
 * exposition format (version 0.0.4) by `renderPrometheus` for a `/metrics` endpoint, and summarised
 * by `breakid up`.
 */
export type MetricType = 'counter' | 'gauge'

export interface MetricHelp {
  type: MetricType
  help: string
}

export class Counters {
  private readonly values = new Map<string, number>()
  private readonly help = new Map<string, MetricHelp>()

  constructor(readonly prefix: string) {}

  /** Names a metric's type and meaning for `# TYPE`/`# HELP`; undescribed metrics render untyped. */
  describe(name: string, type: MetricType, help: string): this {
    this.help.set(name, { type, help })
    return this
  }

  inc(name: string, by = 1, labels?: Record<string, string>): void {
    const key = seriesKey(name, labels)
    this.values.set(key, (this.values.get(key) ?? 0) + by)
  }

  /** a gauge's current value */
  set(name: string, value: number, labels?: Record<string, string>): void {
    this.values.set(seriesKey(name, labels), value)
  }

  get(name: string, labels?: Record<string, string>): number {
    return this.values.get(seriesKey(name, labels)) ?? 0
  }

  /** sum over every label combination of `name` */
  total(name: string): number {
    let sum = 0
    for (const [k, v] of this.values) if (k === name || k.startsWith(`${name}{`)) sum += v
    return sum
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries(this.values)
  }

  /** series grouped by metric name (without the prefix), in first-seen order */
  series(): Map<string, [string, number][]> {
    const out = new Map<string, [string, number][]>()
    for (const [k, v] of this.values) {
      const brace = k.indexOf('{')
      const name = brace < 0 ? k : k.slice(0, brace)
      let list = out.get(name)
      if (!list) {
        list = []
        out.set(name, list)
      }
      list.push([k, v])
    }
    return out
  }

  describedAs(name: string): MetricHelp | undefined {
    return this.help.get(name)
  }

  prometheus(): string {
    return renderPrometheus(this)
  }
}

/**
 * The Prometheus text format of one or more counter sets: per metric a `# HELP` and `# TYPE` line
 * when described, then its series; names are `<prefix>_<name>`, label values escaped as the format
 * requires (backslash, double quote, newline). Ends with a newline.
 */
export function renderPrometheus(...sets: Counters[]): string {
  const lines: string[] = []
  for (const counters of sets) {
    for (const [name, series] of counters.series()) {
      const full = `${counters.prefix}_${name}`
      const described = counters.describedAs(name)
      if (described) {
        lines.push(`# HELP ${full} ${escapeHelp(described.help)}`)
        lines.push(`# TYPE ${full} ${described.type}`)
      }
      for (const [key, value] of series) lines.push(`${counters.prefix}_${key} ${formatValue(value)}`)
    }
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN'
  if (v === Number.POSITIVE_INFINITY) return '+Inf'
  if (v === Number.NEGATIVE_INFINITY) return '-Inf'
  return String(v)
}

function escapeHelp(s: string): string {
  return s.replaceAll('\\', '\\\\').replaceAll('\n', '\\n')
}

function escapeLabelValue(s: string): string {
  return s.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n')
}

/** `name{k="v",…}`, the Prometheus series notation (values escaped), as the map key */
function seriesKey(name: string, labels?: Record<string, string>): string {
  if (!labels || Object.keys(labels).length === 0) return name
  return `${name}{${Object.entries(labels)
    .map(([k, v]) => `${k}="${escapeLabelValue(v)}"`)
    .join(',')}}`
}
