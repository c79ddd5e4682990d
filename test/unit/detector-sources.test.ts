/**
 * The README's table of which detector works on which telemetry source is rendered from
 * detectors/sources.ts, and covers every detector of the live set.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { defaultDetectors } from '../../app/pipeline.ts'
import { ALERT_TYPE_NAMES } from '../../contract/vocabulary.ts'
import { DETECTOR_SOURCES, detectorSourcesTable } from '../../detectors/sources.ts'

test('the README table is detectorSourcesTable()', () => {
  const readme = readFileSync(join(import.meta.dirname, '../../README.md'), 'utf8')
  const m =
    /<!-- begin generated: detector-sources -->\n([\s\S]*?)\n<!-- end generated: detector-sources -->/.exec(
      readme,
    )
  assert.ok(m, 'the README has the detector-sources markers')
  assert.equal(m[1], detectorSourcesTable(), 'paste detectorSourcesTable() between the markers')
})

test('every alert type and every live detector has a row', () => {
  assert.deepEqual(Object.keys(DETECTOR_SOURCES).sort(), [...ALERT_TYPE_NAMES].sort())
  for (const d of defaultDetectors()) assert.ok(d.type in DETECTOR_SOURCES, d.type)
})
