/**
 * The kafkajs idle fix (bus/kafkajs-idle-fix.ts) against a real broker: a connected
 * producer with nothing to send leaves its connections' request queues alone, instead of re-checking
 * them from a 1 ms timer loop. Never skipped: without a broker it fails.
 */
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { before, test } from 'node:test'
import { codecs, TOPICS } from '../../contract/topics.ts'
import { createLogger } from '../../core/logger.ts'
import { KafkaTransport } from '../../bus/kafka.ts'
import { kafkajsIdleFixApplied } from '../../bus/kafkajs-idle-fix.ts'
import { kafkaBrokers, requireKafka } from '../helpers/kafka.ts'
import { makeSpan } from '../../contract/synthetic.ts'

const require = createRequire(import.meta.url)
const RequestQueue = require('kafkajs/src/network/requestQueue/index.js') as {
  prototype: { checkPendingRequests(): void }
}

before(async () => {
  await requireKafka()
})

test('an idle connected producer does not spin on its request queues', async () => {
  assert.ok(kafkajsIdleFixApplied, 'the fix applies to the installed kafkajs')
  const prefix = `idle-${randomBytes(4).toString('hex')}.`
  const kafka = new KafkaTransport({
    brokers: kafkaBrokers(),
    logger: createLogger('silent'),
    topicPrefix: prefix,
  })
  await kafka.ensureTopics([TOPICS.spans])
  const producer = kafka.producer()
  await producer.start()
  const original = RequestQueue.prototype.checkPendingRequests
  let checks = 0
  RequestQueue.prototype.checkPendingRequests = function (this: unknown) {
    checks++
    return original.call(this)
  }
  try {
    // one send: every response ends in checkPendingRequests, which upstream re-arms every ~1 ms forever
    await producer.send(TOPICS.spans, [{ key: 'engine-0', value: codecs.span.encode(makeSpan(0)) }])
    const afterSend = checks
    await sleep(500)
    // upstream: ~500 re-checks in this half second (one per timer tick); fixed: none without traffic
    assert.ok(checks - afterSend < 10, `${checks - afterSend} queue re-checks while idle`)
  } finally {
    RequestQueue.prototype.checkPendingRequests = original
    await producer.stop()
  }
})
