/** Requests to the query API of a fastify app (inject, no socket). */
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'

/** POST /api/sql with `payload` as it is: an object as JSON, or a string under `contentType`. */
export function postSql(
  app: FastifyInstance,
  payload: string | Record<string, unknown>,
  contentType?: string,
): Promise<LightMyRequestResponse> {
  const headers = contentType === undefined ? {} : { 'content-type': contentType }
  return app.inject({ method: 'POST', url: '/api/sql', headers, payload })
}
