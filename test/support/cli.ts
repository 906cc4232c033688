/** Runs the real CLI (bin/celery-gateway.js) as a child process, as a user would. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/celery-gateway.js', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface CliProcess {
  child: ChildProcess;
  output(): string;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** SIGTERM (or `signal`), resolves with the exit code */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function runCli(args: string[], env: Record<string, string> = {}): CliProcess {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CELERY_')));
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...clean, LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const waiters = new Set<() => void>();
  const onData = (chunk: Buffer): void => {
    out += chunk.toString();
    for (const w of waiters) w();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  process.once('exit', () => child.kill('SIGKILL'));
  return {
    child,
    output: () => out,
    waitFor: (pattern, timeoutMs = 20_000) => new Promise((resolve, reject) => {
      const check = (): void => {
        const m = pattern.exec(out);
        if (m) { waiters.delete(check); clearTimeout(timer); resolve(m); }
      };
      const timer = setTimeout(() => { waiters.delete(check); reject(new Error(`no ${pattern} within ${timeoutMs} ms; output:\n${out.slice(-3000)}`)); }, timeoutMs);
      waiters.add(check);
      check();
      void exited.then(() => setTimeout(() => { if (waiters.has(check)) { waiters.delete(check); clearTimeout(timer); reject(new Error(`exited before ${pattern}; output:\n${out.slice(-3000)}`)); } }, 50));
    }),
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
}
