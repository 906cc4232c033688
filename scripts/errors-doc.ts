/** Regenerates docs/errors.md from src/errors.ts (`npm run errors:doc`). */
import { writeFile } from 'node:fs/promises';
import { ERRORS } from '../src/errors.ts';

let doc = '# Error codes\n\nEvery error the gateway answers with has the JSON body `{statusCode, code, error, message}` (plus `details` for some). The `code` is stable: match on it, not on the message. The same catalogue lives in `src/errors.ts`; a test keeps this page in sync (`npm run errors:doc` rewrites it).\n\n| code | HTTP status | meaning |\n|---|---|---|\n';
for (const [code, spec] of Object.entries(ERRORS)) doc += `| \`${code}\` | ${spec.status} | ${spec.description} |\n`;
doc += '\nCodes with status 500 that are not sent over HTTP (`GW_ERR_CONFIG`, `GW_ERR_PROTOCOL`, `GW_ERR_CONTENT_DISALLOWED`) appear in logs and start-up errors of the worker and CLI.\n';
await writeFile(new URL('../docs/errors.md', import.meta.url), doc);
