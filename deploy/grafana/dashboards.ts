/**
 * The Grafana dashboards of breakid, for Grafana's ClickHouse data source
 * (grafana-clickhouse-datasource): fleet overview, stage breakdown, alerts, hardware. Written as
 * code so the stage columns come from the contract's STAGES, then rendered to
 * deploy/grafana/dashboards/*.json, which Grafana provisions (deploy/grafana/provisioning/).
 *
 *   npm run grafana:generate        # rewrite the JSON files
 *
 * test/unit/grafana.test.ts checks the JSON files are this module's output, and runs every panel's,
 * variable's and annotation's SQL — macros expanded as the plugin expands them — against a store
 * filled with synthetic records. The SQL reads the tables of store/tables.ts as they are; a change
 * there that breaks a panel fails that test.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { STAGES } from '../../contract/vocabulary.ts'

/** the provisioned data source (provisioning/datasources/clickhouse.yaml) */
export const DATASOURCE = { type: 'grafana-clickhouse-datasource', uid: 'breakid-clickhouse' } as const

/** the plugin's query format: 0 time series, 1 table */
const TIME_SERIES = 0
const TABLE = 1

export interface Target {
  refId: string
  datasource: typeof DATASOURCE
  editorType: 'sql'
  format: number
  queryType: 'timeseries' | 'table'
  rawSql: string
}

export interface Panel {
  id: number
  type: 'timeseries' | 'stat' | 'table' | 'barchart' | 'row'
  title: string
  description?: string
  datasource?: typeof DATASOURCE
  gridPos: { x: number; y: number; w: number; h: number }
  targets?: Target[]
  fieldConfig?: unknown
  options?: unknown
}

export interface Dashboard {
  uid: string
  title: string
  description: string
  tags: string[]
  timezone: 'utc'
  schemaVersion: number
  version: number
  editable: boolean
  refresh: string
  time: { from: string; to: string }
  graphTooltip: number
  templating: { list: unknown[] }
  annotations: { list: unknown[] }
  links: unknown[]
  panels: Panel[]
}

/** SQL written readable here, sent as one line of normalised whitespace */
const sql = (text: string) => text.replace(/\s+/g, ' ').trim()

/** the filters every panel over spans applies: the model and instance picked at the top */
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JS template
const SPAN_FILTER = 'model IN (${model:singlequote}) AND instance IN (${instance:singlequote})'
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JS template
const HW_FILTER = 'instance IN (${instance:singlequote})'

function target(rawSql: string, format: number, refId = 'A'): Target {
  return {
    refId,
    datasource: DATASOURCE,
    editorType: 'sql',
    format,
    queryType: format === TIME_SERIES ? 'timeseries' : 'table',
    rawSql: sql(rawSql),
  }
}

function variable(name: string, table: string, column: string, timeColumn = 'timestamp') {
  const query = sql(
    `SELECT DISTINCT ${column} FROM ${table} WHERE $__timeFilter(${timeColumn}) ORDER BY ${column}`,
  )
  return {
    name,
    label: name,
    type: 'query',
    datasource: DATASOURCE,
    query,
    definition: query,
    refresh: 2, // on time range change: instances come and go
    multi: true,
    includeAll: true,
    current: { text: ['All'], value: ['$__all'] },
    sort: 1,
    hide: 0,
  }
}

/** every alert that started in the range, drawn as a region on the time axis of every panel */
const ALERT_ANNOTATION = {
  name: 'breakid alerts',
  enable: true,
  iconColor: 'red',
  datasource: DATASOURCE,
  target: target(
    `SELECT starts_at AS time, ifNull(ends_at, now64(6)) AS timeEnd,
       concat(type, ' [', severity, '] ', instance, '/', model, ': ', summary) AS text,
       concat(type, ',', severity, ',', instance) AS tags
     FROM (SELECT * FROM alerts FINAL)
     WHERE $__timeFilter(starts_at) AND ${HW_FILTER}
     ORDER BY time`,
    TABLE,
    'Anno',
  ),
}

const BUILT_IN_ANNOTATION = {
  builtIn: 1,
  datasource: { type: 'grafana', uid: '-- Grafana --' },
  enable: true,
  hide: true,
  iconColor: 'rgba(0, 211, 255, 1)',
  name: 'Annotations & Alerts',
  type: 'dashboard',
}

class Board {
  private readonly panels: Panel[] = []
  private y = 0
  private x = 0
  private rowHeight = 0

  constructor(
    private readonly uid: string,
    private readonly title: string,
    private readonly description: string,
    private readonly variables: unknown[],
  ) {}

  /** places a panel left to right, 24 columns a row */
  add(
    type: Panel['type'],
    title: string,
    description: string,
    targets: readonly Target[],
    size: { w: number; h: number },
    extra: Pick<Panel, 'fieldConfig' | 'options'> = {},
  ): this {
    if (this.x + size.w > 24) this.newRow()
    this.panels.push({
      id: this.panels.length + 1,
      type,
      title,
      description,
      datasource: DATASOURCE,
      gridPos: { x: this.x, y: this.y, ...size },
      targets: [...targets],
      ...extra,
    })
    this.x += size.w
    this.rowHeight = Math.max(this.rowHeight, size.h)
    return this
  }

  newRow(): this {
    this.y += this.rowHeight
    this.x = 0
    this.rowHeight = 0
    return this
  }

  build(): Dashboard {
    return {
      uid: this.uid,
      title: this.title,
      description: this.description,
      tags: ['breakid'],
      timezone: 'utc',
      schemaVersion: 39,
      version: 1,
      editable: true,
      refresh: '30s',
      time: { from: 'now-1h', to: 'now' },
      graphTooltip: 1, // shared crosshair: one instant across every panel
      templating: { list: this.variables },
      annotations: { list: [BUILT_IN_ANNOTATION, ALERT_ANNOTATION] },
      links: [
        {
          type: 'dashboards',
          tags: ['breakid'],
          asDropdown: false,
          title: 'breakid',
          includeVars: true,
          keepTime: true,
        },
      ],
      panels: this.panels,
    }
  }
}

const unit = (u: string, extra: Record<string, unknown> = {}) => ({
  defaults: { unit: u, ...extra },
  overrides: [],
})
const stacked = (u: string) =>
  unit(u, { custom: { stacking: { mode: 'normal', group: 'A' }, fillOpacity: 60, lineWidth: 1 } })
const W = { third: { w: 8, h: 8 }, half: { w: 12, h: 8 }, full: { w: 24, h: 9 }, stat: { w: 6, h: 4 } }
/**
 * A time series panel over the spans, one series per model or per instance: `selects` are its
 * columns (one on the SELECT line, several on lines of their own), in `u` units.
 */
const spanSeries = (
  by: 'model' | 'instance',
  title: string,
  description: string,
  selects: readonly string[],
  size: { w: number; h: number },
  u: string,
) =>
  [
    'timeseries',
    title,
    description,
    [
      target(
        `SELECT $__timeInterval(timestamp) AS time, ${by},${selects.length === 1 ? ` ${selects[0]}` : `\n${selects.map((x) => `             ${x}`).join(',\n')}`}
           FROM spans WHERE $__timeFilter(timestamp) AND ${SPAN_FILTER}
           GROUP BY time, ${by} ORDER BY time`,
        TIME_SERIES,
      ),
    ],
    size,
    { fieldConfig: unit(u) },
  ] as const

/** the panel of requests answered per second, one series per model or per instance */
const requestRatePer = (by: 'model' | 'instance') =>
  spanSeries(
    by,
    `Requests/s per ${by}`,
    `Requests answered per second, per ${by}`,
    ['count() / $__interval_s AS requests_per_s'],
    W.half,
    'reqps',
  )

const spanVariables = () => [variable('model', 'spans', 'model'), variable('instance', 'spans', 'instance')]

function fleet(): Dashboard {
  const b = new Board(
    'breakid-fleet',
    'breakid · fleet overview',
    'Requests per second, errors and tail latency per model and instance, with the alerts on the same time axis.',
    spanVariables(),
  )
  b.add(
    'stat',
    'Requests/s',
    'Requests answered per second over the range',
    [
      target(
        `SELECT count() / greatest(1, dateDiff('second', $__fromTime, $__toTime)) AS requests_per_s
         FROM spans WHERE $__timeFilter(timestamp) AND ${SPAN_FILTER}`,
        TABLE,
      ),
    ],
    W.stat,
    { fieldConfig: unit('reqps') },
  )
    .add(
      'stat',
      'Error rate',
      'Share of requests that did not end ok',
      [
        target(
          `SELECT countIf(status != 'ok') / greatest(1, count()) AS error_rate
           FROM spans WHERE $__timeFilter(timestamp) AND ${SPAN_FILTER}`,
          TABLE,
        ),
      ],
      W.stat,
      { fieldConfig: unit('percentunit') },
    )
    .add(
      'stat',
      'p99 latency',
      'End-to-end latency (total_us), 99th percentile over the range',
      [
        target(
          `SELECT quantileExact(0.99)(total_us) / 1000 AS p99_ms
           FROM spans WHERE $__timeFilter(timestamp) AND ${SPAN_FILTER}`,
          TABLE,
        ),
      ],
      W.stat,
      { fieldConfig: unit('ms') },
    )
    .add(
      'stat',
      'Alerts firing',
      'Alerts whose latest state is firing',
      [
        target(
          `SELECT count() AS firing FROM (SELECT * FROM alerts FINAL)
           WHERE status = 'firing' AND ${HW_FILTER}`,
          TABLE,
        ),
      ],
      W.stat,
      {
        fieldConfig: unit('short', {
          thresholds: {
            mode: 'absolute',
            steps: [
              { color: 'green', value: null },
              { color: 'red', value: 1 },
            ],
          },
        }),
      },
    )
    .newRow()
    .add(...requestRatePer('model'))
    .add(
      ...spanSeries(
        'model',
        'Error rate per model',
        'Share of requests that did not end ok, per model',
        ["countIf(status != 'ok') / count() AS error_rate"],
        W.half,
        'percentunit',
      ),
    )
    .add(
      ...spanSeries(
        'model',
        'Latency p50 / p95 / p99 per model',
        'End-to-end latency percentiles per model (total_us)',
        [0.5, 0.95, 0.99].map((q) => `quantile(${q})(total_us) / 1000 AS p${q * 100}_ms`),
        W.full,
        'ms',
      ),
    )
    .add(
      ...spanSeries(
        'instance',
        'p99 latency per instance',
        'End-to-end p99 latency per instance: one slow instance stands out',
        ['quantile(0.99)(total_us) / 1000 AS p99_ms'],
        W.half,
        'ms',
      ),
    )
    .add(...requestRatePer('instance'))
    .add(
      'table',
      'Per model and instance',
      'Requests, errors and latency percentiles over the whole range',
      [
        target(
          `SELECT model, instance, count() AS requests, countIf(status != 'ok') AS errors,
             round(errors / requests, 4) AS error_rate,
             quantileExact(0.5)(total_us) / 1000 AS p50_ms,
             quantileExact(0.95)(total_us) / 1000 AS p95_ms,
             quantileExact(0.99)(total_us) / 1000 AS p99_ms
           FROM spans WHERE $__timeFilter(timestamp) AND ${SPAN_FILTER}
           GROUP BY model, instance ORDER BY requests DESC`,
          TABLE,
        ),
      ],
      W.full,
    )
  return b.build()
}

function stages(): Dashboard {
  const shares = STAGES.map((s) => `sum(${s}_us) / greatest(1, sum(total_us)) AS ${s}`).join(', ')
  const names = `[${STAGES.map((s) => `'${s}'`).join(', ')}]`
  const values = `[${STAGES.map((s) => `${s}_us`).join(', ')}]`
  const b = new Board(
    'breakid-stages',
    'breakid · stage breakdown',
    'Where the time of a request goes, stage by stage (the stages of the span contract, in pipeline order).',
    spanVariables(),
  )
  b.add(
    'timeseries',
    'Share of request time per stage',
    'Each stage\u2019s share of the summed request time: a stage that grows its share is the bottleneck',
    [
      target(
        `SELECT $__timeInterval(timestamp) AS time, ${shares}
         FROM spans WHERE $__timeFilter(timestamp) AND ${SPAN_FILTER}
         GROUP BY time ORDER BY time`,
        TIME_SERIES,
      ),
    ],
    W.full,
    { fieldConfig: stacked('percentunit') },
  )
    .add(
      'timeseries',
      'p95 per stage',
      '95th percentile of each stage\u2019s duration',
      [
        target(
          `SELECT $__timeInterval(timestamp) AS time, stage, quantile(0.95)(us) / 1000 AS p95_ms
           FROM spans ARRAY JOIN ${names} AS stage, ${values} AS us
           WHERE $__timeFilter(timestamp) AND ${SPAN_FILTER}
           GROUP BY time, stage ORDER BY time`,
          TIME_SERIES,
        ),
      ],
      W.half,
      { fieldConfig: unit('ms') },
    )
    .add(
      'timeseries',
      'Mean queue wait vs compute',
      'Time waiting for the executor against time in it: waiting that grows while compute does not is a batching or capacity limit',
      [
        target(
          `SELECT $__timeInterval(timestamp) AS time, avg(queue_wait_us) / 1000 AS queue_wait_ms,
             avg(compute_us) / 1000 AS compute_ms, avg(batch_size) AS batch_size
           FROM spans WHERE $__timeFilter(timestamp) AND ${SPAN_FILTER}
           GROUP BY time ORDER BY time`,
          TIME_SERIES,
        ),
      ],
      W.half,
      { fieldConfig: unit('ms') },
    )
    .add(
      'table',
      'Stages per model',
      'Percentiles and share of total per model and stage over the range (as `breakid query stage-breakdown`)',
      [
        target(
          `SELECT model, stage, count() AS requests,
             quantileExact(0.5)(us) / 1000 AS p50_ms,
             quantileExact(0.95)(us) / 1000 AS p95_ms,
             quantileExact(0.99)(us) / 1000 AS p99_ms,
             avg(us) / 1000 AS mean_ms,
             round(sum(us) / greatest(1, sum(total_us)), 3) AS share_of_total
           FROM spans ARRAY JOIN ${names} AS stage, ${values} AS us
           WHERE $__timeFilter(timestamp) AND ${SPAN_FILTER}
           GROUP BY model, stage
           ORDER BY model, indexOf(${names}, stage)`,
          TABLE,
        ),
      ],
      W.full,
    )
  return b.build()
}

function alerts(): Dashboard {
  const b = new Board(
    'breakid-alerts',
    'breakid · alerts',
    'What the detectors raised: state changes over time, the latest state of each alert with its evidence.',
    [variable('instance', 'alerts', 'instance', 'starts_at')],
  )
  b.add(
    'timeseries',
    'Alert state changes per type',
    'Firing and resolved records published, per alert type',
    [
      target(
        `SELECT $__timeInterval(updated_at) AS time, concat(type, ' ', status) AS change, count() AS changes
         FROM alerts WHERE $__timeFilter(updated_at) AND ${HW_FILTER}
         GROUP BY time, change ORDER BY time`,
        TIME_SERIES,
      ),
    ],
    W.half,
    { fieldConfig: unit('short', { custom: { drawStyle: 'bars', fillOpacity: 80 } }) },
  )
    .add(
      'barchart',
      'Alerts per type',
      'Alerts that started in the range, per type and severity',
      [
        target(
          `SELECT type, countIf(severity = 'critical') AS critical, countIf(severity = 'warning') AS warning,
             countIf(severity = 'info') AS info
           FROM (SELECT * FROM alerts FINAL)
           WHERE $__timeFilter(starts_at) AND ${HW_FILTER}
           GROUP BY type ORDER BY count() DESC`,
          TABLE,
        ),
      ],
      W.half,
      { options: { stacking: 'normal', xField: 'type' } },
    )
    .add(
      'table',
      'Alerts with evidence',
      'The latest state of every alert that started in the range: baseline vs observed, suspected stage and cause, what to do, exemplar requests',
      [
        target(
          `SELECT starts_at, ends_at, status, severity, type, instance, model, stage,
             statistic, baseline, observed, threshold, summary, suspected_cause, suggested_action,
             resolve_reason, arrayStringConcat(exemplar_request_ids, ' ') AS exemplars, related
           FROM (SELECT * FROM alerts FINAL)
           WHERE $__timeFilter(starts_at) AND ${HW_FILTER}
           ORDER BY status = 'firing' DESC, starts_at DESC LIMIT 500`,
          TABLE,
        ),
      ],
      { w: 24, h: 12 },
    )
  return b.build()
}

function hardware(): Dashboard {
  const perInstance = (title: string, description: string, expr: string, u: string) =>
    [
      'timeseries',
      title,
      description,
      [
        target(
          `SELECT $__timeInterval(timestamp) AS time, instance, ${expr}
           FROM hw_samples WHERE $__timeFilter(timestamp) AND ${HW_FILTER}
           GROUP BY time, instance ORDER BY time`,
          TIME_SERIES,
        ),
      ],
      W.third,
      { fieldConfig: unit(u) },
    ] as const
  const perDevice = (title: string, description: string, field: string, agg: string, u: string) =>
    [
      'timeseries',
      title,
      description,
      [
        target(
          `SELECT $__timeInterval(timestamp) AS time, concat(instance, '/', d.1) AS device, ${agg}(d.2) AS value
           FROM hw_samples ARRAY JOIN arrayZip(device_device, ${field}) AS d
           WHERE $__timeFilter(timestamp) AND ${HW_FILTER} AND d.2 IS NOT NULL
           GROUP BY time, device ORDER BY time`,
          TIME_SERIES,
        ),
      ],
      W.third,
      { fieldConfig: unit(u) },
    ] as const
  const b = new Board(
    'breakid-hardware',
    'breakid · hardware',
    'Executor busy fraction, accelerators, process and host pressure per instance, from the hardware samples.',
    [variable('instance', 'hw_samples', 'instance')],
  )
  b.add(
    ...perInstance(
      'Executor busy',
      'Time inside model execution / wall time: low while requests wait is starvation',
      'avg(executor_busy) AS executor_busy',
      'percentunit',
    ),
  )
    .add(
      ...perInstance(
        'Queue depth and in flight',
        'Requests waiting for the executor, and accepted but not answered',
        'avg(queue_depth) AS queue_depth, avg(in_flight) AS in_flight',
        'short',
      ),
    )
    .add(
      ...perInstance(
        'Arrivals and completions',
        'Requests per second in and out',
        'sum(arrivals) / $__interval_s AS arrivals_per_s, sum(completions) / $__interval_s AS completions_per_s',
        'reqps',
      ),
    )
    .add(
      ...perDevice(
        'Device utilization',
        'Accelerator utilization where the hardware reports it (nvidia-smi)',
        'device_utilization',
        'avg',
        'percent',
      ),
    )
    .add(
      ...perDevice(
        'Device memory used',
        'Accelerator memory in use',
        'device_memory_used_bytes',
        'max',
        'bytes',
      ),
    )
    .add(...perDevice('Device power', 'Accelerator power draw', 'device_power_w', 'avg', 'watt'))
    .add(
      ...perInstance(
        'Process CPU',
        'CPU of the engine process, in cores',
        'avg(process_cpu) AS process_cpu',
        'short',
      ),
    )
    .add(
      ...perInstance(
        'Memory',
        'Resident set and JS heap',
        'max(rss_bytes) AS rss, max(heap_used_bytes) AS heap_used',
        'bytes',
      ),
    )
    .add(
      ...perInstance(
        'Event loop delay p99 and GC',
        'A blocked event loop delays every request',
        'max(event_loop_delay_p99_ms) AS event_loop_p99_ms, sum(gc_ms) AS gc_ms',
        'ms',
      ),
    )
    .add(
      ...perInstance(
        'Host CPU',
        'Cores busy on the whole host against the cores it has: a neighbour\u2019s load shows here and not in process CPU',
        'avg(host_cpu) AS host_cpu, max(host_cpus) AS host_cpus',
        'short',
      ),
    )
    .add(
      ...perInstance(
        'Host pressure (PSI, avg10)',
        'Share of time tasks stalled on CPU, memory or IO (Linux pressure stall information)',
        'avg(psi_cpu_some_avg10) AS cpu_some, avg(psi_memory_some_avg10) AS memory_some, avg(psi_io_some_avg10) AS io_some, avg(psi_io_full_avg10) AS io_full',
        'percent',
      ),
    )
    .add(
      ...perInstance(
        'CPU throttling',
        'Seconds throttled by the cgroup CPU limit per second, and the limit in cores',
        '(max(cgroup_throttled_us) - min(cgroup_throttled_us)) / 1e6 / $__interval_s AS throttled_s_per_s, max(cgroup_cpu_limit) AS cpu_limit',
        'short',
      ),
    )
  return b.build()
}

/** file name → dashboard */
export function buildDashboards(): Record<string, Dashboard> {
  return {
    'breakid-fleet.json': fleet(),
    'breakid-stages.json': stages(),
    'breakid-alerts.json': alerts(),
    'breakid-hardware.json': hardware(),
  }
}

export const DASHBOARD_DIR = join(import.meta.dirname, 'dashboards')

export function renderDashboard(d: Dashboard): string {
  return `${JSON.stringify(d, null, 2)}\n`
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const [file, d] of Object.entries(buildDashboards())) {
    writeFileSync(join(DASHBOARD_DIR, file), renderDashboard(d))
    console.log(`${join('deploy/grafana/dashboards', file)}: ${d.panels.length} panels`)
  }
}
