/**
 * The Kafka producer on its own thread: a MessageProducer whose `send` hands the messages to a
 * worker thread running the ordinary KafkaTransport producer (kafkajs, same topics, keys, partitioner,
 * acks and idempotence), so the engine's event loop does not run the Kafka client.
 *
 * Why: kafkajs spends ~25 µs of CPU per message on the thread that calls `send` (record encoding,
 * murmur2 partitioning with its Long arithmetic, CRC-32C in JavaScript, per-partition grouping, the
 * produce request; measured with 40 000 spans in sends of 1000 on the 2-core development machine) —
 * more than everything else telemetry does per request, on the thread that serves requests. Kafka
 * clients elsewhere do the same split: librdkafka and the Java producer batch, encode and talk to the
 * brokers on background threads, and `produce()` only enqueues.
 *
 * What crosses the thread boundary per `send`: the message values where they already are — in
 * shared memory this producer lends (`borrow`/`giveBack`: the emitter writes its containers there, so
 * they reach the thread without a copy; the thread copies them once, into the produce request) — or
 * else copied into one buffer back to back (transferred, not copied again); each message's place in
 * them and its key index; and the distinct keys (structured clone costs ~0.3 µs per string: one string
 * per message would cost more than the rest). A send resolves when the worker's
 * producer has the broker's acknowledgement, and rejects with the worker's error otherwise (the
 * emitter retries and keeps its records; a MessageRefusedError stays one across the thread boundary,
 * so the emitter isolates the refused record). A worker that dies rejects every send in flight and every
 * later one until `start` is called again.
 */
import { readlinkSync } from 'node:fs'
import { getPriority, setPriority } from 'node:os'
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'
import { createLogger } from '../core/logger.ts'
import { KafkaTransport } from './kafka.ts'
import { applyOnePassProduceEncoder, rememberKeyPartitions } from './kafka-worker-produce.ts'
import { type MessageProducer, MessageRefusedError, type OutgoingMessage } from './transport.ts'

export interface KafkaWorkerProducerOptions {
  brokers: string[]
  topicPrefix?: string
  clientId?: string
  /** pino level of the worker's log (kafkajs warnings and errors, to stderr). Default BREAKID_LOG_LEVEL or info. */
  logLevel?: string
  /**
   * Nice value of the producer thread alone (Linux; ignored elsewhere). Default 10: when the cores
   * are contended, the threads that serve requests get the CPU first and telemetry waits (buffered,
   * and dropped oldest-first only past the emitter's bound), as the emitter's policy says. 0 keeps
   * the process's priority.
   */
  nice?: number
}

type ToWorker =
  | {
      kind: 'send'
      id: number
      topic: string
      /** the memory the values are in: lent shared buffers, or one transferred copy */
      memory: (SharedArrayBuffer | ArrayBuffer)[]
      /** per message: the index of its memory, where its value starts and where it ends */
      places: Int32Array
      /** the distinct keys of the send, and per message the index of its key (-1: no key) */
      keyTable: string[]
      keyIndex: Int32Array
    }
  | { kind: 'stop' }
type FromWorker =
  | { kind: 'started' }
  | { kind: 'start_failed'; message: string }
  | { kind: 'sent'; id: number }
  /** `refused`: the reason of a MessageRefusedError, which the main thread raises again */
  | { kind: 'failed'; id: number; message: string; name: string; refused?: string }
  | { kind: 'stopped' }

const WORKER_FLAG = 'breakidKafkaProducerWorker'

/**
 * A producer that lends the memory message values are written into, so that a send hands them on
 * without a copy. What is borrowed must not be written to while a send of its bytes is in flight, and
 * is given back once every send of them settled.
 */
export interface MessageMemoryLender {
  /** a buffer of at least `bytes` */
  borrow(bytes: number): Buffer
  giveBack(buf: Buffer): void
}

/** buffers kept for lending again: a flush uses one or two at a time */
const POOL_BUFFERS = 4
/** larger buffers (an unusual burst) are not kept */
const POOL_MAX_BYTES = 8 << 20

export class KafkaWorkerProducer implements MessageProducer, MessageMemoryLender {
  private worker: Worker | undefined
  private nextId = 0
  private readonly inFlight = new Map<number, { resolve: () => void; reject: (err: Error) => void }>()
  private stopping: Promise<void> | undefined
  /** shared buffers given back, ready to lend again */
  private readonly pool: Buffer[] = []

  constructor(private readonly opts: KafkaWorkerProducerOptions) {}

  /**
   * Shared memory for message values (the producer thread reads it where it is). Pooled: a flush's
   * buffers come back with `giveBack` and serve the next flush, so a steady stream allocates nothing.
   */
  borrow(bytes: number): Buffer {
    let best = -1
    for (let i = 0; i < this.pool.length; i++) {
      const len = this.pool[i]!.length
      if (len >= bytes && (best < 0 || len < this.pool[best]!.length)) best = i
    }
    if (best >= 0) return this.pool.splice(best, 1)[0]!
    // a little more than asked, so a batch slightly larger than the last still fits next time
    return Buffer.from(new SharedArrayBuffer(Math.ceil((bytes * 1.25) / 4096) * 4096))
  }

  giveBack(buf: Buffer): void {
    if (!(buf.buffer instanceof SharedArrayBuffer) || buf.length > POOL_MAX_BYTES) return
    if (this.pool.includes(buf)) return
    if (this.pool.length >= POOL_BUFFERS) {
      // keep the larger ones: they fit every batch the smaller ones fit
      let smallest = 0
      for (let i = 1; i < this.pool.length; i++)
        if (this.pool[i]!.length < this.pool[smallest]!.length) smallest = i
      if (this.pool[smallest]!.length >= buf.length) return
      this.pool.splice(smallest, 1)
    }
    this.pool.push(buf)
  }

  async start(): Promise<void> {
    if (this.worker) return
    this.stopping = undefined
    const worker = new Worker(new URL('./kafka-worker-thread.mjs', import.meta.url), {
      workerData: { [WORKER_FLAG]: true, ...this.opts },
    })
    this.worker = worker
    await new Promise<void>((resolve, reject) => {
      const onMessage = (m: FromWorker) => {
        if (m.kind === 'started') resolve()
        else if (m.kind === 'start_failed') reject(new Error(`Kafka producer thread: ${m.message}`))
        else if (m.kind === 'sent') this.settle(m.id)
        else if (m.kind === 'failed') this.settle(m.id, workerError(m))
      }
      worker.on('message', onMessage)
      worker.once('error', reject)
      worker.once('exit', (code) => {
        if (this.worker === worker) this.worker = undefined
        reject(new Error(`Kafka producer thread exited (${code})`))
        for (const id of [...this.inFlight.keys()]) {
          this.settle(id, new Error(`Kafka producer thread exited (${code}) before the broker answered`))
        }
      })
    }).catch(async (err) => {
      await worker.terminate()
      throw err
    })
  }

  send(topic: string, messages: OutgoingMessage[]): Promise<void> {
    const worker = this.worker
    if (!worker) return Promise.reject(new Error('Kafka producer thread is not running'))
    if (messages.some((m) => m.headers && Object.keys(m.headers).length > 0)) {
      return Promise.reject(new Error('KafkaWorkerProducer does not carry message headers'))
    }
    const n = messages.length
    const places = new Int32Array(n * 3)
    const memory: (SharedArrayBuffer | ArrayBuffer)[] = []
    const transfer: ArrayBuffer[] = [places.buffer as ArrayBuffer]
    if (messages.every((m) => m.value.buffer instanceof SharedArrayBuffer)) {
      // lent memory: the thread reads the values where they are
      for (let i = 0; i < n; i++) {
        const v = messages[i]!.value
        let at = memory.indexOf(v.buffer)
        if (at < 0) at = memory.push(v.buffer) - 1
        places[i * 3] = at
        places[i * 3 + 1] = v.byteOffset
        places[i * 3 + 2] = v.byteOffset + v.length
      }
    } else {
      let total = 0
      for (const m of messages) total += m.value.length
      // its own ArrayBuffer (not the shared pool), so it can be transferred without a second copy
      const values = Buffer.allocUnsafeSlow(total)
      let at = 0
      for (let i = 0; i < n; i++) {
        const v = messages[i]!.value
        v.copy(values, at)
        places[i * 3 + 1] = at
        at += v.length
        places[i * 3 + 2] = at
      }
      memory.push(values.buffer as ArrayBuffer)
      transfer.push(values.buffer as ArrayBuffer)
    }
    // keys repeat (the instance): cloning one string per message would cost more than the rest
    const keyIndex = new Int32Array(n)
    const keyTable: string[] = []
    const keyAt = new Map<string, number>()
    for (let i = 0; i < n; i++) {
      const key = messages[i]!.key
      if (key === null) keyIndex[i] = -1
      else {
        let k = keyAt.get(key)
        if (k === undefined) {
          k = keyTable.push(key) - 1
          keyAt.set(key, k)
        }
        keyIndex[i] = k
      }
    }
    transfer.push(keyIndex.buffer as ArrayBuffer)
    const id = this.nextId++
    return new Promise<void>((resolve, reject) => {
      this.inFlight.set(id, { resolve, reject })
      const msg: ToWorker = { kind: 'send', id, topic, memory, places, keyTable, keyIndex }
      worker.postMessage(msg, transfer)
    })
  }

  /** Waits for the sends in flight, disconnects the producer, ends the thread. Safe to call twice. */
  stop(): Promise<void> {
    const worker = this.worker
    if (!worker) return Promise.resolve()
    this.stopping ??= new Promise<void>((resolve) => {
      worker.once('exit', () => resolve())
      worker.on('message', (m: FromWorker) => {
        if (m.kind === 'stopped') void worker.terminate()
      })
      worker.postMessage({ kind: 'stop' } satisfies ToWorker)
    })
    return this.stopping
  }

  private settle(id: number, err?: Error): void {
    const p = this.inFlight.get(id)
    if (!p) return
    this.inFlight.delete(id)
    if (err) p.reject(err)
    else p.resolve()
  }
}

/** The worker's error on this thread: a refusal stays one (not retriable); the rest keep their name. */
function workerError(m: Extract<FromWorker, { kind: 'failed' }>): Error {
  if (m.refused !== undefined) return new MessageRefusedError(m.message, m.refused)
  const err = new Error(m.message)
  err.name = m.name
  return err
}

/**
 * Lowers the calling thread's priority, not the process's: on Linux the nice value is per thread and
 * setpriority(PRIO_PROCESS, tid) changes only that thread (man 2 setpriority); the thread id is the
 * last part of /proc/thread-self. Raising one's own nice value needs no privilege. Best effort.
 */
function lowerThreadPriority(nice: number): void {
  if (nice === 0) return
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop())
    // never raises the priority: a process started under `nice` keeps its own value if that is higher
    if (Number.isInteger(tid) && tid !== process.pid) setPriority(tid, Math.max(getPriority(tid), nice))
  } catch {
    // not Linux, or not allowed: the thread keeps the process's priority
  }
}

/** The worker side: runs when kafka-worker-thread.mjs loads this module on the producer thread. */
export async function runProducerThread(): Promise<void> {
  if (isMainThread || !parentPort || !workerData?.[WORKER_FLAG]) return
  const port = parentPort
  const opts = workerData as KafkaWorkerProducerOptions
  const post = (m: FromWorker) => port.postMessage(m)
  lowerThreadPriority(opts.nice ?? 10)
  // kafkajs builds a produce request from nested growing buffers; this writes the same bytes in one pass
  applyOnePassProduceEncoder()
  // and hashes every message's key again; the thread's keys are a few instance names
  rememberKeyPartitions()
  const transport = new KafkaTransport({
    brokers: opts.brokers,
    topicPrefix: opts.topicPrefix,
    clientId: opts.clientId,
    logger: createLogger(opts.logLevel),
  })
  const producer = transport.producer()
  try {
    await producer.start()
  } catch (err) {
    post({ kind: 'start_failed', message: (err as Error).message })
    return
  }
  const sending = new Set<Promise<void>>()
  port.on('message', (m: ToWorker) => {
    if (m.kind === 'stop') {
      void (async () => {
        await Promise.allSettled([...sending])
        await producer.stop().catch(() => {})
        post({ kind: 'stopped' })
      })()
      return
    }
    const messages: OutgoingMessage[] = new Array(m.keyIndex.length)
    for (let i = 0; i < messages.length; i++) {
      const k = m.keyIndex[i]!
      const start = m.places[i * 3 + 1]!
      messages[i] = {
        key: k < 0 ? null : m.keyTable[k]!,
        value: Buffer.from(m.memory[m.places[i * 3]!]!, start, m.places[i * 3 + 2]! - start),
      }
    }
    const p = producer
      .send(m.topic, messages)
      .then(
        () => post({ kind: 'sent', id: m.id }),
        (err: Error) =>
          post({
            kind: 'failed',
            id: m.id,
            message: err.message,
            name: err.name,
            refused: err instanceof MessageRefusedError ? err.reason : undefined,
          }),
      )
      .finally(() => sending.delete(p))
    sending.add(p)
  })
  post({ kind: 'started' })
}
