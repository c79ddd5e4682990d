/**
 * Helpers for tests that need a real Kafka broker.
 *
 * Start one with `infra/kafka/kafka.sh start` (single-node KRaft broker on 127.0.0.1:9092, no Docker),
 * or point KAFKA_BROKERS at another one. Tests call `requireKafka()` first: when no broker answers it
 * throws, so a test never silently skips.
 */
import { randomBytes } from 'node:crypto'
import { type Admin, Kafka, type KafkaConfig, logLevel } from 'kafkajs'
import '../../bus/kafkajs-idle-fix.ts'

const DEFAULT_BROKER = '127.0.0.1:9092'

/** Brokers from KAFKA_BROKERS (comma-separated host:port list), else 127.0.0.1:9092. */
export function kafkaBrokers(): string[] {
  const list = (process.env.KAFKA_BROKERS ?? '')
    .split(',')
    .map((b) => b.trim())
    .filter((b) => b.length > 0)
  return list.length > 0 ? list : [DEFAULT_BROKER]
}

/**
 * A kafkajs client for tests: short connection timeout, bounded retries, and only kafkajs warnings and
 * errors on stderr (KAFKAJS_LOG_LEVEL=debug|info|warn|error|nothing changes that).
 */
export function testKafka(clientId = 'breakid-test', brokers: string[] = kafkaBrokers()): Kafka {
  const config: KafkaConfig = {
    clientId,
    brokers,
    connectionTimeout: 3_000,
    requestTimeout: 10_000,
    retry: { retries: 8, initialRetryTime: 100, maxRetryTime: 2_000 },
    logLevel: envLogLevel(),
  }
  return new Kafka(config)
}

function envLogLevel(): logLevel {
  switch ((process.env.KAFKAJS_LOG_LEVEL ?? '').toLowerCase()) {
    case 'nothing':
      return logLevel.NOTHING
    case 'error':
      return logLevel.ERROR
    case 'info':
      return logLevel.INFO
    case 'debug':
      return logLevel.DEBUG
    default:
      return logLevel.WARN
  }
}

/**
 * A topic name no other test (or earlier run against the same broker) uses:
 * `<prefix>-<time>-<random>`, with characters Kafka does not allow in topic names replaced by '_'.
 */
export function uniqueTopic(prefix: string): string {
  const safe = prefix.replace(/[^a-zA-Z0-9._-]/g, '_').slice(0, 180) || 'test'
  return `${safe}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`
}

async function withAdmin<T>(
  brokers: string[],
  clientId: string,
  fn: (admin: Admin) => Promise<T>,
): Promise<T> {
  const admin = testKafka(clientId, brokers).admin()
  await admin.connect()
  try {
    return await fn(admin)
  } finally {
    await admin.disconnect()
  }
}

/**
 * Creates the topics that do not exist yet (replication factor 1) and waits until every partition of
 * every listed topic has a leader, so the first produce/consume does not hit LEADER_NOT_AVAILABLE.
 */
export async function createTopics(brokers: string[], topics: string[], partitions = 1): Promise<void> {
  if (topics.length === 0) return
  await withAdmin(brokers, 'breakid-test-admin', async (admin) => {
    const existing = new Set(await admin.listTopics())
    const missing = [...new Set(topics)].filter((t) => !existing.has(t))
    if (missing.length > 0) {
      await admin.createTopics({
        waitForLeaders: true,
        timeout: 10_000,
        topics: missing.map((topic) => ({ topic, numPartitions: partitions, replicationFactor: 1 })),
      })
    }
    const deadline = Date.now() + 10_000
    for (;;) {
      const { topics: meta } = await admin.fetchTopicMetadata({ topics })
      const leaderless = meta.filter(
        (t) => t.partitions.length === 0 || t.partitions.some((p) => p.leader < 0),
      )
      if (leaderless.length === 0) return
      if (Date.now() > deadline) {
        throw new Error(
          `Kafka topics without partition leaders after 10s: ${leaderless.map((t) => t.name).join(', ')}`,
        )
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  })
}

/**
 * Throws unless a broker answers within a few seconds. Call it in `before()` of every test file that
 * needs Kafka: a missing broker is a failure, never a skip.
 */
export async function requireKafka(brokers: string[] = kafkaBrokers(), timeoutMs = 5_000): Promise<void> {
  const admin = new Kafka({
    clientId: 'breakid-test-probe',
    brokers,
    connectionTimeout: Math.min(timeoutMs, 2_000),
    requestTimeout: timeoutMs,
    retry: { retries: 2, initialRetryTime: 200, maxRetryTime: 1_000 },
    logLevel: logLevel.NOTHING,
  }).admin()
  let timer: NodeJS.Timeout | undefined
  try {
    const probe = (async () => {
      await admin.connect()
      const cluster = await admin.describeCluster()
      if (cluster.brokers.length === 0) throw new Error('the cluster reported no brokers')
    })()
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)
    })
    await Promise.race([probe, timeout])
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err)
    throw new Error(
      `Kafka not reachable at ${brokers.join(',')} (${reason}); ` +
        'start it with infra/kafka/kafka.sh start or set KAFKA_BROKERS',
    )
  } finally {
    clearTimeout(timer)
    await admin.disconnect().catch(() => {})
  }
}
