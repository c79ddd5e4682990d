import assert from 'node:assert/strict'
import { test } from 'node:test'
import { EmbeddedBus } from '../../bus/embedded-bus.ts'
import type { IncomingMessage } from '../../bus/transport.ts'
import { waitFor } from '../helpers/wait.ts'

const msg = (i: number) => ({ key: `k${i}`, value: Buffer.from(String(i)) })

test('delivers every message in order and commits only after the handler resolved', async () => {
  const bus = new EmbeddedBus({ maxBatch: 7, retryDelayMs: 5 })
  const seen: number[] = []
  let failOnce = true
  const consumer = bus.consumer({
    groupId: 'g',
    topics: ['t'],
    handler: async (batch) => {
      if (failOnce && batch.messages.some((m) => m.value!.toString() === '10')) {
        failOnce = false
        throw new Error('transient')
      }
      for (const m of batch.messages) seen.push(Number(m.value!.toString()))
    },
  })
  await consumer.start()
  const producer = bus.producer()
  for (let i = 0; i < 50; i++) await producer.send('t', [msg(i)])
  await waitFor(() => consumer.committedMessages === 50)
  await consumer.stop()
  assert.deepEqual(
    seen,
    Array.from({ length: 50 }, (_, i) => i),
  )
})

test('a restarted group resumes from its committed offset; committed messages are released', async () => {
  const bus = new EmbeddedBus()
  const producer = bus.producer()
  await producer.send('t', [msg(0), msg(1), msg(2)])
  const got: IncomingMessage[] = []
  const make = (groupId: string) =>
    bus.consumer({
      groupId,
      topics: ['t'],
      handler: async (b) => {
        got.push(...b.messages)
      },
    })
  const a = make('a')
  await a.start()
  await waitFor(() => got.length === 3)
  await a.stop()
  await producer.send('t', [msg(3)])
  const again = make('a')
  await again.start()
  await waitFor(() => got.length === 4)
  await again.stop()
  assert.deepEqual(
    got.map((m) => m.offset),
    ['0', '1', '2', '3'],
  )
  // every known group committed everything: nothing is held in memory any more
  const late: IncomingMessage[] = []
  const b = bus.consumer({
    groupId: 'b',
    topics: ['t'],
    handler: async (batch) => void late.push(...batch.messages),
  })
  await b.start()
  await producer.send('t', [msg(4)])
  await waitFor(() => late.length === 1)
  await b.stop()
  assert.equal(late[0]!.offset, '4', 'a group that joins late starts at the oldest retained message')
})

test('a full topic makes the producer wait (back-pressure) instead of dropping', async () => {
  const bus = new EmbeddedBus({ maxBacklog: 5 })
  let release!: () => void
  const gate = new Promise<void>((r) => {
    release = r
  })
  let handled = 0
  const consumer = bus.consumer({
    groupId: 'slow',
    topics: ['t'],
    handler: async (b) => {
      await gate
      handled += b.messages.length
    },
  })
  await consumer.start()
  const producer = bus.producer()
  for (let i = 0; i < 5; i++) await producer.send('t', [msg(i)])
  let sent = false
  const pending = producer.send('t', [msg(5)]).then(() => {
    sent = true
  })
  await new Promise((r) => setTimeout(r, 50))
  assert.equal(sent, false, 'the sixth message waits while five are uncommitted')
  assert.ok(bus.producerWaits >= 1)
  release()
  await pending
  await waitFor(() => handled === 6)
  await consumer.stop()
})

test('a PartialCommit reads on past the batch but commits less; commit() moves it later; a restart resumes there', async () => {
  const bus = new EmbeddedBus({ retryDelayMs: 5 })
  const producer = bus.producer()
  const seen: string[] = []
  const consumer = bus.consumer({
    groupId: 'p',
    topics: ['t'],
    // keeps everything from offset 1 on unfinished
    handler: async (b) => {
      seen.push(...b.messages.map((m) => m.offset))
      return { commitOffset: '1' }
    },
  })
  await consumer.start()
  await producer.send('t', [msg(0), msg(1), msg(2)])
  await waitFor(() => seen.length === 3)
  await producer.send('t', [msg(3)])
  await waitFor(() => seen.length === 4)
  assert.deepEqual(seen, ['0', '1', '2', '3'], 'the later message is read past the uncommitted ones')
  assert.equal(bus.committedOffset('t', 'p'), 1)
  await consumer.commit('t', 0, '3')
  assert.equal(bus.committedOffset('t', 'p'), 3)
  await consumer.commit('t', 0, '2')
  assert.equal(bus.committedOffset('t', 'p'), 3, 'never backwards')
  await consumer.stop()
  await consumer.commit('t', 0, '4') // not running: a no-op
  assert.equal(bus.committedOffset('t', 'p'), 3)

  const resumed: string[] = []
  const again = bus.consumer({
    groupId: 'p',
    topics: ['t'],
    handler: async (b) => void resumed.push(...b.messages.map((m) => m.offset)),
  })
  await again.start()
  await waitFor(() => resumed.length === 1)
  assert.deepEqual(resumed, ['3'], 'a restarted group reads again from its commit')
  await again.commit('t', 0, '99')
  assert.equal(bus.committedOffset('t', 'p'), 4, 'never past the end of the log')
  await again.stop()
})
