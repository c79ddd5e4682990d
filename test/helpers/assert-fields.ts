import assert from 'node:assert/strict'

/** Asserts the fields of a record that `expected` names, each to its value (the message names the field). */
export function assertFields<T extends object>(actual: T, expected: Partial<T>, what = 'record'): void {
  for (const [field, value] of Object.entries(expected)) {
    assert.deepEqual(actual[field as keyof T], value, `${what}.${field}`)
  }
}
