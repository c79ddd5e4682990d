/**
 * The dashboard and the report in a real browser: Debian's Chromium driven by playwright-core.
 *
 * 1. A short `breakid up` (embedded, default starvation fault, 35 s at 80 req/s, a lighter model) prints its
 *    dashboard line; Chromium opens the one-time link, the overview loads before the fault, and the
 *    starvation alert appears on its timeline while the page stays loaded (live refresh).
 * 2. `breakid report` over the run's range writes an HTML file that Chromium opens with no request
 *    beyond the file itself, naming the starvation alert.
 * 3. `breakid dashboard` over the stored run: every page shows the run's data — the stage chart has
 *    the six stages of contract/vocabulary.ts, an exemplar link opens a request's waterfall, the SQL
 *    console answers and refuses what `breakid sql` refuses — with no console error.
 *
 * Screenshots and page-load figures go to test/output/browser/ (git-ignored). Chromium missing is a
 * failure, not a skip: `.ci/run` installs it (`apt-get install -y chromium`).
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core'
import { STAGES } from '../../contract/vocabulary.ts'

const ROOT = resolve(import.meta.dirname, '../..')
const CHROMIUM = process.env.BREAKID_CHROMIUM ?? '/usr/bin/chromium'
const OUT = join(ROOT, 'test/output/browser')
// without the background-networking flags Chromium dials out at start, which a closed network refuses
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

interface Proc {
  child: ChildProcess
  lines: string[]
  waitForLine(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray>
  exited: Promise<number | null>
}

function breakid(args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(process.execPath, ['bin/breakid.mjs', ...args], {
    cwd: ROOT,
    env: { ...process.env, BREAKID_LOG_LEVEL: 'warn', KAFKA_BROKERS: '', CLICKHOUSE_URL: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const lines: string[] = []
  const waiters = new Set<() => void>()
  let pending = ''
  child.stdout!.on('data', (chunk: Buffer) => {
    pending += chunk.toString('utf8')
    const parts = pending.split('\n')
    pending = parts.pop()!
    lines.push(...parts)
    for (const w of waiters) w()
  })
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4000)
  })
  const exited = new Promise<number | null>((res) =>
    child.on('exit', (code) => {
      if (code !== 0) process.stderr.write(`breakid ${args[0]} exited ${code}: ${stderr}\n`)
      for (const w of waiters) w()
      res(code)
    }),
  )
  return {
    child,
    lines,
    exited,
    waitForLine(re, timeoutMs) {
      return new Promise((res, rej) => {
        const check = () => {
          for (const l of lines) {
            const m = re.exec(l)
            if (m) {
              waiters.delete(check)
              clearTimeout(timer)
              res(m)
              return
            }
          }
          if (child.exitCode !== null) {
            waiters.delete(check)
            clearTimeout(timer)
            rej(new Error(`breakid ${args[0]} exited ${child.exitCode} before printing ${re}: ${stderr}`))
          }
        }
        const timer = setTimeout(() => {
          waiters.delete(check)
          rej(
            new Error(`no line ${re} from breakid ${args[0]} in ${timeoutMs} ms; got:\n${lines.join('\n')}`),
          )
        }, timeoutMs)
        waiters.add(check)
        check()
      })
    },
  }
}

interface ConsoleProblem {
  phase: string
  text: string
}

/** A page that records every console error and uncaught exception, labelled with the test's phase. */
async function openPage(context: BrowserContext, problems: ConsoleProblem[], phase: { name: string }) {
  const page = await context.newPage()
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push({ phase: phase.name, text: m.text() })
  })
  page.on('pageerror', (err) => problems.push({ phase: phase.name, text: `uncaught: ${err.message}` }))
  return page
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true })

/** the uPlot legend's series labels of the chart in the panel titled `title` (first entry is time) */
async function legend(page: Page, title: string): Promise<string[]> {
  const labels = await page
    .locator('section.panel', { has: page.locator('h2', { hasText: title }) })
    .locator('.u-legend .u-series .u-label')
    .allTextContents()
  return labels.slice(1)
}

async function points(page: Page, title: string): Promise<number> {
  const panel = page.locator('section.panel', { has: page.locator('h2', { hasText: title }) })
  await panel.locator('.chart[data-points]').first().waitFor({ timeout: 20_000 })
  return Number(await panel.locator('.chart').first().getAttribute('data-points'))
}

describe('dashboard and report in Chromium', () => {
  let browser: Browser
  let dataDir = ''
  /** the data directory of the run the later tests read */
  let storeDir = ''
  /** spans the run stored, from its summary */
  let storedSpans = -1
  /** when the run served, epoch seconds: the range the docs screenshot shows */
  const run = { fromS: 0, toS: 0 }
  const problems: ConsoleProblem[] = []
  const phase = { name: 'start' }

  before(async () => {
    // fails, not skips: a CI machine without the browser must not pass this suite
    assert.ok(
      existsSync(CHROMIUM),
      `Chromium not found at ${CHROMIUM}: install Debian's chromium (apt-get install -y chromium; .ci/run does) or set BREAKID_CHROMIUM`,
    )
    mkdirSync(OUT, { recursive: true })
    dataDir = await mkdtemp(join(tmpdir(), 'breakid-browser-'))
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
  })

  after(async () => {
    await browser?.close()
    if (dataDir) await rm(dataDir, { recursive: true, force: true })
  })

  /**
   * One `breakid up` watched live. Resolves 'shown' when the starvation alert appeared on the page,
   * 'not raised' when the run ended without the detector raising it (then the page had nothing to
   * show); any other outcome fails.
   */
  async function watchUp(dir: string, attempt: number): Promise<'shown' | 'not raised'> {
    // The default fault (40 %–65 % of the run, 60 ms more per request in 4 preprocessing workers)
    // caps preprocessing at 66 req/s: 80 req/s builds a backlog before the executor (at 50 req/s it
    // sometimes did not). The demo model at half its width keeps the executor's CPU low, so a busy
    // machine is less likely to turn the run into overload (a queue *at* the executor, which is not
    // starvation). 35 s: the fault starts after the detectors' 10 s warm-up with room to spare.
    const up = breakid([
      'up',
      '--model',
      'resnet50:w=0.25,r=32',
      '--duration',
      '35s',
      '--rate',
      '80',
      '--port',
      '0',
      '--data-dir',
      dir,
    ])
    try {
      const [, link] = await up.waitForLine(
        /^dashboard: (http:\/\/127\.0\.0\.1:\d+\/dashboard\/login\?code=[\w-]+)$/,
        120_000,
      )
      run.fromS = Date.now() / 1000 - 5
      const token = readFileSync(join(dir, 'api-token'), 'utf8').trim()
      assert.ok(!link!.includes(token), 'the long-lived token is not in the link')
      const context = await browser.newContext({
        viewport: { width: 1280, height: 900 },
        colorScheme: 'dark',
      })
      const page = await openPage(context, problems, phase)
      phase.name = 'up: login'
      await page.goto(link!)
      const base = new URL(link!).origin
      assert.equal(page.url(), `${base}/dashboard/`, 'the one-time code is gone from the address bar')
      const [cookie] = await context.cookies()
      assert.equal(cookie?.name, `breakid_session_${new URL(base).port}`)
      assert.equal(cookie?.httpOnly, true)
      assert.equal(cookie?.sameSite, 'Strict')
      assert.equal(await page.evaluate(() => document.cookie), '', 'no script can read the session')
      // the link is spent: opened again (pasted somewhere, say), it signs nobody in
      const again = await context.request.get(link!, { maxRedirects: 0 })
      assert.equal(again.status(), 401)

      phase.name = 'up: live overview'
      await page.locator('#refresh').selectOption('2000')
      // the last 5 minutes in 2 s buckets: the run fills a part of them a person can see grow
      await page.locator('#range').selectOption('5m')
      const pointsAtLoad = await points(page, 'Requests per second')
      const starved = page.locator('.lanes .bar[data-alert-type="accelerator_starved"]')
      const alertAtLoad = await starved.count()
      await page.evaluate(() => {
        ;(window as unknown as { loadedOnce: boolean }).loadedOnce = true
      })
      // the alert on the page, or the run over (its dashboard closes with it)
      const shown = await Promise.race([
        starved
          .first()
          .waitFor({ timeout: 120_000 })
          // settled either way: a wait cut short by closing the page must not be an unhandled rejection
          .then(
            () => true,
            () => false,
          ),
        up.exited.then(() => false),
      ])
      if (!shown) {
        await context.close()
        const raised = up.lines.some((l) => /FIRING accelerator_starved/.test(l))
        assert.ok(!raised, 'the run raised the starvation alert but the page never showed it')
        // the detector's call on a loaded machine, not the dashboard's: say so, and let the caller retry
        process.stderr.write(
          `dashboard browser test: run ${attempt} raised no accelerator_starved (webhook lines: ${up.lines.filter((l) => l.startsWith('[webhook]')).length}); the page had nothing to show\n`,
        )
        return 'not raised'
      }
      assert.equal(
        await page.evaluate(() => (window as unknown as { loadedOnce?: boolean }).loadedOnce),
        true,
        'the alert arrived without a reload',
      )
      assert.equal(alertAtLoad, 0, 'the page was loaded before the alert fired (fault at 14 s)')
      assert.ok(
        (await points(page, 'Requests per second')) > pointsAtLoad,
        'new buckets were drawn as data arrived',
      )
      assert.ok((await points(page, 'Latency p50')) > 3)
      await shot(page, 'up-overview-live')
      await context.close()
      assert.equal(await up.exited, 0)
      run.toS = Date.now() / 1000
      const stored = up.lines.map((l) => /^spans emitted \d+, stored (\d+)/.exec(l)).find(Boolean)
      storedSpans = Number(stored?.[1])
      assert.ok(
        up.lines.some((l) => /^\s+accelerator_starved .*INSIDE the data_starvation window/.test(l)),
        up.lines.join('\n'),
      )
      return 'shown'
    } catch (err) {
      await Promise.all(browser.contexts().flatMap((c) => c.pages().map((p) => shot(p, 'up-failed'))))
      throw err
    } finally {
      if (up.child.exitCode === null) up.child.kill('SIGINT')
      await up.exited
      writeFileSync(join(OUT, `up-${attempt}.log`), `${up.lines.join('\n')}\n`)
    }
  }

  test('breakid up: the dashboard line, and the starvation alert appears live on the overview', async () => {
    // A second run only when the first one's detectors raised no starvation alert at all (seen on a
    // machine at load average 16, where CPU contention made a queue at the executor): what the page
    // shows is still checked in full, on a run that has the alert.
    for (let attempt = 1; ; attempt++) {
      storeDir = join(dataDir, `run-${attempt}`)
      const outcome = await watchUp(storeDir, attempt)
      if (outcome === 'shown') return
      assert.ok(attempt < 2, 'two runs in a row raised no starvation alert')
    }
  })

  test('breakid report over the run: one self-contained HTML file naming the starvation alert', async () => {
    const file = join(OUT, 'report.html')
    const report = breakid(['report', '--data-dir', storeDir, '--from=-15m', '--to=now', '--out', file])
    assert.equal(await report.exited, 0)
    const context = await browser.newContext({ viewport: { width: 1100, height: 900 }, colorScheme: 'light' })
    const page = await context.newPage()
    const requested: string[] = []
    page.on('request', (r) => requested.push(r.url()))
    phase.name = 'report'
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push({ phase: phase.name, text: m.text() })
    })
    await page.goto(`file://${file}`)
    assert.deepEqual(requested, [`file://${file}`], 'nothing fetched beyond the file')
    const alerts = page.locator('section.alert h3', { hasText: 'accelerator_starved' })
    assert.ok((await alerts.count()) >= 1)
    assert.match(String(await page.locator('section.alert').first().textContent()), /Suggested action:/)
    assert.equal(await page.locator('svg[role="img"]').count(), 3)
    await shot(page, 'report')
    await context.close()
    const md = breakid(['report', '--data-dir', storeDir, '--from=-15m', '--format', 'md', '--out', '-'])
    assert.equal(await md.exited, 0)
    assert.ok(
      md.lines.some((l) => l.startsWith('### accelerator_starved')),
      md.lines.join('\n'),
    )
  })

  test('breakid dashboard over the stored run: every page renders its data, no console error', async () => {
    // priced, so the overview shows what the run cost (the run-cost named query)
    const pricing = {
      instanceTypes: { 'test.cpu': { pricePerHour: 3.6, kind: 'cpu' } },
      defaultInstanceType: 'test.cpu',
    }
    const dash = breakid(['dashboard', '--port', '0', '--data-dir', storeDir], {
      BREAKID_PRICING: JSON.stringify(pricing),
    })
    try {
      const [, link] = await dash.waitForLine(/^dashboard: (http:\/\/\S+)$/, 60_000)
      const context = await browser.newContext({
        viewport: { width: 1280, height: 900 },
        colorScheme: 'dark',
      })
      const page = await openPage(context, problems, phase)
      phase.name = 'dashboard: overview'
      const started = Date.now()
      await page.goto(`${link!}#/overview?range=5m`)
      const base = page.url().replace(/#.*$/, '')
      await points(page, 'Requests per second')
      const load = await page.evaluate(() => {
        const nav = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming
        const resources = performance.getEntriesByType('resource') as PerformanceResourceTiming[]
        const assets = resources.filter((r) => r.name.includes('/dashboard/assets/'))
        return {
          domContentLoadedMs: Math.round(nav.domContentLoadedEventEnd),
          loadMs: Math.round(nav.loadEventEnd),
          firstChartMs: Math.round(performance.now()),
          htmlBytes: nav.encodedBodySize,
          assetBytesTransferred: assets.reduce((a, r) => a + r.encodedBodySize, 0),
          assetBytesDecoded: assets.reduce((a, r) => a + r.decodedBodySize, 0),
          apiRequests: resources.filter((r) => r.name.includes('/api/')).length,
        }
      })
      writeFileSync(
        join(OUT, 'page-load.json'),
        `${JSON.stringify({ ...load, wallMs: Date.now() - started }, null, 2)}\n`,
      )
      assert.ok(load.assetBytesTransferred > 0 && load.assetBytesTransferred < 150_000, JSON.stringify(load))
      await page.locator('.lanes .bar[data-alert-type="accelerator_starved"]').first().waitFor()
      const perThousand = page.locator('[data-cost="cost per 1,000 inferences"] .value')
      await perThousand.waitFor()
      assert.match(String(await perThousand.textContent()), /^[\d.,]+ USD$/)
      await shot(page, 'overview')
      // the run alone, as docs/dashboard-overview.png shows it
      await page.goto(`${base}#/overview?from=${run.fromS.toFixed(3)}&to=${run.toS.toFixed(3)}`)
      await page.locator('.lanes .bar[data-alert-type="accelerator_starved"]').first().waitFor()
      assert.ok((await points(page, 'Requests per second')) > 10)
      await shot(page, 'overview-run')

      phase.name = 'dashboard: keyboard'
      await page.keyboard.press('Tab')
      assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content')
      await page.keyboard.press('Tab')
      await page.keyboard.press('Tab')
      assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Fleet')

      phase.name = 'dashboard: stages'
      await page.goto(`${base}#/stages?range=5m`)
      assert.ok((await points(page, 'Share of request time')) > 3)
      assert.deepEqual(
        await legend(page, 'Share of request time'),
        [...STAGES],
        'the six stages, from the contract',
      )
      const tableStages = await page
        .locator('section.panel', { hasText: 'Stage table' })
        .locator('tbody tr td:nth-child(2)')
        .allTextContents()
      assert.deepEqual(tableStages, [...STAGES, 'total'])
      await shot(page, 'stages')

      phase.name = 'dashboard: hardware'
      await page.goto(`${base}#/hardware?range=5m`)
      assert.ok((await points(page, 'Executor busy fraction')) > 3)
      assert.ok((await points(page, 'Host pressure')) > 3)
      await shot(page, 'hardware')

      phase.name = 'dashboard: requests'
      await page.goto(`${base}#/requests?range=5m`)
      await page
        .locator('section.panel', { hasText: 'Slowest requests' })
        .locator('tbody tr')
        .first()
        .waitFor()
      await shot(page, 'requests')

      phase.name = 'dashboard: alerts'
      await page.goto(`${base}#/alerts?range=5m`)
      const bar = page.locator('.lanes .bar[data-alert-type="accelerator_starved"]').first()
      await bar.waitFor()
      await shot(page, 'alerts')
      // keyboard: focus the timeline bar and open it with Enter
      await bar.focus()
      await page.keyboard.press('Enter')
      await page.locator('h1', { hasText: 'accelerator_starved' }).waitFor()
      const alertText = String(await page.locator('main').textContent())
      for (const expected of [
        'Evidence',
        'executor_busy',
        'baseline',
        'observed',
        'threshold',
        'Suspected cause',
        'Suggested action',
        'Related symptoms',
        'Exemplar requests',
      ]) {
        assert.ok(alertText.includes(expected), `alert page shows ${expected}`)
      }
      await points(page, 'Latency around the alert')
      await shot(page, 'alert')

      phase.name = 'dashboard: waterfall'
      const exemplar = page.locator('[data-exemplar]').first()
      const requestId = await exemplar.getAttribute('data-exemplar')
      await exemplar.click()
      await page.locator('table.waterfall').waitFor()
      assert.deepEqual(
        await page
          .locator('table.waterfall tbody tr[data-stage]')
          .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-stage'))),
        [...STAGES],
      )
      assert.equal(await page.locator('[data-request-id]').textContent(), requestId)
      assert.match(String(await page.locator('[data-trace-id]').textContent()), /^[0-9a-f]{32}$/)
      await shot(page, 'request')

      phase.name = 'dashboard: sql'
      await page.goto(`${base}#/sql?range=5m`)
      await page.locator('#sql-text').fill('SELECT count() AS n FROM spans')
      await page.locator('#sql-text').press('Control+Enter')
      await page.locator('.sql-result[data-rows="1"]').waitFor()
      assert.equal(Number(await page.locator('.sql-result tbody td').first().textContent()), storedSpans)
      phase.name = 'dashboard: sql refused'
      await page.locator('#sql-text').fill("SELECT * FROM file('/etc/passwd')")
      await page.getByRole('button', { name: 'Run' }).click()
      await page.locator('.sql-result .error').waitFor()
      assert.match(String(await page.locator('.sql-result .error').textContent()), /file\(\) is not allowed/)
      await shot(page, 'sql')

      phase.name = 'dashboard: light theme'
      await page.goto(`${base}#/overview?range=5m`)
      await page.getByRole('button', { name: 'Light theme' }).click()
      assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'light')
      await points(page, 'Requests per second')
      await shot(page, 'overview-light')
      await context.close()
    } finally {
      dash.child.kill('SIGINT')
      assert.equal(await dash.exited, 0)
    }
    // the refused statement's 400 is the browser logging the API's answer, which the page shows
    const unexpected = problems.filter(
      (p) => !(p.phase === 'dashboard: sql refused' && /status of 400/.test(p.text)),
    )
    assert.deepEqual(unexpected, [], 'no console errors')
  })
})
