/**
 * Minimal labelled counters and gauges shared by every component; rendered in the Prometheus text
 * format by the engine's /metrics and summarised by `breakid up`.
 */
export class Counters {
  private readonly values = new Map<string, number>()

  constructor(readonly prefix: string) {}

  inc(name: string, by = 1, labels?: Record<string, string>): void {
    const key = seriesKey(name, labels)
    this.values.set(key, (this.values.get(key) ?? 0) + by)
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

  prometheus(): string {
    return [...this.values].map(([k, v]) => `${this.prefix}_${k} ${v}`).join('\n') + '\n'
  }
}

/** `name{k="v",…}`, the Prometheus series notation, as the map key */
function seriesKey(name: string, labels?: Record<string, string>): string {
  if (!labels) return name
  return `${name}{${Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(',')}}`
}
