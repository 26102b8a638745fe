// Harness for the end-to-end tests: starts real `chat serve` processes (CHAT_BIN) on the NATS
// and Postgres that scripts/test.sh started, each test file on its own stream and database,
// and talks to them with the stock socket.io-client and fetch.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { io } from 'socket.io-client';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import net from 'node:net';
import { join } from 'node:path';

export const SECRET = 'e2e-secret-' + randomBytes(4).toString('hex');

export function unique(prefix = 't') {
  return prefix + Date.now().toString(36) + randomBytes(4).toString('hex');
}

/**
 * CHAT_E2E_BACKEND=embedded runs a suite on the embedded mode (`chat serve` with nothing
 * configured: the file log and SQLite under a data dir, one node) instead of NATS + Postgres.
 */
export const EMBEDDED = process.env.CHAT_E2E_BACKEND === 'embedded';

/**
 * An isolated deployment: stream, subject prefix and database of its own (NATS + Postgres), or
 * a data dir of its own (embedded).
 */
export function deployment({ embedded = EMBEDDED } = {}) {
  const id = unique('e');
  if (!process.env.CHAT_BIN) throw new Error('run through scripts/test.sh (CHAT_BIN)');
  if (embedded) {
    // Stream and prefix of its own too, for `chat log copy` into the shared NATS.
    return {
      CHAT_JWT_SECRET: SECRET,
      CHAT_DATA_DIR: mkdtempSync(join(tmpdir(), 'chat-e2e-')),
      CHAT_STREAM: id.toUpperCase(),
      CHAT_SUBJECT_PREFIX: id,
    };
  }
  const adminUrl = process.env.CHAT_TEST_DATABASE_URL;
  if (!adminUrl || !process.env.CHAT_TEST_NATS_URL) {
    throw new Error('run through scripts/test.sh (CHAT_TEST_NATS_URL, CHAT_TEST_DATABASE_URL)');
  }
  return {
    CHAT_NATS_URL: process.env.CHAT_TEST_NATS_URL,
    CHAT_DATABASE_URL: adminUrl.replace(/\/[^/]*$/, '/' + id),
    CHAT_STREAM: id.toUpperCase(),
    CHAT_SUBJECT_PREFIX: id,
    CHAT_JWT_SECRET: SECRET,
    CHAT_MASTER_KEY: MASTER_KEY,
  };
}

/** The master key of NATS deployments under test (embedded ones make their own). */
export const MASTER_KEY = '5e'.repeat(32);

/** Rate limits off, for suites that send faster than 30 messages a minute. */
export const NO_LIMITS = { CHAT_RATE_MESSAGES_PER_MIN: '0', CHAT_RATE_EVENTS_PER_MIN: '0' };

/** Starts `chat serve` and resolves with {url, stop} once it listens. */
export function startServer(dep, extraEnv = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.env.CHAT_BIN, ['serve'], {
      env: { ...process.env, ...dep, CHAT_LISTEN: '127.0.0.1:0', RUST_LOG: 'warn', ...extraEnv },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    const timer = setTimeout(() => reject(new Error('chat serve did not start: ' + out)), 30000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/chat listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        let stopped;
        resolve({
          url: m[1],
          child,
          /** Everything the server printed on stdout so far. */
          output: () => out,
          // SIGKILL: no goodbye. Idempotent (an embedded "second node" is the first one).
          stop: () => (stopped ??= killed(child)),
        });
      }
    });
    child.once('exit', (code) => reject(new Error('chat serve exited with ' + code + ': ' + out)));
  });
}

/**
 * Two nodes of one deployment. The embedded mode is one node (multi-node does not apply): both
 * are the same server, so the cross-node suites run unchanged on it.
 */
export async function startNodes(dep, extraEnv = {}) {
  const A = await startServer(dep, extraEnv);
  return [A, EMBEDDED ? A : await startServer(dep, extraEnv)];
}

const b64 = (o) => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o)).toString('base64url');

/** An HS256 JWT, or any alteration of one for the attack tests. */
export function jwt(claims, { secret = SECRET, alg = 'HS256' } = {}) {
  const head = b64({ alg, typ: 'JWT' }) + '.' + b64(claims);
  if (alg === 'none') return head + '.';
  return head + '.' + createHmac('sha256', secret).update(head).digest('base64url');
}

export const token = (userId, extra = {}) =>
  jwt({ userId, exp: Math.floor(Date.now() / 1000) + 3600, ...extra });
export const adminToken = () => token('e2e-admin', { role: 'admin' });

export async function api(base, method, path, tok, body) {
  const res = await fetch(base + path, {
    method,
    headers: { 'content-type': 'application/json', ...(tok ? { authorization: 'Bearer ' + tok } : {}) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = text; }
  return { status: res.status, body: json, headers: res.headers };
}

/** Asserts an error answer: its status, its code and, when given, what its message names. */
export function expectError(r, status, code, field) {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.deepEqual(Object.keys(r.body), ['error']);
  assert.equal(r.body.error.code, code);
  assert.equal(typeof r.body.error.message, 'string');
  if (field) assert.match(r.body.error.message, new RegExp(field));
}

/** Connects and records every event in arrival order. */
export function connect(base, tok, opts = {}) {
  const socket = io(base, {
    auth: tok === undefined ? {} : { token: tok },
    forceNew: true,
    reconnection: false,
    transports: ['websocket'],
    ...opts,
  });
  socket.received = [];
  socket.onAny((event, payload) => socket.received.push({ event, payload }));
  socket.on('disconnect', (reason) => { socket.disconnectReason = reason; });
  return socket;
}

/** Waits until `socket` has received an event matching, from index `from` on. */
export function waitFor(socket, event, pred = () => true, timeout = 10000) {
  return new Promise((resolve, reject) => {
    const check = () => socket.received.find((e) => e.event === event && pred(e.payload));
    const found = check();
    if (found) return resolve(found.payload);
    const t = setTimeout(() => {
      socket.offAny(on);
      reject(new Error(`timed out waiting for ${event}; got ${JSON.stringify(socket.received.map((e) => e.event))}`));
    }, timeout);
    const on = () => {
      const f = check();
      if (f) { clearTimeout(t); socket.offAny(on); resolve(f.payload); }
    };
    socket.onAny(on);
  });
}

export function waitUntil(cond, timeout = 10000, what = 'condition') {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const tick = async () => {
      try { if (await cond()) return resolve(); } catch {}
      if (Date.now() - start > timeout) return reject(new Error('timed out waiting for ' + what));
      setTimeout(tick, 25);
    };
    tick();
  });
}

export const emitAck = (socket, event, payload, timeout = 10000) =>
  socket.timeout(timeout).emitWithAck(event, payload);

/** Every message of conversation `conv` as `who` reads it, paged by `after`. */
export async function history(url, conv, who) {
  const all = [];
  for (let after = 0; ;) {
    const r = await api(url, 'GET', `/api/messages?conversationId=${conv}&limit=200&after=${after}`, token(who));
    if (r.status !== 200) throw new Error(`GET /api/messages: ${r.status} ${JSON.stringify(r.body)}`);
    all.push(...r.body.messages);
    if (!r.body.hasMore) return all;
    after = r.body.messages[r.body.messages.length - 1].seq;
  }
}

export async function authed(base, tok, opts) {
  const s = connect(base, tok, opts);
  await waitFor(s, 'auth:success');
  return s;
}

// ---------------------------------------------------------------------------------------------
// Services of a test's own, for the fault tests: they stop and start them. NATS_BIN and PG_BIN
// come from scripts/services.sh (scripts/test.sh sources it).

/** A free loopback port. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts connections on `port`. */
export function portOpen(port, timeout = 30000) {
  return waitUntil(() => new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  }), timeout, `port ${port} to open`);
}

/** Runs a command to completion; rejects with its output when it fails. */
function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')}: ${code}: ${out}`))));
  });
}

/** Kills `child` (SIGKILL) unless it has already exited; resolves once it has. */
function killed(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => { child.once('exit', r); child.kill('SIGKILL'); });
}

/**
 * One `nats-server` with JetStream on `port` and a store of its own, not started yet:
 * `stop()` kills it, `start()` brings it back with the same store, `destroy()` stops it and
 * removes the store.
 */
function natsServer(port, args = []) {
  const bin = process.env.NATS_BIN;
  if (!bin) throw new Error('run through scripts/test.sh (NATS_BIN)');
  const dir = mkdtempSync(join(tmpdir(), 'chat-nats-'));
  let child;
  const server = {
    url: `nats://127.0.0.1:${port}`,
    async start() {
      child = spawn(bin, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir, ...args], { stdio: 'ignore' });
      await portOpen(port);
    },
    stop: () => killed(child),
    async destroy() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}

/** A NATS JetStream server of its own, started (see `natsServer`). */
export async function privateNats() {
  const server = natsServer(await freePort());
  await server.start();
  return server;
}

/**
 * A PostgreSQL cluster of its own (as the `postgres` user when run as root, like
 * scripts/services.sh): `stop()` is an immediate shutdown, `start()` brings it back.
 */
export async function privatePostgres() {
  const bin = process.env.PG_BIN;
  if (!bin) throw new Error('run through scripts/test.sh (PG_BIN)');
  const root = process.getuid?.() === 0;
  const as = (cmd, args) => (root ? run('runuser', ['-u', 'postgres', '--', cmd, ...args]) : run(cmd, args));
  const dir = mkdtempSync(join(tmpdir(), 'chat-pg-'));
  if (root) await run('chown', ['-R', 'postgres', dir]);
  const user = root ? 'postgres' : userInfo().username;
  await as(join(bin, 'initdb'), ['-D', join(dir, 'data'), '-U', user, '--auth=trust', '-E', 'UTF8']);
  const port = await freePort();
  const pg = {
    url: `postgres://${user}@127.0.0.1:${port}/chat`,
    start: () => as(join(bin, 'pg_ctl'), ['-D', join(dir, 'data'), '-l', join(dir, 'log'), '-w', '-o',
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, 'start']),
    stop: () => as(join(bin, 'pg_ctl'), ['-D', join(dir, 'data'), '-m', 'immediate', 'stop']).catch(() => {}),
    /** Stops it and removes its cluster. */
    async destroy() {
      await pg.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await pg.start();
  return pg;
}

/**
 * A NATS JetStream cluster of its own (`size` servers on loopback, routes between them):
 * `url` lists every server, comma-separated; `nodes[i]` is one server (see `natsServer`).
 */
export async function privateNatsCluster(size = 3) {
  const ports = [];
  for (let i = 0; i < size; i++) ports.push({ client: await freePort(), cluster: await freePort() });
  const routes = ports.map((p) => `nats://127.0.0.1:${p.cluster}`).join(',');
  const nodes = ports.map((p, i) => natsServer(p.client, ['--name', `n${i}`, '--cluster_name', 'chat-test',
    '--cluster', `nats://127.0.0.1:${p.cluster}`, '--routes', routes]));
  await Promise.all(nodes.map((n) => n.start()));
  return {
    url: nodes.map((n) => n.url).join(','),
    nodes,
    destroy: () => Promise.all(nodes.map((n) => n.destroy())),
  };
}
