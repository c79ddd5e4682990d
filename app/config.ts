/**
 * One validated, frozen configuration object. Precedence: command-line flags > environment
 * (`BREAKID_*`, `KAFKA_BROKERS`, `CLICKHOUSE_URL`) > config file (`--config` or `BREAKID_CONFIG`,
 * JSON) > defaults. Only this module reads the environment.
 */
import { readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { resolve } from 'node:path'
import { InvalidInputError } from '../core/errors.ts'

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
  webhookUrls: readonly string[]
  webhookSecret: string | undefined
  fleet: string
  instance: string
  logLevel: string
  /** onnxruntime execution provider: cpu, or cuda where the CUDA binaries were installed (README) */
  executionProvider: 'cpu' | 'cuda'
  /** OTLP/HTTP collector base URL (`/v1/traces` appended) for request traces; undefined → no export */
  otlpEndpoint: string | undefined
  /** most telemetry records per Kafka message (contract/container.ts); 1: one per message */
  recordsPerMessage: number
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
  fleet: 'default',
  instance: hostname(),
  logLevel: 'info',
  executionProvider: 'cpu',
  otlpEndpoint: undefined,
  recordsPerMessage: 64,
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
  'webhook-url': { key: 'webhookUrls', help: 'webhook URL(s) for alerts, comma-separated' },
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

function validate(raw: Raw): BreakidConfig {
  const c = { ...DEFAULTS }
  for (const [k, v] of Object.entries(raw) as [keyof BreakidConfig, unknown][]) {
    if (v === undefined) continue
    if (!(k in DEFAULTS)) throw new InvalidInputError(`unknown configuration key "${k}"`)
    if (k === 'kafkaBrokers' || k === 'webhookUrls') (c as Record<string, unknown>)[k] = list(v, k)
    else if (k === 'recordsPerMessage') c.recordsPerMessage = recordsPerMessage(v)
    else if (typeof v !== 'string') throw new InvalidInputError(`${k}: expected a string`)
    else
      (c as Record<string, unknown>)[k] =
        v === '' && (k === 'clickhouseUrl' || k === 'webhookSecret' || k === 'otlpEndpoint') ? undefined : v
  }
  for (const b of c.kafkaBrokers) {
    if (!/^[^:\s]+:\d+$/.test(b)) throw new InvalidInputError(`kafkaBrokers: "${b}" is not host:port`)
  }
  for (const u of [
    ...c.webhookUrls,
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
  c.dataDir = resolve(c.dataDir)
  c.modelCacheDir = resolve(c.modelCacheDir)
  return Object.freeze({
    ...c,
    kafkaBrokers: Object.freeze(c.kafkaBrokers),
    webhookUrls: Object.freeze(c.webhookUrls),
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
  return validate({ ...fromFile, ...fromEnv, ...fromFlags })
}
