/** The evaluation's PRNG is the shared one (the fleet generator in contract/synthetic.ts uses it too). */
export { Prng } from '../core/prng.ts'
