/**
 * Tail probabilities as z-scores: the normal quantile (Acklam's rational approximation, relative error
 * < 1.2e-9 over the whole range, tails included, where simple-statistics' probit loses precision), and
 * the Poisson tails in log space, so a count far above its rate gives a finite, exact-enough z.
 */
import { gammaln } from 'simple-statistics'

const A = [
  -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716,
  2.506628277459239,
]
const B = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572]
const C = [
  -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
  2.938163982698783,
]
const D = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416]
const P_LOW = 0.02425

/** z such that P(Z ≤ z) = p for a standard normal Z */
export function normalQuantile(p: number): number {
  if (!(p > 0)) return Number.NEGATIVE_INFINITY
  if (!(p < 1)) return Number.POSITIVE_INFINITY
  if (p < P_LOW) return lowerTailZ(Math.log(p))
  if (p > 1 - P_LOW) return -lowerTailZ(Math.log1p(-p))
  const q = p - 0.5
  const r = q * q
  return (
    ((((((A[0]! * r + A[1]!) * r + A[2]!) * r + A[3]!) * r + A[4]!) * r + A[5]!) * q) /
    (((((B[0]! * r + B[1]!) * r + B[2]!) * r + B[3]!) * r + B[4]!) * r + 1)
  )
}

/** z (≤ 0) whose lower-tail probability is e^logP, for small probabilities (logP < ln 0.02425) */
function lowerTailZ(logP: number): number {
  const q = Math.sqrt(-2 * logP)
  return (
    (((((C[0]! * q + C[1]!) * q + C[2]!) * q + C[3]!) * q + C[4]!) * q + C[5]!) /
    ((((D[0]! * q + D[1]!) * q + D[2]!) * q + D[3]!) * q + 1)
  )
}

/** the z (≥ 0) of an upper-tail probability given as its logarithm; works far below 1e-300 */
export function zOfUpperTail(logP: number): number {
  if (logP >= Math.log(0.5)) return 0
  return logP < Math.log(P_LOW) ? -lowerTailZ(logP) : -normalQuantile(Math.exp(logP))
}

const logPmf = (k: number, lambda: number) => k * Math.log(lambda) - lambda - gammaln(k + 1)

/** ln P(Y ≥ k) for Y ~ Poisson(lambda), k a non-negative integer */
export function poissonLogUpper(k: number, lambda: number): number {
  if (k <= 0) return 0
  if (k <= lambda) {
    // the tail is large: 1 − P(Y ≤ k − 1)
    return Math.log1p(-Math.exp(poissonLogLower(k - 1, lambda)))
  }
  let sum = 1
  let ratio = 1
  for (let j = k; j < k + 10_000; j++) {
    ratio *= lambda / (j + 1)
    sum += ratio
    if (ratio < 1e-12 * sum) break
  }
  return logPmf(k, lambda) + Math.log(sum)
}

/** ln P(Y ≤ k) for Y ~ Poisson(lambda), k a non-negative integer */
export function poissonLogLower(k: number, lambda: number): number {
  if (k < 0) return Number.NEGATIVE_INFINITY
  if (k >= lambda) return Math.log1p(-Math.exp(poissonLogUpper(k + 1, lambda)))
  let sum = 1
  let ratio = 1
  for (let j = k; j > 0; j--) {
    ratio *= j / lambda
    sum += ratio
    if (ratio < 1e-12 * sum) break
  }
  return logPmf(k, lambda) + Math.log(sum)
}

/**
 * The signed z of a count under Poisson(lambda): positive when the count is improbably high, negative
 * when improbably low, 0 around the rate (each side's tail probability turned into a normal z).
 */
export function poissonZ(count: number, lambda: number): number {
  if (count > lambda) return zOfUpperTail(poissonLogUpper(count, lambda))
  if (count < lambda) return -zOfUpperTail(poissonLogLower(count, lambda))
  return 0
}
