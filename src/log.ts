/**
 * The root logger (pino). Children scope it by component; credentials are redacted.
 */
import { pino, type Logger } from 'pino';

export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { pid: process.pid },
    redact: { paths: ['req.headers.authorization', 'headers.authorization', '*.password'], censor: '**' },
  });
}
