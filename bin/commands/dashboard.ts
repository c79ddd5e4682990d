/**
 * `breakid dashboard`: the web dashboard over the stored telemetry, without running anything else —
 * chDB in the data directory, or a ClickHouse server (CLICKHOUSE_URL) through the same client. While
 * it runs it holds chDB's data directory, so `breakid query`/`sql`/`report` ask it (up.json), as
 * they ask a running `up`.
 */
import { rmSync, writeFileSync } from 'node:fs'
import Fastify from 'fastify'
import { InvalidInputError } from '../../core/errors.ts'
import { createLogger } from '../../core/logger.ts'
import { openClickHouse } from '../../store/client.ts'
import { dashboardLink, dashboardPlugin } from '../../dashboard/plugin.ts'
import { DashboardSessions } from '../../dashboard/session.ts'
import { parsePort } from '../../app/flags.ts'
import { loadConfig } from '../../app/config.ts'
import { openStore, runUntilSignal, upStatePath } from '../../app/runtime.ts'
import { costFigure, queryLimits, resolveApiToken } from '../../app/access.ts'
import type { Command } from '../command.ts'
import { runningUp } from './query.ts'

export const dashboard: Command = {
  summary: 'serve the web dashboard over the stored telemetry (chDB, or a ClickHouse server)',
  usage: 'breakid dashboard [--port 8080] [--host 127.0.0.1]',
  options: {
    port: { type: 'string', default: '8080' },
    host: { type: 'string', default: '127.0.0.1' },
  },
  help: {
    port: 'HTTP port (default 8080; 0: any free port)',
    host: 'listen address (default 127.0.0.1)',
  },
  async run({ values }) {
    const cfg = loadConfig(values)
    const logger = createLogger(cfg.logLevel)
    const busy = runningUp(cfg)
    if (busy) {
      throw new InvalidInputError(
        `a breakid process at ${busy} holds ${cfg.dataDir} and serves the dashboard itself (its "dashboard:" line has the link); stop it first to serve the stored data alone`,
      )
    }
    // a server is read as it is (its reader user may not create tables); chDB gets its tables first
    const ch = cfg.clickhouseUrl
      ? openClickHouse({ url: cfg.clickhouseUrl, dataDir: cfg.dataDir, database: cfg.database })
      : await openStore(cfg)
    const token = resolveApiToken(cfg)
    const sessions = new DashboardSessions()
    const app = Fastify({ logger: false })
    await app.register(dashboardPlugin, {
      ch,
      limits: queryLimits(cfg),
      apiToken: token.token,
      tokenHint: token.hint,
      sessions,
      cost: costFigure(cfg),
      source: ch.embedded ? `chDB ${cfg.dataDir}` : `ClickHouse ${new URL(cfg.clickhouseUrl!).host}`,
    })
    const address = await app.listen({ host: String(values.host), port: parsePort(values.port) })
    const statePath = upStatePath(cfg.dataDir)
    if (ch.embedded) writeFileSync(statePath, JSON.stringify({ pid: process.pid, url: address }))
    const local = address.replace('//0.0.0.0:', '//127.0.0.1:').replace('//[::]:', '//127.0.0.1:')
    process.stdout.write(`dashboard: ${dashboardLink(local, sessions, true)}\n`)
    process.stdout.write(
      `breakid dashboard: the link works once, for ${Math.round(sessions.loginLinkTtlMs / 60_000)} minutes; afterwards sign in with the API token (${token.path ?? 'the configured --api-token'})\n`,
    )
    await runUntilSignal(logger, [
      async () => {
        await ch.close()
        if (ch.embedded) rmSync(statePath, { force: true })
        if (token.path) rmSync(token.path, { force: true })
      },
      () => app.close(),
    ])
    return 0
  },
}
