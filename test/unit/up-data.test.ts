/** `breakid up` keeps the data of earlier runs unless --fresh (the README's promise). */
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { prepareDataDir, up } from '../../bin/commands/up.ts'

test('data stays by default and with --keep-data; --fresh deletes it; a ClickHouse server is never touched', () => {
  const dataDir = join(mkdtempSync(join(tmpdir(), 'breakid-up-')), 'data')
  const earlier = join(dataDir, 'earlier-run')
  const seed = () => {
    mkdirSync(dataDir, { recursive: true })
    writeFileSync(earlier, 'x')
  }
  seed()
  prepareDataDir({ dataDir, clickhouseUrl: undefined }, { fresh: false, keepData: false })
  assert.ok(existsSync(earlier), 'kept by default')
  prepareDataDir({ dataDir, clickhouseUrl: undefined }, { fresh: false, keepData: true })
  assert.ok(existsSync(earlier), 'kept with --keep-data')
  prepareDataDir({ dataDir, clickhouseUrl: 'http://127.0.0.1:8123' }, { fresh: true, keepData: false })
  assert.ok(existsSync(earlier), 'a server run leaves the local directory alone')
  prepareDataDir({ dataDir, clickhouseUrl: undefined }, { fresh: true, keepData: false })
  assert.ok(!existsSync(earlier) && existsSync(dataDir), 'deleted and recreated with --fresh')
  seed()
  assert.throws(
    () => prepareDataDir({ dataDir, clickhouseUrl: undefined }, { fresh: true, keepData: true }),
    /--fresh deletes the data that --keep-data keeps/,
  )
  assert.ok(existsSync(earlier))
  assert.match(up.help.fresh ?? '', /delete/)
  assert.equal(up.options.fresh?.default, false)
})
