/**
 * The bodies a route can choose (json v2 with its published JSON Schema, Slack, Alertmanager v4), how
 * a route names its format, and routes from a config file.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { loadConfig } from '../../app/config.ts'
import { webhookRoutes } from '../../app/pipeline.ts'
import { EmbeddedBus } from '../../bus/embedded-bus.ts'
import type { Alert } from '../../contract/records.ts'
import { makeAlert } from '../../contract/synthetic.ts'
import { codecs, TOPICS } from '../../contract/topics.ts'
import { RESOLVE_REASONS } from '../../contract/vocabulary.ts'
import {
  type AlertmanagerBody,
  alertFromJsonBody,
  alertmanagerBody,
  GO_ZERO_TIME,
  jsonBody,
  labelsFingerprint,
  renderBody,
  rfc3339Micros,
  type SlackBody,
} from '../../notify/bodies.ts'
import { NOTIFY_GROUP } from '../../notify/notifier.ts'
import type { ReceiverOptions } from '../../notify/receiver.ts'
import { stopAfterEach, testNotifier, testReceiver } from '../helpers/cleanups.ts'
import { parseRouteConfig, resolveRoutes, splitFormatPrefix } from '../../notify/routes.ts'
import { validate } from '../helpers/json-schema.ts'

const SCHEMA = JSON.parse(
  readFileSync(new URL('../../notify/alert-body.schema.json', import.meta.url), 'utf8'),
) as Record<string, unknown>
const T0 = 1_767_225_600_123_456 // µs, with sub-millisecond digits

const related = [
  {
    id: 'sym-1',
    type: 'stage_latency_regression',
    stage: 'preprocess',
    starts_at_us: T0 + 1_000_000,
    summary: 'preprocess p99 5x baseline',
  },
  {
    id: 'sym-2',
    type: 'latency_drift',
    stage: null,
    starts_at_us: T0 + 2_000_000,
    summary: 'latency drifted',
  },
]

const variants: [string, Alert][] = [
  ['firing with a stage', makeAlert({ starts_at_us: T0, updated_at_us: T0 })],
  [
    'resolved, with reason and end',
    makeAlert({
      status: 'resolved',
      starts_at_us: T0,
      ends_at_us: T0 + 60_000_000,
      updated_at_us: T0 + 60_000_000,
      resolve_reason: 'cleared',
    }),
  ],
  ['no stage, no exemplars, a run id', makeAlert({ stage: null, exemplar_request_ids: [], run_id: 'run-7' })],
  ['with related symptoms', makeAlert({ related })],
  ['a v1 record (no v2 fields)', (({ run_id, resolve_reason, related, ...v1 }) => v1 as Alert)(makeAlert())],
]

const cleanups = stopAfterEach()
const receiver = (opts: ReceiverOptions = {}) => testReceiver(cleanups, opts)

describe('json body v2 and its JSON Schema', () => {
  for (const [name, alert] of variants) {
    test(`validates and reads back: ${name}`, () => {
      const group = { key: 'g', firing_instances: ['engine-0', 'engine-1'], first_started_at_us: T0 }
      for (const body of [jsonBody(alert), jsonBody(alert, { group })]) {
        const wire = JSON.parse(JSON.stringify(body))
        assert.deepEqual(validate(SCHEMA, wire), [])
        const back = alertFromJsonBody(wire)!
        assert.deepEqual(back, { run_id: null, resolve_reason: null, related: [], ...alert })
      }
    })
  }

  test('evidence is one object, not flat fields; times are exact in µs and readable in ISO', () => {
    const body = jsonBody(makeAlert({ starts_at_us: T0, related }))
    assert.deepEqual(body.alert.evidence, {
      statistic: 'executor_busy',
      observed: 0.1,
      baseline: 0.6,
      threshold: 0.3,
      exemplar_request_ids: ['req-1', 'it\'s "quoted"'],
      related: related.map((r) => ({
        ...r,
        starts_at: new Date(Math.floor(r.starts_at_us / 1000)).toISOString(),
      })),
    })
    for (const flat of [
      'statistic',
      'observed',
      'baseline',
      'threshold',
      'exemplar_request_ids',
      'related',
    ]) {
      assert.ok(!(flat in body.alert), `${flat} lives in evidence only`)
    }
    assert.equal(body.alert.starts_at, '2026-01-01T00:00:00.123Z')
    assert.equal(body.alert.starts_at_us, T0)
  })

  test('a value with no JSON form is null, and still valid', () => {
    const wire = JSON.parse(
      renderBody(makeAlert({ observed: Number.NaN, baseline: Number.POSITIVE_INFINITY }), 'json'),
    )
    assert.equal(wire.alert.evidence.observed, null)
    assert.equal(wire.alert.evidence.baseline, null)
    assert.deepEqual(validate(SCHEMA, wire), [])
    assert.ok(Number.isNaN(alertFromJsonBody(wire)!.observed))
  })

  test('the validator fails what the schema forbids (so the checks above can fail)', () => {
    const good = JSON.parse(JSON.stringify(jsonBody(makeAlert())))
    const broken = (mutate: (b: typeof good) => void) => {
      const b = structuredClone(good)
      mutate(b)
      return validate(SCHEMA, b)
    }
    assert.deepEqual(
      broken((b) => delete b.alert.evidence),
      ['/alert: missing evidence'],
    )
    assert.deepEqual(
      broken((b) => (b.alert.statistic = 'x')),
      ['/alert: unexpected property statistic'],
    )
    assert.match(broken((b) => (b.alert.severity = 'page'))[0]!, /severity: "page" is not one of/)
    assert.match(broken((b) => (b.alert.starts_at = '2026-01-01 00:00'))[0]!, /starts_at: does not match/)
    assert.match(broken((b) => (b.alert.ends_at = 5))[0]!, /ends_at: matches none of anyOf/)
    assert.match(broken((b) => (b.alert.evidence.exemplar_request_ids = [1]))[0]!, /exemplar_request_ids\/0/)
    assert.match(broken((b) => (b.version = 1))[0]!, /version: expected 2/)
    assert.ok(broken((b) => (b.alert.starts_at_us = -1)).length > 0)
    // the version 1 body of earlier releases is not a version 2 body
    const v1 = { version: 1, alert: { ...makeAlert(), starts_at: '2026-01-01T00:00:00.000Z', ends_at: null } }
    assert.ok(validate(SCHEMA, v1).length > 3)
    assert.equal(alertFromJsonBody(v1), null)
    assert.throws(() => validate({ type: 'object', propertyNames: {} }, {}), /not supported/)
  })

  test('the schema names every field the notifier sends and the contract vocabularies', () => {
    const defs = SCHEMA.$defs as Record<
      string,
      { required: string[]; properties: Record<string, { enum?: unknown[] }> }
    >
    const body = jsonBody(makeAlert({ related }))
    assert.deepEqual([...defs.alert!.required].sort(), Object.keys(body.alert).sort())
    assert.deepEqual([...defs.evidence!.required].sort(), Object.keys(body.alert.evidence).sort())
    assert.deepEqual(defs.alert!.properties.resolve_reason!.enum, [...Object.keys(RESOLVE_REASONS), null])
    assert.deepEqual(defs.alert!.properties.severity!.enum, ['info', 'warning', 'critical'])
  })
})

describe('alertmanager body (webhook_config payload, version 4)', () => {
  test('label-set fingerprints match prometheus/common (its own test vectors)', () => {
    const hex = (n: bigint) => n.toString(16).padStart(16, '0')
    assert.equal(labelsFingerprint({}), hex(14695981039346656037n))
    assert.equal(
      labelsFingerprint({ name: 'garland, briggs', fear: 'love is not enough' }),
      hex(5799056148416392346n),
    )
    assert.equal(labelsFingerprint({ 'first-label': 'first-label-value' }), hex(5146282821936882169n))
    assert.equal(
      labelsFingerprint({ 'first-label': 'first-label-value', 'second-label': 'second-label-value' }),
      hex(3195800080984914717n),
    )
    assert.equal(
      labelsFingerprint({
        'first-label': 'first-label-value',
        'second-label': 'second-label-value',
        'third-label': 'third-label-value',
      }),
      hex(13843036195897128121n),
    )
  })

  test('firing: the fields Alertmanager sends, one alert, Go zero endsAt, string annotations', () => {
    const group = { key: 'g', firing_instances: ['engine-0', 'engine-3'], first_started_at_us: T0 }
    const alert = makeAlert({ starts_at_us: T0, fleet: 'eu-1', related })
    const body = alertmanagerBody(alert, {
      group,
      receiver: 'oncall',
      externalUrl: 'https://breakid.example/',
    })
    // exactly Alertmanager's Message: template.Data plus version, groupKey, truncatedAlerts
    assert.deepEqual(Object.keys(body).sort(), [
      'alerts',
      'commonAnnotations',
      'commonLabels',
      'externalURL',
      'groupKey',
      'groupLabels',
      'receiver',
      'status',
      'truncatedAlerts',
      'version',
    ])
    assert.equal(body.version, '4')
    assert.equal(body.status, 'firing')
    assert.equal(body.receiver, 'oncall')
    assert.equal(body.truncatedAlerts, 0)
    assert.equal(body.groupKey, '{}:{alertname="accelerator_starved", fleet="eu-1", stage="preprocess"}')
    assert.deepEqual(body.groupLabels, {
      alertname: 'accelerator_starved',
      fleet: 'eu-1',
      stage: 'preprocess',
    })
    assert.equal(body.externalURL, 'https://breakid.example')
    assert.equal(body.alerts.length, 1)
    const a = body.alerts[0]!
    assert.deepEqual(Object.keys(a).sort(), [
      'annotations',
      'endsAt',
      'fingerprint',
      'generatorURL',
      'labels',
      'startsAt',
      'status',
    ])
    assert.deepEqual(a.labels, {
      alertname: 'accelerator_starved',
      severity: 'critical',
      fleet: 'eu-1',
      instance: 'engine-0',
      model: 'mlp',
      stage: 'preprocess',
    })
    assert.deepEqual(body.commonLabels, a.labels)
    assert.deepEqual(body.commonAnnotations, a.annotations)
    for (const v of Object.values(a.annotations)) assert.equal(typeof v, 'string')
    assert.equal(a.annotations.summary, alert.summary)
    assert.equal(a.annotations.description, alert.suspected_cause)
    assert.equal(a.annotations.breakid_alert_id, alert.id)
    assert.equal(a.annotations.observed, '0.1')
    assert.equal(a.annotations.firing_instances, 'engine-0,engine-3')
    assert.equal(
      a.annotations.related,
      'stage_latency_regression/preprocess: preprocess p99 5x baseline\nlatency_drift: latency drifted',
    )
    assert.equal(a.startsAt, '2026-01-01T00:00:00.123456Z')
    assert.equal(a.endsAt, GO_ZERO_TIME)
    assert.equal(a.generatorURL, `https://breakid.example/alerts/${alert.id}`)
    assert.equal(a.fingerprint, labelsFingerprint(a.labels))
    assert.match(a.fingerprint, /^[0-9a-f]{16}$/)
  })

  test('resolved: endsAt set, the same fingerprint as its firing; no stage, no stage label', () => {
    const firing = makeAlert({ stage: null, starts_at_us: T0 })
    const resolved = {
      ...firing,
      status: 'resolved' as const,
      ends_at_us: T0 + 1_500_000,
      resolve_reason: 'stale' as const,
    }
    const f = alertmanagerBody(firing)
    const r = alertmanagerBody(resolved)
    assert.equal(r.status, 'resolved')
    assert.equal(r.alerts[0]!.endsAt, rfc3339Micros(T0 + 1_500_000))
    assert.equal(r.alerts[0]!.endsAt, '2026-01-01T00:00:01.623456Z')
    assert.equal(r.alerts[0]!.annotations.resolve_reason, 'stale')
    assert.equal(r.alerts[0]!.fingerprint, f.alerts[0]!.fingerprint)
    assert.ok(!('stage' in r.alerts[0]!.labels))
    assert.equal(r.groupKey, '{}:{alertname="accelerator_starved", fleet="test"}')
    assert.equal(r.externalURL, '')
    assert.equal(r.alerts[0]!.generatorURL, '')
  })
})

describe('route formats', () => {
  test('<format>+<url> picks the body; a plain URL is json; contradictions and unknown prefixes fail', () => {
    assert.deepEqual(splitFormatPrefix('alertmanager+https://x/hook'), {
      format: 'alertmanager',
      url: 'https://x/hook',
    })
    assert.deepEqual(splitFormatPrefix('SLACK+https://hooks.slack.com/a'), {
      format: 'slack',
      url: 'https://hooks.slack.com/a',
    })
    assert.deepEqual(splitFormatPrefix('https://x/'), { format: undefined, url: 'https://x/' })
    assert.throws(
      () => splitFormatPrefix('teams+https://x/'),
      /not a format \(json\+, slack\+, alertmanager\+\)/,
    )
    const [r] = resolveRoutes([{ url: 'alertmanager+http://127.0.0.1:1/h' }])
    assert.equal(r!.format, 'alertmanager')
    assert.equal(r!.url, 'http://127.0.0.1:1/h')
    assert.throws(() => resolveRoutes([{ url: 'slack+http://a/', format: 'json' }]), /contradicts/)
    assert.throws(() => resolveRoutes([{ url: 'http://a/', queueCapacity: 0 }]), /queueCapacity/)
    assert.throws(() => resolveRoutes([{ url: 'http://a/', retry: { maxAttempts: 1.5 } }]), /whole number/)
  })

  test('each route gets its own body over HTTP: json, slack and alertmanager side by side', async () => {
    const [json, slack, am] = await Promise.all([receiver(), receiver(), receiver()])
    const bus = new EmbeddedBus({ retryDelayMs: 10 })
    const n = testNotifier(cleanups, bus, [
      { name: 'json', url: json.url },
      { name: 'slack', url: `slack+${slack.url}` },
      { name: 'oncall', url: `alertmanager+${am.url}`, externalUrl: 'http://breakid.local:8080' },
    ])
    await n.start()
    const alert = makeAlert({ id: 'x-1' })
    await bus.producer().send(TOPICS.alerts, [{ key: null, value: codecs.alert.encode(alert) }])
    await bus.drained(TOPICS.alerts, NOTIFY_GROUP)
    assert.deepEqual(json.alerts[0]!.alert, { ...alert })
    assert.deepEqual(validate(SCHEMA, json.alerts[0]!.body), [])
    assert.match((slack.alerts[0]!.body as SlackBody).text, /^\[CRITICAL\] FIRING accelerator_starved/)
    const body = am.alerts[0]!.body as AlertmanagerBody
    assert.equal(body.version, '4')
    assert.equal(body.receiver, 'oncall')
    assert.equal(body.alerts[0]!.generatorURL, 'http://breakid.local:8080/alerts/x-1')
    assert.equal(am.alerts[0]!.idempotencyKey, 'x-1:firing')
  })
})

describe('routes from the config file', () => {
  const write = (obj: unknown): string => {
    const file = join(mkdtempSync(join(tmpdir(), 'breakid-cfg-')), 'config.json')
    writeFileSync(file, JSON.stringify(obj))
    return file
  }

  test('webhookRoutes: url, secret, format, filters, timeouts and retry per route; flags and env add theirs', () => {
    const config = write({
      webhookSecret: 'shared',
      webhookRoutes: [
        {
          name: 'oncall',
          url: 'https://oncall.example/hook',
          format: 'alertmanager',
          minSeverity: 'critical',
          timeoutMs: 2000,
          queueCapacity: 50,
          retry: { maxAttempts: 5, giveUpAfterMs: null, maxDelayMs: 10_000 },
          externalUrl: 'https://breakid.example',
        },
        {
          name: 'chat',
          url: 'slack+https://hooks.slack.com/services/T/B/X',
          secret: 'own',
          types: ['memory_leak'],
        },
      ],
    })
    const cfg = loadConfig({ config }, { BREAKID_WEBHOOK_URLS: 'alertmanager+https://am.example/x' })
    const routes = webhookRoutes(cfg)
    assert.equal(routes.length, 3)
    const resolved = resolveRoutes(routes)
    assert.deepEqual(
      resolved.map((r) => [r.name, r.format, r.secret, r.url]),
      [
        ['route-0', 'alertmanager', 'shared', 'https://am.example/x'],
        ['oncall', 'alertmanager', 'shared', 'https://oncall.example/hook'],
        ['chat', 'slack', 'own', 'https://hooks.slack.com/services/T/B/X'],
      ],
    )
    const oncall = resolved[1]!
    assert.equal(oncall.timeoutMs, 2000)
    assert.equal(oncall.queueCapacity, 50)
    assert.equal(oncall.minRank, 2)
    assert.deepEqual(oncall.retry, {
      initialDelayMs: 500,
      maxDelayMs: 10_000,
      maxRetryAfterMs: 300_000,
      maxAttempts: 5,
      giveUpAfterMs: Number.POSITIVE_INFINITY,
    })
    assert.deepEqual([...resolved[2]!.types!], ['memory_leak'])
  })

  test('a bad route in the file is a clear error at load', () => {
    const bad: [unknown, RegExp][] = [
      [{ url: 'https://x/', fromat: 'slack' }, /webhookRoutes\[0\]: unknown key "fromat"/],
      [{ url: 'https://x/', format: 'teams' }, /format: "teams" is not one of json, slack, alertmanager/],
      [{ secret: 's' }, /url is required/],
      [{ url: 'ftp://x/' }, /http\(s\)/],
      [{ url: 'https://x/', retry: { maxAttemps: 3 } }, /retry: unknown key "maxAttemps"/],
      [{ url: 'https://x/', timeoutMs: '5s' }, /timeoutMs: expected a number/],
      [{ url: 'https://x/', types: 'memory_leak' }, /types: expected a list/],
      [{ url: 'https://x/', minSeverity: 'high' }, /minSeverity/],
    ]
    for (const [route, message] of bad) {
      assert.throws(() => loadConfig({ config: write({ webhookRoutes: [route] }) }, {}), message)
    }
    assert.throws(() => loadConfig({ config: write({ webhookRoutes: {} }) }, {}), /expected a list of routes/)
    assert.throws(() => loadConfig({ 'webhook-url': 'teams+https://x/' }, {}), /not a format/)
    assert.throws(() => parseRouteConfig([], 'r'), /expected an object/)
  })
})
