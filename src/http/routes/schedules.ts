/**
 * The beat schedule table over HTTP: GET /schedules, GET/PUT/DELETE /schedules/:name.
 * Entries are validated as schedule files are (src/beat/entry.ts); a bad one is a 400 with a
 * GW_ERR_SCHEDULE_* code. On a Redis backend every gateway and beat sees the same table.
 */
import type { FastifyError, FastifyPluginAsync } from 'fastify';
import { shapeMessage, scheduleEntryInputSchema, SCHEDULE_NAME_PATTERN, validateEntry, type ScheduleEntry } from '../../beat/entry.ts';
import { compileSchedule, nextRuns } from '../../beat/schedule.ts';
import type { ScheduleStore, StoredSchedule } from '../../beat/store.ts';
import { GatewayError } from '../../errors.ts';
import { isoWithOffset } from '../../protocol/time.ts';
import { errorHandler } from '../plugins/errors.ts';
import { errorResponses } from '../schemas.ts';

export interface SchedulesRoutesOptions {
  store: ScheduleStore;
  now?: () => Date;
}

const nameParams = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', pattern: SCHEDULE_NAME_PATTERN, description: 'Schedule entry name' } },
} as const;

const scheduleViewSchema = {
  type: 'object',
  required: ['name', 'task', 'args', 'kwargs', 'options', 'enabled', 'source', 'last_run_at', 'total_run_count', 'next_run'],
  properties: {
    name: { type: 'string' },
    task: { type: 'string' },
    args: { type: 'array' },
    kwargs: { type: 'object', additionalProperties: true },
    options: { type: 'object', additionalProperties: true },
    every: { anyOf: [{ type: 'number' }, { type: 'string' }] },
    cron: { type: 'string' },
    at: { type: 'string' },
    timezone: { type: 'string' },
    catch_up: { type: 'string', enum: ['once', 'skip'] },
    enabled: { type: 'boolean' },
    source: { type: 'string', enum: ['file', 'api'], description: 'file: from a beat --schedule file (replaced at each beat start)' },
    last_run_at: { type: ['string', 'null'], description: 'When beat last published it' },
    total_run_count: { type: 'integer' },
    next_run: { type: ['string', 'null'], description: 'The next tick (UTC), null when it will not run again' },
    next_runs: { type: 'array', items: { type: 'string' }, description: 'The next `count` ticks (UTC)' },
  },
} as const;

interface ScheduleView extends Omit<ScheduleEntry, 'source'> {
  source: string;
  last_run_at: string | null;
  total_run_count: number;
  next_run: string | null;
  next_runs?: string[];
}

function view(stored: StoredSchedule, now: number, count?: number): ScheduleView {
  let runs: number[] = [];
  try {
    if (stored.entry.enabled) runs = nextRuns(compileSchedule(stored.entry), now, count ?? 1);
  } catch {
    runs = []; // an entry stored by another version that this one cannot read: shown, never run
  }
  const iso = runs.map((t) => isoWithOffset(new Date(t)));
  return {
    ...stored.entry,
    last_run_at: stored.lastRunAt === null ? null : isoWithOffset(new Date(stored.lastRunAt)),
    total_run_count: stored.totalRunCount,
    next_run: iso[0] ?? null,
    ...(count !== undefined ? { next_runs: iso } : {}),
  };
}

function notFound(name: string): GatewayError {
  return new GatewayError('GW_ERR_SCHEDULE_NOT_FOUND', `no schedule entry named ${JSON.stringify(name)}`);
}

interface NameRoute { Params: { name: string } }

export const schedulesRoutes: FastifyPluginAsync<SchedulesRoutesOptions> = async (app, { store, now: clock }) => {
  const now = (): number => (clock ? clock().getTime() : Date.now());

  // Schema errors on these routes are bad schedule entries (or names), not generic validation errors.
  app.setErrorHandler(function scheduleErrors(err: FastifyError, request, reply) {
    if (err.validation && (err.validationContext === 'params' || err.validationContext === 'body')) {
      const name = (request.params as { name?: string } | undefined)?.name ?? '?';
      const mapped = err.validationContext === 'params'
        ? new GatewayError('GW_ERR_SCHEDULE_INVALID', 'schedule name must be 1-200 letters, digits or _ . : @ -', { details: { field: 'name' } })
        : new GatewayError('GW_ERR_SCHEDULE_INVALID', `schedule entry ${JSON.stringify(name)}: ${shapeMessage(err.validation[0] as Parameters<typeof shapeMessage>[0])}`, { details: { entry: name } });
      errorHandler.call(this, mapped as unknown as FastifyError, request, reply);
      return;
    }
    errorHandler.call(this, err, request, reply);
  });

  app.get('/schedules', {
    schema: {
      summary: 'List schedule entries',
      description: 'Every periodic entry beat runs, with its last run and next tick.',
      tags: ['schedules'],
      response: { 200: { type: 'object', required: ['schedules'], properties: { schedules: { type: 'array', items: scheduleViewSchema } } }, ...errorResponses(503) },
    },
  }, async () => {
    const t = now();
    return { schedules: (await store.list()).map((s) => view(s, t)) };
  });

  app.get<NameRoute & { Querystring: { count: number } }>('/schedules/:name', {
    schema: {
      summary: 'Get a schedule entry and its next run times',
      tags: ['schedules'],
      params: nameParams,
      querystring: { type: 'object', additionalProperties: false, properties: { count: { type: 'integer', minimum: 1, maximum: 100, default: 5, description: 'How many next run times to list' } } },
      response: { 200: scheduleViewSchema, ...errorResponses(400, 404, 503) },
    },
  }, async (request) => {
    const stored = await store.get(request.params.name);
    if (!stored) throw notFound(request.params.name);
    return view(stored, now(), request.query.count);
  });

  app.put<NameRoute & { Body: unknown }>('/schedules/:name', {
    schema: {
      summary: 'Create or replace a schedule entry',
      description: 'Exactly one of `every`, `cron` or `at`. Replacing an entry keeps its run state: it neither repeats nor skips ticks. A new entry runs from now on (not for the past). 201 when created, 200 when replaced.',
      tags: ['schedules'],
      params: nameParams,
      body: scheduleEntryInputSchema,
      response: { 200: scheduleViewSchema, 201: scheduleViewSchema, ...errorResponses(400, 413, 415, 503) },
    },
  }, async (request, reply) => {
    const entry = validateEntry(request.body, { name: request.params.name, source: 'api' });
    const t = now();
    const created = await store.put(entry, t);
    const stored = await store.get(entry.name);
    return reply.code(created ? 201 : 200).send(view(stored ?? { entry, cursor: t, lastRunAt: null, totalRunCount: 0 }, t, 5));
  });

  app.delete<NameRoute>('/schedules/:name', {
    schema: {
      summary: 'Delete a schedule entry',
      description: 'Beat stops running it at its next pass. An entry from a schedule file comes back when a beat restarts with that file.',
      tags: ['schedules'],
      params: nameParams,
      response: { 204: { type: 'null', description: 'Deleted' }, ...errorResponses(400, 404, 503) },
    },
  }, async (request, reply) => {
    if (!(await store.delete(request.params.name))) throw notFound(request.params.name);
    return reply.code(204).send();
  });
};
