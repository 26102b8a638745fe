// Personal data is sealed in the log (contract 4.2): message content, edits and user profiles
// are written only as ciphertext, so their text is in none of the log's files (the JetStream
// store directory of this deployment's streams, or the embedded data dir's log, snapshots
// and keys), while every read path still shows it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { EMBEDDED, deployment, startServer, token, adminToken, api, authed, emitAck, waitUntil, unique, NO_LIMITS, history } from './helpers.mjs';

const run = promisify(execFile);
let dep, A;
const ann = unique('ann'), bob = unique('bob');

before(async () => {
  dep = deployment();
  A = await startServer(dep, NO_LIMITS);
});
after(async () => {
  await A?.stop();
});

/** Every file holding this deployment's log: its streams' directories, or its data dir's log files. */
function logFiles() {
  const files = [];
  const walk = (p) => {
    if (!existsSync(p)) return;
    if (statSync(p).isDirectory()) for (const e of readdirSync(p)) walk(join(p, e));
    else files.push(p);
  };
  if (EMBEDDED) {
    walk(join(dep.CHAT_DATA_DIR, 'events.log'));
    walk(join(dep.CHAT_DATA_DIR, 'snapshots'));
    walk(join(dep.CHAT_DATA_DIR, 'keys'));
  } else {
    const store = process.env.CHAT_TEST_NATS_STORE;
    assert.ok(store, 'run through scripts/test.sh (CHAT_TEST_NATS_STORE)');
    const streams = join(store, 'jetstream', '$G', 'streams');
    for (const name of readdirSync(streams)) if (name.includes(dep.CHAT_STREAM)) walk(join(streams, name));
  }
  assert.ok(files.length > 0, 'the log has files');
  return files;
}

const inLog = (marker) => logFiles().some((f) => readFileSync(f).includes(Buffer.from(marker)));

test('content, edits and names are in no file of the log, and every read path shows them', async () => {
  const mark = unique('marker');
  const [sentText, editText, annName, bobAvatar, title] = ['sent', 'edited', 'name', 'avatar', 'title'].map((w) => `${mark}-${w}`);
  assert.equal((await api(A.url, 'PUT', `/api/users/${ann}`, adminToken(), { name: annName })).status, 200);
  assert.equal((await api(A.url, 'PUT', `/api/users/${bob}`, adminToken(), { name: 'Bob', avatarUrl: `https://x/${bobAvatar}.png` })).status, 200);
  const conv = (await api(A.url, 'POST', '/api/conversations', token(ann), { title, participantIds: [bob] })).body.id;
  const s = await authed(A.url, token(bob));
  try {
    await emitAck(s, 'conversation:join', { conversationId: conv });
    const sent = await api(A.url, 'POST', '/api/messages', token(ann), { conversationId: conv, content: sentText });
    assert.equal(sent.status, 201);
    assert.equal(sent.body.content, sentText);
    assert.equal(sent.body.sender.name, annName);
    const edited = await api(A.url, 'PATCH', `/api/messages/${sent.body.id}`, token(ann), { conversationId: conv, content: editText });
    assert.equal(edited.status, 200, JSON.stringify(edited.body));

    // Catch-up from the log opens both.
    const late = await authed(A.url, token(bob));
    const replayed = [];
    late.on('message:new', (m) => replayed.push(['new', m.content, m.sender.name]));
    late.on('message:updated', (m) => replayed.push(['updated', m.content]));
    await emitAck(late, 'conversation:join', { conversationId: conv, sinceOffset: 0 });
    await waitUntil(() => replayed.length === 2, 10000, 'the replay');
    assert.deepEqual(replayed, [['new', sentText, annName], ['updated', editText]]);
    late.disconnect();

    // The read models, the audit route and `chat events` show the text.
    await waitUntil(async () => (await history(A.url, conv, ann)).some((m) => m.content === editText), 10000, 'the projection');
    const user = await api(A.url, 'GET', `/api/users/${ann}`, token(bob));
    assert.equal(user.body.name, annName);
    const audit = await api(A.url, 'GET', `/api/audit?conversationId=${conv}`, adminToken());
    const contents = audit.body.entries.filter((e) => ['MessageSent', 'MessageEdited'].includes(e.type)).map((e) => [e.type, e.schemaVersion, e.data.content]);
    assert.deepEqual(contents, [['MessageSent', 2, sentText], ['MessageEdited', 2, editText]]);
    const { stdout } = await run(process.env.CHAT_BIN, ['events', '--conversation', conv], { env: { ...process.env, ...dep } });
    assert.ok(stdout.includes(sentText) && stdout.includes(editText), stdout);
  } finally {
    s.disconnect();
  }

  // A title is not personal data and stays in the clear: once one written last is in the
  // files, so is everything written before it, and none of the sealed text is.
  const later = `${mark}-later`;
  assert.equal((await api(A.url, 'POST', '/api/conversations', token(ann), { title: later, participantIds: [] })).status, 201);
  await waitUntil(() => inLog(title) && inLog(later), 20000, 'the log flushed to its files');
  for (const marker of [sentText, editText, annName, bobAvatar]) {
    assert.equal(inLog(marker), false, `${marker} is in the log's files`);
  }
});

test('exports of a conversation and of a user: decrypted JSON lines, oldest first, with positions and hashes', async () => {
  const [cara, dov] = [unique('cara'), unique('dov')];
  await api(A.url, 'PUT', `/api/users/${cara}`, adminToken(), { name: 'Cara' });
  await api(A.url, 'PUT', `/api/users/${dov}`, adminToken(), { name: 'Dov' });
  const c = (await api(A.url, 'POST', '/api/conversations', token(cara), { title: 'Export', participantIds: [dov] })).body.id;
  const m1 = (await api(A.url, 'POST', '/api/messages', token(cara), { conversationId: c, content: 'first words' })).body;
  await api(A.url, 'PATCH', `/api/messages/${m1.id}`, token(cara), { conversationId: c, content: 'better words' });
  await api(A.url, 'POST', '/api/messages', token(dov), { conversationId: c, content: 'a reply' });

  const get = async (path, tok = adminToken()) => {
    const res = await fetch(A.url + path, { headers: { authorization: 'Bearer ' + tok } });
    return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
  };
  const conv = await get(`/api/conversations/${c}/export`);
  assert.equal(conv.status, 200);
  assert.equal(conv.type, 'application/x-ndjson');
  const lines = conv.text.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.type), ['ConversationCreated', 'ParticipantAdded', 'ParticipantAdded', 'MessageSent', 'MessageEdited', 'MessageSent']);
  assert.deepEqual(lines.filter((l) => l.type.startsWith('Message')).map((l) => l.data.content), ['first words', 'better words', 'a reply']);
  for (const [i, l] of lines.entries()) {
    assert.match(l.hash, /^[0-9a-f]{64}$/);
    assert.equal(typeof l.position, 'number');
    assert.match(l.occurredAt, /Z$/);
    if (i > 0) assert.ok(l.position >= lines[i - 1].position, 'oldest first');
  }
  const env = { ...process.env, ...dep };
  const cli = await run(process.env.CHAT_BIN, ['export', '--conversation', c], { env });
  assert.deepEqual(cli.stdout.trim().split('\n').map((l) => JSON.parse(l)), lines);

  const user = await get(`/api/users/${dov}/export`);
  assert.equal(user.status, 200);
  const mine = user.text.trim().split('\n').map((l) => JSON.parse(l));
  const kinds = mine.map((l) => [l.aggregateId === dov ? 'self' : l.aggregateId === c ? 'conv' : 'other', l.type]);
  assert.ok(kinds.some(([w, t]) => w === 'self' && t === 'UserRegistered'), JSON.stringify(kinds));
  assert.ok(mine.every((l) => l.aggregateId === dov || l.actor === dov || JSON.stringify(l.data).includes(dov)), 'every line names the user');
  assert.ok(!mine.some((l) => l.aggregateId === cara), 'another user\'s own events are not exported');
  const inConv = mine.filter((l) => l.aggregateId === c).map((l) => [l.type, l.data.content ?? l.data.userId]);
  assert.deepEqual(inConv, [['ParticipantAdded', dov], ['MessageSent', 'a reply']]);
  const userCli = await run(process.env.CHAT_BIN, ['export', '--user', dov], { env });
  assert.deepEqual(userCli.stdout.trim().split('\n').map((l) => JSON.parse(l)), mine);

  assert.equal((await get(`/api/conversations/${c}/export`, token(cara))).status, 403);
  assert.equal((await get('/api/users/no%20such/export')).status, 400);
  assert.equal((await get(`/api/users/${unique('nobody')}/export`)).text, '');
});
