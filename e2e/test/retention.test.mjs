// Retention (contract 4.2): `PUT /api/conversations/:id/retention` sets how long a
// conversation keeps its messages; the sweeper (every CHAT_RETENTION_SWEEP_SECS) expires what
// is older by appending an expiry event and destroying the keys of the periods wholly past it.
// An expired message reads `content: null, expired: true` on every read path; a held
// conversation is skipped until released; a rebuild yields the same reads.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EMBEDDED, deployment, startServer, token, adminToken, api, authed, emitAck, waitUntil, unique, NO_LIMITS, history, expectError } from './helpers.mjs';

const run = promisify(execFile);
const SWEEP_SECS = 1, PERIOD_SECS = 2, RETENTION = 3;
const FAST = { ...NO_LIMITS, CHAT_RETENTION_SWEEP_SECS: String(SWEEP_SECS), CHAT_KEY_PERIOD_SECS: String(PERIOD_SECS) };
let dep, A;
const ann = unique('ann'), bob = unique('bob'), zed = unique('zed');
const mark = unique('expiring');

before(async () => {
  dep = deployment();
  A = await startServer(dep, FAST);
  for (const [id, name] of [[ann, 'Ann'], [bob, 'Bob'], [zed, 'Zed']]) {
    await api(A.url, 'PUT', `/api/users/${id}`, adminToken(), { name });
  }
});
after(async () => {
  await A?.stop();
});

const newConversation = async (title) =>
  (await api(A.url, 'POST', '/api/conversations', token(ann), { title, participantIds: [bob] })).body.id;
const send = async (conv, content, who = ann) => {
  const r = await api(A.url, 'POST', '/api/messages', token(who), { conversationId: conv, content });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
};
const retention = (conv, body, tok = token(ann)) => api(A.url, 'PUT', `/api/conversations/${conv}/retention`, tok, body);
const read = async (conv, id) => (await history(A.url, conv, bob)).find((m) => m.id === id);
const expired = (conv, id) => waitUntil(async () => (await read(conv, id))?.expired === true, 30000, `message ${id} expired`);
const auditOf = async (conv) => (await api(A.url, 'GET', `/api/audit?conversationId=${conv}&limit=1000`, adminToken())).body.entries;

test('bad retention settings change nothing', async () => {
  const conv = await newConversation('Bad retention');
  expectError(await retention(conv, { retentionSeconds: 60 }, token(bob)), 403, 'UNAUTHORIZED');
  expectError(await retention(conv, { retentionSeconds: 60 }, token(zed)), 403, 'NOT_PARTICIPANT');
  for (const bad of [-5, 0, 1.5, '60', 1e12, 2 ** 64, true]) {
    const r = await retention(conv, { retentionSeconds: bad });
    expectError(r, 400, 'INVALID_INPUT');
    assert.match(r.body.error.message, /retentionSeconds/);
  }
  expectError(await retention(conv, {}), 400, 'INVALID_INPUT');
  expectError(await retention(conv, '[60]'), 400, 'INVALID_INPUT');
  expectError(await retention('conv_nope', { retentionSeconds: 60 }, adminToken()), 404, 'NOT_FOUND');
  expectError(await retention('no%20such', { retentionSeconds: 60 }, adminToken()), 400, 'INVALID_INPUT');
  assert.deepEqual((await auditOf(conv)).map((e) => e.type), ['ConversationCreated', 'ParticipantAdded', 'ParticipantAdded']);
});

test('a message past the retention period reads expired everywhere; newer ones and other conversations are untouched', async () => {
  const conv = await newConversation('Retention');
  const other = await newConversation('Forever');
  const old = await send(conv, `${mark}-sent`);
  await api(A.url, 'PATCH', `/api/messages/${old.id}`, token(ann), { conversationId: conv, content: `${mark}-edit` });
  const kept = await send(other, 'kept forever');

  const set = await retention(conv, { retentionSeconds: RETENTION });
  assert.equal(set.status, 200, JSON.stringify(set.body));
  assert.deepEqual({ ...set.body, position: typeof set.body.position }, { conversationId: conv, retentionSeconds: RETENTION, position: 'number' });
  const again = await retention(conv, { retentionSeconds: RETENTION });
  assert.equal(again.status, 200, 'the same period again changes nothing');
  const byAdmin = await retention(other, { retentionSeconds: null }, adminToken());
  assert.deepEqual([byAdmin.status, byAdmin.body.retentionSeconds], [200, null]);

  await expired(conv, old.id);
  const seenAt = Date.now();
  const due = Date.parse(old.createdAt) + RETENTION * 1000;
  assert.ok(seenAt >= due, 'not expired before it was due');
  // The contract's bound is one sweep plus a second; the rest is this poll and a noisy machine.
  assert.ok(seenAt <= due + (SWEEP_SECS + 1) * 1000 + 5000, `expired ${seenAt - due} ms after it was due`);
  const fresh = await send(conv, 'fresh');
  await waitUntil(async () => (await read(conv, fresh.id)) !== undefined, 10000, 'the fresh message projected');

  // REST reads.
  const page = await history(A.url, conv, bob);
  const byId = Object.fromEntries(page.map((m) => [m.id, m]));
  assert.deepEqual([byId[old.id].content, byId[old.id].expired, byId[old.id].erased], [null, true, undefined]);
  assert.equal(byId[old.id].sender.name, 'Ann', 'expiry forgets the message, not its author');
  assert.deepEqual([byId[fresh.id].content, byId[fresh.id].expired], ['fresh', undefined]);
  assert.equal((await read(other, kept.id)).content, 'kept forever');
  expectError(await api(A.url, 'PATCH', `/api/messages/${old.id}`, token(ann), { conversationId: conv, content: 'again' }), 404, 'NOT_FOUND');

  // Catch-up from the log.
  const s = await authed(A.url, token(bob));
  try {
    const replayed = [];
    s.on('message:new', (m) => replayed.push(['new', m.id, m.content, m.expired]));
    s.on('message:updated', (m) => replayed.push(['updated', m.id, m.content, m.expired]));
    await emitAck(s, 'conversation:join', { conversationId: conv, sinceOffset: 0 });
    await waitUntil(() => replayed.length === 3, 10000, 'the replay');
    assert.deepEqual(replayed, [
      ['new', old.id, null, true],
      ['updated', old.id, null, true],
      ['new', fresh.id, 'fresh', undefined],
    ]);
  } finally {
    s.disconnect();
  }

  // The message's history, from the log.
  const versions = (await api(A.url, 'GET', `/api/messages/${old.id}/history?conversationId=${conv}`, token(bob))).body.versions;
  assert.deepEqual(versions.map((v) => [v.content, v.expired]), [[null, true], [null, true]]);

  // Audit: the expiry is an event of the log, by the sweeper.
  const audit = await auditOf(conv);
  assert.deepEqual(
    audit.filter((e) => ['MessageSent', 'MessageEdited'].includes(e.type)).map((e) => [e.type, e.data.content, e.data.expired]),
    [['MessageSent', null, true], ['MessageEdited', null, true], ['MessageSent', 'fresh', undefined]],
  );
  const expiry = audit.find((e) => e.type === 'MessagesExpired');
  assert.equal(expiry.actor, 'system:retention');
  assert.equal(expiry.data.uptoSeq, 1);
  assert.ok(Date.parse(expiry.data.before) <= Date.parse(expiry.occurredAt) - RETENTION * 1000);
  assert.ok(Date.parse(expiry.data.before) > Date.parse(old.createdAt));
  assert.deepEqual(audit.find((e) => e.type === 'ConversationRetentionSet').data, { retentionSeconds: RETENTION });

  // `chat events` and the export.
  const env = { ...process.env, ...dep, RUST_LOG: 'warn' };
  const { stdout } = await run(process.env.CHAT_BIN, ['events', '--conversation', conv], { env });
  assert.ok(!stdout.includes(mark), 'chat events shows nothing of the expired text');
  assert.ok(stdout.includes('fresh'));
  const exported = (await run(process.env.CHAT_BIN, ['export', '--conversation', conv], { env })).stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(exported.filter((l) => l.type === 'MessageSent').map((l) => [l.data.content, l.data.expired]), [[null, true], ['fresh', undefined]]);
  const verify = await run(process.env.CHAT_BIN, ['audit', 'verify'], { env }).catch((e) => e);
  assert.equal(verify.code ?? 0, 0, `chat audit verify after expiry: ${verify.stdout}${verify.stderr}`);
  // Three names, the kept and the fresh message; the old message and its edit no longer open
  // (the fresh one may have expired since).
  const [, open, erased, gone] = verify.stdout.match(/^sealed fields: (\d+) open, (\d+) erased, (\d+) expired/m).map(Number);
  assert.deepEqual([open + gone, erased], [7, 0]);
  assert.ok(gone >= 2, verify.stdout);

  if (EMBEDDED) {
    // The key of the old message's period is destroyed once the period is wholly past.
    const period = Math.floor(Date.parse(old.createdAt) / (PERIOD_SECS * 1000)) * PERIOD_SECS * 1000;
    await waitUntil(() => readFileSync(join(dep.CHAT_DATA_DIR, 'keys', 'keys'), 'utf8').includes(`c.${conv}.${period} -\n`), 20000, 'the period key destroyed');
  }
});

test('a held conversation keeps its messages until the hold is released', async () => {
  const held = await newConversation('Held');
  const free = await newConversation('Free');
  assert.equal((await api(A.url, 'PUT', `/api/holds/conversations/${held}`, adminToken(), { reason: 'case 9' })).status, 200);
  const evidence = await send(held, 'evidence', bob);
  const first = await send(free, 'first');
  for (const c of [held, free]) assert.equal((await retention(c, { retentionSeconds: 1 })).status, 200);

  // By the time a message sent after `evidence` in the free conversation has expired, every
  // sweep since `evidence` was due has passed over the held one.
  await expired(free, first.id);
  const second = await send(free, 'second');
  await expired(free, second.id);
  const kept = await read(held, evidence.id);
  assert.deepEqual([kept.content, kept.expired], ['evidence', undefined]);
  assert.ok(!(await auditOf(held)).some((e) => e.type === 'MessagesExpired'));

  assert.equal((await api(A.url, 'DELETE', `/api/holds/conversations/${held}`, adminToken())).status, 200);
  await expired(held, evidence.id);
  assert.equal((await read(held, evidence.id)).content, null);
});

test('a rebuild after expiry yields the same reads', async () => {
  const conv = await newConversation('Rebuild');
  const gone = await send(conv, `${mark}-rebuild`);
  assert.equal((await retention(conv, { retentionSeconds: 1 })).status, 200);
  await expired(conv, gone.id);
  const convs = (await api(A.url, 'GET', '/api/conversations', token(bob))).body.conversations.map((c) => c.id);
  const reads = async () => {
    const all = {};
    for (const c of convs) all[c] = (await history(A.url, c, bob)).map(({ id, content, expired, editedAt }) => ({ id, content, expired, editedAt }));
    return all;
  };
  // Set the periods to forever, so nothing more expires between the two reads.
  for (const c of convs) await retention(c, { retentionSeconds: null }, adminToken());
  const last = await retention(conv, { retentionSeconds: null }, adminToken());
  await api(A.url, 'GET', `/api/conversations?minPosition=${last.body.position}`, token(bob));
  const before = await reads();
  await A.stop();
  const env = { ...process.env, ...dep, RUST_LOG: 'warn' };
  for (const name of ['chat', 'unread', 'search']) {
    const rebuilt = await run(process.env.CHAT_BIN, ['projections', 'rebuild', name], { env });
    assert.match(rebuilt.stdout, /rebuilt up to position \d+/);
  }
  A = await startServer(dep, FAST);
  assert.deepEqual(await reads(), before);
  assert.ok(Object.values(before).flat().some((m) => m.expired === true));
});
