/**
 * `breakid collect`: takes in foreign telemetry — OTLP/HTTP traces and metrics (Triton, any
 * OpenTelemetry-instrumented server) and Prometheus scrapes (Triton /metrics, DCGM exporter) — and
 * puts it on the telemetry topics as the engine's own records. With no Kafka configured it also runs
 * the ingest into chDB, the detectors and the notifier in this process, like `breakid serve`.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import Fastify from 'fastify'
import { Collector } from '../../collect/collector.ts'
import { parseSpanMapping } from '../../collect/generic/server-spans.ts'
import { parseScrapeTarget } from '../../collect/prometheus/scraper.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { createLogger } from '../../core/logger.ts'
import { parseDurationMs, parsePort } from '../../app/flags.ts'
import type { Command } from '../command.ts'
import { loadConfig } from '../../app/config.ts'
import { observePipeline, startOpsServer } from '../../app/ops.ts'
import { localPipeline } from '../../app/pipeline.ts'
import { openClickHouse } from '../../store/client.ts'
import { dashboardLink, dashboardPlugin } from '../../dashboard/plugin.ts'
import { DashboardSessions } from '../../dashboard/session.ts'
import { openTransport, runUntilSignal, telemetryProducer, upStatePath } from '../../app/runtime.ts'
import { costFigure, queryLimits, resolveApiToken } from '../../app/access.ts'

function spanMapping(file: unknown) {
  if (file === undefined) return undefined
  try {
    return parseSpanMapping(JSON.parse(readFileSync(String(file), 'utf8')))
  } catch (err) {
    if (err instanceof InvalidInputError) throw err
    throw new InvalidInputError(`--span-mapping: cannot read ${String(file)}: ${(err as Error).message}`)
  }
}

const modelList = (value: unknown): string[] | undefined =>
  value === undefined
    ? undefined
    : String(value)
        .split(',')
        .map((m) => m.trim())
        .filter(Boolean)

export const collect: Command = {
  summary: 'take in OTLP traces/metrics and Prometheus scrapes (Triton, DCGM, any OTel server)',
  usage:
    'breakid collect [--otlp-port 4318] [--otlp-host 0.0.0.0] [--scrape [instance=]URL ...] [--scrape-interval 10s] [--accelerator-models m1,m2]',
  options: {
    'otlp-port': { type: 'string', default: '4318' },
    'otlp-host': { type: 'string', default: '127.0.0.1' },
    scrape: { type: 'string', multiple: true },
    'scrape-interval': { type: 'string', default: '10s' },
    'triton-models': { type: 'string' },
    'accelerator-models': { type: 'string' },
    'max-wait': { type: 'string', default: '30s' },
    'span-mapping': { type: 'string' },
    'query-port': { type: 'string', default: '0' },
  },
  help: {
    'otlp-port': 'OTLP/HTTP port for POST /v1/traces and /v1/metrics (default 4318)',
    'otlp-host': 'listen address (default 127.0.0.1; 0.0.0.0 to take telemetry from other hosts)',
    scrape:
      'Prometheus endpoint to scrape (repeatable): [instance=]http://host:port/metrics; targets with one instance merge into one hardware sample',
    'scrape-interval': 'time between scrapes (default 10s)',
    'triton-models': 'comma-separated Triton models counted in hardware samples (default all)',
    'accelerator-models':
      'comma-separated Triton models that run on the accelerator: only their compute is executor busy time and only their queue the executor queue (name them when CPU preprocessing models or ensembles share the server; default all)',
    'max-wait': 'how long a trace waits for its late parts (default 30s)',
    'span-mapping':
      'JSON file: {"modelAttributes":[…],"modelVersionAttributes":[…],"stages":{"<span name>":"<stage>"}}',
    'query-port':
      'port of the query API and the dashboard on 127.0.0.1 (default 0: any free port); served without Kafka (breakid query/sql use it while this holds chDB) or with CLICKHOUSE_URL',
  },
  async run({ values }) {
    const cfg = loadConfig(values)
    const logger = createLogger(cfg.logLevel)
    const scrape = ((values.scrape as string[] | undefined) ?? []).map(parseScrapeTarget)
    // first, so probes get answers (alive, not ready yet) while Kafka and the receiver start
    const ops = await startOpsServer(cfg, 'collect', logger)
    const transport = await openTransport(cfg, logger)
    const local = await localPipeline(cfg, transport, logger)
    const ch = local?.ch
    const pipeline = local?.pipeline
    const collector = new Collector({
      producer: telemetryProducer(cfg, transport),
      logger: logger.child({ c: 'collect' }),
      fleet: cfg.fleet,
      otlpPort: parsePort(values['otlp-port'], 'otlp-port'),
      otlpHost: String(values['otlp-host']),
      scrape,
      scrapeIntervalMs: parseDurationMs(values['scrape-interval'], 'scrape-interval'),
      tritonModels: modelList(values['triton-models']),
      acceleratorModels: modelList(values['accelerator-models']),
      maxWaitMs: parseDurationMs(values['max-wait'], 'max-wait'),
      spanMapping: spanMapping(values['span-mapping']),
      recordsPerMessage: cfg.recordsPerMessage,
    })
    await collector.start()
    // The query API and the dashboard read the chDB this process writes, or the ClickHouse server the
    // ingest writes (read as it is: no migration). While chDB holds the data directory,
    // `breakid query`/`sql`/`report` ask this process instead (up.json says where).
    const readCh =
      ch ??
      (cfg.clickhouseUrl
        ? openClickHouse({ url: cfg.clickhouseUrl, dataDir: cfg.dataDir, database: cfg.database })
        : undefined)
    const queryApi = readCh ? Fastify({ logger: false }) : undefined
    let queryUrl: string | undefined
    const statePath = upStatePath(cfg.dataDir)
    // the query API takes the token `serve` and `up` use (configured, else generated into the data dir)
    const token = queryApi ? resolveApiToken(cfg) : undefined
    if (queryApi && readCh && token) {
      const sessions = new DashboardSessions()
      await queryApi.register(dashboardPlugin, {
        ch: readCh,
        limits: queryLimits(cfg),
        apiToken: token.token,
        tokenHint: token.hint,
        sessions,
        cost: costFigure(cfg),
        source: `breakid collect, ${readCh.embedded ? `chDB ${cfg.dataDir}` : 'ClickHouse server'}`,
      })
      queryUrl = await queryApi.listen({
        host: '127.0.0.1',
        port: parsePort(values['query-port'], 'query-port'),
      })
      if (ch) writeFileSync(statePath, JSON.stringify({ pid: process.pid, url: queryUrl }))
      process.stdout.write(`dashboard: ${dashboardLink(queryUrl, sessions, true)}\n`)
    }
    ops.register(collector.counters)
    ops.addReadinessCheck('otlp receiver', () =>
      collector.otlpUrl === undefined ? 'the OTLP/HTTP receiver is not listening' : undefined,
    )
    if (pipeline) observePipeline(ops, pipeline, transport, ch)
    ops.markStarted()
    logger.info(
      {
        otlp: collector.otlpUrl,
        scrape: scrape.map((t) => `${t.instance}=${t.url}`),
        transport: transport.kind,
        queries: queryUrl,
        apiToken: token ? (token.path ?? 'configured') : undefined,
      },
      queryUrl ? 'collecting; the query API needs "Authorization: Bearer <apiToken>"' : 'collecting',
    )
    // run in reverse: the collector, then the in-process pipeline, the transport, the ops endpoints
    await runUntilSignal(logger, [
      () => ops.close(),
      () => transport.close(),
      async () => local?.stop(),
      async () => {
        await queryApi?.close()
        if (ch) rmSync(statePath, { force: true })
        if (token?.path) rmSync(token.path, { force: true })
        // a server client of our own; the chDB one closes with the pipeline
        if (readCh !== ch) await readCh?.close()
      },
      () => collector.stop(),
    ])
    return 0
  },
}
