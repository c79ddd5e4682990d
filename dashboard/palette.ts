/**
 * Series colours of the dashboard and the report, in one place (the page gets them in its boot
 * data). Okabe–Ito: distinguishable with the common colour-vision deficiencies and readable on the
 * light and the dark theme.
 */
import { STAGES } from '../contract/vocabulary.ts'

export const PALETTE: readonly string[] = [
  '#0072B2',
  '#E69F00',
  '#009E73',
  '#CC79A7',
  '#56B4E9',
  '#D55E00',
  '#F0E442',
  '#999999',
]

/** one colour per stage, in pipeline order */
export const STAGE_COLORS: Readonly<Record<string, string>> = Object.fromEntries(
  STAGES.map((s, i) => [s, PALETTE[i % PALETTE.length]!]),
)
