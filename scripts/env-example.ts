/** Regenerates .env.example from the settings in src/config.ts (`npm run env:example`). */
import { writeFile } from 'node:fs/promises';
import { SETTINGS } from '../src/config.ts';

export function envExample(): string {
  let text = '# celery-gateway configuration: every variable with its default (generated from src/config.ts).\n';
  for (const setting of Object.values(SETTINGS)) text += `\n# ${setting.doc}\n${setting.env}=${setting.default}\n`;
  return text;
}

if (process.argv[1]?.endsWith('env-example.ts')) await writeFile(new URL('../.env.example', import.meta.url), envExample());
