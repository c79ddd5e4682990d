/**
 * A parser for the Prometheus text exposition format (0.0.4) and OpenMetrics 1.0 text.
 *
 * Written here because the npm parsers looked at lose the labels of labelled histograms and summaries
 * or stop at `NaN` and exemplars. What it keeps:
 *
 * - every sample with all its labels, value and optional timestamp (text format: integer
 *   milliseconds; OpenMetrics: seconds, possibly fractional — both returned as `timestampMs`);
 * - `NaN`, `+Inf`, `-Inf` (and the spellings Go's ParseFloat accepts: `Inf`, `inf`, `nan`, …);
 * - label-value escapes `\\`, `\"`, `\n`; HELP escapes `\\`, `\n` (and `\"` in OpenMetrics);
 *   whitespace around labels and a trailing comma (some exporters write `{gpu="0", UUID="…"}`);
 *   quoted metric and label names (`{"my.metric", "a.b"="x"}`, Prometheus 3's UTF-8 names);
 * - families: a sample belongs to the family of its `# TYPE` by the suffixes that type allows —
 *   counter `_total` `_created`; histogram `_bucket` `_sum` `_count` `_created`; gaugehistogram
 *   `_bucket` `_gsum` `_gcount`; summary `_sum` `_count` `_created`; info `_info` — and `seriesOf`
 *   groups a family's samples into one point per label set (buckets, quantiles, sum, count, created);
 * - OpenMetrics exemplars (`… # {trace_id="…"} 0.67 1600000000.1`) and `# UNIT`; `# EOF` ends the
 *   exposition (text after it, or its absence, is reported).
 *
 * A line that cannot be parsed is reported with its number and skipped; the rest of the exposition is
 * kept. Blank lines are skipped in both formats.
 */
export type ExpositionFormat = 'prometheus' | 'openmetrics'

export type MetricType =
  | 'counter'
  | 'gauge'
  | 'histogram'
  | 'gaugehistogram'
  | 'summary'
  | 'info'
  | 'stateset'
  | 'unknown'
  | 'untyped'

export type Labels = Record<string, string>

export interface Exemplar {
  labels: Labels
  value: number
  timestampMs?: number
}

export interface Sample {
  /** the sample's own name, suffix included (`x_bucket`) */
  name: string
  labels: Labels
  value: number
  timestampMs?: number
  exemplar?: Exemplar
}

export interface MetricFamily {
  name: string
  type: MetricType
  help?: string
  unit?: string
  samples: Sample[]
}

export interface ParseError {
  line: number
  message: string
}

export interface Exposition {
  format: ExpositionFormat
  families: MetricFamily[]
  errors: ParseError[]
}

const TYPES = new Set<string>([
  'counter',
  'gauge',
  'histogram',
  'gaugehistogram',
  'summary',
  'info',
  'stateset',
  'unknown',
  'untyped',
])

const SUFFIXES: Partial<Record<MetricType, readonly string[]>> = {
  counter: ['_total', '_created'],
  histogram: ['_bucket', '_sum', '_count', '_created'],
  gaugehistogram: ['_bucket', '_gsum', '_gcount'],
  summary: ['_sum', '_count', '_created'],
  info: ['_info'],
}

class LineError extends Error {}

const NAME_START = /[a-zA-Z_:]/
const NAME_CHAR = /[a-zA-Z0-9_:]/
const LABEL_START = /[a-zA-Z_]/
const LABEL_CHAR = /[a-zA-Z0-9_]/

/** A float as the exposition formats write it, or undefined. */
export function parseFloatToken(tok: string): number | undefined {
  const t = tok.toLowerCase()
  if (t === 'nan') return Number.NaN
  if (t === '+inf' || t === 'inf' || t === '+infinity' || t === 'infinity') return Number.POSITIVE_INFINITY
  if (t === '-inf' || t === '-infinity') return Number.NEGATIVE_INFINITY
  if (!/^[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?$/.test(t)) return undefined
  return Number(t)
}

/** Cursor over one line. */
class Line {
  pos = 0
  constructor(readonly text: string) {}
  get done(): boolean {
    return this.pos >= this.text.length
  }
  peek(): string {
    return this.text[this.pos] ?? ''
  }
  skipSpaces(): number {
    const start = this.pos
    while (this.peek() === ' ' || this.peek() === '\t') this.pos++
    return this.pos - start
  }
  expect(ch: string): void {
    if (this.peek() !== ch) throw new LineError(`expected "${ch}" at column ${this.pos + 1}`)
    this.pos++
  }
  word(start: RegExp, rest: RegExp, what: string): string {
    const from = this.pos
    if (!start.test(this.peek())) throw new LineError(`expected ${what} at column ${this.pos + 1}`)
    this.pos++
    while (!this.done && rest.test(this.peek())) this.pos++
    return this.text.slice(from, this.pos)
  }
  /** a token up to the next blank */
  token(): string {
    const from = this.pos
    while (!this.done && this.peek() !== ' ' && this.peek() !== '\t') this.pos++
    return this.text.slice(from, this.pos)
  }
  quoted(): string {
    this.expect('"')
    let out = ''
    while (true) {
      if (this.done) throw new LineError('unterminated quoted string')
      const ch = this.text[this.pos++]!
      if (ch === '"') return out
      if (ch !== '\\') {
        out += ch
        continue
      }
      const esc = this.text[this.pos++]
      if (esc === '\\') out += '\\'
      else if (esc === '"') out += '"'
      else if (esc === 'n') out += '\n'
      else throw new LineError(`invalid escape "\\${esc ?? ''}" in quoted string`)
    }
  }
}

/** `{a="x", b="y",}` → labels; a leading quoted string without `=` is the metric name (UTF-8 names). */
function parseLabelSet(line: Line): { labels: Labels; name?: string } {
  line.expect('{')
  const labels: Labels = {}
  let name: string | undefined
  let first = true
  while (true) {
    line.skipSpaces()
    if (line.peek() === '}') {
      line.pos++
      return { labels, name }
    }
    let key: string
    if (line.peek() === '"') {
      key = line.quoted()
      line.skipSpaces()
      if (first && (line.peek() === ',' || line.peek() === '}')) {
        name = key
        first = false
        if (line.peek() === ',') line.pos++
        continue
      }
    } else key = line.word(LABEL_START, LABEL_CHAR, 'a label name')
    first = false
    line.skipSpaces()
    line.expect('=')
    line.skipSpaces()
    if (key in labels) throw new LineError(`label "${key}" appears twice`)
    labels[key] = line.quoted()
    line.skipSpaces()
    if (line.peek() === ',') line.pos++
    else if (line.peek() !== '}') throw new LineError(`expected "," or "}" at column ${line.pos + 1}`)
  }
}

function parseTimestamp(tok: string, format: ExpositionFormat): number {
  if (format === 'prometheus') {
    if (!/^-?\d+$/.test(tok)) throw new LineError(`invalid timestamp "${tok}" (integer milliseconds)`)
    return Number(tok)
  }
  const seconds = parseFloatToken(tok)
  if (seconds === undefined || !Number.isFinite(seconds))
    throw new LineError(`invalid timestamp "${tok}" (seconds)`)
  return seconds * 1000
}

function parseSample(text: string, format: ExpositionFormat): Sample {
  const line = new Line(text)
  let name: string | undefined
  if (line.peek() !== '{') name = line.word(NAME_START, NAME_CHAR, 'a metric name')
  let labels: Labels = {}
  if (line.peek() === '{') {
    const set = parseLabelSet(line)
    labels = set.labels
    if (set.name !== undefined) {
      if (name !== undefined) throw new LineError('metric name given twice')
      name = set.name
    }
  }
  if (name === undefined) throw new LineError('sample without a metric name')
  if (line.skipSpaces() === 0)
    throw new LineError(`expected a blank before the value at column ${line.pos + 1}`)
  const valueTok = line.token()
  const value = parseFloatToken(valueTok)
  if (value === undefined) throw new LineError(`invalid value "${valueTok}"`)
  const sample: Sample = { name, labels, value }
  line.skipSpaces()
  if (!line.done && line.peek() !== '#') sample.timestampMs = parseTimestamp(line.token(), format)
  line.skipSpaces()
  if (!line.done && line.peek() === '#') {
    if (format !== 'openmetrics') throw new LineError('exemplars exist only in OpenMetrics')
    line.pos++
    line.skipSpaces()
    const { labels: exLabels } = parseLabelSet(line)
    line.skipSpaces()
    const exTok = line.token()
    const exValue = parseFloatToken(exTok)
    if (exValue === undefined) throw new LineError(`invalid exemplar value "${exTok}"`)
    const exemplar: Exemplar = { labels: exLabels, value: exValue }
    line.skipSpaces()
    if (!line.done) exemplar.timestampMs = parseTimestamp(line.token(), 'openmetrics')
    sample.exemplar = exemplar
  }
  line.skipSpaces()
  if (!line.done) throw new LineError(`unexpected "${line.text.slice(line.pos, line.pos + 20)}"`)
  return sample
}

function unescapeHelp(s: string, format: ExpositionFormat): string {
  return s.replace(/\\(.)/g, (whole, ch: string) => {
    if (ch === '\\') return '\\'
    if (ch === 'n') return '\n'
    if (ch === '"' && format === 'openmetrics') return '"'
    return whole // informational text: an unknown escape is kept as written
  })
}

export function parseExposition(text: string, format: ExpositionFormat): Exposition {
  const families = new Map<string, MetricFamily>()
  const errors: ParseError[] = []
  let current: MetricFamily | undefined
  let eofAt = 0

  const family = (name: string): MetricFamily => {
    let f = families.get(name)
    if (!f) {
      f = { name, type: format === 'openmetrics' ? 'unknown' : 'untyped', samples: [] }
      families.set(name, f)
    }
    return f
  }
  const ownerOf = (sampleName: string): MetricFamily => {
    const fits = (f: MetricFamily | undefined) =>
      f !== undefined &&
      (f.name === sampleName || (SUFFIXES[f.type] ?? []).some((sfx) => sampleName === f.name + sfx))
    if (fits(current)) return current!
    const exact = families.get(sampleName)
    if (exact) return exact
    for (const sfx of ['_total', '_created', '_bucket', '_sum', '_count', '_gsum', '_gcount', '_info']) {
      if (!sampleName.endsWith(sfx)) continue
      const f = families.get(sampleName.slice(0, -sfx.length))
      if (fits(f)) return f!
    }
    return family(sampleName)
  }

  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, '')
    const lineNo = i + 1
    if (raw.trim() === '') continue
    if (eofAt > 0) {
      errors.push({ line: lineNo, message: 'text after "# EOF"' })
      break
    }
    try {
      if (raw.startsWith('#')) {
        const m = /^#\s+(HELP|TYPE|UNIT|EOF)(?:\s+(\S+)(?:\s(.*))?)?$/.exec(raw)
        if (!m) continue // a comment
        const [, keyword, name, rest = ''] = m
        if (keyword === 'EOF') {
          if (name !== undefined) throw new LineError('"# EOF" takes nothing after it')
          eofAt = lineNo
          continue
        }
        if (name === undefined) throw new LineError(`# ${keyword} without a metric name`)
        if (keyword === 'UNIT' && format !== 'openmetrics') continue // a comment in the text format
        const f = family(name.startsWith('"') ? JSON.parse(name) : name)
        current = f
        if (keyword === 'HELP') {
          if (f.help !== undefined) throw new LineError(`second HELP for ${f.name}`)
          f.help = unescapeHelp(rest, format)
        } else if (keyword === 'UNIT') f.unit = rest.trim()
        else {
          const type = rest.trim().toLowerCase()
          if (!TYPES.has(type)) throw new LineError(`unknown metric type "${rest.trim()}"`)
          if (f.samples.length > 0 && f.type !== type)
            throw new LineError(`TYPE for ${f.name} after its samples`)
          f.type = type as MetricType
        }
        continue
      }
      const sample = parseSample(raw, format)
      const owner = ownerOf(sample.name)
      current = owner
      owner.samples.push(sample)
    } catch (err) {
      if (!(err instanceof LineError) && !(err instanceof SyntaxError)) throw err
      errors.push({ line: lineNo, message: err.message })
    }
  }
  if (format === 'openmetrics' && eofAt === 0) errors.push({ line: lines.length, message: 'no "# EOF"' })
  return { format, families: [...families.values()], errors }
}

/** One label set of a family, its samples grouped. */
export interface SeriesPoint {
  labels: Labels
  /** counter, gauge, unknown, info, stateset: the value */
  value?: number
  sum?: number
  count?: number
  /** `_created`, in seconds since the epoch as exposed */
  created?: number
  buckets?: { le: number; count: number; exemplar?: Exemplar }[]
  quantiles?: { quantile: number; value: number }[]
  timestampMs?: number
}

const seriesKey = (labels: Labels) =>
  Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(',')

/** The family's samples grouped into one point per label set (without `le` / `quantile`). */
export function seriesOf(f: MetricFamily): SeriesPoint[] {
  const points = new Map<string, SeriesPoint>()
  for (const s of f.samples) {
    const { le, quantile, ...rest } = s.labels
    const labels =
      (f.type === 'histogram' || f.type === 'gaugehistogram') && le !== undefined
        ? rest
        : f.type === 'summary' && quantile !== undefined
          ? rest
          : s.labels
    const key = seriesKey(labels)
    let p = points.get(key)
    if (!p) {
      p = { labels }
      points.set(key, p)
    }
    if (s.timestampMs !== undefined) p.timestampMs = s.timestampMs
    const suffix = s.name.slice(f.name.length)
    if (suffix === '_created') p.created = s.value
    else if (suffix === '_sum' || suffix === '_gsum') p.sum = s.value
    else if (suffix === '_count' || suffix === '_gcount') p.count = s.value
    else if (suffix === '_bucket' && le !== undefined) {
      const bound = parseFloatToken(le)
      if (bound !== undefined) {
        p.buckets ??= []
        p.buckets.push({ le: bound, count: s.value, exemplar: s.exemplar })
      }
    } else if (f.type === 'summary' && quantile !== undefined) {
      const q = parseFloatToken(quantile)
      if (q !== undefined) {
        p.quantiles ??= []
        p.quantiles.push({ quantile: q, value: s.value })
      }
    } else p.value = s.value
  }
  for (const p of points.values()) p.buckets?.sort((a, b) => a.le - b.le)
  return [...points.values()]
}

/** The format a scrape answered in, from its Content-Type. */
export function formatOf(contentType: string | null | undefined): ExpositionFormat {
  return contentType?.toLowerCase().startsWith('application/openmetrics-text') ? 'openmetrics' : 'prometheus'
}
