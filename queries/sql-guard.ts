/**
 * The allow-list of what ad-hoc SQL may touch, checked on ClickHouse's own parse of the statement.
 *
 * `readonly = 1` stops writes but not reads of the host: `SELECT file('/etc/passwd')`, `url()`,
 * `remote()`, `s3()`, dictionaries and `executable()` all read under it. So before a statement runs,
 * the runner asks the server for its syntax tree (`EXPLAIN AST`, which parses and executes nothing)
 * and its tokens (`tokenizeQuery`), and this module walks that tree: every function, table function,
 * table name, statement kind and clause must be on an allow-list, and the first one that is not is
 * refused by name. Allowing (not denying) is the point: a function that a later ClickHouse adds is
 * refused until someone adds it to `allowed-functions.txt`.
 *
 * Allowed: the tables in store/tables.ts (in the session's database), CTEs the statement defines,
 * the pure functions in allowed-functions.txt (with aggregate combinators such as `-If`), the table
 * functions that only generate rows (`numbers`, `generate_series`, `values`, `view`), and the statements
 * SELECT/WITH, DESCRIBE, EXISTS, SHOW TABLES, SHOW CREATE TABLE and EXPLAIN of a SELECT. Refused:
 * everything else, including SETTINGS (limits are breakid's), FORMAT, INTO OUTFILE and `* APPLY`
 * (whose function the tree does not show).
 */
import { readFileSync } from 'node:fs'
import { TABLES } from '../store/tables.ts'
import { RefusedSqlError } from './errors.ts'

export interface GuardPolicy {
  /** the session's database: the only one a qualified table name may name */
  database: string
  /** tables ad-hoc SQL may read, unqualified names */
  tables: ReadonlySet<string>
}

/** The policy for a database: the project's tables, read from store/tables.ts. */
export function guardPolicy(database: string): GuardPolicy {
  return { database, tables: new Set(TABLES.map((t) => t.name)) }
}

/** Table functions that only generate rows (or wrap a subquery that is itself checked). */
const TABLE_FUNCTIONS = new Set([
  'numbers',
  'numbers_mt',
  'generate_series',
  'generateseries',
  'values',
  'view',
])

/** Functions the parser writes for syntax (`x -> y`, `EXISTS (…)`, `CASE x WHEN`, …), not in system.functions. */
const SYNTAX_FUNCTIONS = new Set(['lambda', 'untuple', 'exists', 'grouping', 'caseWithExpression'])

/** `x IN <name>` reads the table `<name>`: these functions take a table as their second argument. */
const IN_FUNCTIONS = new Set(['in', 'notIn', 'nullIn', 'notNullIn'])

/** Aggregate function combinators (system.aggregate_function_combinators), all pure. */
const COMBINATORS = [
  'SimpleState',
  'MergeState',
  'OrDefault',
  'Distinct',
  'Resample',
  'ForEach',
  'OrNull',
  'ArgMin',
  'ArgMax',
  'State',
  'Merge',
  'Array',
  'Tuple',
  'Map',
  'If',
]

/** EXPLAIN kinds that only describe a SELECT (the node id reads `Explain EXPLAIN <KIND>`). */
const EXPLAIN_KINDS = new Set([
  'EXPLAIN',
  'EXPLAIN AST',
  'EXPLAIN SYNTAX',
  'EXPLAIN QUERY TREE',
  'EXPLAIN PIPELINE',
  'EXPLAIN ESTIMATE',
])

/** Node types that only give a statement its shape; a type not named here or below is refused. */
const STRUCTURAL = new Set([
  'SelectWithUnionQuery',
  'SelectQuery',
  'SelectIntersectExceptQuery',
  'ExpressionList',
  'TablesInSelectQuery',
  'TablesInSelectQueryElement',
  'TableExpression',
  'TableJoin',
  'ArrayJoin',
  'Subquery',
  'WithElement',
  'OrderByElement',
  'WindowDefinition',
  'WindowListElement',
  'InterpolateElement',
  'Asterisk',
  'QualifiedAsterisk',
  'ColumnsRegexpMatcher',
  'ColumnsListMatcher',
  'QualifiedColumnsRegexpMatcher',
  'QualifiedColumnsListMatcher',
  'ColumnsTransformerList',
  'ColumnsExceptTransformer',
  'ColumnsReplaceTransformer',
  'ColumnsReplaceTransformer::Replacement',
  'SampleRatio',
  'Literal',
  'Identifier',
])

const PLAIN_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/
const TABLE_NAME = /^([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?$/

/** The pure functions ad-hoc SQL may call, as pinned in allowed-functions.txt. */
export class FunctionAllowList {
  private readonly exact = new Set<string>()
  private readonly caseless = new Set<string>()
  private readonly aggregates = new Set<string>()
  private readonly caselessAggregates = new Set<string>()

  /** `[Section]` lines, then names; `~` after a name: ClickHouse matches it in any case. */
  constructor(text: string) {
    let section = ''
    for (const raw of text.split('\n')) {
      const line = raw.trim()
      if (line === '' || line.startsWith('#')) continue
      const header = /^\[(.+)\]$/.exec(line)
      if (header) {
        section = header[1]!
        continue
      }
      for (const entry of line.split(/\s+/)) {
        const anyCase = entry.endsWith('~')
        const name = anyCase ? entry.slice(0, -1) : entry
        this.exact.add(name)
        if (anyCase) this.caseless.add(name.toLowerCase())
        if (section === 'Aggregate Functions') {
          this.aggregates.add(name)
          if (anyCase) this.caselessAggregates.add(name.toLowerCase())
        }
      }
    }
  }

  get size(): number {
    return this.exact.size
  }

  /** Every name on the list, as written there. */
  names(): string[] {
    return [...this.exact]
  }

  allows(name: string): boolean {
    if (this.exact.has(name) || this.caseless.has(name.toLowerCase()) || SYNTAX_FUNCTIONS.has(name)) {
      return true
    }
    return this.isCombinedAggregate(name, 0)
  }

  private isAggregate(name: string): boolean {
    return this.aggregates.has(name) || this.caselessAggregates.has(name.toLowerCase())
  }

  /** `quantilesExactIf`, `sumArrayIf`, `uniqMergeState`: an allowed aggregate plus combinators. */
  private isCombinedAggregate(name: string, depth: number): boolean {
    if (depth >= 4) return false
    for (const suffix of COMBINATORS) {
      if (name.length <= suffix.length || !name.endsWith(suffix)) continue
      const base = name.slice(0, -suffix.length)
      if (this.isAggregate(base) || this.isCombinedAggregate(base, depth + 1)) return true
    }
    return false
  }
}

const ALLOWED_FUNCTIONS_FILE = new URL('./allowed-functions.txt', import.meta.url)
let functions: FunctionAllowList | undefined

export function allowedFunctions(): FunctionAllowList {
  functions ??= new FunctionAllowList(readFileSync(ALLOWED_FUNCTIONS_FILE, 'utf8'))
  return functions
}

/** One node of `EXPLAIN AST` output: `Function file (alias f) (children 1)` → type, detail, children. */
export interface AstNode {
  type: string
  /** what follows the type on its line, without the children count */
  detail: string
  children: AstNode[]
}

/**
 * Reads `EXPLAIN AST` rows (one node per row, indented one space per level) into a tree, checking
 * that every node has exactly the children its row announces: a name that imitates the layout
 * (a quoted identifier with ` (children 3)` in it) cannot add or hide a node.
 */
export function parseExplainAst(rows: readonly string[]): AstNode {
  const unreadable = (why: string) =>
    new RefusedSqlError('statement', `SQL refused: could not read the statement's syntax tree (${why})`)
  const stack: { node: AstNode; depth: number; claimed: number }[] = []
  let root: AstNode | undefined
  const close = (entry: { node: AstNode; claimed: number }) => {
    if (entry.node.children.length !== entry.claimed) throw unreadable(`${entry.node.type} children`)
  }
  for (const row of rows) {
    if (row.includes('\n') || row.includes('\r')) throw unreadable('a node spans lines')
    const depth = row.length - row.trimStart().length
    let content = row.slice(depth)
    let claimed = 0
    const count = / \(children (\d+)\)$/.exec(content)
    if (count) {
      claimed = Number(count[1])
      content = content.slice(0, count.index)
    }
    const space = content.indexOf(' ')
    const node: AstNode = {
      type: space < 0 ? content : content.slice(0, space),
      detail: space < 0 ? '' : content.slice(space + 1),
      children: [],
    }
    while (stack.length > 0 && stack[stack.length - 1]!.depth >= depth) close(stack.pop()!)
    const parent = stack[stack.length - 1]
    if (parent) {
      if (depth !== parent.depth + 1) throw unreadable('indentation')
      parent.node.children.push(node)
    } else {
      if (root || depth !== 0) throw unreadable('more than one root')
      root = node
    }
    stack.push({ node, depth, claimed })
  }
  while (stack.length > 0) close(stack.pop()!)
  if (!root) throw unreadable('empty')
  return root
}

/** `name` or `name (alias a)` → name; undefined when the name is not a plain identifier. */
function plainName(detail: string, pattern: RegExp): string | undefined {
  const m = /^(\S+)(?: \(alias [\s\S]*\))?$/.exec(detail)
  return m && pattern.test(m[1]!) ? m[1] : undefined
}

/** One token of `tokenizeQuery`: byte offsets into the statement and the lexer's token type. */
export type Token = [begin: number, end: number, type: string]

/**
 * The names of the CTEs a statement defines (`WITH name AS (SELECT …)`), read from ClickHouse's
 * lexer tokens so that quoting and comments cannot mislead: an element of a WITH clause at the same
 * bracket depth that is `<identifier> AS (`. Over-approximating is safe here: a CTE name only lets a
 * FROM name through that ClickHouse then resolves as that CTE (before any table).
 */
export function cteNames(statement: string, tokens: readonly Token[]): Set<string> {
  const bytes = Buffer.from(statement, 'utf8')
  const words = tokens
    .filter(([, , type]) => type !== 'Whitespace' && type !== 'Comment')
    .map(([begin, end, type]) => ({ type, text: bytes.subarray(begin, end).toString('utf8') }))
  const names = new Set<string>()
  const withDepths: number[] = []
  let depth = 0
  let elementStart = false
  for (let i = 0; i < words.length; i++) {
    const { type, text } = words[i]!
    const upper = text.toUpperCase()
    const inWith = withDepths[withDepths.length - 1] === depth
    if (elementStart && inWith) {
      const as = words[i + 1]
      const open = words[i + 2]
      if (
        (type === 'BareWord' || type === 'QuotedIdentifier') &&
        as?.type === 'BareWord' &&
        as.text.toUpperCase() === 'AS' &&
        open?.type === 'OpeningRoundBracket'
      ) {
        names.add(type === 'QuotedIdentifier' ? unquote(text) : text)
      }
    }
    elementStart = false
    if (type === 'OpeningRoundBracket' || type === 'OpeningSquareBracket') depth++
    else if (type === 'ClosingRoundBracket' || type === 'ClosingSquareBracket') {
      while (withDepths[withDepths.length - 1] === depth) withDepths.pop()
      depth--
    } else if (type === 'BareWord' && upper === 'WITH') {
      withDepths.push(depth)
      elementStart = true
    } else if (type === 'BareWord' && upper === 'RECURSIVE' && inWith) elementStart = true
    else if (type === 'Comma' && inWith) elementStart = true
    else if (type === 'BareWord' && upper === 'SELECT' && inWith) withDepths.pop()
  }
  return names
}

function unquote(quoted: string): string {
  const q = quoted[0]!
  return quoted
    .slice(1, -1)
    .replace(/\\(.)/g, '$1')
    .replaceAll(q + q, q)
}

export interface StatementToCheck {
  /** ClickHouse's canonical rendering of the statement (formatQuery) */
  canonical: string
  /** its syntax tree (EXPLAIN AST of the canonical rendering) */
  ast: AstNode
  /** the CTE names it defines (cteNames) */
  ctes: ReadonlySet<string>
}

/** Throws RefusedSqlError naming the first thing in the statement that is not allowed. */
export function checkStatement(statement: StatementToCheck, policy: GuardPolicy): void {
  new Guard(policy, statement.ctes, allowedFunctions()).root(statement.ast, statement.canonical)
}

class Guard {
  constructor(
    private readonly policy: GuardPolicy,
    private readonly ctes: ReadonlySet<string>,
    private readonly functions: FunctionAllowList,
  ) {}

  root(node: AstNode, canonical: string): void {
    switch (node.type) {
      case 'SelectWithUnionQuery':
        this.node(node)
        return
      case 'Explain': {
        if (!EXPLAIN_KINDS.has(node.detail)) throw this.statement(node.detail)
        // an optional first Set holds EXPLAIN's own options (`indexes=1`), which ClickHouse checks
        const [first, ...rest] = node.children
        const [query, ...after] = first?.type === 'Set' ? rest : node.children
        if (query?.type !== 'SelectWithUnionQuery') throw this.statement('EXPLAIN of anything but SELECT')
        if (after.length > 0) throw outputClause(after[0]!)
        this.node(query)
        return
      }
      case 'DescribeQuery':
        for (const child of node.children) this.node(child)
        return
      case 'ExistsTableQuery':
      case 'ShowCreateTableQuery':
        this.tableNameParts(node.children)
        return
      case 'ShowTables':
        // SHOW DATABASES, SHOW SETTINGS, … share this node type; the canonical text tells them apart
        if (!/^SHOW TABLES\b/.test(canonical))
          throw this.statement(/^SHOW( [A-Z]+)?/.exec(canonical)?.[0] ?? 'SHOW')
        for (const child of node.children) {
          if (child.type !== 'Identifier' || child.detail !== this.policy.database) {
            throw new RefusedSqlError(
              `database ${child.detail}`,
              `SQL refused: database ${child.detail} is not readable here; ad-hoc SQL reads ${this.policy.database} only`,
            )
          }
        }
        return
      default:
        throw this.statement(node.type)
    }
  }

  private node(node: AstNode, parent?: AstNode): void {
    switch (node.type) {
      case 'Function':
        if (parent?.type === 'TableExpression') this.tableFunction(node)
        else this.function(node)
        return
      case 'TableIdentifier':
        this.table(node.detail)
        return
      case 'SelectWithUnionQuery':
        // FORMAT, INTO OUTFILE and SETTINGS of the statement follow the list of SELECTs
        if (node.children.length > 1) throw outputClause(node.children[1]!)
        break
      case 'Set':
        throw new RefusedSqlError(
          'SETTINGS',
          "SQL refused: a SETTINGS clause is not allowed: breakid's read-only session and limits fix the settings (see README: Security model)",
        )
      case 'ColumnsApplyTransformer':
        throw new RefusedSqlError(
          'APPLY',
          'SQL refused: the APPLY column transformer is not allowed (write the function call out instead)',
        )
      case 'QueryParameter':
        throw new RefusedSqlError(
          'query parameter',
          'SQL refused: ad-hoc SQL takes no {name:Type} parameters',
        )
      default:
        if (!STRUCTURAL.has(node.type)) {
          throw new RefusedSqlError(
            node.type,
            `SQL refused: this construct (${node.type}) is not allowed here`,
          )
        }
    }
    for (const child of node.children) this.node(child, node)
  }

  private function(node: AstNode): void {
    const name = plainName(node.detail, PLAIN_NAME)
    if (!name || !this.functions.allows(name)) {
      const shown = name ?? node.detail.replace(/ \(alias [\s\S]*\)$/, '')
      throw new RefusedSqlError(
        `function ${shown}`,
        `SQL refused: function ${shown}() is not allowed: ad-hoc SQL may call pure functions only ` +
          '(nothing that reads files, the network, dictionaries or the server), from an allow-list (queries/allowed-functions.txt)',
      )
    }
    const args = node.children[0]
    if (IN_FUNCTIONS.has(name) && args?.children[1]?.type === 'Identifier') {
      // `x IN name` reads the table `name`; a subquery or a literal set is checked as usual
      this.table(args.children[1].detail)
      this.node(args.children[0]!, args)
      for (const rest of node.children.slice(1)) this.node(rest, node)
      return
    }
    for (const child of node.children) this.node(child, node)
  }

  private tableFunction(node: AstNode): void {
    const name = plainName(node.detail, PLAIN_NAME)
    if (!name || !TABLE_FUNCTIONS.has(name.toLowerCase())) {
      const shown = name ?? node.detail
      throw new RefusedSqlError(
        `table function ${shown}`,
        `SQL refused: table function ${shown}() is not allowed: ad-hoc SQL reads ${this.tableList()} ` +
          'and the generators numbers(), generate_series(), values(), view()',
      )
    }
    for (const child of node.children) this.node(child, node)
  }

  /** `db.table` or `table`, as a TableIdentifier or an identifier that names a table prints it. */
  private table(detail: string): void {
    const withoutAlias = detail.replace(/ \(alias [^()]*\)$/, '')
    if (this.ctes.has(withoutAlias)) return
    const m = TABLE_NAME.exec(withoutAlias)
    if (m) {
      const [database, table] = m[2] === undefined ? [undefined, m[1]!] : [m[1]!, m[2]]
      if (database === undefined && this.ctes.has(table)) return
      if ((database === undefined || database === this.policy.database) && this.policy.tables.has(table)) {
        return
      }
    }
    throw new RefusedSqlError(
      `table ${withoutAlias}`,
      `SQL refused: table ${withoutAlias} is not readable here; ad-hoc SQL reads ${this.tableList()}`,
    )
  }

  /** EXISTS / SHOW CREATE TABLE name their table as one or two identifiers. */
  private tableNameParts(parts: AstNode[]): void {
    if (parts.length < 1 || parts.length > 2 || parts.some((p) => p.type !== 'Identifier')) {
      throw this.statement('this form of EXISTS / SHOW CREATE')
    }
    this.table(parts.map((p) => p.detail).join('.'))
  }

  private tableList(): string {
    return `${[...this.policy.tables].join(', ')} (database ${this.policy.database})`
  }

  private statement(what: string): RefusedSqlError {
    return new RefusedSqlError(
      what,
      `SQL refused: ${what} is not allowed; ad-hoc SQL runs SELECT/WITH, DESCRIBE, EXISTS, SHOW TABLES, ` +
        'SHOW CREATE TABLE and EXPLAIN of a SELECT',
    )
  }
}

/** A clause after the SELECTs of a statement: INTO OUTFILE (a literal), FORMAT (an identifier), SETTINGS. */
function outputClause(node: AstNode): RefusedSqlError {
  if (node.type === 'Literal') {
    return new RefusedSqlError(
      'INTO OUTFILE',
      'SQL refused: INTO OUTFILE writes a file on the host and is not allowed here',
    )
  }
  if (node.type === 'Identifier') {
    return new RefusedSqlError(
      'FORMAT',
      'SQL refused: remove the FORMAT clause: results come back as columns and rows; choose table, ' +
        'csv, json or ndjson output with the format option instead',
    )
  }
  if (node.type === 'Set') {
    return new RefusedSqlError(
      'SETTINGS',
      "SQL refused: a SETTINGS clause is not allowed: breakid's read-only session and limits fix the settings",
    )
  }
  return new RefusedSqlError(node.type, `SQL refused: this clause (${node.type}) is not allowed here`)
}
