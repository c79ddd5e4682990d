/**
 * One ClickHouse client per process, on chDB (embedded, the default) or a server (`CLICKHOUSE_URL`).
 * Both go through @clickhouse/client, so every query and insert is the same code on either path.
 *
 * chDB binds one data directory per process and locks it against other processes, so the embedded
 * client is shared: asking for a second directory in the same process is an error, not a surprise.
 */
import { resolve } from 'node:path'
import { type ClickHouseClient, createClient } from '@clickhouse/client'
import { InvalidInputError } from '../core/errors.ts'
import { BinaryInsertChdbConnection } from './chdb-connection.ts'

export interface ClickHouseOptions {
  /** http(s)://user:pass@host:8123 — when set, a server is used instead of chDB */
  url?: string
  /** chDB data directory (embedded only) */
  dataDir: string
  database: string
}

export interface ClickHouse {
  readonly client: ClickHouseClient
  readonly database: string
  readonly embedded: boolean
  /** server URL when not embedded */
  readonly url?: string
  /** releases the client; the embedded session stays open for the rest of the process */
  close(): Promise<void>
}

type ChdbAsClientConnection = NonNullable<NonNullable<Parameters<typeof createClient>[0]>['connection']>

let embedded: { dataDir: string; client: ClickHouseClient; users: number } | undefined

export function openClickHouse(opts: ClickHouseOptions): ClickHouse {
  if (opts.url) {
    // The database is every query's default, so named and ad-hoc SQL say `spans`, not `db.spans`.
    const client = createClient({ url: opts.url, database: opts.database, request_timeout: 60_000 })
    return { client, database: opts.database, embedded: false, url: opts.url, close: () => client.close() }
  }
  const dataDir = resolve(opts.dataDir)
  if (embedded && embedded.dataDir !== dataDir) {
    throw new InvalidInputError(
      `chDB is already bound to ${embedded.dataDir} in this process; cannot also open ${dataDir}`,
    )
  }
  if (!embedded) {
    embedded = {
      dataDir,
      client: createClient({
        // chdb ships its own copy of @clickhouse/client-common's types; the runtime contract is the same
        connection: new BinaryInsertChdbConnection({ path: dataDir }) as unknown as ChdbAsClientConnection,
      }),
      users: 0,
    }
  }
  embedded.users++
  let closed = false
  return {
    client: embedded.client,
    database: opts.database,
    embedded: true,
    close: async () => {
      if (closed) return
      closed = true
      embedded!.users--
    },
  }
}

/** Quote an identifier for ClickHouse SQL (database and table names come from config). */
export function ident(name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new InvalidInputError(`invalid identifier: ${name}`)
  return `\`${name}\``
}
