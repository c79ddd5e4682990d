/**
 * The dashboard's static files: its own script, style sheet and icon (dashboard/static/) and uPlot
 * from the installed package (no CDN). Read once at start, gzipped once, served with a content hash
 * in the URL so browsers cache them for good and a new version is a new URL.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'

export interface Asset {
  /** the URL path under the dashboard's asset prefix, with the content hash: `app.3f2a91c0.js` */
  file: string
  type: string
  body: Buffer
  gzipped: Buffer
}

const STATIC_DIR = fileURLToPath(new URL('./static/', import.meta.url))
const require = createRequire(import.meta.url)

const SOURCES: { name: string; path: () => string; type: string }[] = [
  { name: 'uplot.js', path: () => require.resolve('uplot/dist/uPlot.iife.min.js'), type: 'text/javascript' },
  { name: 'uplot.css', path: () => require.resolve('uplot/dist/uPlot.min.css'), type: 'text/css' },
  { name: 'app.js', path: () => `${STATIC_DIR}app.js`, type: 'text/javascript' },
  { name: 'app.css', path: () => `${STATIC_DIR}app.css`, type: 'text/css' },
  { name: 'icon.svg', path: () => `${STATIC_DIR}icon.svg`, type: 'image/svg+xml' },
]

let cache: Map<string, Asset> | undefined

/** Every asset by its plain name (`app.js`); the hashed name is `asset.file`. */
export function dashboardAssets(): Map<string, Asset> {
  if (cache) return cache
  const out = new Map<string, Asset>()
  for (const src of SOURCES) {
    const body = readFileSync(src.path())
    const hash = createHash('sha256').update(body).digest('hex').slice(0, 10)
    const dot = src.name.lastIndexOf('.')
    out.set(src.name, {
      file: `${src.name.slice(0, dot)}.${hash}${src.name.slice(dot)}`,
      type: `${src.type}${src.type.startsWith('text/') ? '; charset=utf-8' : ''}`,
      body,
      gzipped: gzipSync(body, { level: 9 }),
    })
  }
  cache = out
  return out
}

/** Bytes a first visit downloads for the scripts, styles and icon, plain and gzipped. */
export function assetBytes(): { plain: number; gzipped: number } {
  let plain = 0
  let gzipped = 0
  for (const a of dashboardAssets().values()) {
    plain += a.body.length
    gzipped += a.gzipped.length
  }
  return { plain, gzipped }
}
