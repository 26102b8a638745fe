// Erasure on an immutable log (contract 4.2): `POST /api/users/:id/erase` destroys the user's
// data key, so their profile and the content of their messages read null on every read path,
// their sockets are cut off on every node and their tokens refused, everyone else is untouched,
// and a rebuild of the read models from the log yields the same.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { EMBEDDED, deployment, startServer, startNodes, token, adminToken, api, authed, connect, emitAck, waitFor, waitUntil, unique, NO_LIMITS, history, expectError } from './helpers.mjs';

const run = promisify(execFile);
let dep, A, B;
const sockets = [];
const track = (s) => (sockets.push(s), s);
const ann = unique('ann'), bob = unique('bob'), eve = unique('eve');
const mark = unique('erased');
const eveName = `${mark}-name`, eveText = `${mark}-text`, eveEdit = `${mark}-edit`;
let conv, eveMsg, bobMsg;

before(async () => {
  dep = deployment();
  [A, B] = await startNodes(dep, NO_LIMITS);
  await api(A.url, 'PUT', `/api/users/${ann}`, adminToken(), { name: 'Ann' });
  await api(A.url, 'PUT', `/api/users/${bob}`, adminToken(), { name: 'Bob' });
  await api(A.url, 'PUT', `/api/users/${eve}`, adminToken(), { name: eveName, avatarUrl: 'https://x/eve.png' });
  conv = (await api(A.url, 'POST', '/api/conversations', token(ann), { title: 'Erasure', participantIds: [bob, eve] })).body.id;
  eveMsg = (await api(A.url, 'POST', '/api/messages', token(eve), { conversationId: conv, content: eveText })).body;
  await api(A.url, 'PATCH', `/api/messages/${eveMsg.id}`, token(eve), { conversationId: conv, content: eveEdit });
  bobMsg = (await api(A.url, 'POST', '/api/messages', token(bob), { conversationId: conv, content: 'from bob' })).body;
  await api(A.url, 'POST', `/api/messages/${eveMsg.id}/reactions`, token(bob), { emoji: '👍', conversationId: conv });
});
after(async () => {
  for (const s of sockets) s.disconnect();
  await A?.stop();
  await B?.stop();
});

/** What the read side answers for the conversation and the users, to compare before and after a rebuild. */
async function reads(url) {
  const messages = (await history(url, conv, ann)).map(({ id, content, erased, sender, reactions }) => ({ id, content, erased, sender, reactions: reactions.length }));
  const users = [];
  for (const u of [ann, bob, eve]) {
    const { id, name, avatarUrl, status } = (await api(url, 'GET', `/api/users/${u}`, token(ann))).body;
    users.push({ id, name, avatarUrl, status });
  }
  return { messages, users };
}

test('bad erasures change nothing', async () => {
  expectError(await api(A.url, 'POST', `/api/users/${eve}/erase`, token(ann), {}), 403, 'UNAUTHORIZED');
  expectError(await api(A.url, 'POST', `/api/users/${unique('nobody')}/erase`, adminToken(), {}), 404, 'NOT_FOUND');
  expectError(await api(A.url, 'POST', '/api/users/no%20such/erase', adminToken(), {}), 400, 'INVALID_INPUT');
  expectError(await api(A.url, 'POST', `/api/users/${eve}/erase`, adminToken(), { reason: 'x'.repeat(501) }), 400, 'INVALID_INPUT');
  expectError(await api(A.url, 'POST', `/api/users/${eve}/erase`, adminToken(), '{"reason": 5}'), 400, 'INVALID_INPUT');
  const still = await api(A.url, 'GET', `/api/users/${eve}`, token(ann));
  assert.deepEqual([still.body.name, still.body.status], [eveName, 'active']);
});

test('an erased user reads null everywhere, is cut off and refused, and others are untouched', async () => {
  const onA = track(await authed(A.url, token(eve)));
  const onB = track(await authed(B.url, token(eve)));
  const r = await api(B.url, 'POST', `/api/users/${eve}/erase`, adminToken(), { reason: 'request of the person' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(Object.keys(r.body).sort(), ['id', 'position', 'status']);
  assert.equal(r.body.id, eve);
  assert.equal(r.body.status, 'erased');
  assert.equal(typeof r.body.position, 'number');

  for (const s of [onA, onB]) {
    assert.equal((await waitFor(s, 'auth:error')).code, 'UNAUTHORIZED');
    await waitUntil(() => s.disconnectReason !== undefined, 10000, 'the cut-off');
  }
  assert.equal((await waitFor(track(connect(A.url, token(eve))), 'auth:error')).code, 'UNAUTHORIZED');
  expectError(await api(A.url, 'POST', '/api/messages', token(eve), { conversationId: conv, content: 'again' }), 403, 'UNAUTHORIZED');
  expectError(await api(A.url, 'PUT', `/api/users/${eve}`, adminToken(), { name: 'Eve again' }), 409, 'CONFLICT');

  // Erasing again answers the same and appends nothing.
  const again = await api(A.url, 'POST', `/api/users/${eve}/erase`, adminToken());
  assert.equal(again.status, 200);
  assert.equal(again.body.status, 'erased');

  // REST reads.
  const profile = await api(A.url, 'GET', `/api/users/${eve}?minPosition=${r.body.position}`, token(ann));
  assert.equal(profile.status, 200);
  assert.deepEqual({ ...profile.body, lastSeenAt: undefined }, { id: eve, name: null, avatarUrl: null, status: 'erased', lastSeenAt: undefined });
  // Once the read models have the erasure, its reads refuse the token too.
  expectError(await api(A.url, 'GET', '/api/conversations', token(eve)), 403, 'UNAUTHORIZED');
  const page = (await api(A.url, 'GET', `/api/messages?conversationId=${conv}&minPosition=${r.body.position}`, token(ann))).body.messages;
  const byId = Object.fromEntries(page.map((m) => [m.id, m]));
  assert.equal(byId[eveMsg.id].content, null);
  assert.equal(byId[eveMsg.id].erased, true);
  assert.equal(byId[eveMsg.id].sender.name, null);
  assert.equal(byId[eveMsg.id].reactions.length, 1, 'the reaction of another user stays');
  assert.equal(byId[bobMsg.id].content, 'from bob');
  assert.equal(byId[bobMsg.id].erased, undefined);
  assert.equal(byId[bobMsg.id].sender.name, 'Bob');
  const details = (await api(A.url, 'GET', `/api/conversations/${conv}`, token(ann))).body;
  assert.equal(details.participants.find((p) => p.userId === eve).user.name, null);
  assert.equal(details.participants.find((p) => p.userId === bob).user.name, 'Bob');

  // Catch-up from the log, on the other node.
  const late = track(await authed(B.url, token(ann)));
  const replayed = [];
  late.on('message:new', (m) => replayed.push(['new', m.id, m.content, m.erased, m.sender.name]));
  late.on('message:updated', (m) => replayed.push(['updated', m.id, m.content, m.erased]));
  await emitAck(late, 'conversation:join', { conversationId: conv, sinceOffset: 0 });
  await waitUntil(() => replayed.length === 3, 10000, 'the replay');
  assert.deepEqual(replayed, [
    ['new', eveMsg.id, null, true, null],
    ['updated', eveMsg.id, null, true],
    ['new', bobMsg.id, 'from bob', undefined, 'Bob'],
  ]);

  // Audit and `chat events`.
  const audit = (await api(A.url, 'GET', `/api/audit?conversationId=${conv}`, adminToken())).body.entries;
  const sealed = audit.filter((e) => ['MessageSent', 'MessageEdited'].includes(e.type)).map((e) => [e.type, e.data.content, e.data.erased]);
  assert.deepEqual(sealed, [['MessageSent', null, true], ['MessageEdited', null, true], ['MessageSent', 'from bob', undefined]]);
  const users = (await api(A.url, 'GET', `/api/audit?limit=1000`, adminToken())).body.entries.filter((e) => e.aggregateId === eve);
  assert.deepEqual(users.map((e) => e.type), ['UserRegistered', 'UserErased']);
  assert.deepEqual(users[0].data, { name: null, avatarUrl: null, erased: true });
  assert.deepEqual(users[1].data, { reason: 'request of the person' });
  assert.equal(users[1].actor, 'admin:e2e-admin');
  const { stdout } = await run(process.env.CHAT_BIN, ['events', '--conversation', conv], { env: { ...process.env, ...dep } });
  assert.ok(!stdout.includes(mark), 'chat events shows nothing of the erased text');
  assert.ok(stdout.includes('from bob'));
  const verify = await run(process.env.CHAT_BIN, ['audit', 'verify'], { env: { ...process.env, ...dep } }).catch((e) => e);
  assert.equal(verify.code ?? 0, 0, `chat audit verify after the erasure: ${verify.stdout}${verify.stderr}`);
  // Ann's and Bob's names and Bob's message open; Eve's name, avatar, message and edit do not.
  assert.match(verify.stdout, /^sealed fields: 3 open, 4 erased, 0 expired/m);
});

test('the read models hold no copy of the erased text, and a rebuild from the log yields the same reads', async () => {
  const before = await reads(A.url);
  if (EMBEDDED) {
    await waitUntil(() => {
      const files = readdirSync(dep.CHAT_DATA_DIR).filter((f) => f.startsWith('read.db')).map((f) => join(dep.CHAT_DATA_DIR, f));
      return files.every((f) => !existsSync(f) || !readFileSync(f).includes(Buffer.from(mark)));
    }, 20000, 'no erased text in read.db');
  }
  await A.stop();
  await B.stop();
  const env = { ...process.env, ...dep, RUST_LOG: 'warn' };
  for (const name of ['chat', 'unread', 'search']) {
    const rebuilt = await run(process.env.CHAT_BIN, ['projections', 'rebuild', name], { env });
    assert.match(rebuilt.stdout, /rebuilt up to position \d+/);
  }
  A = await startServer(dep, NO_LIMITS);
  B = undefined;
  assert.deepEqual(await reads(A.url), before);
});
