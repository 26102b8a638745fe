// The README's quick start, exactly as a newcomer follows it: `chat serve` with nothing
// configured (no NATS, no Postgres, no secret), then the commands its banner prints, then the
// stock socket.io-client: authenticate, join, exchange messages; all of it survives a restart.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EMBEDDED, authed, emitAck, waitFor, waitUntil, api } from './helpers.mjs';

const sh = promisify(execFile);
const sockets = [];
let child;
after(() => { for (const s of sockets) s.disconnect(); child?.kill('SIGKILL'); });

/** Starts `chat serve` in `cwd` with a clean environment; resolves with its banner lines. */
function serve(cwd) {
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, CHAT_LISTEN: '127.0.0.1:0', RUST_LOG: 'warn' };
  child = spawn(process.env.CHAT_BIN, ['serve'], { cwd, env, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('no banner: ' + out)), 30000);
    child.stdout.on('data', (d) => {
      out += d;
      if (/chat listening on/.test(out) && /token --user alice\n/.test(out)) {
        clearTimeout(timer);
        resolve(out.split('\n'));
      }
    });
  });
}

test('quick start: the printed commands register a user and mint a token that socket.io-client accepts; a restart keeps everything', { skip: !EMBEDDED && 'the embedded mode only' }, async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'chat-quickstart-'));
  let lines = await serve(cwd);
  const url = lines[0].match(/chat listening on (http:\/\/\S+)/)[1];
  assert.equal(lines[1], `web app: ${url}/ (operators: ${url}/ops)`);
  const page = await fetch(url + '/');
  assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.match(await page.text(), /<script type="module" src="\/app\.js"><\/script>/);
  assert.match(lines[2], /embedded storage in .*data: events\.log, read\.db, jwt-secret/);
  assert.equal(statSync(join(cwd, 'data', 'jwt-secret')).mode & 0o777, 0o600);
  const curl = lines.find((l) => l.trim().startsWith('curl -X PUT'));
  const mint = lines.find((l) => l.trim().endsWith('token --user alice'));
  assert.ok(curl && mint, lines.join('\n'));

  // The admin token inside the curl command, then the registration it performs.
  const adminCmd = curl.match(/\$\((.*?)\)/)[1];
  const admin = (await sh('sh', ['-c', adminCmd])).stdout.trim();
  const put = await api(url, 'PUT', '/api/users/alice', admin, { name: 'Alice' });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  const alice = (await sh('sh', ['-c', mint.trim()])).stdout.trim();
  const bobToken = (await sh('sh', ['-c', mint.trim().replace(/alice$/, 'bob --ttl 1h')])).stdout.trim();
  assert.equal((await api(url, 'PUT', '/api/users/bob', admin, { name: 'Bob' })).status, 200);

  const conv = (await api(url, 'POST', '/api/conversations', alice, { title: 'Hello', participantIds: ['bob'] })).body.id;
  const a = await authed(url, alice); sockets.push(a);
  const b = await authed(url, bobToken); sockets.push(b);
  await emitAck(a, 'conversation:join', { conversationId: conv });
  await emitAck(b, 'conversation:join', { conversationId: conv });
  const sent = await emitAck(a, 'message:send', { conversationId: conv, content: 'Hello, Bob' });
  assert.deepEqual({ success: sent.success, seq: sent.seq }, { success: true, seq: 1 });
  const got = await waitFor(b, 'message:new', (m) => m.id === sent.messageId);
  assert.equal(got.content, 'Hello, Bob');
  const reply = await emitAck(b, 'message:send', { conversationId: conv, content: 'Hi, Alice' });
  await waitFor(a, 'message:new', (m) => m.id === reply.messageId);

  // Restart: same data dir, same secret, same history; seq continues.
  for (const s of sockets.splice(0)) s.disconnect();
  await new Promise((r) => { child.once('exit', r); child.kill('SIGTERM'); });
  lines = await serve(cwd);
  const url2 = lines[0].match(/chat listening on (http:\/\/\S+)/)[1];
  // The restarted projector may still be catching up with the last message.
  const listed = async () => (await api(url2, 'GET', `/api/messages?conversationId=${conv}`, alice)).body.messages;
  await waitUntil(async () => (await listed()).length === 2, 10000, 'both messages after the restart');
  const list = await listed();
  assert.deepEqual(list.map((m) => [m.seq, m.content, m.sender.name]), [[1, 'Hello, Bob', 'Alice'], [2, 'Hi, Alice', 'Bob']]);
  const a2 = await authed(url2, alice); sockets.push(a2);
  await emitAck(a2, 'conversation:join', { conversationId: conv });
  assert.equal((await emitAck(a2, 'message:send', { conversationId: conv, content: 'still here' })).seq, 3);
});
