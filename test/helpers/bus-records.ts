/** Reads the records a component put on an embedded bus, decoded with the contract's codecs. */
import type { EmbeddedBus } from '../../bus/embedded-bus.ts'
import type { MessageConsumer } from '../../bus/transport.ts'
import { decodeRecords } from '../../contract/container.ts'
import type { HwSample, Span } from '../../contract/records.ts'
import { codecs, TOPICS } from '../../contract/topics.ts'

export class BusRecords {
  readonly spans: Span[] = []
  readonly hw: HwSample[] = []
  private readonly consumer: MessageConsumer
  private readonly group = `test-${Math.random().toString(36).slice(2)}`

  constructor(private readonly bus: EmbeddedBus) {
    this.consumer = bus.consumer({
      groupId: this.group,
      topics: [TOPICS.spans, TOPICS.hw],
      handler: async (batch) => {
        for (const m of batch.messages) {
          if (!m.value) continue
          if (batch.topic === TOPICS.spans) this.spans.push(...decodeRecords(codecs.span, m.value))
          else this.hw.push(...decodeRecords(codecs.hw, m.value))
        }
      },
    })
  }

  start(): Promise<void> {
    return this.consumer.start()
  }

  /** Everything appended so far has been read. */
  async drained(): Promise<void> {
    await this.bus.drained(TOPICS.spans, this.group)
    await this.bus.drained(TOPICS.hw, this.group)
  }

  stop(): Promise<void> {
    return this.consumer.stop()
  }
}
