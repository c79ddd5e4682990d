// Entry point of the Kafka producer thread (kafka-worker.ts): worker threads do not inherit the
// TypeScript loader of the main thread, so this registers it first, like bin/breakid.mjs does.
import { register } from 'tsx/esm/api'

register()
const { runProducerThread } = await import('./kafka-worker.ts')
await runProducerThread()
