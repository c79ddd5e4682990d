import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { formatResult, toCsv, toJson, toNdjson, toTable } from '../../queries/format.ts'
import type { QueryResult } from '../../queries/runner.ts'

const result: QueryResult = {
  columns: [
    { name: 'model', type: 'LowCardinality(String)' },
    { name: 'requests', type: 'UInt64' },
    { name: 'p50_ms', type: 'Float64' },
    { name: 'note', type: 'Nullable(String)' },
  ],
  rows: [
    ['mlp', 100, 1.5, 'fast, "cached"'],
    ['resnet50', 12345, 250.125, null],
    ['cnn', 7, 0.0004, 'two\nlines'],
  ],
  truncated: false,
}

describe('table', () => {
  test('aligns columns, right-aligns numbers and lines up decimals', () => {
    assert.equal(
      toTable(result),
      [
        'model     requests   p50_ms  note',
        '--------  --------  -------  --------------',
        'mlp            100    1.500  fast, "cached"',
        'resnet50     12345  250.125  NULL',
        'cnn              7  4.00e-4  two\\nlines',
        '(3 rows)',
        '',
      ].join('\n'),
    )
  })

  test('rounds floats to the decimals the column needs, at most three', () => {
    const out = toTable({
      columns: [{ name: 'x', type: 'Float64' }],
      rows: [[2], [0.1 + 0.2], [1 / 3]],
    })
    assert.deepEqual(out.split('\n').slice(2, 5), ['2.000', '0.300', '0.333'])
    const halves = toTable({ columns: [{ name: 'x', type: 'Float64' }], rows: [[1.5], [2.25]] })
    assert.deepEqual(halves.split('\n').slice(2, 4), ['1.50', '2.25'])
  })

  test('cuts long cells, counts rows and says when truncated', () => {
    const out = toTable(
      { columns: [{ name: 's', type: 'String' }], rows: [['x'.repeat(100)]], truncated: true },
      { maxCellWidth: 10 },
    )
    assert.equal(out, `s\n----------\n${'x'.repeat(9)}…\n(1 row, truncated at 1)\n`)
  })

  test('an empty result still shows its header', () => {
    assert.equal(toTable({ columns: [{ name: 'n', type: 'UInt8' }], rows: [] }), 'n\n-\n(0 rows)\n')
  })
})

describe('csv', () => {
  test('RFC 4180: CRLF, quotes doubled, fields with comma, quote or newline quoted, NULL empty', () => {
    assert.equal(
      toCsv(result),
      'model,requests,p50_ms,note\r\n' +
        'mlp,100,1.5,"fast, ""cached"""\r\n' +
        'resnet50,12345,250.125,\r\n' +
        'cnn,7,0.0004,"two\nlines"\r\n',
    )
  })

  test('arrays and maps are JSON text', () => {
    const out = toCsv({ columns: [{ name: 'q', type: 'Array(Float64)' }], rows: [[[1, 2.5]]] })
    assert.equal(out, 'q\r\n"[1,2.5]"\r\n')
  })
})

describe('json and ndjson', () => {
  test('json is an array of objects with values unrounded', () => {
    assert.deepEqual(JSON.parse(toJson(result)), [
      { model: 'mlp', requests: 100, p50_ms: 1.5, note: 'fast, "cached"' },
      { model: 'resnet50', requests: 12345, p50_ms: 250.125, note: null },
      { model: 'cnn', requests: 7, p50_ms: 0.0004, note: 'two\nlines' },
    ])
  })

  test('ndjson is one object per line', () => {
    const lines = toNdjson(result).split('\n')
    assert.equal(lines.length, 4)
    assert.equal(lines[3], '')
    assert.deepEqual(JSON.parse(lines[1]!), {
      model: 'resnet50',
      requests: 12345,
      p50_ms: 250.125,
      note: null,
    })
  })

  test('repeated column names get a suffix instead of overwriting', () => {
    const dup = {
      columns: [
        { name: '1', type: 'UInt8' },
        { name: '1', type: 'UInt8' },
      ],
      rows: [[1, 1]],
    }
    assert.equal(formatResult(dup, 'json'), '[{"1":1,"1_2":1}]')
  })
})
