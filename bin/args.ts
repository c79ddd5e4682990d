/** Parsers for flag values, each with an error that names the flag. */
import { InvalidInputError } from '../ingest/errors.ts'

/** `90`, `90s`, `1500ms`, `2m`, `1h` → milliseconds (a bare number is seconds). */
export function parseDurationMs(value: unknown, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(String(value).trim())
  if (!m) throw new InvalidInputError(`--${flag}: "${value}" is not a duration (e.g. 90s, 1500ms, 2m)`)
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h']
  const ms = Number(m[1]) * unit
  if (ms <= 0) throw new InvalidInputError(`--${flag}: must be greater than zero`)
  return ms
}

export function parsePositive(
  value: unknown,
  flag: string,
  opts: { integer?: boolean; max?: number } = {},
): number {
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0 || (opts.integer && !Number.isInteger(n)) || (opts.max && n > opts.max)) {
    const what = opts.integer ? 'a positive integer' : 'a positive number'
    throw new InvalidInputError(`--${flag}: "${value}" is not ${what}${opts.max ? ` up to ${opts.max}` : ''}`)
  }
  return n
}

export function parsePort(value: unknown, flag = 'port'): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0 || n > 65_535)
    throw new InvalidInputError(`--${flag}: "${value}" is not a port`)
  return n
}
