/**
 * Checks on ad-hoc SQL before it runs. `readonly = 1` is the guard (readonly.ts); these checks give
 * a clear answer before sending and close the one gap it leaves: chDB runs `SELECT … INTO OUTFILE`
 * (it writes a file) even in read-only mode, and runs several `;`-separated statements in one call.
 *
 * The decisive checks read ClickHouse's own rendering of the statement (`formatQuery`, with the SQL
 * bound as a parameter so nothing executes): the server's parser refuses more than one statement,
 * and its output has no comments, upper-case keywords and each top-level clause on its own line,
 * so a clause is found by the first word of a line rather than by a second SQL parser here.
 */
import { InvalidInputError } from '../core/errors.ts'

/** Statement kinds that only read. */
export const READ_STATEMENTS: readonly string[] = [
  'SELECT',
  'WITH',
  'SHOW',
  'DESCRIBE',
  'DESC',
  'EXPLAIN',
  'EXISTS',
]

/**
 * Statement kinds refused before sending. Other unknown first words go to the server's parser, so
 * a typo (`SELEC`) gets its syntax error; what it parses is then held to READ_STATEMENTS.
 */
const WRITE_STATEMENTS: readonly string[] = [
  'INSERT',
  'CREATE',
  'DROP',
  'ALTER',
  'TRUNCATE',
  'DELETE',
  'UPDATE',
  'RENAME',
  'EXCHANGE',
  'OPTIMIZE',
  'SYSTEM',
  'KILL',
  'GRANT',
  'REVOKE',
  'ATTACH',
  'DETACH',
  'UNDROP',
  'SET',
  'USE',
  'BACKUP',
  'RESTORE',
  'REPLACE',
  'MOVE',
  'CHECK',
  'BEGIN',
  'COMMIT',
  'ROLLBACK',
]

/**
 * The SQL with comments blanked and the contents of string literals and quoted identifiers removed,
 * so keywords can be looked for without matching inside them. A friendly first pass only.
 */
export function stripLiterals(sql: string): string {
  let out = ''
  let i = 0
  const n = sql.length
  while (i < n) {
    const c = sql[i]!
    const next = sql[i + 1]
    if ((c === '-' && next === '-') || c === '#') {
      while (i < n && sql[i] !== '\n') i++
      out += ' '
    } else if (c === '/' && next === '*') {
      // ClickHouse comments nest
      let depth = 0
      do {
        if (sql[i] === '/' && sql[i + 1] === '*') {
          depth++
          i += 2
        } else if (sql[i] === '*' && sql[i + 1] === '/') {
          depth--
          i += 2
        } else i++
      } while (i < n && depth > 0)
      out += ' '
    } else if (c === "'" || c === '"' || c === '`') {
      i++
      while (i < n) {
        if (sql[i] === '\\') i += 2
        else if (sql[i] === c && sql[i + 1] === c) i += 2
        else if (sql[i] === c) break
        else i++
      }
      i++
      out += c + c
    } else if (c === '$') {
      const tag = /^\$[A-Za-z0-9_]*\$/.exec(sql.slice(i))
      const end = tag ? sql.indexOf(tag[0], i + tag[0].length) : -1
      if (tag && end >= 0) {
        i = end + tag[0].length
        out += "''"
      } else {
        out += c
        i++
      }
    } else {
      out += c
      i++
    }
  }
  return out
}

/** The statement's leading keyword, upper-cased ('' when there is none). */
export function leadingKeyword(sql: string): string {
  return /^[\s(]*([A-Za-z]+)/.exec(stripLiterals(sql))?.[1]?.toUpperCase() ?? ''
}

/** Refuses plain writes and INTO OUTFILE before anything is sent. */
export function precheckSql(sql: string): void {
  const stripped = stripLiterals(sql).trim()
  if (stripped === '' || /^;*$/.test(stripped)) throw new InvalidInputError('no SQL statement given')
  const keyword = leadingKeyword(sql)
  if (WRITE_STATEMENTS.includes(keyword)) {
    throw new InvalidInputError(
      `read-only: ${keyword} statements are not allowed here; run one of ${READ_STATEMENTS.join(', ')}`,
    )
  }
  if (/\bINTO\s+OUTFILE\b/i.test(stripped)) {
    throw new InvalidInputError('read-only: INTO OUTFILE writes a file and is not allowed here')
  }
}

/** Checks ClickHouse's rendering of the statement (the output of `formatQuery`). */
export function checkFormatted(formatted: string): void {
  const keyword = /^[A-Z]+/.exec(formatted)?.[0] ?? ''
  if (!READ_STATEMENTS.includes(keyword)) {
    throw new InvalidInputError(
      `read-only: ${keyword || 'this'} statements are not allowed here; run one of ${READ_STATEMENTS.join(', ')}`,
    )
  }
  // top-level clauses start a line; literals never hold a raw newline in formatQuery's output
  if (/^INTO OUTFILE\b/m.test(formatted)) {
    throw new InvalidInputError('read-only: INTO OUTFILE writes a file and is not allowed here')
  }
  if (/^FORMAT\s/m.test(formatted)) {
    throw new InvalidInputError(
      'remove the FORMAT clause: results come back as columns and rows; choose table, csv, json or ' +
        'ndjson output with the format option instead',
    )
  }
}

/** A syntax error's message from `formatQuery`, without the wrapper query it names. */
export function cleanParseMessage(message: string): string {
  return message.replace(/:?\s*In scope SELECT formatQuery\([\s\S]*$/, '').trim()
}
