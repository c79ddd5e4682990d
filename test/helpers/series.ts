/**
 * Compact series notation for time-stepped detector tests (after Prometheus' rule tests):
 * "0.6x10 0.1x4 0.6x3" is ten samples of 0.6, four of 0.1, three of 0.6.
 */
export function series(notation: string): number[] {
  return notation
    .trim()
    .split(/\s+/)
    .flatMap((part) => {
      const [value, times] = part.split('x')
      return Array.from({ length: times === undefined ? 1 : Number(times) }, () => Number(value))
    })
}
