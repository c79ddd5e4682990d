/**
 * Run ids: the name of one run (`breakid up`, `serve`, `loadgen`, one experiment cell) carried in the
 * `run_id` field of spans, hardware samples and alerts, so a run can be named later instead of a
 * time range (`breakid compare --baseline run:<id>`). A load generator may set it per request with
 * the `breakid-run-id` header, so one engine can serve several runs (experiment cells) at once.
 */
import { randomBytes } from 'node:crypto'

/** The request header that sets the run id of one request (overrides the engine's own). */
export const RUN_ID_HEADER = 'breakid-run-id'

/** Longest run id accepted: it is stored on every record, so it stays short. */
export const RUN_ID_MAX_LENGTH = 64

/** Letters, digits and `._:-`, starting with a letter or digit: safe in a header, a file name and SQL. */
const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/

export function isRunId(value: unknown): value is string {
  return typeof value === 'string' && value.length <= RUN_ID_MAX_LENGTH && RUN_ID.test(value)
}

/** Why a value is not a run id, for an error message (undefined when it is one). */
export function runIdProblem(value: unknown): string | undefined {
  if (isRunId(value)) return undefined
  if (typeof value !== 'string') return 'a run id is one string'
  if (value.length > RUN_ID_MAX_LENGTH) return `longer than ${RUN_ID_MAX_LENGTH} characters`
  return 'use letters, digits and . _ : - (starting with a letter or digit)'
}

/**
 * A fresh run id: `<kind>-<UTC time to the second>-<4 random hex digits>`, e.g.
 * `up-20261127T001929Z-3fa1`: sorts by start time, says what made it, and two runs started in the
 * same second still differ.
 */
export function newRunId(kind: string, nowMs: number = Date.now()): string {
  const stamp = new Date(nowMs)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')
  const id = `${kind}-${stamp}-${randomBytes(2).toString('hex')}`
  if (!isRunId(id)) throw new Error(`run id kind "${kind}" gives an invalid run id`)
  return id
}
