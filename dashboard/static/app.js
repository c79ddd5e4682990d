// breakid dashboard: one script, no build step, no framework. Every number on a page comes from a
// named query of the server (GET /api/queries/<name>) or, in the SQL console, from POST /api/sql; the
// session cookie authenticates both. Stage names and alert types come from the server's boot data
// (contract/vocabulary.ts), never from a list written here. Elements are built with textContent, never
// innerHTML, so nothing the data holds can become markup.

/* global uPlot */

const API = '/api'

// ----------------------------------------------------------------------------------------------
// small helpers

/** element builder: h('a', { href: '#', class: 'x', onclick }, 'text', child, [children]) */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v)
    else if (k === 'class') el.className = v
    else if (k === 'style') Object.assign(el.style, v)
    else el.setAttribute(k, v === true ? '' : String(v))
  }
  append(el, children)
  return el
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue
    el.append(c instanceof Node ? c : document.createTextNode(String(c)))
  }
  return el
}

/** a form control with its label (the control has an id) */
function labelled(text, control) {
  return [h('label', { for: control.id }, text), control]
}

function clear(el) {
  while (el.firstChild) el.firstChild.remove()
  return el
}

/** replaces an element's children (null and false are left out) */
function fill(el, ...children) {
  return append(clear(el), children)
}

/**
 * A colour variable as the canvas needs it: the variables hold light-dark() pairs, which only a
 * colour property resolves (to the side of the current scheme).
 */
function cssVar(name) {
  const probe = document.body.appendChild(document.createElement('i'))
  probe.style.color = `var(${name})`
  const colour = getComputedStyle(probe).color
  probe.remove()
  return colour
}

/** ClickHouse `YYYY-MM-DD hh:mm:ss[.ffffff]` (UTC) → epoch seconds with the fraction */
function epochS(text) {
  if (text === null || text === undefined) return null
  const m = /^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:\.(\d+))?/.exec(String(text))
  if (!m) return null
  const whole = Date.parse(`${m[1]}T${m[2]}Z`) / 1000
  return m[3] ? whole + Number(`0.${m[3]}`) : whole
}

const pad2 = (n) => String(n).padStart(2, '0')
function fmtTime(s) {
  const d = new Date(s * 1000)
  return `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}`
}
function fmtDateTime(s) {
  if (s === null || s === undefined) return '–'
  return `${new Date(s * 1000).toISOString().slice(0, 19).replace('T', ' ')} UTC`
}
function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '–'
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`
  if (seconds < 120) return `${seconds.toFixed(1)} s`
  if (seconds < 7200) return `${(seconds / 60).toFixed(1)} min`
  return `${(seconds / 3600).toFixed(1)} h`
}
function fmtNum(v, digits = 3) {
  if (v === null || v === undefined || v === '') return '–'
  const n = Number(v)
  if (!Number.isFinite(n)) return String(v)
  const a = Math.abs(n)
  if (a !== 0 && (a >= 1e6 || a < 10 ** -digits)) return n.toExponential(2)
  return n.toLocaleString('en-US', { maximumFractionDigits: a >= 100 ? 0 : a >= 10 ? 1 : digits })
}
const fmtMs = (v) => (v === null || v === undefined ? '–' : `${fmtNum(v, 3)} ms`)
/** a fraction as a percentage; tiny non-zero shares read "<0.1 %" rather than in exponent form */
function fmtPct(v) {
  if (v === null || v === undefined) return '–'
  const pct = Number(v) * 100
  if (pct > 0 && pct < 0.1) return '<0.1 %'
  return `${pct.toLocaleString('en-US', { maximumFractionDigits: 1 })} %`
}
/** axis labels: short, no unit (the chart's title has it) */
function fmtAxis(v) {
  const a = Math.abs(v)
  if (a >= 1e6) return `${fmtNum(v / 1e6)}M`
  if (a >= 1e4) return `${fmtNum(v / 1e3)}k`
  return fmtNum(v)
}

// ----------------------------------------------------------------------------------------------
// login page

if (document.body.dataset.view === 'login') {
  const form = document.getElementById('login-form')
  const error = document.getElementById('login-error')
  document.documentElement.dataset.theme = localStorage.getItem('breakid-theme') ?? ''
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    error.hidden = true
    const token = document.getElementById('token').value.trim()
    const res = await fetch('/dashboard/session', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    }).catch((err) => ({ ok: false, status: 0, json: async () => ({ error: err.message }) }))
    if (res.ok) {
      location.replace(`/dashboard/${location.hash}`)
      return
    }
    const body = await res.json().catch(() => ({}))
    error.textContent = body.error ?? `sign-in failed (HTTP ${res.status})`
    error.hidden = false
  })
} else {
  startApp()
}

// ----------------------------------------------------------------------------------------------
// the app

function startApp() {
  const boot = JSON.parse(document.getElementById('breakid-boot').textContent)
  const STAGES = boot.stages
  const ALERT_TYPES = boot.alertTypes
  const RANGES = [
    ['5m', 300],
    ['15m', 900],
    ['1h', 3600],
    ['6h', 21_600],
    ['24h', 86_400],
    ['7d', 604_800],
  ]
  const REFRESH = [
    ['2s', 2000],
    ['5s', 5000],
    ['15s', 15_000],
    ['off', 0],
  ]
  const NICE_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21_600, 43_200, 86_400]
  const PALETTE = boot.palette
  const STAGE_COLOR = boot.stageColors
  const MAX_SERIES = 8

  const state = {
    refreshMs: Number(localStorage.getItem('breakid-refresh') ?? 5000),
    page: undefined,
    generation: 0,
    lastWatermark: '',
    latest: undefined,
    aborter: new AbortController(),
  }

  applyTheme(localStorage.getItem('breakid-theme') ?? '')

  // ----- routing: #/<page>[/<arg>]?range=15m | from=<epoch s>&to=<epoch s> & filters

  function route() {
    const [path, qs] = location.hash.replace(/^#\/?/, '').split('?')
    const [page, ...rest] = (path ?? '').split('/')
    return {
      page: page || 'overview',
      arg: rest.length ? decodeURIComponent(rest.join('/')) : undefined,
      params: new URLSearchParams(qs ?? ''),
    }
  }

  function href(page, arg, params) {
    const p = new URLSearchParams(params ?? rangeParams())
    const qs = p.toString()
    return `#/${page}${arg !== undefined ? `/${encodeURIComponent(arg)}` : ''}${qs ? `?${qs}` : ''}`
  }

  /** the range part of the current address, carried from page to page */
  function rangeParams() {
    const p = route().params
    const out = new URLSearchParams()
    for (const k of ['range', 'from', 'to']) if (p.has(k)) out.set(k, p.get(k))
    return out
  }

  function setParams(changes) {
    const r = route()
    for (const [k, v] of Object.entries(changes)) {
      if (v === undefined || v === null || v === '') r.params.delete(k)
      else r.params.set(k, v)
    }
    location.hash = href(r.page, r.arg, r.params)
  }

  /** the time range in epoch seconds; relative ranges end now */
  function currentRange() {
    const p = route().params
    const from = Number(p.get('from'))
    const to = Number(p.get('to'))
    if (p.has('from') && p.has('to') && Number.isFinite(from) && Number.isFinite(to) && to > from) {
      return { fromS: from, toS: to, relative: false }
    }
    const seconds = RANGES.find(([k]) => k === p.get('range'))?.[1] ?? 900
    const toS = Date.now() / 1000
    return { fromS: toS - seconds, toS, relative: true }
  }

  function stepFor(range) {
    const want = (range.toS - range.fromS) / 150
    return NICE_STEPS.find((s) => s >= want) ?? 86_400
  }

  // ----- the query API

  class ApiError extends Error {
    constructor(message, status) {
      super(message)
      this.status = status
    }
  }

  async function call(path, init) {
    let res
    try {
      res = await fetch(`${API}${path}`, { ...init, signal: state.aborter.signal })
    } catch (err) {
      if (err.name === 'AbortError') throw err
      throw new ApiError(`the server did not answer (${err.message})`, 0)
    }
    const body = await res.json().catch(() => ({}))
    if (res.status === 401) {
      showSignedOut()
      throw new ApiError('signed out', 401)
    }
    if (!res.ok) throw new ApiError(body.error ?? `HTTP ${res.status}`, res.status)
    return body
  }

  /** a named query's rows as objects */
  async function query(name, params = {}) {
    const qs = new URLSearchParams({ format: 'result' })
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) qs.set(k, String(v))
    const result = await call(`/queries/${encodeURIComponent(name)}?${qs}`)
    return result.rows.map((row) => Object.fromEntries(result.columns.map((c, i) => [c.name, row[i]])))
  }

  async function sql(statement, limitRows) {
    return call('/sql?format=result', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sql: statement, limitRows }),
    })
  }

  const timeParams = (range) => ({ from: range.fromS.toFixed(3), to: range.toS.toFixed(3) })

  // ----- theme

  function applyTheme(theme) {
    if (theme) document.documentElement.dataset.theme = theme
    else delete document.documentElement.dataset.theme
  }
  function currentTheme() {
    const set = document.documentElement.dataset.theme
    if (set) return set
    return matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light'
  }

  // ----- the frame: header, navigation, range, live refresh

  const PAGES = [
    ['overview', 'Fleet'],
    ['stages', 'Stages'],
    ['alerts', 'Alerts'],
    ['requests', 'Requests'],
    ['hardware', 'Hardware'],
    ['sql', 'SQL'],
  ]
  const app = clear(document.getElementById('app'))
  const navList = h('ul')
  const rangeSelect = h(
    'select',
    { id: 'range', onchange: () => setParams({ range: rangeSelect.value, from: '', to: '' }) },
    RANGES.map(([k]) => h('option', { value: k }, `last ${k}`)),
    h('option', { value: 'custom', disabled: true }, 'custom'),
  )
  const refreshSelect = h(
    'select',
    {
      id: 'refresh',
      onchange: () => {
        state.refreshMs = Number(refreshSelect.value)
        localStorage.setItem('breakid-refresh', String(state.refreshMs))
        schedule()
      },
    },
    REFRESH.map(([k, ms]) => h('option', { value: String(ms), selected: ms === state.refreshMs }, k)),
  )
  const statusLine = h('span', { class: 'status-line', role: 'status' })
  const themeButton = h('button', {
    type: 'button',
    onclick: () => {
      const next = currentTheme() === 'dark' ? 'light' : 'dark'
      localStorage.setItem('breakid-theme', next)
      applyTheme(next)
      themeButton.textContent = themeLabel()
      render()
    },
  })
  const themeLabel = () => (currentTheme() === 'dark' ? 'Light theme' : 'Dark theme')
  themeButton.textContent = themeLabel()
  const signOut = boot.guarded
    ? h(
        'button',
        {
          type: 'button',
          onclick: async () => {
            await fetch('/dashboard/logout', {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
            })
            location.replace('/dashboard/login')
          },
        },
        'Sign out',
      )
    : null
  const main = h('main', { id: 'main', tabindex: '-1' })
  app.append(
    h(
      'header',
      { class: 'top' },
      h('a', { class: 'brand', href: '#/overview' }, 'breakid'),
      h('nav', { 'aria-label': 'Pages' }, navList),
      h(
        'div',
        { class: 'controls' },
        labelled('Range', rangeSelect),
        labelled('Live', refreshSelect),
        statusLine,
        themeButton,
        signOut,
      ),
    ),
    main,
  )

  function renderNav(page) {
    clear(navList)
    for (const [id, label] of PAGES) {
      const current =
        id === page || (id === 'alerts' && page === 'alert') || (id === 'requests' && page === 'request')
      navList.append(
        h('li', {}, h('a', { href: href(id), 'aria-current': current ? 'page' : undefined }, label)),
      )
    }
    const p = route().params
    rangeSelect.value = p.has('from') && p.has('to') ? 'custom' : (p.get('range') ?? '15m')
  }

  function setStatus(text, lost = false) {
    statusLine.textContent = text
    statusLine.classList.toggle('lost', lost)
  }

  function showSignedOut() {
    setStatus('signed out', true)
    const box = main.querySelector('.signed-out')
    if (box) return
    main.prepend(
      h(
        'p',
        { class: 'error signed-out', role: 'alert' },
        'Your session ended. ',
        h('a', { href: '/dashboard/login' }, 'Sign in again'),
        '.',
      ),
    )
  }

  // ----- pages

  const pages = {
    overview,
    stages,
    alerts,
    alert: alertPage,
    requests,
    request: requestPage,
    hardware,
    sql: sqlPage,
  }

  async function render() {
    state.aborter.abort()
    state.aborter = new AbortController()
    state.page?.destroy?.()
    const r = route()
    renderNav(r.page)
    clear(main)
    const make = pages[r.page]
    if (!make) {
      main.append(h('p', { class: 'error' }, `No page "${r.page}".`))
      return
    }
    const generation = ++state.generation
    state.page = make(main, r)
    document.title = `breakid — ${main.querySelector('h1')?.textContent ?? r.page}`
    await refreshPage(generation)
  }

  async function refreshPage(generation = state.generation) {
    const page = state.page
    if (!page?.refresh) return
    // a refresh rebuilds tables and lanes: keep the keyboard focus on the same link or control
    const active = document.activeElement
    const focusKey =
      active && active !== main && main.contains(active) ? (active.getAttribute('href') ?? active.id) : null
    try {
      await page.refresh()
      if (focusKey && !main.contains(active)) {
        const again = [...main.querySelectorAll('[href], [id]')].find(
          (e) => e.getAttribute('href') === focusKey || e.id === focusKey,
        )
        again?.focus()
      }
      if (generation === state.generation) setStatus(`updated ${fmtTime(Date.now() / 1000)} UTC`)
    } catch (err) {
      if (err.name === 'AbortError' || generation !== state.generation) return
      if (err.status !== 401) setStatus(`not updated: ${err.message}`, true)
      page.showError?.(err)
    }
  }

  // live: poll when data last arrived; refresh the page only when something new came in
  let timer
  function schedule() {
    clearTimeout(timer)
    if (state.refreshMs > 0) timer = setTimeout(tick, state.refreshMs)
  }
  async function tick() {
    try {
      if (document.visibilityState === 'visible' && state.page?.live) {
        const [latest] = await query('latest-data')
        state.latest = latest
        const mark = JSON.stringify(latest)
        if (mark !== state.lastWatermark) {
          state.lastWatermark = mark
          await refreshPage()
        }
      }
    } catch (err) {
      if (err.name !== 'AbortError' && err.status !== 401) setStatus(`connection lost: ${err.message}`, true)
    }
    schedule()
  }

  window.addEventListener('hashchange', () => {
    state.lastWatermark = ''
    render()
  })
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') schedule()
  })

  // ----- charts (uPlot)

  /** translucent bands where alerts were active, drawn under the series */
  function alertBands(getAlerts) {
    return {
      hooks: {
        drawClear: [
          (u) => {
            const { ctx, bbox } = u
            for (const a of getAlerts()) {
              const x0 = u.valToPos(Math.max(a.startS, u.scales.x.min), 'x', true)
              const x1 = u.valToPos(Math.min(a.endS ?? u.scales.x.max, u.scales.x.max), 'x', true)
              if (!(x1 >= x0)) continue
              ctx.fillStyle = cssVar(a.status === 'firing' ? '--band-firing' : '--band-resolved')
              ctx.fillRect(x0, bbox.top, Math.max(x1 - x0, 2), bbox.height)
            }
          },
        ],
      },
    }
  }

  /**
   * A time-series chart: `series` [{label, color, dash}], values formatted with `fmt`. With
   * `stacked`, values are drawn cumulatively (filled between neighbours) while the legend shows each
   * series' own value. Dragging across it zooms the whole page to that range.
   */
  function chart(container, { label, series, fmt = fmtNum, height = 220, stacked = false, yMax }) {
    const axisFmt = fmt === fmtPct ? fmtPct : fmtAxis
    const wrap = h('div', { class: 'chart', role: 'img', 'aria-label': label })
    container.append(wrap)
    let range = currentRange()
    let alertsShown = []
    let raw = []
    const fg = cssVar('--muted')
    const grid = cssVar('--grid')
    const opts = {
      width: Math.max(wrap.clientWidth, 300),
      height,
      padding: [8, 16, 0, 0],
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
      scales: {
        x: { time: true, range: () => [range.fromS, range.toS] },
        y: {
          range: (_u, _min, max) => [0, yMax ?? (max > 0 ? max * 1.08 : 1)],
        },
      },
      axes: [
        { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
        {
          stroke: fg,
          size: 64,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid },
          values: (_u, vals) => vals.map((v) => axisFmt(v)),
        },
      ],
      series: [
        { label: 'time (UTC)', value: (_u, v) => (v === null || v === undefined ? '–' : fmtTime(v)) },
        ...series.map((s, i) => ({
          label: s.label,
          stroke: s.color,
          width: 1.5,
          dash: s.dash,
          fill: stacked ? `${s.color}cc` : undefined,
          points: { show: false },
          spanGaps: false,
          value: (_u, v, _si, idx) => {
            const shown = stacked ? raw[i]?.[idx] : v
            return shown === null || shown === undefined ? '–' : fmt(shown)
          },
        })),
      ],
      bands: stacked
        ? series.slice(1).map((s, i) => ({ series: [i + 2, i + 1], fill: `${s.color}cc` }))
        : undefined,
      cursor: { drag: { x: true, y: false, setScale: false } },
      legend: { live: true },
      hooks: {
        setSelect: [
          (u) => {
            if (u.select.width < 4) return
            const a = u.posToVal(u.select.left, 'x')
            const b = u.posToVal(u.select.left + u.select.width, 'x')
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false)
            setParams({ range: '', from: a.toFixed(3), to: b.toFixed(3) })
          },
        ],
      },
      plugins: [alertBands(() => alertsShown)],
    }
    if (stacked) {
      // bands fill between series i and i-1; the first series fills down to zero
      opts.series[1].fill = `${series[0].color}cc`
      for (let i = 2; i < opts.series.length; i++) opts.series[i].fill = undefined
    }
    const u = new uPlot(opts, [[], ...series.map(() => [])], wrap)
    const resize = new ResizeObserver(() => {
      const w = Math.max(wrap.clientWidth, 300)
      if (Math.abs(w - u.width) > 2) u.setSize({ width: w, height })
    })
    resize.observe(wrap)
    return {
      setData(xs, ys, newRange, alerts) {
        range = newRange
        alertsShown = alerts ?? []
        raw = ys
        let data = ys
        if (stacked) {
          const acc = xs.map(() => 0)
          data = ys.map((col) =>
            col.map((v, i) => {
              if (v === null || v === undefined) return null
              acc[i] += v
              return acc[i]
            }),
          )
        }
        u.setData([xs, ...data], true)
        wrap.dataset.points = String(xs.length)
      },
      destroy() {
        resize.disconnect()
        u.destroy()
      },
      u,
    }
  }

  /** long rows → one array per key, aligned on the sorted buckets */
  function pivot(rows, keyOf, valueFn, xOf = (r) => epochS(r.bucket)) {
    const xs = [...new Set(rows.map(xOf))].sort((a, b) => a - b)
    const index = new Map(xs.map((x, i) => [x, i]))
    const byKey = new Map()
    for (const r of rows) {
      const k = keyOf(r)
      if (!byKey.has(k))
        byKey.set(
          k,
          xs.map(() => null),
        )
      byKey.get(k)[index.get(xOf(r))] = valueFn(r)
    }
    return { xs, byKey }
  }

  /** alerts as bands/lanes: numbers for the axis, latest state */
  function alertSpans(rows) {
    return rows.map((a) => ({
      ...a,
      startS: epochS(a.starts_at),
      endS: a.ends_at ? epochS(a.ends_at) : null,
    }))
  }

  /** a time axis of `ticks` labels over [fromS, toS], as wide as the lanes above it */
  function axis(range, ticks = 6) {
    const el = h('div', { class: 'axis', 'aria-hidden': 'true' })
    for (let i = 0; i <= ticks; i++) {
      const t = range.fromS + ((range.toS - range.fromS) * i) / ticks
      el.append(h('span', { style: { left: `${(i / ticks) * 100}%` } }, fmtTime(t)))
    }
    return el
  }

  /**
   * Alert lanes on the charts' time axis: one lane per `laneOf(alert)`, each alert a bar linking to
   * its page (keyboard: Tab moves through them, Enter opens one).
   */
  function lanes(alertsList, range, { laneOf = (a) => a.type, labelled = false } = {}) {
    const box = h('div', {
      class: `lanes${labelled ? ' labelled' : ''}`,
      role: 'list',
      'aria-label': 'Alerts on the time axis',
    })
    const span = range.toS - range.fromS
    const keys = [...new Set(alertsList.map(laneOf))].sort()
    if (keys.length === 0) {
      box.append(
        h(
          'div',
          { class: 'lane muted', role: 'listitem' },
          h('span', { class: 'lane-label' }, 'alerts'),
          ' no alerts in this range',
        ),
      )
    }
    for (const key of keys) {
      const lane = h(
        'div',
        { class: 'lane', role: 'listitem' },
        h('span', { class: 'lane-label', title: key }, key),
      )
      for (const a of alertsList.filter((x) => laneOf(x) === key)) {
        const start = Math.max(a.startS, range.fromS)
        const end = Math.min(a.endS ?? range.toS, range.toS)
        if (end < range.fromS || start > range.toS) continue
        const left = ((start - range.fromS) / span) * 100
        const width = Math.max(((end - start) / span) * 100, 0.4)
        const what = `${a.type} on ${a.instance}/${a.model}${a.stage ? `, stage ${a.stage}` : ''}: ${a.status}, from ${fmtDateTime(a.startS)}${a.endS ? ` to ${fmtDateTime(a.endS)}` : ''}`
        lane.append(
          h(
            'a',
            {
              class: `bar ${a.status}${a.endS ? '' : ' open'}`,
              href: href('alert', a.id),
              title: `${what}\n${a.summary}`,
              'aria-label': what,
              'data-alert-type': a.type,
              style: { left: `${left}%`, width: `${width}%` },
            },
            // the label runs right from the bar's start, or left from its end near the right edge
            h('span', { class: `bar-label${left > 55 ? ' from-end' : ''}` }, a.type),
          ),
        )
      }
      box.append(lane)
    }
    box.append(axis(range))
    return box
  }

  function table(columns, rows, { caption, rowClass } = {}) {
    return h(
      'div',
      { class: 'table-scroll' },
      h(
        'table',
        {},
        caption ? h('caption', {}, caption) : null,
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            columns.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : undefined }, c.label)),
          ),
        ),
        h(
          'tbody',
          {},
          rows.map((r) =>
            h(
              'tr',
              { class: rowClass?.(r) },
              columns.map((c) =>
                h('td', { class: c.num ? 'num' : undefined }, c.cell ? c.cell(r) : fmtNum(r[c.key])),
              ),
            ),
          ),
        ),
      ),
    )
  }

  function panel(title, ...children) {
    return h('section', { class: 'panel' }, h('h2', {}, title), ...children)
  }

  function pageHead(title, sub) {
    return h('div', { class: 'page-head' }, h('h1', {}, title), sub ? h('span', { class: 'sub' }, sub) : null)
  }

  /** a place for this page's error messages, cleared on success */
  function errorSlot(container) {
    const slot = h('div', { 'aria-live': 'polite' })
    container.append(slot)
    return {
      show(err) {
        fill(slot, h('p', { class: 'error', role: 'alert' }, err.message))
      },
      clear() {
        clear(slot)
      },
    }
  }

  /** when the range holds nothing: say when data last arrived and offer that range */
  function emptyHint(slot, range) {
    clear(slot)
    const latest = state.latest
    const last = latest ? epochS(latest.spans_latest) : null
    const first = latest ? epochS(latest.spans_earliest) : null
    if (!last || last <= 0) {
      slot.append(h('p', { class: 'notice' }, 'No requests stored yet. Pages fill in as data arrives.'))
      return
    }
    if (last >= range.fromS && first <= range.toS) return
    const pad = Math.max((last - first) * 0.05, 5)
    slot.append(
      h(
        'p',
        { class: 'notice' },
        `No requests in this range. Data spans ${fmtDateTime(first)} to ${fmtDateTime(last)}. `,
        h(
          'a',
          {
            href: href(route().page, route().arg, {
              from: (first - pad).toFixed(3),
              to: (last + pad).toFixed(3),
            }),
          },
          'Show that range',
        ),
        '.',
      ),
    )
  }

  async function ensureLatest() {
    if (!state.latest) [state.latest] = await query('latest-data')
    return state.latest
  }

  /** a select over `values` that filters the page by URL parameter `param` (id `f-<param>`) */
  function filterSelect(param, values) {
    const current = route().params.get(param) ?? ''
    const select = h(
      'select',
      { id: `f-${param}`, onchange: () => setParams({ [param]: select.value }) },
      h('option', { value: '' }, `every ${param}`),
      [...new Set([...values, current].filter(Boolean))]
        .sort()
        .map((v) => h('option', { value: v, selected: v === current }, v)),
    )
    return labelled(param, select)
  }

  // ----- fleet overview

  function overview(container) {
    const params = route().params
    const model = params.get('model') ?? ''
    const instance = params.get('instance') ?? ''
    container.append(pageHead('Fleet overview', boot.source))
    const filters = h('div', { class: 'filters' })
    const hint = h('div')
    const errors = errorSlot(container)
    const tiles = h('div', { class: 'tiles', 'aria-label': 'Totals over the range' })
    const grid = h('div', { class: 'grid' })
    container.append(filters, hint, tiles, grid)
    const rpsPanel = panel('Requests per second')
    const errPanel = panel('Error rate')
    const latPanel = panel('Latency p50 / p95 / p99 (ms)')
    latPanel.classList.add('wide')
    const alertPanel = panel('Alerts')
    alertPanel.classList.add('wide')
    grid.append(rpsPanel, errPanel, latPanel, alertPanel)
    const alertBox = h('div')
    alertPanel.append(alertBox)
    let charts = []
    let seriesKey = ''

    function build(keys) {
      for (const c of charts) c.destroy()
      for (const p of [rpsPanel, errPanel, latPanel]) while (p.childNodes.length > 1) p.lastChild.remove()
      const colors = keys.map((_, i) => PALETTE[i % PALETTE.length])
      charts = [
        chart(rpsPanel, {
          label: 'Requests per second by model and instance',
          series: keys.map((k, i) => ({ label: k, color: colors[i] })),
        }),
        chart(errPanel, {
          label: 'Error rate by model and instance',
          series: keys.map((k, i) => ({ label: k, color: colors[i] })),
          fmt: fmtPct,
        }),
        chart(latPanel, {
          label: 'Latency percentiles by model and instance, milliseconds',
          height: 260,
          fmt: (v) => fmtMs(v),
          series: keys.flatMap((k, i) => [
            { label: `${k} p50`, color: colors[i], dash: [2, 3] },
            { label: `${k} p95`, color: colors[i], dash: [8, 4] },
            { label: `${k} p99`, color: colors[i] },
          ]),
        }),
      ]
    }

    return {
      live: true,
      showError: (err) => errors.show(err),
      destroy: () => {
        for (const c of charts) c.destroy()
      },
      async refresh() {
        const range = currentRange()
        const step = stepFor(range)
        const [rows, alertRows, cost] = await Promise.all([
          query('fleet-over-time', { ...timeParams(range), step, model, instance }),
          query('alerts-in-range', { ...timeParams(range), instance }),
          boot.cost
            ? query(boot.cost.query, { ...timeParams(range), ...boot.cost.params }).catch(() => null)
            : null,
          ensureLatest(),
        ])
        errors.clear()
        emptyHint(hint, range)
        const alertsList = alertSpans(alertRows)
        // the busiest series first; at most MAX_SERIES keep the charts readable
        const load = new Map()
        for (const r of rows)
          load.set(`${r.model}@${r.instance}`, (load.get(`${r.model}@${r.instance}`) ?? 0) + r.requests)
        const keys = [...load.keys()]
          .sort((a, b) => load.get(b) - load.get(a))
          .slice(0, MAX_SERIES)
          .sort()
        if (keys.join('|') !== seriesKey || charts.length === 0) {
          seriesKey = keys.join('|')
          build(keys)
        }
        fill(
          filters,
          ...filterSelect(
            'model',
            rows.map((r) => r.model),
          ),
          ...filterSelect(
            'instance',
            rows.map((r) => r.instance),
          ),
          load.size > MAX_SERIES
            ? h(
                'span',
                { class: 'muted' },
                `showing the ${MAX_SERIES} busiest of ${load.size} model/instance pairs`,
              )
            : null,
        )
        const keyOf = (r) => `${r.model}@${r.instance}`
        const rps = pivot(rows, keyOf, (r) => r.requests_per_s)
        const err = pivot(rows, keyOf, (r) => r.error_rate)
        const p50 = pivot(rows, keyOf, (r) => r.p50_ms)
        const p95 = pivot(rows, keyOf, (r) => r.p95_ms)
        const p99 = pivot(rows, keyOf, (r) => r.p99_ms)
        const col = (pv, k) => pv.byKey.get(k) ?? pv.xs.map(() => null)
        charts[0].setData(
          rps.xs,
          keys.map((k) => col(rps, k)),
          range,
          alertsList,
        )
        charts[1].setData(
          err.xs,
          keys.map((k) => col(err, k)),
          range,
          alertsList,
        )
        charts[2].setData(
          p50.xs,
          keys.flatMap((k) => [col(p50, k), col(p95, k), col(p99, k)]),
          range,
          alertsList,
        )

        const requests = rows.reduce((a, r) => a + r.requests, 0)
        const errorsCount = rows.reduce((a, r) => a + r.errors, 0)
        const worstP99 = rows.reduce((a, r) => Math.max(a, r.p99_ms ?? 0), 0)
        const perBucket = new Map()
        for (const r of rows) perBucket.set(r.bucket, (perBucket.get(r.bucket) ?? 0) + r.requests_per_s)
        const peakRps = Math.max(0, ...perBucket.values())
        const firing = alertsList.filter((a) => a.status === 'firing').length
        const tile = (label, value) =>
          h(
            'div',
            { class: 'tile' },
            h('div', { class: 'label' }, label),
            h('div', { class: 'value' }, value),
          )
        fill(
          tiles,
          tile('requests', fmtNum(requests)),
          tile(`peak requests/s (${step} s buckets)`, fmtNum(peakRps)),
          tile('error rate', requests ? fmtPct(errorsCount / requests) : '–'),
          tile(`worst p99 (${step} s buckets)`, requests ? fmtMs(worstP99) : '–'),
          tile('alerts firing now', String(firing)),
          tile('alerts in range', String(alertsList.length)),
          ...(cost ? costTiles(cost) : []),
        )
        fill(alertBox, lanes(alertsList, range))
      },
    }
  }

  /** the run-cost rows as tiles: cost per 1,000 answered requests, and what starved executor time cost */
  function costTiles(rows) {
    const sum = (k) => rows.reduce((a, r) => a + (Number(r[k]) || 0), 0)
    const ok = sum('ok')
    const money = (v) => `${fmtNum(v, 4)} ${boot.cost.currency}`
    const tile = (label, value) =>
      h(
        'div',
        { class: 'tile', 'data-cost': label },
        h('div', { class: 'label' }, label),
        h('div', { class: 'value' }, value),
      )
    return [
      tile('cost per 1,000 inferences', ok > 0 ? money((sum('cost') / ok) * 1000) : '–'),
      tile('starved executor time cost', money(sum('starved_cost'))),
    ]
  }

  // ----- stage breakdown

  function stages(container) {
    const params = route().params
    const model = params.get('model') ?? ''
    container.append(pageHead('Stage breakdown', 'where the time of a request goes'))
    const filters = h('div', { class: 'filters' })
    const hint = h('div')
    const errors = errorSlot(container)
    const grid = h('div', { class: 'grid' })
    container.append(filters, hint, grid)
    const sharePanel = panel('Share of request time by stage (stacked)')
    sharePanel.classList.add('wide')
    const meanPanel = panel('Mean time per stage (ms)')
    meanPanel.classList.add('wide')
    const tablePanel = panel('Stage table')
    tablePanel.classList.add('wide')
    grid.append(sharePanel, meanPanel, tablePanel)
    const stageSeries = STAGES.map((s) => ({ label: s, color: STAGE_COLOR[s] }))
    const shares = chart(sharePanel, {
      label: `Stacked share of request time by stage: ${STAGES.join(', ')}`,
      series: stageSeries,
      stacked: true,
      fmt: fmtPct,
      height: 260,
      yMax: 1,
    })
    sharePanel.querySelector('.chart').dataset.stages = STAGES.join(',')
    const means = chart(meanPanel, { label: 'Mean milliseconds per stage', series: stageSeries, fmt: fmtMs })
    const tableBox = h('div')
    tablePanel.append(tableBox)
    return {
      live: true,
      showError: (err) => errors.show(err),
      destroy: () => {
        shares.destroy()
        means.destroy()
      },
      async refresh() {
        const range = currentRange()
        const step = stepFor(range)
        const [rows, breakdown, alertRows] = await Promise.all([
          query('stage-shares-over-time', { ...timeParams(range), step, model }),
          query('stage-breakdown', { ...timeParams(range), model }),
          query('alerts-in-range', timeParams(range)),
          ensureLatest(),
        ])
        errors.clear()
        emptyHint(hint, range)
        const alertsList = alertSpans(alertRows)
        const share = pivot(
          rows,
          (r) => r.stage,
          (r) => r.share,
        )
        const mean = pivot(
          rows,
          (r) => r.stage,
          (r) => r.mean_ms,
        )
        shares.setData(
          share.xs,
          STAGES.map((s) => share.byKey.get(s) ?? share.xs.map(() => null)),
          range,
          alertsList,
        )
        means.setData(
          mean.xs,
          STAGES.map((s) => mean.byKey.get(s) ?? mean.xs.map(() => null)),
          range,
          alertsList,
        )
        fill(
          filters,
          ...filterSelect(
            'model',
            breakdown.map((r) => r.model),
          ),
        )
        const top = new Map()
        for (const r of breakdown) {
          if (r.stage === 'total') continue
          if (!top.has(r.model) || r.share_of_total > top.get(r.model).share_of_total) top.set(r.model, r)
        }
        fill(
          tableBox,
          breakdown.length === 0
            ? h('p', { class: 'muted' }, 'No requests in this range.')
            : table(
                [
                  { label: 'model', cell: (r) => r.model },
                  {
                    label: 'stage',
                    cell: (r) => [
                      r.stage !== 'total'
                        ? h('span', { class: 'swatch', style: { background: STAGE_COLOR[r.stage] } })
                        : null,
                      r.stage,
                    ],
                  },
                  { label: 'requests', key: 'requests', num: true },
                  { label: 'p50', cell: (r) => fmtMs(r.p50_ms), num: true },
                  { label: 'p95', cell: (r) => fmtMs(r.p95_ms), num: true },
                  { label: 'p99', cell: (r) => fmtMs(r.p99_ms), num: true },
                  { label: 'mean', cell: (r) => fmtMs(r.mean_ms), num: true },
                  {
                    label: 'share of total',
                    cell: (r) => [
                      fmtPct(r.share_of_total),
                      h('span', {
                        class: 'sharebar',
                        style: { width: `${Math.round(Math.min(r.share_of_total, 1) * 80)}px` },
                      }),
                    ],
                  },
                ],
                breakdown,
                {
                  caption: `Per model and stage, ${fmtDateTime(range.fromS)} to ${fmtDateTime(range.toS)}; the largest stage of each model in bold`,
                  rowClass: (r) => (top.get(r.model) === r ? 'top-stage' : undefined),
                },
              ),
        )
      },
    }
  }

  // ----- alerts

  function alerts(container) {
    const params = route().params
    const status = params.get('status') ?? ''
    const type = params.get('type') ?? ''
    container.append(pageHead('Alerts', 'firing and resolved, with their evidence'))
    const statusSelect = h(
      'select',
      { id: 'f-status', onchange: () => setParams({ status: statusSelect.value }) },
      ['', 'firing', 'resolved'].map((s) =>
        h('option', { value: s, selected: s === status }, s || 'any state'),
      ),
    )
    const typeSelect = h(
      'select',
      { id: 'f-type', onchange: () => setParams({ type: typeSelect.value }) },
      h('option', { value: '' }, 'every type'),
      Object.keys(ALERT_TYPES).map((t) => h('option', { value: t, selected: t === type }, t)),
    )
    container.append(
      h('div', { class: 'filters' }, labelled('state', statusSelect), labelled('type', typeSelect)),
    )
    const errors = errorSlot(container)
    const timelinePanel = panel('Timeline')
    const listPanel = panel('Alerts in range')
    const timelineBox = h('div')
    const listBox = h('div')
    timelinePanel.append(timelineBox)
    listPanel.append(listBox)
    container.append(h('div', { class: 'grid' }, timelinePanel, listPanel))
    timelinePanel.classList.add('wide')
    listPanel.classList.add('wide')
    return {
      live: true,
      showError: (err) => errors.show(err),
      async refresh() {
        const range = currentRange()
        const rows = alertSpans(await query('alerts-in-range', { ...timeParams(range), status, type }))
        errors.clear()
        fill(timelineBox, lanes(rows, range, { laneOf: (a) => `${a.type} · ${a.instance}`, labelled: true }))
        fill(
          listBox,
          rows.length === 0
            ? h('p', { class: 'muted' }, 'No alerts in this range.')
            : table(
                [
                  { label: 'state', cell: (a) => h('span', { class: `badge ${a.status}` }, a.status) },
                  { label: 'type', cell: (a) => h('a', { href: href('alert', a.id) }, a.type) },
                  { label: 'severity', cell: (a) => h('span', { class: `badge ${a.severity}` }, a.severity) },
                  { label: 'instance / model', cell: (a) => `${a.instance} / ${a.model}` },
                  { label: 'stage', cell: (a) => a.stage ?? '–' },
                  { label: 'started', cell: (a) => fmtDateTime(a.startS) },
                  {
                    label: 'lasted',
                    cell: (a) =>
                      a.endS
                        ? fmtDuration(a.endS - a.startS)
                        : `${fmtDuration(Date.now() / 1000 - a.startS)}, firing`,
                  },
                  { label: 'summary', cell: (a) => a.summary },
                ],
                [...rows].reverse(),
                { caption: 'Newest first' },
              ),
        )
      },
    }
  }

  function alertPage(container, r) {
    const id = r.arg ?? ''
    const errors = errorSlot(container)
    const body = h('div')
    container.append(body)
    let context
    const page = {
      live: true,
      showError: (err) => errors.show(err),
      destroy: () => context?.destroy(),
      async refresh() {
        const [a] = alertSpans(await query('alert', { id }))
        // while it fires its state can change; once resolved it is final and the page stays still
        page.live = a?.status === 'firing'
        errors.clear()
        context?.destroy()
        context = undefined
        clear(body)
        if (!a) {
          body.append(pageHead('Alert'), h('p', { class: 'notice' }, `No alert with id ${id}.`))
          return
        }
        const end = a.endS ?? Date.now() / 1000
        const lasted = end - a.startS
        const around = {
          fromS: a.startS - Math.max(lasted, 60),
          toS: end + Math.max(lasted / 2, 30),
          relative: false,
        }
        let related = []
        try {
          related = JSON.parse(a.related || '[]')
        } catch {
          related = []
        }
        body.append(
          pageHead(a.type, ALERT_TYPES[a.type] ?? ''),
          h(
            'p',
            {},
            h('span', { class: `badge ${a.status}` }, a.status),
            ' ',
            h('span', { class: `badge ${a.severity}` }, a.severity),
            ' ',
            a.summary,
          ),
        )
        const facts = h(
          'dl',
          { class: 'facts' },
          ...[
            ['instance', a.instance],
            ['model', a.model],
            ['fleet', a.fleet],
            ['started', fmtDateTime(a.startS)],
            [
              'ended',
              a.endS
                ? `${fmtDateTime(a.endS)}${a.resolve_reason ? ` (${a.resolve_reason})` : ''}`
                : 'still firing',
            ],
            ['lasted', fmtDuration(lasted)],
            ['alert id', h('code', {}, a.id)],
            a.run_id ? ['run', h('code', {}, a.run_id)] : null,
          ]
            .filter(Boolean)
            .flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]),
        )
        const scale = Math.max(a.baseline, a.observed, a.threshold, 1e-12) * 1.1
        const evRow = (label, value, cls) =>
          h(
            'div',
            { class: 'ev-row' },
            h('span', {}, label),
            h(
              'div',
              { class: 'ev-track', 'aria-hidden': 'true' },
              h('div', {
                class: `ev-fill ${cls}`,
                style: { width: `${(Math.max(value, 0) / scale) * 100}%` },
              }),
              h('div', {
                class: 'ev-threshold',
                style: { left: `${(a.threshold / scale) * 100}%` },
                title: `threshold ${fmtNum(a.threshold)}`,
              }),
            ),
            h('span', { class: 'num' }, fmtNum(value)),
          )
        const evidence = panel(
          'Evidence',
          table(
            [
              { label: 'statistic', cell: (x) => h('code', {}, x.statistic) },
              { label: 'baseline', key: 'baseline', num: true },
              { label: 'observed', key: 'observed', num: true },
              { label: 'threshold', key: 'threshold', num: true },
            ],
            [a],
          ),
          h(
            'div',
            { class: 'evidence-bars' },
            evRow('baseline', a.baseline, 'baseline'),
            evRow('observed', a.observed, 'observed'),
          ),
          h('p', { class: 'muted' }, 'The vertical line is the threshold.'),
        )
        const cause = panel(
          'Suspected cause',
          h(
            'p',
            {},
            'Stage: ',
            a.stage
              ? h(
                  'a',
                  {
                    href: href('stages', undefined, {
                      from: around.fromS.toFixed(3),
                      to: around.toS.toFixed(3),
                    }),
                  },
                  a.stage,
                )
              : '–',
          ),
          h('p', {}, a.suspected_cause || '–'),
          h('h3', {}, 'Suggested action'),
          h('p', { class: 'callout' }, a.suggested_action || '–'),
        )
        const relatedPanel = panel(
          'Related symptoms',
          related.length === 0
            ? h('p', { class: 'muted' }, 'None: no other detector raised a symptom of this break.')
            : table(
                [
                  { label: 'type', cell: (x) => x.type },
                  { label: 'stage', cell: (x) => x.stage ?? '–' },
                  { label: 'started', cell: (x) => fmtDateTime(x.starts_at_us / 1e6) },
                  { label: 'summary', cell: (x) => x.summary },
                ],
                related,
                { caption: 'Inhibited while this alert fired; delivered with it' },
              ),
        )
        const win = { from: (a.startS - 300).toFixed(3), to: (end + 300).toFixed(3) }
        const exemplars = panel(
          'Exemplar requests',
          a.exemplar_request_ids.length === 0
            ? h('p', { class: 'muted' }, 'None recorded.')
            : h(
                'ul',
                { class: 'exemplars' },
                a.exemplar_request_ids.map((rid) =>
                  h('li', {}, h('a', { href: href('request', rid, win), 'data-exemplar': rid }, rid)),
                ),
              ),
        )
        const ctxPanel = panel(`Latency around the alert (ms): ${a.instance} / ${a.model}`)
        ctxPanel.classList.add('wide')
        body.append(
          h(
            'div',
            { class: 'grid' },
            panel('Where and when', facts),
            evidence,
            cause,
            relatedPanel,
            exemplars,
            ctxPanel,
          ),
        )
        context = chart(ctxPanel, {
          label: `p99 latency of ${a.model} on ${a.instance} around the alert`,
          series: [
            { label: 'p99', color: PALETTE[0] },
            { label: 'p50', color: PALETTE[1], dash: [2, 3] },
          ],
          fmt: fmtMs,
        })
        const step = stepFor(around)
        const rows = await query('fleet-over-time', {
          ...timeParams(around),
          step,
          model: a.model,
          instance: a.instance,
        })
        const xs = rows.map((x) => epochS(x.bucket))
        context.setData(xs, [rows.map((x) => x.p99_ms), rows.map((x) => x.p50_ms)], around, [a])
      },
    }
    return page
  }

  // ----- requests

  function requests(container) {
    container.append(pageHead('Requests', 'the slowest in the range; open one for its stages'))
    const input = h('input', {
      id: 'request-id',
      type: 'search',
      placeholder: 'request id or trace id',
      size: 40,
      spellcheck: 'false',
    })
    container.append(
      h(
        'form',
        {
          class: 'filters',
          role: 'search',
          onsubmit: (e) => {
            e.preventDefault()
            if (input.value.trim()) location.hash = href('request', input.value.trim())
          },
        },
        h('label', { for: 'request-id' }, 'Find'),
        input,
        h('button', { type: 'submit' }, 'Open'),
      ),
    )
    const hint = h('div')
    const errors = errorSlot(container)
    const box = h('div')
    container.append(hint, panel('Slowest requests', box))
    return {
      live: true,
      showError: (err) => errors.show(err),
      async refresh() {
        const range = currentRange()
        const [rows] = await Promise.all([
          query('slowest-requests', { ...timeParams(range), limit: 50 }),
          ensureLatest(),
        ])
        errors.clear()
        emptyHint(hint, range)
        const win = { from: range.fromS.toFixed(3), to: range.toS.toFixed(3) }
        fill(
          box,
          rows.length === 0
            ? h('p', { class: 'muted' }, 'No requests in this range.')
            : table(
                [
                  { label: 'arrived', cell: (r) => fmtDateTime(epochS(r.timestamp)) },
                  {
                    label: 'request',
                    cell: (r) => h('a', { href: href('request', r.request_id, win) }, r.request_id),
                  },
                  { label: 'model', cell: (r) => r.model },
                  { label: 'instance', cell: (r) => r.instance },
                  { label: 'status', cell: (r) => r.status },
                  { label: 'total', cell: (r) => fmtMs(r.total_ms), num: true },
                  { label: 'slowest stage', cell: (r) => r.slowest_stage },
                  { label: 'batch', key: 'batch_size', num: true },
                ],
                rows,
              ),
        )
      },
    }
  }

  function requestPage(container, r) {
    const id = r.arg ?? ''
    const errors = errorSlot(container)
    const body = h('div')
    container.append(body)
    return {
      live: false,
      showError: (err) => errors.show(err),
      async refresh() {
        const p = route().params
        const window = p.has('from') && p.has('to') ? { from: p.get('from'), to: p.get('to') } : {}
        let rows = await query('request', { id, ...window })
        // the window is a hint; a request outside it is still found
        if (rows.length === 0 && window.from) rows = await query('request', { id })
        errors.clear()
        clear(body)
        const span = rows[0]
        if (!span) {
          body.append(pageHead('Request'), h('p', { class: 'notice' }, `No request or trace with id ${id}.`))
          return
        }
        const total = span.total_us
        const startS = epochS(span.timestamp)
        body.append(pageHead('Request', `${span.model} v${span.model_version} on ${span.instance}`))
        const facts = h(
          'dl',
          { class: 'facts' },
          ...[
            ['request id', h('code', { 'data-request-id': span.request_id }, span.request_id)],
            ['trace id', h('code', { 'data-trace-id': span.trace_id }, span.trace_id)],
            ['span id', h('code', {}, span.span_id)],
            ['arrived', fmtDateTime(startS)],
            ['total', fmtMs(total / 1000)],
            ['status', span.error_class ? `${span.status} (${span.error_class})` : span.status],
            ['batch', `${span.batch_id} (${span.batch_size} rows)`],
            ['cache hit', span.cache_hit ? 'yes' : 'no'],
            ['bytes in / out', `${fmtNum(span.request_bytes)} / ${fmtNum(span.response_bytes)}`],
            ['host / device', `${span.host} / ${span.device}`],
            span.run_id ? ['run', h('code', {}, span.run_id)] : null,
          ]
            .filter(Boolean)
            .flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]),
        )
        let offset = 0
        const steps = STAGES.map((stage) => {
          const us = span[`${stage}_us`] ?? 0
          const row = { stage, startUs: offset, us }
          offset += us
          return row
        })
        const gap = Math.max(total - offset, 0)
        const pct = (us) => (total > 0 ? (us / total) * 100 : 0)
        const waterfall = h(
          'table',
          { class: 'waterfall', 'data-stages': STAGES.join(',') },
          h(
            'caption',
            {},
            `Stages in pipeline order; bars start where the previous stage ended (total ${fmtMs(total / 1000)})`,
          ),
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ['stage', 'starts after', 'duration', 'share', 'timeline'].map((t, i) =>
                h('th', { scope: 'col', class: i > 0 && i < 4 ? 'num' : undefined }, t),
              ),
            ),
          ),
          h(
            'tbody',
            {},
            steps.map((s) =>
              waterfallRow(
                { 'data-stage': s.stage },
                h(
                  'td',
                  {},
                  h('span', { class: 'swatch', style: { background: STAGE_COLOR[s.stage] } }),
                  s.stage,
                ),
                s.startUs,
                s.us,
                STAGE_COLOR[s.stage],
              ),
            ),
            gap > 0
              ? waterfallRow(
                  {},
                  h('td', { class: 'muted' }, 'between stages'),
                  offset,
                  gap,
                  cssVar('--muted'),
                )
              : null,
          ),
        )
        /** one row of the waterfall: what it is, when it starts and how long it takes (µs), its bar */
        function waterfallRow(attrs, nameCell, startUs, us, color) {
          return h(
            'tr',
            attrs,
            nameCell,
            h('td', { class: 'num' }, fmtMs(startUs / 1000)),
            h('td', { class: 'num' }, fmtMs(us / 1000)),
            h('td', { class: 'num' }, fmtPct(pct(us) / 100)),
            h(
              'td',
              { class: 'bar-cell' },
              h(
                'div',
                { class: 'wf-track', 'aria-hidden': 'true' },
                h('div', {
                  class: 'wf-bar',
                  style: { left: `${pct(startUs)}%`, width: `${pct(us)}%`, background: color },
                }),
              ),
            ),
          )
        }
        const wf = panel('Waterfall', waterfall)
        wf.classList.add('wide')
        body.append(h('div', { class: 'grid' }, wf, panel('Identity', facts)))
      },
    }
  }

  // ----- hardware

  function hardware(container) {
    const instance = route().params.get('instance') ?? ''
    container.append(pageHead('Hardware', 'per instance over time'))
    const filters = h('div', { class: 'filters' })
    const hint = h('div')
    const errors = errorSlot(container)
    const grid = h('div', { class: 'grid' })
    container.append(filters, hint, grid)
    const METRICS = [
      { title: 'Executor busy fraction', cols: [['executor_busy', '']], fmt: fmtPct, yMax: 1 },
      {
        title: 'CPU (CPU-seconds per second)',
        cols: [
          ['process_cpu', ' process'],
          ['host_cpu', ' host'],
        ],
      },
      {
        title: 'Device utilisation',
        cols: [['device_utilization', '']],
        fmt: fmtPct,
        yMax: 1,
        optional: true,
      },
      {
        title: 'Memory (MiB)',
        cols: [
          ['rss_mib', ' RSS'],
          ['heap_mib', ' heap'],
          ['device_memory_mib', ' device'],
        ],
      },
      { title: 'Device power (W)', cols: [['power_w', '']], optional: true },
      {
        title: 'Host pressure (PSI some, avg10, %)',
        cols: [
          ['psi_cpu_some', ' cpu'],
          ['psi_memory_some', ' memory'],
          ['psi_io_some', ' io'],
        ],
      },
      { title: 'CPU throttled by the cgroup', cols: [['cpu_throttled_share', '']], fmt: fmtPct },
      {
        title: 'Queue depth and requests in flight',
        cols: [
          ['queue_depth', ' queue'],
          ['in_flight', ' in flight'],
        ],
      },
      { title: 'Event-loop delay p99 (ms)', cols: [['event_loop_p99_ms', '']], fmt: fmtMs },
    ]
    let charts = []
    let key = ''
    return {
      live: true,
      showError: (err) => errors.show(err),
      destroy: () => {
        for (const c of charts) c.chart?.destroy()
      },
      async refresh() {
        const range = currentRange()
        const step = stepFor(range)
        const [rows, alertRows] = await Promise.all([
          query('hardware-over-time', { ...timeParams(range), step, instance }),
          query('alerts-in-range', { ...timeParams(range), instance }),
          ensureLatest(),
        ])
        errors.clear()
        const alertsList = alertSpans(alertRows)
        const instances = [...new Set(rows.map((r) => r.instance))].sort().slice(0, MAX_SERIES)
        fill(
          filters,
          ...filterSelect(
            'instance',
            rows.map((r) => r.instance),
          ),
        )
        clear(hint)
        if (rows.length === 0) hint.append(h('p', { class: 'notice' }, 'No hardware samples in this range.'))
        const shown = METRICS.filter(
          (m) => !m.optional || rows.some((r) => m.cols.some(([c]) => r[c] !== null)),
        )
        const newKey = `${instances.join('|')}/${shown.map((m) => m.title).join('|')}`
        if (newKey !== key) {
          key = newKey
          for (const c of charts) c.chart?.destroy()
          clear(grid)
          charts = shown.map((m) => {
            const p = panel(m.title)
            grid.append(p)
            const series = instances.flatMap((inst, i) =>
              m.cols.map(([, suffix], j) => ({
                label: `${inst}${suffix}`,
                color: PALETTE[(i * m.cols.length + j) % PALETTE.length],
              })),
            )
            return {
              m,
              chart: chart(p, {
                label: `${m.title} per instance`,
                series,
                fmt: m.fmt ?? fmtNum,
                yMax: m.yMax,
              }),
            }
          })
          const missing = METRICS.filter((m) => !shown.includes(m)).map((m) => m.title.toLowerCase())
          if (missing.length && rows.length)
            grid.append(
              h(
                'p',
                { class: 'muted panel wide' },
                `Not reported by these instances: ${missing.join(', ')} (CPU execution, no accelerator telemetry).`,
              ),
            )
        }
        for (const { m, chart: c } of charts) {
          const byCol = m.cols.map(([col]) =>
            pivot(
              rows,
              (r) => r.instance,
              (r) => r[col],
            ),
          )
          const xs = byCol[0]?.xs ?? []
          // series order: per instance, its columns (as the chart's series were built)
          const ys = instances.flatMap((inst) => byCol.map((pv) => pv.byKey.get(inst) ?? xs.map(() => null)))
          c.setData(xs, ys, range, alertsList)
        }
      },
    }
  }

  // ----- SQL console

  function sqlPage(container) {
    container.append(pageHead('SQL console', 'read-only; the same allow-list and limits as breakid sql'))
    const examples = [
      [
        'Requests per model',
        'SELECT model, count() AS requests, round(avg(total_us) / 1000, 2) AS mean_ms\nFROM spans\nGROUP BY model\nORDER BY requests DESC',
      ],
      [
        'Slowest stage of the latest requests',
        `SELECT request_id, round(total_us / 1000, 2) AS total_ms,\n  [${STAGES.map((st) => `'${st}'`).join(', ')}][\n    indexOf([${STAGES.map((st) => `${st}_us`).join(', ')}],\n      greatest(${STAGES.map((st) => `${st}_us`).join(', ')}))] AS slowest_stage\nFROM spans\nORDER BY timestamp DESC\nLIMIT 100`,
      ],
      [
        'Alerts by type',
        'SELECT type, status, count() AS alerts\nFROM alerts FINAL\nGROUP BY type, status\nORDER BY alerts DESC',
      ],
      ['Tables', 'SHOW TABLES'],
    ]
    const saved = sessionStorage.getItem('breakid-sql')
    const area = h('textarea', { id: 'sql-text', spellcheck: 'false', 'aria-describedby': 'sql-help' })
    area.value = saved ?? examples[0][1]
    const limit = h(
      'select',
      { id: 'sql-limit' },
      ['100', '1000', '10000'].map((n) => h('option', { value: n, selected: n === '1000' }, n)),
    )
    const pick = h(
      'select',
      {
        id: 'sql-example',
        onchange: () => {
          const ex = examples.find(([name]) => name === pick.value)
          if (ex) area.value = ex[1]
          area.focus()
        },
      },
      h('option', { value: '' }, 'examples…'),
      examples.map(([name]) => h('option', { value: name }, name)),
    )
    const run = h('button', { type: 'submit', class: 'primary' }, 'Run')
    const info = h('span', { class: 'muted', role: 'status' })
    const out = h('div', { class: 'sql-result' })
    const form = h(
      'form',
      { class: 'console panel' },
      h('label', { for: 'sql-text' }, 'Statement'),
      area,
      h(
        'p',
        { id: 'sql-help', class: 'hint' },
        'Ctrl+Enter runs it. SELECT, WITH, SHOW, DESCRIBE, EXISTS and EXPLAIN over the breakid tables; no SETTINGS, FORMAT or table functions that reach files or the network.',
      ),
      h('div', { class: 'row' }, run, h('label', { for: 'sql-limit' }, 'rows'), limit, pick, info),
      out,
    )
    container.append(form)
    async function execute() {
      const statement = area.value
      sessionStorage.setItem('breakid-sql', statement)
      run.disabled = true
      info.textContent = 'running…'
      const t0 = performance.now()
      try {
        const result = await sql(statement, Number(limit.value))
        const ms = performance.now() - t0
        info.textContent = `${result.rows.length} row${result.rows.length === 1 ? '' : 's'}${result.truncated ? ` (truncated at ${result.rows.length})` : ''} in ${Math.round(ms)} ms`
        fill(
          out,
          table(
            result.columns.map((c, i) => ({
              label: `${c.name}`,
              num: /^(Nullable\()?(U?Int|Float|Decimal)/.test(c.type),
              cell: (row) => {
                const v = row[i]
                return v === null ? 'NULL' : typeof v === 'object' ? JSON.stringify(v) : String(v)
              },
            })),
            result.rows,
            { caption: result.columns.map((c) => `${c.name}: ${c.type}`).join(', ') },
          ),
        )
        out.dataset.rows = String(result.rows.length)
      } catch (err) {
        if (err.name === 'AbortError') return
        info.textContent = 'refused'
        fill(out, h('p', { class: 'error', role: 'alert' }, err.message))
        out.dataset.rows = ''
      } finally {
        run.disabled = false
      }
    }
    form.addEventListener('submit', (e) => {
      e.preventDefault()
      execute()
    })
    area.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
        e.preventDefault()
        execute()
      }
    })
    return { live: false }
  }

  render().then(schedule)
}
