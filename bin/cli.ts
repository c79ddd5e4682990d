/**
 * `breakid` command line: parses arguments and hands over to one command module each. Errors that
 * are the user's (bad flags, bad SQL) print one clear line and exit 2; anything else exits 1.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import type { Command } from './command.ts'
import { BreakidError, InvalidInputError } from '../core/errors.ts'
import { CONFIG_FLAGS, ENV_NAMES } from '../app/config.ts'

/** every command, loaded on demand (deploy/ manifests are checked against these names) */
export const COMMANDS: Record<string, () => Promise<Command>> = {
  up: async () => (await import('./commands/up.ts')).up,
  serve: async () => (await import('./commands/serve.ts')).serve,
  collect: async () => (await import('./commands/collect.ts')).collect,
  ingest: async () => (await import('./commands/components.ts')).ingest,
  detect: async () => (await import('./commands/components.ts')).detect,
  notify: async () => (await import('./commands/components.ts')).notify,
  query: async () => (await import('./commands/query.ts')).query,
  queries: async () => (await import('./commands/query.ts')).queries,
  sql: async () => (await import('./commands/query.ts')).sql,
  dashboard: async () => (await import('./commands/dashboard.ts')).dashboard,
  report: async () => (await import('./commands/report.ts')).report,
  loadgen: async () => (await import('./commands/loadgen.ts')).loadgen,
  migrate: async () => (await import('./commands/components.ts')).migrateCommand,
  replay: async () => (await import('./commands/replay.ts')).replay,
  eval: async () => (await import('./commands/eval.ts')).evalCommand,
  compare: async () => (await import('./commands/compare.ts')).compare,
  experiment: async () => (await import('./commands/experiment.ts')).experiment,
  detectors: async () => (await import('./commands/detectors.ts')).detectorsCommand,
}

const sharedOptions = Object.fromEntries(
  Object.keys(CONFIG_FLAGS).map((flag) => [flag, { type: 'string' as const }]),
) as NonNullable<ParseArgsConfig['options']>

function commandHelp(name: string, cmd: Command): string {
  const lines = [`breakid ${name} — ${cmd.summary}`, '', `usage: ${cmd.usage}`, '', 'options:']
  const flags = { ...cmd.help, help: 'show this help' }
  const shared = Object.fromEntries(Object.entries(CONFIG_FLAGS).map(([f, v]) => [f, v.help]))
  const width = Math.max(...Object.keys({ ...flags, ...shared }).map((f) => f.length)) + 4
  for (const [f, h] of Object.entries(flags)) lines.push(`  --${f.padEnd(width)}${h}`)
  lines.push('', 'configuration (flags > environment > --config file > defaults):')
  for (const [f, h] of Object.entries(shared)) lines.push(`  --${f.padEnd(width)}${h}`)
  lines.push('', 'environment:', `  ${ENV_NAMES.join(', ')}`)
  return lines.join('\n')
}

async function overview(): Promise<string> {
  const lines = [
    'breakid — finds the performance breaks of ML inference fleets while they happen',
    '',
    'usage: breakid <command> [options]      breakid <command> --help',
    '',
    'commands:',
  ]
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length)) + 2
  for (const [name, load] of Object.entries(COMMANDS))
    lines.push(`  ${name.padEnd(width)}${(await load()).summary}`)
  lines.push(
    '',
    'With no KAFKA_BROKERS and no CLICKHOUSE_URL everything runs embedded (in-process bus + chDB).',
  )
  return lines.join('\n')
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    console.log(await overview())
    return 0
  }
  const load = COMMANDS[name]
  if (!load) {
    console.error(`breakid: unknown command "${name}". Commands: ${Object.keys(COMMANDS).join(', ')}`)
    return 2
  }
  const cmd = await load()
  let parsed: { values: Record<string, unknown>; positionals: string[] }
  try {
    parsed = parseArgs({
      args: rest,
      options: { ...sharedOptions, ...cmd.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: cmd.allowPositionals ?? false,
      strict: true,
    }) as typeof parsed
  } catch (err) {
    console.error(`breakid ${name}: ${(err as Error).message}\nsee: breakid ${name} --help`)
    return 2
  }
  if (parsed.values.help) {
    console.log(commandHelp(name, cmd))
    return 0
  }
  try {
    return await cmd.run(parsed)
  } catch (err) {
    if (err instanceof InvalidInputError) {
      console.error(`breakid ${name}: ${err.message}`)
      return 2
    }
    const code = err instanceof BreakidError ? ` [${err.code}]` : ''
    console.error(`breakid ${name}: ${(err as Error).message}${code}`)
    if (process.env.BREAKID_LOG_LEVEL === 'debug') console.error(err)
    return 1
  }
}
