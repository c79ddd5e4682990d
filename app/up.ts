/**
 * `breakid up` composed: the whole pipeline in one process on the embedded default — engine, load
 * generator, a scheduled fault, ingest into chDB, the detectors, the collector (OTLP/HTTP on 4318 and
 * any scrape targets, so foreign telemetry joins the same pipeline), a local webhook receiver that
 * prints each alert as it arrives — then a summary. bin/commands/up.ts parses the flags into
 * `UpSettings`, starts this, runs it and stops it.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import type { Logger } from 'pino'
import type { Transport } from '../bus/transport.ts'
import { Collector } from '../collect/collector.ts'
import type { ScrapeTarget } from '../collect/prometheus/scraper.ts'
import type { Alert } from '../contract/records.ts'
import { InvalidInputError } from '../core/errors.ts'
import { dashboardLink, dashboardPlugin } from '../dashboard/plugin.ts'
import { DashboardSessions } from '../dashboard/session.ts'
import type { ModelSpec } from '../engine/engine.ts'
import type { FaultWindow, GroundTruthEntry } from '../engine/faults.ts'
import { buildEngineApp } from '../engine/http.ts'
import { type LoadgenReport, runLoad } from '../engine/loadgen.ts'
import { getModel, toKServeInputs } from '../engine/models/zoo.ts'
import { type ReceivedAlert, startReceiver } from '../notify/receiver.ts'
import { isoFromMicros } from '../notify/webhook.ts'
import { formatResult } from '../queries/format.ts'
import { runNamedQuery, runSql } from '../queries/runner.ts'
import type { BreakidConfig } from './config.ts'
import { engineFromConfig } from './engine.ts'
import { drainPipeline, pipelineFromConfig } from './pipeline.ts'
import { openStore, openTransport, StartedParts, telemetryProducer, upStatePath } from './runtime.ts'
import { costFigure, queryLimits, resolveApiToken } from './access.ts'

/** distinct request bodies the demo's load generator cycles through (a prime: see their use) */
const DEMO_BODIES = 61

/** The demo model: ResNet-50-shaped at half width and 32×32 input, so a batch keeps the CPU busy. */
export const DEMO_MODEL = 'resnet50:w=0.5,r=32'
export const DEFAULT_OTLP_PORT = 4318

export interface UpSettings {
  runId: string
  durationMs: number
  /** open-loop requests per second */
  rate: number
  model: ModelSpec
  faults: FaultWindow[]
  /** delete the data of earlier runs first (prepareDataDir) */
  fresh: boolean
  /** the old opt-in to keeping it, accepted */
  keepData: boolean
  /** engine and query API port on 127.0.0.1 (0: any free one) */
  port: number
  otlpSampleRatio: number
  /** where to write the injected fault windows as NDJSON */
  groundTruthPath?: string
  /** undefined: no collector */
  collector?: UpCollectorSettings
}

export interface UpCollectorSettings {
  /** a port the user named must work; without one, the standard 4318 is tried and may be taken */
  otlpPort?: number
  scrape: ScrapeTarget[]
  acceleratorModels?: string[]
}

/** Without a fault named: data_starvation from 40% to 65% of the run, so the demo has a break to find. */
export function demoFaults(durationMs: number): FaultWindow[] {
  return [
    {
      type: 'data_starvation',
      startMs: Math.round(durationMs * 0.4),
      endMs: Math.round(durationMs * 0.65),
      delayMs: 60,
    },
  ]
}

/**
 * The data of earlier runs stays (the README promises `breakid query`/`sql` over it) unless `--fresh`
 * asks to delete it. Only the embedded chDB directory is ours to delete: a ClickHouse server's data
 * is never touched. `--keep-data`, the old opt-in, is accepted and changes nothing.
 */
export function prepareDataDir(
  cfg: Pick<BreakidConfig, 'clickhouseUrl' | 'dataDir'>,
  flags: { fresh: boolean; keepData: boolean },
): void {
  if (flags.fresh && flags.keepData) {
    throw new InvalidInputError('--fresh deletes the data that --keep-data keeps: pass one of them')
  }
  if (flags.fresh && !cfg.clickhouseUrl) rmSync(cfg.dataDir, { recursive: true, force: true })
  mkdirSync(cfg.dataDir, { recursive: true })
}

export interface UpRun {
  /** the engine's and the query API's address */
  address: string
  /** runs the load for the configured duration, drains the pipeline and prints the summary */
  runToEnd(): Promise<void>
  /** stops everything still running; once */
  stop(): Promise<void>
}

/**
 * Starts every part, printing where each listens. A part that fails to start stops the ones already
 * started and the error is thrown: `up` exits with it instead of hanging on open servers.
 */
export async function startUp(
  cfg: BreakidConfig,
  s: UpSettings,
  io: { logger: Logger; out: (line: string) => void },
): Promise<UpRun> {
  const { logger, out } = io
  prepareDataDir(cfg, { fresh: s.fresh, keepData: s.keepData })
  const parts = new StartedParts(logger)
  return parts.starting(async () => {
    const ch = await openStore(cfg)
    parts.add('store', () => ch.close())
    const transport = await openTransport(cfg, logger)
    parts.add('transport', () => transport.close())
    // first of the servers: a port the user named that is taken fails before anything else listens
    const collecting = s.collector ? await startCollector(cfg, transport, logger, s.collector) : undefined
    const collector = collecting?.collector
    const stopCollector = parts.add('collector', async () => collector?.stop())
    const receiver = await startReceiver({
      secret: cfg.webhookSecret,
      onAlert: ({ alert, receivedAtMs }) => {
        if (alert) out(alertLine(alert, receivedAtMs))
      },
    })
    parts.add('webhook receiver', () => receiver.stop())
    const pipeline = await pipelineFromConfig(cfg, {
      transport,
      logger,
      clickhouse: ch,
      extraRoutes: [{ name: 'local-receiver', url: receiver.url, secret: cfg.webhookSecret }],
    })
    const stopPipeline = parts.add('pipeline', () => pipeline.stop())
    const engine = engineFromConfig(
      { ...cfg, models: [s.model], faults: s.faults, runId: s.runId, otlpSampleRatio: s.otlpSampleRatio },
      { transport, logger },
    )
    const token = resolveApiToken(cfg)
    parts.add('api token', () => {
      if (token.path) rmSync(token.path, { force: true })
    })
    const limits = queryLimits(cfg)
    // the engine starts when the app gets ready and stops (drained) when it closes (engine/http.ts)
    const app = buildEngineApp(engine, { apiToken: token.token, tokenHint: token.hint, manageEngine: true })
    const stopEngine = parts.add('engine', () => app.close())
    const sessions = new DashboardSessions()
    await app.register(dashboardPlugin, {
      ch,
      limits,
      apiToken: token.token,
      tokenHint: token.hint,
      sessions,
      cost: costFigure(cfg),
      source: `breakid up, ${ch.embedded ? `chDB ${cfg.dataDir}` : 'ClickHouse server'}`,
    })
    out(`run: ${s.runId}`)
    const address = await app.listen({ host: '127.0.0.1', port: s.port })
    if (s.groundTruthPath) writeFileSync(s.groundTruthPath, engine.faults.groundTruthNdjson())
    // first, so a person can open it while the rest starts; the link works once (dashboard/session.ts)
    out(`dashboard: ${dashboardLink(address, sessions, true)}`)
    const statePath = upStatePath(cfg.dataDir)
    writeFileSync(statePath, JSON.stringify({ pid: process.pid, url: address }))
    parts.add('state file', () => rmSync(statePath, { force: true }))

    const loaded = engine.models.get(s.model.name)!
    out(
      `breakid up: engine ${address} serving ${s.model.name} v${loaded.meta.version}; ${s.rate} req/s for ${s.durationMs / 1000}s`,
    )
    out(
      `breakid up: query API ${address}/api (token in ${token.path ?? 'the configured --api-token'}; breakid query/sql use it)`,
    )
    out(
      `breakid up: ${transport.kind === 'kafka' ? `Kafka ${cfg.kafkaBrokers.join(',')}` : 'embedded bus'}, ${ch.embedded ? `chDB ${cfg.dataDir}` : 'ClickHouse server'}, webhook receiver ${receiver.url}`,
    )
    if (collecting) out(collecting.line)
    for (const f of engine.faults.groundTruth()) {
      out(
        `breakid up: fault ${f.type} scheduled ${new Date(f.startEpochMs).toISOString()} → ${new Date(f.endEpochMs).toISOString()}`,
      )
    }

    // a prime number of distinct bodies, cycled: an error burst fails every k-th request, and with 8
    // bodies rate 0.5 always failed the same four, so the inputs that succeeded drifted (live, an
    // input_drift paged beside every error burst); k never divides 61 for k < 61
    const bodies = Array.from({ length: DEMO_BODIES }, (_, seed) =>
      JSON.stringify({
        inputs: toKServeInputs(getModel(s.model.name).inputGenerator(seed, 1, s.model.options)),
      }),
    )
    return {
      address,
      stop: () => parts.stop(),
      async runToEnd() {
        const report = await runLoad({
          url: `${address}/v2/models/${s.model.name}/infer`,
          bodies,
          ratePerSec: s.rate,
          durationMs: s.durationMs,
          maxOutstanding: 4096,
        })
        await stopEngine()
        await stopCollector() // open traces go out with what they have
        const collected = collector?.counters.total('assembled') ?? 0
        const left = await drainPipeline(pipeline, engine.completions + collected)
        if (left) process.stderr.write(`breakid up: pipeline did not drain in time (${left})\n`)
        await stopPipeline()
        await printSummary(out, {
          cfg,
          ch,
          limits,
          runId: s.runId,
          report,
          spansEmitted: engine.completions,
          telemetryLost: engine.telemetry.lost,
          collector,
          faults: engine.faults.groundTruth(),
          deliveries: receiver.alerts,
        })
      },
    }
  })
}

/** A webhook delivery as the receiver prints it. */
function alertLine(alert: Alert, receivedAtMs: number): string {
  const what = `${alert.type} ${alert.instance}/${alert.model}${alert.stage ? ` stage=${alert.stage}` : ''}`
  const detail =
    alert.status === 'firing'
      ? alert.summary
      : `cleared after ${((alert.updated_at_us - alert.starts_at_us) / 1e6).toFixed(1)} s`
  return `[webhook] ${new Date(receivedAtMs).toISOString()} ${alert.status.toUpperCase()} ${what}: ${detail}`
}

/**
 * The collector next to the engine, feeding the same bus. The OTLP port is the standard 4318 unless
 * one is named; when the default is taken (a local OpenTelemetry Collector or Jaeger often holds it)
 * up runs without the receiver and says so, while a port the user named must work.
 */
async function startCollector(
  cfg: BreakidConfig,
  transport: Transport,
  logger: Logger,
  s: UpCollectorSettings,
): Promise<{ collector?: Collector; line: string }> {
  const collector = new Collector({
    producer: telemetryProducer(cfg, transport),
    logger: logger.child({ c: 'collect' }),
    fleet: cfg.fleet,
    otlpPort: s.otlpPort ?? DEFAULT_OTLP_PORT,
    scrape: s.scrape,
    acceleratorModels: s.acceleratorModels,
    recordsPerMessage: cfg.recordsPerMessage,
  })
  try {
    await collector.start()
  } catch (err) {
    await collector.stop()
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err
    if (s.otlpPort !== undefined) {
      throw new InvalidInputError(`--otlp-port ${s.otlpPort} is in use (pick another, or --no-collect)`)
    }
    return {
      line: `breakid up: collector not started: OTLP port ${DEFAULT_OTLP_PORT} is in use (--otlp-port to pick another, --no-collect to go without)`,
    }
  }
  return {
    collector,
    line:
      `breakid up: collector OTLP/HTTP ${collector.otlpUrl}/v1/traces and /v1/metrics` +
      (s.scrape.length > 0 ? `; scraping ${s.scrape.map((t) => `${t.instance}=${t.url}`).join(', ')}` : ''),
  }
}

/** The run's summary: load, spans stored, foreign telemetry, each alert against the fault windows. */
async function printSummary(
  out: (line: string) => void,
  r: {
    cfg: BreakidConfig
    ch: Awaited<ReturnType<typeof openStore>>
    limits: ReturnType<typeof queryLimits>
    runId: string
    report: LoadgenReport
    spansEmitted: number
    telemetryLost: number
    collector: Collector | undefined
    faults: GroundTruthEntry[]
    deliveries: readonly ReceivedAlert[]
  },
): Promise<void> {
  const { cfg, ch, limits, report, collector, runId } = r
  const spans = await runSql(
    ch,
    'SELECT count() AS spans, uniqExact(request_id) AS distinct_requests FROM spans',
    { limits },
  )
  const [storedSpans, distinct] = spans.rows[0] as [number | string, number | string]
  out('\n=== summary ===')
  out(
    `requests sent ${report.sent}, answered ${Object.values(report.statuses).reduce((a, b) => a + b, 0)} (ok ${report.ok}; statuses ${JSON.stringify(report.statuses)})`,
  )
  out(
    `latency ms p50 ${report.latencyMs.p50}  p95 ${report.latencyMs.p95}  p99 ${report.latencyMs.p99}  max ${report.latencyMs.max}`,
  )
  out(
    `spans emitted ${r.spansEmitted}, stored ${storedSpans} (${distinct} distinct request ids); telemetry dropped ${r.telemetryLost}`,
  )
  if (collector) {
    const c = collector.counters
    out(
      `collector: ${c.total('assembled')} foreign spans (${c.get('assembled', { kind: 'generic' })} generic, ${c.get('assembled', { kind: 'triton' })} Triton), ${c.total('hw_samples')} hardware samples, ${c.total('otlp_requests')} OTLP requests, ${c.total('scrapes')} scrapes`,
    )
  }
  for (const f of r.faults) {
    out(
      `fault ${f.type} injected ${new Date(f.startEpochMs).toISOString()} → ${new Date(f.endEpochMs).toISOString()}`,
    )
  }
  // one alert = one break: its firing and resolved deliveries share an id
  const byId = new Map<string, ReceivedAlert[]>()
  for (const d of r.deliveries) if (d.alert) byId.set(d.alert.id, [...(byId.get(d.alert.id) ?? []), d])
  out(`alerts received by the webhook: ${byId.size} (${r.deliveries.length} deliveries)`)
  for (const deliveries of byId.values()) {
    const firing = deliveries.find((d) => d.alert!.status === 'firing')
    const resolved = deliveries.find((d) => d.alert!.status === 'resolved')
    const a = (firing ?? deliveries[0]!).alert!
    const startMs = a.starts_at_us / 1000
    const fault = r.faults.find((f) => startMs >= f.startEpochMs && startMs <= f.endEpochMs)
    out(
      `  ${a.type} [${a.severity}] ${a.instance}/${a.model} stage=${a.stage ?? '-'}: ` +
        `started ${isoFromMicros(a.starts_at_us)} ${fault ? `INSIDE the ${fault.type} window` : 'OUTSIDE every fault window'}` +
        (fault && firing
          ? `, firing delivered ${((firing.receivedAtMs - fault.startEpochMs) / 1000).toFixed(1)} s after onset`
          : '') +
        (resolved?.alert?.ends_at_us
          ? `, resolved ${isoFromMicros(resolved.alert.ends_at_us)}`
          : ', still firing'),
    )
  }
  const breakdown = await runNamedQuery(ch, 'stage-breakdown', { from: '-1h', to: 'now' }, { limits })
  out('\nstage breakdown (ms):')
  out(formatResult(breakdown, 'table'))
  out(
    `\ndata kept in ${ch.embedded ? cfg.dataDir : 'ClickHouse'}; try: npx breakid query stage-breakdown   or   npx breakid sql "SELECT count() FROM spans"`,
  )
  out(
    `this run is ${runId}; compare it with another: npx breakid compare --baseline run:<other> --candidate run:${runId}`,
  )
  out(
    `the dashboard closed with the run: npx breakid dashboard serves the stored data, npx breakid report --run ${runId} writes an incident report of it`,
  )
}
