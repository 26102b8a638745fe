// The first vertical slice, end to end: two `chat serve` nodes sharing one NATS stream and one
// Postgres database, driven by the stock socket.io-client.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  deployment, startServer, startNodes, EMBEDDED, token, adminToken, jwt, api, connect, authed, waitFor, waitUntil,
  emitAck, unique, NO_LIMITS,
} from './helpers.mjs';

let A, B, conv, other;
const sockets = [];
const track = (s) => (sockets.push(s), s);
const alice = unique('alice'), bob = unique('bob'), carol = unique('carol');

before(async () => {
  const dep = deployment();
  [A, B] = await startNodes(dep, NO_LIMITS);
  for (const [id, name] of [[alice, 'Alice'], [bob, 'Bob'], [carol, 'Carol']]) {
    const r = await api(A.url, 'PUT', `/api/users/${id}`, adminToken(), { name, avatarUrl: id === alice ? 'https://x/a.png' : undefined });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  const r = await api(A.url, 'POST', '/api/conversations', token(alice), { title: 'Slice', participantIds: [bob] });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  conv = r.body.id;
  assert.match(conv, /^conv_/);
  assert.deepEqual(r.body.participants.map((p) => [p.userId, p.role]).sort(), [[alice, 'admin'], [bob, 'member']].sort());
  other = (await api(A.url, 'POST', '/api/conversations', token(carol), { participantIds: [] })).body.id;
});

after(async () => {
  for (const s of sockets) s.disconnect();
  await A?.stop();
  await B?.stop();
});

describe('authentication', () => {
  const refused = async (auth, code) => {
    const s = track(connect(A.url, auth));
    const err = await waitFor(s, 'auth:error');
    assert.equal(err.code, code);
    assert.equal(typeof err.message, 'string');
    await waitUntil(() => s.disconnectReason !== undefined, 10000, 'disconnect');
    assert.equal(s.disconnectReason, 'io server disconnect');
    assert.deepEqual(s.received.map((e) => e.event), ['auth:error']);
  };

  test('a valid token gets auth:success first', async () => {
    const s = track(connect(A.url, token(alice)));
    const ok = await waitFor(s, 'auth:success');
    assert.deepEqual(ok, { userId: alice, socketId: s.id, message: 'Authentication successful' });
    assert.equal(s.received[0].event, 'auth:success');
  });
  test('no token: MISSING_TOKEN', () => refused(undefined, 'MISSING_TOKEN'));
  test('garbage token: INVALID_TOKEN', () => refused('not-a-jwt', 'INVALID_TOKEN'));
  test('wrong key: INVALID_TOKEN', () => refused(jwt({ userId: alice }, { secret: 'other' }), 'INVALID_TOKEN'));
  test('alg none: INVALID_TOKEN', () => refused(jwt({ userId: alice }, { alg: 'none' }), 'INVALID_TOKEN'));
  test('altered claims under the original signature: INVALID_TOKEN', () => {
    const [head, , sig] = token(bob).split('.');
    const claims = Buffer.from(JSON.stringify({ userId: alice, exp: Math.floor(Date.now() / 1000) + 3600 })).toString('base64url');
    return refused(`${head}.${claims}.${sig}`, 'INVALID_TOKEN');
  });
  test('not valid yet (nbf in the future): INVALID_TOKEN', () =>
    refused(token(alice, { nbf: Math.floor(Date.now() / 1000) + 600 }), 'INVALID_TOKEN'));
  test('expired: EXPIRED_TOKEN', () => refused(token(alice, { exp: Math.floor(Date.now() / 1000) - 5 }), 'EXPIRED_TOKEN'));
  test('unknown user: UNAUTHORIZED', () => refused(token(unique('ghost')), 'UNAUTHORIZED'));
  test('a token that expires while connected ends the connection with EXPIRED_TOKEN', async () => {
    const s = track(await authed(A.url, token(alice, { exp: Math.floor(Date.now() / 1000) + 2 })));
    const err = await waitFor(s, 'auth:error', () => true, 10000);
    assert.equal(err.code, 'EXPIRED_TOKEN');
    await waitUntil(() => s.disconnectReason !== undefined, 10000, 'disconnect');
    assert.equal(s.disconnectReason, 'io server disconnect');
  });
  test('token in the Authorization header is accepted', async () => {
    const s = track(connect(A.url, undefined, { extraHeaders: { authorization: 'Bearer ' + token(bob) } }));
    assert.equal((await waitFor(s, 'auth:success')).userId, bob);
  });
  test('events before a refused auth are never processed', async () => {
    const s = track(connect(A.url, token(unique('ghost'))));
    s.emit('message:send', { conversationId: conv, content: 'sneaky' });
    await waitFor(s, 'auth:error');
    const r = await api(A.url, 'GET', `/api/messages?conversationId=${conv}&limit=200`, token(alice));
    assert.ok(!r.body.messages.some((m) => m.content === 'sneaky'));
  });
});

describe('rooms', () => {
  test('join, user:online, leave, user:offline', async () => {
    const a = track(await authed(A.url, token(alice)));
    const joined = await emitAck(a, 'conversation:join', { conversationId: conv });
    assert.equal(joined.success, true);
    assert.deepEqual(await waitFor(a, 'conversation:joined'), { conversationId: conv, participantCount: 1 });
    const b = track(await authed(A.url, token(bob)));
    b.emit('conversation:join', { conversationId: conv });
    assert.deepEqual(await waitFor(b, 'conversation:joined'), { conversationId: conv, participantCount: 2 });
    const online = await waitFor(a, 'user:online', (p) => p.userId === bob);
    assert.equal(online.conversationId, conv);
    assert.deepEqual(online.user, { id: bob, name: 'Bob' });
    assert.ok(!Number.isNaN(Date.parse(online.timestamp)));
    b.emit('conversation:leave', { conversationId: conv });
    assert.deepEqual(await waitFor(b, 'conversation:left'), { conversationId: conv });
    const off = await waitFor(a, 'user:offline', (p) => p.userId === bob);
    assert.equal(off.conversationId, conv);
    assert.ok(!Number.isNaN(Date.parse(off.lastSeenAt)));
  });

  test('a non-participant gets conversation:join:error NOT_PARTICIPANT', async () => {
    const c = track(await authed(A.url, token(carol)));
    c.emit('conversation:join', { conversationId: conv });
    assert.deepEqual(await waitFor(c, 'conversation:join:error'), {
      conversationId: conv, message: 'Not authorized to join conversation', code: 'NOT_PARTICIPANT',
    });
    const ack = await emitAck(c, 'conversation:join', { conversationId: conv });
    assert.equal(ack.success, false);
    assert.equal(ack.error.code, 'NOT_PARTICIPANT');
  });

  test('an unknown conversation gets NOT_FOUND', async () => {
    const c = track(await authed(A.url, token(carol)));
    c.emit('conversation:join', { conversationId: 'conv_nope' });
    const e = await waitFor(c, 'conversation:join:error');
    assert.equal(e.code, 'NOT_FOUND');
    assert.equal(e.conversationId, 'conv_nope');
  });
});

describe('messages', () => {
  test('send on one node, receive on both; GET /api/messages returns it', async () => {
    const a = track(await authed(A.url, token(alice)));
    const b = track(await authed(B.url, token(bob)));
    await emitAck(a, 'conversation:join', { conversationId: conv });
    await emitAck(b, 'conversation:join', { conversationId: conv });
    const ack = await emitAck(a, 'message:send', { conversationId: conv, content: 'Hello everyone!', tempId: 'tmp-1' });
    assert.equal(ack.success, true);
    assert.match(ack.messageId, /^msg_/);
    assert.equal(typeof ack.seq, 'number');
    const got = await waitFor(b, 'message:new', (m) => m.id === ack.messageId);
    assert.deepEqual(Object.keys(got).sort(), ['content', 'conversationId', 'createdAt', 'id', 'offset', 'sender', 'senderId', 'seq', 'tempId'].sort());
    assert.equal(got.content, 'Hello everyone!');
    assert.equal(got.conversationId, conv);
    assert.equal(got.senderId, alice);
    assert.equal(got.seq, ack.seq);
    assert.equal(got.tempId, 'tmp-1');
    assert.deepEqual(got.sender, { id: alice, name: 'Alice', avatarUrl: 'https://x/a.png' });
    assert.match(got.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(typeof got.offset, 'number');
    const mine = await waitFor(a, 'message:new', (m) => m.id === ack.messageId);
    assert.deepEqual(mine, got);

    // The reverse direction, node B to node A.
    const back = await emitAck(b, 'message:send', { conversationId: conv, content: 'Hi Alice' });
    const atA = await waitFor(a, 'message:new', (m) => m.id === back.messageId);
    assert.equal(atA.seq, ack.seq + 1);
    assert.ok(atA.offset > got.offset);

    const r = await api(B.url, 'GET', `/api/messages?conversationId=${conv}&limit=200&minPosition=999999999`, token(bob));
    assert.equal(r.status, 503);
    assert.equal(r.body.error.code, 'UNAVAILABLE');
    await waitUntil(async () => {
      const r = await api(B.url, 'GET', `/api/messages?conversationId=${conv}&limit=200`, token(bob));
      return r.body.messages?.some((m) => m.id === back.messageId);
    }, 10000, 'projection');
    const list = (await api(B.url, 'GET', `/api/messages?conversationId=${conv}&limit=200`, token(bob))).body;
    const m = list.messages.find((x) => x.id === ack.messageId);
    assert.equal(m.content, 'Hello everyone!');
    assert.equal(m.seq, ack.seq);
    assert.equal(m.senderId, alice);
    assert.equal(m.createdAt, got.createdAt);
    assert.equal(m.editedAt, null);
    assert.equal(m.deletedAt, null);
    assert.deepEqual(m.reactions, []);
  });

  test('50 sends without waiting for acks arrive in order with consecutive seq', async () => {
    const a = track(await authed(A.url, token(alice)));
    const b = track(await authed(B.url, token(bob)));
    await emitAck(a, 'conversation:join', { conversationId: conv });
    await emitAck(b, 'conversation:join', { conversationId: conv });
    const tag = unique('burst');
    for (let i = 0; i < 50; i++) a.emit('message:send', { conversationId: conv, content: `${tag} ${i}` });
    await waitUntil(() => b.received.filter((e) => e.event === 'message:new' && e.payload.content.startsWith(tag)).length === 50, 20000, '50 messages');
    const got = b.received.filter((e) => e.event === 'message:new' && e.payload.content.startsWith(tag)).map((e) => e.payload);
    assert.deepEqual(got.map((m) => m.content), [...Array(50).keys()].map((i) => `${tag} ${i}`));
    for (let i = 1; i < 50; i++) {
      assert.equal(got[i].seq, got[i - 1].seq + 1);
      assert.ok(got[i].offset > got[i - 1].offset);
    }
  });

  test('a tempId retry returns the first message and creates nothing', async () => {
    const a = track(await authed(A.url, token(alice)));
    await emitAck(a, 'conversation:join', { conversationId: conv });
    const tempId = unique('retry');
    const first = await emitAck(a, 'message:send', { conversationId: conv, content: 'once', tempId });
    // The retry arrives on the other node, as after a reconnect.
    const b = track(await authed(B.url, token(alice)));
    const again = await emitAck(b, 'message:send', { conversationId: conv, content: 'once', tempId });
    assert.deepEqual(again, first);
    const rest = await api(A.url, 'POST', '/api/messages', token(alice), { conversationId: conv, content: 'once', tempId });
    assert.equal(rest.status, 200);
    assert.equal(rest.body.id, first.messageId);
    const marker = await emitAck(a, 'message:send', { conversationId: conv, content: 'marker' });
    await waitFor(a, 'message:new', (m) => m.id === marker.messageId);
    assert.equal(a.received.filter((e) => e.event === 'message:new' && e.payload.tempId === tempId).length, 1);
    assert.equal(marker.seq, first.seq + 1);
    const list = await api(A.url, 'GET', `/api/messages?conversationId=${conv}&after=${first.seq - 1}&limit=200&minPosition=${rest.body.position}`, token(alice));
    assert.equal(list.body.messages.filter((m) => m.tempId === tempId).length, 1);
  });

  test('a long-polling client authenticates, joins, sends and receives', async () => {
    const p = track(await authed(A.url, token(bob), { transports: ['polling'] }));
    assert.equal(p.io.engine.transport.name, 'polling');
    await emitAck(p, 'conversation:join', { conversationId: conv });
    const ack = await emitAck(p, 'message:send', { conversationId: conv, content: 'over polling' });
    assert.equal(ack.success, true);
    const m = await waitFor(p, 'message:new', (m) => m.id === ack.messageId);
    assert.equal(m.content, 'over polling');
  });

  test('a non-participant cannot send; the socket stays', async () => {
    const c = track(await authed(A.url, token(carol)));
    const ack = await emitAck(c, 'message:send', { conversationId: conv, content: 'let me in' });
    assert.deepEqual(ack, { success: false, error: { message: 'Not a participant of this conversation', code: 'NOT_PARTICIPANT' } });
    c.emit('message:send', { conversationId: conv, content: 'no ack' });
    const e = await waitFor(c, 'error');
    assert.equal(e.code, 'NOT_PARTICIPANT');
    assert.deepEqual(e.context, { conversationId: conv });
    assert.ok(c.connected);
  });
});

describe('malformed input', () => {
  const bad = [
    ['a string payload', 'hello'],
    ['a number payload', 42],
    ['no payload', null],
    ['missing content', { conversationId: 'x' }],
    ['content of the wrong type', { conversationId: 'conv_x', content: 5 }],
    ['empty content', { conversationId: 'conv_x', content: '' }],
    ['blank content', { conversationId: 'conv_x', content: '   ' }],
    ['content over 10000 characters', { conversationId: 'conv_x', content: 'x'.repeat(10001) }],
    ['an id over 128 characters', { conversationId: 'c'.repeat(129), content: 'hi' }],
    ['a tempId over 128 characters', { conversationId: 'conv_x', content: 'hi', tempId: 't'.repeat(129) }],
  ];
  for (const [name, payload] of bad) {
    test(`message:send with ${name}: INVALID_INPUT, still connected`, async () => {
      const s = track(await authed(A.url, token(alice)));
      const ack = await emitAck(s, 'message:send', payload);
      assert.equal(ack.success, false);
      assert.equal(ack.error.code, 'INVALID_INPUT');
      assert.equal(typeof ack.error.message, 'string');
      assert.ok(s.connected);
    });
  }

  test('without an ack the error comes as an error event, and the socket keeps working', async () => {
    const s = track(await authed(A.url, token(alice)));
    s.emit('message:send', { content: 42 });
    const e = await waitFor(s, 'error');
    assert.equal(e.code, 'INVALID_INPUT');
    s.emit('conversation:join', 'nope');
    assert.equal((await waitFor(s, 'conversation:join:error')).code, 'INVALID_INPUT');
    const ok = await emitAck(s, 'message:send', { conversationId: conv, content: 'still here' });
    assert.equal(ok.success, true);
  });

  test('a message to a conversation of another user changes nothing', async () => {
    const s = track(await authed(A.url, token(alice)));
    const ack = await emitAck(s, 'message:send', { conversationId: other, content: 'x' });
    assert.equal(ack.error.code, 'NOT_PARTICIPANT');
  });
});
