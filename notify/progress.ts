/**
 * How far the notifier may commit one partition of the alerts topic while its routes work at their
 * own pace: every alert is owed to the routes that matched it; the commit may reach the first offset
 * some route still owes (the low-water mark), never further. A down route therefore holds the
 * commit — a restart redelivers from its oldest undelivered alert, and the healthy routes' receivers
 * dedupe the repeats on `Idempotency-Key` — but it holds nothing else.
 */
export class PartitionProgress {
  /** highest offset handed to the routes; a redelivered message at or below it is skipped */
  private acceptedUpTo = -1n
  /** offset → routes that still owe it; inserted in offset order, so the first key is the lowest */
  private readonly owed = new Map<bigint, number>()

  constructor(
    readonly topic: string,
    readonly partition: number,
  ) {}

  /** whether `offset` was already handed to the routes in this session */
  seen(offset: bigint): boolean {
    return offset <= this.acceptedUpTo
  }

  /** `offset` was handed to `routes` routes (0: nothing to deliver, settled at once) */
  accept(offset: bigint, routes: number): void {
    this.acceptedUpTo = offset
    if (routes > 0) this.owed.set(offset, routes)
  }

  /** one route finished `offset` (delivered it, or gave up on it durably) */
  settle(offset: bigint): void {
    const left = this.owed.get(offset)
    if (left === undefined) return
    if (left <= 1) this.owed.delete(offset)
    else this.owed.set(offset, left - 1)
  }

  /** The offset to commit (Kafka's next offset to read): the first one some route still owes. */
  lowWater(): bigint {
    for (const offset of this.owed.keys()) return offset
    return this.acceptedUpTo + 1n
  }

  /** alerts of this partition some route still owes */
  get pending(): number {
    return this.owed.size
  }
}
