/**
 * A strict reader of the Prometheus text exposition format 0.0.4 for tests: it fails on anything it
 * does not understand, so an endpoint cannot serve text Prometheus would reject and still pass.
 */
import assert from 'node:assert/strict'

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}
export interface Exposition {
  types: Map<string, string>
  samples: Sample[]
}

/** A strict parser of the text format 0.0.4: fails on anything it does not understand. */
export function parseExposition(text: string, opts: { allowUntyped?: boolean } = {}): Exposition {
  assert.ok(text.endsWith('\n'), 'exposition ends with a newline')
  const types = new Map<string, string>()
  const helps = new Set<string>()
  const samples: Sample[] = []
  const familyOf = (name: string) => {
    for (const suffix of ['_bucket', '_sum', '_count']) {
      const base = name.slice(0, -suffix.length)
      if (name.endsWith(suffix) && types.get(base) === 'histogram') return base
    }
    return name
  }
  for (const line of text.slice(0, -1).split('\n')) {
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$/.exec(line)
    if (m) {
      assert.ok(!helps.has(m[1]!), `one HELP for ${m[1]}`)
      helps.add(m[1]!)
      continue
    }
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line)
    if (m) {
      assert.ok(!types.has(m[1]!), `one TYPE for ${m[1]}`)
      types.set(m[1]!, m[2]!)
      continue
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.]+(?:e[+-]?[0-9]+)?|[+-]Inf|NaN)$/.exec(line)
    assert.ok(m, `unparseable line: ${JSON.stringify(line)}`)
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/g)) {
      labels[l[1]!] = l[2]!
    }
    const name = m[1]!
    const family = familyOf(name)
    // the format lets a family go without HELP and TYPE (untyped); the strict default does not
    const untyped = opts.allowUntyped && !types.has(family) && !helps.has(family)
    assert.ok(untyped || types.has(family), `${name}: TYPE declared before its samples`)
    assert.ok(untyped || helps.has(family), `${name}: HELP declared`)
    samples.push({ name, labels, value: Number(m[3]) })
  }
  return { types, samples }
}

export const value = (e: Exposition, name: string, labels: Record<string, string>) => {
  const found = e.samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )
  assert.equal(found.length, 1, `one sample ${name}${JSON.stringify(labels)} (found ${found.length})`)
  return found[0]!.value
}

/** Checks a histogram series: buckets cumulative, `le` increasing, +Inf = _count. Returns its buckets. */
export function checkHistogram(e: Exposition, name: string, labels: Record<string, string>) {
  assert.equal(e.types.get(name), 'histogram')
  const buckets = e.samples.filter(
    (s) => s.name === `${name}_bucket` && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )
  assert.ok(buckets.length > 1, `${name} has buckets`)
  assert.equal(buckets.at(-1)!.labels.le, '+Inf')
  for (let i = 1; i < buckets.length; i++) {
    assert.ok(buckets[i]!.value >= buckets[i - 1]!.value, `${name} buckets are cumulative`)
    if (i < buckets.length - 1)
      assert.ok(Number(buckets[i]!.labels.le) > Number(buckets[i - 1]!.labels.le), `${name} le increases`)
  }
  assert.equal(buckets.at(-1)!.value, value(e, `${name}_count`, labels), `${name} +Inf = _count`)
  return { buckets, sum: value(e, `${name}_sum`, labels), count: value(e, `${name}_count`, labels) }
}
