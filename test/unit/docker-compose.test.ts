// Validates docker-compose.yml with the real docker-compose (no Docker engine needed) and checks that
// what the containers run exists in the repo and is copied into the image.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const COMPOSE_FILE = path.join(ROOT, 'docker-compose.yml');

function compose(args: string[]) {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // Only our file, no user overrides.
  delete env.COMPOSE_FILE;
  delete env.COMPOSE_PROFILES;
  delete env.COMPOSE_PROJECT_NAME;
  return spawnSync('docker-compose', ['-f', COMPOSE_FILE, '--project-directory', ROOT, ...args], {
    cwd: ROOT,
    env,
    encoding: 'utf8',
    timeout: 60_000,
  });
}

function composeGate(): string | false {
  const r = spawnSync('docker-compose', ['version'], { encoding: 'utf8', timeout: 30_000 });
  const reason = r.error || r.status !== 0 ? `docker-compose not runnable: ${r.error?.message ?? r.stderr.trim()}` : false;
  if (reason && process.env.CI === 'true') throw new Error(`${reason} (CI=true: required, not skipping)`);
  return reason;
}

/** `docker-compose config` as an object: `--format json` (Compose v2), else its YAML through Python's yaml. */
function resolvedConfig(): Record<string, any> {
  const asJson = compose(['config', '--format', 'json']);
  // docker-compose v1 answers an unknown option with its usage text and exit status 0.
  if (asJson.status === 0 && asJson.stdout.trimStart().startsWith('{')) return JSON.parse(asJson.stdout);
  const yaml = compose(['config']);
  assert.equal(yaml.status, 0, yaml.stderr);
  // docker-compose v1 is a Python program depending on PyYAML, so this is available wherever it is.
  const conv = spawnSync(
    '/usr/bin/python3',
    ['-c', 'import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'],
    { input: yaml.stdout, encoding: 'utf8', timeout: 30_000 },
  );
  assert.equal(conv.status, 0, `cannot convert docker-compose config YAML to JSON: ${conv.stderr ?? conv.error}`);
  return JSON.parse(conv.stdout);
}

function argv(command: unknown): string[] {
  if (Array.isArray(command)) return command.map(String);
  if (typeof command === 'string') return command.trim().split(/\s+/);
  return [];
}

/** Top-level entries the Dockerfile COPYs into the image (`COPY src ./src` → "src"). */
function dockerfileCopies(): Set<string> {
  const copied = new Set<string>();
  for (const line of readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8').split('\n')) {
    const m = /^\s*COPY\s+(?:--\S+\s+)*(.+)$/i.exec(line);
    if (!m) continue;
    const parts = m[1]!.trim().split(/\s+/);
    parts.pop(); // destination
    for (const p of parts) copied.add(p.replace(/^\.\//, '').split('/')[0]!);
  }
  return copied;
}

const skip = composeGate();

describe('docker-compose.yml', { skip }, () => {
  it('passes `docker-compose config -q`', () => {
    const r = compose(['config', '-q']);
    assert.equal(r.status, 0, `docker-compose config -q failed:\n${r.stderr}`);
  });

  it('defines the stack with health checks and healthy dependencies', () => {
    const { services } = resolvedConfig();
    for (const name of ['redis', 'rabbitmq', 'gateway', 'node-worker', 'python-worker']) {
      assert.ok(services?.[name], `service ${name} missing`);
    }
    for (const name of ['redis', 'rabbitmq', 'gateway']) {
      const test = argv(services[name].healthcheck?.test);
      assert.ok(test.length > 1 && test[0] !== 'NONE', `service ${name} has no health check`);
    }
    for (const name of ['gateway', 'node-worker', 'python-worker']) {
      assert.equal(services[name].depends_on?.redis?.condition, 'service_healthy', `${name} must wait for a healthy redis`);
      assert.match(String(services[name].environment?.CELERY_BROKER_URL), /^redis:\/\/redis:6379\//);
    }
    assert.equal(services.gateway.environment?.HOST, '0.0.0.0', 'the gateway must listen on all interfaces in a container');
    assert.ok(
      (services.gateway.ports ?? []).some((p: any) => String(p.target ?? p).includes('8080')),
      'gateway must publish port 8080',
    );
  });

  it('runs files that exist in the repo and are copied into the image', () => {
    const { services } = resolvedConfig();
    const copied = dockerfileCopies();
    for (const name of ['gateway', 'node-worker']) {
      const svc = services[name];
      const context = path.resolve(ROOT, typeof svc.build === 'string' ? svc.build : (svc.build?.context ?? '.'));
      assert.equal(context, ROOT, `${name} must be built from the repo root`);
      const cmd = argv(svc.command);
      assert.equal(cmd[0], 'node', `${name}: ${cmd.join(' ')}`);
      const files = cmd.filter((a) => /\.(?:[cm]?js|[cm]?ts)$/.test(a));
      assert.ok(files.length > 0, `${name}: no script in ${cmd.join(' ')}`);
      for (const f of files) {
        assert.ok(existsSync(path.join(context, f)), `${name} runs ${f}, which does not exist in the repo`);
        const top = f.replace(/^\.\//, '').split('/')[0]!;
        assert.ok(copied.has(top), `${name} runs ${f} but the Dockerfile does not COPY ${top}`);
      }
    }
    assert.ok(argv(services['node-worker'].command).includes('./examples/tasks.ts'));
    assert.ok(argv(services.gateway.command).includes('bin/celery-gateway.js'));

    const vols: unknown[] = services['python-worker'].volumes ?? [];
    const app = vols
      .map((v) => (typeof v === 'string' ? { source: v.split(':')[0], target: v.split(':')[1] } : (v as { source?: string; target?: string })))
      .find((v) => v.target === '/app');
    assert.ok(app?.source, 'python-worker must mount the example app on /app');
    assert.ok(existsSync(path.join(path.resolve(ROOT, app.source), 'tasks.py')), `${app.source}/tasks.py missing`);
  });

  it('the Python example registers task names the Node example also handles', () => {
    const r = spawnSync(
      '/usr/bin/python3',
      [
        '-c',
        'import ast, sys\n' +
          't = ast.parse(open(sys.argv[1]).read())\n' +
          'print("\\n".join(f.name for f in t.body if isinstance(f, ast.FunctionDef) and f.decorator_list))',
        path.join(ROOT, 'examples/python/tasks.py'),
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    const names = r.stdout.split('\n').filter(Boolean);
    assert.deepEqual(names.sort(), ['add', 'echo', 'fail', 'mul', 'xsum']);
    const nodeTasks = readFileSync(path.join(ROOT, 'examples/tasks.ts'), 'utf8');
    for (const n of names) assert.ok(nodeTasks.includes(`'tasks.${n}'`), `examples/tasks.ts lacks tasks.${n}`);
  });
});
