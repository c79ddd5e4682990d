import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { loadConfig } from '../../app/config.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { buildDetectors, resolveDetectorConfig } from '../../detectors/registry.ts'

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

test('detector settings: flags > environment > file per setting, validated with the key in the message', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'breakid-config-'))
  try {
    const file = join(dir, 'breakid.json')
    await writeFile(
      file,
      JSON.stringify({
        detectors: {
          slo_p99_breach: { sloP99Ms: 800, minSpans: 50, sloP99MsByModel: { resnet50: 300, mlp: 40 } },
          anomaly: { enabled: false },
        },
      }),
    )
    const cfg = loadConfig(
      { config: file, detectors: 'slo_p99_breach.sloP99MsByModel.resnet50=250' },
      { BREAKID_DETECTORS: 'slo_p99_breach.sloP99Ms=600,queue_growth.minGrowth=8' },
    )
    const resolved = resolveDetectorConfig(cfg.detectors)
    const slo = resolved.find((r) => r.definition.type === 'slo_p99_breach')!
    assert.equal(slo.settings.sloP99Ms, 600, 'environment over file')
    assert.equal(slo.settings.minSpans, 50, 'file over default')
    assert.deepEqual(
      slo.settings.sloP99MsByModel,
      { resnet50: 250, mlp: 40 },
      'a flag sets one model, the file the other',
    )
    assert.equal(resolved.find((r) => r.definition.type === 'queue_growth')!.settings.minGrowth, 8)
    assert.equal(resolved.find((r) => r.definition.type === 'anomaly')!.enabled, false)
    const types = buildDetectors(cfg.detectors).map((d) => d.type)
    assert.ok(!types.includes('anomaly') && types.includes('host_contention'))
    const built = buildDetectors(cfg.detectors).find((d) => d.type === 'slo_p99_breach')!
    assert.equal(built.settings?.sloP99Ms, 600, 'the detector runs with the effective setting')
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('detector settings: unknown detector, unknown setting, bad value and bad syntax name what is wrong', () => {
  const refused = (value: string, pattern: RegExp) =>
    assert.throws(
      () => loadConfig({ detectors: value }, {}),
      (err: unknown) => err instanceof InvalidInputError && pattern.test(err.message),
      value,
    )
  refused('nope.x=1', /detectors\.nope: unknown detector/)
  refused('slo_p99_breach.sloP99=1', /detectors\.slo_p99_breach\.sloP99: unknown setting/)
  refused('slo_p99_breach.sloP99Ms=abc', /detectors\.slo_p99_breach\.sloP99Ms: expected a number/)
  refused('accelerator_starved.busyCeiling=1.5', /busyCeiling: expected a number ≥ 0 and ≤ 1, got "1\.5"/)
  refused('stage_latency_regression.minSpans=2.5', /minSpans: expected a whole number/)
  refused('anomaly.enabled=maybe', /detectors\.anomaly\.enabled: expected true or false/)
  refused('slo_p99_breach', /is not type\.setting=value/)
})
