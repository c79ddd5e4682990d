/**
 * `npm run contract:generate`: writes the current schemas' `.avsc` files and the README's generated
 * tables from the contract. Published `.avsc` files of earlier versions are never rewritten.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { avscText, renderReadme } from './published.ts'
import { AVSC_DIR, avscFileName, RECORD_SCHEMAS, type RecordTypeName } from './schemas.ts'

const README = join(import.meta.dirname, '..', 'README.md')

for (const name of Object.keys(RECORD_SCHEMAS) as RecordTypeName[]) {
  const file = join(AVSC_DIR, avscFileName(name, RECORD_SCHEMAS[name].version))
  const text = avscText(name)
  if (!existsSync(file) || readFileSync(file, 'utf8') !== text) {
    writeFileSync(file, text)
    console.log(`wrote ${file}`)
  }
}
const readme = readFileSync(README, 'utf8')
const rendered = renderReadme(readme)
if (rendered !== readme) {
  writeFileSync(README, rendered)
  console.log(`wrote ${README}`)
}
