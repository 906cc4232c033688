/**
 * Writes openapi/openapi.json from the route schemas (`npm run openapi`), or with --check fails when the
 * committed file differs from what the code generates (`npm run openapi:check`, part of `npm test`).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { MemoryBackend } from '../src/backends/memory.ts';
import { MemoryBroker } from '../src/brokers/memory.ts';
import { loadConfig } from '../src/config.ts';
import { buildApp } from '../src/http/app.ts';

export async function generateOpenapi(): Promise<string> {
  const config = loadConfig({});
  const app = await buildApp({ broker: new MemoryBroker(), backend: new MemoryBackend({ submittedTtlSec: 60 }), config, logger: pino({ level: 'silent' }) });
  await app.ready();
  const doc = JSON.stringify(app.swagger(), null, 2) + '\n';
  await app.close();
  return doc;
}

const target = fileURLToPath(new URL('../openapi/openapi.json', import.meta.url));

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const doc = await generateOpenapi();
  if (process.argv.includes('--check')) {
    const committed = await readFile(target, 'utf8').catch(() => '');
    if (committed !== doc) {
      process.stderr.write('openapi/openapi.json is out of date: run `npm run openapi` and commit it\n');
      process.exit(1);
    }
  } else {
    await writeFile(target, doc);
    process.stdout.write(`wrote ${target}\n`);
  }
}
