// The read side over REST: every route of the contract not covered by rest.test.mjs, the
// REST-only client of the spec's fallback section, audit, the CLI, and the operator endpoints.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { EMBEDDED, deployment, startServer, token, adminToken, api, authed, waitFor, waitUntil, emitAck, unique, NO_LIMITS, expectError } from './helpers.mjs';

const run = promisify(execFile);
let dep, A, conv;
const sockets = [];
const track = (s) => (sockets.push(s), s);
const ann = unique('ann'), bob = unique('bob'), cy = unique('cy');
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

before(async () => {
  dep = deployment();
  A = await startServer(dep, NO_LIMITS);
  for (const [id, name] of [[ann, 'Ann'], [bob, 'Bob'], [cy, 'Cy']]) {
    await api(A.url, 'PUT', `/api/users/${id}`, adminToken(), { name });
  }
  conv = (await api(A.url, 'POST', '/api/conversations', token(ann), { title: 'Read side', participantIds: [bob] })).body.id;
});
after(async () => {
  for (const s of sockets) s.disconnect();
  await A?.stop();
});

describe('a client that only speaks REST', () => {
  test('sends, edits, deletes, reacts and marks read; socket clients see each change', async () => {
    const s = track(await authed(A.url, token(bob)));
    await emitAck(s, 'conversation:join', { conversationId: conv });
    const sent = await api(A.url, 'POST', '/api/messages', token(ann), { conversationId: conv, content: 'draft' });
    assert.equal(sent.status, 201);
    const id = sent.body.id;
    await waitFor(s, 'message:new', (m) => m.id === id);

    const edited = await api(A.url, 'PATCH', `/api/messages/${id}?minPosition=${sent.body.position}`, token(ann), { content: 'final' });
    assert.equal(edited.status, 200, JSON.stringify(edited.body));
    assert.match(edited.body.editedAt, ISO);
    assert.equal((await waitFor(s, 'message:updated', (m) => m.id === id)).content, 'final');
    expectError(await api(A.url, 'PATCH', `/api/messages/${id}`, token(bob), { content: 'x', conversationId: conv }), 403, 'UNAUTHORIZED');
    expectError(await api(A.url, 'PATCH', `/api/messages/${id}`, token(ann), { content: '', conversationId: conv }), 400, 'INVALID_INPUT');
    expectError(await api(A.url, 'PATCH', '/api/messages/msg_nope', token(ann), { content: 'x' }), 404, 'NOT_FOUND');

    const reaction = await api(A.url, 'POST', `/api/messages/${id}/reactions`, token(bob), { emoji: '🎉', conversationId: conv });
    assert.equal(reaction.status, 201);
    assert.match(reaction.body.id, /^rxn_/);
    assert.equal((await waitFor(s, 'reaction:added', (r) => r.id === reaction.body.id)).emoji, '🎉');
    const again = await api(A.url, 'POST', `/api/messages/${id}/reactions`, token(bob), { emoji: '🎉', conversationId: conv });
    assert.equal(again.body.id, reaction.body.id);
    expectError(await api(A.url, 'POST', `/api/messages/${id}/reactions`, token(bob), { emoji: 'nope', conversationId: conv }), 400, 'INVALID_INPUT');
    expectError(await api(A.url, 'DELETE', `/api/messages/${id}/reactions/${reaction.body.id}?conversationId=${conv}`, token(ann)), 403, 'UNAUTHORIZED');
    const unreact = await api(A.url, 'DELETE', `/api/messages/${id}/reactions/${reaction.body.id}?conversationId=${conv}`, token(bob));
    assert.equal(unreact.status, 200);
    await waitFor(s, 'reaction:removed', (r) => r.id === reaction.body.id);

    const read = await api(A.url, 'POST', '/api/messages/read', token(bob), { conversationId: conv, messageIds: [id] });
    assert.equal(read.status, 200);
    expectError(await api(A.url, 'POST', '/api/messages/read', token(bob), { conversationId: conv, messageIds: [] }), 400, 'INVALID_INPUT');
    expectError(await api(A.url, 'POST', '/api/messages/read', token(cy), { conversationId: conv, messageIds: [id] }), 403, 'NOT_PARTICIPANT');

    const del = await api(A.url, 'DELETE', `/api/messages/${id}?conversationId=${conv}`, token(ann));
    assert.equal(del.status, 200);
    assert.equal((await waitFor(s, 'message:deleted', (m) => m.id === id)).id, id);
    expectError(await api(A.url, 'DELETE', `/api/messages/${id}?conversationId=${conv}`, token(ann)), 404, 'NOT_FOUND');
    const page = await api(A.url, 'GET', `/api/messages?conversationId=${conv}&minPosition=${del.body.position}`, token(bob));
    const m = page.body.messages.find((x) => x.id === id);
    assert.equal(m.content, null);
    assert.match(m.deletedAt, ISO);
    assert.match(m.editedAt, ISO);
  });

  test('a message sent over Socket.IO is read over REST', async () => {
    const s = track(await authed(A.url, token(ann)));
    const ack = await emitAck(s, 'message:send', { conversationId: conv, content: 'from the socket' });
    // The ack carries no position: wait for the projection by reading until it is there.
    let found;
    await waitUntil(async () => {
      const r = await api(A.url, 'GET', `/api/messages?conversationId=${conv}&after=${ack.seq - 1}&limit=1`, token(bob));
      found = r.body.messages?.[0];
      return found !== undefined;
    }, 10000, 'the projection of the socket message');
    assert.equal(found.id, ack.messageId);
    assert.equal(found.content, 'from the socket');
  });

  test('conversations: list with lastMessageAt, unreadCount and the last message; details', async () => {
    const c = (await api(A.url, 'POST', '/api/conversations', token(ann), { title: 'Counts', participantIds: [bob, cy] })).body.id;
    const ids = [];
    let position = 0;
    for (let i = 0; i < 3; i++) {
      const r = await api(A.url, 'POST', '/api/messages', token(ann), { conversationId: c, content: `n${i}` });
      ids.push(r.body.id);
      position = r.body.position;
    }
    const mine = await api(A.url, 'POST', '/api/messages', token(bob), { conversationId: c, content: 'bob says' });
    position = (await api(A.url, 'POST', '/api/messages/read', token(bob), { conversationId: c, messageIds: [ids[0]] })).body.position || mine.body.position;
    const list = await api(A.url, 'GET', `/api/conversations?minPosition=${position}`, token(bob));
    assert.equal(list.status, 200);
    const entry = list.body.conversations.find((x) => x.id === c);
    assert.equal(entry.title, 'Counts');
    assert.equal(entry.unreadCount, 2, 'three from Ann, one read, own message not counted');
    assert.equal(entry.lastMessage.id, mine.body.id);
    assert.equal(entry.lastMessage.content, 'bob says');
    assert.match(entry.lastMessageAt, ISO);
    assert.equal(list.body.conversations[0].id, c, 'most recent first');
    const cyList = await api(A.url, 'GET', `/api/conversations?minPosition=${position}`, token(cy));
    assert.equal(cyList.body.conversations.find((x) => x.id === c).unreadCount, 4);
    const details = await api(A.url, 'GET', `/api/conversations/${c}?minPosition=${position}`, token(cy));
    assert.equal(details.status, 200);
    assert.deepEqual(details.body.participants.map((p) => [p.userId, p.role]).sort(), [[ann, 'admin'], [bob, 'member'], [cy, 'member']].sort());
    assert.equal(details.body.participants.find((p) => p.userId === ann).user.name, 'Ann');
    expectError(await api(A.url, 'GET', `/api/conversations/${conv}`, token(cy)), 403, 'NOT_PARTICIPANT');
    expectError(await api(A.url, 'GET', '/api/conversations/conv_nope', token(cy)), 404, 'NOT_FOUND');
    expectError(await api(A.url, 'GET', '/api/conversations?minPosition=99999999', token(cy)), 503, 'UNAVAILABLE');
  });

  test('users: profile with status and lastSeenAt; unknown is 404', async () => {
    const r = await api(A.url, 'GET', `/api/users/${bob}?minPosition=1`, token(ann));
    assert.deepEqual(Object.keys(r.body).sort(), ['avatarUrl', 'id', 'lastSeenAt', 'name', 'status']);
    assert.equal(r.body.status, 'active');
    expectError(await api(A.url, 'GET', `/api/users/${unique('ghost')}`, token(ann)), 404, 'NOT_FOUND');
    expectError(await api(A.url, 'GET', '/api/users/bad.id', token(ann)), 400, 'INVALID_INPUT');
  });
});

describe('audit', () => {
  test('GET /api/audit shows who did what, deleted and edited content included; admin only', async () => {
    const c = (await api(A.url, 'POST', '/api/conversations', token(ann), { participantIds: [bob] })).body.id;
    const sent = await api(A.url, 'POST', '/api/messages', token(bob), { conversationId: c, content: 'regrettable' });
    await api(A.url, 'PATCH', `/api/messages/${sent.body.id}`, token(bob), { content: 'better', conversationId: c });
    await api(A.url, 'DELETE', `/api/messages/${sent.body.id}?conversationId=${c}`, token(ann));
    const r = await api(A.url, 'GET', `/api/audit?conversationId=${c}`, adminToken());
    assert.equal(r.status, 200);
    const types = r.body.entries.map((e) => e.type);
    assert.deepEqual(types, ['ConversationCreated', 'ParticipantAdded', 'ParticipantAdded', 'MessageSent', 'MessageEdited', 'MessageDeleted']);
    const sentEntry = r.body.entries[3];
    assert.equal(sentEntry.actor, bob);
    assert.equal(sentEntry.data.content, 'regrettable');
    assert.equal(sentEntry.schemaVersion, 2, 'sealed content is v2');
    assert.match(sentEntry.occurredAt, ISO);
    assert.equal(typeof sentEntry.position, 'number');
    assert.equal(typeof sentEntry.correlationId, 'string');
    assert.equal(r.body.entries[4].data.content, 'better');
    assert.equal(r.body.entries[5].actor, ann);
    assert.equal(r.body.hasMore, false);
    const paged = await api(A.url, 'GET', `/api/audit?conversationId=${c}&limit=1`, adminToken());
    assert.equal(paged.body.hasMore, true);
    const next = await api(A.url, 'GET', `/api/audit?conversationId=${c}&limit=1&after=${paged.body.nextAfter}`, adminToken());
    assert.equal(next.body.entries[0].type, 'MessageSent');
    expectError(await api(A.url, 'GET', '/api/audit', token(ann)), 403, 'UNAUTHORIZED');
    expectError(await api(A.url, 'GET', '/api/audit?limit=0', adminToken()), 400, 'INVALID_INPUT');
    expectError(await api(A.url, 'GET', '/api/audit?after=x', adminToken()), 400, 'INVALID_INPUT');

    // The CLI prints the same log as JSON lines.
    const env = { ...process.env, ...dep };
    const { stdout } = await run(process.env.CHAT_BIN, ['events', '--conversation', c], { env });
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines, r.body.entries);
    const verify = await run(process.env.CHAT_BIN, ['audit', 'verify'], { env });
    assert.match(verify.stdout, /log intact/);
    const status = await run(process.env.CHAT_BIN, ['projections', 'status'], { env });
    assert.match(status.stdout, /chat\s+checkpoint/);
    assert.match(status.stdout, /unread\s+checkpoint/);
  });
});

describe('operations', () => {
  test('/readyz, /metrics and the OpenAPI document', async () => {
    const ready = await fetch(A.url + '/readyz');
    assert.equal(ready.status, 200);
    const body = await ready.json();
    assert.equal(body.status, 'ready');
    assert.deepEqual(body.log, { backend: EMBEDDED ? 'embedded' : 'jetstream', status: 'ok' });
    assert.deepEqual(body.readStore, { backend: EMBEDDED ? 'sqlite' : 'postgres', status: 'ok' });
    assert.equal(typeof body.projections.chat.lag, 'number');
    const metrics = await (await fetch(A.url + '/metrics')).text();
    for (const name of ['chat_sockets', 'chat_events_appended_total', 'chat_commands_total{outcome="ok"}', 'chat_send_ack_seconds_bucket', 'chat_projection_lag{projection="chat"}']) {
      assert.ok(metrics.includes(name), `${name} missing`);
    }
    const doc = await (await fetch(A.url + '/api/openapi.json')).json();
    assert.equal(doc.openapi, '3.1.0');
    assert.ok(doc.paths['/api/messages'].post);
    assert.ok(doc.paths['/api/users/{id}/erase'].post);
  });
});
