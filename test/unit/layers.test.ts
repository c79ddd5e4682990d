/**
 * The layer rules of the design notes (README, "Layout"), enforced: every import of product code
 * points to its own folder or to a lower layer, and no set of files imports itself in a circle.
 * Tests and benchmarks sit on top and nothing imports them.
 */
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, it } from 'node:test'

const ROOT = resolve(import.meta.dirname, '../..')

/** Lower number = lower layer. Folders on one layer never import each other. */
export const LAYERS: Record<string, number> = {
  core: 0,
  contract: 1,
  bus: 2,
  store: 2,
  engine: 3,
  collect: 3,
  ingest: 3,
  detectors: 3,
  notify: 3,
  queries: 3,
  eval: 4,
  replay: 4,
  dashboard: 4,
  compare: 4,
  app: 5,
  bin: 6,
  bench: 7,
  test: 7,
  // deployment (the Grafana dashboards written as code): beside bin, under the tests that check it
  deploy: 6,
}

function sourceFiles(dir: string): string[] {
  const out: string[] = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) {
      if (e.name !== 'node_modules' && e.name !== 'results' && e.name !== 'fixtures')
        out.push(...sourceFiles(p))
    } else if (/\.(ts|mjs)$/.test(e.name)) out.push(p)
  }
  return out
}

/**
 * Relative imports of a file, resolved: static and dynamic imports, and with `entryPoints` the
 * `new URL(…)` of a worker thread's entry file, which depends on that file without importing it.
 */
function importsOf(file: string, entryPoints: boolean): string[] {
  const src = readFileSync(file, 'utf8')
  const re =
    /(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]|new URL\(\s*['"](\.{1,2}\/[^'"]+\.m?[jt]s)['"]/g
  return [...src.matchAll(re)]
    .filter((m) => entryPoints || m[1] !== undefined)
    .map((m) => resolve(dirname(file), (m[1] ?? m[2])!))
}

const folderOf = (file: string) => relative(ROOT, file).split('/')[0]!

const files = Object.keys(LAYERS).flatMap((folder) => {
  try {
    return sourceFiles(join(ROOT, folder))
  } catch {
    return [] // a folder of the plan that does not exist (yet)
  }
})
const graph = new Map(files.map((f) => [f, importsOf(f, true)]))
const staticGraph = new Map(files.map((f) => [f, importsOf(f, false)]))

describe('layers', () => {
  it('every product folder is assigned a layer', () => {
    const top = readdirSync(ROOT, { withFileTypes: true })
      .filter((e) => e.isDirectory() && !e.name.startsWith('.') && e.name !== 'node_modules')
      .map((e) => e.name)
    const unplaced = top.filter(
      (d) => !(d in LAYERS) && sourceFiles(join(ROOT, d)).some((f) => f.endsWith('.ts')),
    )
    assert.deepEqual(unplaced, [], 'folders with TypeScript code but no layer')
  })

  it('imports point to the same folder or a lower layer', () => {
    const broken: string[] = []
    for (const [file, deps] of graph) {
      const from = folderOf(file)
      for (const dep of deps) {
        const to = folderOf(dep)
        if (to === from) continue
        if (!(to in LAYERS)) continue // e.g. infra scripts, package.json
        if (LAYERS[to]! >= LAYERS[from]!) broken.push(`${relative(ROOT, file)} → ${relative(ROOT, dep)}`)
      }
    }
    assert.deepEqual(broken, [])
  })

  it('no import circles', () => {
    const state = new Map<string, 'open' | 'done'>()
    const circles: string[] = []
    const stack: string[] = []
    const visit = (f: string) => {
      state.set(f, 'open')
      stack.push(f)
      for (const dep of staticGraph.get(f) ?? []) {
        if (!staticGraph.has(dep)) continue
        if (state.get(dep) === 'open') {
          circles.push(
            stack
              .slice(stack.indexOf(dep))
              .map((p) => relative(ROOT, p))
              .join(' → '),
          )
        } else if (!state.has(dep)) visit(dep)
      }
      stack.pop()
      state.set(f, 'done')
    }
    for (const f of staticGraph.keys()) if (!state.has(f)) visit(f)
    assert.deepEqual(circles, [])
  })

  it('the check itself sees a violation (control)', () => {
    assert.ok(LAYERS.core! < LAYERS.bin!)
    assert.ok(graph.size > 100, `read only ${graph.size} files`)
    const upward = [...graph].some(
      ([f, deps]) => folderOf(f) === 'bin' && deps.some((d) => folderOf(d) === 'app'),
    )
    assert.ok(upward, 'bin imports app: the graph must see cross-folder imports')
  })
})
