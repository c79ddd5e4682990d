/**
 * What a webhook route receives, one body per alert transition, in the format the route chose:
 *
 * - `json` (default): breakid's own body, version 2 — the alert with readable times and its
 *   evidence (statistic, observed, baseline, threshold, exemplar request ids, the related symptoms it
 *   carries) in one `evidence` object. Published as a JSON Schema: notify/alert-body.schema.json.
 * - `slack`: Slack's incoming-webhook body (`text` + Block Kit `blocks`).
 * - `alertmanager`: the body Prometheus Alertmanager's webhook receiver posts (version "4"), so
 *   anything that already takes Alertmanager webhooks (alert routers, on-call tools, chat bridges)
 *   takes breakid's alerts unchanged. One alert per body; breakid's fleet group is the group.
 */
import type { AlertGroup } from './groups.ts'
import type { Alert, RelatedAlert } from '../contract/records.ts'

export const WEBHOOK_FORMATS = ['json', 'slack', 'alertmanager'] as const
export type WebhookFormat = (typeof WEBHOOK_FORMATS)[number]

export function isWebhookFormat(s: string): s is WebhookFormat {
  return (WEBHOOK_FORMATS as readonly string[]).includes(s)
}

/** Per-route facts a body may name (Alertmanager's `receiver` and `externalURL`). */
export interface BodyContext {
  /** the fleet group the alert belongs to (./groups.ts) */
  group?: AlertGroup
  /** the route's name */
  receiver?: string
  /** base URL of the breakid deployment (dashboard/API) for links; none: links are empty */
  externalUrl?: string
}

export function isoFromMicros(us: number): string {
  return new Date(Math.floor(us / 1000)).toISOString()
}

/** RFC 3339 with the microseconds the record carries (`2026-01-01T00:00:00.123456Z`). */
export function rfc3339Micros(us: number): string {
  const ms = Math.floor(us / 1000)
  const micros = String(((us % 1000) + 1000) % 1000).padStart(3, '0')
  return new Date(ms).toISOString().replace(/Z$/, `${micros}Z`)
}

/** A double as JSON carries it: NaN and ±Infinity have no JSON form and become null. */
function jsonNumber(x: number): number | null {
  return Number.isFinite(x) ? x : null
}

// ---------------------------------------------------------------------------------------------------
// json (version 2)

export interface RelatedAlertBody {
  id: string
  type: string
  stage: string | null
  starts_at: string
  starts_at_us: number
  summary: string
}

export interface AlertEvidence {
  /** what was compared, e.g. executor_busy */
  statistic: string
  /** null when the value was not finite */
  observed: number | null
  baseline: number | null
  threshold: number | null
  exemplar_request_ids: string[]
  /** symptoms of this break other detectors raised, delivered with it instead of paging */
  related: RelatedAlertBody[]
}

export interface JsonAlert {
  id: string
  type: string
  severity: Alert['severity']
  status: Alert['status']
  dedup_key: string
  fleet: string
  instance: string
  model: string
  stage: string | null
  starts_at: string
  ends_at: string | null
  updated_at: string
  /** the exact record times (µs since the epoch); the ISO strings above are rounded to ms */
  starts_at_us: number
  ends_at_us: number | null
  updated_at_us: number
  summary: string
  suspected_cause: string
  suggested_action: string
  run_id: string | null
  resolve_reason: NonNullable<Alert['resolve_reason']> | null
  evidence: AlertEvidence
}

export interface JsonBody {
  version: 2
  alert: JsonAlert
  /** the same break on other instances of the fleet, when the notifier knows it */
  group?: AlertGroup
}

function relatedBody(r: RelatedAlert): RelatedAlertBody {
  return {
    id: r.id,
    type: r.type,
    stage: r.stage,
    starts_at: isoFromMicros(r.starts_at_us),
    starts_at_us: r.starts_at_us,
    summary: r.summary,
  }
}

export function jsonBody(alert: Alert, ctx: BodyContext = {}): JsonBody {
  return {
    version: 2,
    alert: {
      id: alert.id,
      type: alert.type,
      severity: alert.severity,
      status: alert.status,
      dedup_key: alert.dedup_key,
      fleet: alert.fleet,
      instance: alert.instance,
      model: alert.model,
      stage: alert.stage,
      starts_at: isoFromMicros(alert.starts_at_us),
      ends_at: alert.ends_at_us === null ? null : isoFromMicros(alert.ends_at_us),
      updated_at: isoFromMicros(alert.updated_at_us),
      starts_at_us: alert.starts_at_us,
      ends_at_us: alert.ends_at_us,
      updated_at_us: alert.updated_at_us,
      summary: alert.summary,
      suspected_cause: alert.suspected_cause,
      suggested_action: alert.suggested_action,
      run_id: alert.run_id ?? null,
      resolve_reason: alert.resolve_reason ?? null,
      evidence: {
        statistic: alert.statistic,
        observed: jsonNumber(alert.observed),
        baseline: jsonNumber(alert.baseline),
        threshold: jsonNumber(alert.threshold),
        exemplar_request_ids: [...alert.exemplar_request_ids],
        related: (alert.related ?? []).map(relatedBody),
      },
    },
    ...(ctx.group ? { group: ctx.group } : {}),
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null

/**
 * The alert record back from a received `json` body (receivers, `breakid up`, eval); null for
 * anything else (another format, another version, a body that is not one). Not a validator: the
 * JSON Schema is the contract, this only reads what a breakid notifier wrote.
 */
export function alertFromJsonBody(body: unknown): Alert | null {
  if (!isObject(body) || body.version !== 2 || !isObject(body.alert)) return null
  const a = body.alert as unknown as JsonAlert
  if (typeof a.id !== 'string' || !isObject(a.evidence)) return null
  const e = a.evidence
  return {
    id: a.id,
    type: a.type,
    severity: a.severity,
    status: a.status,
    dedup_key: a.dedup_key,
    fleet: a.fleet,
    instance: a.instance,
    model: a.model,
    stage: a.stage,
    starts_at_us: a.starts_at_us,
    ends_at_us: a.ends_at_us,
    updated_at_us: a.updated_at_us,
    statistic: e.statistic,
    observed: e.observed ?? Number.NaN,
    baseline: e.baseline ?? Number.NaN,
    threshold: e.threshold ?? Number.NaN,
    summary: a.summary,
    suspected_cause: a.suspected_cause,
    suggested_action: a.suggested_action,
    exemplar_request_ids: e.exemplar_request_ids,
    run_id: a.run_id,
    resolve_reason: a.resolve_reason,
    related: e.related.map((r) => ({
      id: r.id,
      type: r.type,
      stage: r.stage,
      starts_at_us: r.starts_at_us,
      summary: r.summary,
    })),
  }
}

// ---------------------------------------------------------------------------------------------------
// slack

/** " · also firing on 2 other instances of eu-1" when the break is not this instance's alone */
function groupNote(alert: Alert, group: AlertGroup | undefined): string {
  const others = group?.firing_instances.filter((i) => i !== alert.instance).length ?? 0
  return others > 0
    ? ` · also firing on ${others} other instance${others === 1 ? '' : 's'} of ${alert.fleet}`
    : ''
}

interface SlackText {
  type: 'mrkdwn' | 'plain_text'
  text: string
}
export type SlackBlock =
  | { type: 'section'; text: SlackText; fields?: SlackText[] }
  | { type: 'context'; elements: SlackText[] }

/** Slack incoming-webhook payload: `text` is the notification line, `blocks` the message body. */
export interface SlackBody {
  text: string
  blocks: SlackBlock[]
}

function num(x: number): string {
  return Number.isFinite(x) ? String(Number(x.toPrecision(4))) : String(x)
}

/** instance/model/stage, the stage left out when the alert has none */
function location(alert: Alert): string {
  return [alert.instance, alert.model, alert.stage].filter((s) => s !== null && s !== '').join('/')
}

/** One readable line: `[CRITICAL] FIRING accelerator_starved on engine-0/mlp/preprocess: executor_busy 0.1 vs baseline 0.6 (threshold 0.3)` */
export function summaryLine(alert: Alert): string {
  return (
    `[${alert.severity.toUpperCase()}] ${alert.status.toUpperCase()} ${alert.type} on ${location(alert)}: ` +
    `${alert.statistic} ${num(alert.observed)} vs baseline ${num(alert.baseline)} (threshold ${num(alert.threshold)})`
  )
}

/** Slack mrkdwn treats &, < and > as control characters; everything user-supplied is escaped. */
function esc(s: string): string {
  return s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;')
}

/** Slack rejects a section text over 3000 characters and a field over 2000. */
function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`
}

const SLACK_ICON: Record<Alert['severity'], string> = {
  critical: ':red_circle:',
  warning: ':large_orange_circle:',
  info: ':large_blue_circle:',
}

export function slackBody(alert: Alert, ctx: BodyContext = {}): SlackBody {
  const line = summaryLine(alert)
  const icon = alert.status === 'resolved' ? ':white_check_mark:' : SLACK_ICON[alert.severity]
  const field = (label: string, value: string): SlackText => ({
    type: 'mrkdwn',
    text: clip(`*${label}*\n${esc(value)}`, 2000),
  })
  const times =
    `started ${isoFromMicros(alert.starts_at_us)}` +
    (alert.ends_at_us === null ? '' : `, ended ${isoFromMicros(alert.ends_at_us)}`)
  const exemplars = alert.exemplar_request_ids.slice(0, 5).join(', ')
  return {
    text: clip(line, 3000),
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: clip(`${icon} *${esc(line)}*`, 3000) } },
      {
        type: 'section',
        text: { type: 'mrkdwn', text: clip(esc(alert.summary || alert.type), 3000) },
        fields: [
          field('Instance', alert.instance),
          field('Model', alert.model),
          field('Stage', alert.stage ?? '—'),
          field(
            alert.statistic,
            `observed ${num(alert.observed)} vs baseline ${num(alert.baseline)} (threshold ${num(alert.threshold)})`,
          ),
          field('Suspected cause', alert.suspected_cause || '—'),
          field('Suggested action', alert.suggested_action || '—'),
        ],
      },
      {
        type: 'context',
        elements: [
          {
            type: 'mrkdwn',
            text: clip(
              esc(
                `alert ${alert.id} · ${alert.fleet} · ${times}${exemplars ? ` · e.g. ${exemplars}` : ''}` +
                  groupNote(alert, ctx.group),
              ),
              3000,
            ),
          },
        ],
      },
    ],
  }
}

// ---------------------------------------------------------------------------------------------------
// alertmanager (webhook_config payload, version 4)

export interface AlertmanagerAlert {
  status: Alert['status']
  labels: Record<string, string>
  annotations: Record<string, string>
  startsAt: string
  /** Go's zero time while firing, as Alertmanager sends an alert with no end yet */
  endsAt: string
  generatorURL: string
  fingerprint: string
}

export interface AlertmanagerBody {
  version: '4'
  groupKey: string
  truncatedAlerts: number
  status: Alert['status']
  receiver: string
  groupLabels: Record<string, string>
  commonLabels: Record<string, string>
  commonAnnotations: Record<string, string>
  externalURL: string
  alerts: AlertmanagerAlert[]
}

/** Go's `time.Time{}` in JSON: what Alertmanager puts in `endsAt` of an alert with no end. */
export const GO_ZERO_TIME = '0001-01-01T00:00:00Z'

/**
 * Prometheus' label-set fingerprint (prometheus/common model `labelSetToFingerprint`): FNV-1a 64 over
 * the labels sorted by name, each name and value followed by the separator byte 0xff; Alertmanager
 * sends it as 16 hex digits. Receivers key silences and dedup on it, so it must match theirs.
 */
export function labelsFingerprint(labels: Record<string, string>): string {
  const OFFSET = 14695981039346656037n
  const PRIME = 1099511628211n
  const MASK = (1n << 64n) - 1n
  let h = OFFSET
  const add = (bytes: Uint8Array) => {
    for (const b of bytes) h = ((h ^ BigInt(b)) * PRIME) & MASK
  }
  const sep = Uint8Array.of(0xff)
  const utf8 = new TextEncoder()
  for (const name of Object.keys(labels).sort()) {
    add(utf8.encode(name))
    add(sep)
    add(utf8.encode(labels[name]!))
    add(sep)
  }
  return h.toString(16).padStart(16, '0')
}

/** `{k="v", …}` as Prometheus prints a label set (sorted, Go-quoted values). */
function labelSetString(labels: Record<string, string>): string {
  return `{${Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(', ')}}`
}

/** The labels that identify the alert's series: the same break on the same instance, any onset. */
export function alertmanagerLabels(alert: Alert): Record<string, string> {
  return {
    alertname: alert.type,
    severity: alert.severity,
    fleet: alert.fleet,
    instance: alert.instance,
    model: alert.model,
    ...(alert.stage ? { stage: alert.stage } : {}),
  }
}

/** Everything else a person or a router reads; annotation values are strings by definition. */
function alertmanagerAnnotations(alert: Alert, group: AlertGroup | undefined): Record<string, string> {
  const out: Record<string, string> = {
    summary: alert.summary || summaryLine(alert),
    description: alert.suspected_cause,
    suggested_action: alert.suggested_action,
    statistic: alert.statistic,
    observed: String(alert.observed),
    baseline: String(alert.baseline),
    threshold: String(alert.threshold),
    breakid_alert_id: alert.id,
    exemplar_request_ids: alert.exemplar_request_ids.join(','),
  }
  const related = alert.related ?? []
  if (related.length > 0) {
    out.related = related.map((r) => `${r.type}${r.stage ? `/${r.stage}` : ''}: ${r.summary}`).join('\n')
  }
  if (alert.resolve_reason) out.resolve_reason = alert.resolve_reason
  if (group && group.firing_instances.length > 0) out.firing_instances = group.firing_instances.join(',')
  return out
}

export function alertmanagerBody(alert: Alert, ctx: BodyContext = {}): AlertmanagerBody {
  const labels = alertmanagerLabels(alert)
  const annotations = alertmanagerAnnotations(alert, ctx.group)
  // breakid's fleet group (type, fleet, stage) is the group: one break on many instances, one key
  const groupLabels: Record<string, string> = {
    alertname: alert.type,
    fleet: alert.fleet,
    ...(alert.stage ? { stage: alert.stage } : {}),
  }
  const base = ctx.externalUrl?.replace(/\/+$/, '') ?? ''
  return {
    version: '4',
    groupKey: `{}:${labelSetString(groupLabels)}`,
    truncatedAlerts: 0,
    status: alert.status,
    receiver: ctx.receiver ?? 'breakid',
    groupLabels,
    commonLabels: labels,
    commonAnnotations: annotations,
    externalURL: base,
    alerts: [
      {
        status: alert.status,
        labels,
        annotations,
        startsAt: rfc3339Micros(alert.starts_at_us),
        endsAt: alert.ends_at_us === null ? GO_ZERO_TIME : rfc3339Micros(alert.ends_at_us),
        generatorURL: base ? `${base}/alerts/${encodeURIComponent(alert.id)}` : '',
        fingerprint: labelsFingerprint(labels),
      },
    ],
  }
}

export function renderBody(alert: Alert, format: WebhookFormat, ctx: BodyContext = {}): string {
  switch (format) {
    case 'slack':
      return JSON.stringify(slackBody(alert, ctx))
    case 'alertmanager':
      return JSON.stringify(alertmanagerBody(alert, ctx))
    default:
      return JSON.stringify(jsonBody(alert, ctx))
  }
}
