/**
 * Scrapes Prometheus endpoints (`--scrape [instance=]URL`, repeatable) every `intervalMs` and turns
 * each round into hardware samples through the HardwareMapper.
 *
 * - Accept negotiation as Prometheus does it: OpenMetrics preferred, the text format accepted; the
 *   answer's Content-Type picks the parser.
 * - Targets of one instance are scraped together and merged into one sample (Triton's :8002 and the
 *   DCGM exporter's :9400 of one host). The default instance is the URL's host, the name the OTLP
 *   receiver also falls back to, so a server's traces and metrics meet.
 * - A round never overlaps the previous one (each is scheduled when the last ends). A target that
 *   fails (connection, timeout `timeoutMs`, HTTP status, a body over `maxBodyBytes`) is counted by
 *   reason and its instance skips that round — its counters are kept, so the next good round's rates
 *   cover the longer interval. Lines that do not parse are counted and skipped; the rest is used.
 * - Time comes from `now()`, injected in tests, which call `scrapeOnce()` instead of starting timers.
 */
import type { Logger } from 'pino'
import type { HwSample } from '../../contract/records.ts'
import { InvalidInputError } from '../../core/errors.ts'
import type { Counters } from '../../core/metrics.ts'
import { normalizeAddress } from '../identity.ts'
import { HardwareMapper, type MetricPoint, pointsOf } from './hardware.ts'
import { formatOf, parseExposition } from './parse.ts'

export interface ScrapeTarget {
  url: string
  instance: string
}

/** `http://h:8002/metrics` or `name=http://h:8002/metrics`. Only http(s) URLs. */
export function parseScrapeTarget(value: string): ScrapeTarget {
  const m = /^(?:([A-Za-z0-9._:@-]+)=)?(https?:\/\/.+)$/.exec(value.trim())
  let url: URL | undefined
  try {
    url = m ? new URL(m[2]!) : undefined
  } catch {
    url = undefined
  }
  if (!m || !url || (url.protocol !== 'http:' && url.protocol !== 'https:'))
    throw new InvalidInputError(`--scrape: "${value}" is not [instance=]http(s)://host:port/path`)
  return { url: url.toString(), instance: m[1] ?? normalizeAddress(url.hostname) }
}

/** What Prometheus sends: OpenMetrics first, then the text format, then anything. */
export const SCRAPE_ACCEPT =
  'application/openmetrics-text;version=1.0.0;q=0.9,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'

export interface ScraperOptions {
  targets: readonly ScrapeTarget[]
  fleet: string
  counters: Counters
  logger: Logger
  /** receives each round's samples; a rejection is logged and counted, the round goes on */
  onSamples: (samples: HwSample[]) => Promise<void>
  /** time between rounds, ms. Default 10 000. */
  intervalMs?: number
  /** per-target timeout, ms. Default min(intervalMs, 10 000). */
  timeoutMs?: number
  /** largest body read, bytes. Default 16 MiB. */
  maxBodyBytes?: number
  mapper?: HardwareMapper
  now?: () => number
  fetch?: typeof fetch
}

class ScrapeError extends Error {
  constructor(
    readonly reason: 'connect' | 'timeout' | 'status' | 'too_large',
    message: string,
  ) {
    super(message)
  }
}

export class Scraper {
  private readonly mapper: HardwareMapper
  private readonly now: () => number
  private readonly fetch: typeof fetch
  private readonly intervalMs: number
  private readonly timeoutMs: number
  private readonly maxBodyBytes: number
  private timer: NodeJS.Timeout | undefined
  private round: Promise<unknown> | undefined
  private running = false

  constructor(private readonly opts: ScraperOptions) {
    this.mapper = opts.mapper ?? new HardwareMapper()
    this.now = opts.now ?? Date.now
    this.fetch = opts.fetch ?? fetch
    this.intervalMs = opts.intervalMs ?? 10_000
    this.timeoutMs = opts.timeoutMs ?? Math.min(this.intervalMs, 10_000)
    this.maxBodyBytes = opts.maxBodyBytes ?? 16 * 1024 * 1024
  }

  async start(): Promise<void> {
    if (this.running || this.opts.targets.length === 0) return
    this.running = true
    const loop = () => {
      if (!this.running) return
      this.round = this.scrapeOnce().finally(() => {
        if (this.running) this.timer = setTimeout(loop, this.intervalMs)
      })
    }
    loop()
  }

  /** Stops scheduling and waits for the round in progress. Safe to call twice. */
  async stop(): Promise<void> {
    this.running = false
    if (this.timer) clearTimeout(this.timer)
    await this.round?.catch(() => {})
  }

  /** One round over every target; returns (and hands to onSamples) the samples it made. */
  async scrapeOnce(): Promise<HwSample[]> {
    const byInstance = new Map<string, ScrapeTarget[]>()
    for (const t of this.opts.targets) {
      const list = byInstance.get(t.instance)
      if (list) list.push(t)
      else byInstance.set(t.instance, [t])
    }
    const results = await Promise.all(
      [...byInstance].map(async ([instance, targets]) => {
        const pages = await Promise.all(targets.map((t) => this.scrapeTarget(t)))
        if (pages.some((p) => p === undefined)) return undefined
        const points = pages.flatMap((p) => p!)
        const host = normalizeAddress(new URL(targets[0]!.url).hostname)
        return this.mapper.observe({ fleet: this.opts.fleet, host, instance }, points, this.now())
      }),
    )
    const samples = results.filter((s): s is HwSample => s !== undefined)
    if (samples.length > 0) {
      this.opts.counters.inc('hw_samples', samples.length, { source: 'scrape' })
      try {
        await this.opts.onSamples(samples)
      } catch (err) {
        this.opts.counters.inc('dropped', samples.length, { reason: 'send_failed' })
        this.opts.logger.error({ err }, 'scraped hardware samples could not be sent; dropped')
      }
    }
    return samples
  }

  private async scrapeTarget(target: ScrapeTarget): Promise<MetricPoint[] | undefined> {
    const c = this.opts.counters
    try {
      const { body, contentType } = await this.get(target.url)
      const format = formatOf(contentType)
      const exposition = parseExposition(body, format)
      if (exposition.errors.length > 0) {
        c.inc('scrape_bad_lines', exposition.errors.length)
        this.opts.logger.warn(
          { target: target.url, errors: exposition.errors.slice(0, 3), count: exposition.errors.length },
          'scrape: lines skipped',
        )
      }
      c.inc('scrapes', 1, { result: 'ok', format })
      return pointsOf(exposition.families)
    } catch (err) {
      const reason = err instanceof ScrapeError ? err.reason : 'connect'
      c.inc('scrapes', 1, { result: reason })
      this.opts.logger.warn({ target: target.url, err: (err as Error).message }, 'scrape failed')
      return undefined
    }
  }

  private async get(url: string): Promise<{ body: string; contentType: string | null }> {
    const signal = AbortSignal.timeout(this.timeoutMs)
    let res: Response
    try {
      res = await this.fetch(url, { headers: { accept: SCRAPE_ACCEPT }, signal, redirect: 'error' })
    } catch (err) {
      if (signal.aborted) throw new ScrapeError('timeout', `no answer within ${this.timeoutMs} ms`)
      throw new ScrapeError('connect', (err as Error).message)
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => {})
      throw new ScrapeError('status', `HTTP ${res.status}`)
    }
    const chunks: Uint8Array[] = []
    let size = 0
    try {
      for await (const chunk of res.body ?? []) {
        size += chunk.length
        if (size > this.maxBodyBytes) {
          await res.body?.cancel().catch(() => {})
          throw new ScrapeError('too_large', `body over ${this.maxBodyBytes} bytes`)
        }
        chunks.push(chunk)
      }
    } catch (err) {
      if (err instanceof ScrapeError) throw err
      throw new ScrapeError(signal.aborted ? 'timeout' : 'connect', (err as Error).message)
    }
    return { body: Buffer.concat(chunks).toString('utf8'), contentType: res.headers.get('content-type') }
  }
}
