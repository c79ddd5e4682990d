import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { loadConfig } from '../../app/config.ts'
import { InvalidInputError } from '../../core/errors.ts'

test('precedence: flags > environment > config file > defaults', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'breakid-config-'))
  try {
    const file = join(dir, 'breakid.json')
    await writeFile(file, JSON.stringify({ fleet: 'from-file', instance: 'file-i', recordsPerMessage: 8 }))
    const cfg = loadConfig(
      { config: file, instance: 'flag-i' },
      { BREAKID_INSTANCE: 'env-i', BREAKID_RECORDS_PER_MESSAGE: '16' },
    )
    assert.equal(cfg.fleet, 'from-file')
    assert.equal(cfg.instance, 'flag-i')
    assert.equal(cfg.recordsPerMessage, 16)
    assert.equal(loadConfig({}, {}).recordsPerMessage, 64, 'containers of 64 by default')
    assert.equal(loadConfig({ 'records-per-message': '1' }, {}).recordsPerMessage, 1)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('bad values are refused with the key and the value in the message', () => {
  for (const bad of ['0', '-3', '2.5', 'lots', '', '10001']) {
    assert.throws(
      () => loadConfig({ 'records-per-message': bad }, {}),
      (err: unknown) => err instanceof InvalidInputError && /recordsPerMessage/.test(err.message),
      bad,
    )
  }
  assert.throws(() => loadConfig({ 'kafka-brokers': 'localhost' }, {}), /not host:port/)
  assert.throws(() => loadConfig({ 'execution-provider': 'tpu' }, {}), /not cpu or cuda/)
})

test('ops endpoints: metricsPort from flag, environment or file, a port or refused', () => {
  assert.equal(loadConfig({}, {}).metricsPort, undefined, "undefined: the command's default port")
  assert.equal(loadConfig({}, {}).metricsHost, '127.0.0.1')
  assert.equal(loadConfig({ 'metrics-port': '9500' }, {}).metricsPort, 9500)
  assert.equal(loadConfig({}, { BREAKID_METRICS_PORT: '0' }).metricsPort, 0)
  assert.equal(loadConfig({}, { BREAKID_METRICS_HOST: '0.0.0.0' }).metricsHost, '0.0.0.0')
  for (const bad of ['-1', '65536', '80.5', 'http']) {
    assert.throws(
      () => loadConfig({ 'metrics-port': bad }, {}),
      (err: unknown) => err instanceof InvalidInputError && /metricsPort/.test(err.message),
      bad,
    )
  }
})

test('retention: 7 and 90 days by default, set by flag or environment, bounded so expiry stays in DateTime', () => {
  const defaults = loadConfig({}, {})
  assert.deepEqual([defaults.spanRetentionDays, defaults.retentionDays], [7, 90])
  const set = loadConfig({ 'span-retention-days': '3' }, { BREAKID_RETENTION_DAYS: '30' })
  assert.deepEqual([set.spanRetentionDays, set.retentionDays], [3, 30])
  for (const bad of ['0', '-1', '1.5', 'week', '36500']) {
    assert.throws(
      () => loadConfig({ 'retention-days': bad }, {}),
      (err: unknown) =>
        err instanceof InvalidInputError &&
        /retentionDays: expected a whole number from 1 to 10000/.test(err.message),
      bad,
    )
  }
})
