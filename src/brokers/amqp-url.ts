/**
 * Parsing of Celery/kombu-style AMQP URLs into amqplib connect options. Pure: no I/O.
 *
 * kombu's reading, which we follow:
 *   amqp://guest:guest@host:5672//   → vhost "/" (the path minus its leading "/")
 *   amqp://u:p@host/vh               → vhost "vh"
 *   amqp://host/%2F                  → vhost "/" (percent-decoded)
 *   amqp://host  or  amqp://host/    → vhost "/"
 * `pyamqp://` (Celery's alias) is read as `amqp://`. Missing credentials default to guest/guest,
 * like amqplib and kombu. Query options (amqplib's names, plus kombu's snake_case spellings):
 * heartbeat (s), frameMax|frame_max, channelMax|channel_max, locale, connect_timeout (s, kombu) or
 * connectTimeout (ms). Anything else in the query is ignored.
 */
import { GatewayError } from '../errors.ts';

export interface AmqpUrlOptions {
  protocol: 'amqp' | 'amqps';
  hostname: string;
  port: number;
  username: string;
  password: string;
  vhost: string;
  /** seconds; undefined = let the server propose (RabbitMQ: 60 s) */
  heartbeat?: number;
  frameMax?: number;
  channelMax?: number;
  locale?: string;
  /** TCP + handshake timeout for one connection attempt */
  connectTimeoutMs?: number;
}

function configError(url: string, why: string): GatewayError {
  return new GatewayError('GW_ERR_CONFIG', `invalid AMQP URL ${redact(url)}: ${why}`);
}

function redact(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^:@/]*):([^@/]*)@/i, (_m, s: string, u: string) => `${s}${u}:**@`);
}

function decode(part: string, url: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw configError(url, `bad percent-encoding in the ${what}`);
  }
}

function nonNegative(url: string, name: string, value: string, max: number): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > max) throw configError(url, `query option ${name}=${value} must be a number between 0 and ${max}`);
  return n;
}

export function amqpUrlToOptions(url: string): AmqpUrlOptions {
  const match = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url);
  const scheme = match?.[1]?.toLowerCase();
  let protocol: 'amqp' | 'amqps';
  if (scheme === 'amqp' || scheme === 'pyamqp') protocol = 'amqp';
  else if (scheme === 'amqps' || scheme === 'pyamqps') protocol = 'amqps';
  else throw configError(url, 'the scheme must be amqp:// or amqps://');

  let parsed: URL;
  try {
    // WHATWG URL keeps non-special schemes' paths verbatim ("//" stays "//"); use a fixed scheme.
    parsed = new URL(`amqp://${url.slice(match![0].length)}`);
  } catch {
    throw configError(url, 'not a URL');
  }

  const hostname = parsed.hostname.replace(/^\[|\]$/g, '') || 'localhost';
  const port = parsed.port === '' ? (protocol === 'amqps' ? 5671 : 5672) : Number(parsed.port);
  const hasCredentials = parsed.username !== '' || parsed.password !== '';
  const username = hasCredentials ? decode(parsed.username, url, 'user name') : 'guest';
  const password = hasCredentials ? decode(parsed.password, url, 'password') : 'guest';

  const path = parsed.pathname;
  const vhost = path === '' || path === '/' ? '/' : decode(path.slice(1), url, 'virtual host');

  const options: AmqpUrlOptions = { protocol, hostname, port, username, password, vhost };
  const q = parsed.searchParams;
  const pick = (...names: string[]): string | undefined => {
    for (const n of names) {
      const v = q.get(n);
      if (v !== null) return v;
    }
    return undefined;
  };
  const heartbeat = pick('heartbeat');
  if (heartbeat !== undefined) options.heartbeat = Math.round(nonNegative(url, 'heartbeat', heartbeat, 65535));
  const frameMax = pick('frameMax', 'frame_max');
  if (frameMax !== undefined) options.frameMax = Math.round(nonNegative(url, 'frameMax', frameMax, 0xffffffff));
  const channelMax = pick('channelMax', 'channel_max');
  if (channelMax !== undefined) options.channelMax = Math.round(nonNegative(url, 'channelMax', channelMax, 65535));
  const locale = pick('locale');
  if (locale !== undefined && locale !== '') options.locale = locale;
  const connectTimeoutSec = pick('connect_timeout');
  const connectTimeoutMs = pick('connectTimeout');
  if (connectTimeoutMs !== undefined) options.connectTimeoutMs = Math.round(nonNegative(url, 'connectTimeout', connectTimeoutMs, 3_600_000));
  else if (connectTimeoutSec !== undefined) options.connectTimeoutMs = Math.round(nonNegative(url, 'connect_timeout', connectTimeoutSec, 3600) * 1000);
  return options;
}

/**
 * A broker URL that may list several nodes, kombu's way: `amqp://a//;amqp://b//` (";"-separated, each a
 * full URL). The connection tries them in order and, after a loss, continues with the next one
 * (kombu's default "round-robin" failover strategy).
 */
export function amqpUrlList(url: string): AmqpUrlOptions[] {
  const parts = url.split(';').map((p) => p.trim()).filter((p) => p !== '');
  if (parts.length === 0) throw configError(url, 'empty');
  return parts.map((part) => amqpUrlToOptions(part));
}
