/**
 * The one error table (core/errors.ts): every code the code base raises is in it, every code in it
 * is raised somewhere, and the HTTP answers follow from it.
 */
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { test } from 'node:test'
import { ENV_NAMES } from '../../app/config.ts'
import {
  BreakidError,
  DownstreamError,
  ERROR_CODES,
  type ErrorCode,
  errorBody,
  httpStatusOf,
  InvalidInputError,
  RecordDecodeError,
} from '../../core/errors.ts'

const ROOT = resolve(import.meta.dirname, '../..')
const PRODUCT = [
  'core',
  'contract',
  'bus',
  'store',
  'engine',
  'collect',
  'ingest',
  'detectors',
  'notify',
  'queries',
  'eval',
  'replay',
  'dashboard',
  'compare',
  'app',
  'bin',
]

function sources(dir: string): string[] {
  const out: string[] = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory() && e.name !== 'vendor' && e.name !== 'node_modules') out.push(...sources(p))
    else if (e.name.endsWith('.ts')) out.push(p)
  }
  return out
}

const code = PRODUCT.flatMap((d) => {
  try {
    return sources(join(ROOT, d))
  } catch {
    return []
  }
})
  .map((f) => readFileSync(f, 'utf8'))
  .join('\n')

test('the table: 35 codes, each with a status and a retry answer that agree', () => {
  assert.equal(Object.keys(ERROR_CODES).length, 35)
  for (const [name, spec] of Object.entries(ERROR_CODES)) {
    assert.match(name, /^BREAKID_[A-Z0-9_]+$/)
    assert.ok(spec.httpStatus >= 400 && spec.httpStatus < 600, name)
    // come back later (429, 503) is exactly what retrying can fix; a 4xx other than 429 never is
    if (spec.httpStatus === 429 || spec.httpStatus === 503) assert.equal(spec.retriable, true, name)
    if (spec.httpStatus < 500 && spec.httpStatus !== 429) assert.equal(spec.retriable, false, name)
  }
})

test('every code raised in the code base is in the table, and every code in the table is raised', () => {
  const raised = new Set([...code.matchAll(/'(BREAKID_[A-Z0-9_]+)'/g)].map((m) => m[1]!))
  // decode codes are built from the reason: BREAKID_DECODE_<REASON>
  for (const m of code.matchAll(
    /reason: RecordDecodeReason|'(not_single_object|unknown_schema|bad_writer_schema|incompatible_schema|malformed|wrong_type|truncated|out_of_range)'/g,
  )) {
    if (m[1]) raised.add(`BREAKID_DECODE_${m[1].toUpperCase()}`)
  }
  // environment variable names look the same; they are not error codes
  const unknown = [...raised].filter((c) => !(c in ERROR_CODES) && !ENV_NAMES.includes(c))
  assert.deepEqual(unknown, [], 'codes used but not in core/errors.ts ERROR_CODES')
  const unused = Object.keys(ERROR_CODES).filter((c) => !raised.has(c) && !code.includes(`'${c}'`))
  assert.deepEqual(unused, [], 'codes in the table nobody raises')
})

test('an error answers with its table entry; library errors with what fastify says; bugs with 500', () => {
  class LimitLike extends InvalidInputError {
    override readonly code = 'BREAKID_QUERY_LIMIT'
  }
  assert.equal(httpStatusOf(new InvalidInputError('x')), 400)
  assert.equal(httpStatusOf(new LimitLike('x')), 400)
  assert.equal(new LimitLike('x').retriable, false)
  assert.equal(httpStatusOf(new DownstreamError('x')), 503)
  assert.equal(new DownstreamError('x').retriable, true)
  assert.equal(httpStatusOf(new BreakidError('x', { code: 'BREAKID_QUEUE_FULL' })), 429)
  assert.equal(httpStatusOf(new RecordDecodeError('x', 'truncated')), 400)
  assert.equal(new RecordDecodeError('x', 'truncated').code, 'BREAKID_DECODE_TRUNCATED')
  assert.equal(httpStatusOf(Object.assign(new Error('body'), { statusCode: 413 })), 413)
  assert.equal(httpStatusOf(Object.assign(new Error('schema'), { validation: [] })), 400)
  assert.equal(httpStatusOf(new TypeError('bug')), 500)
  assert.equal(httpStatusOf(Object.assign(new Error('upstream'), { statusCode: 502 })), 500)
  assert.deepEqual(errorBody(new TypeError('secret internals')), {
    error: 'internal error',
    code: 'BREAKID_INTERNAL',
  })
  assert.deepEqual(errorBody(Object.assign(new Error('too big'), { statusCode: 413 })), {
    error: 'too big',
    code: 'BREAKID_BODY_TOO_LARGE',
  })
  const codes: ErrorCode[] = ['BREAKID_UNKNOWN_MODEL', 'BREAKID_UNKNOWN_QUERY']
  for (const c of codes) assert.equal(new BreakidError('x', { code: c }).httpStatus, 404)
})

test('one ClickHouse classifier: the insert and the query path read the same kind for the same code', async () => {
  const { classifyClickHouseFailure } = await import('../../store/errors.ts')
  const { classifyClickHouseError } = await import('../../store/writer.ts')
  const { toQueryError } = await import('../../queries/errors.ts')
  const server = (code: string, message = 'x') => Object.assign(new Error(message), { code })
  // bad rows: not retriable on either path
  assert.equal(classifyClickHouseFailure(server('6')).kind, 'bad_data')
  assert.equal(isRetriableKind(classifyClickHouseError(server('6'), 'spans')), false)
  assert.equal(isRetriableKind(toQueryError(server('6'), 'q')), false)
  // the server itself overloaded: retriable on both
  for (const code of ['202', '252', '999']) {
    assert.equal(classifyClickHouseFailure(server(code)).kind, 'transient', code)
    assert.equal(isRetriableKind(classifyClickHouseError(server(code), 'spans')), true, code)
    assert.equal(isRetriableKind(toQueryError(server(code), 'q')), true, code)
  }
  // a query's own memory limit is a limit; the whole server's is transient
  assert.equal(classifyClickHouseFailure(server('241', 'Memory limit (for query) exceeded')).kind, 'limit')
  assert.equal(classifyClickHouseFailure(server('241', 'Memory limit (total) exceeded')).kind, 'transient')
  // no server answer at all
  assert.equal(classifyClickHouseFailure(new Error('ECONNREFUSED')).kind, 'unreachable')
  assert.equal(isRetriableKind(classifyClickHouseError(new Error('ECONNREFUSED'), 'spans')), true)
})

function isRetriableKind(err: Error): boolean {
  return err instanceof BreakidError && err.retriable
}
