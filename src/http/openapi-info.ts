/** The OpenAPI document's header; paths come from the route schemas. */
export const openapiInfo: { openapi: string; info: { title: string; version: string; description: string }; tags: { name: string; description: string }[] } = {
  openapi: '3.1.0',
  info: {
    title: 'celery-gateway',
    version: '0.1.0',
    description: 'Submit and track Celery tasks over HTTP. Messages are Celery protocol v2, so Python Celery workers and the celery-gateway Node worker run them alike. Every error answer is `{statusCode, code, error, message}` with a stable `code` (docs/errors.md).',
  },
  tags: [
    { name: 'tasks', description: 'Submit tasks' },
    { name: 'results', description: 'Read and wait for results' },
    { name: 'health', description: 'Liveness and readiness' },
    { name: 'operations', description: 'Metrics and operations' },
    { name: 'schedules', description: 'Periodic tasks run by beat (docs/beat.md)' },
    { name: 'flower', description: "Aliases with Flower's API shapes, for clients written against Flower" },
  ],
};
