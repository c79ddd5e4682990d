/**
 * Named queries are `.sql` files whose header declares typed parameters:
 *
 * ```sql
 * -- name: stage-breakdown
 * -- description: what the query answers
 * -- param: from DateTime64(6) default=-1h start of the range (inclusive)
 * -- param: model String default='' only this model ('' = every model)
 * -- param: limit UInt32 default=20 min=1 max=10000 rows to return
 * ```
 *
 * The body refers to them with ClickHouse's native query parameters (`{from:DateTime64(6)}`), so a
 * value is bound by the server and never spliced into SQL text. This module parses that header,
 * checks it against the body, and turns the user's strings into values ClickHouse reads unambiguously.
 *
 * Defaults are written in the same syntax a user types (`-1h`, `now`, `60`, `''`), not as SQL
 * expressions: one grammar, validated when the file is loaded, and relative times are computed here
 * from one clock reading so `from` and `to` of a request agree with each other.
 */
import { InvalidInputError } from '../core/errors.ts'

export interface ParamSpec {
  name: string
  /** the ClickHouse type of the placeholder, e.g. `DateTime64(6)`, `UInt32`, `String` */
  type: string
  /** in user syntax; absent when the parameter is required */
  default?: string
  /** inclusive bounds for numeric types */
  min?: number
  max?: number
  description?: string
}

export interface QueryDefinition {
  name: string
  description: string
  params: ParamSpec[]
  /** the SQL after the header */
  sql: string
  /** where it was read from, for error messages */
  source: string
}

/** A parameter value as bound for ClickHouse, and as shown to people. */
export interface BoundValue {
  bound: string
  display: string
}

/** Query-string and body keys that select output rather than feed the query (see http.ts). */
export const RESERVED_PARAM_NAMES: readonly string[] = ['format']

type Kind =
  | { kind: 'string' }
  | { kind: 'int'; min: bigint; max: bigint }
  | { kind: 'float' }
  | { kind: 'bool' }
  | { kind: 'date' }
  | { kind: 'datetime' }
  | { kind: 'datetime64'; precision: number }

const INT_BITS: Record<string, number> = { 8: 8, 16: 16, 32: 32, 64: 64 }

/** The parameter types this module can validate; anything else is refused when a file is loaded. */
export function paramKind(type: string): Kind | undefined {
  const t = type.replace(/\s+/g, '')
  if (t === 'String') return { kind: 'string' }
  if (t === 'Float32' || t === 'Float64') return { kind: 'float' }
  if (t === 'Bool') return { kind: 'bool' }
  if (t === 'Date' || t === 'Date32') return { kind: 'date' }
  if (/^DateTime(\('[^']*'\))?$/.test(t)) return { kind: 'datetime' }
  const dt64 = /^DateTime64\((\d)(,'[^']*')?\)$/.exec(t)
  if (dt64) return { kind: 'datetime64', precision: Number(dt64[1]) }
  const int = /^(U?)Int(8|16|32|64)$/.exec(t)
  if (int) {
    const bits = BigInt(INT_BITS[int[2]!]!)
    return int[1]
      ? { kind: 'int', min: 0n, max: 2n ** bits - 1n }
      : { kind: 'int', min: -(2n ** (bits - 1n)), max: 2n ** (bits - 1n) - 1n }
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------------
// Header parsing

const HEADER_LINE = /^--\s*(name|description|param):\s*(.*)$/

/**
 * Parses a named query file. Errors here are programming errors in the file (thrown as plain
 * `Error`), caught by the unit test that loads every file in queries/sql/.
 */
export function parseQueryFile(text: string, source: string): QueryDefinition {
  let name: string | undefined
  const description: string[] = []
  const params: ParamSpec[] = []
  const lines = text.split(/\r?\n/)
  let bodyStart = lines.length
  for (const [index, line] of lines.entries()) {
    const trimmed = line.trim()
    if (trimmed === '') continue
    if (!trimmed.startsWith('--')) {
      bodyStart = index // the header ends at the first line of SQL
      break
    }
    const m = HEADER_LINE.exec(trimmed)
    if (!m) continue
    const [, key, value] = m as unknown as [string, string, string]
    if (key === 'name') name = value.trim()
    else if (key === 'description') description.push(value.trim())
    else params.push(parseParamLine(value, source))
  }
  if (!name || !/^[a-z][a-z0-9-]*$/.test(name)) {
    throw new Error(`${source}: header needs '-- name: <kebab-case-name>'`)
  }
  const seen = new Set<string>()
  for (const p of params) {
    if (seen.has(p.name)) throw new Error(`${source}: parameter '${p.name}' declared twice`)
    seen.add(p.name)
    if (RESERVED_PARAM_NAMES.includes(p.name)) {
      throw new Error(`${source}: parameter name '${p.name}' is reserved for output selection`)
    }
    if (p.default !== undefined) {
      try {
        parseParamValue(p, p.default, Date.now())
      } catch (err) {
        throw new Error(`${source}: bad default for '${p.name}': ${(err as Error).message}`)
      }
    }
  }
  const sql = lines.slice(bodyStart).join('\n').trim()
  if (!sql) throw new Error(`${source}: no SQL after the header`)
  checkPlaceholders(sql, params, source)
  return { name, description: description.join(' '), params, sql, source }
}

function parseParamLine(rest: string, source: string): ParamSpec {
  const nameMatch = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s+/.exec(rest)
  if (!nameMatch) throw new Error(`${source}: bad param line '${rest}'`)
  let i = nameMatch[0].length
  // the type runs to the first space outside parentheses: DateTime64(6, 'UTC') has spaces inside
  let depth = 0
  let j = i
  while (j < rest.length && (depth > 0 || !/\s/.test(rest[j]!))) {
    if (rest[j] === '(') depth++
    else if (rest[j] === ')') depth--
    j++
  }
  const spec: ParamSpec = { name: nameMatch[1]!, type: rest.slice(i, j) }
  if (!paramKind(spec.type)) {
    throw new Error(`${source}: parameter '${spec.name}' has unsupported type '${spec.type}'`)
  }
  i = j
  // options: default=<value|'quoted'> min=<n> max=<n>, then free text
  for (;;) {
    const opt = /^\s+(default|min|max)=('(?:[^'\\]|\\.|'')*'|\S*)/.exec(rest.slice(i))
    if (!opt) break
    const [whole, key, raw] = opt as unknown as [string, string, string]
    if (key === 'default') spec.default = unquote(raw)
    else {
      const n = Number(raw)
      if (!Number.isFinite(n)) throw new Error(`${source}: '${spec.name}' ${key}=${raw} is not a number`)
      spec[key as 'min' | 'max'] = n
    }
    i += whole.length
  }
  const description = rest.slice(i).trim()
  if (description) spec.description = description
  return spec
}

function unquote(raw: string): string {
  if (raw.length >= 2 && raw.startsWith("'") && raw.endsWith("'")) {
    return raw.slice(1, -1).replace(/''/g, "'").replace(/\\(.)/g, '$1')
  }
  return raw
}

/** Every `{name:Type}` in the file must be declared with that type, and every declaration used. */
function checkPlaceholders(text: string, params: ParamSpec[], source: string): void {
  const body = text
    .split(/\r?\n/)
    .filter((l) => !l.trim().startsWith('--'))
    .join('\n')
  const used = new Set<string>()
  for (const m of body.matchAll(/\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([^}]+)\}/g)) {
    const [, name, type] = m as unknown as [string, string, string]
    const spec = params.find((p) => p.name === name)
    if (!spec) throw new Error(`${source}: placeholder {${name}:${type}} is not declared in the header`)
    if (spec.type.replace(/\s+/g, '') !== type.replace(/\s+/g, '')) {
      throw new Error(`${source}: placeholder {${name}:${type}} does not match declared type ${spec.type}`)
    }
    used.add(name)
  }
  for (const p of params) {
    if (!used.has(p.name)) throw new Error(`${source}: parameter '${p.name}' is declared but never used`)
  }
}

// ---------------------------------------------------------------------------------------------------
// Values

/**
 * Resolves the user's parameters for one query: unknown names are refused (listing the known ones),
 * omitted ones take their default, and every value is validated for its type. `nowMs` is read once
 * so relative times in one request share one "now".
 */
export function resolveParams(
  def: QueryDefinition,
  supplied: Readonly<Record<string, string>>,
  nowMs: number = Date.now(),
): Record<string, BoundValue> {
  const known = def.params.map((p) => p.name)
  for (const key of Object.keys(supplied)) {
    if (!known.includes(key)) {
      throw new InvalidInputError(
        `unknown parameter '${key}' for query ${def.name}; known parameters: ${known.join(', ') || '(none)'}`,
      )
    }
  }
  const out: Record<string, BoundValue> = {}
  for (const spec of def.params) {
    const raw = Object.hasOwn(supplied, spec.name) ? supplied[spec.name] : spec.default
    if (raw === undefined) {
      throw new InvalidInputError(`query ${def.name} needs parameter '${spec.name}' (${spec.type})`)
    }
    out[spec.name] = parseParamValue(spec, raw, nowMs)
  }
  return out
}

/** Validates one value for its declared type; the message names the parameter, type and value. */
export function parseParamValue(spec: ParamSpec, raw: string, nowMs: number): BoundValue {
  const kind = paramKind(spec.type)
  const fail = (why: string): never => {
    throw new InvalidInputError(`parameter '${spec.name}' (${spec.type}): ${why}, got ${JSON.stringify(raw)}`)
  }
  if (!kind) return fail('unsupported type')
  const value = raw.trim()
  switch (kind.kind) {
    case 'string':
      // strings are bound verbatim (untrimmed); the server escapes nothing into SQL
      return { bound: raw, display: raw }
    case 'bool': {
      const v = value.toLowerCase()
      if (v === 'true' || v === '1') return { bound: 'true', display: 'true' }
      if (v === 'false' || v === '0') return { bound: 'false', display: 'false' }
      return fail('expected true or false')
    }
    case 'int': {
      if (!/^[+-]?\d+$/.test(value)) return fail('expected an integer')
      const n = BigInt(value)
      if (n < kind.min || n > kind.max) return fail(`out of range ${kind.min}..${kind.max}`)
      checkBounds(spec, Number(n), fail)
      return { bound: n.toString(), display: n.toString() }
    }
    case 'float': {
      if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(value)) return fail('expected a number')
      const n = Number(value)
      if (!Number.isFinite(n)) return fail('expected a finite number')
      checkBounds(spec, n, fail)
      return { bound: String(n), display: String(n) }
    }
    case 'date':
    case 'datetime':
    case 'datetime64': {
      const us = parseTimeMicros(value, nowMs)
      if (us === undefined) {
        return fail(
          'expected a time: ISO 8601 (2026-01-01T12:00:00Z; no zone means UTC), epoch seconds or ' +
            "milliseconds, 'now', or relative like -15m, -2h, -7d (units us, ms, s, m, h, d, w)",
        )
      }
      // DateTime stops at 2106; telemetry never predates 1970, so both share that floor
      // (DateTime64 goes to 2299, but microseconds stay exact in a double only until 2255)
      const maxUs = kind.kind === 'datetime64' ? Number.MAX_SAFE_INTEGER : 4_294_967_295e6
      if (us < 0 || us > maxUs) return fail(`out of range for ${spec.type}`)
      return bindTime(us, kind)
    }
  }
}

function checkBounds(spec: ParamSpec, n: number, fail: (why: string) => never): void {
  if (spec.min !== undefined && n < spec.min) fail(`must be at least ${spec.min}`)
  if (spec.max !== undefined && n > spec.max) fail(`must be at most ${spec.max}`)
}

/**
 * Times are bound as epoch seconds with a fraction: unambiguous whatever the server's time zone,
 * which a `YYYY-MM-DD hh:mm:ss` string is not (ClickHouse reads that in the server's zone).
 */
function bindTime(us: number, kind: Kind): BoundValue {
  const secs = Math.floor(us / 1e6)
  const frac = String(us - secs * 1e6).padStart(6, '0')
  const iso = new Date(secs * 1000).toISOString().slice(0, 19)
  if (kind.kind === 'date') return { bound: iso.slice(0, 10), display: iso.slice(0, 10) }
  if (kind.kind === 'datetime') return { bound: String(secs), display: `${iso}Z` }
  const precision = kind.kind === 'datetime64' ? kind.precision : 6
  const digits = frac.slice(0, precision)
  return {
    bound: precision === 0 ? String(secs) : `${secs}.${digits}`,
    display: `${iso}${precision === 0 ? '' : `.${digits}`}Z`,
  }
}

const UNIT_US: Record<string, number> = {
  us: 1,
  ms: 1e3,
  s: 1e6,
  m: 60e6,
  min: 60e6,
  h: 3600e6,
  d: 86_400e6,
  w: 7 * 86_400e6,
}

const ISO =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i

/**
 * Reads a time as epoch microseconds, or undefined when the text is not a time. Accepted forms:
 * `now`; relative `-15m`, `now-2h`, `+30s` (units us, ms, s, m/min, h, d, w); ISO 8601 with
 * optional fraction and zone (no zone means UTC); bare epoch numbers — below 1e11 seconds (fraction
 * allowed), below 1e14 milliseconds, below 1e17 microseconds.
 */
export function parseTimeMicros(text: string, nowMs: number): number | undefined {
  const s = text.trim()
  const nowUs = Math.round(nowMs * 1000)
  if (/^now(\(\))?$/i.test(s)) return nowUs
  const rel = /^(?:now(?:\(\))?\s*)?([+-])\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|m|h|d|w)$/i.exec(s)
  if (rel) {
    const [, sign, amount, unit] = rel as unknown as [string, string, string, string]
    const delta = Math.round(Number(amount) * UNIT_US[unit.toLowerCase()]!)
    return sign === '-' ? nowUs - delta : nowUs + delta
  }
  if (/^\d+(\.\d+)?$/.test(s)) {
    const n = Number(s)
    if (n < 1e11) return Math.round(n * 1e6)
    if (!s.includes('.') && n < 1e14) return n * 1000
    if (!s.includes('.') && n < 1e17) return n
    return undefined
  }
  const m = ISO.exec(s)
  if (!m) return undefined
  const [, y, mo, d, h = '0', mi = '0', sec = '0', frac = '', zone] = m as unknown as string[]
  const [Y, M, D, H, MI, S] = [y, mo, d, h, mi, sec].map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ]
  if (M < 1 || M > 12 || H > 23 || MI > 59 || S > 59) return undefined
  const ms = Date.UTC(Y, M - 1, D, H, MI, S)
  // Date.UTC rolls 2026-02-30 over into March; a calendar date that does not exist is an error
  if (new Date(ms).getUTCDate() !== D) return undefined
  let offsetMin = 0
  if (zone && zone.toUpperCase() !== 'Z') {
    const z = /^([+-])(\d{2}):?(\d{2})?$/.exec(zone)!
    const mins = Number(z[2]) * 60 + Number(z[3] ?? 0)
    if (Number(z[2]) > 23 || Number(z[3] ?? 0) > 59) return undefined
    offsetMin = z[1] === '-' ? -mins : mins
  }
  const fracUs = Number((frac ?? '').padEnd(6, '0').slice(0, 6) || '0')
  return (ms - offsetMin * 60_000) * 1000 + fracUs
}
