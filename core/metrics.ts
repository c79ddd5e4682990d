/**
 * Labelled counters, gauges and histograms shared by every component, and the one renderer of the
 * Prometheus text exposition format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/):
 * `renderPrometheus` for counter sets, `renderFamilies` underneath it for any source — the ops
 * server of `breakid ingest|detect|notify|collect` (app/ops.ts) renders everything registered with
 * it through the latter. `breakid up` summarises the same counters.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram'
export type Labels = Readonly<Record<string, string>>

export interface MetricHelp {
  type: MetricType
  help: string
}

export interface Sample {
  /** the family name, or the family name + `_bucket` / `_sum` / `_count` for a histogram */
  name: string
  labels: Labels
  value: number
}

/** One metric family: its name, its type and help (none: untyped), and every sample of it. */
export interface MetricFamily {
  name: string
  type?: MetricType
  help?: string
  samples: Sample[]
}

/** Anything the ops server can scrape: counters, histograms, a consumer's lag read from Kafka… */
export interface MetricsSource {
  collect(): MetricFamily[] | Promise<MetricFamily[]>
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/

export class Counters implements MetricsSource {
  private readonly values = new Map<string, { name: string; labels: Labels; value: number }>()
  private readonly help = new Map<string, MetricHelp>()

  constructor(readonly prefix: string) {}

  /** Names a metric's type and meaning for `# TYPE`/`# HELP`; undescribed metrics render untyped. */
  describe(name: string, type: MetricType, help: string): this {
    this.help.set(name, { type, help })
    return this
  }

  inc(name: string, by = 1, labels?: Labels): void {
    const s = this.slot(name, labels)
    s.value += by
  }

  /** a gauge's current value */
  set(name: string, value: number, labels?: Labels): void {
    this.slot(name, labels).value = value
  }

  get(name: string, labels?: Labels): number {
    return this.values.get(seriesKey(name, labels))?.value ?? 0
  }

  /** sum over every label combination of `name` */
  total(name: string): number {
    let sum = 0
    for (const s of this.values.values()) if (s.name === name) sum += s.value
    return sum
  }

  /** `name{k="v"}` → value, every series */
  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.values].map(([k, s]) => [k, s.value]))
  }

  /** series grouped by metric name (without the prefix), in first-seen order: `name{…}` → value */
  series(): Map<string, [string, number][]> {
    const out = new Map<string, [string, number][]>()
    for (const [key, s] of this.values) {
      let list = out.get(s.name)
      if (!list) {
        list = []
        out.set(s.name, list)
      }
      list.push([key, s.value])
    }
    return out
  }

  describedAs(name: string): MetricHelp | undefined {
    return this.help.get(name)
  }

  collect(): MetricFamily[] {
    const families = new Map<string, MetricFamily>()
    for (const s of this.values.values()) {
      const full = `${this.prefix}_${s.name}`
      let f = families.get(full)
      if (!f) {
        f = { name: full, ...this.help.get(s.name), samples: [] }
        families.set(full, f)
      }
      f.samples.push({ name: full, labels: s.labels, value: s.value })
    }
    return [...families.values()]
  }

  prometheus(): string {
    return renderPrometheus(this)
  }

  private slot(name: string, labels: Labels | undefined) {
    const key = seriesKey(name, labels)
    let s = this.values.get(key)
    if (!s) {
      s = { name, labels: { ...labels }, value: 0 }
      this.values.set(key, s)
    }
    return s
  }
}

/** The Prometheus text format of one or more counter sets (see `renderFamilies`). */
export function renderPrometheus(...sets: Counters[]): string {
  return renderFamilies(sets.flatMap((c) => c.collect()))
}

/**
 * The text exposition of `families`: per family a `# HELP` and `# TYPE` line when it has a type,
 * then its samples, label values escaped as the format requires (backslash, double quote, newline).
 * Families of one name from several sources are merged (the first HELP wins); a name with two types,
 * or a name or label Prometheus would reject, throws instead of serving text a scrape would fail on.
 * Ends with a newline ('' when there is nothing).
 */
export function renderFamilies(families: readonly MetricFamily[]): string {
  const merged = new Map<string, MetricFamily>()
  for (const f of families) {
    if (!METRIC_NAME.test(f.name)) throw new Error(`invalid metric name ${JSON.stringify(f.name)}`)
    const seen = merged.get(f.name)
    if (!seen) merged.set(f.name, { ...f, samples: [...f.samples] })
    else if (seen.type !== f.type)
      throw new Error(
        `metric ${f.name} registered as both ${seen.type ?? 'untyped'} and ${f.type ?? 'untyped'}`,
      )
    else seen.samples.push(...f.samples)
  }
  const lines: string[] = []
  for (const f of merged.values()) {
    if (f.type) {
      lines.push(`# HELP ${f.name} ${escapeHelp(f.help ?? f.name)}`)
      lines.push(`# TYPE ${f.name} ${f.type}`)
    }
    for (const s of f.samples) {
      for (const k of Object.keys(s.labels)) {
        if (!LABEL_NAME.test(k)) throw new Error(`invalid label name ${JSON.stringify(k)} on ${s.name}`)
      }
      lines.push(`${seriesKey(s.name, s.labels)} ${formatValue(s.value)}`)
    }
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`
}

/** The content type of the text exposition */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

/** Latency buckets in seconds, 1 ms to 30 s: a ClickHouse insert of a batch lands in this range. */
export const LATENCY_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

/** A labelled histogram with fixed upper bounds (cumulative `le` buckets, `_sum`, `_count`). */
export class Histogram implements MetricsSource {
  private readonly series = new Map<
    string,
    { labels: Labels; counts: number[]; sum: number; count: number }
  >()

  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[] = LATENCY_BUCKETS_S,
  ) {
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i]! > buckets[i - 1]!)) throw new Error(`${name}: buckets must increase`)
    }
  }

  observe(value: number, labels: Labels = {}): void {
    const key = seriesKey('', labels)
    let s = this.series.get(key)
    if (!s) {
      s = { labels: { ...labels }, counts: this.buckets.map(() => 0), sum: 0, count: 0 }
      this.series.set(key, s)
    }
    const i = this.buckets.findIndex((b) => value <= b)
    if (i >= 0) s.counts[i]!++
    s.sum += value
    s.count++
  }

  /** observations so far of one label set */
  count(labels: Labels = {}): number {
    return this.series.get(seriesKey('', labels))?.count ?? 0
  }

  collect(): MetricFamily[] {
    const samples: Sample[] = []
    for (const s of this.series.values()) {
      let cumulative = 0
      this.buckets.forEach((b, i) => {
        cumulative += s.counts[i]!
        samples.push({
          name: `${this.name}_bucket`,
          labels: { ...s.labels, le: String(b) },
          value: cumulative,
        })
      })
      samples.push({ name: `${this.name}_bucket`, labels: { ...s.labels, le: '+Inf' }, value: s.count })
      samples.push({ name: `${this.name}_sum`, labels: s.labels, value: s.sum })
      samples.push({ name: `${this.name}_count`, labels: s.labels, value: s.count })
    }
    return [{ name: this.name, type: 'histogram', help: this.help, samples }]
  }
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
function seriesKey(name: string, labels?: Labels): string {
  if (!labels || Object.keys(labels).length === 0) return name
  return `${name}{${Object.entries(labels)
    .map(([k, v]) => `${k}="${escapeLabelValue(v)}"`)
    .join(',')}}`
}
