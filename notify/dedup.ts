/**
 * The notifier's dedup window: keys of the last `capacity` settled deliveries (route, alert id,
 * status), as an insertion-ordered Map used as an LRU — a hit refreshes the key, a full window
 * forgets its least recently used key. It lives in memory; after a restart receivers dedupe on the
 * `Idempotency-Key` header instead.
 */
import type { Alert } from '../contract/records.ts'

export function deliveryKey(route: string, alert: Pick<Alert, 'id' | 'status'>): string {
  return `${route}\u0000${alert.id}\u0000${alert.status}`
}

/** settled delivery key → the message (`topic/partition/offset`) that settled it */
export class SettledKeys {
  private readonly map = new Map<string, string>()

  constructor(private readonly capacity: number) {}

  get(key: string): string | undefined {
    const origin = this.map.get(key)
    if (origin !== undefined) {
      this.map.delete(key)
      this.map.set(key, origin)
    }
    return origin
  }

  add(key: string, origin: string): void {
    this.map.delete(key)
    this.map.set(key, origin)
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value!)
  }

  get size(): number {
    return this.map.size
  }
}
