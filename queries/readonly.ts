/**
 * Where queries from this folder run: read-only, limited (limits.ts), a bounded number at a time,
 * and cancellable.
 *
 * Read-only. On a server, `readonly = 1` and the limits go with each request as settings and last
 * for that request. On chDB they cannot: @clickhouse/client's settings become `SET` statements on
 * chDB's session and stay — after one read-only query the process's only session would refuse every
 * later insert, and `readonly = 1` forbids setting it back (measured with chdb 3.4.0). So queries
 * get chDB sessions of their own on the same data directory (chDB keeps settings per session), with
 * the limits set and then `readonly = 1`, never changed back. They live as long as the process.
 *
 * Concurrency. chdb-node runs each query on a libuv worker thread, not on the event loop (measured:
 * the loop stayed responsive, ≤ 47 ms between 10 ms timers, during a 1.6 s query), so no worker
 * thread of our own is needed. But queries on one chDB session run one after another (a second
 * query waited for the first to finish), so a single session let one slow query block every later
 * one. Hence a pool: `concurrency` sessions, one query each, and a bounded FIFO queue in front;
 * when the queue is full the query is refused at once (QueryBusyError, HTTP 503) rather than piling
 * up. `max_execution_time` bounds how long any query holds its slot.
 *
 * Cancellation. chDB's C API has no interrupt, but ClickHouse's `KILL QUERY` works across sessions
 * of one process (measured: a running query ended 130 ms after KILL QUERY from another session). So
 * each query carries a tag comment, and a cancelled one (its client disconnected, or the server is
 * closing) is killed by that tag from the writable session. On a server the request is aborted
 * instead and `cancel_http_readonly_queries_on_client_close` makes the server stop the query.
 */
import { randomUUID } from 'node:crypto'
import { type ClickHouseClient, type ClickHouseSettings, createClient } from '@clickhouse/client'
import { createChdbConnection } from 'chdb/connection'
import { type ClickHouse, ident } from '../store/client.ts'
import { QueryBusyError, QueryCancelledError, toQueryError } from './errors.ts'
import { checkLimits, DEFAULT_QUERY_LIMITS, limitSettings, type QueryLimits } from './limits.ts'

export interface ReadOnlyTarget {
  client: ClickHouseClient
  /** per-request settings (server only: on chDB the session itself is read-only and limited) */
  settings?: ClickHouseSettings
  /** the database unqualified names resolve in */
  database: string
  /** true when the client is an embedded chDB session */
  embedded: boolean
}

/** One query's turn on a target: the tag to put in its text, and how it is cancelled. */
export interface QuerySlot {
  target: ReadOnlyTarget
  /** a SQL comment to prefix the query with, so that it can be found and killed */
  tag: string
  /** aborted when the query is to stop (client gone, server closing) */
  signal: AbortSignal
  /** runs the query, killing it when `signal` aborts; the promise settles when the engine is done */
  run<T>(query: (abortSignal: AbortSignal | undefined) => Promise<T>): Promise<T>
}

type ChdbAsClientConnection = NonNullable<NonNullable<Parameters<typeof createClient>[0]>['connection']>

const KILL_RETRY_MS = 200

interface Waiter {
  start: () => void
  fail: (err: Error) => void
}

/** A bounded set of read-only targets with a bounded queue in front (see the module comment). */
export class ReadOnlyPool {
  readonly limits: QueryLimits
  private readonly free: Promise<ReadOnlyTarget>[] = []
  private active = 0
  private readonly waiting: Waiter[] = []

  constructor(
    private readonly ch: ClickHouse,
    limits: QueryLimits,
  ) {
    this.limits = checkLimits({ ...limits })
  }

  /** queries running and waiting now */
  get load(): { active: number; waiting: number } {
    return { active: this.active, waiting: this.waiting.length }
  }

  /**
   * Waits for a slot (or refuses with QueryBusyError when the queue is full), then calls `fn` with
   * it. An abort while waiting leaves the queue; an abort while running kills the query.
   */
  async withSlot<T>(signal: AbortSignal | undefined, fn: (slot: QuerySlot) => Promise<T>): Promise<T> {
    const stop = signal ?? new AbortController().signal
    if (stop.aborted) throw cancelled(stop)
    await this.turn(stop)
    let target: ReadOnlyTarget | undefined
    const tainted = { value: false }
    try {
      target = await (this.free.pop() ?? this.open())
      return await fn(this.slot(target, stop, tainted))
    } finally {
      if (target && tainted.value) {
        // chDB leaves the output a failed or killed query had produced on its session, and the next
        // query on that session returns it first (measured with chdb 3.4.0: a result-rows limit
        // error, then `SELECT 7` answered with the failed query's header rows): replace the session
        void target.client.close().catch(() => undefined)
      } else if (target) this.free.push(Promise.resolve(target))
      this.active--
      this.waiting.shift()?.start()
    }
  }

  private turn(signal: AbortSignal): Promise<void> {
    if (this.active < this.limits.concurrency) {
      this.active++
      return Promise.resolve()
    }
    if (this.waiting.length >= this.limits.queueLength) {
      return Promise.reject(
        new QueryBusyError(
          `too many queries: ${this.active} running and ${this.waiting.length} waiting ` +
            `(queryConcurrency ${this.limits.concurrency}, queryQueueLength ${this.limits.queueLength}); retry shortly`,
          1000,
        ),
      )
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        start: () => {
          signal.removeEventListener('abort', onAbort)
          this.active++
          resolve()
        },
        fail: reject,
      }
      const onAbort = () => {
        const i = this.waiting.indexOf(waiter)
        if (i >= 0) this.waiting.splice(i, 1)
        reject(cancelled(signal))
      }
      signal.addEventListener('abort', onAbort, { once: true })
      this.waiting.push(waiter)
    })
  }

  private open(): Promise<ReadOnlyTarget> {
    if (!this.ch.embedded) {
      return Promise.resolve({
        client: this.ch.client,
        database: this.ch.database,
        embedded: false,
        // readonly last: ClickHouse checks a request's settings against the user's before any applies
        settings: {
          ...limitSettings(this.limits),
          output_format_json_quote_64bit_integers: 1,
          cancel_http_readonly_queries_on_client_close: 1,
          readonly: '1',
        },
      })
    }
    return openReadOnlySession(this.ch, this.limits)
  }

  private slot(target: ReadOnlyTarget, signal: AbortSignal, tainted: { value: boolean }): QuerySlot {
    const tag = `/* breakid-query ${randomUUID()} */`
    return {
      target,
      tag,
      signal,
      run: async <T>(query: (abortSignal: AbortSignal | undefined) => Promise<T>): Promise<T> => {
        if (signal.aborted) throw cancelled(signal)
        // a server stops the query when its request is aborted; chDB needs KILL QUERY
        if (!target.embedded) {
          try {
            return await query(signal)
          } catch (err) {
            if (signal.aborted) throw cancelled(signal, err)
            throw err
          }
        }
        let settled = false
        const running = query(undefined).finally(() => {
          settled = true
        })
        const kill = async () => {
          // the query may not be in the process list yet: repeat until it has ended
          for (let i = 0; !settled && i < 1 + (this.limits.maxExecutionTimeS * 1000) / KILL_RETRY_MS; i++) {
            await killTagged(this.ch, tag).catch(() => undefined)
            await Promise.race([running.catch(() => undefined), delay(KILL_RETRY_MS)])
          }
        }
        const onAbort = () => void kill()
        signal.addEventListener('abort', onAbort, { once: true })
        try {
          return await running
        } catch (err) {
          tainted.value = true
          if (signal.aborted) throw cancelled(signal, err)
          throw err
        } finally {
          signal.removeEventListener('abort', onAbort)
        }
      },
    }
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref())
}

function cancelled(signal: AbortSignal, cause?: unknown): QueryCancelledError {
  const reason = signal.reason instanceof Error ? signal.reason.message : String(signal.reason ?? 'cancelled')
  return new QueryCancelledError(`query cancelled: ${reason}`, undefined, cause)
}

/** Kills the chDB query whose text starts with `tag`, from the writable session (KILL is a write). */
async function killTagged(ch: ClickHouse, tag: string): Promise<void> {
  // the tag is ours (a UUID in a comment), so it is safe to put in the LIKE pattern
  await ch.client.command({ query: `KILL QUERY WHERE startsWith(query, '${tag}') ASYNC` })
}

/** Pools per ClickHouse client (one per process in practice), database and limits. */
const pools = new WeakMap<ClickHouseClient, Map<string, ReadOnlyPool>>()

/** The pool that runs queries on `ch` with these limits (the defaults when none are given). */
export function readOnlyPool(ch: ClickHouse, limits: QueryLimits = DEFAULT_QUERY_LIMITS): ReadOnlyPool {
  let byKey = pools.get(ch.client)
  if (!byKey) {
    byKey = new Map()
    pools.set(ch.client, byKey)
  }
  const key = `${ch.database}:${JSON.stringify(limits)}`
  let pool = byKey.get(key)
  if (!pool) {
    pool = new ReadOnlyPool(ch, limits)
    byKey.set(key, pool)
  }
  return pool
}

async function openReadOnlySession(ch: ClickHouse, limits: QueryLimits): Promise<ReadOnlyTarget> {
  let client: ClickHouseClient | undefined
  try {
    // ClickHouse does not hand out the data directory of a client, but the engine knows its path
    const rs = await ch.client.query({
      query: "SELECT value FROM system.server_settings WHERE name = 'path'",
      format: 'JSONEachRow',
    })
    const [row] = await rs.json<{ value: string }>()
    if (!row?.value) throw new Error('chDB did not report its data path')
    const path = row.value.length > 1 ? row.value.replace(/\/+$/, '') : row.value
    client = createClient({
      connection: createChdbConnection({ path }) as unknown as ChdbAsClientConnection,
    })
    const limitStatements = Object.entries(limitSettings(limits)).map(
      ([name, value]) =>
        `SET ${name} = ${typeof value === 'string' && !/^\d+$/.test(value) ? `'${value}'` : value}`,
    )
    for (const query of [
      `USE ${ident(ch.database)}`,
      // 64-bit integers as JSON strings: exact, and the runner turns the safe ones back into numbers
      'SET output_format_json_quote_64bit_integers = 1',
      ...limitStatements,
      // last: after this the session cannot change any setting, readonly and the limits included
      'SET readonly = 1',
    ]) {
      await client.command({ query })
    }
    return { client, database: ch.database, embedded: true }
  } catch (err) {
    await client?.close()
    throw toQueryError(err, `opening a read-only session on ${ch.database}`)
  }
}
