#!/usr/bin/env node
// Entry for `npx celery-gateway` / `npm start`: loads the TypeScript sources through tsx (no build step),
// which also lets `worker --tasks` take a .ts module.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli.ts');
main(process.argv.slice(2), process.env).catch((err) => {
  process.stderr.write(`celery-gateway: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
});
