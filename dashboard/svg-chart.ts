/**
 * Time-series charts as inline SVG for the self-contained report: no script, no fonts, no external
 * file, so the HTML opens the same anywhere (an incident ticket, a mail, a browser offline). Lines
 * break at missing values; `stacked` draws cumulative areas; `bands` shade alert intervals.
 */
import { escapeHtml } from './pages.ts'

export interface SvgSeries {
  label: string
  color: string
  values: (number | null)[]
  /** SVG stroke-dasharray, e.g. `4 3` */
  dash?: string
}

export interface SvgBand {
  startS: number
  /** undefined or null: still open at the end of the range */
  endS?: number | null
  label: string
}

export interface SvgChartOptions {
  title: string
  /** bucket times, epoch seconds, ascending */
  xs: number[]
  series: SvgSeries[]
  fromS: number
  toS: number
  bands?: SvgBand[]
  formatY?: (v: number) => string
  stacked?: boolean
  /** fixed top of the y axis (default: the data's maximum, rounded up) */
  yMax?: number
  width?: number
  height?: number
}

const PAD = { left: 56, right: 12, top: 10, bottom: 24 }

/** 0, a round step, … at least `max`: 1, 2, 2.5 or 5 × 10^k */
export function niceTicks(max: number, count = 4): number[] {
  if (!(max > 0)) return [0, 1]
  const raw = max / count
  const pow = 10 ** Math.floor(Math.log10(raw))
  const step = ([1, 2, 2.5, 5, 10].find((m) => m * pow >= raw) ?? 10) * pow
  const ticks: number[] = []
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(Number(v.toPrecision(12)))
  return ticks
}

function timeLabel(s: number, withDate: boolean): string {
  const iso = new Date(s * 1000).toISOString()
  return withDate ? `${iso.slice(5, 10)} ${iso.slice(11, 16)}` : iso.slice(11, 19)
}

const fmt = (n: number) => (Math.round(n * 10) / 10).toString()

export function svgTimeChart(o: SvgChartOptions): string {
  const width = o.width ?? 760
  const height = o.height ?? 200
  const plotW = width - PAD.left - PAD.right
  const plotH = height - PAD.top - PAD.bottom
  const span = Math.max(o.toS - o.fromS, 1e-9)
  const x = (s: number) => PAD.left + ((s - o.fromS) / span) * plotW
  const formatY = o.formatY ?? ((v: number) => String(v))

  // stacked: each series drawn on top of the ones before it
  const drawn: (number | null)[][] = []
  if (o.stacked) {
    const acc = o.xs.map(() => 0)
    for (const s of o.series) {
      drawn.push(
        s.values.map((v, i) => {
          if (v === null || v === undefined) return null
          acc[i]! += v
          return acc[i]!
        }),
      )
    }
  } else drawn.push(...o.series.map((s) => s.values))
  let max = 0
  for (const col of drawn) for (const v of col) if (v !== null && v > max) max = v
  const ticks = o.yMax !== undefined ? niceTicks(o.yMax) : niceTicks(max)
  const top = ticks[ticks.length - 1]!
  const y = (v: number) => PAD.top + plotH - (Math.min(v, top) / top) * plotH

  const parts: string[] = []
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="100%" role="img" aria-label="${escapeHtml(o.title)}"><title>${escapeHtml(o.title)}</title>`,
  )
  for (const b of o.bands ?? []) {
    const x0 = x(Math.max(b.startS, o.fromS))
    const x1 = x(Math.min(b.endS ?? o.toS, o.toS))
    if (x1 < PAD.left || x0 > PAD.left + plotW) continue
    parts.push(
      `<rect x="${fmt(x0)}" y="${PAD.top}" width="${fmt(Math.max(x1 - x0, 1.5))}" height="${plotH}" fill="#d62830" fill-opacity="0.12"><title>${escapeHtml(b.label)}</title></rect>`,
    )
  }
  for (const t of ticks) {
    parts.push(
      `<line x1="${PAD.left}" x2="${PAD.left + plotW}" y1="${fmt(y(t))}" y2="${fmt(y(t))}" stroke="#8a939e" stroke-opacity="0.3"/>`,
      `<text x="${PAD.left - 6}" y="${fmt(y(t) + 4)}" text-anchor="end" font-size="11" fill="#4a5360">${escapeHtml(formatY(t))}</text>`,
    )
  }
  const withDate = span > 86_400
  for (let i = 0; i <= 5; i++) {
    const t = o.fromS + (span * i) / 5
    const anchor = i === 0 ? 'start' : i === 5 ? 'end' : 'middle'
    parts.push(
      `<text x="${fmt(x(t))}" y="${height - 6}" text-anchor="${anchor}" font-size="11" fill="#4a5360">${timeLabel(t, withDate)}</text>`,
    )
  }
  o.series.forEach((s, si) => {
    const col = drawn[si]!
    if (o.stacked) {
      const below = si === 0 ? o.xs.map(() => 0) : drawn[si - 1]!
      // one polygon per run of consecutive values
      let run: number[] = []
      const flush = () => {
        if (run.length === 0) return
        const upper = run.map((i) => `${fmt(x(o.xs[i]!))},${fmt(y(col[i]!))}`)
        const lower = [...run].reverse().map((i) => `${fmt(x(o.xs[i]!))},${fmt(y(below[i] ?? 0))}`)
        parts.push(
          `<polygon points="${[...upper, ...lower].join(' ')}" fill="${s.color}" fill-opacity="0.85"/>`,
        )
        run = []
      }
      col.forEach((v, i) => {
        if (v === null) flush()
        else run.push(i)
      })
      flush()
      return
    }
    let path = ''
    let pen = false
    col.forEach((v, i) => {
      if (v === null) {
        pen = false
        return
      }
      path += `${pen ? 'L' : 'M'}${fmt(x(o.xs[i]!))},${fmt(y(v))}`
      pen = true
    })
    if (path) {
      parts.push(
        `<path d="${path}" fill="none" stroke="${s.color}" stroke-width="1.6"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`,
      )
    }
  })
  parts.push(
    `<rect x="${PAD.left}" y="${PAD.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#8a939e" stroke-opacity="0.5"/>`,
    '</svg>',
  )
  const legend = o.series
    .map(
      (s) =>
        `<span class="key"><span class="sw" style="background:${s.color}"></span>${escapeHtml(s.label)}</span>`,
    )
    .join(' ')
  return `<figure class="chart">${parts.join('')}<figcaption>${escapeHtml(o.title)}${legend ? ` — ${legend}` : ''}</figcaption></figure>`
}

/** A one-line Unicode sparkline for Markdown (▁…█), blanks for missing values. */
export function sparkline(values: (number | null)[], width = 60): string {
  if (values.length === 0) return ''
  const step = Math.max(1, Math.ceil(values.length / width))
  const buckets: (number | null)[] = []
  for (let i = 0; i < values.length; i += step) {
    const chunk = values.slice(i, i + step).filter((v): v is number => v !== null)
    buckets.push(chunk.length ? Math.max(...chunk) : null)
  }
  const max = Math.max(...buckets.filter((v): v is number => v !== null), 0)
  const blocks = '▁▂▃▄▅▆▇█'
  return buckets
    .map((v) => (v === null ? ' ' : blocks[max > 0 ? Math.min(7, Math.floor((v / max) * 7.999)) : 0]))
    .join('')
}
