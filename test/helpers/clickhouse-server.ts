/**
 * A ClickHouse server for tests that need one shared by several processes (a consumer group of
 * ingesters) or one that misbehaves (hangs): ClickHouse's HTTP interface — the part
 * @clickhouse/client speaks — in front of chDB, the real ClickHouse engine, in its own process.
 * Statements run in chDB as they would on a server; inserts with a body (`INSERT … FORMAT f` with the
 * data in the request body) go through a file in memory, as store/chdb-connection.ts does.
 *
 * Run: node --import tsx test/helpers/clickhouse-server.ts <dataDir> [port]   (prints "listening <port>")
 *
 * `POST /control` with a JSON body changes its behaviour for the next requests, for fault tests:
 *   { "hangInserts": "before" }   inserts wait without running (a hung server)
 *   { "hangInserts": "after" }    inserts run, then their answer never comes (a lost acknowledgement)
 *   { "hangInserts": "none" }     back to normal; held inserts that waited "before" run now
 * `GET /control` answers the counters: inserts run, inserts held.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

interface ChdbResult {
  bytes(): Uint8Array
  rowsRead: number
  bytesRead: number
}
interface Session {
  queryAsync(sql: string, opts?: { format?: string }): Promise<ChdbResult>
  queryBindAsync(sql: string, params: object, opts?: { format?: string }): Promise<ChdbResult>
  close(): void
}

/** URL parameters that are not settings */
const RESERVED = new Set([
  'query',
  'database',
  'query_id',
  'session_id',
  'default_format',
  'user',
  'password',
  'role',
  'compress',
  'decompress',
])
/** settings of the HTTP layer that chDB does not know */
const HTTP_ONLY = new Set([
  'enable_http_compression',
  'wait_end_of_query',
  'send_progress_in_http_headers',
  'http_headers_progress_interval_ms',
  'http_zlib_compression_level',
])
const INSERT_WITH_BODY = /^\s*INSERT\s+INTO\s+(.+?)\s+FORMAT\s+(\w+)\s*$/is

const literal = (v: string) =>
  /^-?\d+(\.\d+)?$/.test(v) ? v : `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`

export function startClickHouseServer(dataDir: string, port = 0) {
  const require = createRequire(import.meta.url)
  const chdb = require('chdb') as { Session: new (path: string) => Session }
  const spool = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'breakid-ch-server-'))
  const state = { hangInserts: 'none' as 'none' | 'before' | 'after', inserts: 0, held: 0 }
  let released: (() => void)[] = []
  let seq = 0

  async function body(req: IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    return Buffer.concat(chunks)
  }

  function fail(res: ServerResponse, err: unknown): void {
    const message = (err as Error).message ?? String(err)
    const code = /Code: (\d+)/.exec(message)?.[1] ?? '1000'
    res.writeHead(500, { 'X-ClickHouse-Exception-Code': code, 'Content-Type': 'text/plain' })
    res.end(message.startsWith('Code:') ? message : `Code: ${code}. DB::Exception: ${message}`)
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost')
    if (url.pathname === '/ping') {
      res.end('Ok.\n')
      return
    }
    const payload = await body(req)
    if (url.pathname === '/control') {
      if (req.method === 'POST') {
        const next = JSON.parse(payload.toString() || '{}') as { hangInserts?: typeof state.hangInserts }
        if (next.hangInserts) state.hangInserts = next.hangInserts
        if (state.hangInserts !== 'before') for (const go of released.splice(0)) go()
      }
      res.setHeader('Content-Type', 'application/json')
      res.end(JSON.stringify({ inserts: state.inserts, held: state.held, hangInserts: state.hangInserts }))
      return
    }
    if (process.env.BREAKID_CH_SERVER_LOG) {
      const t0 = Date.now()
      const what = `${(url.searchParams.get('query') ?? payload.toString()).slice(0, 120).replace(/\s+/g, ' ')}`
      process.stderr.write(`ch-server: start ${what}\n`)
      res.once('finish', () =>
        process.stderr.write(`ch-server: done ${Date.now() - t0} ms ${res.statusCode} ${what}\n`),
      )
    }
    let query = url.searchParams.get('query')
    let data: Buffer | undefined
    if (query === null) query = payload.toString()
    else if (payload.length > 0) data = payload
    const settings: [string, string][] = []
    const params: Record<string, string> = {}
    for (const [k, v] of url.searchParams) {
      if (k.startsWith('param_')) params[k.slice(6)] = v
      else if (!RESERVED.has(k) && !HTTP_ONLY.has(k) && /^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
        settings.push([k, v])
    }
    // a session per request: settings (readonly above all) stay with the request that set them
    const session = new chdb.Session(dataDir)
    try {
      const database = url.searchParams.get('database')
      if (database) await session.queryAsync(`USE \`${database.replace(/`/g, '')}\``)
      const insert = data ? INSERT_WITH_BODY.exec(query) : null
      let result: ChdbResult
      if (insert && data) {
        if (state.hangInserts === 'before') {
          state.held++
          await new Promise<void>((go) => released.push(go))
          state.held--
        }
        const [, target, format] = insert
        const path = join(spool, `${++seq}.${format}`)
        writeFileSync(path, data)
        const clause =
          settings.length > 0
            ? ` SETTINGS ${settings.map(([k, v]) => `${k} = ${literal(v)}`).join(', ')}`
            : ''
        try {
          result = await session.queryAsync(
            `INSERT INTO ${target}${clause} SELECT * FROM file('${path}', '${format}')`,
          )
        } finally {
          rmSync(path, { force: true })
        }
        state.inserts++
        if (state.hangInserts === 'after') return // stored; the answer never comes
      } else {
        for (const [k, v] of settings) await session.queryAsync(`SET ${k} = ${literal(v)}`)
        const format = url.searchParams.get('default_format') ?? 'TabSeparated'
        result =
          Object.keys(params).length > 0
            ? await session.queryBindAsync(query, params, { format })
            : await session.queryAsync(query, { format })
      }
      res.writeHead(200, {
        'X-ClickHouse-Summary': JSON.stringify({
          read_rows: String(result.rowsRead),
          read_bytes: String(result.bytesRead),
        }),
        'X-ClickHouse-Query-Id': url.searchParams.get('query_id') ?? '',
      })
      res.end(Buffer.from(result.bytes()))
    } catch (err) {
      fail(res, err)
    } finally {
      session.close()
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err) => fail(res, err))
  })
  return {
    server,
    listen: () =>
      new Promise<number>((resolve) => {
        server.listen(port, '127.0.0.1', () => resolve((server.address() as { port: number }).port))
      }),
    close: () => {
      for (const go of released.splice(0)) go()
      released = []
      server.closeAllConnections()
      server.close()
      rmSync(spool, { recursive: true, force: true })
    },
  }
}

if (import.meta.filename === process.argv[1]) {
  const [dataDir, port] = process.argv.slice(2)
  if (!dataDir) throw new Error('usage: clickhouse-server.ts <dataDir> [port]')
  const s = startClickHouseServer(dataDir, Number(port ?? 0))
  const bound = await s.listen()
  process.stdout.write(`listening ${bound}\n`)
  const stop = () => {
    s.close()
    process.exit(0)
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}

/** The server in a child process (chDB binds one data directory per process): its URL, control and stop. */
export async function spawnClickHouseServer(
  dataDir: string,
  port = 0,
): Promise<{
  url: string
  control(body?: object): Promise<{ inserts: number; held: number }>
  stop(): Promise<void>
}> {
  const { spawn } = await import('node:child_process')
  const child = spawn(process.execPath, ['--import', 'tsx', import.meta.filename, dataDir, String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const bound = await new Promise<number>((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (d) => {
      out += d
      const m = /listening (\d+)/.exec(out)
      if (m) resolve(Number(m[1]))
    })
    child.once('exit', (code) =>
      reject(new Error(`ClickHouse test server exited (${code}) before listening`)),
    )
  })
  const url = `http://127.0.0.1:${bound}`
  return {
    url,
    control: async (b) => {
      const res = await fetch(`${url}/control`, {
        method: b ? 'POST' : 'GET',
        body: b ? JSON.stringify(b) : undefined,
      })
      return (await res.json()) as { inserts: number; held: number }
    },
    stop: async () => {
      if (child.exitCode !== null) return
      const exited = new Promise((r) => child.once('exit', r))
      child.kill('SIGTERM')
      await exited
    },
  }
}
