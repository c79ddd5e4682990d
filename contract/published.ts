/**
 * What the contract publishes outside the code — the current schemas as `.avsc` files and the
 * README's tables of fields, alert types and faults — rendered from the one definition in this folder.
 * `npm run contract:generate` writes them (contract/generate.ts); test/unit/contract.test.ts fails
 * when a committed file and this rendering disagree.
 */
import { FAULTS, type FaultType } from './faults.ts'
import { type AvroSchemaJson, RECORD_SCHEMAS, type RecordTypeName } from './schemas.ts'
import { ALERT_TYPES, type AlertType } from './vocabulary.ts'

export function avscText(name: RecordTypeName): string {
  return `${JSON.stringify(RECORD_SCHEMAS[name].schema, null, 2)}\n`
}

interface FieldJson {
  name: string
  type: unknown
  doc?: string
  default?: unknown
}

/** A schema type as a reader would say it: `long (timestamp-micros)`, `string or null`, `array of …`. */
function typeName(type: unknown): string {
  if (typeof type === 'string') return type
  if (Array.isArray(type)) {
    const rest = type.filter((t) => t !== 'null').map(typeName)
    return type.includes('null') ? `${rest.join(' or ')} or null` : rest.join(' or ')
  }
  const t = type as { type: string; logicalType?: string; symbols?: string[]; items?: unknown; name?: string }
  if (t.logicalType) return `${t.type} (${t.logicalType})`
  if (t.type === 'enum') return `enum: ${t.symbols!.join(', ')}`
  if (t.type === 'array') return `array of ${typeName(t.items)}`
  if (t.type === 'record') return `record ${t.name}`
  return t.type
}

const cell = (s: string) => s.replaceAll('|', '\\|')

function fieldTable(schema: AvroSchemaJson): string {
  const rows = (schema.fields as FieldJson[]).map(
    (f) => `| \`${f.name}\` | ${cell(typeName(f.type))} | ${cell(f.doc ?? '')} |`,
  )
  return ['| field | type | meaning |', '| --- | --- | --- |', ...rows].join('\n')
}

function alertTypesTable(): string {
  const rows = (Object.entries(ALERT_TYPES) as [AlertType, string][]).map(
    ([type, what]) => `| \`${type}\` | ${cell(what)} |`,
  )
  return ['| alert type | what it detects |', '| --- | --- |', ...rows].join('\n')
}

function faultsTable(): string {
  const rows = (Object.entries(FAULTS) as [FaultType, (typeof FAULTS)[FaultType]][]).map(([type, f]) => {
    const params = Object.entries(f.params)
      .map(([p, spec]) => `\`${p}\` (${spec.default})`)
      .join(', ')
    return `| \`${type}\` | ${params} | ${cell(f.effect)} | ${cell(f.showsUpIn)} | \`${f.primaryAlert}\` |`
  })
  return [
    '| fault | parameters (default) | effect | shows up in | pages as |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n')
}

/** The README's generated sections, by the name in their markers. */
export function readmeSections(): Record<string, string> {
  return {
    'span-fields': fieldTable(RECORD_SCHEMAS.span.schema),
    'hw-sample-fields': fieldTable(RECORD_SCHEMAS.hw_sample.schema),
    'alert-fields': fieldTable(RECORD_SCHEMAS.alert.schema),
    'alert-types': alertTypesTable(),
    faults: faultsTable(),
  }
}

const marker = (name: string, end: boolean) => `<!-- ${end ? 'end' : 'begin'} generated: ${name} -->`

/**
 * `readme` with every generated section replaced by its current rendering. Throws when a section's
 * markers are missing, so a section cannot silently stop being generated.
 */
export function renderReadme(readme: string): string {
  let out = readme
  for (const [name, body] of Object.entries(readmeSections())) {
    const begin = marker(name, false)
    const end = marker(name, true)
    const a = out.indexOf(begin)
    const b = out.indexOf(end)
    if (a < 0 || b < a) throw new Error(`README: markers for the generated section "${name}" are missing`)
    out = `${out.slice(0, a + begin.length)}\n${body}\n${out.slice(b)}`
  }
  return out
}
