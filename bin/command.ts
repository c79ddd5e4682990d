/** What every `breakid` subcommand module exports: its flags, help and entry point. */
import type { ParseArgsConfig } from 'node:util'

export interface Command {
  summary: string
  usage: string
  /** command-specific flags (the shared configuration flags are added to every command) */
  options: NonNullable<ParseArgsConfig['options']>
  /** one line per flag for --help */
  help: Record<string, string>
  allowPositionals?: boolean
  run(args: { values: Record<string, unknown>; positionals: string[] }): Promise<number>
}
