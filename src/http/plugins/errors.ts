/**
 * Every error leaves as `{statusCode, code, error, message}` with a stable code from src/errors.ts.
 */
import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ERRORS, GatewayError, type ErrorCode } from '../../errors.ts';

export interface ErrorBody {
  statusCode: number;
  code: ErrorCode;
  error: string;
  message: string;
  details?: Record<string, unknown>;
}

export function errorBody(code: ErrorCode, message: string, details?: Record<string, unknown>): ErrorBody {
  const statusCode = ERRORS[code].status;
  const body: ErrorBody = { statusCode, code, error: STATUS_CODES[statusCode] ?? 'Error', message };
  if (details) body.details = details;
  return body;
}

/** Fastify's own error codes → ours. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'GW_ERR_BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'GW_ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'GW_ERR_VALIDATION',
  FST_ERR_BAD_URL: 'GW_ERR_VALIDATION',
  FST_ERR_MAX_PARAM_LENGTH: 'GW_ERR_VALIDATION',
  FST_ERR_ASYNC_CONSTRAINT: 'GW_ERR_VALIDATION',
};

function classify(err: FastifyError): ErrorBody {
  if (err instanceof GatewayError) return errorBody(err.code, err.message, err.details);
  if (err.validation) {
    const first = err.validation[0];
    const where = err.validationContext ?? 'request';
    if (where === 'params' && first?.instancePath === '/name') {
      return errorBody('GW_ERR_BAD_TASK_NAME', `task name must be a dotted name such as "proj.tasks.add" (letters, digits, _ . : -)`);
    }
    const pointer = `/${where}${first?.instancePath ?? ''}`;
    return errorBody('GW_ERR_VALIDATION', `${where}${first?.instancePath ?? ''} ${first?.message ?? 'is invalid'}`.trim(), {
      pointer,
      ...(first?.params ? { params: first.params } : {}),
    });
  }
  const mapped = err.code ? FASTIFY_CODES[err.code] : undefined;
  if (mapped) return errorBody(mapped, err.message);
  if (err instanceof SyntaxError) return errorBody('GW_ERR_BAD_JSON', err.message);
  if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    return errorBody('GW_ERR_VALIDATION', err.message);
  }
  return errorBody('GW_ERR_INTERNAL', 'internal error');
}

export function errorHandler(this: FastifyInstance, err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const body = classify(err);
  if (body.statusCode >= 500) request.log.error({ err }, 'request failed');
  else request.log.info({ code: body.code, msg: body.message }, 'request refused');
  if (body.code === 'GW_ERR_TOO_MANY_WAITS') void reply.header('retry-after', '1');
  void reply.code(body.statusCode).type('application/json').send(body);
}

export function notFoundHandler(request: FastifyRequest, reply: FastifyReply): void {
  void reply.code(404).send(errorBody('GW_ERR_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`));
}

/** Fastify's `frameworkErrors`: errors met before routing (bad URL encoding, over-long parameter). */
export function frameworkErrorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const body = classify(err);
  request.log.info({ code: body.code, msg: body.message }, 'request refused');
  void reply.code(body.statusCode).type('application/json').send(body);
}
