/**
 * One validated, frozen configuration object. Precedence: command-line flags > environment
 * (`BREAKID_*`, `KAFKA_BROKERS`, `CLICKHOUSE_URL`) > config file (`--config` or `BREAKID_CONFIG`,
 * JSON) > defaults. Only this module reads the environment.
 */
import { readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { resolve } from 'node:path'
import { InvalidInputError } from '../core/errors.ts'
import { DEFAULT_QUERY_LIMITS } from '../queries/limits.ts'
import { type NotifyRoute, parseRouteConfig, parseWebhookUrl, splitFormatPrefix } from '../notify/routes.ts'
import { type Pricing, parsePricing } from '../compare/cost.ts'
import { type DetectorConfig, resolveDetectorConfig } from '../detectors/registry.ts'

export interface BreakidConfig {
  /** Kafka bootstrap brokers; empty → the embedded in-process bus */
  kafkaBrokers: readonly string[]
  /** prefix of every Kafka topic and consumer group name, to share a cluster */
  topicPrefix: string
  /** ClickHouse server URL; undefined → embedded chDB in `dataDir` */
  clickhouseUrl: string | undefined
  database: string
  dataDir: string
  modelCacheDir: string
  /** plain webhook URLs, each optionally `<format>+<url>` (json, slack, alertmanager) */
  webhookUrls: readonly string[]
  /** signs the `webhookUrls` routes, and the `webhookRoutes` that set no secret of their own */
  webhookSecret: string | undefined
  /** routes with their own settings, from the config file (notify/routes.ts NotifyRoute) */
  webhookRoutes: readonly NotifyRoute[]
  fleet: string
  instance: string
  logLevel: string
  /** onnxruntime execution provider: cpu, or cuda where the CUDA binaries were installed (README) */
  executionProvider: 'cpu' | 'cuda'
  /** OTLP/HTTP collector base URL (`/v1/traces` appended) for request traces; undefined → no export */
  otlpEndpoint: string | undefined
  /** most telemetry records per Kafka message (contract/container.ts); 1: one per message */
  recordsPerMessage: number
  /**
   * bearer token of the control endpoints (model repository, query API) of `serve` and `up`;
   * undefined → they generate one per run into `<dataDir>/api-token` (app/runtime.ts)
   */
  apiToken: string | undefined
  /** query limits (queries/limits.ts): longest run, seconds */
  queryMaxExecutionTimeS: number
  /** memory one query may use, bytes */
  queryMaxMemoryBytes: number
  /** most rows a result may have (more is an error) */
  queryMaxResultRows: number
  /** most bytes a result may have */
  queryMaxResultBytes: number
  /** most rows a query may read */
  queryMaxRowsToRead: number
  /** queries that run at once */
  queryConcurrency: number
  /** queries that may wait for a turn; beyond, 503 */
  queryQueueLength: number
  /**
   * port of a service's ops endpoints (/healthz, /readyz, /metrics: app/ops.ts); undefined → the
   * command's own default (SERVICE_METRICS_PORTS), 0 → any free port
   */
  metricsPort: number | undefined
  /** listen address of the ops endpoints; 0.0.0.0 in a container so probes and Prometheus reach it */
  metricsHost: string
  /**
   * price per instance-hour of each instance type and which type each instance or host is
   * (compare/cost.ts): cost per 1,000 inferences, idle and starved executor time, cache savings.
   * Undefined: no cost figures. From the config file, or BREAKID_PRICING as JSON.
   */
  pricing: Pricing | undefined
  /** days raw spans are kept (ClickHouse TTL) */
  spanRetentionDays: number
  /** days hardware samples, rollups and dead letters are kept */
  retentionDays: number
  /**
   * Per detector type: `enabled` and its settings (detectors/registry.ts lists them; `breakid
   * detectors` shows the effective values). Validated here; layers merge per setting.
   */
  detectors: DetectorConfig
  /** a firing alert whose key nothing evaluated for this long (event time) resolves as stale, ms */
  staleAfterMs: number
}

const DEFAULTS: BreakidConfig = {
  kafkaBrokers: [],
  topicPrefix: '',
  clickhouseUrl: undefined,
  database: 'breakid',
  dataDir: '.breakid/data',
  modelCacheDir: '.cache/models',
  webhookUrls: [],
  webhookSecret: undefined,
  webhookRoutes: [],
  fleet: 'default',
  instance: hostname(),
  logLevel: 'info',
  executionProvider: 'cpu',
  otlpEndpoint: undefined,
  recordsPerMessage: 64,
  apiToken: undefined,
  queryMaxExecutionTimeS: DEFAULT_QUERY_LIMITS.maxExecutionTimeS,
  queryMaxMemoryBytes: DEFAULT_QUERY_LIMITS.maxMemoryBytes,
  queryMaxResultRows: DEFAULT_QUERY_LIMITS.maxResultRows,
  queryMaxResultBytes: DEFAULT_QUERY_LIMITS.maxResultBytes,
  queryMaxRowsToRead: DEFAULT_QUERY_LIMITS.maxRowsToRead,
  queryConcurrency: DEFAULT_QUERY_LIMITS.concurrency,
  queryQueueLength: DEFAULT_QUERY_LIMITS.queueLength,
  metricsPort: undefined,
  metricsHost: '127.0.0.1',
  pricing: undefined,
  spanRetentionDays: 7,
  retentionDays: 90,
  detectors: {},
  staleAfterMs: 600_000,
}

type Raw = Partial<Record<keyof BreakidConfig, unknown>>

const ENV: Record<string, keyof BreakidConfig> = {
  KAFKA_BROKERS: 'kafkaBrokers',
  CLICKHOUSE_URL: 'clickhouseUrl',
  BREAKID_TOPIC_PREFIX: 'topicPrefix',
  BREAKID_DATABASE: 'database',
  BREAKID_DATA_DIR: 'dataDir',
  BREAKID_MODEL_CACHE: 'modelCacheDir',
  BREAKID_WEBHOOK_URLS: 'webhookUrls',
  BREAKID_WEBHOOK_SECRET: 'webhookSecret',
  BREAKID_FLEET: 'fleet',
  BREAKID_INSTANCE: 'instance',
  BREAKID_LOG_LEVEL: 'logLevel',
  BREAKID_EXECUTION_PROVIDER: 'executionProvider',
  // the OpenTelemetry standard name first, so breakid's own wins when both are set
  OTEL_EXPORTER_OTLP_ENDPOINT: 'otlpEndpoint',
  BREAKID_OTLP_ENDPOINT: 'otlpEndpoint',
  BREAKID_RECORDS_PER_MESSAGE: 'recordsPerMessage',
  BREAKID_API_TOKEN: 'apiToken',
  BREAKID_QUERY_MAX_EXECUTION_TIME: 'queryMaxExecutionTimeS',
  BREAKID_QUERY_MAX_MEMORY: 'queryMaxMemoryBytes',
  BREAKID_QUERY_MAX_RESULT_ROWS: 'queryMaxResultRows',
  BREAKID_QUERY_MAX_RESULT_BYTES: 'queryMaxResultBytes',
  BREAKID_QUERY_MAX_ROWS_TO_READ: 'queryMaxRowsToRead',
  BREAKID_QUERY_CONCURRENCY: 'queryConcurrency',
  BREAKID_QUERY_QUEUE: 'queryQueueLength',
  BREAKID_METRICS_PORT: 'metricsPort',
  BREAKID_METRICS_HOST: 'metricsHost',
  BREAKID_PRICING: 'pricing',
  BREAKID_SPAN_RETENTION_DAYS: 'spanRetentionDays',
  BREAKID_RETENTION_DAYS: 'retentionDays',
  BREAKID_DETECTORS: 'detectors',
  BREAKID_STALE_AFTER_MS: 'staleAfterMs',
}

/** every environment variable read, for --help */
export const ENV_NAMES = ['BREAKID_CONFIG', ...Object.keys(ENV)]

/** Flag names (kebab-case) of the shared options, for --help and parseArgs. */
export const CONFIG_FLAGS = {
  'kafka-brokers': { key: 'kafkaBrokers', help: 'comma-separated Kafka brokers (default: embedded bus)' },
  'topic-prefix': { key: 'topicPrefix', help: 'prefix of Kafka topic and group names (default none)' },
  'clickhouse-url': { key: 'clickhouseUrl', help: 'ClickHouse server URL (default: embedded chDB)' },
  database: { key: 'database', help: 'ClickHouse database (default: breakid)' },
  'data-dir': { key: 'dataDir', help: 'chDB data directory (default: .breakid/data)' },
  'model-cache': { key: 'modelCacheDir', help: 'generated ONNX models (default: .cache/models)' },
  'webhook-url': {
    key: 'webhookUrls',
    help: 'webhook URL(s) for alerts, comma-separated; prefix slack+ or alertmanager+ for those bodies',
  },
  'webhook-secret': { key: 'webhookSecret', help: 'HMAC-SHA256 secret for signing webhooks' },
  fleet: { key: 'fleet', help: 'fleet name on telemetry (default: default)' },
  instance: { key: 'instance', help: 'instance name on telemetry (default: hostname)' },
  'log-level': { key: 'logLevel', help: 'trace|debug|info|warn|error (default: info)' },
  'execution-provider': { key: 'executionProvider', help: 'cpu (default) or cuda (see README: GPU)' },
  'otlp-endpoint': {
    key: 'otlpEndpoint',
    help: 'OTLP/HTTP collector URL for request traces (default: none)',
  },
  'records-per-message': {
    key: 'recordsPerMessage',
    help: 'most telemetry records per Kafka message, 1 for one each (default: 64)',
  },
  'api-token': {
    key: 'apiToken',
    help: 'bearer token of the control endpoints (default: a new one per run in <data-dir>/api-token)',
  },
  'query-max-execution-time': {
    key: 'queryMaxExecutionTimeS',
    help: 'longest a query may run: 10s, 1500ms, 2m (default 10s)',
  },
  'query-max-memory': { key: 'queryMaxMemoryBytes', help: 'memory per query: 256MiB, 1GiB (default 256MiB)' },
  'query-max-result-rows': {
    key: 'queryMaxResultRows',
    help: 'most rows a query may return (default 100000)',
  },
  'query-max-result-bytes': {
    key: 'queryMaxResultBytes',
    help: 'most bytes a result may have (default 64MiB)',
  },
  'query-max-rows-to-read': {
    key: 'queryMaxRowsToRead',
    help: 'most rows a query may read (default 100000000)',
  },
  'query-concurrency': { key: 'queryConcurrency', help: 'queries that run at once (default 2)' },
  'query-queue': { key: 'queryQueueLength', help: 'queries that may wait; more get 503 (default 16)' },
  'metrics-port': {
    key: 'metricsPort',
    help: 'port of /healthz, /readyz, /metrics of ingest|detect|notify|collect (default 9401–9404; 0: any)',
  },
  'metrics-host': { key: 'metricsHost', help: 'listen address of those endpoints (default 127.0.0.1)' },
  'span-retention-days': {
    key: 'spanRetentionDays',
    help: 'days ClickHouse keeps raw spans (default: 7)',
  },
  'retention-days': {
    key: 'retentionDays',
    help: 'days ClickHouse keeps hardware samples, rollups and dead letters (default: 90)',
  },
  detectors: {
    key: 'detectors',
    help: 'detector settings, type.setting=value,… e.g. slo_p99_breach.sloP99MsByModel.resnet50=250,anomaly.enabled=false (breakid detectors lists them)',
  },
  'stale-after-ms': {
    key: 'staleAfterMs',
    help: 'a firing alert nothing evaluated for this long resolves as stale (default 600000)',
  },
  config: { key: undefined, help: 'JSON config file' },
} as const satisfies Record<string, { key: keyof BreakidConfig | undefined; help: string }>

const list = (v: unknown, name: string): string[] => {
  if (Array.isArray(v)) return v.map(String).filter((s) => s.length > 0)
  if (typeof v === 'string')
    return v
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0)
  throw new InvalidInputError(`${name}: expected a list or comma-separated string`)
}

function recordsPerMessage(v: unknown): number {
  const n =
    typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : Number.NaN
  if (!Number.isInteger(n) || n < 1 || n > 10_000) {
    throw new InvalidInputError(
      `recordsPerMessage: expected a whole number from 1 to 10000, got ${JSON.stringify(v)}`,
    )
  }
  return n
}

/** A whole number in [min, max] from a number or a string (`1_000` and `1e6` are not accepted). */
function wholeNumber(v: unknown, key: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n =
    typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : Number.NaN
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new InvalidInputError(
      `${key}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`,
    )
  }
  return n
}

const BYTE_UNITS: Record<string, number> = { '': 1, B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 }

/** `268435456`, `256MiB`, `1GiB` → bytes. */
function bytes(v: unknown, key: string): number {
  const m =
    typeof v === 'number' ? [String(v), String(v), ''] : /^(\d+)\s*(B|KiB|MiB|GiB)?$/.exec(String(v).trim())
  const n = m ? Number(m[1]) * BYTE_UNITS[m[2] ?? '']! : Number.NaN
  if (!Number.isSafeInteger(n) || n < 1024 * 1024) {
    throw new InvalidInputError(
      `${key}: expected bytes of at least 1MiB (e.g. 268435456, 256MiB, 1GiB), got ${JSON.stringify(v)}`,
    )
  }
  return n
}

/** `10` (seconds), `10s`, `1500ms`, `2m` → seconds. */
function seconds(v: unknown, key: string): number {
  const m =
    typeof v === 'number'
      ? [String(v), String(v), 's']
      : /^(\d+(?:\.\d+)?)\s*(ms|s|m)?$/.exec(String(v).trim())
  const s = m ? Number(m[1]) * { ms: 0.001, s: 1, m: 60 }[(m[2] ?? 's') as 'ms' | 's' | 'm'] : Number.NaN
  if (!Number.isFinite(s) || s < 0.1 || s > 3600) {
    throw new InvalidInputError(
      `${key}: expected a duration from 100ms to 1h (e.g. 10, 10s, 1500ms), got ${JSON.stringify(v)}`,
    )
  }
  return s
}

function apiToken(v: unknown): string | undefined {
  if (v === '') return undefined
  if (typeof v !== 'string' || !/^[\x21-\x7e]{16,256}$/.test(v)) {
    throw new InvalidInputError('apiToken: expected 16 to 256 printable characters without spaces')
  }
  return v
}

/** `webhookRoutes` of a config file: a list of route objects, each checked by notify/routes.ts. */
function webhookRoutes(v: unknown): NotifyRoute[] {
  if (!Array.isArray(v)) throw new InvalidInputError('webhookRoutes: expected a list of routes')
  return v.map((r, i) => Object.freeze(parseRouteConfig(r, `webhookRoutes[${i}]`)))
}

function parseJson(text: string, key: string): unknown {
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new InvalidInputError(`${key}: not JSON: ${(err as Error).message}`)
  }
}

type Settings = Record<string, Record<string, unknown>>

/**
 * `type.setting=value,…` (a flag or environment variable) → `{ type: { setting: value } }`; a map
 * setting takes one more level (`slo_p99_breach.sloP99MsByModel.resnet50=250`). A comma inside a
 * value (a list setting) stays in it unless the next part starts a new `type.setting=`.
 */
export function parseDetectorSettings(text: string, name = 'detectors'): Settings {
  const out: Settings = {}
  for (const part of text.split(/,(?=\s*\w+\.[\w.]+\s*=)/)) {
    if (part.trim() === '') continue
    const m = /^\s*(\w+)\.(\w+)(?:\.([^=\s]+))?\s*=(.*)$/.exec(part)
    if (!m) {
      throw new InvalidInputError(
        `${name}: "${part.trim()}" is not type.setting=value (e.g. slo_p99_breach.sloP99Ms=250)`,
      )
    }
    const [, type, setting, mapKey, value] = m as unknown as [
      string,
      string,
      string,
      string | undefined,
      string,
    ]
    out[type] ??= {}
    const d = out[type]
    if (mapKey === undefined) d[setting] = value.trim()
    else {
      d[setting] ??= {}
      ;(d[setting] as Record<string, unknown>)[mapKey] = value.trim()
    }
  }
  return out
}

/** Detector settings from a file (an object) or a flag/environment string, checked for shape. */
function detectorSettings(v: unknown): Settings {
  if (typeof v === 'string') return parseDetectorSettings(v)
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new InvalidInputError('detectors: expected an object of settings per detector type')
  for (const [type, settings] of Object.entries(v)) {
    if (typeof settings !== 'object' || settings === null || Array.isArray(settings))
      throw new InvalidInputError(`detectors.${type}: expected an object of settings`)
  }
  return v as Settings
}

/** Layers detector settings: later layers win per setting (and per entry of a map setting). */
function mergeDetectorSettings(layers: Settings[]): Settings {
  const out: Settings = {}
  for (const layer of layers) {
    for (const [type, settings] of Object.entries(layer)) {
      out[type] ??= {}
      const d = out[type]
      for (const [k, v] of Object.entries(settings)) {
        const prev = d[k]
        d[k] =
          typeof v === 'object' &&
          v !== null &&
          !Array.isArray(v) &&
          typeof prev === 'object' &&
          prev !== null
            ? { ...(prev as object), ...(v as object) }
            : v
      }
    }
  }
  return out
}

function validate(raw: Raw): BreakidConfig {
  const c = { ...DEFAULTS }
  for (const [k, v] of Object.entries(raw) as [keyof BreakidConfig, unknown][]) {
    if (v === undefined) continue
    if (!(k in DEFAULTS)) throw new InvalidInputError(`unknown configuration key "${k}"`)
    if (k === 'kafkaBrokers' || k === 'webhookUrls') (c as Record<string, unknown>)[k] = list(v, k)
    else if (k === 'recordsPerMessage') c.recordsPerMessage = recordsPerMessage(v)
    else if (k === 'apiToken') c.apiToken = apiToken(v)
    else if (k === 'queryMaxExecutionTimeS') c.queryMaxExecutionTimeS = seconds(v, k)
    else if (k === 'queryMaxMemoryBytes' || k === 'queryMaxResultBytes') c[k] = bytes(v, k)
    else if (k === 'queryMaxResultRows' || k === 'queryMaxRowsToRead') c[k] = wholeNumber(v, k, 1)
    else if (k === 'queryConcurrency') c.queryConcurrency = wholeNumber(v, k, 1, 3)
    else if (k === 'queryQueueLength') c.queryQueueLength = wholeNumber(v, k, 0, 10_000)
    else if (k === 'webhookRoutes') c.webhookRoutes = webhookRoutes(v)
    else if (k === 'metricsPort') c.metricsPort = v === '' ? undefined : wholeNumber(v, k, 0, 65_535)
    else if (k === 'pricing') c.pricing = parsePricing(typeof v === 'string' ? parseJson(v, 'pricing') : v)
    // at most 10 000 days: more pushes the expiry of today's rows past 2106, where ClickHouse's
    // DateTime ends and wraps, and the rows would expire at once
    else if (k === 'spanRetentionDays' || k === 'retentionDays') c[k] = wholeNumber(v, k, 1, 10_000)
    else if (k === 'detectors') c.detectors = v as DetectorConfig
    else if (k === 'staleAfterMs') {
      const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v
      if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0)
        throw new InvalidInputError(`staleAfterMs: expected a number of ms > 0, got ${JSON.stringify(v)}`)
      c.staleAfterMs = n
    } else if (typeof v !== 'string') throw new InvalidInputError(`${k}: expected a string`)
    else
      (c as Record<string, unknown>)[k] =
        v === '' && (k === 'clickhouseUrl' || k === 'webhookSecret' || k === 'otlpEndpoint') ? undefined : v
  }
  for (const b of c.kafkaBrokers) {
    if (!/^[^:\s]+:\d+$/.test(b)) throw new InvalidInputError(`kafkaBrokers: "${b}" is not host:port`)
  }
  for (const u of c.webhookUrls) parseWebhookUrl(splitFormatPrefix(u).url)
  for (const u of [
    ...(c.clickhouseUrl ? [c.clickhouseUrl] : []),
    ...(c.otlpEndpoint ? [c.otlpEndpoint] : []),
  ]) {
    let url: URL
    try {
      url = new URL(u)
    } catch {
      throw new InvalidInputError(`"${u}" is not a URL`)
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new InvalidInputError(`"${u}": expected http(s)`)
  }
  if (c.executionProvider !== 'cpu' && c.executionProvider !== 'cuda') {
    throw new InvalidInputError(`executionProvider: "${c.executionProvider}" is not cpu or cuda`)
  }
  if (!/^[A-Za-z0-9._-]*$/.test(c.topicPrefix))
    throw new InvalidInputError(`topicPrefix: invalid "${c.topicPrefix}"`)
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(c.database))
    throw new InvalidInputError(`database: invalid name "${c.database}"`)
  // every detector type and setting known and in range; errors name detectors.<type>.<setting>
  resolveDetectorConfig(c.detectors)
  c.dataDir = resolve(c.dataDir)
  c.modelCacheDir = resolve(c.modelCacheDir)
  return Object.freeze({
    ...c,
    kafkaBrokers: Object.freeze(c.kafkaBrokers),
    webhookUrls: Object.freeze(c.webhookUrls),
    webhookRoutes: Object.freeze(c.webhookRoutes),
  })
}

export function loadConfig(
  flags: Record<string, unknown>,
  env: NodeJS.ProcessEnv = process.env,
): BreakidConfig {
  const file = (flags.config as string | undefined) ?? env.BREAKID_CONFIG
  let fromFile: Raw = {}
  if (file) {
    try {
      fromFile = JSON.parse(readFileSync(file, 'utf8')) as Raw
    } catch (err) {
      throw new InvalidInputError(`cannot read config file ${file}: ${(err as Error).message}`)
    }
  }
  const fromEnv: Raw = {}
  for (const [name, key] of Object.entries(ENV)) if (env[name] !== undefined) fromEnv[key] = env[name]
  const fromFlags: Raw = {}
  for (const [flag, { key }] of Object.entries(CONFIG_FLAGS)) {
    if (key && flags[flag] !== undefined) fromFlags[key] = flags[flag]
  }
  const detectors = mergeDetectorSettings(
    [fromFile.detectors, fromEnv.detectors, fromFlags.detectors]
      .filter((v) => v !== undefined)
      .map(detectorSettings),
  )
  return validate({ ...fromFile, ...fromEnv, ...fromFlags, detectors })
}
