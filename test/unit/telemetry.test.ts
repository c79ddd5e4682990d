/**
 * The engine's telemetry path without the engine: nvidia-smi parsing against recorded output, the
 * hardware sampler with fake gauges and a fake clock, and the emitter over an in-memory producer that
 * can fail or stall on demand.
 *
 * Fixtures (test/fixtures/): `nvidia-smi-h200-recorded.csv` is real output of
 * `nvidia-smi --query-gpu=index,name,utilization.gpu,memory.used,memory.total,power.draw,temperature.gpu
 * --format=csv,noheader,nounits` on an idle NVIDIA H200 (driver and nvidia-smi 580.159.04); the others
 * are written in the same format: a busy 8×H100 SXM host, and devices that report `[N/A]` or
 * `[Not Supported]` (MIG utilization, laptop and old-board power, a missing temperature sensor).
 */
import assert from 'node:assert/strict'
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, describe, mock, test } from 'node:test'
import { TelemetryEmitter } from '../../engine/telemetry/emitter.ts'
import { type EngineGauges, HwSampler } from '../../engine/telemetry/hw-sampler.ts'
import { NVIDIA_SMI_QUERY, NvidiaSmi, parseNvidiaSmiCsv } from '../../engine/telemetry/nvidia-smi.ts'
import type { HwSample } from '../../contract/records.ts'
import { decodeRecords, encodeContainer, isContainer } from '../../contract/container.ts'
import { codecs, TOPICS } from '../../contract/topics.ts'
import { createLogger } from '../../core/logger.ts'
import { type MessageProducer, MessageRefusedError, type OutgoingMessage } from '../../bus/transport.ts'
import { makeHwSample, makeSpan } from '../../contract/synthetic.ts'
import { pino } from 'pino'
import { ManualClock } from '../helpers/manual-clock.ts'
import { waitFor } from '../helpers/wait.ts'

const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url))
const fixture = (name: string) => readFile(join(FIXTURES, name), 'utf8')
const MIB = 1024 * 1024
const logger = createLogger('silent')
/** avsc decodes records into instances of generated classes; compare their data only */
const plain = <T>(v: T): T => structuredClone(v)

describe('parseNvidiaSmiCsv', () => {
  test('recorded H200 output', async () => {
    assert.deepEqual(parseNvidiaSmiCsv(await fixture('nvidia-smi-h200-recorded.csv')), [
      {
        device: 'gpu0:NVIDIA H200',
        utilization: 0,
        memory_used_bytes: 0,
        memory_total_bytes: 150_754_820_096, // 143771 MiB
        power_w: 126.45,
        temperature_c: 39,
      },
    ])
  })

  test('8×H100: one device per line, % → fraction, MiB → bytes', async () => {
    const devices = parseNvidiaSmiCsv(await fixture('nvidia-smi-8xh100.csv'))
    assert.equal(devices.length, 8)
    assert.deepEqual(
      devices.map((d) => d.device),
      Array.from({ length: 8 }, (_, i) => `gpu${i}:NVIDIA H100 80GB HBM3`),
    )
    assert.deepEqual(devices[0], {
      device: 'gpu0:NVIDIA H100 80GB HBM3',
      utilization: 0.98,
      memory_used_bytes: 81_906_368_512, // 78112 MiB
      memory_total_bytes: 85_520_809_984, // 81559 MiB
      power_w: 687.21,
      temperature_c: 71,
    })
    assert.deepEqual(
      devices.map((d) => d.utilization),
      [0.98, 0.97, 0.99, 0.96, 0.12, 0, 1, 0.95],
    )
    assert.equal(devices[5]!.memory_used_bytes, 0)
    assert.equal(devices[6]!.memory_used_bytes, 80_982 * MIB)
    assert.equal(devices[6]!.power_w, 700)
    assert.ok(devices.every((d) => d.memory_total_bytes === 81_559 * MIB))
  })

  test('[N/A] and [Not Supported] become null, the other fields of the line survive', async () => {
    const devices = parseNvidiaSmiCsv(await fixture('nvidia-smi-not-available.csv'))
    assert.deepEqual(devices, [
      {
        device: 'gpu0:NVIDIA A100-SXM4-40GB',
        utilization: null,
        memory_used_bytes: 13 * MIB,
        memory_total_bytes: 40_960 * MIB,
        power_w: 58.11,
        temperature_c: 31,
      },
      {
        device: 'gpu1:NVIDIA GeForce RTX 3080 Laptop GPU',
        utilization: 0.07,
        memory_used_bytes: 812 * MIB,
        memory_total_bytes: 16_384 * MIB,
        power_w: null,
        temperature_c: 46,
      },
      {
        device: 'gpu2:Tesla K80',
        utilization: 0,
        memory_used_bytes: 3 * MIB,
        memory_total_bytes: 11_441 * MIB,
        power_w: null,
        temperature_c: 35,
      },
      {
        device: 'gpu3:NVIDIA A10G',
        utilization: 0.43,
        memory_used_bytes: 9_120 * MIB,
        memory_total_bytes: 23_028 * MIB,
        power_w: 121.8,
        temperature_c: null,
      },
    ])
  })

  test('CRLF line ends and blank lines change nothing; empty output is no devices', async () => {
    const lf = await fixture('nvidia-smi-8xh100.csv')
    assert.deepEqual(parseNvidiaSmiCsv(`${lf.replace(/\n/g, '\r\n')}\r\n\r\n`), parseNvidiaSmiCsv(lf))
    assert.deepEqual(parseNvidiaSmiCsv(''), [])
    assert.deepEqual(parseNvidiaSmiCsv('\n'), [])
  })

  test('every parsed line is a valid hardware-sample device (Avro round trip)', async () => {
    for (const name of ['nvidia-smi-8xh100.csv', 'nvidia-smi-not-available.csv']) {
      const devices = parseNvidiaSmiCsv(await fixture(name))
      const sample = makeHwSample(0, { devices })
      assert.deepEqual(plain(codecs.hw.decode(codecs.hw.encode(sample)).devices), devices)
    }
  })
})

describe('NvidiaSmi', () => {
  let dir = ''
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'breakid-nvidia-smi-'))
  })
  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  test('runs the binary with the CSV query and parses what it prints', async () => {
    const argsFile = join(dir, 'args.txt')
    const binary = join(dir, 'nvidia-smi')
    await writeFile(
      binary,
      `#!/bin/sh\nprintf '%s\\n' "$@" > '${argsFile}'\ncat '${join(FIXTURES, 'nvidia-smi-8xh100.csv')}'\n`,
    )
    await chmod(binary, 0o755)
    const devices = await new NvidiaSmi(binary).sample()
    assert.deepEqual(devices, parseNvidiaSmiCsv(await fixture('nvidia-smi-8xh100.csv')))
    assert.deepEqual((await readFile(argsFile, 'utf8')).trim().split('\n'), NVIDIA_SMI_QUERY)
  })

  test('a host without nvidia-smi has no devices, and a failing nvidia-smi none either', async () => {
    assert.deepEqual(await new NvidiaSmi(join(dir, 'does-not-exist')).sample(), [])
    const broken = join(dir, 'broken-smi')
    await writeFile(
      broken,
      "#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate' >&2\nexit 9\n",
    )
    await chmod(broken, 0o755)
    assert.deepEqual(await new NvidiaSmi(broken).sample(), [])
  })
})

describe('HwSampler', () => {
  /** cumulative counters and gauges the test moves by hand */
  const engine = { arrivals: 0, completions: 0, busyUs: 0, queueDepth: 0, inFlight: 0 }
  const gauges: EngineGauges = {
    arrivals: () => engine.arrivals,
    completions: () => engine.completions,
    executorBusyUs: () => engine.busyUs,
    queueDepth: () => engine.queueDepth,
    inFlight: () => engine.inFlight,
  }
  let clockMs = 0

  before(() => {
    mock.method(performance, 'now', () => clockMs)
  })
  after(() => {
    mock.restoreAll()
  })

  test('counters are deltas over the interval, gauges are read at its end', async () => {
    const emitted: HwSample[] = []
    // the engine has been running: counters do not start at zero
    Object.assign(engine, {
      arrivals: 1_000,
      completions: 990,
      busyUs: 7_000_000,
      queueDepth: 9,
      inFlight: 10,
    })
    clockMs = 10_000
    const sampler = new HwSampler({
      identity: { fleet: 'f', host: 'h', instance: 'i' },
      gauges,
      emit: (s) => emitted.push(s),
      intervalMs: 3_600_000, // ticks are driven by the test
      cpuDevice: 'cpu:test',
    })
    await sampler.start()
    try {
      // 2 s later: 40 arrivals, 37 completions, 0.5 s inside the executor
      Object.assign(engine, {
        arrivals: 1_040,
        completions: 1_027,
        busyUs: 7_500_000,
        queueDepth: 5,
        inFlight: 3,
      })
      clockMs = 12_000
      const first = await sampler.tick()
      assert.equal(first.interval_ms, 2_000)
      assert.equal(first.arrivals, 40)
      assert.equal(first.completions, 37)
      assert.equal(first.executor_busy, 0.25)
      assert.equal(first.queue_depth, 5)
      assert.equal(first.in_flight, 3)
      assert.equal(first.timestamp_us, Math.round((performance.timeOrigin + 12_000) * 1000))
      assert.deepEqual([first.fleet, first.host, first.instance], ['f', 'h', 'i'])
      assert.deepEqual(first.devices, [
        {
          device: 'cpu:test',
          utilization: null,
          memory_used_bytes: null,
          memory_total_bytes: null,
          power_w: null,
          temperature_c: null,
        },
      ])
      assert.ok(first.rss_bytes > 0 && first.heap_used_bytes > 0)
      for (const v of [first.process_cpu, first.gc_ms, first.event_loop_delay_p99_ms]) {
        assert.ok(Number.isFinite(v) && v >= 0, `${v}`)
      }

      // 1 s later: more executor time than wall time (clock skew between sources) is capped at 1
      Object.assign(engine, {
        arrivals: 1_100,
        completions: 1_100,
        busyUs: 9_000_000,
        queueDepth: 0,
        inFlight: 0,
      })
      clockMs = 13_000
      const second = await sampler.tick()
      assert.equal(second.interval_ms, 1_000)
      assert.equal(second.arrivals, 60)
      assert.equal(second.completions, 73)
      assert.equal(second.executor_busy, 1)
      assert.equal(second.queue_depth, 0)

      // an idle interval
      clockMs = 14_500
      const idle = await sampler.tick()
      assert.equal(idle.interval_ms, 1_500)
      assert.deepEqual([idle.arrivals, idle.completions, idle.executor_busy], [0, 0, 0])

      assert.deepEqual(emitted, [first, second, idle], 'each tick emits its sample once')
      for (const s of emitted) assert.deepEqual(plain(codecs.hw.decode(codecs.hw.encode(s))), s)
    } finally {
      await sampler.stop()
    }
  })

  test('GPU devices come from nvidia-smi when it answers', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'breakid-sampler-'))
    try {
      const binary = join(dir, 'nvidia-smi')
      await writeFile(binary, `#!/bin/sh\ncat '${join(FIXTURES, 'nvidia-smi-h200-recorded.csv')}'\n`)
      await chmod(binary, 0o755)
      const sampler = new HwSampler({
        identity: { fleet: 'f', host: 'h', instance: 'i' },
        gauges,
        emit: () => {},
        intervalMs: 3_600_000,
        gpu: new NvidiaSmi(binary),
      })
      await sampler.start()
      clockMs += 1_000
      const sample = await sampler.tick()
      await sampler.stop()
      assert.deepEqual(sample.devices, parseNvidiaSmiCsv(await fixture('nvidia-smi-h200-recorded.csv')))
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

/** A producer that records what it sends, and fails or stalls when told to. */
class FakeProducer implements MessageProducer {
  readonly sends: { topic: string; messages: OutgoingMessage[] }[] = []
  started = false
  stopped = false
  /** the next `failures` sends throw (a broker that is down) */
  failures = 0
  attempts = 0
  /** when set, sends wait for it (a slow broker) */
  gate: Promise<void> | undefined

  async start(): Promise<void> {
    this.started = true
  }
  async stop(): Promise<void> {
    this.stopped = true
  }
  async send(topic: string, messages: OutgoingMessage[]): Promise<void> {
    this.attempts++
    if (this.failures > 0) {
      this.failures--
      throw new Error('broker not available')
    }
    await this.gate
    this.sends.push({ topic, messages: [...messages] })
  }

  /** request ids of every span delivered, in order */
  spanIds(): string[] {
    return this.sends
      .filter((s) => s.topic === TOPICS.spans)
      .flatMap((s) => s.messages.flatMap((m) => decodeRecords(codecs.span, m.value).map((r) => r.request_id)))
  }
}

describe('TelemetryEmitter', () => {
  test('records go to their own topic, in order per instance, in batches of at most maxBatch', async () => {
    const producer = new FakeProducer()
    const emitter = new TelemetryEmitter({ producer, logger, maxBatch: 4, flushIntervalMs: 3_600_000 })
    await emitter.start()
    assert.ok(producer.started)
    const spans = Array.from({ length: 9 }, (_, i) => makeSpan(i, { instance: `engine-${i % 2}` }))
    const hw = Array.from({ length: 3 }, (_, i) => makeHwSample(i))
    for (const s of spans) emitter.emitSpan(s)
    for (const s of hw) emitter.emitHwSample(s)
    await emitter.flush()

    const onTopic = (topic: string) =>
      producer.sends.filter((s) => s.topic === topic).flatMap((s) => s.messages)
    // a message holds one instance's records (its key), in the order they were emitted
    const spanMessages = onTopic(TOPICS.spans).map((m) => ({
      key: m.key,
      records: decodeRecords(codecs.span, m.value).map(plain),
    }))
    for (const m of spanMessages)
      assert.ok(
        m.records.every((r) => r.instance === m.key),
        'keyed by instance',
      )
    for (const instance of ['engine-0', 'engine-1']) {
      assert.deepEqual(
        spanMessages.filter((m) => m.key === instance).flatMap((m) => m.records),
        spans.filter((s) => s.instance === instance),
      )
    }
    assert.deepEqual(
      onTopic(TOPICS.hw).flatMap((m) => decodeRecords(codecs.hw, m.value).map(plain)),
      hw,
    )
    const batchSizes = (topic: string, codec: typeof codecs.span | typeof codecs.hw) =>
      producer.sends
        .filter((s) => s.topic === topic)
        .map((s) => s.messages.reduce((n, m) => n + decodeRecords<unknown>(codec, m.value).length, 0))
    assert.deepEqual(batchSizes(TOPICS.spans, codecs.span), [4, 4, 1])
    assert.deepEqual(batchSizes(TOPICS.hw, codecs.hw), [3])
    assert.deepEqual([emitter.sent, emitter.dropped, emitter.sendFailures], [12, 0, 0])

    // stop flushes what is still buffered, then stops the producer
    emitter.emitSpan(makeSpan(100))
    await emitter.stop()
    assert.deepEqual(producer.spanIds().slice(-1), ['req-100'])
    assert.ok(producer.stopped)
    await emitter.stop() // safe twice
  })

  test('with a producer that lends memory, messages are written and sent from it, and it is given back only once their sends settled', async () => {
    class LendingProducer extends FakeProducer {
      /** lent and not given back */
      readonly out = new Set<Buffer>()
      /** given back, lent again first */
      readonly free: Buffer[] = []
      readonly memory = new Set<ArrayBufferLike>()
      /** per send: whether every value was a view of memory lent and not given back */
      readonly fromLentMemory: boolean[] = []
      borrow(bytes: number): Buffer {
        const reused = this.free.length > 0 && this.free[0]!.length >= bytes ? this.free.shift() : undefined
        const buf = reused ?? Buffer.from(new SharedArrayBuffer(bytes))
        this.memory.add(buf.buffer)
        this.out.add(buf)
        return buf
      }
      giveBack(buf: Buffer): void {
        assert.ok(this.out.delete(buf), 'given back once, after it was lent')
        this.free.push(buf)
      }
      override async send(topic: string, messages: OutgoingMessage[]): Promise<void> {
        this.fromLentMemory.push(
          messages.every((m) => [...this.out].some((b) => m.value.buffer === b.buffer)),
        )
        // a lender keeps no view of what it lent once the send settled: the fake keeps copies
        await super.send(
          topic,
          messages.map((m) => ({ ...m, value: Buffer.from(m.value) })),
        )
      }
    }
    const producer = new LendingProducer()
    const emitter = new TelemetryEmitter({ producer, logger, maxBatch: 100, flushIntervalMs: 3_600_000 })
    const spans = Array.from({ length: 150 }, (_, i) => makeSpan(i, { instance: `engine-${i % 2}` }))
    for (const s of spans) emitter.emitSpan(s)
    // a slow broker and two failed attempts: the memory stays lent across the retries
    let open: () => void = () => {}
    producer.gate = new Promise((r) => {
      open = r
    })
    producer.failures = 2
    const flushing = emitter.flush()
    await waitFor(() => producer.attempts >= 3, { message: 'the third attempt' })
    assert.equal(producer.free.length, 0, 'nothing given back while its send is in flight')
    open()
    await flushing
    assert.deepEqual(producer.spanIds().sort(), spans.map((s) => s.request_id).sort())
    assert.ok(producer.fromLentMemory.every(Boolean), 'every send from lent memory, none given back yet')
    assert.equal(producer.out.size, 0, 'all of it given back')
    // the next flush writes into memory given back (a steady stream allocates nothing)
    const memory = producer.memory.size
    producer.gate = undefined
    emitter.emitSpan(makeSpan(500))
    await emitter.flush()
    assert.equal(producer.memory.size, memory, 'no new memory')
    assert.equal(producer.out.size, 0)
    assert.deepEqual(producer.spanIds().slice(-1), ['req-500'])
    assert.equal(emitter.sent, 151)
  })

  test('when full, the oldest records are dropped and counted', async () => {
    const producer = new FakeProducer()
    const emitter = new TelemetryEmitter({ producer, logger, maxBuffered: 3, maxBatch: 100 })
    for (let i = 0; i < 5; i++) emitter.emitSpan(makeSpan(i))
    assert.equal(emitter.dropped, 2)
    await emitter.flush()
    assert.deepEqual(producer.spanIds(), ['req-2', 'req-3', 'req-4'])

    // across topics the bound is shared: never more than maxBuffered wait, every loss is counted
    emitter.emitHwSample(makeHwSample(0))
    emitter.emitSpan(makeSpan(10))
    emitter.emitSpan(makeSpan(11))
    emitter.emitHwSample(makeHwSample(1))
    emitter.emitSpan(makeSpan(12))
    await emitter.flush()
    const hwDelivered = producer.sends
      .filter((s) => s.topic === TOPICS.hw)
      .flatMap((s) => s.messages.flatMap((m) => decodeRecords(codecs.hw, m.value)))
    const delivered = producer.spanIds().length + hwDelivered.length
    assert.equal(delivered, 3 + 3)
    assert.equal(emitter.dropped, 2 + 2)
    assert.equal(emitter.sent, delivered)
  })

  test('a send that fails a few times is retried: nothing lost, nothing doubled, failures counted', async () => {
    const producer = new FakeProducer()
    const emitter = new TelemetryEmitter({ producer, logger, maxBatch: 100, flushIntervalMs: 3_600_000 })
    producer.failures = 3
    for (let i = 0; i < 3; i++) emitter.emitSpan(makeSpan(i))
    const flushing = emitter.flush()
    // records emitted while the broker is down stay buffered and go out with the rest
    await waitFor(() => producer.attempts >= 2, { message: 'a second attempt' })
    emitter.emitSpan(makeSpan(3))
    emitter.emitHwSample(makeHwSample(0))
    await flushing
    await emitter.flush()
    assert.deepEqual(producer.spanIds(), ['req-0', 'req-1', 'req-2', 'req-3'])
    assert.equal(producer.sends.filter((s) => s.topic === TOPICS.hw).length, 1)
    assert.equal(emitter.sendFailures, 3)
    assert.equal(emitter.dropped, 0)
    assert.equal(emitter.sent, 5)
  })

  for (const recordsPerMessage of [1, 64]) {
    test(`flushed records are byte for byte what the codec writes (${recordsPerMessage} per message)`, async () => {
      const producer = new FakeProducer()
      const emitter = new TelemetryEmitter({
        producer,
        logger,
        recordsPerMessage,
        flushIntervalMs: 3_600_000,
      })
      // varied sizes, nulls and errors; one record far larger than the buffer estimate, mid-container
      const spans = Array.from({ length: 300 }, (_, i) =>
        makeSpan(i, {
          status: i % 3 === 0 ? 'server_error' : 'ok',
          error_class: i % 3 === 0 ? 'Boom'.repeat(i % 17) : null,
          input_mean: i % 5 === 0 ? null : i / 7,
          request_id: i === 150 ? 'x'.repeat(300_000) : `req-${i}`,
        }),
      )
      for (const s of spans) emitter.emitSpan(s)
      emitter.emitHwSample(makeHwSample(1))
      await emitter.flush()
      const sent = producer.sends.filter((s) => s.topic === TOPICS.spans).flatMap((s) => s.messages)
      assert.equal(sent.length, Math.ceil(spans.length / recordsPerMessage))
      sent.forEach((m, i) => {
        const records = spans.slice(i * recordsPerMessage, (i + 1) * recordsPerMessage)
        const expected =
          records.length === 1 ? codecs.span.encode(records[0]!) : encodeContainer(codecs.span, records)
        assert.ok(m.value.equals(expected), `message ${i} differs`)
        assert.equal(isContainer(m.value), recordsPerMessage > 1)
      })
      // a lone record is a plain single-object message, whatever recordsPerMessage is
      const hw = producer.sends.filter((s) => s.topic === TOPICS.hw).flatMap((s) => s.messages)
      assert.ok(hw[0]!.value.equals(codecs.hw.encode(makeHwSample(1))))
    })
  }

  test('containers hold at most recordsPerMessage records of one instance', async () => {
    const producer = new FakeProducer()
    const emitter = new TelemetryEmitter({
      producer,
      logger,
      recordsPerMessage: 4,
      flushIntervalMs: 3_600_000,
    })
    const spans = Array.from({ length: 13 }, (_, i) => makeSpan(i, { instance: i < 10 ? 'a' : 'b' }))
    for (const s of spans) emitter.emitSpan(s)
    await emitter.flush()
    const messages = producer.sends.flatMap((s) => s.messages)
    assert.deepEqual(
      messages.map((m) => [m.key, decodeRecords(codecs.span, m.value).length]),
      [
        ['a', 4],
        ['a', 4],
        ['a', 2],
        ['b', 3],
      ],
    )
    assert.deepEqual(
      producer.spanIds(),
      spans.map((s) => s.request_id),
    )
  })

  test('emitting only buffers: a full batch is sent on a later turn, in sends of at most maxSend', async () => {
    const producer = new FakeProducer()
    const emitter = new TelemetryEmitter({
      producer,
      logger,
      maxBatch: 10,
      maxSend: 4,
      recordsPerMessage: 1,
      flushIntervalMs: 3_600_000,
    })
    for (let i = 0; i < 10; i++) emitter.emitSpan(makeSpan(i))
    assert.equal(producer.attempts, 0, 'nothing is encoded or sent inside emitSpan')
    assert.equal(emitter.pending, 10)
    await waitFor(() => emitter.sent === 10, { message: 'the size-triggered flush' })
    assert.deepEqual(
      producer.sends.map((s) => s.messages.length),
      [4, 4, 2],
    )
    assert.deepEqual(
      producer.spanIds(),
      Array.from({ length: 10 }, (_, i) => `req-${i}`),
    )
  })

  test('a record that does not match the schema is dropped and counted; the rest of its batch goes out', async () => {
    const producer = new FakeProducer()
    const emitter = new TelemetryEmitter({ producer, logger, flushIntervalMs: 3_600_000 })
    emitter.emitSpan(makeSpan(0))
    emitter.emitSpan(makeSpan(1, { request_id: 42 as unknown as string }))
    emitter.emitSpan(makeSpan(2))
    await emitter.flush()
    assert.deepEqual(producer.spanIds(), ['req-0', 'req-2'])
    assert.deepEqual([emitter.sent, emitter.invalid, emitter.dropped], [2, 1, 0])
  })

  test('a batch that fails after some of its sends keeps only the unsent records', async () => {
    const producer = new FakeProducer()
    // sends of one container of two records: [0, 1], [2, 3], [4]
    const emitter = new TelemetryEmitter({
      producer,
      logger,
      maxSend: 1,
      recordsPerMessage: 2,
      flushIntervalMs: 3_600_000,
      retry: { retries: 2, initialDelayMs: 1, maxDelayMs: 1 },
    })
    for (let i = 0; i < 5; i++) emitter.emitSpan(makeSpan(i))
    const send = producer.send.bind(producer)
    let calls = 0
    producer.send = async (topic, messages) => {
      // the second send fails every attempt (a broker that stays down through the retries)
      if (++calls >= 2 && calls <= 4) throw new Error('broker not available')
      return send(topic, messages)
    }
    await assert.rejects(emitter.flush())
    assert.deepEqual(producer.spanIds(), ['req-0', 'req-1'])
    assert.equal(emitter.pending, 3)
    await emitter.flush()
    assert.deepEqual(producer.spanIds(), ['req-0', 'req-1', 'req-2', 'req-3', 'req-4'])
    assert.equal(emitter.sent, 5)
  })

  test('a record dropped while its batch is in flight is neither sent twice nor counted as lost', async () => {
    const producer = new FakeProducer()
    let release!: () => void
    producer.gate = new Promise<void>((resolve) => {
      release = resolve
    })
    const emitter = new TelemetryEmitter({ producer, logger, maxBuffered: 3, maxBatch: 3 })
    for (let i = 0; i < 3; i++) emitter.emitSpan(makeSpan(i)) // a full batch: its send starts and stalls
    emitter.emitSpan(makeSpan(3)) // full: drops req-0, which is in flight
    release()
    await emitter.flush()
    const ids = producer.spanIds()
    assert.equal(new Set(ids).size, ids.length, `sent twice: ${ids.join(', ')}`)
    assert.equal(ids.length + emitter.dropped, 4, 'every record is either delivered or counted as dropped')
  })

  test('a record the broker refuses is dead-lettered alone; every record behind it flows on', async () => {
    // a broker whose max.message.bytes is 20 000: it refuses a whole send (one record batch) over it
    const LIMIT = 20_000
    const producer = new FakeProducer()
    const send = producer.send.bind(producer)
    producer.send = async (topic, messages) => {
      const bytes = messages.reduce((n, m) => n + m.value.length, 0)
      if (bytes > LIMIT) throw new MessageRefusedError(`${bytes} bytes`, 'message_too_large')
      return send(topic, messages)
    }
    const emitter = new TelemetryEmitter({ producer, logger, flushIntervalMs: 3_600_000 })
    const spans = Array.from({ length: 200 }, (_, i) =>
      makeSpan(i, { instance: `engine-${i % 3}`, request_id: i === 50 ? 'x'.repeat(100_000) : `req-${i}` }),
    )
    for (const s of spans) emitter.emitSpan(s)
    for (let i = 0; i < 3; i++) emitter.emitHwSample(makeHwSample(i))
    await emitter.flush()

    const delivered = producer.spanIds()
    const expected = spans.filter((_, i) => i !== 50)
    for (const instance of ['engine-0', 'engine-1', 'engine-2']) {
      const ids = (list: string[]) =>
        list.filter((id) => expected.find((s) => s.request_id === id)?.instance === instance)
      assert.deepEqual(
        ids(delivered),
        ids(expected.map((s) => s.request_id)),
        `${instance}: every other record, in order`,
      )
    }
    assert.equal(delivered.length, 199)
    assert.equal(producer.sends.filter((s) => s.topic === TOPICS.hw).length, 1, 'hardware samples flow')
    assert.deepEqual([emitter.sent, emitter.refused, emitter.pending], [202, 1, 0])
    assert.equal(emitter.drops.get('message_too_large'), 1)
    assert.equal(emitter.lost, 1)
    assert.ok((emitter.sendFailuresByReason.get('message_too_large') ?? 0) >= 1)
    const [letter, ...more] = emitter.deadLetters
    assert.equal(more.length, 0)
    assert.equal(letter!.topic, TOPICS.spans)
    assert.equal(letter!.key, 'engine-2')
    assert.equal(letter!.reason, 'message_too_large')
    assert.equal(letter!.requestId, 'x'.repeat(64))
    assert.ok(letter!.bytes > 100_000, `${letter!.bytes} bytes`)

    // nothing stalls: the next records go out with the next flush
    emitter.emitSpan(makeSpan(500))
    await emitter.flush()
    assert.deepEqual(producer.spanIds().slice(-1), ['req-500'])
  })

  test('a topic whose sends keep failing does not hold back the other topic', async () => {
    const producer = new FakeProducer()
    const send = producer.send.bind(producer)
    producer.send = async (topic, messages) => {
      if (topic === TOPICS.spans) throw new Error('spans topic unavailable')
      return send(topic, messages)
    }
    const emitter = new TelemetryEmitter({
      producer,
      logger,
      flushIntervalMs: 3_600_000,
      retry: { retries: 1, initialDelayMs: 1, maxDelayMs: 1 },
    })
    emitter.emitSpan(makeSpan(0))
    emitter.emitHwSample(makeHwSample(0))
    await assert.rejects(emitter.flush(), /spans topic unavailable/)
    assert.equal(producer.sends.filter((s) => s.topic === TOPICS.hw).length, 1)
    assert.equal(emitter.pending, 1, 'the span is kept for the next flush')
    assert.equal(emitter.sendFailuresByReason.get('Error'), 2)
  })

  test('drops and failed sends are counted by reason; the first of each reason per minute is logged', async () => {
    const lines: { msg: string; reason?: string; unloggedSinceLast?: number }[] = []
    const capture = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) })
    const clock = new ManualClock()
    const producer = new FakeProducer()
    const emitter = new TelemetryEmitter({
      producer,
      logger: capture,
      clock,
      maxBuffered: 2,
      flushIntervalMs: 3_600_000,
      retry: { retries: 5, initialDelayMs: 1, maxDelayMs: 1 },
    })
    const logged = (reason: string) => lines.filter((l) => l.reason === reason)
    for (let i = 0; i < 10; i++) emitter.emitSpan(makeSpan(i))
    assert.equal(emitter.drops.get('buffer_full'), 8)
    assert.equal(logged('buffer_full').length, 1, 'one line for eight drops')
    emitter.emitSpan(makeSpan(10, { request_id: 7 as unknown as string }))
    producer.failures = 3
    await emitter.flush()
    assert.equal(emitter.drops.get('buffer_full'), 9)
    assert.equal(emitter.drops.get('schema_mismatch'), 1)
    assert.equal(logged('schema_mismatch').length, 1)
    assert.equal(emitter.sendFailuresByReason.get('Error'), 3)
    assert.equal(logged('Error').length, 1, 'one line for three failed attempts')

    await clock.advance(59_999)
    for (let i = 0; i < 3; i++) emitter.emitSpan(makeSpan(20 + i))
    assert.equal(logged('buffer_full').length, 1, 'still within the minute')
    await clock.advance(1)
    for (let i = 0; i < 2; i++) emitter.emitSpan(makeSpan(30 + i))
    assert.equal(emitter.drops.get('buffer_full'), 12)
    const again = logged('buffer_full')
    assert.equal(again.length, 2, 'the next minute logs again')
    assert.equal(again[1]!.unloggedSinceLast, 9, 'with the drops it did not log')
    assert.equal(emitter.lost, 12 + 1, 'every reason counts as lost')
  })
})
