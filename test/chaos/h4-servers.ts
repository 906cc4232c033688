/**
 * Private Redis (master, replica, sentinels) and RabbitMQ nodes for the scale-out chaos tests, each in a
 * temp dir on its own loopback port, stopped by the tests. Never touches the shared servers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { tcpConnect } from '../support/services.ts';
import { binaryGate, sleep, until } from '../support/private-servers.ts';

export { sleep, until } from '../support/private-servers.ts';

/** false, or why the chaos test is skipped; under CI=true a missing tool is an error. */
export async function toolGate(tool: 'redis-sentinel' | 'rabbitmq-server'): Promise<string | false> {
  // Sentinel is built into redis-server (`redis-server <conf> --sentinel`); a separate redis-sentinel binary is not needed
  if (tool === 'redis-sentinel') return binaryGate('redis-server', 'apt-get install redis-server (runs sentinels with --sentinel)');
  return (await binaryGate('rabbitmq-server', 'apt-get install rabbitmq-server')) || binaryGate('rabbitmqctl', 'apt-get install rabbitmq-server');
}

export interface Proc {
  child: ChildProcess;
  output(): string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

function run(cmd: string, args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => { out = (out + c.toString()).slice(-20_000); });
  child.stderr?.on('data', (c: Buffer) => { out = (out + c.toString()).slice(-20_000); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.once('exit', () => { if (child.exitCode === null) child.kill('SIGKILL'); });
  return {
    child,
    output: () => out,
    kill: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Redis master + replica + sentinels

export interface SentinelSetup {
  master: Proc;
  /** start redis-server on the old master's port again (the sentinels make it a replica of the new master) */
  restartOldMaster(): Proc;
  /**
   * Wait until every sentinel names `port` as the master. Call it before restarting an old master: a
   * sentinel that has not yet heard of the failover sees the restarted old master as its sane master and
   * turns the promoted replica back into its replica (Sentinel's `+convert-to-slave`), undoing the failover.
   */
  sentinelsAgreeOn(port: number, timeoutMs?: number): Promise<void>;
  /** the tail of every server's output, for a failure message */
  logs(): string;
  replica: Proc;
  sentinels: Proc[];
  masterName: string;
  /** `sentinel://127.0.0.1:26400;…/0` */
  url: string;
  dir: string;
  stop(): Promise<void>;
}

export async function startSentinelSetup(opts: { masterPort: number; replicaPort: number; sentinelPorts: number[]; masterName: string }): Promise<SentinelSetup> {
  const dir = mkdtempSync(join(tmpdir(), 'h4-sentinel-'));
  const common = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'];
  let master = run('redis-server', ['--port', String(opts.masterPort), '--dir', dir, '--dbfilename', 'm.rdb', ...common]);
  const extra: Proc[] = [];
  const replica = run('redis-server', ['--port', String(opts.replicaPort), '--dir', dir, '--dbfilename', 'r.rdb', '--replicaof', '127.0.0.1', String(opts.masterPort), ...common]);
  const sentinels = opts.sentinelPorts.map((port) => {
    const conf = join(dir, `sentinel-${port}.conf`);
    writeFileSync(conf, [
      `port ${port}`, 'bind 127.0.0.1', 'protected-mode no', `dir ${dir}`,
      `sentinel monitor ${opts.masterName} 127.0.0.1 ${opts.masterPort} 2`,
      `sentinel down-after-milliseconds ${opts.masterName} 1000`,
      `sentinel failover-timeout ${opts.masterName} 5000`,
      `sentinel parallel-syncs ${opts.masterName} 1`, '',
    ].join('\n'));
    return run('redis-server', [conf, '--sentinel']);
  });
  const setup: SentinelSetup = {
    master, replica, sentinels, masterName: opts.masterName, dir,
    restartOldMaster: () => {
      master = run('redis-server', ['--port', String(opts.masterPort), '--dir', dir, '--dbfilename', 'm2.rdb', ...common]);
      extra.push(master);
      return master;
    },
    sentinelsAgreeOn: async (port, timeoutMs = 20_000) => {
      for (const sentinelPort of opts.sentinelPorts) {
        await until(`sentinel ${sentinelPort} to name ${port} as the master`, async () => {
          const c = new Redis({ port: sentinelPort, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
          c.on('error', () => {});
          try {
            await c.connect();
            const addr = (await c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', opts.masterName)) as string[] | null;
            return addr?.[1] === String(port);
          } finally {
            c.disconnect();
          }
        }, timeoutMs, 100);
      }
    },
    logs: () => [setup.master, replica, ...extra, ...sentinels].map((p) => p.output().slice(-1500)).join('\n---\n'),
    url: `${opts.sentinelPorts.map((p) => `sentinel://127.0.0.1:${p}`).join(';')}/0`,
    stop: async () => {
      await Promise.all([setup.master, replica, ...sentinels, ...extra].map((p) => p.kill('SIGKILL')));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    const info = async (port: number, section: string): Promise<string> => {
      const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
      c.on('error', () => {});
      try {
        await c.connect();
        return await c.info(section);
      } finally {
        c.disconnect();
      }
    };
    await until('the replica to sync', async () => (await info(opts.replicaPort, 'replication')).includes('master_link_status:up'), 15_000);
    // each sentinel must know the replica and the other sentinels before a failover can be agreed
    for (const port of opts.sentinelPorts) {
      await until(`sentinel ${port} to see the replica and ${opts.sentinelPorts.length - 1} other sentinels`, async () => {
        const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
        c.on('error', () => {});
        try {
          await c.connect();
          const m = (await c.call('SENTINEL', 'MASTER', opts.masterName)) as string[];
          const field = (name: string): number => Number(m[m.indexOf(name) + 1]);
          return field('num-slaves') >= 1 && field('num-other-sentinels') >= opts.sentinelPorts.length - 1;
        } finally {
          c.disconnect();
        }
      }, 20_000, 200);
    }
  } catch (err) {
    const logs = setup.logs();
    await setup.stop();
    throw new Error(`${(err as Error).message}\n${logs}`);
  }
  return setup;
}

// ---------------------------------------------------------------------------------------------
// RabbitMQ nodes

const SBIN_PATH = `${process.env['PATH'] ?? ''}:/usr/sbin:/sbin`;
/**
 * Debian's /usr/sbin/rabbitmq-* wrappers switch to the rabbitmq user (root) or refuse (anyone else);
 * the scripts behind them run as whoever calls them. We use those, with HOME in the temp dir so the
 * nodes and rabbitmqctl share a private Erlang cookie (and never the shared node's).
 */
const RABBIT_LIB = '/usr/lib/rabbitmq/bin';
const rabbitBin = (name: string): string => (existsSync(join(RABBIT_LIB, name)) ? join(RABBIT_LIB, name) : name);
let rabbitHome = '';

export interface RabbitNode {
  name: string;
  port: number;
  url: string;
  ctl(...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

function rabbitmqctl(node: string, args: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(rabbitBin('rabbitmqctl'), ['-n', node, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PATH: SBIN_PATH, HOME: rabbitHome } });
    let out = '';
    child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { out += c.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`rabbitmqctl -n ${node} ${args.join(' ')} exited ${code}: ${out.slice(-2000)}`));
    });
  });
}

/**
 * Start RabbitMQ nodes (each with its own mnesia, log and pid file under a temp dir, no plugins) in
 * parallel, as the current user; with `cluster`, every node after the first joins the first (one at a
 * time) and the call returns once the first node reports them all running. `timings`: boot (all nodes
 * answering) and clustering (joins) in ms.
 */
export async function startRabbitNodes(nodes: { name: string; port: number; distPort: number }[], cluster: boolean): Promise<{ nodes: RabbitNode[]; dir: string; stop(): Promise<void>; timings: { bootMs: number; clusterMs: number } }> {
  const t0 = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'h4-rabbit-'));
  const plugins = join(dir, 'enabled_plugins');
  writeFileSync(plugins, '[].\n');
  rabbitHome = dir;
  writeFileSync(join(dir, '.erlang.cookie'), randomBytes(16).toString('hex').toUpperCase(), { mode: 0o400 });
  const procs: Proc[] = [];
  const timings = { bootMs: 0, clusterMs: 0 };
  const started: RabbitNode[] = nodes.map((n) => {
    const base = join(dir, n.name);
    mkdirSync(base);
    procs.push(run(rabbitBin('rabbitmq-server'), [], {
      PATH: SBIN_PATH, HOME: dir,
      RABBITMQ_NODENAME: `${n.name}@localhost`, RABBITMQ_NODE_PORT: String(n.port), RABBITMQ_DIST_PORT: String(n.distPort),
      RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1', RABBITMQ_MNESIA_BASE: join(base, 'mnesia'), RABBITMQ_LOG_BASE: join(base, 'log'),
      RABBITMQ_PID_FILE: join(base, 'pid'), RABBITMQ_ENABLED_PLUGINS_FILE: plugins, RABBITMQ_CONFIG_FILE: join(base, 'none'),
      RABBITMQ_ADVANCED_CONFIG_FILE: join(base, 'none-advanced.config'),
    }));
    const node = `${n.name}@localhost`;
    let stopped = false;
    return {
      name: node, port: n.port, url: `amqp://guest:guest@127.0.0.1:${n.port}//`,
      ctl: (...args: string[]) => rabbitmqctl(node, args),
      stop: async () => {
        if (stopped) return;
        stopped = true;
        await rabbitmqctl(node, ['stop'], 30_000).catch(() => {});
      },
    };
  });
  const stopAll = async (): Promise<void> => {
    await Promise.all(started.map((n) => n.stop()));
    await Promise.all(procs.map(async (p, i) => {
      // `rabbitmqctl stop` ends the node; make sure the wrapper is gone too
      await Promise.race([p.kill('SIGTERM'), sleep(5000)]);
      if (p.child.exitCode === null) p.child.kill('SIGKILL');
      void i;
    }));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.all(started.map((n, i) => rabbitmqctl(n.name, ['wait', join(dir, nodes[i]!.name, 'pid'), '--timeout', '60'], 70_000)));
    timings.bootMs = Date.now() - t0;
    if (cluster) {
      const [first, ...rest] = started;
      // the nodes boot in parallel; joins are one at a time (concurrent join_cluster calls race in mnesia)
      for (const n of rest) {
        await n.ctl('stop_app');
        await n.ctl('join_cluster', first!.name);
        await n.ctl('start_app');
      }
      const names = started.map((n) => n.name);
      await until(`all ${names.length} nodes running in the cluster`, async () => {
        const status = await first!.ctl('cluster_status', '--formatter', 'json');
        const running = (JSON.parse(status) as { running_nodes?: string[] }).running_nodes ?? [];
        return names.every((name) => running.includes(name));
      }, 30_000, 250);
    }
    await Promise.all(started.map((n) => until(`AMQP port ${n.port}`, async () => { await tcpConnect('127.0.0.1', n.port); return true; }, 30_000)));
    timings.clusterMs = Date.now() - t0 - timings.bootMs;
  } catch (err) {
    const logs = procs.map((p) => p.output().slice(-1500)).join('\n---\n');
    await stopAll();
    throw new Error(`${(err as Error).message}\n${logs}`);
  }
  return { nodes: started, dir, stop: stopAll, timings };
}
