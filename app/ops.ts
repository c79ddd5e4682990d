/**
 * The ops endpoints of a service (`breakid ingest|detect|notify|collect`), on their own port so
 * probes and Prometheus never share a listener with data:
 *
 * - `GET /healthz` (liveness): 200 while no watched consumer has crashed for good; a 503 here means
 *   "restart me" (kafkajs gave up on the group after a non-retriable error).
 * - `GET /readyz` (readiness): 200 once the service has started and every check passes — each
 *   consumer has joined its group and is consuming, ClickHouse answers `SELECT 1`; else 503 with the
 *   reason of each failing check.
 * - `GET /metrics`: the Prometheus text exposition of every registered source (core/metrics.ts
 *   renders it): the components' counters and histograms, each consumer's lag per partition (the
 *   group's committed offsets against the high watermarks, read from the broker on each scrape —
 *   Kafka's admin API, or the embedded bus's own log), and the process's CPU and memory.
 *
 * A command composes it: `startOpsServer` before the components start (so /healthz answers during a
 * slow start and /readyz says why it is not ready yet), then `watchConsumer` / `watchClickHouse` /
 * `register` for what it runs, then `markStarted()`. `observePipeline` does that for the consumers
 * of app/pipeline.ts. A new service (collect) does the same with its own counters and checks.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import {
  type MetricFamily,
  type MetricsSource,
  PROMETHEUS_CONTENT_TYPE,
  renderFamilies,
} from '../core/metrics.ts'
import type { MessageConsumer, Transport } from '../bus/transport.ts'
import type { ClickHouse } from '../store/client.ts'
import type { BreakidConfig } from './config.ts'
import type { Pipeline } from './pipeline.ts'

/** The default ops port of each service, distinct so all of them can run on one host unconfigured. */
export const SERVICE_METRICS_PORTS = { ingest: 9401, detect: 9402, notify: 9403, collect: 9404 } as const
export type ServiceName = keyof typeof SERVICE_METRICS_PORTS

/** resolves to undefined when healthy, else to the reason it is not */
export type Check = () => Promise<string | undefined> | string | undefined

export interface OpsServerOptions {
  logger: Logger
  /** the service name, on the `breakid_service_info` metric */
  service: string
  /** longest wait for one check or one lag read before it counts as failed. Default 2000. */
  checkTimeoutMs?: number
}

function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)
  })
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer))
}

const PROCESS_STARTED_S = Math.round(Date.now() / 1000 - process.uptime())

/** CPU, memory and start time of this process, under the names Prometheus client libraries use. */
const processMetrics: MetricsSource = {
  collect: () => {
    const cpu = process.cpuUsage()
    const gauge = (name: string, help: string, value: number): MetricFamily => ({
      name,
      type: 'gauge',
      help,
      samples: [{ name, labels: {}, value }],
    })
    return [
      {
        name: 'process_cpu_seconds_total',
        type: 'counter',
        help: 'User and system CPU time spent, seconds',
        samples: [{ name: 'process_cpu_seconds_total', labels: {}, value: (cpu.user + cpu.system) / 1e6 }],
      },
      gauge('process_resident_memory_bytes', 'Resident memory size, bytes', process.memoryUsage.rss()),
      gauge(
        'process_start_time_seconds',
        'Start time of the process since the Unix epoch',
        PROCESS_STARTED_S,
      ),
    ]
  },
}

export class OpsServer {
  readonly app: FastifyInstance
  private readonly sources: MetricsSource[] = [processMetrics]
  private readonly readiness = new Map<string, Check>()
  private readonly liveness = new Map<string, Check>()
  private readonly timeoutMs: number
  private started = false
  private lastReady = false
  private lagReadErrors = 0

  constructor(private readonly opts: OpsServerOptions) {
    this.timeoutMs = opts.checkTimeoutMs ?? 2_000
    // its own fastify instance: no plugin of the data path (queries, ingest of collect) shares it
    this.app = Fastify({ logger: false })
    this.app.get('/healthz', async (_req, reply) => {
      const failed = await this.run(this.liveness)
      return reply
        .code(Object.keys(failed).length === 0 ? 200 : 503)
        .send({ status: statusOf(failed), failed })
    })
    this.app.get('/readyz', async (_req, reply) => {
      const failed = this.started ? await this.run(this.readiness) : { service: 'starting' }
      return reply
        .code(Object.keys(failed).length === 0 ? 200 : 503)
        .send({ status: statusOf(failed), failed })
    })
    this.app.get('/metrics', async (_req, reply) => {
      return reply.header('content-type', PROMETHEUS_CONTENT_TYPE).send(await this.render())
    })
    this.register({
      collect: () => [
        {
          name: 'breakid_service_info',
          type: 'gauge',
          help: 'Always 1; names the service this process runs',
          samples: [{ name: 'breakid_service_info', labels: { service: opts.service }, value: 1 }],
        },
        {
          name: 'breakid_service_ready',
          type: 'gauge',
          help: '1 when /readyz would answer 200 at the last scrape of it, else 0',
          samples: [{ name: 'breakid_service_ready', labels: {}, value: this.lastReady ? 1 : 0 }],
        },
        {
          name: 'breakid_consumer_lag_read_errors_total',
          type: 'counter',
          help: 'Consumer lag reads that failed or timed out (the lag series are then left out)',
          samples: [
            { name: 'breakid_consumer_lag_read_errors_total', labels: {}, value: this.lagReadErrors },
          ],
        },
      ],
    })
  }

  register(source: MetricsSource): void {
    this.sources.push(source)
  }

  addReadinessCheck(name: string, check: Check): void {
    this.readiness.set(name, check)
  }

  addLivenessCheck(name: string, check: Check): void {
    this.liveness.set(name, check)
  }

  /**
   * A consumer's lag per partition on /metrics, its state on /readyz (consuming) and /healthz (not
   * crashed). Works before the consumer starts: the lag is then the whole backlog of its group.
   */
  watchConsumer(transport: Transport, consumer: Pick<MessageConsumer, 'state' | 'groupId' | 'topics'>): void {
    const group = consumer.groupId
    this.addReadinessCheck(`consumer ${group}`, () =>
      consumer.state === 'consuming' ? undefined : `consumer ${consumer.state}`,
    )
    this.addLivenessCheck(`consumer ${group}`, () =>
      consumer.state === 'crashed' ? 'the consumer crashed and will not restart' : undefined,
    )
    this.register({
      collect: async () => {
        const consuming: MetricFamily = {
          name: 'breakid_consumer_consuming',
          type: 'gauge',
          help: '1 while the consumer group member is assigned partitions and fetching',
          samples: [
            {
              name: 'breakid_consumer_consuming',
              labels: { group },
              value: consumer.state === 'consuming' ? 1 : 0,
            },
          ],
        }
        let lag: MetricFamily[] = []
        try {
          const partitions = await withTimeout(
            transport.consumerLag(group, consumer.topics),
            this.timeoutMs,
            `lag of ${group}`,
          )
          const series = (name: string, help: string, value: (p: (typeof partitions)[number]) => number) => ({
            name,
            type: 'gauge' as const,
            help,
            samples: partitions.map((p) => ({
              name,
              labels: { group, topic: p.topic, partition: String(p.partition) },
              value: value(p),
            })),
          })
          lag = [
            series(
              'breakid_consumer_lag_messages',
              'Messages not yet committed by the group: high watermark − committed offset',
              (p) => p.lag,
            ),
            series(
              'breakid_consumer_high_watermark',
              'Offset the next message produced to the partition will get',
              (p) => Number(p.high),
            ),
          ]
        } catch (err) {
          this.lagReadErrors++
          this.opts.logger.warn({ err, group }, 'could not read the consumer lag')
        }
        return [consuming, ...lag]
      },
    })
  }

  watchClickHouse(ch: ClickHouse): void {
    this.addReadinessCheck('clickhouse', async () => {
      const rs = await ch.client.query({ query: 'SELECT 1 AS ok', format: 'JSONEachRow' })
      const rows = await rs.json<{ ok: number }>()
      return rows[0]?.ok === 1 ? undefined : 'SELECT 1 did not answer 1'
    })
  }

  /** Every check is registered: from now on /readyz runs them instead of answering "starting". */
  markStarted(): void {
    this.started = true
  }

  async render(): Promise<string> {
    const results = await Promise.allSettled(this.sources.map(async (s) => s.collect()))
    const families: MetricFamily[] = []
    for (const r of results) {
      if (r.status === 'fulfilled') families.push(...r.value)
      else this.opts.logger.warn({ err: r.reason }, 'a metrics source failed; left out of this scrape')
    }
    return renderFamilies(families)
  }

  async listen(host: string, port: number): Promise<string> {
    return this.app.listen({ host, port })
  }

  async close(): Promise<void> {
    await this.app.close()
  }

  private async run(checks: Map<string, Check>): Promise<Record<string, string>> {
    const failed: Record<string, string> = {}
    await Promise.all(
      [...checks].map(async ([name, check]) => {
        try {
          const why = await withTimeout(Promise.resolve(check()), this.timeoutMs, name)
          if (why !== undefined) failed[name] = why
        } catch (err) {
          failed[name] = err instanceof Error ? err.message : String(err)
        }
      }),
    )
    if (checks === this.readiness) this.lastReady = this.started && Object.keys(failed).length === 0
    return failed
  }
}

function statusOf(failed: Record<string, string>): 'ok' | 'unavailable' {
  return Object.keys(failed).length === 0 ? 'ok' : 'unavailable'
}

/** Starts a service's ops server on its configured (or default) port and logs where. */
export async function startOpsServer(
  cfg: BreakidConfig,
  service: ServiceName,
  logger: Logger,
): Promise<OpsServer> {
  const ops = new OpsServer({ logger, service })
  const address = await ops.listen(cfg.metricsHost, cfg.metricsPort ?? SERVICE_METRICS_PORTS[service])
  logger.info({ service, address }, `ops endpoints: ${address}/healthz /readyz /metrics`)
  return ops
}

/** The consumers of a started pipeline (and the ClickHouse it writes to) on the ops endpoints. */
export function observePipeline(
  ops: OpsServer,
  pipeline: Pipeline,
  transport: Transport,
  clickhouse?: ClickHouse,
): void {
  if (clickhouse) ops.watchClickHouse(clickhouse)
  if (pipeline.ingester) {
    ops.register(pipeline.ingester.counters)
    ops.register(pipeline.ingester.insertLatency)
    ops.watchConsumer(transport, pipeline.ingester.consumer)
  }
  if (pipeline.detector) {
    ops.register(pipeline.detector.counters)
    ops.watchConsumer(transport, pipeline.detector.consumer)
  }
  if (pipeline.notifier) {
    ops.register(pipeline.notifier.counters)
    ops.watchConsumer(transport, pipeline.notifier.consumer)
  }
}
