/**
 * An engine serving `mlp` behind its KServe v2 routes (fastify inject, no socket), with telemetry on
 * an embedded bus and a reader that decodes every span from the spans topic: the in-process harness of
 * the engine and fault-injection tests.
 */
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { Engine, type EngineOptions } from '../../engine/engine.ts'
import { buildEngineApp } from '../../engine/http.ts'
import { TelemetryEmitter } from '../../engine/telemetry/emitter.ts'
import type { Span } from '../../contract/records.ts'
import { decodeRecords } from '../../contract/container.ts'
import { codecs, TOPICS } from '../../contract/topics.ts'
import { createLogger } from '../../core/logger.ts'
import { EmbeddedBus } from '../../bus/embedded-bus.ts'
import type { MessageConsumer } from '../../bus/transport.ts'
import { waitFor } from './wait.ts'

export const MODEL_CACHE_DIR = fileURLToPath(new URL('../../.cache/models', import.meta.url))

export interface EngineHarness {
  engine: Engine
  app: FastifyInstance
  bus: EmbeddedBus
  emitter: TelemetryEmitter
  /** every span emitted so far, decoded from the spans topic */
  spans(): Promise<Span[]>
  close(): Promise<void>
}

/**
 * An engine (not started) of the tests: `opts` override the defaults (model `mlp` from the shared model
 * cache, a silent logger, telemetry onto `bus`, instance `engine-0`, hardware samples hourly: tests
 * that need one call the sampler themselves).
 */
export function testEngine(opts: Partial<EngineOptions> = {}, bus = new EmbeddedBus()): Engine {
  const logger = opts.logger ?? createLogger('silent')
  return new Engine({
    models: [{ name: 'mlp' }],
    modelCacheDir: MODEL_CACHE_DIR,
    logger,
    emitter: new TelemetryEmitter({ producer: bus.producer(), logger }),
    identity: { fleet: 'test', host: 'host-a', instance: 'engine-0' },
    hwIntervalMs: 3_600_000,
    ...opts,
  })
}

/** Starts the harness; `opts` override the defaults of `testEngine`. */
export async function startEngineHarness(opts: Partial<EngineOptions> = {}): Promise<EngineHarness> {
  const bus = new EmbeddedBus()
  const emitter = new TelemetryEmitter({ producer: bus.producer(), logger: createLogger('silent') })
  const engine = testEngine({ emitter, ...opts }, bus)
  await engine.start()
  const app = buildEngineApp(engine)
  const decoded: Span[] = []
  const reader: MessageConsumer = bus.consumer({
    groupId: 'test-span-reader',
    topics: [TOPICS.spans],
    handler: async (batch) => {
      for (const m of batch.messages) decoded.push(...decodeRecords(codecs.span, m.value!))
    },
  })
  await reader.start()
  return {
    engine,
    app,
    bus,
    emitter,
    async spans() {
      await emitter.flush()
      await waitFor(() => reader.committedMessages === bus.endOffset(TOPICS.spans), {
        message: 'the span reader to catch up',
      })
      return decoded
    },
    async close() {
      await app.close()
      await engine.stop()
      await reader.stop()
    },
  }
}
