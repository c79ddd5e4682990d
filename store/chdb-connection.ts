/**
 * chDB behind @clickhouse/client, with binary insert bodies.
 *
 * `chdb/connection` turns an insert body into a UTF-8 string and appends it to the SQL, which
 * corrupts binary formats (Native, RowBinary, Parquet), and chdb's raw-bytes insert splits its
 * payload at newline bytes (measured with chdb 3.4.0: a 20 000-row Native block stopped at row 2 570
 * with CANNOT_READ_ALL_DATA). What works, and is public ClickHouse: write the body to a file in
 * memory (tmpfs where the host has one) and `INSERT INTO t … SELECT * FROM file(path, Format)`.
 * So `client.exec({ query: 'INSERT INTO t (…) FORMAT Native', values })` — what the writer sends to a
 * server as the HTTP body — arrives in chDB intact, and the writer has one code path for both.
 *
 * Settings of such an insert go into its own SETTINGS clause. chdb/connection applies
 * `clickhouse_settings` as `SET` on the session, where they would outlive the query: a deduplication
 * token left behind would make every later insert a "duplicate".
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { ChdbConnection } from 'chdb/connection'

/** `INSERT INTO <table> [(<columns>)] FORMAT <format>` as the writer sends it */
const INSERT_WITH_BODY = /^INSERT INTO ([A-Za-z0-9_.`]+(?: \([A-Za-z0-9_, `]*\))?) FORMAT ([A-Za-z]+)$/
const SETTING_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

type ExecParams = Parameters<ChdbConnection['exec']>[0]
type ExecResult = Awaited<ReturnType<ChdbConnection['exec']>>

async function collect(values: unknown): Promise<Buffer> {
  if (Buffer.isBuffer(values)) return values
  if (typeof values === 'string') return Buffer.from(values)
  const chunks: Buffer[] = []
  for await (const chunk of values as Readable) {
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk as Uint8Array))
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)
}

function settingLiteral(v: unknown): string {
  if (typeof v === 'number' && Number.isFinite(v)) return String(v)
  if (typeof v === 'boolean') return v ? '1' : '0'
  return `'${String(v).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`
}

export class BinaryInsertChdbConnection extends ChdbConnection {
  private spool: string | undefined
  private seq = 0

  /** where insert bodies are written for the moment of their insert: memory where possible */
  private spoolDir(): string {
    if (!this.spool) {
      const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'breakid-insert-'))
      this.spool = dir
      // the embedded session lives as long as the process, which rarely closes it: go with the process
      process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
    }
    return this.spool
  }

  override async exec(params: ExecParams): Promise<ExecResult> {
    const m = params.values === undefined ? null : INSERT_WITH_BODY.exec(params.query.trim())
    if (!m) return super.exec(params)
    const [, target, format] = m
    const settings = Object.entries(params.clickhouse_settings ?? {})
      .filter(([k, v]) => v !== undefined && SETTING_NAME.test(k))
      .map(([k, v]) => `${k} = ${settingLiteral(v)}`)
    const path = join(this.spoolDir(), `${process.pid}-${++this.seq}.${format!.toLowerCase()}`)
    writeFileSync(path, await collect(params.values))
    try {
      return await super.exec({
        ...params,
        values: undefined,
        clickhouse_settings: undefined,
        query:
          `INSERT INTO ${target}${settings.length > 0 ? ` SETTINGS ${settings.join(', ')}` : ''} ` +
          `SELECT * FROM file('${path}', '${format}')`,
      })
    } finally {
      rmSync(path, { force: true })
    }
  }

  override async close(): Promise<void> {
    await super.close()
    if (this.spool) rmSync(this.spool, { recursive: true, force: true })
  }
}
