/**
 * The dashboard's server side against real chDB: the named queries its pages and the report read
 * (values checked against sums computed here), signing in (one-time links, the session cookie, its
 * CSRF checks), the assets, and the report's HTML and Markdown. The pages themselves run in Chromium
 * in test/integration/dashboard.browser.test.ts. chDB binds one data directory per process, so the
 * whole file shares one store.
 */
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { after, before, describe, test } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import { type ClickHouse, openClickHouse } from '../../store/client.ts'
import { migrate } from '../../store/migrations.ts'
import { alertsTable, hwSamplesTable, spansTable } from '../../store/tables.ts'
import { insertRecords } from '../../store/writer.ts'
import type { Alert, HwSample, Span } from '../../contract/records.ts'
import { STAGES } from '../../contract/vocabulary.ts'
import { makeAlert, makeHwSample, makeSpan } from '../../contract/synthetic.ts'
import { toObjects } from '../../queries/format.ts'
import { runNamedQuery } from '../../queries/runner.ts'
import { assetBytes, dashboardAssets } from '../../dashboard/assets.ts'
import { DASHBOARD_PATH, dashboardLink, dashboardPlugin } from '../../dashboard/plugin.ts'
import { gatherReport, renderHtml, renderMarkdown } from '../../dashboard/report.ts'
import { DashboardSessions, readCookie } from '../../dashboard/session.ts'
import { svgTimeChart } from '../../dashboard/svg-chart.ts'

const T0_S = 1_767_225_600 // 2026-01-01T00:00:00Z
const us = (s: number) => Math.round(s * 1e6)
const iso = (s: number) => new Date(s * 1000).toISOString()
const RANGE = { from: iso(T0_S), to: iso(T0_S + 60) }
const TOKEN = 'dashboard-test-token-0123456789'
/** every instance at 3.6 per hour: 0.001 per second of hardware samples */
const COST = {
  query: 'run-cost',
  params: { prices: JSON.stringify({ '*': { type: 'test.small', kind: 'cpu', price: 3.6 } }) },
  currency: 'USD',
}

/**
 * 60 s of traffic: mlp on two instances (10 req/s each), cnn on one (5 req/s). Between 20 s and
 * 30 s mlp on engine-0 is starved: preprocessing takes 50 ms instead of 1 ms. Every 10th cnn
 * request fails.
 */
function spans(): Span[] {
  const out: Span[] = []
  let n = 0
  const add = (t: number, model: string, instance: string, starved: boolean, failed: boolean) => {
    const i = n++
    const stages = {
      deserialize_us: 100 + (i % 7),
      preprocess_us: starved ? 50_000 + (i % 13) * 100 : 1_000 + (i % 13) * 10,
      queue_wait_us: 300 + (i % 17) * 5,
      compute_us: model === 'cnn' ? 4_000 + (i % 11) * 20 : 2_000 + (i % 11) * 10,
      postprocess_us: 50 + (i % 3),
      serialize_us: 80 + (i % 5),
    }
    const total = Object.values(stages).reduce((a, b) => a + b, 0) + 40
    out.push(
      makeSpan(i, {
        timestamp_us: us(t),
        request_id: `r-${i}`,
        trace_id: i.toString(16).padStart(32, 'a'),
        model,
        instance,
        status: failed ? 'server_error' : 'ok',
        error_class: failed ? 'InjectedFaultError' : null,
        run_id: 'test-run',
        ...stages,
        total_us: total,
      }),
    )
  }
  for (let k = 0; k < 600; k++) {
    const t = T0_S + k * 0.1
    const starvedNow = t >= T0_S + 20 && t < T0_S + 30
    add(t, 'mlp', 'engine-0', starvedNow, false)
    add(t + 0.05, 'mlp', 'engine-1', false, false)
    if (k % 2 === 0) add(t + 0.02, 'cnn', 'engine-1', false, k % 20 === 0)
  }
  return out
}

const SPANS = spans()

function hwSamples(): HwSample[] {
  const out: HwSample[] = []
  for (let s = 0; s < 60; s++) {
    const starved = s >= 20 && s < 30
    out.push(
      makeHwSample(s, {
        run_id: 'test-run',
        instance: 'engine-0',
        executor_busy: starved ? 0.1 : 0.6,
        in_flight: starved ? 40 : 3,
        cgroup_throttled_us: s * 100_000, // 0.1 s of every second throttled
        devices: [
          {
            device: 'gpu0',
            utilization: starved ? 0.1 : 0.7,
            memory_used_bytes: 2 * 1048576,
            memory_total_bytes: null,
            power_w: 100,
            temperature_c: 50,
          },
          {
            device: 'gpu1',
            utilization: null,
            memory_used_bytes: null,
            memory_total_bytes: null,
            power_w: null,
            temperature_c: null,
          },
        ],
      }),
      makeHwSample(s, { run_id: 'test-run', instance: 'engine-1', timestamp_us: us(T0_S + s + 0.5) }),
    )
  }
  return out
}

const HW = hwSamples()

const STARVED: Alert = makeAlert({
  id: 'starved-1',
  instance: 'engine-0',
  model: 'mlp',
  stage: 'preprocess',
  status: 'resolved',
  starts_at_us: us(T0_S + 21),
  ends_at_us: us(T0_S + 31),
  updated_at_us: us(T0_S + 31),
  resolve_reason: 'cleared',
  summary: 'engine-0: executor busy 10% | baseline 60% <b>bold</b>',
  exemplar_request_ids: ['r-420', 'r-423'],
  related: [
    {
      id: 'drift-1',
      type: 'latency_drift',
      stage: null,
      starts_at_us: us(T0_S + 20.9),
      summary: 'latency shifted',
    },
  ],
})

let dir = ''
let ch: ClickHouse
const rowsOf = async (name: string, params: Record<string, string>) =>
  toObjects(await runNamedQuery(ch, name, params))

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'breakid-dashboard-'))
  ch = openClickHouse({ dataDir: dir, database: 'breakid_dash' })
  await migrate(ch)
  await insertRecords(ch, spansTable, SPANS)
  await insertRecords(ch, hwSamplesTable, HW)
  await insertRecords(ch, alertsTable, [
    { ...STARVED, status: 'firing', ends_at_us: null, updated_at_us: us(T0_S + 21), resolve_reason: null },
    STARVED,
    // ended before the range, and started after it: neither is in it
    makeAlert({
      id: 'old',
      starts_at_us: us(T0_S - 600),
      ends_at_us: us(T0_S - 500),
      updated_at_us: us(T0_S - 500),
      status: 'resolved',
    }),
    makeAlert({ id: 'later', starts_at_us: us(T0_S + 120), updated_at_us: us(T0_S + 120) }),
    // started before the range and still firing: in it
    makeAlert({
      id: 'ongoing',
      type: 'memory_leak',
      instance: 'engine-1',
      starts_at_us: us(T0_S - 30),
      updated_at_us: us(T0_S - 30),
    }),
  ])
})

after(async () => {
  await ch?.close()
  await rm(dir, { recursive: true, force: true })
})

describe('named queries of the dashboard', () => {
  test('fleet-over-time: requests, rate, errors per bucket, model and instance; percentiles near exact', async () => {
    const rows = await rowsOf('fleet-over-time', { ...RANGE, step: '10' })
    assert.equal(rows.length, 6 * 3)
    for (const r of rows) {
      const b = Date.parse(`${String(r.bucket).replace(' ', 'T')}Z`) / 1000
      const inside = SPANS.filter(
        (s) =>
          s.model === r.model &&
          s.instance === r.instance &&
          s.timestamp_us >= us(b) &&
          s.timestamp_us < us(b + 10),
      )
      assert.equal(r.requests, inside.length, `${r.bucket} ${r.model}@${r.instance}`)
      assert.equal(r.requests_per_s, inside.length / 10)
      assert.equal(r.errors, inside.filter((s) => s.status !== 'ok').length)
      const totals = inside.map((s) => s.total_us / 1000).sort((a, c) => a - c)
      const exact99 = totals[Math.floor(0.99 * (totals.length - 1))]!
      // t-digest: approximate by design, bounded memory over long ranges
      assert.ok(Math.abs((r.p99_ms as number) - exact99) / exact99 < 0.1, `p99 ${r.p99_ms} vs ${exact99}`)
    }
    const starved = rows.find(
      (r) => r.model === 'mlp' && r.instance === 'engine-0' && String(r.bucket).endsWith(':20'),
    )!
    const calm = rows.find(
      (r) => r.model === 'mlp' && r.instance === 'engine-0' && String(r.bucket).endsWith(':00'),
    )!
    assert.ok((starved.p50_ms as number) > 10 * (calm.p50_ms as number), 'the starvation shows in p50')
    const only = await rowsOf('fleet-over-time', { ...RANGE, step: '60', model: 'cnn' })
    assert.deepEqual(
      only.map((r) => [r.model, r.instance, r.requests, r.errors]),
      [['cnn', 'engine-1', 300, 30]],
    )
  })

  test('stage-shares-over-time: each stage of STAGES, its time over the same requests’ total time', async () => {
    const rows = await rowsOf('stage-shares-over-time', {
      ...RANGE,
      step: '30',
      model: 'mlp',
      instance: 'engine-0',
    })
    assert.deepEqual(
      rows.map((r) => r.stage),
      [...STAGES, ...STAGES],
    )
    for (const r of rows) {
      const b = Date.parse(`${String(r.bucket).replace(' ', 'T')}Z`) / 1000
      const inside = SPANS.filter(
        (s) =>
          s.model === 'mlp' &&
          s.instance === 'engine-0' &&
          s.timestamp_us >= us(b) &&
          s.timestamp_us < us(b + 30),
      )
      const stage = r.stage as (typeof STAGES)[number]
      const share =
        inside.reduce((a, s) => a + s[`${stage}_us`], 0) / inside.reduce((a, s) => a + s.total_us, 0)
      assert.ok(Math.abs((r.share as number) - share) <= 0.00005 + 1e-12, `${r.bucket} ${r.stage}`)
    }
    const pre = rows.filter((r) => r.stage === 'preprocess').map((r) => r.share as number)
    assert.ok(pre[0]! > 0.5 && pre[1]! < 0.5, `the starved half is preprocess-bound: ${pre}`)
  })

  test('every stage list in the named queries is the contract’s STAGES', () => {
    // the SQL files must name the columns, so they spell the stages: they may not drift from contract/
    const dir = new URL('../../queries/sql/', import.meta.url)
    let lists = 0
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.sql'))) {
      const sql = readFileSync(new URL(file, dir), 'utf8')
      for (const m of sql.matchAll(/\[([^\]]*'preprocess'[^\]]*)\]/g)) {
        const names = [...m[1]!.matchAll(/'([a-z_]+)'/g)].map((x) => x[1])
        assert.deepEqual(
          names.filter((n) => n !== 'total'),
          [...STAGES],
          file,
        )
        lists++
      }
      for (const m of sql.matchAll(/\[([^\]]*preprocess_us[^\]]*)\]/g)) {
        const cols = m[1]!.split(',').map((c) => c.trim().replace(/_us$/, ''))
        assert.deepEqual(
          cols.filter((n) => n !== 'total'),
          [...STAGES],
          file,
        )
        lists++
      }
    }
    assert.ok(lists >= 4, `found ${lists} stage lists`)
  })

  test('alerts-in-range: active in the range, newest state, evidence and related symptoms', async () => {
    const rows = await rowsOf('alerts-in-range', RANGE)
    assert.deepEqual(
      rows.map((r) => r.id),
      ['ongoing', 'starved-1'],
    )
    const s = rows[1]!
    assert.equal(s.status, 'resolved')
    assert.equal(s.resolve_reason, 'cleared')
    assert.deepEqual(s.exemplar_request_ids, ['r-420', 'r-423'])
    assert.deepEqual([s.baseline, s.observed, s.threshold, s.statistic], [0.6, 0.1, 0.3, 'executor_busy'])
    assert.equal((JSON.parse(String(s.related)) as { type: string }[])[0]!.type, 'latency_drift')
    assert.deepEqual(
      (await rowsOf('alerts-in-range', { ...RANGE, status: 'firing' })).map((r) => r.id),
      ['ongoing'],
    )
    assert.deepEqual(
      (await rowsOf('alerts-in-range', { ...RANGE, type: 'accelerator_starved' })).map((r) => r.id),
      ['starved-1'],
    )
    const [one] = await rowsOf('alert', { id: 'starved-1' })
    assert.equal(one!.status, 'resolved')
    assert.equal((await rowsOf('alert', { id: "starved-1' OR 1=1 --" })).length, 0)
  })

  test('request: by request id or trace id, every stage in microseconds', async () => {
    const span = SPANS[420]!
    for (const id of [span.request_id, span.trace_id]) {
      const [r] = await rowsOf('request', { id })
      assert.equal(r!.request_id, span.request_id)
      assert.equal(r!.trace_id, span.trace_id)
      for (const stage of STAGES) assert.equal(r![`${stage}_us`], span[`${stage}_us`], stage)
      assert.equal(r!.total_us, span.total_us)
    }
    // a window that misses it finds nothing
    assert.equal(
      (await rowsOf('request', { id: span.request_id, from: iso(T0_S + 50), to: iso(T0_S + 60) })).length,
      0,
    )
  })

  test('hardware-over-time and -summary: devices that report nothing are left out, not zero', async () => {
    const rows = await rowsOf('hardware-over-time', { ...RANGE, step: '10' })
    const e0 = rows.filter((r) => r.instance === 'engine-0')
    const e1 = rows.filter((r) => r.instance === 'engine-1')
    assert.equal(e0.length, 6)
    assert.equal(e1.length, 6)
    const starved = e0.find((r) => String(r.bucket).endsWith(':20'))!
    assert.equal(starved.executor_busy, 0.1)
    assert.equal(starved.device_utilization, 0.1) // gpu1 reports nothing: not averaged in as 0
    assert.equal(starved.power_w, 100)
    assert.equal(starved.device_memory_mib, 2)
    // 9 increments of 0.1 s within one 10 s bucket
    assert.equal(starved.cpu_throttled_share, 0.09)
    for (const r of e1) {
      assert.equal(r.device_utilization, null) // a CPU-only instance: no device figures at all
      assert.equal(r.power_w, null)
    }
    const summary = await rowsOf('hardware-summary', RANGE)
    const s0 = summary.find((r) => r.instance === 'engine-0')!
    assert.equal(s0.samples, 60)
    assert.equal(s0.busy_max, 0.6)
    assert.equal(s0.in_flight_max, 40)
    assert.equal(s0.device_utilization_mean, Math.round(((50 * 0.7 + 10 * 0.1) / 60) * 1000) / 1000)
  })

  test('latest-data: the newest span, sample and alert change', async () => {
    const [r] = await rowsOf('latest-data', {})
    const last = Math.max(...SPANS.map((s) => s.timestamp_us))
    assert.equal(r!.spans_latest, new Date(last / 1000).toISOString().replace('T', ' ').replace('Z', '000'))
    assert.equal(r!.spans_rows, SPANS.length)
    assert.ok(String(r!.alerts_latest).startsWith('2026-01-01 00:02:00'))
  })
})

describe('signing in', () => {
  let app: FastifyInstance
  let sessions: DashboardSessions
  let nowMs = 1_000_000
  const base = 'http://127.0.0.1:80'

  before(async () => {
    sessions = new DashboardSessions({
      now: () => nowMs,
      loginLinkTtlMs: 60_000,
      maxLoginLinks: 3,
      maxSessions: 2,
    })
    app = Fastify()
    await app.register(dashboardPlugin, { ch, apiToken: TOKEN, sessions, source: 'test store', cost: COST })
    await app.ready()
  })
  after(() => app?.close())

  const codeOf = (link: string) => new URL(link).searchParams.get('code')!
  /** a new one-time link's path and query */
  const loginPath = () => {
    const url = new URL(dashboardLink(base, sessions, true))
    return `${url.pathname}${url.search}`
  }
  async function login(): Promise<string> {
    const res = await app.inject({ url: loginPath() })
    const cookie = String(res.headers['set-cookie']).split(';')[0]!
    return cookie
  }

  test('a login link works once: cookie HttpOnly SameSite=Strict, a redirect without the code', async () => {
    const link = dashboardLink(base, sessions, true)
    assert.match(link, /^http:\/\/127\.0\.0\.1:80\/dashboard\/login\?code=[\w-]{43}$/)
    assert.ok(!link.includes(TOKEN))
    const first = await app.inject({ url: `${DASHBOARD_PATH}/login?code=${codeOf(link)}` })
    assert.equal(first.statusCode, 303)
    assert.equal(first.headers.location, '/dashboard/')
    const setCookie = String(first.headers['set-cookie'])
    assert.match(
      setCookie,
      /^breakid_session_\d+=[\w-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/,
    )
    assert.equal(first.headers['cache-control'], 'no-store')
    const cookie = setCookie.split(';')[0]!
    const shell = await app.inject({ url: `${DASHBOARD_PATH}/`, headers: { cookie } })
    assert.equal(shell.statusCode, 200)
    assert.match(String(shell.headers['content-security-policy']), /script-src 'self'/)
    assert.equal(shell.headers['referrer-policy'], 'no-referrer')
    const again = await app.inject({ url: `${DASHBOARD_PATH}/login?code=${codeOf(link)}` })
    assert.equal(again.statusCode, 401)
    assert.equal(again.headers['set-cookie'], undefined)
    // behind a TLS-terminating proxy the cookie is Secure
    const viaTls = await app.inject({
      url: loginPath(),
      headers: { 'x-forwarded-proto': 'https' },
    })
    assert.match(String(viaTls.headers['set-cookie']), /; Secure$/)
    assert.match(again.body, /already used or has expired/)
  })

  test('a link expires; the table of links is bounded (the oldest is dropped)', async () => {
    const link = dashboardLink(base, sessions, true)
    nowMs += 60_001
    assert.equal((await app.inject({ url: `${DASHBOARD_PATH}/login?code=${codeOf(link)}` })).statusCode, 401)
    const links = [1, 2, 3, 4].map(() => dashboardLink(base, sessions, true))
    assert.equal(
      (await app.inject({ url: `${DASHBOARD_PATH}/login?code=${codeOf(links[0]!)}` })).statusCode,
      401,
    )
    assert.equal(
      (await app.inject({ url: `${DASHBOARD_PATH}/login?code=${codeOf(links[3]!)}` })).statusCode,
      303,
    )
    assert.ok(sessions.evicted.loginLinks >= 1)
  })

  test('without a session the shell sends the browser to the login page', async () => {
    const res = await app.inject({ url: `${DASHBOARD_PATH}/` })
    assert.equal(res.statusCode, 303)
    assert.equal(res.headers.location, '/dashboard/login')
    const page = await app.inject({ url: `${DASHBOARD_PATH}/login` })
    assert.equal(page.statusCode, 200)
    assert.match(page.body, /<form id="login-form">/)
  })

  test('the cookie admits the query API; POSTs only from the page’s own origin', async () => {
    const cookie = await login()
    assert.equal((await app.inject({ url: '/api/queries' })).statusCode, 401)
    assert.equal((await app.inject({ url: '/api/queries', headers: { cookie } })).statusCode, 200)
    const named = await app.inject({
      url: `/api/queries/stage-breakdown?from=${RANGE.from}&to=${RANGE.to}`,
      headers: { cookie },
    })
    assert.equal(named.statusCode, 200)
    assert.equal((JSON.parse(named.body) as unknown[]).length, 2 * (STAGES.length + 1))
    const post = (headers: Record<string, string>) =>
      app.inject({
        method: 'POST',
        url: '/api/sql',
        headers: { 'content-type': 'application/json', host: '127.0.0.1:80', ...headers },
        payload: { sql: 'SELECT count() AS n FROM spans' },
      })
    assert.equal(
      (await post({ cookie, origin: 'http://127.0.0.1:80', 'sec-fetch-site': 'same-origin' })).statusCode,
      200,
    )
    assert.equal((await post({ cookie, origin: 'http://evil.example' })).statusCode, 401)
    assert.equal((await post({ cookie, 'sec-fetch-site': 'cross-site' })).statusCode, 401)
    assert.equal((await post({})).statusCode, 401)
    assert.equal((await post({ authorization: `Bearer ${TOKEN}` })).statusCode, 200)
    // a cookie of another port's server is not this one's session
    const other = cookie.replace(/^breakid_session_\d+/, 'breakid_session_9')
    assert.equal((await app.inject({ url: '/api/queries', headers: { cookie: other } })).statusCode, 401)
    // the same SQL guards as breakid sql
    const refused = await post({
      cookie,
      'sec-fetch-site': 'same-origin',
      origin: 'http://127.0.0.1:80',
    }).then(() =>
      app.inject({
        method: 'POST',
        url: '/api/sql',
        headers: { 'content-type': 'application/json', cookie },
        payload: { sql: "SELECT * FROM file('/etc/passwd')" },
      }),
    )
    assert.equal(refused.statusCode, 400)
    assert.match(refused.body, /file\(\) is not allowed/)
  })

  test('the token form exchanges the API token for a session; forms and wrong tokens are refused', async () => {
    const send = (payload: string, type = 'application/json') =>
      app.inject({
        method: 'POST',
        url: `${DASHBOARD_PATH}/session`,
        headers: { 'content-type': type },
        payload,
      })
    assert.equal((await send(JSON.stringify({ token: 'wrong-token-wrong-token' }))).statusCode, 401)
    assert.equal((await send(`token=${TOKEN}`, 'application/x-www-form-urlencoded')).statusCode, 415)
    const ok = await send(JSON.stringify({ token: TOKEN }))
    assert.equal(ok.statusCode, 204)
    const cookie = String(ok.headers['set-cookie']).split(';')[0]!
    assert.equal((await app.inject({ url: '/api/queries', headers: { cookie } })).statusCode, 200)
    const out = await app.inject({
      method: 'POST',
      url: `${DASHBOARD_PATH}/logout`,
      headers: { cookie, 'content-type': 'application/json' },
    })
    assert.equal(out.statusCode, 204)
    assert.match(String(out.headers['set-cookie']), /Max-Age=0/)
    assert.equal((await app.inject({ url: '/api/queries', headers: { cookie } })).statusCode, 401)
  })

  test('sessions expire and are bounded', async () => {
    const a = await login()
    const b = await login()
    const c = await login()
    const status = async (cookie: string) =>
      (await app.inject({ url: '/api/queries', headers: { cookie } })).statusCode
    assert.equal(await status(a), 401, 'the oldest of three sessions is dropped (maxSessions 2)')
    assert.equal(await status(b), 200)
    nowMs += sessions.sessionTtlMs
    assert.equal(await status(c), 401)
  })

  test('a new login link needs the bearer token', async () => {
    assert.equal((await app.inject({ method: 'POST', url: `${DASHBOARD_PATH}/login-links` })).statusCode, 401)
    const res = await app.inject({
      method: 'POST',
      url: `${DASHBOARD_PATH}/login-links`,
      headers: { authorization: `Bearer ${TOKEN}` },
    })
    assert.equal(res.statusCode, 201)
    const { path } = JSON.parse(res.body) as { path: string }
    assert.equal((await app.inject({ url: path })).statusCode, 303)
  })

  test('the shell carries the contract’s vocabulary and only hashed, same-origin assets', async () => {
    const cookie = await login()
    const shell = await app.inject({ url: `${DASHBOARD_PATH}/`, headers: { cookie } })
    const boot = JSON.parse(
      /<script id="breakid-boot" type="application\/json">(.*?)<\/script>/s.exec(shell.body)![1]!,
    )
    assert.deepEqual(boot.stages, [...STAGES])
    assert.ok(boot.alertTypes.accelerator_starved)
    assert.ok(boot.queries.includes('fleet-over-time'))
    assert.deepEqual(boot.cost, COST, 'run-cost exists: the overview shows the cost')
    assert.doesNotMatch(shell.body, /https?:\/\//, 'nothing from elsewhere')
    const urls = [...shell.body.matchAll(/(?:src|href)="([^"#]+)"/g)].map((m) => m[1]!)
    assert.equal(urls.length, 5)
    for (const url of urls) {
      assert.match(url, /^\/dashboard\/assets\/[\w-]+\.[0-9a-f]{10}\.(js|css|svg)$/)
      const plain = await app.inject({ url })
      assert.equal(plain.statusCode, 200)
      assert.equal(plain.headers['cache-control'], 'public, max-age=31536000, immutable')
      const zipped = await app.inject({ url, headers: { 'accept-encoding': 'gzip, br' } })
      assert.equal(zipped.headers['content-encoding'], 'gzip')
      assert.deepEqual(gunzipSync(zipped.rawPayload), plain.rawPayload)
    }
    assert.equal((await app.inject({ url: `${DASHBOARD_PATH}/assets/app.0000000000.js` })).statusCode, 404)
    const bytes = assetBytes()
    assert.ok(bytes.gzipped < bytes.plain / 2.5, `gzip pays: ${JSON.stringify(bytes)}`)
    assert.ok(dashboardAssets().get('uplot.js')!.body.length > 40_000, 'uPlot comes from the package')
  })

  test('readCookie reads one cookie of a header', () => {
    assert.equal(readCookie('a=1; breakid_session_80=xyz; b=2', 'breakid_session_80'), 'xyz')
    assert.equal(readCookie('a=1', 'breakid_session_80'), undefined)
    assert.equal(readCookie(undefined, 'x'), undefined)
  })
})

describe('report', () => {
  const run = (name: string, params: Record<string, string>) => runNamedQuery(ch, name, params)

  test('HTML: self-contained, names the alert with its evidence, symptoms and exemplar requests', async () => {
    const data = await gatherReport(run, { ...RANGE, nowMs: (T0_S + 3600) * 1000, source: 'test store' })
    const html = renderHtml(data)
    assert.match(html, /accelerator_starved/)
    assert.match(html, /latency_drift/)
    assert.match(html, /add preprocessing workers/)
    // the summary is data: escaped, never markup
    assert.match(html, /&lt;b&gt;bold&lt;\/b&gt;/)
    assert.doesNotMatch(html, /<b>bold<\/b>/)
    // exemplars looked up with their trace ids and stage times
    assert.ok(html.includes(SPANS[420]!.trace_id))
    assert.ok(html.includes(SPANS[423]!.trace_id))
    // nothing is fetched: no script, no src, no URL in a link or style
    assert.doesNotMatch(html, /<script|\bsrc=|href="|url\(|@import/)
    assert.match(
      html,
      /<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">/,
    )
    assert.equal((html.match(/<svg /g) ?? []).length, 3)
    // the largest share of time: preprocess on mlp (the starved instance drags it up)
    assert.match(html, /largest share of request time: (preprocess|compute) on (mlp|cnn)/)
    assert.match(html, /1,500 requests/)
  })

  test('Markdown: the same sections as tables, pipes in data escaped', async () => {
    const data = await gatherReport(run, { ...RANGE, nowMs: (T0_S + 3600) * 1000 })
    const md = renderMarkdown(data)
    for (const h of [
      '## Summary',
      '## Alerts',
      '### accelerator_starved — resolved, critical',
      '## Throughput and tail latency',
      '## Top bottlenecks by stage and model',
      '## Hardware use',
    ]) {
      assert.ok(md.includes(h), h)
    }
    assert.match(md, /executor busy 10% \\\| baseline 60%/)
    const tableLines = md.split('\n').filter((l) => l.startsWith('| '))
    for (const line of tableLines) assert.ok(line.endsWith(' |'), line)
    assert.match(md, /\| mlp \| 1,200 \|/)
  })

  test('--run: the run’s first to last request; its cost from the configured prices', async () => {
    const data = await gatherReport(run, { run: 'test-run', cost: COST })
    const first = Math.min(...SPANS.map((s) => s.timestamp_us)) / 1e6
    const last = Math.max(...SPANS.map((s) => s.timestamp_us)) / 1e6
    assert.ok(Math.abs(data.fromS - first) < 1e-6)
    assert.ok(Math.abs(data.toS - (last + 1)) < 1e-6)
    const html = renderHtml(data)
    assert.match(html, /breakid report --run test-run/)
    // two instances × 60 one-second samples at 0.001 per second = 0.12; answered: 600 + 600 + 270.
    // Idle: engine-0 50 s × 0.4 + 10 s × 0.9, engine-1 60 s × 0.4 = 53 s; inside the starvation alert
    // [21 s, 31 s): 9 samples × 0.9 + 1 × 0.4 = 8.5 s
    assert.match(
      html,
      /cost 0\.08163 USD per 1,000 answered requests \(0\.12 USD in all; idle executor time 0\.053 USD, of it starved 0\.0085 USD\)/,
    )
    assert.match(renderMarkdown(data), /## Cost\n\n\| instance \| type \|/)
    await assert.rejects(gatherReport(run, { run: 'no-such-run' }), /no requests with run id "no-such-run"/)
    await assert.rejects(gatherReport(run, { run: 'test-run', from: '-1h' }), /leave out --from and --to/)
  })

  test('a range that ends before it starts is refused', async () => {
    await assert.rejects(gatherReport(run, { from: RANGE.to, to: RANGE.from }), /--to must be after --from/)
    await assert.rejects(
      gatherReport(run, { from: 'yesterday', to: 'now' }),
      /--from: "yesterday" is not a time/,
    )
  })

  test('svg charts: lines break at gaps, stacked areas, bands clipped to the range', () => {
    const svg = svgTimeChart({
      title: 't',
      xs: [0, 1, 2, 3],
      fromS: 0,
      toS: 3,
      series: [{ label: 'a', color: '#000', values: [1, null, 2, 3] }],
      bands: [{ startS: -5, endS: 1, label: 'x' }],
    })
    assert.equal((svg.match(/M/g) ?? []).length, 2, 'two runs: the gap is not bridged')
    assert.match(svg, /<rect x="56"/)
  })
})
