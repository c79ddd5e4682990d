/**
 * The transport's PartialCommit on a real Kafka broker: the consumer reads on past a batch whose
 * handler committed only part of it, the group's committed offset stays where the handler said, an
 * explicit commit() moves it, and a restarted consumer resumes from it. Never skipped.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { before, test } from 'node:test'
import { KafkaTransport } from '../../bus/kafka.ts'
import type { MessageConsumer } from '../../bus/transport.ts'
import { createLogger } from '../../core/logger.ts'
import { kafkaBrokers, requireKafka, testKafka } from '../helpers/kafka.ts'
import { waitFor } from '../helpers/wait.ts'

const logger = createLogger(process.env.BREAKID_TEST_LOG ?? 'silent')

before(async () => {
  await requireKafka()
})

test('Kafka: a PartialCommit keeps the tail uncommitted while reading on; commit() and restart', async () => {
  const prefix = `pc-${randomBytes(4).toString('hex')}.`
  const kafka = new KafkaTransport({ brokers: kafkaBrokers(), logger, topicPrefix: prefix })
  await kafka.ensureTopics(['t'], 1)
  const producer = kafka.producer()
  await producer.start()
  const send = (from: number, to: number) =>
    producer.send(
      't',
      Array.from({ length: to - from }, (_, i) => ({ key: null, value: Buffer.from(String(from + i)) })),
    )
  const admin = testKafka('pc-admin').admin()
  await admin.connect()
  const committedOffset = async (): Promise<string> => {
    const [t] = await admin.fetchOffsets({ groupId: `${prefix}g`, topics: [`${prefix}t`] })
    return t!.partitions[0]!.offset
  }
  const seen: string[] = []
  let consumer: MessageConsumer | undefined
  try {
    consumer = kafka.consumer({
      groupId: 'g',
      topics: ['t'],
      handler: async (b) => {
        seen.push(...b.messages.map((m) => m.offset))
        return { commitOffset: '2' } // offsets 2 and later stay unfinished
      },
    })
    await consumer.start()
    await send(0, 5)
    await waitFor(() => seen.length === 5, { message: 'the first five' })
    await send(5, 7)
    await waitFor(() => seen.length === 7, { message: 'the later two, read past the uncommitted tail' })
    assert.deepEqual(seen, ['0', '1', '2', '3', '4', '5', '6'])
    await waitFor(async () => (await committedOffset()) === '2', { message: 'commit at 2' })
    await consumer.commit('t', 0, '5')
    assert.equal(await committedOffset(), '5')
    await consumer.commit('t', 0, '3')
    assert.equal(await committedOffset(), '5', 'never backwards')
    await consumer.stop()

    const resumed: string[] = []
    consumer = kafka.consumer({
      groupId: 'g',
      topics: ['t'],
      handler: async (b) => void resumed.push(...b.messages.map((m) => m.offset)),
    })
    await consumer.start()
    await waitFor(() => resumed.length === 2, { message: 'the redelivered tail' })
    assert.deepEqual(resumed, ['5', '6'])
    await waitFor(async () => (await committedOffset()) === '7', { message: 'commit of the whole batch' })
  } finally {
    await consumer?.stop()
    await producer.stop()
    await admin.disconnect()
  }
})
