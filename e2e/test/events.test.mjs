// Every event of the spec across two `chat serve` nodes sharing NATS and Postgres, clients
// spread over both: exact payloads, every rejection code, cross-node presence and typing.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  deployment, startServer, startNodes, EMBEDDED, token, adminToken, api, connect, authed, waitFor, waitUntil, emitAck,
  unique, NO_LIMITS,
} from './helpers.mjs';

let dep, A, B, conv;
const sockets = [];
const track = (s) => (sockets.push(s), s);
const ann = unique('ann'), bob = unique('bob'), cat = unique('cat'), dan = unique('dan');
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

before(async () => {
  dep = deployment();
  [A, B] = await startNodes(dep, NO_LIMITS);
  for (const [id, name] of [[ann, 'Ann'], [bob, 'Bob'], [cat, 'Cat'], [dan, 'Dan']]) {
    assert.equal((await api(A.url, 'PUT', `/api/users/${id}`, adminToken(), { name })).status, 200);
  }
  conv = (await api(A.url, 'POST', '/api/conversations', token(ann), { title: 'All', participantIds: [bob, cat] })).body.id;
});

after(async () => {
  for (const s of sockets) s.disconnect();
  await A?.stop();
  await B?.stop();
});

/** A new conversation of `ann` (admin) with the given members, and joined sockets. */
async function room(members, nodes) {
  const c = (await api(A.url, 'POST', '/api/conversations', token(ann), { participantIds: members.filter((m) => m !== ann) })).body.id;
  const out = {};
  for (const [i, m] of members.entries()) {
    const s = track(await authed((nodes?.[i] ?? (i % 2 ? B : A)).url, token(m)));
    await emitAck(s, 'conversation:join', { conversationId: c });
    out[m] = s;
  }
  return { c, s: out };
}

const events = (s, name) => s.received.filter((e) => e.event === name).map((e) => e.payload);

describe('message:update and message:delete', () => {
  test('the author edits: message:updated reaches the room on both nodes', async () => {
    const { c, s } = await room([ann, bob]);
    const sent = await emitAck(s[ann], 'message:send', { conversationId: c, content: 'first' });
    const ack = await emitAck(s[ann], 'message:update', { messageId: sent.messageId, conversationId: c, content: 'edited' });
    assert.equal(ack.success, true);
    const got = await waitFor(s[bob], 'message:updated', (m) => m.id === sent.messageId);
    assert.deepEqual(Object.keys(got).sort(), ['content', 'conversationId', 'editedAt', 'id', 'offset']);
    assert.equal(got.content, 'edited');
    assert.equal(got.conversationId, c);
    assert.match(got.editedAt, ISO);
    const created = await waitFor(s[ann], 'message:new', (m) => m.id === sent.messageId);
    assert.ok(got.offset > created.offset);
    assert.deepEqual(await waitFor(s[ann], 'message:updated', (m) => m.id === sent.messageId), got);
  });

  test('a non-author cannot edit (UNAUTHORIZED); unknown message NOT_FOUND; bad content INVALID_INPUT', async () => {
    const { c, s } = await room([ann, bob]);
    const sent = await emitAck(s[ann], 'message:send', { conversationId: c, content: 'mine' });
    const no = await emitAck(s[bob], 'message:update', { messageId: sent.messageId, conversationId: c, content: 'hijack' });
    assert.deepEqual(no, { success: false, error: { message: 'Only the author can edit a message', code: 'UNAUTHORIZED' } });
    const missing = await emitAck(s[ann], 'message:update', { messageId: 'msg_nope', conversationId: c, content: 'x' });
    assert.equal(missing.error.code, 'NOT_FOUND');
    const blank = await emitAck(s[ann], 'message:update', { messageId: sent.messageId, conversationId: c, content: ' ' });
    assert.equal(blank.error.code, 'INVALID_INPUT');
    const outsider = track(await authed(A.url, token(dan)));
    const np = await emitAck(outsider, 'message:update', { messageId: sent.messageId, conversationId: c, content: 'x' });
    assert.equal(np.error.code, 'NOT_PARTICIPANT');
  });

  test('the author or an admin deletes; then edits and reactions are NOT_FOUND; the read model blanks it', async () => {
    const { c, s } = await room([ann, bob, cat]);
    const byBob = await emitAck(s[bob], 'message:send', { conversationId: c, content: 'secret' });
    const byCat = await emitAck(s[cat], 'message:send', { conversationId: c, content: 'cat says' });
    const denied = await emitAck(s[bob], 'message:delete', { messageId: byCat.messageId, conversationId: c });
    assert.equal(denied.error.code, 'UNAUTHORIZED');
    assert.equal((await emitAck(s[bob], 'message:delete', { messageId: byBob.messageId, conversationId: c })).success, true);
    assert.equal((await emitAck(s[ann], 'message:delete', { messageId: byCat.messageId, conversationId: c })).success, true);
    const del = await waitFor(s[cat], 'message:deleted', (m) => m.id === byBob.messageId);
    assert.equal(del.conversationId, c);
    assert.match(del.deletedAt, ISO);
    assert.equal(typeof del.offset, 'number');
    await waitFor(s[bob], 'message:deleted', (m) => m.id === byCat.messageId);
    const again = await emitAck(s[bob], 'message:delete', { messageId: byBob.messageId, conversationId: c });
    assert.equal(again.error.code, 'NOT_FOUND');
    const edit = await emitAck(s[bob], 'message:update', { messageId: byBob.messageId, conversationId: c, content: 'x' });
    assert.equal(edit.error.code, 'NOT_FOUND');
    const react = await emitAck(s[ann], 'reaction:add', { messageId: byBob.messageId, conversationId: c, emoji: '👍' });
    assert.equal(react.error.code, 'NOT_FOUND');
    await waitUntil(async () => {
      const r = await api(A.url, 'GET', `/api/messages?conversationId=${c}`, token(ann));
      const m = r.body.messages?.find((x) => x.id === byBob.messageId);
      return m && m.deletedAt !== null;
    }, 10000, 'projection of the delete');
    const m = (await api(A.url, 'GET', `/api/messages?conversationId=${c}`, token(ann))).body.messages.find((x) => x.id === byBob.messageId);
    assert.equal(m.content, null);
    assert.match(m.deletedAt, ISO);
  });
});

describe('delivery and read receipts', () => {
  test('recipients in the room when a message is sent: message:delivered to the sender', async () => {
    const { c, s } = await room([ann, bob]);
    const sent = await emitAck(s[ann], 'message:send', { conversationId: c, content: 'to bob' });
    const d = await waitFor(s[ann], 'message:delivered', (p) => p.messageId === sent.messageId);
    assert.deepEqual(Object.keys(d).sort(), ['conversationId', 'deliveredAt', 'deliveredTo', 'messageId']);
    assert.deepEqual(d.deliveredTo, [bob]);
    assert.equal(d.conversationId, c);
    assert.match(d.deliveredAt, ISO);
    assert.equal(events(s[bob], 'message:delivered').length, 0, 'only the sender is told');
  });

  test('a user joining later gets everything not yet delivered, once', async () => {
    const { c, s } = await room([ann, bob]);
    const m1 = await emitAck(s[ann], 'message:send', { conversationId: c, content: 'one' });
    const m2 = await emitAck(s[bob], 'message:send', { conversationId: c, content: 'two' });
    await api(A.url, 'POST', `/api/conversations/${c}/participants`, token(ann), { userId: cat });
    const late = track(await authed(B.url, token(cat)));
    await emitAck(late, 'conversation:join', { conversationId: c });
    const toAnn = await waitFor(s[ann], 'message:delivered', (p) => p.messageId === m1.messageId && p.deliveredTo.includes(cat));
    assert.deepEqual(toAnn.deliveredTo, [cat]);
    const toBob = await waitFor(s[bob], 'message:delivered', (p) => p.messageId === m2.messageId && p.deliveredTo.includes(cat));
    assert.deepEqual(toBob.deliveredTo, [cat]);
    // Rejoining delivers nothing new: the next delivery the sender sees is for a new message.
    await emitAck(late, 'conversation:leave', { conversationId: c });
    await emitAck(late, 'conversation:join', { conversationId: c });
    const m3 = await emitAck(s[ann], 'message:send', { conversationId: c, content: 'three' });
    await waitFor(s[ann], 'message:delivered', (p) => p.messageId === m3.messageId && p.deliveredTo.includes(cat));
    assert.equal(events(s[ann], 'message:delivered').filter((p) => p.messageId === m1.messageId && p.deliveredTo.includes(cat)).length, 1);
  });

  test('message:read: one receipt per sender, own messages ignored, idempotent', async () => {
    const { c, s } = await room([ann, bob, cat]);
    const a1 = await emitAck(s[ann], 'message:send', { conversationId: c, content: 'a1' });
    const a2 = await emitAck(s[ann], 'message:send', { conversationId: c, content: 'a2' });
    const c1 = await emitAck(s[cat], 'message:send', { conversationId: c, content: 'c1' });
    const b1 = await emitAck(s[bob], 'message:send', { conversationId: c, content: 'b1' });
    const ids = [a1.messageId, a2.messageId, c1.messageId, b1.messageId];
    assert.equal((await emitAck(s[bob], 'message:read', { conversationId: c, messageIds: ids })).success, true);
    const toAnn = await waitFor(s[ann], 'message:read:receipt');
    assert.deepEqual(Object.keys(toAnn).sort(), ['conversationId', 'messageIds', 'readAt', 'readBy']);
    assert.deepEqual(toAnn.messageIds, [a1.messageId, a2.messageId]);
    assert.equal(toAnn.readBy, bob);
    assert.equal(toAnn.conversationId, c);
    assert.match(toAnn.readAt, ISO);
    const toCat = await waitFor(s[cat], 'message:read:receipt');
    assert.deepEqual(toCat.messageIds, [c1.messageId]);
    // Reading again sends nothing; a later read of a new message is the next receipt.
    await emitAck(s[bob], 'message:read', { conversationId: c, messageIds: ids });
    const a3 = await emitAck(s[ann], 'message:send', { conversationId: c, content: 'a3' });
    await emitAck(s[bob], 'message:read', { conversationId: c, messageIds: [a3.messageId] });
    await waitFor(s[ann], 'message:read:receipt', (r) => r.messageIds.includes(a3.messageId));
    assert.deepEqual(events(s[ann], 'message:read:receipt').map((r) => r.messageIds), [[a1.messageId, a2.messageId], [a3.messageId]]);
    assert.equal(events(s[bob], 'message:read:receipt').length, 0);
  });

  test('message:read rejections', async () => {
    const { c, s } = await room([ann, bob]);
    const bad = await emitAck(s[bob], 'message:read', { conversationId: c, messageIds: [] });
    assert.equal(bad.error.code, 'INVALID_INPUT');
    const many = await emitAck(s[bob], 'message:read', { conversationId: c, messageIds: Array.from({ length: 101 }, (_, i) => `msg_${i}`) });
    assert.equal(many.error.code, 'INVALID_INPUT');
    const unknown = await emitAck(s[bob], 'message:read', { conversationId: c, messageIds: ['msg_nope'] });
    assert.equal(unknown.error.code, 'NOT_FOUND');
    const outsider = track(await authed(A.url, token(dan)));
    const np = await emitAck(outsider, 'message:read', { conversationId: c, messageIds: ['msg_x'] });
    assert.equal(np.error.code, 'NOT_PARTICIPANT');
  });
});

describe('typing', () => {
  test('start and stop reach the others on the other node, not the typist', async () => {
    const { c, s } = await room([ann, bob]);
    assert.equal((await emitAck(s[ann], 'typing:start', { conversationId: c })).success, true);
    const start = await waitFor(s[bob], 'typing:user:start');
    assert.deepEqual(start, { conversationId: c, userId: ann, user: { id: ann, name: 'Ann' } });
    s[ann].emit('typing:stop', { conversationId: c });
    assert.deepEqual(await waitFor(s[bob], 'typing:user:stop'), { conversationId: c, userId: ann });
    const marker = await emitAck(s[bob], 'message:send', { conversationId: c, content: 'marker' });
    await waitFor(s[ann], 'message:new', (m) => m.id === marker.messageId);
    assert.equal(events(s[ann], 'typing:user:start').length, 0);
    assert.equal(events(s[ann], 'typing:user:stop').length, 0);
  });

  test('the server stops a silent typist after 6 s', async () => {
    const { c, s } = await room([ann, bob]);
    const t0 = Date.now();
    await emitAck(s[ann], 'typing:start', { conversationId: c });
    await waitFor(s[bob], 'typing:user:start');
    await waitFor(s[bob], 'typing:user:stop', () => true, 15000);
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 5500, `stopped after ${elapsed} ms`);
  });

  test('leaving or disconnecting stops typing; typing outside the room is refused', async () => {
    const { c, s } = await room([ann, bob, cat]);
    await emitAck(s[ann], 'typing:start', { conversationId: c });
    await waitFor(s[bob], 'typing:user:start', (p) => p.userId === ann);
    await emitAck(s[ann], 'conversation:leave', { conversationId: c });
    await waitFor(s[bob], 'typing:user:stop', (p) => p.userId === ann, 3000);
    await emitAck(s[cat], 'typing:start', { conversationId: c });
    await waitFor(s[bob], 'typing:user:start', (p) => p.userId === cat);
    s[cat].disconnect();
    await waitFor(s[bob], 'typing:user:stop', (p) => p.userId === cat, 3000);
    const no = await emitAck(s[ann], 'typing:start', { conversationId: c });
    assert.equal(no.error.code, 'NOT_PARTICIPANT');
  });
});

describe('reactions', () => {
  test('add is idempotent per user, message and emoji; only the owner removes', async () => {
    const { c, s } = await room([ann, bob]);
    const m = await emitAck(s[ann], 'message:send', { conversationId: c, content: 'react to me' });
    const r1 = await emitAck(s[bob], 'reaction:add', { messageId: m.messageId, conversationId: c, emoji: '👍' });
    assert.equal(r1.success, true);
    assert.match(r1.reactionId, /^rxn_/);
    const added = await waitFor(s[ann], 'reaction:added');
    assert.deepEqual(
      Object.keys(added).sort(),
      ['conversationId', 'createdAt', 'emoji', 'id', 'messageId', 'offset', 'user', 'userId'],
    );
    assert.equal(added.id, r1.reactionId);
    assert.equal(added.messageId, m.messageId);
    assert.equal(added.emoji, '👍');
    assert.equal(added.userId, bob);
    assert.deepEqual(added.user, { id: bob, name: 'Bob' });
    assert.match(added.createdAt, ISO);
    const r2 = await emitAck(s[bob], 'reaction:add', { messageId: m.messageId, conversationId: c, emoji: '👍' });
    assert.equal(r2.reactionId, r1.reactionId);
    const steal = await emitAck(s[ann], 'reaction:remove', { reactionId: r1.reactionId, messageId: m.messageId, conversationId: c });
    assert.equal(steal.error.code, 'UNAUTHORIZED');
    assert.equal((await emitAck(s[bob], 'reaction:remove', { reactionId: r1.reactionId, messageId: m.messageId, conversationId: c })).success, true);
    const removed = await waitFor(s[ann], 'reaction:removed');
    assert.deepEqual(removed, { id: r1.reactionId, messageId: m.messageId, conversationId: c, userId: bob, offset: removed.offset });
    assert.ok(removed.offset > added.offset);
    assert.equal(events(s[ann], 'reaction:added').length, 1, 'the repeated add broadcast nothing');
    const gone = await emitAck(s[bob], 'reaction:remove', { reactionId: r1.reactionId, messageId: m.messageId, conversationId: c });
    assert.equal(gone.error.code, 'NOT_FOUND');
  });

  test('bad emoji and unknown messages are refused', async () => {
    const { c, s } = await room([ann, bob]);
    const m = await emitAck(s[ann], 'message:send', { conversationId: c, content: 'x' });
    for (const emoji of ['', 'ab', '👍👍', 'x'.repeat(40), 5]) {
      const r = await emitAck(s[bob], 'reaction:add', { messageId: m.messageId, conversationId: c, emoji });
      assert.equal(r.error.code, 'INVALID_INPUT', JSON.stringify(emoji));
    }
    const r = await emitAck(s[bob], 'reaction:add', { messageId: 'msg_nope', conversationId: c, emoji: '🎉' });
    assert.equal(r.error.code, 'NOT_FOUND');
  });
});

describe('presence across nodes', () => {
  test('participantCount, user:online, presence:response and user:offline count users on every node', async () => {
    const c = (await api(A.url, 'POST', '/api/conversations', token(ann), { participantIds: [bob, cat] })).body.id;
    const a = track(await authed(A.url, token(ann)));
    const b1 = track(await authed(B.url, token(bob)));
    const b2 = track(await authed(A.url, token(bob)));
    await emitAck(a, 'conversation:join', { conversationId: c });
    assert.deepEqual(await waitFor(a, 'conversation:joined'), { conversationId: c, participantCount: 1 });
    await emitAck(b1, 'conversation:join', { conversationId: c });
    assert.deepEqual(await waitFor(b1, 'conversation:joined'), { conversationId: c, participantCount: 2 });
    const online = await waitFor(a, 'user:online', (p) => p.userId === bob);
    assert.deepEqual(Object.keys(online).sort(), ['conversationId', 'timestamp', 'user', 'userId']);
    assert.deepEqual(online.user, { id: bob, name: 'Bob' });
    // Bob's second socket (other node) is not a new user: no second user:online.
    await waitUntil(async () => {
      await emitAck(b2, 'conversation:join', { conversationId: c });
      return true;
    });
    assert.equal((await waitFor(b2, 'conversation:joined')).participantCount, 2);
    const resp = await emitAck(a, 'presence:request', { conversationId: c });
    assert.equal(resp.success, true);
    const p = await waitFor(a, 'presence:response');
    assert.deepEqual(p.onlineUsers.map((u) => u.id).sort(), [ann, bob].sort());
    assert.deepEqual(p.onlineUsers.find((u) => u.id === bob), { id: bob, name: 'Bob' });
    assert.equal(p.conversationId, c);
    assert.match(p.timestamp, ISO);
    // One of Bob's sockets leaving is not Bob leaving.
    b1.disconnect();
    await emitAck(b2, 'conversation:leave', { conversationId: c });
    const off = await waitFor(a, 'user:offline', (x) => x.userId === bob);
    assert.deepEqual(Object.keys(off).sort(), ['conversationId', 'lastSeenAt', 'timestamp', 'userId']);
    assert.match(off.lastSeenAt, ISO);
    assert.equal(events(a, 'user:online').filter((x) => x.userId === bob).length, 1);
    assert.equal(events(a, 'user:offline').filter((x) => x.userId === bob).length, 1);
    // lastSeenAt persists.
    await waitUntil(async () => (await api(A.url, 'GET', `/api/users/${bob}`, token(ann))).body.lastSeenAt === off.lastSeenAt, 10000, 'lastSeenAt');
    const profile = (await api(B.url, 'GET', `/api/users/${bob}`, token(cat))).body;
    assert.deepEqual(profile, { id: bob, name: 'Bob', avatarUrl: null, status: 'active', lastSeenAt: off.lastSeenAt });
    // presence:request is for participants.
    const outsider = track(await authed(A.url, token(dan)));
    const refused = await emitAck(outsider, 'presence:request', { conversationId: c });
    assert.equal(refused.error.code, 'NOT_PARTICIPANT');
  });
});

/** A gauge of `node`'s `/metrics`, e.g. `chat_presence_held` (sockets in their disconnect grace). */
async function gauge(node, name) {
  const text = await (await fetch(node.url + '/metrics')).text();
  return Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1]);
}

describe('presence is right across nodes, with a disconnect grace', () => {
  const GRACE = 2000; // CHAT_PRESENCE_GRACE_MS by default

  test('a join on one node then a leave on the other a moment later: nobody is told offline', async () => {
    const c = (await api(A.url, 'POST', '/api/conversations', token(ann), { participantIds: [bob] })).body.id;
    const watchB = track(await authed(B.url, token(ann)));
    const watchA = track(await authed(A.url, token(ann)));
    const onB = track(await authed(B.url, token(bob)));
    const onA = track(await authed(A.url, token(bob)));
    for (const s of [watchB, watchA, onB]) await emitAck(s, 'conversation:join', { conversationId: c });
    // Once Bob's join on A is acknowledged, B counts it: his leave on B is not him leaving.
    await emitAck(onA, 'conversation:join', { conversationId: c });
    await emitAck(onB, 'conversation:leave', { conversationId: c });
    for (const w of [watchB, watchA]) {
      const p = await emitAck(w, 'presence:request', { conversationId: c });
      assert.deepEqual(p.onlineUsers.map((u) => u.id).sort(), [ann, bob].sort());
    }
    await emitAck(onA, 'conversation:leave', { conversationId: c });
    for (const w of [watchB, watchA]) {
      await waitFor(w, 'user:offline', (p) => p.userId === bob && p.conversationId === c);
      await emitAck(w, 'presence:request', { conversationId: c });
      const mine = (name) => events(w, name).filter((p) => p.userId === bob && p.conversationId === c);
      assert.equal(mine('user:offline').length, 1);
      assert.equal(mine('user:online').length, 1);
    }
  });

  test('a reconnect within the grace, on the other node, shows neither offline nor online', async () => {
    const c = (await api(A.url, 'POST', '/api/conversations', token(ann), { participantIds: [cat] })).body.id;
    const watch = track(await authed(A.url, token(ann)));
    await emitAck(watch, 'conversation:join', { conversationId: c });
    const first = track(await authed(A.url, token(cat)));
    await emitAck(first, 'conversation:join', { conversationId: c });
    await waitFor(watch, 'user:online', (p) => p.userId === cat && p.conversationId === c);
    const again = track(await authed(B.url, token(cat)));
    // Earlier tests' disconnects end their grace first: the next hold on A is this one.
    await waitUntil(async () => (await gauge(A, 'chat_presence_held')) === 0, 10000, 'no earlier holds');
    const gone = Date.now();
    first.disconnect();
    await waitUntil(async () => (await gauge(A, 'chat_presence_held')) === 1, 10000, 'the disconnect held');
    await emitAck(again, 'conversation:join', { conversationId: c });
    await waitUntil(async () => (await gauge(A, 'chat_presence_held')) === 0, 10000, 'the grace over');
    const over = Date.now();
    const p = await emitAck(watch, 'presence:request', { conversationId: c });
    assert.deepEqual(p.onlineUsers.map((u) => u.id).sort(), [ann, cat].sort());
    const mine = (name) => events(watch, name).filter((x) => x.userId === cat && x.conversationId === c);
    assert.equal(mine('user:offline').length, 0);
    assert.equal(mine('user:online').length, 1);
    const seen = async () => Date.parse((await api(A.url, 'GET', `/api/users/${cat}`, token(ann))).body.lastSeenAt);
    if (EMBEDDED) {
      // One node: the new socket took the held one's place, so Cat never left.
      assert.ok(!((await seen()) >= gone), 'no lastSeenAt from this disconnect');
    } else {
      // The held socket left node A at the end of the grace: A persists when it disconnected.
      await waitUntil(async () => (await seen()) >= gone, 10000, 'lastSeenAt');
      const at = await seen();
      assert.ok(at <= over - GRACE, `${gone} <= ${at} <= ${over} - ${GRACE}`);
    }
  });

  test('a disconnect without return: user:offline once the grace is over, with the time of the disconnect', async () => {
    const c = (await api(A.url, 'POST', '/api/conversations', token(ann), { participantIds: [dan] })).body.id;
    const watch = track(await authed(B.url, token(ann)));
    await emitAck(watch, 'conversation:join', { conversationId: c });
    const gone = track(await authed(A.url, token(dan)));
    await emitAck(gone, 'conversation:join', { conversationId: c });
    gone.disconnect();
    const off = await waitFor(watch, 'user:offline', (p) => p.userId === dan && p.conversationId === c);
    assert.ok(Date.parse(off.timestamp) - Date.parse(off.lastSeenAt) >= GRACE, `${off.lastSeenAt} → ${off.timestamp}`);
    await waitUntil(async () => (await api(A.url, 'GET', `/api/users/${dan}`, token(ann))).body.lastSeenAt === off.lastSeenAt, 10000, 'lastSeenAt');
    const p = await emitAck(watch, 'presence:request', { conversationId: c });
    assert.deepEqual(p.onlineUsers.map((u) => u.id), [ann]);
  });
});

describe('participants and suspension', () => {
  test('a removed participant leaves the room at once and receives nothing more', async () => {
    const { c, s } = await room([ann, bob, cat], [A, B, A]);
    const r = await api(A.url, 'DELETE', `/api/conversations/${c}/participants/${bob}`, token(ann));
    assert.equal(r.status, 200);
    await waitFor(s[ann], 'user:offline', (p) => p.userId === bob);
    const after = await emitAck(s[ann], 'message:send', { conversationId: c, content: 'not for bob' });
    await waitFor(s[cat], 'message:new', (m) => m.id === after.messageId);
    assert.ok(!events(s[bob], 'message:new').some((m) => m.id === after.messageId));
    const send = await emitAck(s[bob], 'message:send', { conversationId: c, content: 'let me back' });
    assert.equal(send.error.code, 'NOT_PARTICIPANT');
    const rejoin = await emitAck(s[bob], 'conversation:join', { conversationId: c });
    assert.equal(rejoin.error.code, 'NOT_PARTICIPANT');
    // Only an admin removes others; a member may leave.
    const denied = await api(A.url, 'DELETE', `/api/conversations/${c}/participants/${ann}`, token(cat));
    assert.equal(denied.status, 403);
    assert.equal(denied.body.error.code, 'UNAUTHORIZED');
    assert.equal((await api(A.url, 'DELETE', `/api/conversations/${c}/participants/${cat}`, token(cat))).status, 200);
    const added = await api(A.url, 'POST', `/api/conversations/${c}/participants`, token(ann), { userId: bob });
    assert.equal(added.status, 201);
    assert.equal((await api(A.url, 'POST', `/api/conversations/${c}/participants`, token(bob), { userId: dan })).body.error.code, 'UNAUTHORIZED');
    assert.equal((await api(A.url, 'POST', `/api/conversations/${c}/participants`, token(ann), { userId: unique('ghost') })).status, 404);
  });

  test('a suspended user is cut off on every node and cannot reconnect until reinstated', async () => {
    const eve = unique('eve');
    await api(A.url, 'PUT', `/api/users/${eve}`, adminToken(), { name: 'Eve' });
    const onA = track(await authed(A.url, token(eve)));
    const onB = track(await authed(B.url, token(eve)));
    const r = await api(B.url, 'POST', `/api/users/${eve}/suspend`, adminToken());
    assert.equal(r.status, 200);
    assert.equal(r.body.status, 'suspended');
    for (const s of [onA, onB]) {
      assert.deepEqual(await waitFor(s, 'auth:error'), { message: 'User not authorized', code: 'UNAUTHORIZED' });
      await waitUntil(() => s.disconnectReason !== undefined, 10000, 'disconnect');
      assert.equal(s.disconnectReason, 'io server disconnect');
    }
    const retry = track(connect(A.url, token(eve)));
    assert.equal((await waitFor(retry, 'auth:error')).code, 'UNAUTHORIZED');
    assert.equal((await api(A.url, 'POST', `/api/users/${eve}/suspend`, token(ann))).status, 403);
    assert.equal((await api(A.url, 'POST', `/api/users/${eve}/reinstate`, adminToken())).status, 200);
    const back = track(connect(A.url, token(eve)));
    assert.equal((await waitFor(back, 'auth:success')).userId, eve);
  });
});

describe('security', () => {
  test('a foreign Origin cannot open a WebSocket', async () => {
    const s = track(connect(A.url, token(ann), { extraHeaders: { origin: 'https://evil.example' } }));
    const err = await new Promise((resolve) => s.once('connect_error', resolve));
    assert.ok(err);
    assert.equal(s.connected, false);
  });

  test('every event needs a participant; unknown events are INVALID_INPUT', async () => {
    const s = track(await authed(A.url, token(dan)));
    for (const [event, payload] of [
      ['message:send', { conversationId: conv, content: 'x' }],
      ['message:update', { conversationId: conv, messageId: 'msg_x', content: 'x' }],
      ['message:delete', { conversationId: conv, messageId: 'msg_x' }],
      ['message:read', { conversationId: conv, messageIds: ['msg_x'] }],
      ['reaction:add', { conversationId: conv, messageId: 'msg_x', emoji: '👍' }],
      ['reaction:remove', { conversationId: conv, messageId: 'msg_x', reactionId: 'rxn_x' }],
      ['presence:request', { conversationId: conv }],
    ]) {
      const r = await emitAck(s, event, payload);
      assert.equal(r.error.code, 'NOT_PARTICIPANT', event);
    }
    assert.equal((await emitAck(s, 'no:such:event', {})).error.code, 'INVALID_INPUT');
  });
});

describe('rate limits', () => {
  test('message:send over the per-user limit is RATE_LIMIT, appends nothing, and recovers', async () => {
    // A node of its own with other limits (embedded: a deployment of its own, the data dir
    // belongs to one process).
    const node = await startServer(EMBEDDED ? deployment() : dep, { CHAT_RATE_MESSAGES_PER_MIN: '120', CHAT_RATE_EVENTS_PER_MIN: '0' });
    if (EMBEDDED) await api(node.url, 'PUT', `/api/users/${ann}`, adminToken(), { name: 'Ann' });
    try {
      const c = (await api(node.url, 'POST', '/api/conversations', token(ann), { participantIds: [] })).body.id;
      const s = track(await authed(node.url, token(ann)));
      const acks = await Promise.all(Array.from({ length: 121 }, (_, i) => emitAck(s, 'message:send', { conversationId: c, content: `m${i}` })));
      const limited = acks.filter((a) => !a.success);
      assert.ok(limited.length >= 1, 'the burst went over the limit');
      assert.ok(limited.every((a) => a.error.code === 'RATE_LIMIT'));
      const okSeqs = acks.filter((a) => a.success).map((a) => a.seq);
      assert.deepEqual(okSeqs, okSeqs.map((_, i) => i + 1), 'nothing appended for refused sends');
      const rest = await api(node.url, 'POST', '/api/messages', token(ann), { conversationId: c, content: 'rest' });
      assert.equal(rest.status, 429);
      assert.equal(rest.body.error.code, 'RATE_LIMIT');
      assert.ok(Number(rest.headers.get('retry-after')) >= 1);
      await waitUntil(async () => (await emitAck(s, 'message:send', { conversationId: c, content: 'later' })).success, 10000, 'recovery');
    } finally {
      await node.stop();
    }
  });

  test('a socket going at ten times the event limit is disconnected', async () => {
    const node = await startServer(EMBEDDED ? deployment() : dep, { CHAT_RATE_EVENTS_PER_MIN: '20', CHAT_RATE_MESSAGES_PER_MIN: '0' });
    if (EMBEDDED) await api(node.url, 'PUT', `/api/users/${ann}`, adminToken(), { name: 'Ann' });
    try {
      const c = (await api(node.url, 'POST', '/api/conversations', token(ann), { participantIds: [] })).body.id;
      const s = track(await authed(node.url, token(ann)));
      const first = await Promise.all(Array.from({ length: 25 }, () => emitAck(s, 'presence:request', { conversationId: c })));
      assert.ok(first.some((a) => a.success === false && a.error.code === 'RATE_LIMIT'), 'over the limit: RATE_LIMIT');
      assert.ok(s.connected, 'over the limit is not yet abuse');
      for (let i = 0; i < 250; i++) s.emit('presence:request', { conversationId: c });
      await waitUntil(() => s.disconnectReason !== undefined, 15000, 'disconnect');
      // The server ends the connection; with its send buffer full of error replies the
      // client may see the transport close before the disconnect packet.
      assert.ok(['io server disconnect', 'transport close'].includes(s.disconnectReason), s.disconnectReason);
    } finally {
      await node.stop();
    }
  });
});

describe('node failure', () => {
  test('users of a node that dies go offline for the others', { skip: EMBEDDED && 'one node: multi-node does not apply' }, async () => {
    const C = await startServer(dep, NO_LIMITS);
    const c = (await api(A.url, 'POST', '/api/conversations', token(ann), { participantIds: [cat] })).body.id;
    const a = track(await authed(A.url, token(ann)));
    await emitAck(a, 'conversation:join', { conversationId: c });
    const doomed = track(await authed(C.url, token(cat)));
    await emitAck(doomed, 'conversation:join', { conversationId: c });
    await waitFor(a, 'user:online', (p) => p.userId === cat);
    await C.stop(); // SIGKILL: no goodbye
    const off = await waitFor(a, 'user:offline', (p) => p.userId === cat, 40000);
    assert.equal(off.conversationId, c);
    const p = await emitAck(a, 'presence:request', { conversationId: c });
    assert.deepEqual(p.onlineUsers.map((u) => u.id), [ann]);
  });
});
