/**
 * `breakid up`: the whole pipeline in one process with load and a scheduled fault, then a summary
 * (composed in app/up.ts). The data stays queryable with `breakid query` / `breakid sql`, and the next
 * run adds to it unless `--fresh` deletes it first.
 */
import { parseScrapeTarget } from '../../collect/prometheus/scraper.ts'
import { createLogger } from '../../core/logger.ts'
import { faultsFromFlags } from '../../engine/faults.ts'
import { parseSampleRatio } from '../../engine/telemetry/otlp.ts'
import { loadConfig } from '../../app/config.ts'
import { parseDurationMs, parseModelFlag, parsePort, parsePositive, parseRunIdFlag } from '../../app/flags.ts'
import { DEFAULT_OTLP_PORT, DEMO_MODEL, demoFaults, startUp, type UpSettings } from '../../app/up.ts'
import type { Command } from '../command.ts'

export { DEMO_MODEL, prepareDataDir } from '../../app/up.ts'

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
    const logger = createLogger(cfg.logLevel)
    const durationMs = parseDurationMs(values.duration, 'duration')
    const noFault = values['no-fault'] === true
    const faults = noFault
      ? []
      : faultsFromFlags(values.fault as string[] | undefined, values.scenario as string | undefined)
    const settings: UpSettings = {
      runId: parseRunIdFlag(values['run-id'], 'up'),
      durationMs,
      rate: parsePositive(values.rate, 'rate', { max: 10_000 }),
      model: parseModelFlag(String(values.model)),
      faults: noFault || faults.length > 0 ? faults : demoFaults(durationMs),
      port: parsePort(values.port),
      fresh: values.fresh === true,
      keepData: values['keep-data'] === true,
      otlpSampleRatio: parseSampleRatio(values['otlp-sample-ratio']),
      groundTruthPath: values['ground-truth'] === undefined ? undefined : String(values['ground-truth']),
      collector: values['no-collect']
        ? undefined
        : {
            otlpPort:
              values['otlp-port'] === undefined ? undefined : parsePort(values['otlp-port'], 'otlp-port'),
            scrape: ((values.scrape as string[] | undefined) ?? []).map(parseScrapeTarget),
            acceleratorModels: values['accelerator-models']
              ? String(values['accelerator-models'])
                  .split(',')
                  .map((m) => m.trim())
                  .filter(Boolean)
              : undefined,
          },
    }
    const run = await startUp(cfg, settings, { logger, out: (line) => process.stdout.write(`${line}\n`) })
    try {
      await run.runToEnd()
    } finally {
      await run.stop()
    }
    return 0
  },
}
