/**
 * How queries/allowed-functions.txt is derived from an engine's system.functions, so the pinned
 * list can be checked against (and, with BREAKID_UPDATE_ALLOWED_FUNCTIONS=1, regenerated from) the
 * bundled chDB. The rule: functions whose documented category only computes on its arguments,
 * minus the few in those categories that do more, plus reviewed picks from "Other"; an alias goes
 * with the function it aliases. Categories that read files, the network, dictionaries, the server
 * or its configuration (AI, Dictionary, Embedded Dictionary, Introspection, Internal, Machine
 * Learning, Other except the picks, …) are left out whole.
 */
import type { ClickHouseClient } from '@clickhouse/client'

export const PURE_CATEGORIES = [
  'Aggregate Functions',
  'Arithmetic',
  'Arrays',
  'Bit',
  'Bitmap',
  'Comparison',
  'Conditional',
  'Dates and Times',
  'Distance',
  'Encoding',
  'Financial',
  'Hash',
  'IP Address',
  'JSON',
  'Logical',
  'Map',
  'Mathematical',
  'Null',
  'Random Number',
  'Rounding',
  'String',
  'String Replacement',
  'String Search',
  'String Splitting',
  'Time Window',
  'Tuple',
  'Type Conversion',
  'URL',
  'UUID',
]

/** In a pure category but not pure: server-configured lists, distributed-only or internal variants. */
export const EXCLUDED = [
  /^cutToFirstSignificantSubdomainCustom/, // reads a TLD list named in the server's configuration
  /^firstSignificantSubdomainCustom/,
  /^global/, // GLOBAL IN: for distributed queries
  /IgnoreSet$/, // internal forms of IN
]

/** Reviewed picks from the "Other" category: they compute on their arguments only. */
export const OTHER_PICKS = [
  'bar',
  'byteSize',
  'countDigits',
  'defaultValueOfArgumentType',
  'defaultValueOfTypeName',
  'dumpColumnStructure',
  'finalizeAggregation',
  'formatReadableDecimalSize',
  'formatReadableQuantity',
  'formatReadableSize',
  'formatReadableTimeDelta',
  'getSizeOfEnumType',
  'getSubcolumn',
  'identity',
  'ignore',
  'indexHint',
  'initializeAggregation',
  'isConstant',
  'isDecimalOverflow',
  'lowCardinalityIndices',
  'lowCardinalityKeys',
  'MACNumToString',
  'MACStringToNum',
  'MACStringToOUI',
  'materialize',
  'neighbor',
  'parseReadableSize',
  'parseReadableSizeOrNull',
  'parseReadableSizeOrZero',
  'parseTimeDelta',
  'rowNumberInAllBlocks',
  'rowNumberInBlock',
  'runningAccumulate',
  'runningDifference',
  'runningDifferenceStartingWithFirstValue',
  'throwIf',
  'toColumnTypeName',
  'toTypeName',
  'transform',
  'variantElement',
  'variantType',
  'visibleWidth',
]

interface FunctionRow {
  name: string
  canonical: string
  category: string
  case_insensitive: number | string
}

/** `[Category]` sections of `name` / `name~` (any case), sorted, as allowed-functions.txt has them. */
export async function deriveAllowedFunctions(client: ClickHouseClient): Promise<Map<string, string[]>> {
  const rs = await client.query({
    query: `SELECT f.name AS name, if(f.alias_to = '', f.name, f.alias_to) AS canonical,
              c.categories AS category, f.case_insensitive AS case_insensitive
            FROM system.functions AS f
            LEFT JOIN (SELECT name, categories FROM system.functions WHERE alias_to = '') AS c
              ON c.name = if(f.alias_to = '', f.name, f.alias_to)`,
    format: 'JSONEachRow',
  })
  const sections = new Map<string, string[]>()
  for (const row of await rs.json<FunctionRow>()) {
    const pick = OTHER_PICKS.includes(row.canonical)
    const pure = PURE_CATEGORIES.includes(row.category) && !EXCLUDED.some((re) => re.test(row.canonical))
    if (!pick && !pure) continue
    const section = pick ? 'Other (reviewed)' : row.category
    const list = sections.get(section) ?? []
    list.push(Number(row.case_insensitive) === 1 ? `${row.name}~` : row.name)
    sections.set(section, list)
  }
  for (const list of sections.values()) list.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  return new Map([...sections].sort(([a], [b]) => (a < b ? -1 : 1)))
}

export const ALLOWED_FUNCTIONS_HEADER = `# The functions ad-hoc SQL may call (queries/sql-guard.ts): an allow-list, pinned. A function a
# later ClickHouse adds is refused until it is added here. Derived from the system.functions of the
# bundled chDB by test/helpers/allowed-functions.ts (categories that only compute on their
# arguments, plus reviewed picks from "Other"); test/unit/sql-guard.test.ts fails when the bundled
# engine's derivation differs, and BREAKID_UPDATE_ALLOWED_FUNCTIONS=1 rewrites this file from it:
# review the difference before committing it. A name followed by ~ matches in any case.`

export function formatAllowedFunctions(sections: Map<string, string[]>, engineVersion: string): string {
  const lines = [ALLOWED_FUNCTIONS_HEADER, `# Engine: ClickHouse ${engineVersion}.`]
  for (const [section, names] of sections) {
    lines.push('', `[${section}]`)
    let line = ''
    for (const name of names) {
      if (line.length + name.length + 1 > 100) {
        lines.push(line)
        line = name
      } else line = line ? `${line} ${name}` : name
    }
    if (line) lines.push(line)
  }
  return `${lines.join('\n')}\n`
}
