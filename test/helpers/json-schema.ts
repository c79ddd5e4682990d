/**
 * A minimal JSON Schema (2020-12) validator for the subset breakid's published schemas use: type,
 * const, enum, required, properties, additionalProperties (boolean), items, anyOf, $ref into the
 * document's own $defs, minLength, minimum, pattern and format date-time. A keyword outside that
 * subset throws instead of being ignored, so a schema cannot silently rely on one this does not check.
 */
type Schema = Record<string, unknown>

const ANNOTATIONS = new Set(['$schema', '$id', 'title', 'description', '$defs', '$comment'])
const CHECKED = new Set([
  'type',
  'const',
  'enum',
  'required',
  'properties',
  'additionalProperties',
  'items',
  'anyOf',
  '$ref',
  'minLength',
  'minimum',
  'pattern',
  'format',
])

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/

function typeOf(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'array'
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number'
  return typeof v
}

function typeMatches(v: unknown, want: string): boolean {
  const got = typeOf(v)
  return got === want || (want === 'number' && got === 'integer')
}

function deepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}

/** Every violation as `<json pointer>: <what>`; empty when `value` is valid. */
export function validate(root: Schema, value: unknown): string[] {
  const resolve = (ref: string): Schema => {
    const m = /^#\/\$defs\/([A-Za-z0-9_]+)$/.exec(ref)
    const defs = root.$defs as Record<string, Schema> | undefined
    const target = m ? defs?.[m[1]!] : undefined
    if (!target) throw new Error(`unsupported or dangling $ref ${ref}`)
    return target
  }
  const check = (schema: Schema, v: unknown, at: string, errors: string[]): void => {
    for (const k of Object.keys(schema)) {
      if (!CHECKED.has(k) && !ANNOTATIONS.has(k))
        throw new Error(`schema keyword ${k} at ${at} is not supported`)
    }
    if (schema.$ref !== undefined) check(resolve(schema.$ref as string), v, at, errors)
    if (schema.type !== undefined) {
      const types = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string]
      if (!types.some((t) => typeMatches(v, t))) {
        errors.push(`${at}: expected ${types.join('|')}, got ${typeOf(v)}`)
        return
      }
    }
    if ('const' in schema && !deepEqual(schema.const, v))
      errors.push(`${at}: expected ${JSON.stringify(schema.const)}`)
    if (schema.enum !== undefined && !(schema.enum as unknown[]).some((e) => deepEqual(e, v))) {
      errors.push(`${at}: ${JSON.stringify(v)} is not one of ${JSON.stringify(schema.enum)}`)
    }
    if (schema.anyOf !== undefined) {
      const ok = (schema.anyOf as Schema[]).some((s) => {
        const branch: string[] = []
        check(s, v, at, branch)
        return branch.length === 0
      })
      if (!ok) errors.push(`${at}: matches none of anyOf`)
    }
    if (typeof v === 'string') {
      if (schema.minLength !== undefined && v.length < (schema.minLength as number)) {
        errors.push(`${at}: shorter than ${schema.minLength}`)
      }
      if (schema.pattern !== undefined && !new RegExp(schema.pattern as string, 'u').test(v)) {
        errors.push(`${at}: does not match ${schema.pattern}`)
      }
      if (schema.format === 'date-time' && (!RFC3339.test(v) || Number.isNaN(Date.parse(v)))) {
        errors.push(`${at}: not an RFC 3339 date-time`)
      } else if (schema.format !== undefined && schema.format !== 'date-time') {
        throw new Error(`format ${schema.format} is not supported`)
      }
    }
    if (typeof v === 'number' && schema.minimum !== undefined && v < (schema.minimum as number)) {
      errors.push(`${at}: below ${schema.minimum}`)
    }
    if (Array.isArray(v) && schema.items !== undefined) {
      for (const [i, item] of v.entries()) check(schema.items as Schema, item, `${at}/${i}`, errors)
    }
    if (typeOf(v) === 'object') {
      const obj = v as Record<string, unknown>
      for (const r of (schema.required as string[] | undefined) ?? []) {
        if (!(r in obj)) errors.push(`${at}: missing ${r}`)
      }
      const props = (schema.properties as Record<string, Schema> | undefined) ?? {}
      for (const [k, item] of Object.entries(obj)) {
        if (k in props) check(props[k]!, item, `${at}/${k}`, errors)
        else if (schema.additionalProperties === false) errors.push(`${at}: unexpected property ${k}`)
      }
    }
  }
  const errors: string[] = []
  check(root, value, '', errors)
  return errors
}
