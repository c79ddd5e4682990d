/**
 * The allow-list check of ad-hoc SQL (queries/sql-guard.ts) against real chDB: every spelling of a
 * function, table function, table, clause and statement that reaches outside the project's tables
 * is refused by name, and nothing of it runs (a marker file stays unread, no file is written).
 * chDB binds one data directory per process, so the whole file shares one store.
 */
import assert from 'node:assert/strict'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { type ClickHouse, openClickHouse } from '../../store/client.ts'
import { migrate } from '../../store/migrations.ts'
import { spansTable, TABLES } from '../../store/tables.ts'
import { insertRecords } from '../../store/writer.ts'
import { makeSpan } from '../../contract/synthetic.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { RefusedSqlError } from '../../queries/errors.ts'
import { checkSql, listQueries, runSql } from '../../queries/runner.ts'
import {
  allowedFunctions,
  cteNames,
  FunctionAllowList,
  guardPolicy,
  parseExplainAst,
} from '../../queries/sql-guard.ts'
import { deriveAllowedFunctions, formatAllowedFunctions } from '../helpers/allowed-functions.ts'

let dir = ''
let ch: ClickHouse
/** a file that must never be read through SQL; its content would show in a result */
let secretFile = ''
const SECRET = 'breakid-secret-7f3a'

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'breakid-guard-'))
  secretFile = join(dir, 'secret.txt')
  writeFileSync(secretFile, `${SECRET}\n`)
  ch = openClickHouse({ dataDir: join(dir, 'data'), database: 'breakid_guard' })
  await migrate(ch)
  await insertRecords(ch, spansTable, [makeSpan(0), makeSpan(1), makeSpan(2)])
})

after(async () => {
  await ch?.close()
  await rm(dir, { recursive: true, force: true })
})

/** Asserts the SQL is refused with an error that names `what`, and that nothing secret leaked. */
async function refused(sql: string, what: RegExp): Promise<void> {
  await assert.rejects(
    runSql(ch, sql),
    (err: Error) => {
      assert.ok(err instanceof InvalidInputError, `${sql}: ${err.constructor.name}: ${err.message}`)
      assert.match(err.message, what, sql)
      assert.ok(!err.message.includes(SECRET), `${sql}: the secret leaked into the error`)
      return true
    },
    sql,
  )
}

describe('outside-reaching functions are refused in every spelling', () => {
  test('scalar file(), nested, upper and mixed case, inside subqueries, CTEs, unions, lambdas', async () => {
    const f = `'${secretFile}'`
    const cases = [
      `SELECT file(${f})`,
      `SELECT FILE(${f})`,
      `SELECT File(${f})`,
      `SELECT \`file\`(${f})`,
      `SELECT length(concat('x', file(${f}))) AS n`,
      `SELECT * FROM spans WHERE request_id = file(${f})`,
      `SELECT (SELECT file(${f}))`,
      `SELECT x FROM (SELECT file(${f}) AS x)`,
      `WITH (SELECT file(${f})) AS x SELECT x`,
      `WITH t AS (SELECT file(${f}) AS x) SELECT x FROM t`,
      `SELECT 1 UNION ALL SELECT file(${f})`,
      `SELECT 1 INTERSECT SELECT file(${f})`,
      `SELECT arrayMap(p -> file(p), [${f}])`,
      `SELECT * FROM view(SELECT file(${f}) AS x)`,
      `SELECT 1 WHERE 1 IN (SELECT file(${f}))`,
      `SELECT count() OVER (PARTITION BY file(${f})) FROM spans`,
      `SELECT * FROM spans ORDER BY file(${f})`,
      `SELECT * FROM spans AS s JOIN spans AS t ON s.request_id = file(${f})`,
      `SELECT * REPLACE (file(${f}) AS request_id) FROM spans`,
      `EXPLAIN SELECT file(${f})`,
      `DESCRIBE (SELECT file(${f}))`,
      `SELECT /* a comment */ file /* between */ (${f})`,
    ]
    for (const sql of cases) await refused(sql, /function (file|FILE|File)\(\) is not allowed/)
  })

  test('table functions that read files, the network or other servers', async () => {
    const cases: [string, string][] = [
      [`SELECT * FROM file('${secretFile}', 'LineAsString')`, 'file'],
      [`SELECT * FROM FILE('${secretFile}', 'LineAsString')`, 'FILE'],
      ["SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')", 'url'],
      ["SELECT * FROM s3('http://127.0.0.1:1/b/k', 'LineAsString')", 's3'],
      ["SELECT * FROM hdfs('hdfs://127.0.0.1:1/x', 'LineAsString')", 'hdfs'],
      ["SELECT * FROM remote('127.0.0.1:1', system.one)", 'remote'],
      ["SELECT * FROM remoteSecure('127.0.0.1:1', system.one)", 'remoteSecure'],
      ["SELECT * FROM cluster('default', system.one)", 'cluster'],
      ["SELECT * FROM mysql('127.0.0.1:1', 'db', 't', 'u', 'p')", 'mysql'],
      ["SELECT * FROM postgresql('127.0.0.1:1', 'db', 't', 'u', 'p')", 'postgresql'],
      ["SELECT * FROM sqlite('/tmp/x.db', 't')", 'sqlite'],
      ["SELECT * FROM mongodb('127.0.0.1:1', 'db', 'c', 'u', 'p', 'x String')", 'mongodb'],
      ["SELECT * FROM redis('127.0.0.1:1', 'k', 'k String')", 'redis'],
      ["SELECT * FROM jdbc('jdbc:x', 't')", 'jdbc'],
      ["SELECT * FROM odbc('DSN=x', 't')", 'odbc'],
      ["SELECT * FROM executable('cat /etc/passwd', 'LineAsString', 'x String')", 'executable'],
      ["SELECT * FROM input('x String')", 'input'],
      ["SELECT * FROM azureBlobStorage('http://127.0.0.1:1', 'c', 'b')", 'azureBlobStorage'],
      ["SELECT * FROM gcs('http://127.0.0.1:1/b/k')", 'gcs'],
      ["SELECT * FROM iceberg('http://127.0.0.1:1/t')", 'iceberg'],
      ["SELECT * FROM icebergLocal('/tmp/t')", 'icebergLocal'],
      ["SELECT * FROM deltaLake('http://127.0.0.1:1/t')", 'deltaLake'],
      ["SELECT * FROM hudi('http://127.0.0.1:1/t')", 'hudi'],
      ["SELECT * FROM dictionary('d')", 'dictionary'],
      ["SELECT * FROM merge('system', '.*')", 'merge'],
      ['SELECT * FROM loop(spans)', 'loop'],
      ["SELECT * FROM eval('SELECT 1')", 'eval'],
      ["SELECT * FROM filesystem('/')", 'filesystem'],
      ["SELECT * FROM format(JSONEachRow, '{}')", 'format'],
      ['SELECT * FROM generateRandom()', 'generateRandom'],
      ['SELECT * FROM zeros(5)', 'zeros'],
      ["SELECT * FROM (SELECT * FROM file('/etc/passwd'))", 'file'],
      ["WITH t AS (SELECT * FROM url('http://127.0.0.1:1/')) SELECT * FROM t", 'url'],
      ["SELECT 1 UNION ALL SELECT * FROM remote('127.0.0.1:1', system.one)", 'remote'],
    ]
    for (const [sql, name] of cases)
      await refused(sql, new RegExp(`table function ${name}\\(\\) is not allowed`))
  })

  test('scalar functions that reach outside: url-ish, dictionaries, server state, sleeping, AI', async () => {
    for (const name of [
      "dictGet('d', 'a', 1)",
      "dictGetString('d', 'a', 1)",
      "dictGetOrNull('d', 'a', 1)",
      "dictHas('d', 1)",
      "joinGet('t', 'a', 1)",
      "joinGetOrNull('t', 'a', 1)",
      "hasColumnInTable('system', 'users', 'name')",
      "getSetting('max_memory_usage')",
      'currentDatabase()',
      'currentUser()',
      'hostName()',
      'fqdn()',
      'uptime()',
      'filesystemAvailable()',
      "getMacro('x')",
      'sleep(1)',
      'sleepEachRow(1)',
      "catboostEvaluate('/tmp/m.bin', 1)",
      "aiGenerate('hi')",
      'regionToName(1)',
      'addressToSymbol(1)',
      "globalVariable('x')",
      "getServerSetting('path')",
      "cutToFirstSignificantSubdomainCustom('a.b', 'list')",
      'icebergBucket(1, 1)',
      'initialQueryID()',
      'noSuchFunctionAnywhere(1)',
    ]) {
      const fn = name.slice(0, name.indexOf('('))
      await refused(`SELECT ${name}`, new RegExp(`function ${fn}\\(\\) is not allowed`))
    }
  })

  test('tables outside the project: other databases, system tables, IN <table>, DESCRIBE, EXISTS', async () => {
    const cases: [string, RegExp][] = [
      ['SELECT * FROM system.users', /table system\.users is not readable/],
      ['SELECT * FROM system.tables', /table system\.tables is not readable/],
      ['SELECT name FROM `system`.`databases`', /table system\.databases is not readable/],
      ['SELECT * FROM breakid_guard.schema_migrations', /table breakid_guard\.schema_migrations/],
      ['SELECT * FROM schema_migrations', /table schema_migrations is not readable/],
      ['SELECT * FROM other_db.spans', /table other_db\.spans is not readable/],
      ['SELECT * FROM spans WHERE 1 IN system.one', /table system\.one is not readable/],
      ['SELECT * FROM spans WHERE request_id NOT IN system.users', /table system\.users/],
      ['SELECT * FROM spans AS s, system.processes', /table system\.processes/],
      ['SELECT * FROM spans JOIN system.one ON 1', /table system\.one/],
      ['SELECT * FROM (SELECT * FROM system.one)', /table system\.one/],
      ['WITH c AS (SELECT 1) SELECT * FROM system.one', /table system\.one/],
      ['DESCRIBE TABLE system.users', /table system\.users/],
      ['EXISTS TABLE system.users', /table system\.users/],
      ['SHOW CREATE TABLE system.users', /table system\.users/],
      ['SHOW TABLES FROM system', /database system is not readable/],
      ['SHOW DATABASES', /SHOW DATABASES is not allowed/],
      ["SHOW SETTINGS LIKE 'max%'", /SHOW SETTINGS is not allowed/],
      ['SHOW PROCESSLIST', /is not allowed/],
      ['SHOW GRANTS', /is not allowed/],
      ['EXISTS DATABASE system', /is not allowed/],
    ]
    for (const [sql, expected] of cases) await refused(sql, expected)
  })

  test('SETTINGS (trying to lift readonly or the limits), FORMAT, INTO OUTFILE, APPLY, parameters', async () => {
    const out = join(dir, 'written.txt')
    const cases: [string, RegExp][] = [
      ['SELECT 1 SETTINGS readonly = 0', /SETTINGS clause is not allowed/],
      ['SELECT count() FROM spans SETTINGS max_execution_time = 0', /SETTINGS clause is not allowed/],
      ['SELECT * FROM (SELECT 1 SETTINGS max_rows_to_read = 0)', /SETTINGS clause is not allowed/],
      ['SELECT 1 UNION ALL SELECT 2 SETTINGS max_result_rows = 0', /SETTINGS clause is not allowed/],
      ['EXPLAIN SELECT 1 SETTINGS readonly = 0', /SETTINGS clause is not allowed/],
      [`SELECT 1 INTO OUTFILE '${out}'`, /INTO OUTFILE writes a file/],
      [`EXPLAIN SELECT 1 INTO OUTFILE '${out}'`, /INTO OUTFILE/],
      [`SELECT * FROM spans INTO OUTFILE '${out}' FORMAT CSV`, /INTO OUTFILE/],
      ['SELECT 1 FORMAT JSON', /remove the FORMAT clause/],
      ['SELECT * APPLY(sum) FROM (SELECT 1 AS a)', /APPLY column transformer is not allowed/],
      ["SELECT * APPLY(x -> file(x)) FROM (SELECT 'a' AS a)", /APPLY column transformer/],
      ['SELECT {p:String}', /parameters|is not allowed|Substitution/],
      ['SET readonly = 0', /read-only: SET statements are not allowed/],
      ["SELECT 1; SELECT file('/etc/passwd')", /one statement at a time/],
      ["SELECT 1; SELECT * FROM url('http://127.0.0.1:1/')", /one statement at a time/],
      ['SYSTEM SHUTDOWN', /read-only: SYSTEM/],
      ['KILL QUERY WHERE 1', /read-only: KILL/],
      ['SELECT 1 PARALLEL WITH SELECT 2', /is not allowed|SYNTAX|one statement/],
    ]
    for (const [sql, expected] of cases) await refused(sql, expected)
    assert.equal(existsSync(out), false, 'no file was written')
  })
})

describe('what is allowed still runs', () => {
  test('the project tables, CTEs, subqueries, joins, unions, window and parametric aggregates', async () => {
    const cases: [string, unknown][] = [
      ['SELECT count() FROM spans', 3],
      ['SELECT count() FROM breakid_guard.spans', 3],
      // FINAL where the engine has it (spans are a plain MergeTree now: no FINAL to need)
      ['SELECT COUNT(*) FROM alerts FINAL', 0],
      ['WITH recent AS (SELECT * FROM spans) SELECT count() FROM recent', 3],
      ['WITH `my cte` AS (SELECT 1 AS x) SELECT sum(x) FROM `my cte`', 1],
      ['WITH a AS (SELECT 1 AS x), b AS (SELECT x + 1 AS y FROM a) SELECT y FROM b', 2],
      ['SELECT count() FROM (SELECT request_id FROM spans UNION ALL SELECT request_id FROM spans)', 6],
      ['SELECT count() FROM spans AS s JOIN spans AS t USING (request_id)', 3],
      ["SELECT countIf(status = 'ok') FROM spans WHERE request_id IN (SELECT request_id FROM spans)", 3],
      ['SELECT count() FROM spans WHERE request_id IN spans', undefined],
      ['SELECT toUInt64(quantileExactIf(0.5)(total_us, 1) > 0) FROM spans', 1],
      ['SELECT max(n) FROM (SELECT row_number() OVER (ORDER BY timestamp) AS n FROM spans)', 3],
      ['SELECT sum(number) FROM numbers(10)', 45],
      ['SELECT count() FROM generate_series(1, 5)', 5],
      ["SELECT count() FROM values('x UInt8', 1, 2)", 2],
      ['SELECT arraySum(arrayMap(x -> x * 2, [1, 2, 3]))', 12],
      ["SELECT CASE 1 WHEN 1 THEN 'a' ELSE 'b' END", 'a'],
      ["SELECT toYear(toDate('2026-01-02')) + 0 * length(formatReadableSize(1))", 2026],
      ['SELECT count() FROM spans WHERE timestamp > now() - INTERVAL 100 YEAR', 3],
      ['SELECT EXISTS (SELECT 1)', 1],
      ['SELECT sum(x) FROM (SELECT 1 AS x) AS t', 1],
    ]
    for (const [sql, expected] of cases) {
      const result = await runSql(ch, sql)
      if (expected !== undefined) assert.deepEqual(result.rows[0]?.[0], expected, sql)
    }
    for (const sql of [
      'SHOW TABLES',
      'SHOW TABLES FROM breakid_guard',
      'DESCRIBE TABLE spans',
      'DESC breakid_guard.alerts',
      'EXISTS TABLE spans',
      'SHOW CREATE TABLE spans',
      'EXPLAIN SELECT count() FROM spans',
      'EXPLAIN AST SELECT 1',
      'EXPLAIN PLAN indexes = 1 SELECT count() FROM spans',
      'EXPLAIN SYNTAX SELECT 1',
      'EXPLAIN SELECT 1',
      '(SELECT 1);',
    ]) {
      await runSql(ch, sql)
    }
  })

  test('every table of store/tables.ts is readable, and the named queries pass the same check', async () => {
    for (const table of TABLES) await runSql(ch, `SELECT count() FROM ${table.name}`)
    for (const q of listQueries()) {
      // parameters are bound by the server for named queries; the check only reads the text
      const sql = q.sql.replace(/\{(\w+):([^}]+)\}/g, (_m, _n, type: string) =>
        /Date/.test(type) ? "toDateTime64('2026-01-01 00:00:00', 6)" : /Int|Float/.test(type) ? '60' : "''",
      )
      await checkSql(ch, sql)
    }
  })

  test('nothing refused ran: the secret file was never read into a result', async () => {
    const result = await runSql(ch, "SELECT count() FROM spans WHERE request_id = 'x'")
    assert.equal(result.rows[0]![0], 0)
    assert.equal(readFileSync(secretFile, 'utf8').trim(), SECRET)
  })
})

describe('the allow-list and the syntax tree reader', () => {
  test('allowed-functions.txt is what the bundled engine derives (review and regenerate on a chDB upgrade)', async () => {
    const rs = await ch.client.query({ query: 'SELECT version() AS v', format: 'JSONEachRow' })
    const [{ v }] = (await rs.json<{ v: string }>()) as [{ v: string }]
    const derived = formatAllowedFunctions(await deriveAllowedFunctions(ch.client), v)
    const file = new URL('../../queries/allowed-functions.txt', import.meta.url)
    if (process.env.BREAKID_UPDATE_ALLOWED_FUNCTIONS === '1') writeFileSync(file, derived)
    const body = (text: string) => text.replace(/^#.*\n/gm, '')
    assert.equal(body(readFileSync(file, 'utf8')), body(derived))
  })

  test('no outside-reaching function of system.functions is on the list', async () => {
    const rs = await ch.client.query({
      query: `SELECT name FROM system.functions
              WHERE categories IN ('AI', 'Dictionary', 'Embedded Dictionary', 'Introspection', 'Internal', 'Machine Learning')
                 OR name IN ('file', 'joinGet', 'joinGetOrNull', 'getSetting', 'getServerSetting', 'hostName',
                             'sleep', 'sleepEachRow', 'catboostEvaluate', 'globalVariable', 'filesystemAvailable')`,
      format: 'JSONEachRow',
    })
    // CASE x WHEN … parses into the internal caseWithExpression, which only compares its arguments
    const outside = (await rs.json<{ name: string }>())
      .map((r) => r.name)
      .filter((n) => n !== 'caseWithExpression')
    assert.ok(outside.length > 70, `found ${outside.length}`)
    const list = allowedFunctions()
    assert.deepEqual(
      outside.filter((name) => list.allows(name)),
      [],
    )
    assert.ok(list.size > 1000, `the list has ${list.size} names`)
  })

  test('combinators extend allowed aggregates only; case is honoured only where ClickHouse ignores it', () => {
    const list = new FunctionAllowList('[Aggregate Functions]\nsum count~\n[String]\nlower\n')
    for (const name of ['sum', 'sumIf', 'sumArrayIf', 'sumStateMerge', 'COUNT', 'countIf', 'lower']) {
      assert.ok(list.allows(name), name)
    }
    for (const name of ['SUM', 'LOWER', 'lowerIf', 'fileIf', 'dictGetOrNull', 'If', 'sumIfIfIfIfIf']) {
      assert.ok(!list.allows(name), name)
    }
  })

  test('a tree whose rows do not add up is refused, not guessed at', () => {
    const ok = parseExplainAst(['SelectWithUnionQuery (children 1)', ' ExpressionList'])
    assert.equal(ok.children[0]!.type, 'ExpressionList')
    for (const rows of [
      ['SelectWithUnionQuery (children 2)', ' ExpressionList'],
      ['SelectWithUnionQuery', ' ExpressionList'],
      ['SelectWithUnionQuery (children 1)', '  ExpressionList'],
      ['Identifier a\n Function file'],
      ['Literal 1', 'Literal 2'],
      [],
    ]) {
      assert.throws(() => parseExplainAst(rows), RefusedSqlError, JSON.stringify(rows))
    }
  })

  test('CTE names come from the lexer: quoted, nested, several; WINDOW names are not CTEs', () => {
    const names = (sql: string, tokens: [number, number, string][]) => [...cteNames(sql, tokens)].sort()
    const sql =
      'WITH a AS (SELECT 1), `b c` AS (WITH d AS (SELECT 2) SELECT 3) SELECT 4 WINDOW w AS (ORDER BY 1)'
    // the tokens as tokenizeQuery returns them for this text (byte offsets, type)
    const tokens: [number, number, string][] = []
    const re = /\s+|`[^`]*`|\w+|[(),]/g
    for (let m = re.exec(sql); m; m = re.exec(sql)) {
      const t = m[0]
      const type = /^\s/.test(t)
        ? 'Whitespace'
        : t.startsWith('`')
          ? 'QuotedIdentifier'
          : t === '('
            ? 'OpeningRoundBracket'
            : t === ')'
              ? 'ClosingRoundBracket'
              : t === ','
                ? 'Comma'
                : /^\d/.test(t)
                  ? 'Number'
                  : 'BareWord'
      tokens.push([m.index, m.index + t.length, type])
    }
    assert.deepEqual(names(sql, tokens), ['a', 'b c', 'd'])
  })

  test('the policy reads its tables from store/tables.ts', () => {
    assert.deepEqual([...guardPolicy('db').tables].sort(), TABLES.map((t) => t.name).sort())
  })
})
