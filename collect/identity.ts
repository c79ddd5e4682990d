/**
 * Which fleet, host and instance foreign telemetry belongs to. The same rule serves OTLP resources and
 * scrape targets, so the spans and the hardware samples of one server land on one instance — the
 * detectors join them by instance (starvation reads the spans' stages next to the samples' queue).
 *
 *   fleet    = resource `breakid.fleet`, else `service.namespace`, else the collector's --fleet
 *   host     = resource `host.name`, else the sender's address
 *   instance = resource `service.instance.id`, else `host.name`, else the sender's address
 *
 * Triton sets only `service.name` unless told more (`--trace-config opentelemetry,resource=…`), so by
 * default a Triton server is named by its address — the same name its scrape target gets (the URL's
 * host), which joins its traces with its /metrics.
 */
import type { Attributes } from './otlp/spans.ts'

export interface Identity {
  fleet: string
  host: string
  instance: string
}

const text = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() !== '' ? v : undefined)

/** `::ffff:10.0.0.5` → `10.0.0.5`; `localhost`, `::1` → `127.0.0.1` (one name per loopback sender). */
export function normalizeAddress(address: string): string {
  const a = address
    .trim()
    .replace(/^\[|\]$/g, '')
    .toLowerCase()
  if (a === 'localhost' || a === '::1' || a === '::ffff:127.0.0.1') return '127.0.0.1'
  return a.startsWith('::ffff:') ? a.slice('::ffff:'.length) : a
}

export function identityOf(resource: Attributes, peer: string, defaultFleet: string): Identity {
  const address = normalizeAddress(peer)
  const hostName = text(resource['host.name'])
  return {
    fleet: text(resource['breakid.fleet']) ?? text(resource['service.namespace']) ?? defaultFleet,
    host: hostName ?? address,
    instance: text(resource['service.instance.id']) ?? hostName ?? address,
  }
}
