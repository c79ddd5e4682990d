/**
 * Cost: the `pricing` section of the configuration (price per instance-hour of each instance type, CPU
 * or accelerator, and which type each instance or host is) and the named query `run-cost`
 * (queries/sql/run-cost.sql) that turns a run's telemetry into money: cost per 1,000 inferences,
 * executor time spent idle or starved, and the compute the result cache saved.
 *
 * ```json
 * "pricing": {
 *   "currency": "USD",
 *   "instanceTypes": {
 *     "c7i.large":  { "pricePerHour": 0.0893, "kind": "cpu" },
 *     "g5.xlarge":  { "pricePerHour": 1.006,  "kind": "accelerator" }
 *   },
 *   "instances": { "gpu-node-1": "g5.xlarge" },
 *   "defaultInstanceType": "c7i.large"
 * }
 * ```
 */
import { InvalidInputError } from '../core/errors.ts'
import type { NamedQuery, Selection } from './source.ts'

export const INSTANCE_KINDS = ['cpu', 'accelerator'] as const
export type InstanceKind = (typeof INSTANCE_KINDS)[number]

export interface InstanceType {
  pricePerHour: number
  kind: InstanceKind
}

export interface Pricing {
  currency: string
  instanceTypes: Readonly<Record<string, InstanceType>>
  /** instance or host name → instance type */
  instances: Readonly<Record<string, string>>
  /** the type of every instance not named in `instances`; undefined: those are not priced */
  defaultInstanceType?: string
}

const isObject = (x: unknown): x is Record<string, unknown> =>
  typeof x === 'object' && x !== null && !Array.isArray(x)

/** Validates a `pricing` section (from a config file or an experiment plan); errors name the key. */
export function parsePricing(raw: unknown, where = 'pricing'): Pricing {
  if (!isObject(raw)) throw new InvalidInputError(`${where}: expected an object`)
  for (const k of Object.keys(raw)) {
    if (!['currency', 'instanceTypes', 'instances', 'defaultInstanceType'].includes(k)) {
      throw new InvalidInputError(
        `${where}: unknown key "${k}" (currency, instanceTypes, instances, defaultInstanceType)`,
      )
    }
  }
  const currency = raw.currency ?? 'USD'
  if (typeof currency !== 'string' || !/^[A-Za-z$€£¥]{1,8}$/.test(currency)) {
    throw new InvalidInputError(
      `${where}.currency: expected a short currency code, got ${JSON.stringify(currency)}`,
    )
  }
  if (!isObject(raw.instanceTypes) || Object.keys(raw.instanceTypes).length === 0) {
    throw new InvalidInputError(`${where}.instanceTypes: expected at least one instance type`)
  }
  const instanceTypes: Record<string, InstanceType> = {}
  for (const [name, t] of Object.entries(raw.instanceTypes)) {
    const at = `${where}.instanceTypes.${name}`
    if (!isObject(t)) throw new InvalidInputError(`${at}: expected {"pricePerHour", "kind"}`)
    const price = t.pricePerHour
    if (typeof price !== 'number' || !Number.isFinite(price) || price < 0) {
      throw new InvalidInputError(`${at}.pricePerHour: expected a number >= 0, got ${JSON.stringify(price)}`)
    }
    if (!INSTANCE_KINDS.includes(t.kind as InstanceKind)) {
      throw new InvalidInputError(
        `${at}.kind: expected ${INSTANCE_KINDS.join(' or ')}, got ${JSON.stringify(t.kind)}`,
      )
    }
    for (const k of Object.keys(t)) {
      if (k !== 'pricePerHour' && k !== 'kind') throw new InvalidInputError(`${at}: unknown key "${k}"`)
    }
    instanceTypes[name] = Object.freeze({ pricePerHour: price, kind: t.kind as InstanceKind })
  }
  const instances: Record<string, string> = {}
  if (raw.instances !== undefined) {
    if (!isObject(raw.instances)) throw new InvalidInputError(`${where}.instances: expected an object`)
    for (const [name, type] of Object.entries(raw.instances)) {
      if (typeof type !== 'string' || !(type in instanceTypes)) {
        throw new InvalidInputError(
          `${where}.instances.${name}: ${JSON.stringify(type)} is not one of the instance types (${Object.keys(instanceTypes).join(', ')})`,
        )
      }
      if (name === '*')
        throw new InvalidInputError(`${where}.instances: use defaultInstanceType instead of "*"`)
      instances[name] = type
    }
  }
  const def = raw.defaultInstanceType
  if (def !== undefined && (typeof def !== 'string' || !(def in instanceTypes))) {
    throw new InvalidInputError(
      `${where}.defaultInstanceType: ${JSON.stringify(def)} is not one of the instance types`,
    )
  }
  return Object.freeze({
    currency,
    instanceTypes: Object.freeze(instanceTypes),
    instances: Object.freeze(instances),
    ...(def === undefined ? {} : { defaultInstanceType: def as string }),
  })
}

/**
 * The `prices` parameter of the run-cost query: instance or host name → {type, kind, price}, and
 * "*" for the default type. Exported for the dashboard, which asks the query API the same way.
 */
export function pricesParam(pricing: Pricing): string {
  const entry = (type: string) => ({
    type,
    kind: pricing.instanceTypes[type]!.kind,
    price: pricing.instanceTypes[type]!.pricePerHour,
  })
  const out: Record<string, { type: string; kind: InstanceKind; price: number }> = {}
  for (const [name, type] of Object.entries(pricing.instances)) out[name] = entry(type)
  if (pricing.defaultInstanceType) out['*'] = entry(pricing.defaultInstanceType)
  return JSON.stringify(out)
}

/** One instance's cost in a selection (a row of the run-cost query). */
export interface CostRow {
  instance: string
  host: string
  instance_type: string
  kind: string
  price_per_hour: number
  requests: number
  ok: number
  billed_s: number
  cost: number
  cost_per_1k: number | null
  idle_s: number
  idle_cost: number
  starved_s: number
  starved_cost: number
  cache_hits: number
  compute_avoided_s: number
  cache_saved_cost: number
}

const NUMERIC: readonly (keyof CostRow)[] = [
  'price_per_hour',
  'requests',
  'ok',
  'billed_s',
  'cost',
  'idle_s',
  'idle_cost',
  'starved_s',
  'starved_cost',
  'cache_hits',
  'compute_avoided_s',
  'cache_saved_cost',
]

/** The cost of a selection per instance, through the named query. */
export async function readCost(
  query: NamedQuery,
  selection: Selection,
  pricing: Pricing,
): Promise<CostRow[]> {
  const result = await query('run-cost', { ...selection.params, prices: pricesParam(pricing) })
  return result.rows.map((row) => {
    const o: Record<string, unknown> = {}
    result.columns.forEach((c, i) => {
      o[c.name] = row[i]
    })
    for (const k of NUMERIC) o[k] = Number(o[k] ?? 0)
    o.cost_per_1k = o.cost_per_1k === null || o.cost_per_1k === undefined ? null : Number(o.cost_per_1k)
    return o as unknown as CostRow
  })
}

/** Totals over instances: cost per 1,000 ok inferences and the idle/starved/cache-saved costs. */
export function costTotals(rows: readonly CostRow[]): {
  ok: number
  cost: number
  costPer1k: number
  idleCost: number
  starvedCost: number
  cacheSavedCost: number
} {
  const sum = (k: keyof CostRow) => rows.reduce((s, r) => s + (Number(r[k]) || 0), 0)
  const ok = sum('ok')
  const cost = sum('cost')
  return {
    ok,
    cost,
    costPer1k: ok > 0 ? (cost / ok) * 1000 : Number.NaN,
    idleCost: sum('idle_cost'),
    starvedCost: sum('starved_cost'),
    cacheSavedCost: sum('cache_saved_cost'),
  }
}
