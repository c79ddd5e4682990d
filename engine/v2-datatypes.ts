/**
 * The Open Inference Protocol's tensor datatypes and the values a JSON `data` array may hold for
 * each. A value a datatype cannot hold is refused with a message naming the limit, never converted: 3.4e39 would become Infinity in an FP32 tensor (and the
 * model would answer nulls), 300 would wrap to 44 in UINT8, 1e20 would wrap in INT64.
 */

interface Datatype {
  /** the limit a value must respect, as the error states it */
  limit: string
  accepts(v: unknown): boolean
}

const integer = (name: string, min: number | bigint, max: number | bigint): Datatype => ({
  limit: `an integer in ${min}..${max} (${name})`,
  // Number comparisons against 2^63 or 2^64 are exact: both are powers of two
  accepts: (v) => typeof v === 'number' && Number.isInteger(v) && v >= Number(min) && v <= Number(max),
})

const float = (name: string, max: number): Datatype => ({
  limit: `a finite number within ±${max} (${name})`,
  accepts: (v) => typeof v === 'number' && Number.isFinite(v) && Math.abs(v) <= max,
})

/** the largest finite float32 */
const FP32_MAX = 3.4028234663852886e38

const DATATYPES: Readonly<Record<string, Datatype>> = {
  BOOL: { limit: 'true or false (BOOL)', accepts: (v) => typeof v === 'boolean' },
  UINT8: integer('UINT8', 0, 255),
  INT8: integer('INT8', -128, 127),
  UINT16: integer('UINT16', 0, 65_535),
  INT16: integer('INT16', -32_768, 32_767),
  UINT32: integer('UINT32', 0, 4_294_967_295),
  INT32: integer('INT32', -2_147_483_648, 2_147_483_647),
  // 2^63 - 1 and 2^64 - 1 are not doubles: the exclusive bound 2^63 (2^64) is, and `<` keeps it out
  UINT64: {
    ...integer('UINT64', 0, 18_446_744_073_709_551_615n),
    accepts: (v) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < 2 ** 64,
  },
  INT64: {
    ...integer('INT64', -9_223_372_036_854_775_808n, 9_223_372_036_854_775_807n),
    accepts: (v) => typeof v === 'number' && Number.isInteger(v) && v >= -(2 ** 63) && v < 2 ** 63,
  },
  FP16: float('FP16', 65_504),
  BF16: float('BF16', 3.3895313892515355e38),
  // a value that rounds to the largest float32 is in range; one that rounds to Infinity is not
  FP32: {
    ...float('FP32', FP32_MAX),
    accepts: (v) => typeof v === 'number' && Number.isFinite(Math.fround(v)),
  },
  FP64: float('FP64', Number.MAX_VALUE),
}

/**
 * The first JSON value `datatype` cannot hold, as a message naming the input, the value's index and
 * the limit; undefined when every value fits (or the datatype is unknown: checked elsewhere).
 */
export function outOfRange(input: string, datatype: string, values: readonly unknown[]): string | undefined {
  const type = DATATYPES[datatype]
  if (!type) return undefined
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    if (!type.accepts(v)) {
      const shown =
        typeof v === 'string'
          ? JSON.stringify(v.slice(0, 32))
          : v !== null && typeof v === 'object'
            ? 'an object'
            : String(v)
      return `input "${input}": value ${i} is not ${type.limit}: ${shown}`
    }
  }
  return undefined
}
