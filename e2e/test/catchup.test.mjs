// Gapless catch-up: a client that rejoins with `sinceOffset` gets every room event it missed,
// in order, then live events, with no gap and no duplicate, even while others keep writing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { deployment, startServer, startNodes, EMBEDDED, token, adminToken, api, authed, waitFor, waitUntil, emitAck, unique, NO_LIMITS } from './helpers.mjs';

let A, B;
const sockets = [];
const track = (s) => (sockets.push(s), s);
const ann = unique('ann'), bob = unique('bob');
const ROOM_EVENTS = ['message:new', 'message:updated', 'message:deleted', 'reaction:added', 'reaction:removed'];
const roomEvents = (s, after = 0) =>
  s.received.filter((e) => ROOM_EVENTS.includes(e.event) && e.payload.offset > after).map((e) => [e.event, e.payload]);

before(async () => {
  const dep = deployment();
  [A, B] = await startNodes(dep, NO_LIMITS);
  for (const [id, name] of [[ann, 'Ann'], [bob, 'Bob']]) {
    await api(A.url, 'PUT', `/api/users/${id}`, adminToken(), { name });
  }
});
after(async () => {
  for (const s of sockets) s.disconnect();
  await A?.stop();
  await B?.stop();
});

test('a client that drops and rejoins with sinceOffset ends with the same history as one that stayed', async () => {
  const c = (await api(A.url, 'POST', '/api/conversations', token(ann), { participantIds: [bob] })).body.id;
  const steady = track(await authed(A.url, token(ann)));
  await emitAck(steady, 'conversation:join', { conversationId: c });
  const dropper = track(await authed(B.url, token(bob)));
  await emitAck(dropper, 'conversation:join', { conversationId: c });
  const first = await emitAck(steady, 'message:send', { conversationId: c, content: 'before the drop' });
  const seen = await waitFor(dropper, 'message:new', (m) => m.id === first.messageId);
  const since = seen.offset;
  dropper.disconnect();

  // While bob is away: sends, an edit, a delete, reactions added and removed.
  const m1 = await emitAck(steady, 'message:send', { conversationId: c, content: 'missed 1' });
  const m2 = await emitAck(steady, 'message:send', { conversationId: c, content: 'missed 2' });
  await emitAck(steady, 'message:update', { conversationId: c, messageId: m1.messageId, content: 'missed 1, edited' });
  await emitAck(steady, 'message:delete', { conversationId: c, messageId: m2.messageId });
  const r = await emitAck(steady, 'reaction:add', { conversationId: c, messageId: first.messageId, emoji: '🎉' });
  await emitAck(steady, 'reaction:add', { conversationId: c, messageId: m1.messageId, emoji: '👀' });
  await emitAck(steady, 'reaction:remove', { conversationId: c, messageId: first.messageId, reactionId: r.reactionId });

  // A writer keeps going while bob rejoins, so the handover happens under traffic.
  let writing = true;
  const writer = track(await authed(A.url, token(ann)));
  const burst = (async () => {
    for (let i = 0; writing && i < 200; i++) {
      await emitAck(writer, 'message:send', { conversationId: c, content: `during ${i}` });
    }
  })();
  const during = (s) => s.received.filter((e) => e.event === 'message:new' && e.payload.content.startsWith('during')).length;
  await waitUntil(() => during(steady) >= 5, 10000, 'traffic before the rejoin');
  const back = track(await authed(B.url, token(bob)));
  const ack = await emitAck(back, 'conversation:join', { conversationId: c, sinceOffset: since });
  assert.equal(ack.success, true);
  const atJoin = during(steady);
  await waitUntil(() => during(steady) >= atJoin + 5, 10000, 'traffic after the rejoin');
  writing = false;
  await burst;
  const last = await emitAck(writer, 'message:send', { conversationId: c, content: 'the end' });
  await waitFor(steady, 'message:new', (m) => m.id === last.messageId);
  await waitFor(back, 'message:new', (m) => m.id === last.messageId);

  const expected = roomEvents(steady, since);
  const got = roomEvents(back, since);
  assert.ok(expected.length >= 8, `expected at least 8 room events, got ${expected.length}`);
  assert.deepEqual(got.map(([e, p]) => [e, p.offset]), expected.map(([e, p]) => [e, p.offset]), 'same events, same order, no gap, no duplicate');
  assert.deepEqual(got, expected, 'same payloads');
  const offsets = got.map(([, p]) => p.offset);
  assert.deepEqual(offsets, [...offsets].sort((a, b) => a - b));
  assert.equal(new Set(offsets).size, offsets.length);
  // The replay came after conversation:joined and before anything live.
  const names = back.received.map((e) => e.event);
  assert.ok(names.indexOf('conversation:joined') < names.indexOf('message:new'));
});

test('sinceOffset must be a non-negative integer; 0 replays everything', async () => {
  const c = (await api(A.url, 'POST', '/api/conversations', token(ann), { participantIds: [bob] })).body.id;
  const s = track(await authed(A.url, token(ann)));
  for (const since of [-1, 'x', 1.5]) {
    const r = await emitAck(s, 'conversation:join', { conversationId: c, sinceOffset: since });
    assert.equal(r.error.code, 'INVALID_INPUT', String(since));
  }
  const m = await emitAck(s, 'message:send', { conversationId: c, content: 'old' });
  const fresh = track(await authed(B.url, token(bob)));
  await emitAck(fresh, 'conversation:join', { conversationId: c, sinceOffset: 0 });
  const replayed = await waitFor(fresh, 'message:new', (x) => x.id === m.messageId);
  assert.equal(replayed.content, 'old');
});
