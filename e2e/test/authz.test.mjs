// The authorization matrix (issue 7): for every socket event and REST route, a user acting on
// a conversation, message or reaction they may not touch is refused with the contract's code,
// and nothing is appended to the log: two marker writes around all the refusals sit at
// consecutive log positions.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { deployment, startServer, token, adminToken, api, authed, emitAck, waitFor, unique, NO_LIMITS } from './helpers.mjs';

let A, conv, other, m1, m2, r1;
const sockets = [];
const track = (s) => (sockets.push(s), s);
const ann = unique('ann'), bob = unique('bob'), dan = unique('dan');

before(async () => {
  A = await startServer(deployment(), NO_LIMITS);
  for (const id of [ann, bob, dan]) {
    assert.equal((await api(A.url, 'PUT', `/api/users/${id}`, adminToken(), { name: id })).status, 200);
  }
  // ann (admin) and bob in `conv`; dan alone in `other`.
  conv = (await api(A.url, 'POST', '/api/conversations', token(ann), { participantIds: [bob] })).body.id;
  other = (await api(A.url, 'POST', '/api/conversations', token(dan), { participantIds: [] })).body.id;
  const sent = (await api(A.url, 'POST', '/api/messages', token(ann), { conversationId: conv, content: 'ann writes' })).body;
  m1 = sent.id;
  m2 = (await api(A.url, 'POST', '/api/messages', token(dan), { conversationId: other, content: 'dan writes' })).body.id;
  // A route keyed by a message finds its conversation in the read models: wait for the send.
  const r = await api(A.url, 'POST', `/api/messages/${m1}/reactions?minPosition=${sent.position}`, token(ann), { emoji: '👍' });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  r1 = r.body.reactionId ?? r.body.id;
  assert.ok(r1, JSON.stringify(r.body));
});

after(async () => {
  for (const s of sockets) s.disconnect();
  await A?.stop();
});

/** A marker write by ann: its log position. */
async function marker() {
  const r = await api(A.url, 'POST', '/api/messages', token(ann), { conversationId: conv, content: 'marker' });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.equal(typeof r.body.position, 'number', JSON.stringify(r.body));
  return r.body.position;
}

test('every socket event and REST route refuses who may not act, and appends nothing', async () => {
  const before = await marker();

  // Over Socket.IO (connected and authenticated; nobody joins a room, which would record
  // presence).
  const sd = track(await authed(A.url, token(dan)));
  const sb = track(await authed(A.url, token(bob)));
  const socketCases = [
    // dan is not a participant of `conv`
    [sd, 'conversation:join', { conversationId: conv }, 'NOT_PARTICIPANT'],
    [sd, 'message:send', { conversationId: conv, content: 'x' }, 'NOT_PARTICIPANT'],
    [sd, 'message:update', { conversationId: conv, messageId: m1, content: 'x' }, 'NOT_PARTICIPANT'],
    [sd, 'message:delete', { conversationId: conv, messageId: m1 }, 'NOT_PARTICIPANT'],
    [sd, 'message:read', { conversationId: conv, messageIds: [m1] }, 'NOT_PARTICIPANT'],
    [sd, 'reaction:add', { conversationId: conv, messageId: m1, emoji: '👀' }, 'NOT_PARTICIPANT'],
    [sd, 'reaction:remove', { conversationId: conv, messageId: m1, reactionId: r1 }, 'NOT_PARTICIPANT'],
    [sd, 'presence:request', { conversationId: conv }, 'NOT_PARTICIPANT'],
    [sd, 'typing:start', { conversationId: conv }, 'NOT_PARTICIPANT'],
    // dan names his own conversation with a message of `conv`: not there
    [sd, 'message:update', { conversationId: other, messageId: m1, content: 'x' }, 'NOT_FOUND'],
    [sd, 'message:delete', { conversationId: other, messageId: m1 }, 'NOT_FOUND'],
    [sd, 'reaction:add', { conversationId: other, messageId: m1, emoji: '👀' }, 'NOT_FOUND'],
    [sd, 'reaction:remove', { conversationId: other, messageId: m1, reactionId: r1 }, 'NOT_FOUND'],
    // bob is a participant, but neither the author nor an admin nor the reaction's owner
    [sb, 'message:update', { conversationId: conv, messageId: m1, content: 'x' }, 'UNAUTHORIZED'],
    [sb, 'message:delete', { conversationId: conv, messageId: m1 }, 'UNAUTHORIZED'],
    [sb, 'reaction:remove', { conversationId: conv, messageId: m1, reactionId: r1 }, 'UNAUTHORIZED'],
    // bob names a message of dan's conversation in his own
    [sb, 'reaction:add', { conversationId: conv, messageId: m2, emoji: '👀' }, 'NOT_FOUND'],
    [sb, 'message:read', { conversationId: other, messageIds: [m2] }, 'NOT_PARTICIPANT'],
  ];
  for (const [s, event, payload, code] of socketCases) {
    const r = await emitAck(s, event, payload);
    assert.equal(r.success, false, `${event} ${JSON.stringify(payload)}`);
    assert.equal(r.error?.code, code, `${event} ${JSON.stringify(payload)}: ${JSON.stringify(r)}`);
  }
  const joinError = await waitFor(sd, 'conversation:join:error');
  assert.equal(joinError.code, 'NOT_PARTICIPANT');
  for (const s of [sd, sb]) {
    assert.equal(s.connected, true, 'a refusal keeps the socket');
    assert.ok(!s.received.some((e) => e.event === 'message:new' || e.event === 'conversation:joined'));
  }

  // Over REST.
  const restCases = [
    [dan, 'GET', `/api/conversations/${conv}`, undefined, 403, 'NOT_PARTICIPANT'],
    [dan, 'POST', `/api/conversations/${conv}/participants`, { userId: dan }, 403, 'NOT_PARTICIPANT'],
    [dan, 'DELETE', `/api/conversations/${conv}/participants/${bob}`, undefined, 403, 'NOT_PARTICIPANT'],
    [dan, 'POST', '/api/messages', { conversationId: conv, content: 'x' }, 403, 'NOT_PARTICIPANT'],
    [dan, 'GET', `/api/messages?conversationId=${conv}`, undefined, 403, 'NOT_PARTICIPANT'],
    [dan, 'PATCH', `/api/messages/${m1}`, { content: 'x' }, 403, 'NOT_PARTICIPANT'],
    [dan, 'DELETE', `/api/messages/${m1}`, undefined, 403, 'NOT_PARTICIPANT'],
    [dan, 'POST', '/api/messages/read', { conversationId: conv, messageIds: [m1] }, 403, 'NOT_PARTICIPANT'],
    [dan, 'POST', `/api/messages/${m1}/reactions`, { emoji: '👀' }, 403, 'NOT_PARTICIPANT'],
    [dan, 'DELETE', `/api/messages/${m1}/reactions/${r1}`, undefined, 403, 'NOT_PARTICIPANT'],
    [bob, 'PATCH', `/api/messages/${m1}`, { content: 'x' }, 403, 'UNAUTHORIZED'],
    [bob, 'DELETE', `/api/messages/${m1}`, undefined, 403, 'UNAUTHORIZED'],
    [bob, 'DELETE', `/api/messages/${m1}/reactions/${r1}`, undefined, 403, 'UNAUTHORIZED'],
    [bob, 'POST', `/api/conversations/${conv}/participants`, { userId: dan }, 403, 'UNAUTHORIZED'],
    [bob, 'DELETE', `/api/conversations/${conv}/participants/${ann}`, undefined, 403, 'UNAUTHORIZED'],
    [bob, 'PUT', `/api/users/${unique('eve')}`, { name: 'Eve' }, 403, 'UNAUTHORIZED'],
    [bob, 'POST', `/api/users/${dan}/suspend`, undefined, 403, 'UNAUTHORIZED'],
    [bob, 'POST', `/api/users/${dan}/reinstate`, undefined, 403, 'UNAUTHORIZED'],
    [bob, 'GET', `/api/audit?conversationId=${conv}`, undefined, 403, 'UNAUTHORIZED'],
  ];
  for (const [who, method, path, body, status, code] of restCases) {
    const r = await api(A.url, method, path, token(who), body);
    assert.equal(r.status, status, `${method} ${path} as ${who === dan ? 'dan' : 'bob'}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error?.code, code, `${method} ${path}: ${JSON.stringify(r.body)}`);
  }

  assert.equal(await marker(), before + 1, 'no commit between the two markers');
  const list = (await api(A.url, 'GET', `/api/messages?conversationId=${conv}&limit=200`, token(ann))).body.messages;
  const first = list.find((m) => m.id === m1);
  assert.equal(first.content, 'ann writes');
});
