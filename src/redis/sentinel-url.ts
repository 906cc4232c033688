/**
 * Redis Sentinel URLs as Celery / kombu write them, and Celery's transport options. Pure: no I/O.
 *
 *   sentinel://host:26379;sentinel://host2:26380/0          sentinels (default port 26379), db 0
 *   sentinel://:password@host:26379/1;sentinel://host2      password (and db) from the first URL, as kombu
 *   sentinel://user:password@host:26379                     Redis 6 ACL user
 *   sentinels://…                                           TLS to the master (ioredis' `tls`)
 *
 * The master name is not in the URL: it comes from the transport options (Celery's
 * `broker_transport_options={'master_name': 'mymaster'}`, here CELERY_BROKER_TRANSPORT_OPTIONS as JSON);
 * `?master_name=` in the URL is accepted too. The password is the Redis master's; the sentinels' own
 * password goes in `sentinel_kwargs.password` (kombu passes `sentinel_kwargs` to redis-py's Sentinel).
 */
import { GatewayError } from '../errors.ts';

export interface SentinelAddress {
  host: string;
  port: number;
}

export interface SentinelTarget {
  sentinels: SentinelAddress[];
  db: number;
  username?: string;
  password?: string;
  masterName?: string;
  sentinelUsername?: string;
  sentinelPassword?: string;
  tls: boolean;
}

/** The subset of Celery's Redis transport options we act on. */
export interface RedisTransportOptions {
  master_name?: string;
  sentinel_kwargs?: { password?: string; username?: string };
}

export const SENTINEL_DEFAULT_PORT = 26379;

export function isSentinelUrl(url: string): boolean {
  return /^sentinels?:\/\//i.test(url.trim());
}

function configError(why: string): GatewayError {
  return new GatewayError('GW_ERR_CONFIG', `invalid Sentinel URL: ${why}`);
}

function decode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw configError('bad percent-encoding');
  }
}

/** Parse `sentinel://…;sentinel://…[/db]`: each part one sentinel; db and credentials from the first. */
export function parseSentinelUrl(url: string): SentinelTarget {
  const parts = url.split(';').map((p) => p.trim()).filter((p) => p !== '');
  if (parts.length === 0) throw configError('empty');
  const target: SentinelTarget = { sentinels: [], db: 0, tls: false };
  for (const [i, part] of parts.entries()) {
    const m = /^(sentinels?):\/\//i.exec(part);
    if (!m) throw configError(`"${redactPart(part)}" is not a sentinel:// URL (separate sentinels with ";")`);
    let parsed: URL;
    try {
      parsed = new URL(`http://${part.slice(m[0].length)}`);
    } catch {
      throw configError(`"${redactPart(part)}" is not a URL`);
    }
    const host = parsed.hostname.replace(/^\[|\]$/g, '');
    if (!host) throw configError(`"${redactPart(part)}" has no host`);
    const port = parsed.port === '' ? SENTINEL_DEFAULT_PORT : Number(parsed.port);
    target.sentinels.push({ host, port });
    const path = parsed.pathname.replace(/^\/+|\/+$/g, '');
    const master = parsed.searchParams.get('master_name');
    if (master) target.masterName ??= master;
    if (i > 0) continue;
    if ((m[1] ?? '').toLowerCase() === 'sentinels') target.tls = true;
    if (path !== '') {
      if (!/^\d+$/.test(path) || Number(path) > 65535) throw configError(`database "${path}" must be a number`);
      target.db = Number(path);
    }
    if (parsed.username !== '') target.username = decode(parsed.username);
    if (parsed.password !== '') target.password = decode(parsed.password);
  }
  return target;
}

/** Parse a transport-options setting (JSON object); `envName` names it in errors. */
export function parseTransportOptions(json: string, envName: string): RedisTransportOptions {
  if (json.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new GatewayError('GW_ERR_CONFIG', `${envName} is not valid JSON (e.g. {"master_name":"mymaster"})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new GatewayError('GW_ERR_CONFIG', `${envName} must be a JSON object (e.g. {"master_name":"mymaster"})`);
  }
  const obj = value as Record<string, unknown>;
  const out: RedisTransportOptions = {};
  if (obj['master_name'] !== undefined) {
    if (typeof obj['master_name'] !== 'string' || obj['master_name'] === '') throw new GatewayError('GW_ERR_CONFIG', `${envName}: master_name must be a non-empty string`);
    out.master_name = obj['master_name'];
  }
  const kw = obj['sentinel_kwargs'];
  if (kw !== undefined) {
    if (typeof kw !== 'object' || kw === null || Array.isArray(kw)) throw new GatewayError('GW_ERR_CONFIG', `${envName}: sentinel_kwargs must be an object`);
    const k = kw as Record<string, unknown>;
    out.sentinel_kwargs = {};
    for (const key of ['password', 'username'] as const) {
      if (k[key] === undefined) continue;
      if (typeof k[key] !== 'string') throw new GatewayError('GW_ERR_CONFIG', `${envName}: sentinel_kwargs.${key} must be a string`);
      out.sentinel_kwargs[key] = k[key];
    }
  }
  return out;
}

/**
 * The URL the adapters are given: a sentinel:// URL with the transport options folded into its query
 * (`master_name`, `sentinel_password`, `sentinel_username`), so one string carries the whole target.
 * Other URLs are returned unchanged.
 */
export function withTransportOptions(url: string, options: RedisTransportOptions): string {
  if (!isSentinelUrl(url)) return url;
  const extra: [string, string][] = [];
  if (options.master_name && !/[?&]master_name=/.test(url)) extra.push(['master_name', options.master_name]);
  if (options.sentinel_kwargs?.password !== undefined) extra.push(['sentinel_password', options.sentinel_kwargs.password]);
  if (options.sentinel_kwargs?.username !== undefined) extra.push(['sentinel_username', options.sentinel_kwargs.username]);
  if (extra.length === 0) return url;
  const query = extra.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
  return `${url}${url.includes('?') ? '&' : '?'}${query}`;
}

/** parseSentinelUrl plus the sentinel credentials folded in by withTransportOptions. */
export function sentinelTarget(url: string): SentinelTarget {
  const target = parseSentinelUrl(url);
  for (const part of url.split(';')) {
    const q = part.indexOf('?');
    if (q < 0) continue;
    const params = new URLSearchParams(part.slice(q + 1));
    const pw = params.get('sentinel_password');
    const user = params.get('sentinel_username');
    if (pw !== null) target.sentinelPassword ??= pw;
    if (user !== null) target.sentinelUsername ??= user;
  }
  return target;
}

function redactPart(part: string): string {
  return part.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^:@/]*):([^@/]*)@/i, (_m, s: string, u: string) => `${s}${u}:**@`);
}
