/**
 * The logger Fastify gives each request (`request.log`, bound to its reqId), made only when something is
 * logged through it. Fastify's default calls pino's child() for every request, and pino's child() sets
 * its level by rebuilding every log method: at LOG_LEVEL=warn, where a request that succeeds logs
 * nothing, that work and its garbage were pure overhead on the submit path. Levels are checked on the
 * parent, so a call that would log nothing costs one check and no child.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Bindings, ChildLoggerOptions, LevelWithSilentOrString } from 'pino';

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
type ParentLogger = FastifyBaseLogger & { isLevelEnabled?: (level: string) => boolean };

class LazyChildLogger implements FastifyBaseLogger {
  readonly #parent: ParentLogger;
  readonly #bindings: Bindings;
  readonly #options: ChildLoggerOptions;
  #child: FastifyBaseLogger | undefined;

  constructor(parent: ParentLogger, bindings: Bindings, options: ChildLoggerOptions) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#options = options;
  }

  get level(): LevelWithSilentOrString {
    return (this.#child ?? this.#parent).level;
  }

  set level(level: LevelWithSilentOrString) {
    this.#made().level = level;
  }

  fatal(...args: unknown[]): void { this.#log('fatal', args); }
  error(...args: unknown[]): void { this.#log('error', args); }
  warn(...args: unknown[]): void { this.#log('warn', args); }
  info(...args: unknown[]): void { this.#log('info', args); }
  debug(...args: unknown[]): void { this.#log('debug', args); }
  trace(...args: unknown[]): void { this.#log('trace', args); }
  silent(): void {}

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#made().child(bindings, options);
  }

  #made(): FastifyBaseLogger {
    return (this.#child ??= this.#parent.child(this.#bindings, this.#options));
  }

  #log(level: Level, args: unknown[]): void {
    if (this.#child === undefined && this.#parent.isLevelEnabled?.(level) === false) return;
    const child = this.#made();
    (child[level] as (...a: unknown[]) => void).apply(child, args);
  }
}

/**
 * Fastify's childLoggerFactory. A route-level log level or serializers (none of our routes has them)
 * make the child at once, as does a parent that cannot tell whether a level is enabled.
 */
export function requestLogger(parent: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger {
  const p = parent as ParentLogger;
  if (typeof p.isLevelEnabled !== 'function' || Object.keys(options).length > 0) return parent.child(bindings, options);
  return new LazyChildLogger(p, bindings, options);
}
