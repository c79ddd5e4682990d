/**
 * Query limits, the bounded pool, and cancellation against real chDB: a query over a limit ends
 * with a limit error naming the setting; a slow query neither blocks a concurrent one nor the
 * server's close(); a query whose HTTP client disconnects is killed in the engine. No assertion
 * on wall-clock: a kill is told from a timeout by ClickHouse's own error (QUERY_WAS_CANCELLED),
 * with max_execution_time far above the test's own timeout.
 */
import assert from 'node:assert/strict'
import { serverErrorCode } from '../../store/errors.ts'
import { request } from 'node:http'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import { type ClickHouse, openClickHouse } from '../../store/client.ts'
import { migrate } from '../../store/migrations.ts'
import { QueryBusyError, QueryCancelledError, QueryLimitError } from '../../queries/errors.ts'
import { queriesPlugin } from '../../queries/http.ts'
import { DEFAULT_QUERY_LIMITS, type QueryLimits } from '../../queries/limits.ts'
import { readOnlyPool } from '../../queries/readonly.ts'
import { runSql } from '../../queries/runner.ts'
import { waitFor } from '../helpers/wait.ts'

let dir = ''
let ch: ClickHouse

/**
 * Reads few rows, runs until killed or max_execution_time: 10^10 hashes of a cross join. The marker
 * tells this query's process-list entry from any other (chDB keeps the entry of a failed query
 * until its session runs again or closes).
 */
const slowSql = (marker: string) =>
  `SELECT count() FROM numbers(100000) AS a, numbers(100000) AS b WHERE sipHash64(a.number, b.number) = 1 AND '${marker}' != ''`
/** Limits under which slowSql() only ends by being killed (max_execution_time beyond the test timeout). */
const SLOW: QueryLimits = { ...DEFAULT_QUERY_LIMITS, maxExecutionTimeS: 3600, concurrency: 2, queueLength: 1 }

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'breakid-limits-'))
  ch = openClickHouse({ dataDir: dir, database: 'breakid_limits' })
  await migrate(ch)
})

after(async () => {
  await ch?.close()
  await rm(dir, { recursive: true, force: true })
})

/** runner queries (they carry its tag) with this marker that are in the engine now */
async function runningQueries(marker: string): Promise<number> {
  const rs = await ch.client.query({
    query:
      "SELECT count() AS n FROM system.processes WHERE startsWith(query, '/* breakid-query') AND position(query, {marker:String}) > 0",
    query_params: { marker },
    format: 'JSONEachRow',
  })
  return Number((await rs.json<{ n: string }>())[0]!.n)
}

function isCancelledByKill(err: unknown): boolean {
  return err instanceof QueryCancelledError && serverErrorCode(err.cause) === '394'
}

describe('limits', () => {
  test('SELECT number FROM numbers(1e10) ends with a limit error naming max_rows_to_read', async () => {
    await assert.rejects(runSql(ch, 'SELECT number FROM numbers(1e10)'), (err: Error) => {
      assert.ok(err instanceof QueryLimitError, err.message)
      assert.equal(err.code, 'BREAKID_QUERY_LIMIT')
      assert.match(err.message, /max_rows_to_read.*queryMaxRowsToRead.*--query-max-rows-to-read/)
      return true
    })
  })

  test('too many result rows, too much memory, too long: each a limit error naming its setting', async () => {
    const tight: QueryLimits = {
      ...DEFAULT_QUERY_LIMITS,
      maxResultRows: 1000,
      maxMemoryBytes: 32 * 1024 * 1024,
      maxExecutionTimeS: 0.5,
    }
    const cases: [string, RegExp][] = [
      ['SELECT number FROM numbers(100000)', /max_result_rows/],
      ['SELECT length(groupArray(toString(number))) FROM numbers(10000000)', /max_memory_usage/],
      [slowSql('timeout'), /max_execution_time/],
    ]
    for (const [sql, setting] of cases) {
      await assert.rejects(
        runSql(ch, sql, { limits: tight }),
        (err: Error) => err instanceof QueryLimitError && setting.test(err.message),
        sql,
      )
    }
    // the limit of how many rows are shown is not an error: it truncates
    const shown = await runSql(ch, 'SELECT number FROM numbers(500)', { limits: tight, limitRows: 10 })
    assert.equal(shown.rows.length, 10)
    assert.equal(shown.truncated, true)
  })

  test('the limits hold on the read-only session: SETTINGS cannot lift them', async () => {
    await readOnlyPool(ch).withSlot(undefined, async ({ target }) => {
      const rs = await target.client.query({
        query: "SELECT name, value FROM system.settings WHERE name IN ('max_rows_to_read', 'readonly')",
        format: 'JSONEachRow',
      })
      const settings = Object.fromEntries(
        (await rs.json<{ name: string; value: string }>()).map((r) => [r.name, r.value]),
      )
      assert.deepEqual(settings, {
        max_rows_to_read: String(DEFAULT_QUERY_LIMITS.maxRowsToRead),
        readonly: '1',
      })
    })
  })
})

describe('the pool: concurrency, queue, cancellation', () => {
  test('a slow query does not block a concurrent one; a full queue refuses at once', async () => {
    const slowAbort = new AbortController()
    const slow = runSql(ch, slowSql('pool-1'), { limits: SLOW, signal: slowAbort.signal })
    let slowSettled = false
    // the expectation is attached now: a query killed before the test gets to it must not be an
    // unhandled rejection (it was, under load)
    const slowKilled = assert.rejects(
      slow.finally(() => {
        slowSettled = true
      }),
      (err) => isCancelledByKill(err),
    )
    await waitFor(async () => (await runningQueries('pool-1')) === 1, { message: 'the slow query to run' })
    const fast = await runSql(ch, 'SELECT 42', { limits: SLOW })
    assert.deepEqual(fast.rows, [[42]])
    assert.equal(slowSettled, false, 'the fast query finished while the slow one still ran')

    // fill the second slot and the queue (1): the next query is refused without waiting
    const second = new AbortController()
    const third = new AbortController()
    const running = runSql(ch, slowSql('pool-2'), { limits: SLOW, signal: second.signal })
    const runningKilled = assert.rejects(running, (err) => isCancelledByKill(err))
    await waitFor(async () => (await runningQueries('pool-2')) === 1, { message: 'two slow queries' })
    const queued = runSql(ch, 'SELECT 1', { limits: SLOW, signal: third.signal })
    const queuedCancelled = assert.rejects(queued, QueryCancelledError)
    await waitFor(() => readOnlyPool(ch, SLOW).load.waiting === 1, { message: 'one query waiting' })
    await assert.rejects(runSql(ch, 'SELECT 1', { limits: SLOW }), QueryBusyError)

    // a waiting query that is cancelled leaves the queue; running ones are killed in the engine
    third.abort(new Error('gone'))
    await queuedCancelled
    slowAbort.abort(new Error('gone'))
    second.abort(new Error('gone'))
    await slowKilled
    await runningKilled
    await waitFor(async () => (await runningQueries('pool-')) === 0, {
      message: 'the engine to drop the killed queries',
    })
    assert.deepEqual(readOnlyPool(ch, SLOW).load, { active: 0, waiting: 0 })
  })
})

describe('over HTTP', () => {
  let app: FastifyInstance
  let base = ''
  before(async () => {
    app = Fastify()
    await app.register(queriesPlugin, { ch, limits: SLOW })
    base = await app.listen({ host: '127.0.0.1', port: 0 })
  })
  after(async () => {
    await app.close()
  })

  /** POSTs the SQL; resolves with the response, or when `signal` aborts, having destroyed the socket. */
  function postSql(
    sql: string,
    signal?: AbortSignal,
  ): Promise<{ status: number; body: string; connection?: string } | 'aborted'> {
    return new Promise((resolve, reject) => {
      const body = JSON.stringify({ sql })
      const req = request(`${base}/api/sql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      })
      req.on('response', (res) => {
        let text = ''
        res.on('data', (c) => {
          text += c
        })
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: text, connection: res.headers.connection }),
        )
      })
      req.on('error', (err) => (signal?.aborted ? resolve('aborted') : reject(err)))
      signal?.addEventListener('abort', () => req.destroy())
      req.end(body)
    })
  }

  test('a limit error is 400 BREAKID_QUERY_LIMIT; refused SQL 400 BREAKID_SQL_REFUSED', async () => {
    const limit = await postSql('SELECT number FROM numbers(1e10)')
    assert.ok(limit !== 'aborted')
    assert.equal(limit.status, 400)
    assert.equal(JSON.parse(limit.body).code, 'BREAKID_QUERY_LIMIT')
    const refused = await postSql("SELECT file('/etc/passwd')")
    assert.ok(refused !== 'aborted')
    assert.equal(refused.status, 400)
    assert.equal(JSON.parse(refused.body).code, 'BREAKID_SQL_REFUSED')
  })

  test('a client that disconnects has its query killed; others are answered meanwhile', async () => {
    const hangUp = new AbortController()
    const abandoned = postSql(slowSql('http-1'), hangUp.signal)
    await waitFor(async () => (await runningQueries('http-1')) === 1, { message: 'the slow query to run' })
    const other = await postSql('SELECT 7 AS n')
    assert.ok(other !== 'aborted')
    assert.deepEqual(JSON.parse(other.body), [{ n: 7 }])
    hangUp.abort()
    assert.equal(await abandoned, 'aborted')
    await waitFor(async () => (await runningQueries('http-1')) === 0, {
      message: 'the abandoned query to be killed',
    })
  })

  test('close() with a slow query in flight cancels it (503) instead of waiting for it', async () => {
    const inFlight = postSql(slowSql('http-2'))
    await waitFor(async () => (await runningQueries('http-2')) === 1, { message: 'the slow query to run' })
    await app.close()
    const res = await inFlight
    assert.ok(res !== 'aborted')
    assert.equal(res.status, 503)
    assert.equal(JSON.parse(res.body).code, 'BREAKID_QUERY_CANCELLED')
    assert.match(JSON.parse(res.body).error, /shutting down/)
    // a kept-alive socket would hold close() for the keep-alive timeout
    assert.equal(res.connection, 'close')
    await waitFor(async () => (await runningQueries('http-2')) === 0, {
      message: 'the engine to drop the query',
    })
  })
})
