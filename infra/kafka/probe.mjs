// Readiness probe used by infra/kafka/kafka.sh: succeeds once a kafkajs admin
// client can fetch cluster metadata from the broker (the same path the tests use).
//   node infra/kafka/probe.mjs 127.0.0.1:9092            exit 0 = ready, 1 = not yet, 2 = no kafkajs
//   node infra/kafka/probe.mjs 127.0.0.1:9092 --warmup   also makes the broker create __consumer_offsets
//     now, so the first consumer group of a test run does not wait for it (GROUP_COORDINATOR_NOT_AVAILABLE)
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const broker = process.argv[2] ?? '127.0.0.1:9092'
const warmup = process.argv.includes('--warmup')
const require = createRequire(fileURLToPath(new URL('../../package.json', import.meta.url)))

let kafkajs
try {
  kafkajs = require('kafkajs')
} catch {
  console.error('probe: kafkajs is not installed (run npm ci); skipping the client check')
  process.exit(2)
}

const { Kafka, logLevel } = kafkajs
const kafka = new Kafka({
  clientId: 'breakid-kafka-probe',
  brokers: [broker],
  connectionTimeout: 1000,
  requestTimeout: 5000,
  retry: warmup ? { retries: 10, initialRetryTime: 100, maxRetryTime: 1000 } : { retries: 0 },
  logLevel: logLevel.NOTHING,
})
const admin = kafka.admin()
try {
  await admin.connect()
  const cluster = await admin.describeCluster()
  if (cluster.brokers.length === 0) throw new Error('no brokers in metadata')
  await admin.listTopics()
  if (warmup) await admin.describeGroups(['breakid-kafka-warmup'])
  console.log(`probe: ok (cluster ${cluster.clusterId}, controller ${cluster.controller})`)
  await admin.disconnect()
  process.exit(0)
} catch (err) {
  console.error(`probe: not ready: ${err instanceof Error ? err.message : String(err)}`)
  await admin.disconnect().catch(() => {})
  process.exit(1)
}
