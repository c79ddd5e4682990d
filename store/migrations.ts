/**
 * Versioned schema migrations. Each runs once, in order, and is recorded in `schema_migrations`;
 * a migration is never edited after release — add a new one.
 */
import { createClient } from '@clickhouse/client'
import type { ClickHouse } from './client.ts'
import { ident } from './client.ts'
import {
  alertsTable,
  columnsAddedAfter,
  type TableSpec,
  createTableSql,
  deadLettersTable,
  detectorStateTable,
  hwSamplesTable,
  spansTable,
} from './tables.ts'

interface Migration {
  version: number
  name: string
  statements: (db: string) => string[]
}

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'telemetry tables',
    statements: (db) => [
      createTableSql(db, spansTable),
      createTableSql(db, hwSamplesTable),
      createTableSql(db, alertsTable),
      createTableSql(db, deadLettersTable),
    ],
  },
  {
    version: 2,
    name: 'detector state checkpoints',
    statements: (db) => [createTableSql(db, detectorStateTable)],
  },
  {
    version: 3,
    name: 'v2 record fields: run ids, host pressure, resolve reasons, related alerts',
    statements: (db) => [
      addColumnsSql(db, spansTable, 'run_id'),
      addColumnsSql(db, hwSamplesTable, 'run_id'),
      addColumnsSql(db, alertsTable, 'run_id'),
    ],
  },
]

/** ALTER TABLE adding every column of `spec` from `firstColumn` on (no-op for tables created with them). */
function addColumnsSql<R>(db: string, spec: TableSpec<R>, firstColumn: string): string {
  const adds = columnsAddedAfter(spec, firstColumn).map(
    (c) => `ADD COLUMN IF NOT EXISTS \`${c.name}\` ${c.type}`,
  )
  return `ALTER TABLE \`${db}\`.\`${spec.name}\` ${adds.join(', ')}`
}

export async function migrate(ch: ClickHouse): Promise<number[]> {
  const db = ident(ch.database)
  if (ch.url) {
    // the server client names this database on every request, so it must exist before its first use
    const bootstrap = createClient({ url: ch.url })
    try {
      await bootstrap.command({ query: `CREATE DATABASE IF NOT EXISTS ${db}` })
    } finally {
      await bootstrap.close()
    }
  } else {
    await ch.client.command({ query: `CREATE DATABASE IF NOT EXISTS ${db}` })
    // a chDB session keeps USE for later queries, like the server client's `database` option
    await ch.client.command({ query: `USE ${db}` })
  }
  await ch.client.command({
    query: `CREATE TABLE IF NOT EXISTS ${db}.schema_migrations (version UInt32, name String, applied_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY version`,
  })
  const rs = await ch.client.query({
    query: `SELECT version FROM ${db}.schema_migrations`,
    format: 'JSONEachRow',
  })
  const applied = new Set((await rs.json<{ version: number }>()).map((r) => Number(r.version)))
  const ran: number[] = []
  for (const m of MIGRATIONS) {
    if (applied.has(m.version)) continue
    for (const query of m.statements(ch.database)) await ch.client.command({ query })
    await ch.client.insert({
      table: `${ch.database}.schema_migrations`,
      values: [[m.version, m.name]],
      format: 'JSONCompactEachRow',
      columns: ['version', 'name'],
    })
    ran.push(m.version)
  }
  return ran
}
