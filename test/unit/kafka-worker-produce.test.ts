/**
 * The producer thread's one-pass produce request encoder writes byte for byte what kafkajs's own
 * encoder writes (kafkajs is the oracle), for what the thread sends and for the edges of the format
 * (multi-byte varints, string/Buffer/null keys and values, several topics and partitions, a
 * transactional id); and it leaves to kafkajs what it does not handle.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { describe, it } from 'node:test'
import {
  applyOnePassProduceEncoder,
  crc32c,
  encodable,
  encodeProduceBody,
  type ProduceArgs,
  rememberKeyPartitions,
} from '../../bus/kafka-worker-produce.ts'
import { KafkaWorkerProducer } from '../../bus/kafka-worker.ts'

const require = createRequire(import.meta.url)
type Encoded = { buffer: Buffer }
type Protocol = (args: ProduceArgs) => { request: { apiVersion: number; encode(): Promise<Encoded> } }
const v3Request = require('kafkajs/src/protocol/requests/produce/v3/request.js') as (args: ProduceArgs) => {
  encode(): Promise<Encoded>
}
const kafkajsCrc32C = require('kafkajs/src/protocol/recordBatch/crc32C/index.js') as (b: Buffer) => number
const Long = require('kafkajs/src/utils/long.js') as { fromValue(v: unknown): unknown }
const createRequest = require('kafkajs/src/protocol/request.js') as (r: {
  correlationId: number
  clientId: string
  request: unknown
}) => Promise<Encoded>

/** kafkajs's own encoding of `args`, with Date.now() pinned to `now` */
async function kafkajsBytes(args: ProduceArgs, now: number): Promise<Buffer> {
  const realNow = Date.now
  Date.now = () => now
  try {
    return Buffer.from((await v3Request(args).encode()).buffer)
  } finally {
    Date.now = realNow
  }
}

const NOW = 1_764_000_000_123

function args(overrides: Partial<ProduceArgs> = {}): ProduceArgs {
  return {
    acks: -1,
    timeout: 30_000,
    compression: 0,
    producerId: Long.fromValue(4711),
    producerEpoch: 3,
    topicData: [
      {
        topic: 'bench-x-breakid.spans.v1',
        partitions: [
          {
            partition: '0',
            firstSequence: 1234,
            messages: [
              { key: 'engine-0', value: randomBytes(13_000) },
              { key: 'engine-0', value: randomBytes(90) },
            ],
          },
        ],
      },
    ],
    ...overrides,
  }
}

describe('one-pass produce request encoder', () => {
  it('writes the bytes kafkajs writes for the producer thread’s sends', async () => {
    const a = args()
    assert.ok(encodable(a))
    assert.deepEqual(encodeProduceBody(a, NOW), await kafkajsBytes(a, NOW))
  })

  it('matches kafkajs at the edges of the format', async () => {
    const messages = Array.from({ length: 300 }, (_, i) => ({
      // offset deltas past 63 and 8191 take 2 and 3 varint bytes; lengths likewise
      key: i % 3 === 0 ? null : i % 3 === 1 ? `instänce-${i}` : randomBytes(i % 17),
      value: i % 50 === 7 ? null : i % 5 === 0 ? `välue ${'x'.repeat(i)}` : randomBytes((i * 97) % 20_000),
    }))
    const cases: ProduceArgs[] = [
      args({ topicData: [{ topic: 't', partitions: [{ partition: 2, messages }] }] }),
      args({
        transactionalId: 'tx-1',
        producerId: Long.fromValue('9007199254740993'),
        topicData: [
          {
            topic: 'a',
            partitions: [
              { partition: '0', firstSequence: 0, messages: messages.slice(0, 5) },
              { partition: '3', firstSequence: 2_147_483_000, messages: messages.slice(5, 140) },
            ],
          },
          { topic: 'tøpic-b', partitions: [{ partition: '1', messages: [{ key: null, value: null }] }] },
        ],
      }),
      args({ producerId: undefined, producerEpoch: undefined, acks: 1, timeout: 5 }),
    ]
    for (const c of cases) assert.deepEqual(encodeProduceBody(c, NOW), await kafkajsBytes(c, NOW))
  })

  it('computes kafkajs’s CRC-32C for any length and offset', () => {
    for (const n of [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4099]) {
      const b = randomBytes(n + 5)
      assert.equal(crc32c(b, 5, b.length), kafkajsCrc32C(b.subarray(5)), `length ${n}`)
    }
    // the check value of CRC-32C (RFC 3720)
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283)
  })

  it('is what kafkajs’s produce protocol uses for v3–v7 once applied, and leaves the rest to kafkajs', async () => {
    assert.equal(applyOnePassProduceEncoder(), true)
    assert.equal(applyOnePassProduceEncoder(), true) // twice is once
    const produce = require('kafkajs/src/protocol/requests/produce/index.js') as {
      protocol(o: { version: number }): Protocol
    }
    const realNow = Date.now
    Date.now = () => NOW
    try {
      const a = args()
      const expected = await kafkajsBytes(a, NOW)
      for (const version of [3, 4, 5, 6, 7]) {
        const { request } = produce.protocol({ version })(a)
        assert.equal(request.apiVersion, version)
        assert.deepEqual(Buffer.from((await request.encode()).buffer), expected, `v${version}`)
      }
      // the whole request as it goes on the socket: kafkajs's framing (size, api key and version,
      // correlation id, client id) written in front of the body in place, or copied as kafkajs does
      // when the client id does not fit the room
      for (const clientId of ['breakid-engine-0-telemetry', `breakid-${'h'.repeat(300)}-telemetry`]) {
        const framed = async (request: unknown) =>
          Buffer.from((await createRequest({ correlationId: 77, clientId, request })).buffer)
        const { request } = produce.protocol({ version: 7 })(a)
        const original = { ...request, encode: () => v3Request(a).encode() }
        assert.deepEqual(await framed(request), await framed(original), clientId.slice(0, 20))
        // in place: a view into the body's own allocation, behind the room it did not need
        const inPlace = (await createRequest({ correlationId: 77, clientId, request })).buffer.byteOffset > 0
        assert.equal(inPlace, clientId.length < 200)
      }
      // headers, timestamps and compression are kafkajs's to encode
      const withHeaders = args({
        topicData: [
          {
            topic: 't',
            partitions: [{ partition: 0, messages: [{ key: 'k', value: 'v', headers: { h: 'x' } }] }],
          },
        ],
      })
      const withTimestamp = args({
        topicData: [
          {
            topic: 't',
            partitions: [{ partition: 0, messages: [{ key: 'k', value: 'v', timestamp: '5' }] }],
          },
        ],
      })
      for (const c of [withHeaders, withTimestamp, args({ compression: 1 })]) {
        assert.equal(encodable(c), false)
        assert.deepEqual(
          Buffer.from((await produce.protocol({ version: 7 })(c).request.encode()).buffer),
          Buffer.from((await v3Request(c).encode()).buffer),
        )
      }
    } finally {
      Date.now = realNow
    }
  })
})

describe('the producer thread’s lent memory', () => {
  it('lends shared buffers, pooled: given back, they are lent again; at most a few are kept', () => {
    const producer = new KafkaWorkerProducer({ brokers: ['127.0.0.1:1'] })
    const a = producer.borrow(10_000)
    assert.ok(a.buffer instanceof SharedArrayBuffer && a.length >= 10_000)
    producer.giveBack(a)
    assert.equal(producer.borrow(5_000), a, 'the smallest kept buffer that fits')
    assert.notEqual(producer.borrow(5_000), a, 'lent out: not lent twice')
    const bufs = Array.from({ length: 6 }, (_, i) => producer.borrow(1_000 * (i + 1)))
    for (const b of bufs) producer.giveBack(b)
    producer.giveBack(Buffer.alloc(100)) // not shared memory: not kept
    const again = Array.from({ length: 6 }, () => producer.borrow(1))
    // the four largest came back; the rest is new
    assert.deepEqual(
      again
        .filter((b) => bufs.includes(b))
        .map((b) => bufs.indexOf(b))
        .sort(),
      [2, 3, 4, 5],
    )
  })
})

describe('partitions by key, remembered', () => {
  it('are the partitions kafkajs’s default partitioner chooses', () => {
    const { Partitioners } = require('kafkajs') as {
      Partitioners: { DefaultPartitioner: () => (a: unknown) => number }
    }
    const kafkajs = Partitioners.DefaultPartitioner()
    assert.equal(rememberKeyPartitions(), true)
    assert.equal(rememberKeyPartitions(), true)
    const remembering = Partitioners.DefaultPartitioner()
    assert.notEqual(remembering, kafkajs)
    const keys = [
      'engine-0',
      'engine-1',
      'host-ä',
      '',
      'x'.repeat(37),
      ...Array.from({ length: 200 }, (_, i) => `i-${i * 7919}`),
    ]
    for (const partitions of [1, 2, 3, 6, 7, 12, 64]) {
      const partitionMetadata = Array.from({ length: partitions }, (_, i) => ({ partitionId: i, leader: 0 }))
      for (let round = 0; round < 2; round++) {
        for (const key of keys) {
          const args = { topic: 't', partitionMetadata, message: { key, value: 'v' } }
          assert.equal(remembering(args), kafkajs(args), `${key} over ${partitions}`)
        }
      }
      // an explicit partition, a Buffer key: kafkajs's answer
      const explicit = { topic: 't', partitionMetadata, message: { key: 'engine-0', partition: 0 } }
      assert.equal(remembering(explicit), 0)
      const bufferKey = { topic: 't', partitionMetadata, message: { key: Buffer.from('engine-1') } }
      assert.equal(remembering(bufferKey), kafkajs(bufferKey))
    }
  })
})
