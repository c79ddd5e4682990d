/**
 * Every query from this folder runs read-only, with ClickHouse's `readonly = 1` as the guard.
 *
 * On a server, `readonly = 1` goes with each request as a setting and lasts for that request.
 * On chDB it cannot: @clickhouse/client's settings become `SET` statements on chDB's session and
 * stay — after one read-only query the process's only session refuses every later insert, and
 * `readonly = 1` forbids setting it back (measured with chdb 3.4.0). So queries here get their own
 * chDB session on the same data directory (chDB keeps settings per session), made read-only once
 * and never changed back. It lives as long as the process, like the embedded session itself.
 */
import { type ClickHouseClient, type ClickHouseSettings, createClient } from '@clickhouse/client'
import { createChdbConnection } from 'chdb/connection'
import { type ClickHouse, ident } from '../store/client.ts'
import { toQueryError } from './errors.ts'

export interface ReadOnlyTarget {
  client: ClickHouseClient
  /** per-request settings (server only: on chDB the session itself is read-only) */
  settings?: ClickHouseSettings
}

type ChdbAsClientConnection = NonNullable<NonNullable<Parameters<typeof createClient>[0]>['connection']>

const SERVER_SETTINGS: ClickHouseSettings = { readonly: '1' }

/** chDB read-only sessions, per client (one per process in practice) and database. */
const sessions = new WeakMap<ClickHouseClient, Map<string, Promise<ClickHouseClient>>>()

export async function readOnlyTarget(ch: ClickHouse): Promise<ReadOnlyTarget> {
  if (!ch.embedded) return { client: ch.client, settings: SERVER_SETTINGS }
  let byDatabase = sessions.get(ch.client)
  if (!byDatabase) {
    byDatabase = new Map()
    sessions.set(ch.client, byDatabase)
  }
  let session = byDatabase.get(ch.database)
  if (!session) {
    session = openReadOnlySession(ch)
    byDatabase.set(ch.database, session)
    // a failed open (database not migrated yet) is retried by the next query, not cached
    session.catch(() => byDatabase.delete(ch.database))
  }
  return { client: await session }
}

async function openReadOnlySession(ch: ClickHouse): Promise<ClickHouseClient> {
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
    for (const query of [
      `USE ${ident(ch.database)}`,
      // 64-bit integers as JSON strings: exact, and the runner turns the safe ones back into numbers
      'SET output_format_json_quote_64bit_integers = 1',
      // last: after this the session cannot change any setting, readonly included
      'SET readonly = 1',
    ]) {
      await client.command({ query })
    }
    return client
  } catch (err) {
    await client?.close()
    throw toQueryError(err, `opening a read-only session on ${ch.database}`)
  }
}
