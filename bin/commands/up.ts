/**
 * `breakid up`: the whole pipeline in one process on the embedded default — engine, load generator,
 * a scheduled data-starvation fault, ingest into chDB, the detectors, the collector (OTLP/HTTP on
 * 4318 and any --scrape targets, so foreign telemetry joins the same pipeline), and a local webhook
 * receiver that prints each alert as it arrives. Stops by itself after --duration and prints a
 * summary; the data stays queryable with `breakid query` / `breakid sql`, and the next run adds to
 * it unless `--fresh` deletes it first.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import type { Logger } from 'pino'
import { Collector } from '../../collect/collector.ts'
import { parseScrapeTarget, type ScrapeTarget } from '../../collect/prometheus/scraper.ts'
import { type ReceivedAlert, startReceiver } from '../../notify/receiver.ts'
import { isoFromMicros } from '../../notify/webhook.ts'
import { Engine } from '../../engine/engine.ts'
import { FaultSchedule, faultsFromFlags } from '../../engine/faults.ts'
import { buildEngineApp } from '../../engine/http.ts'
import { runLoad } from '../../engine/loadgen.ts'
import { getModel, toKServeInputs } from '../../engine/models/zoo.ts'
import { OtlpSpanExporter, parseSampleRatio } from '../../engine/telemetry/otlp.ts'
import { createLogger } from '../../core/logger.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { dashboardLink, dashboardPlugin } from '../../dashboard/plugin.ts'
import { DashboardSessions } from '../../dashboard/session.ts'
import { formatResult } from '../../queries/format.ts'
import { runNamedQuery, runSql } from '../../queries/runner.ts'
import { parseDurationMs, parsePort, parsePositive } from '../../app/flags.ts'
import type { Command } from '../command.ts'
import { type BreakidConfig, loadConfig } from '../../app/config.ts'
import { defaultDetectors, startPipeline, webhookRoutes } from '../../app/pipeline.ts'
import {
  costFigure,
  openStore,
  openTransport,
  queryLimits,
  resolveApiToken,
  telemetryEmitter,
  telemetryProducer,
  upStatePath,
} from '../../app/runtime.ts'
import type { Transport } from '../../bus/transport.ts'
import { parseModelFlag, parseRunIdFlag } from '../../app/flags.ts'

/** The demo model: ResNet-50-shaped at half width and 32×32 input, so a batch keeps the CPU busy. */
export const DEMO_MODEL = 'resnet50:w=0.5,r=32'
const DEFAULT_OTLP_PORT = 4318

export const up: Command = {
  summary: 'run the whole pipeline in one process with load and a scheduled fault, then summarise',
  usage: 'breakid up [--duration 60s] [--rate 120] [--fault data_starvation@24-39:60] [--port 0] [--fresh]',
  options: {
    duration: { type: 'string', default: '60s' },
    rate: { type: 'string', default: '120' },
    model: { type: 'string', default: DEMO_MODEL },
    fault: { type: 'string', multiple: true },
    scenario: { type: 'string' },
    'ground-truth': { type: 'string' },
    'no-fault': { type: 'boolean', default: false },
    port: { type: 'string', default: '0' },
    fresh: { type: 'boolean', default: false },
    'keep-data': { type: 'boolean', default: false },
    'otlp-sample-ratio': { type: 'string', default: '0.1' },
    'otlp-port': { type: 'string' },
    'no-collect': { type: 'boolean', default: false },
    scrape: { type: 'string', multiple: true },
    'accelerator-models': { type: 'string' },
    'run-id': { type: 'string' },
  },
  help: {
    duration: 'how long the load runs, then everything stops (default 60s)',
    rate: 'open-loop requests per second (default 120)',
    model: `model to serve: name[:w=widthScale,r=resolution] (default ${DEMO_MODEL})`,
    fault:
      'fault window type@startS-endS[:N | :param=value,…] (repeatable); default data_starvation from 40% to 65% of the run',
    scenario: 'JSON file of fault windows: {"faults":[{"type","startS","endS", ...params}]}',
    'ground-truth':
      'write the injected fault windows to this file as NDJSON (type, params, start/end ISO 8601)',
    'no-fault': 'run without any fault (a clean baseline)',
    port: 'HTTP port of the engine and the query API (default 0: any free port)',
    fresh: 'delete the data of earlier runs in the chDB data directory first (default: keep it)',
    'keep-data': 'accepted for old scripts; keeping the data is the default now',
    'otlp-sample-ratio':
      'share of ordinary requests exported as OTLP traces with --otlp-endpoint (default 0.1; errors and requests above the rolling p99 always)',
    'otlp-port': `collector: OTLP/HTTP port on 127.0.0.1 for foreign traces and metrics (default ${DEFAULT_OTLP_PORT}; when that one is taken, up runs without it and says so)`,
    'no-collect': 'run without the collector (no OTLP receiver, no scraping)',
    scrape: 'collector: Prometheus endpoint to scrape (repeatable), [instance=]http://host:port/metrics',
    'accelerator-models': 'collector: Triton models that run on the accelerator (see breakid collect --help)',
    'run-id':
      'name of this run on every span, sample and alert (letters, digits, ._:-; default up-<UTC time>-<random>)',
  },
  async run({ values }) {
    const cfg = loadConfig(values)
    const runId = parseRunIdFlag(values['run-id'], 'up')
    const logger = createLogger(cfg.logLevel)
    const durationMs = parseDurationMs(values.duration, 'duration')
    const rate = parsePositive(values.rate, 'rate', { max: 10_000 })
    const port = parsePort(values.port)
    const model = parseModelFlag(String(values.model))
    const faults = values['no-fault']
      ? []
      : faultsFromFlags(values.fault as string[] | undefined, values.scenario as string | undefined)
    if (!values['no-fault'] && faults.length === 0) {
      const s = Math.round(durationMs * 0.4)
      faults.push({ type: 'data_starvation', startMs: s, endMs: Math.round(durationMs * 0.65), delayMs: 60 })
    }
    prepareDataDir(cfg, { fresh: values.fresh === true, keepData: values['keep-data'] === true })

    const ch = await openStore(cfg)
    const transport = await openTransport(cfg, logger)
    const out = (line: string) => process.stdout.write(`${line}\n`)
    // first of the servers: a port the user named that is taken fails before anything else listens
    const collecting = values['no-collect'] ? undefined : await startCollector(cfg, transport, logger, values)
    const collector = collecting?.collector
    const receiver = await startReceiver({
      secret: cfg.webhookSecret,
      onAlert: ({ alert, receivedAtMs }) => {
        if (!alert) return
        const what = `${alert.type} ${alert.instance}/${alert.model}${alert.stage ? ` stage=${alert.stage}` : ''}`
        const detail =
          alert.status === 'firing'
            ? alert.summary
            : `cleared after ${((alert.updated_at_us - alert.starts_at_us) / 1e6).toFixed(1)} s`
        out(
          `[webhook] ${new Date(receivedAtMs).toISOString()} ${alert.status.toUpperCase()} ${what}: ${detail}`,
        )
      },
    })
    const pipeline = await startPipeline({
      transport,
      logger,
      clickhouse: ch,
      detectors: defaultDetectors(cfg.detectors),
      staleAfterMs: cfg.staleAfterMs,
      routes: webhookRoutes(cfg, [{ name: 'local-receiver', url: receiver.url, secret: cfg.webhookSecret }]),
    })
    const emitter = telemetryEmitter(cfg, transport, logger)
    const schedule = new FaultSchedule(faults)
    const otlp = cfg.otlpEndpoint
      ? new OtlpSpanExporter({
          endpoint: cfg.otlpEndpoint,
          sampleRatio: parseSampleRatio(values['otlp-sample-ratio']),
        })
      : undefined
    const engine = new Engine({
      models: [model],
      spanObservers: otlp ? [otlp.observe] : [],
      modelCacheDir: cfg.modelCacheDir,
      logger,
      emitter,
      faults: schedule,
      identity: { fleet: cfg.fleet, instance: cfg.instance },
      executor: { executionProvider: cfg.executionProvider },
      runId,
    })
    out(`run: ${runId}`)
    await engine.start()
    if (values['ground-truth']) writeFileSync(String(values['ground-truth']), schedule.groundTruthNdjson())
    const token = resolveApiToken(cfg)
    const limits = queryLimits(cfg)
    const app = buildEngineApp(engine, { apiToken: token.token, tokenHint: token.hint })
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
    const address = await app.listen({ host: '127.0.0.1', port })
    // first, so a person can open it while the rest starts; the link works once (dashboard/session.ts)
    out(`dashboard: ${dashboardLink(address, sessions, true)}`)
    const statePath = upStatePath(cfg.dataDir)
    writeFileSync(statePath, JSON.stringify({ pid: process.pid, url: address }))

    const loaded = engine.models.get(model.name)!
    const bodies = Array.from({ length: 8 }, (_, seed) =>
      JSON.stringify({ inputs: toKServeInputs(getModel(model.name).inputGenerator(seed, 1, model.options)) }),
    )
    out(
      `breakid up: engine ${address} serving ${model.name} v${loaded.meta.version}; ${rate} req/s for ${durationMs / 1000}s`,
    )
    out(
      `breakid up: query API ${address}/api (token in ${token.path ?? 'the configured --api-token'}; breakid query/sql use it)`,
    )
    out(
      `breakid up: ${transport.kind === 'kafka' ? `Kafka ${cfg.kafkaBrokers.join(',')}` : 'embedded bus'}, ${ch.embedded ? `chDB ${cfg.dataDir}` : 'ClickHouse server'}, webhook receiver ${receiver.url}`,
    )
    if (collecting) out(collecting.line)
    for (const f of schedule.groundTruth()) {
      out(
        `breakid up: fault ${f.type} scheduled ${new Date(f.startEpochMs).toISOString()} → ${new Date(f.endEpochMs).toISOString()}`,
      )
    }

    const report = await runLoad({
      url: `${address}/v2/models/${model.name}/infer`,
      bodies,
      ratePerSec: rate,
      durationMs,
      maxOutstanding: 4096,
    })
    await app.close()
    await engine.stop()
    await otlp?.shutdown()
    await collector?.stop() // open traces go out with what they have
    const collected = collector?.counters.total('assembled') ?? 0
    await waitForPipeline(pipeline, engine.completions + collected, receiver.alerts.length)
    await pipeline.stop()

    // ----- summary -----
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
      `spans emitted ${engine.completions}, stored ${storedSpans} (${distinct} distinct request ids); telemetry dropped ${emitter.lost}`,
    )
    if (collector) {
      const c = collector.counters
      out(
        `collector: ${collected} foreign spans (${c.get('assembled', { kind: 'generic' })} generic, ${c.get('assembled', { kind: 'triton' })} Triton), ${c.total('hw_samples')} hardware samples, ${c.total('otlp_requests')} OTLP requests, ${c.total('scrapes')} scrapes`,
      )
    }
    const truth = schedule.groundTruth()
    for (const f of truth) {
      out(
        `fault ${f.type} injected ${new Date(f.startEpochMs).toISOString()} → ${new Date(f.endEpochMs).toISOString()}`,
      )
    }
    // one alert = one break: its firing and resolved deliveries share an id
    const byId = new Map<string, ReceivedAlert[]>()
    for (const r of receiver.alerts) if (r.alert) byId.set(r.alert.id, [...(byId.get(r.alert.id) ?? []), r])
    out(`alerts received by the webhook: ${byId.size} (${receiver.alerts.length} deliveries)`)
    for (const deliveries of byId.values()) {
      const firing = deliveries.find((r) => r.alert!.status === 'firing')
      const resolved = deliveries.find((r) => r.alert!.status === 'resolved')
      const a = (firing ?? deliveries[0]!).alert!
      const startMs = a.starts_at_us / 1000
      const fault = truth.find((f) => startMs >= f.startEpochMs && startMs <= f.endEpochMs)
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

    await receiver.stop()
    await transport.close()
    await ch.close()
    rmSync(statePath, { force: true })
    if (token.path) rmSync(token.path, { force: true })
    return 0
  },
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

/**
 * The collector next to the engine, feeding the same bus. The OTLP port is the standard 4318 unless
 * --otlp-port says otherwise; when the default is taken (a local OpenTelemetry Collector or Jaeger
 * often holds it) up runs without the receiver and says so, while a port the user named must work.
 */
async function startCollector(
  cfg: BreakidConfig,
  transport: Transport,
  logger: Logger,
  values: Record<string, unknown>,
): Promise<{ collector?: Collector; line: string }> {
  const explicitPort = values['otlp-port'] !== undefined
  const scrape: ScrapeTarget[] = ((values.scrape as string[] | undefined) ?? []).map(parseScrapeTarget)
  const collector = new Collector({
    producer: telemetryProducer(cfg, transport),
    logger: logger.child({ c: 'collect' }),
    fleet: cfg.fleet,
    otlpPort: explicitPort ? parsePort(values['otlp-port'], 'otlp-port') : DEFAULT_OTLP_PORT,
    scrape,
    acceleratorModels: values['accelerator-models']
      ? String(values['accelerator-models'])
          .split(',')
          .map((m) => m.trim())
          .filter(Boolean)
      : undefined,
    recordsPerMessage: cfg.recordsPerMessage,
  })
  try {
    await collector.start()
  } catch (err) {
    await collector.stop()
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err
    if (explicitPort) {
      throw new InvalidInputError(
        `--otlp-port ${String(values['otlp-port'])} is in use (pick another, or --no-collect)`,
      )
    }
    return {
      line: `breakid up: collector not started: OTLP port ${DEFAULT_OTLP_PORT} is in use (--otlp-port to pick another, --no-collect to go without)`,
    }
  }
  return {
    collector,
    line:
      `breakid up: collector OTLP/HTTP ${collector.otlpUrl}/v1/traces and /v1/metrics` +
      (scrape.length > 0 ? `; scraping ${scrape.map((t) => `${t.instance}=${t.url}`).join(', ')}` : ''),
  }
}

/** Waits (bounded) until every span is stored and every alert raised has been delivered. */
async function waitForPipeline(
  p: Awaited<ReturnType<typeof startPipeline>>,
  spansEmitted: number,
  _received: number,
): Promise<void> {
  const deadline = Date.now() + 60_000
  for (;;) {
    const stored = p.ingester?.counters.get('rows_stored_total', { table: 'spans' }) ?? spansEmitted
    const raised = p.detector?.counters.total('alerts_total') ?? 0
    const stats = p.notifier?.stats()
    // every alert raised was read, and no route owes one any more (delivered or dead-lettered)
    const settled = stats ? (stats.pending === 0 ? stats.read : 0) : raised
    if (stored >= spansEmitted && settled >= raised) return
    if (Date.now() > deadline) {
      process.stderr.write(
        `breakid up: pipeline did not drain in time (stored ${stored}/${spansEmitted} spans, alerts settled ${settled}/${raised})\n`,
      )
      return
    }
    await new Promise((r) => setTimeout(r, 100))
  }
}
