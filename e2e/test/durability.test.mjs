// Durability, on whichever backend the suite runs (NATS + Postgres, or the embedded mode):
// `kill -9` in the middle of a burst of sends loses no acknowledged message and duplicates
// none; after a restart every message, participant and receipt is there and `seq` continues.
// On the embedded mode, `chat log copy` into JetStream then `chat projections rebuild` into
// Postgres answers the same reads as the embedded store.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EMBEDDED, SECRET, deployment, startServer, token, adminToken, api, authed, emitAck, waitUntil, unique, NO_LIMITS, history } from './helpers.mjs';

const run = promisify(execFile);
const sockets = [];
const servers = [];
const track = (s) => (sockets.push(s), s);
const serve = async (dep) => { const s = await startServer(dep, NO_LIMITS); servers.push(s); return s; };
after(async () => {
  for (const s of sockets) s.disconnect();
  for (const s of servers) await s.stop();
});

const ann = unique('ann'), bob = unique('bob');
const dep = deployment();
let conv;
/** What the embedded server answered, for the copy test. */
const answers = {};

/** Every message of the conversation, as one page. */
const messages = async (url, who = ann) => ({ messages: await history(url, conv, who), hasMore: false });

test('kill -9 during a burst of sends: every acknowledged message survives once, seq continues', async () => {
  let A = await serve(dep);
  for (const [id, name] of [[ann, 'Ann'], [bob, 'Bob']]) {
    assert.equal((await api(A.url, 'PUT', `/api/users/${id}`, adminToken(), { name })).status, 200);
  }
  conv = (await api(A.url, 'POST', '/api/conversations', token(ann), { title: 'Durable', participantIds: [bob] })).body.id;
  const a = track(await authed(A.url, token(ann)));
  await emitAck(a, 'conversation:join', { conversationId: conv });
  const first = [];
  for (let i = 0; i < 3; i++) first.push(await emitAck(a, 'message:send', { conversationId: conv, content: `first ${i}` }));
  const b = track(await authed(A.url, token(bob)));
  await emitAck(b, 'conversation:join', { conversationId: conv });
  assert.equal((await emitAck(b, 'message:read', { conversationId: conv, messageIds: [first[0].messageId, first[1].messageId] })).success, true);

  // A burst without waiting; the server dies after the first acknowledgements.
  const acked = [];
  for (let i = 0; i < 1000; i++) {
    a.timeout(10000).emitWithAck('message:send', { conversationId: conv, content: `burst ${i}` })
      .then((r) => { if (r.success) acked.push(r); }, () => {});
  }
  await waitUntil(() => acked.length >= 10, 10000, 'acknowledgements before the kill');
  await A.stop(); // SIGKILL
  const ackedBeforeKill = [...acked];
  assert.ok(ackedBeforeKill.length < 1000, 'the server died in the middle of the burst');

  A = await serve(dep);
  const all = [...first, ...ackedBeforeKill];
  await waitUntil(async () => {
    const list = await messages(A.url);
    return all.every((m) => list.messages?.some((x) => x.id === m.messageId));
  }, 30000, 'the projection to show every acknowledged message');
  const list = (await messages(A.url)).messages;
  for (const m of all) {
    const found = list.filter((x) => x.id === m.messageId);
    assert.equal(found.length, 1, `${m.messageId} once`);
    assert.equal(found[0].seq, m.seq, 'with its acknowledged seq');
  }
  assert.deepEqual(list.map((m) => m.seq), list.map((_, i) => i + 1), 'seq gap-free from 1');

  // seq continues; participants and receipts are still there.
  const a2 = track(await authed(A.url, token(ann)));
  const next = await emitAck(a2, 'message:send', { conversationId: conv, content: 'after the restart' });
  assert.equal(next.seq, list.length + 1);
  const details = await api(A.url, 'GET', `/api/conversations/${conv}?minPosition=${next.position ?? 0}`, token(bob));
  assert.deepEqual(details.body.participants.map((p) => p.userId).sort(), [ann, bob].sort());
  const bobs = (await api(A.url, 'GET', '/api/conversations', token(bob))).body.conversations.find((c) => c.id === conv);
  // Everything ann sent counts as unread for bob, except the two he read before the kill.
  await waitUntil(async () => {
    const c = (await api(A.url, 'GET', '/api/conversations', token(bob))).body.conversations.find((x) => x.id === conv);
    return c.unreadCount === list.length + 1 - 2;
  }, 10000, `bob's unreadCount to be ${list.length - 1} (was ${bobs.unreadCount})`);

  // What the embedded store answers once it shows the last message.
  await waitUntil(async () => (await messages(A.url)).messages.some((m) => m.id === next.messageId), 10000, 'the last message projected');
  answers.messages = await messages(A.url);
  answers.bob = (await api(A.url, 'GET', '/api/conversations', token(bob))).body;
  answers.url = A.url;
});

test('chat log copy into JetStream, then a rebuild in Postgres, answers the same reads', { skip: !EMBEDDED && 'the embedded mode only' }, async () => {
  assert.ok(answers.messages, 'the previous test ran');
  const nats = deployment({ embedded: false });
  // Same stream and subjects as the embedded deployment; a database of its own.
  // The copied keys stay wrapped by the embedded deployment's master key.
  const masterKey = readFileSync(join(dep.CHAT_DATA_DIR, 'master-key'), 'utf8').trim();
  const target = { ...nats, CHAT_STREAM: dep.CHAT_STREAM, CHAT_SUBJECT_PREFIX: dep.CHAT_SUBJECT_PREFIX, CHAT_JWT_SECRET: SECRET, CHAT_MASTER_KEY: masterKey };
  const env = (extra) => ({ ...process.env, RUST_LOG: 'warn', ...extra });
  // The copy reads a snapshot of the log: the embedded server keeps running.
  const copied = await run(process.env.CHAT_BIN, ['log', 'copy', '--to', target.CHAT_NATS_URL], { env: env(dep) });
  assert.match(copied.stdout, /copied \d+ commits/);
  for (const name of ['chat', 'unread', 'search']) {
    const rebuilt = await run(process.env.CHAT_BIN, ['projections', 'rebuild', name], { env: env(target) });
    assert.match(rebuilt.stdout, new RegExp(`${name} rebuilt up to position \\d+`));
  }
  const verify = await run(process.env.CHAT_BIN, ['audit', 'verify'], { env: env(target) });
  assert.match(verify.stdout, /log intact/);
  const P = await serve(target);
  const ready = await (await fetch(P.url + '/readyz')).json();
  assert.deepEqual(ready.readStore, { backend: 'postgres', status: 'ok' });
  assert.deepEqual(await messages(P.url), answers.messages);
  assert.deepEqual((await api(P.url, 'GET', '/api/conversations', token(bob))).body, answers.bob);
  // And the same again from the embedded server, which kept serving.
  assert.deepEqual(await messages(answers.url), answers.messages);
});
