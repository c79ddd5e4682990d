/** Structured logs (pino, as fastify uses), to stderr so stdout stays for results and tables. */
import { pino, type Logger } from 'pino'

export function createLogger(level = process.env.BREAKID_LOG_LEVEL ?? 'info', name = 'breakid'): Logger {
  return pino({ name, level }, pino.destination(2))
}
