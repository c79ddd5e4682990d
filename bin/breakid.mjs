#!/usr/bin/env node
// The published entry point: registers the TypeScript loader, then runs the CLI. Keeping the source
// as .ts with no build step means `npm ci && npx breakid …` works on a fresh clone.
import { register } from 'tsx/esm/api'

register()
const { main } = await import('./cli.ts')
process.exitCode = await main(process.argv.slice(2))
