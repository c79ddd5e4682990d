import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { InvalidInputError } from '../../core/errors.ts'
import {
  type ParamSpec,
  parseParamValue,
  parseQueryFile,
  parseTimeMicros,
  type QueryDefinition,
  resolveParams,
} from '../../queries/params.ts'
import { loadQueries } from '../../queries/runner.ts'
import { leadingKeyword, precheckSql, stripLiterals } from '../../queries/statement.ts'

const NOW_MS = Date.UTC(2026, 0, 1, 12, 0, 0) // 2026-01-01T12:00:00Z
const NOW_US = NOW_MS * 1000
const us = (iso: string) => Date.parse(iso) * 1000

describe('parseTimeMicros', () => {
  const cases: [string, number | undefined][] = [
    ['now', NOW_US],
    ['now()', NOW_US],
    ['-15m', NOW_US - 15 * 60e6],
    ['-2h', NOW_US - 2 * 3600e6],
    ['now-7d', NOW_US - 7 * 86_400e6],
    ['now - 1w', NOW_US - 7 * 86_400e6],
    ['+30s', NOW_US + 30e6],
    ['-250ms', NOW_US - 250e3],
    ['-1.5h', NOW_US - 1.5 * 3600e6],
    ['2026-01-01T00:00:00Z', us('2026-01-01T00:00:00Z')],
    ['2026-01-01 00:00:00', us('2026-01-01T00:00:00Z')], // no zone means UTC
    ['2026-01-01', us('2026-01-01T00:00:00Z')],
    ['2026-01-01T02:00:00+02:00', us('2026-01-01T00:00:00Z')],
    ['2026-01-01T00:00:00-0530', us('2026-01-01T05:30:00Z')],
    ['2026-01-01T00:00:00.123456Z', us('2026-01-01T00:00:00Z') + 123_456],
    ['2026-01-01T00:00:00.5Z', us('2026-01-01T00:00:00Z') + 500_000],
    ['2026-01-01T10:30Z', us('2026-01-01T10:30:00Z')],
    ['1767225600', us('2026-01-01T00:00:00Z')], // epoch seconds
    ['1767225600.25', us('2026-01-01T00:00:00Z') + 250_000],
    ['1767225600123', us('2026-01-01T00:00:00Z') + 123_000], // epoch milliseconds
    ['1767225600123456', us('2026-01-01T00:00:00Z') + 123_456], // epoch microseconds
    ['yesterday', undefined],
    ['2026-02-30', undefined], // no such day
    ['2026-13-01', undefined],
    ['2026-01-01T24:00:00Z', undefined],
    ['-15', undefined], // a relative time needs a unit
    ['-15y', undefined],
    ['', undefined],
    ['1767225600123.5', undefined],
  ]
  for (const [text, expected] of cases) {
    test(JSON.stringify(text), () => assert.equal(parseTimeMicros(text, NOW_MS), expected))
  }
})

describe('parseParamValue', () => {
  const spec = (type: string, extra: Partial<ParamSpec> = {}): ParamSpec => ({ name: 'p', type, ...extra })

  test('DateTime64(6) binds epoch seconds with six decimals and shows ISO', () => {
    assert.deepEqual(parseParamValue(spec('DateTime64(6)'), '2026-01-01T00:00:00.000250Z', NOW_MS), {
      bound: '1767225600.000250',
      display: '2026-01-01T00:00:00.000250Z',
    })
    assert.equal(parseParamValue(spec('DateTime64(6)'), '-1h', NOW_MS).display, '2026-01-01T11:00:00.000000Z')
  })

  test('the precision of the type decides the bound digits', () => {
    assert.equal(parseParamValue(spec('DateTime64(3)'), '1767225600.123456', NOW_MS).bound, '1767225600.123')
    assert.equal(parseParamValue(spec("DateTime64(6, 'UTC')"), 'now', NOW_MS).bound, '1767268800.000000')
    assert.equal(parseParamValue(spec('DateTime'), '2026-01-01T00:00:00.9Z', NOW_MS).bound, '1767225600')
    assert.equal(parseParamValue(spec('Date'), '2026-03-04T23:00:00Z', NOW_MS).bound, '2026-03-04')
  })

  test('integers: range of the type and declared bounds', () => {
    assert.equal(parseParamValue(spec('UInt32'), ' 42 ', NOW_MS).bound, '42')
    assert.equal(parseParamValue(spec('Int64'), '-9223372036854775808', NOW_MS).bound, '-9223372036854775808')
    assert.equal(
      parseParamValue(spec('UInt64'), '18446744073709551615', NOW_MS).bound,
      '18446744073709551615',
    )
    assert.throws(() => parseParamValue(spec('UInt32'), '-1', NOW_MS), /out of range 0\.\.4294967295/)
    assert.throws(() => parseParamValue(spec('UInt8'), '256', NOW_MS), /out of range/)
    assert.throws(() => parseParamValue(spec('UInt32'), '1.5', NOW_MS), /expected an integer/)
    assert.throws(() => parseParamValue(spec('UInt32'), '0x10', NOW_MS), /expected an integer/)
    assert.throws(() => parseParamValue(spec('UInt32', { min: 1 }), '0', NOW_MS), /at least 1/)
    assert.throws(() => parseParamValue(spec('UInt32', { max: 10 }), '11', NOW_MS), /at most 10/)
  })

  test('floats, booleans and strings', () => {
    assert.equal(parseParamValue(spec('Float64'), '1e-3', NOW_MS).bound, '0.001')
    assert.throws(() => parseParamValue(spec('Float64'), 'NaN', NOW_MS), /expected a number/)
    assert.throws(() => parseParamValue(spec('Float64'), '1e400', NOW_MS), /finite/)
    assert.equal(parseParamValue(spec('Bool'), 'TRUE', NOW_MS).bound, 'true')
    assert.equal(parseParamValue(spec('Bool'), '0', NOW_MS).bound, 'false')
    assert.throws(() => parseParamValue(spec('Bool'), 'yes', NOW_MS), /true or false/)
    // strings are bound verbatim: the server binds them, nothing is spliced into SQL
    const nasty = "x' OR 1=1 -- \\ \n"
    assert.equal(parseParamValue(spec('String'), nasty, NOW_MS).bound, nasty)
  })

  test('the error names the parameter, the type and the value', () => {
    const err = captureError(() =>
      parseParamValue({ name: 'from', type: 'DateTime64(6)' }, 'yesterday', NOW_MS),
    )
    assert.ok(err instanceof InvalidInputError)
    assert.match(err.message, /^parameter 'from' \(DateTime64\(6\)\): expected a time: ISO 8601/)
    assert.match(err.message, /got "yesterday"$/)
    assert.equal(err.code, 'BREAKID_INVALID_INPUT')
    assert.equal(err.retriable, false)
  })

  test('times before 1970 or past the type are refused', () => {
    assert.throws(
      () => parseParamValue(spec('DateTime64(6)'), '1969-12-31T23:59:59Z', NOW_MS),
      /out of range/,
    )
    assert.throws(() => parseParamValue(spec('DateTime'), '2107-01-01', NOW_MS), /out of range/)
  })
})

const HEADER = `-- name: demo
-- description: first line
-- description: second line
-- param: from DateTime64(6, 'UTC') default=-1h start of the range
-- param: model String default='' only this model
-- param: limit UInt32 default=20 min=1 max=100
-- param: label String
SELECT {label:String} AS label, {model:String} AS m
FROM spans
WHERE timestamp >= {from:DateTime64(6, 'UTC')}
LIMIT {limit:UInt32}
`

describe('parseQueryFile', () => {
  test('reads the header and keeps the body', () => {
    const def = parseQueryFile(HEADER, 'demo.sql')
    assert.equal(def.name, 'demo')
    assert.equal(def.description, 'first line second line')
    assert.deepEqual(def.params, [
      { name: 'from', type: "DateTime64(6, 'UTC')", default: '-1h', description: 'start of the range' },
      { name: 'model', type: 'String', default: '', description: 'only this model' },
      { name: 'limit', type: 'UInt32', default: '20', min: 1, max: 100 },
      { name: 'label', type: 'String' },
    ])
    assert.ok(def.sql.startsWith('SELECT {label:String}'))
    assert.ok(!def.sql.includes('-- name'))
  })

  const broken: [string, string, RegExp][] = [
    ['no name', HEADER.replace('-- name: demo\n', ''), /needs '-- name/],
    [
      'undeclared placeholder',
      HEADER.replace('AS m', 'AS m, {extra:UInt8}'),
      /\{extra:UInt8\} is not declared/,
    ],
    [
      'type mismatch',
      HEADER.replace('LIMIT {limit:UInt32}', 'LIMIT {limit:UInt64}'),
      /does not match declared type/,
    ],
    [
      'unused parameter',
      HEADER.replace('{label:String} AS label, ', ''),
      /'label' is declared but never used/,
    ],
    [
      'unsupported type',
      HEADER.replace('label String', 'label Array(String)'),
      /unsupported type 'Array\(String\)'/,
    ],
    ['bad default', HEADER.replace('default=-1h', 'default=yesterday'), /bad default for 'from'/],
    [
      'default outside bounds',
      HEADER.replace('default=20', 'default=0'),
      /bad default for 'limit'.*at least 1/,
    ],
    ['reserved name', HEADER.replace(/label/g, 'format'), /'format' is reserved/],
    ['declared twice', HEADER.replace('-- param: label String', '-- param: model String'), /declared twice/],
  ]
  for (const [what, text, expected] of broken) {
    test(`refuses a file with ${what}`, () => assert.throws(() => parseQueryFile(text, 'demo.sql'), expected))
  }

  test('every file in queries/sql loads and matches its file name', () => {
    const defs = loadQueries()
    for (const name of ['stage-breakdown', 'slowest-requests', 'throughput', 'alerts']) {
      assert.ok(defs.has(name), `${name} is missing`)
      assert.ok(defs.get(name)!.description.length > 20, `${name} needs a description`)
    }
  })
})

describe('resolveParams', () => {
  const def: QueryDefinition = parseQueryFile(HEADER, 'demo.sql')

  test('applies defaults and keeps supplied values', () => {
    const values = resolveParams(def, { label: 'x', limit: '5' }, NOW_MS)
    assert.deepEqual(Object.fromEntries(Object.entries(values).map(([k, v]) => [k, v.bound])), {
      from: '1767265200.000000',
      model: '',
      limit: '5',
      label: 'x',
    })
  })

  test('an unknown name is refused, listing the known ones', () => {
    assert.throws(
      () => resolveParams(def, { label: 'x', frm: '-1h' }, NOW_MS),
      (err: Error) =>
        err instanceof InvalidInputError &&
        err.message === "unknown parameter 'frm' for query demo; known parameters: from, model, limit, label",
    )
  })

  test('a parameter without default is required', () => {
    assert.throws(() => resolveParams(def, {}, NOW_MS), /query demo needs parameter 'label' \(String\)/)
  })
})

describe('ad-hoc SQL prechecks', () => {
  test('comments, strings and quoted names are blanked', () => {
    assert.equal(
      stripLiterals("SELECT 'a;b' /* x /* nested */ y */ , `c d` -- drop\n, $$e'f$$ # g"),
      "SELECT ''   , ``  \n, ''  ",
    )
    assert.equal(leadingKeyword('  -- note\n /* c */ (select 1)'), 'SELECT')
  })

  test('reads pass; writes and INTO OUTFILE are refused before sending', () => {
    for (const sql of ['select 1', 'WITH 1 AS x SELECT x', 'show tables', 'DESC spans', 'explain select 1']) {
      assert.doesNotThrow(() => precheckSql(sql), sql)
    }
    assert.throws(
      () => precheckSql("INSERT INTO spans (request_id) VALUES ('x')"),
      /read-only: INSERT statements/,
    )
    assert.throws(() => precheckSql('/* select */ DROP TABLE spans'), /read-only: DROP statements/)
    assert.throws(() => precheckSql('SET readonly = 0'), /read-only: SET statements/)
    assert.throws(() => precheckSql("select 1 into outfile '/tmp/x'"), /INTO OUTFILE/)
    assert.doesNotThrow(() => precheckSql("select 'into outfile'"))
    assert.throws(() => precheckSql(' -- nothing\n ; '), /no SQL statement/)
  })
})

function captureError(f: () => unknown): Error {
  try {
    f()
  } catch (err) {
    return err as Error
  }
  throw new Error('expected an error')
}
