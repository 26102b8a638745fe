// Threads, mentions and pins (contract 4.4), with the stock socket.io-client and REST, across two
// nodes (one on the embedded backend): replies carry `parentId`, the room gets `thread:updated`
// after each, the parent reads `thread`, `parentId=` pages a thread; `mentions` reach the
// mentioned user's sockets on any node whether joined or not, `GET /api/mentions` lists them
// with `read`, `unreadMentions` counts them; `message:pin` / `message:unpin` are events in the
// log, pushed to the room and listed on the conversation. Catch-up with `sinceOffset` carries
// replies, thread updates and pins in order; a rebuild from the log reads the same.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  deployment, startServer, startNodes, token, adminToken, api, authed, waitFor, waitUntil, emitAck,
  unique, NO_LIMITS, expectError, history,
} from './helpers.mjs';

const run = promisify(execFile);
let dep, A, B;
const ann = unique('ann'), bob = unique('bob'), cat = unique('cat'), eve = unique('eve');
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

before(async () => {
  dep = deployment();
  [A, B] = await startNodes(dep, NO_LIMITS);
  for (const [id, name] of [[ann, 'Ann'], [bob, 'Bob'], [cat, 'Cat'], [eve, 'Eve']]) {
    const r = await api(A.url, 'PUT', `/api/users/${id}`, adminToken(), { name });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
});
after(async () => {
  await B?.stop();
  await A?.stop();
});

const newConversation = async (others = [bob, cat]) => {
  const r = await api(A.url, 'POST', '/api/conversations', token(ann), { title: 'Threads', participantIds: others });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.id;
};
const post = async (conv, who, content, extra = {}) => {
  const r = await api(A.url, 'POST', '/api/messages', token(who), { conversationId: conv, content, ...extra });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
};
const joined = async (url, who, conv) => {
  const s = await authed(url, token(who));
  const ack = await emitAck(s, 'conversation:join', { conversationId: conv });
  assert.equal(ack.success, true, JSON.stringify(ack));
  return s;
};
const read = async (conv, who, query = '', minPosition) => {
  const mp = minPosition ? `&minPosition=${minPosition}` : '';
  const r = await api(B.url, 'GET', `/api/messages?conversationId=${conv}${query}${mp}`, token(who));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
};
const details = async (conv, who = ann, minPosition) => {
  const r = await api(B.url, 'GET', `/api/conversations/${conv}${minPosition ? `?minPosition=${minPosition}` : ''}`, token(who));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
};
const roomEvents = (s, names) => s.received.filter((e) => names.includes(e.event));

test('a reply is a message of the conversation with parentId; the room gets thread:updated after it; the parent reads thread', async () => {
  const conv = await newConversation();
  const annA = await joined(A.url, ann, conv);
  const bobB = await joined(B.url, bob, conv);
  try {
    const parent = await emitAck(annA, 'message:send', { conversationId: conv, content: 'Lunch on Friday?' });
    assert.equal(parent.success, true, JSON.stringify(parent));
    const reply = await emitAck(bobB, 'message:send', { conversationId: conv, content: 'Yes!', parentId: parent.messageId, tempId: 'r1' });
    assert.deepEqual(Object.keys(reply).sort(), ['messageId', 'seq', 'success']);
    assert.equal(reply.seq, 2, 'a reply takes the next seq of the conversation');
    const updated = await waitFor(annA, 'thread:updated');
    assert.deepEqual(Object.keys(updated).sort(), ['conversationId', 'lastReplyAt', 'messageId', 'participantIds', 'replyCount']);
    assert.deepEqual({ ...updated, lastReplyAt: 'T' }, {
      conversationId: conv, messageId: parent.messageId, replyCount: 1, lastReplyAt: 'T', participantIds: [bob],
    });
    assert.match(updated.lastReplyAt, ISO);
    const events = roomEvents(annA, ['message:new', 'thread:updated']).map((e) => e.event);
    assert.deepEqual(events, ['message:new', 'message:new', 'thread:updated'], 'thread:updated follows its reply');
    const newReply = annA.received.filter((e) => e.event === 'message:new')[1].payload;
    assert.equal(newReply.parentId, parent.messageId);
    assert.equal(newReply.id, reply.messageId);
    assert.equal(newReply.createdAt, updated.lastReplyAt);
    assert.equal(typeof newReply.offset, 'number');
    assert.equal(annA.received.filter((e) => e.event === 'message:new')[0].payload.parentId, undefined, 'a top-level message has no parentId');

    // Over REST, from the other node; a second replier joins the thread's participants.
    const second = await post(conv, cat, 'Count me in', { parentId: parent.messageId });
    assert.equal(second.parentId, parent.messageId);
    const third = await post(conv, bob, 'Noon?', { parentId: parent.messageId });
    const last = await waitFor(bobB, 'thread:updated', (p) => p.replyCount === 3);
    assert.deepEqual(last.participantIds, [bob, cat], 'in the order of their first reply');
    assert.equal(last.lastReplyAt, third.createdAt);

    const all = await read(conv, ann, '', third.position);
    assert.deepEqual(all.messages.map((m) => [m.seq, m.parentId ?? null]), [
      [1, null], [2, parent.messageId], [3, parent.messageId], [4, parent.messageId],
    ]);
    assert.deepEqual(all.messages[0].thread, { replyCount: 3, lastReplyAt: third.createdAt, participantIds: [bob, cat] });
    assert.equal(all.messages[1].thread, undefined, 'a reply has no thread of its own');

    // A reply's tempId retry creates nothing new.
    const again = await emitAck(bobB, 'message:send', { conversationId: conv, content: 'Yes!', parentId: parent.messageId, tempId: 'r1' });
    assert.equal(again.messageId, reply.messageId);
    assert.equal((await read(conv, ann, '&limit=200')).messages.length, 4);
  } finally {
    annA.disconnect();
    bobB.disconnect();
  }
});

test('parentId= pages a thread like the main list; deleting the parent keeps its replies', async () => {
  const conv = await newConversation();
  const parent = await post(conv, ann, 'Agenda');
  await post(conv, bob, 'unrelated');
  const replies = [];
  for (let i = 0; i < 5; i++) replies.push(await post(conv, i % 2 ? cat : bob, `point ${i}`, { parentId: parent.id }));
  const latest = await read(conv, ann, `&parentId=${parent.id}&limit=2`, replies[4].position);
  assert.deepEqual(latest.messages.map((m) => m.id), [replies[3].id, replies[4].id]);
  assert.equal(latest.hasMore, true);
  const first = await read(conv, ann, `&parentId=${parent.id}&limit=3&after=0`);
  assert.deepEqual(first.messages.map((m) => m.id), replies.slice(0, 3).map((r) => r.id));
  assert.equal(first.hasMore, true);
  const rest = await read(conv, ann, `&parentId=${parent.id}&after=${first.messages[2].seq}`);
  assert.deepEqual(rest.messages.map((m) => m.id), replies.slice(3).map((r) => r.id));
  assert.equal(rest.hasMore, false);
  const before = await read(conv, ann, `&parentId=${parent.id}&before=${replies[2].seq}`);
  assert.deepEqual(before.messages.map((m) => m.id), replies.slice(0, 2).map((r) => r.id));

  const d = await api(A.url, 'DELETE', `/api/messages/${parent.id}?conversationId=${conv}`, token(ann));
  assert.equal(d.status, 200, JSON.stringify(d.body));
  const after = await read(conv, ann, '', d.body.position);
  const p = after.messages.find((m) => m.id === parent.id);
  assert.equal(p.content, null);
  assert.equal(typeof p.deletedAt, 'string', 'the parent reads deleted');
  assert.equal(p.thread.replyCount, 5, 'its thread stays');
  assert.deepEqual((await read(conv, ann, `&parentId=${parent.id}`)).messages.map((m) => m.id), replies.map((r) => r.id));
});

test('bad replies are refused with a code and change nothing', async () => {
  const conv = await newConversation();
  const other = await newConversation([bob]);
  const parent = await post(conv, ann, 'parent');
  const reply = await post(conv, bob, 'reply', { parentId: parent.id });
  const elsewhere = await post(other, ann, 'elsewhere');
  const gone = await post(conv, ann, 'gone');
  await api(A.url, 'DELETE', `/api/messages/${gone.id}?conversationId=${conv}`, token(ann));
  const send = (parentId) => api(A.url, 'POST', '/api/messages', token(bob), { conversationId: conv, content: 'x', parentId });
  expectError(await send(reply.id), 400, 'INVALID_INPUT', 'one level');
  expectError(await send(elsewhere.id), 404, 'NOT_FOUND', 'Parent');
  expectError(await send(gone.id), 404, 'NOT_FOUND', 'Parent');
  expectError(await send('msg_unknown'), 404, 'NOT_FOUND', 'Parent');
  expectError(await send('bad id'), 400, 'INVALID_INPUT');
  expectError(await send(42), 400, 'INVALID_INPUT');
  const s = await authed(B.url, token(bob));
  try {
    const ack = await emitAck(s, 'message:send', { conversationId: conv, content: 'x', parentId: reply.id });
    assert.deepEqual(ack, { success: false, error: { message: ack.error.message, code: 'INVALID_INPUT' } });
  } finally {
    s.disconnect();
  }
  expectError(await api(B.url, 'GET', `/api/messages?conversationId=${conv}&parentId=${elsewhere.id}`, token(ann)), 404, 'NOT_FOUND');
  expectError(await api(B.url, 'GET', `/api/messages?conversationId=${conv}&parentId=bad%20id`, token(ann)), 400, 'INVALID_INPUT');
  expectError(await api(B.url, 'GET', `/api/messages?conversationId=${conv}&parentId=${parent.id}&asOf=1`, token(ann)), 400, 'INVALID_INPUT');
  const all = await read(conv, ann);
  assert.deepEqual(all.messages.map((m) => m.seq), [1, 2, 3], 'nothing was appended');
  assert.equal(all.messages[0].thread.replyCount, 1);
});

test('mention:new reaches every socket of a mentioned user on any node, joined or not; GET /api/mentions and unreadMentions', async () => {
  const conv = await newConversation();
  const catB = await authed(B.url, token(cat)); // never joins the room
  const catA = await authed(A.url, token(cat));
  const annA = await authed(A.url, token(ann));
  try {
    const ack = await emitAck(annA, 'message:send', { conversationId: conv, content: 'ping @cat', mentions: [cat, bob, cat] });
    assert.equal(ack.success, true, JSON.stringify(ack));
    for (const s of [catB, catA]) {
      const m = await waitFor(s, 'mention:new');
      assert.deepEqual(Object.keys(m).sort(), ['content', 'conversationId', 'createdAt', 'messageId', 'senderId']);
      assert.deepEqual({ ...m, createdAt: 'T' }, { conversationId: conv, messageId: ack.messageId, senderId: ann, content: 'ping @cat', createdAt: 'T' });
      assert.match(m.createdAt, ISO);
    }
    assert.equal(catB.received.filter((e) => e.event === 'mention:new').length, 1, 'once per socket');
    assert.equal(catB.received.filter((e) => e.event === 'message:new').length, 0, 'an unjoined socket gets no room event');
    assert.equal(annA.received.filter((e) => e.event === 'mention:new').length, 0, 'the sender is not mentioned');

    const second = await post(conv, bob, 'and again @cat', { mentions: [cat] });
    await waitFor(catB, 'mention:new', (m) => m.messageId === second.id);
    const page = await api(B.url, 'GET', `/api/mentions?minPosition=${second.position}`, token(cat));
    assert.equal(page.status, 200, JSON.stringify(page.body));
    assert.deepEqual(Object.keys(page.body), ['mentions', 'hasMore']);
    assert.deepEqual(page.body.mentions.map((m) => [m.messageId, m.senderId, m.content, m.read]), [
      [ack.messageId, ann, 'ping @cat', false],
      [second.id, bob, 'and again @cat', false],
    ], 'newest last');
    assert.deepEqual(Object.keys(page.body.mentions[0]).sort(), ['content', 'conversationId', 'createdAt', 'messageId', 'position', 'read', 'senderId']);
    const one = await api(B.url, 'GET', '/api/mentions?limit=1', token(cat));
    assert.deepEqual(one.body.mentions.map((m) => m.messageId), [second.id]);
    assert.equal(one.body.hasMore, true);
    const after = await api(B.url, 'GET', `/api/mentions?after=${page.body.mentions[0].position}`, token(cat));
    assert.deepEqual(after.body.mentions.map((m) => m.messageId), [second.id]);
    assert.equal(after.body.hasMore, false);

    const list = async (who, minPosition) => {
      const r = await api(B.url, 'GET', `/api/conversations${minPosition ? `?minPosition=${minPosition}` : ''}`, token(who));
      return r.body.conversations.find((c) => c.id === conv);
    };
    assert.equal((await list(cat)).unreadMentions, 2);
    assert.equal((await list(bob)).unreadMentions, 1);
    assert.equal((await list(ann)).unreadMentions, 0);
    const marked = await api(A.url, 'POST', '/api/messages/read', token(cat), { conversationId: conv, messageIds: [ack.messageId] });
    assert.equal(marked.status, 200, JSON.stringify(marked.body));
    assert.equal((await list(cat, marked.body.position)).unreadMentions, 1);
    const reread = await api(B.url, 'GET', '/api/mentions', token(cat));
    assert.deepEqual(reread.body.mentions.map((m) => m.read), [true, false]);

    // Removed from the conversation: the mentions stay in history but are no longer listed.
    const removed = await api(A.url, 'DELETE', `/api/conversations/${conv}/participants/${cat}`, token(ann));
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    const gone = await api(B.url, 'GET', `/api/mentions?minPosition=${removed.body.position}`, token(cat));
    assert.deepEqual(gone.body, { mentions: [], hasMore: false });
    const kept = await read(conv, ann);
    assert.ok(kept.messages.some((m) => m.id === ack.messageId), 'the mentioning message stays');
  } finally {
    for (const s of [catA, catB, annA]) s.disconnect();
  }
});

test('mentions must be participants; bad mentions are refused and change nothing', async () => {
  const conv = await newConversation([bob]);
  const send = (mentions) => api(A.url, 'POST', '/api/messages', token(ann), { conversationId: conv, content: 'hi', mentions });
  expectError(await send([bob, eve]), 400, 'INVALID_INPUT', eve);
  expectError(await send([cat]), 400, 'INVALID_INPUT', 'participants');
  expectError(await send(['bad id']), 400, 'INVALID_INPUT');
  expectError(await send(bob), 400, 'INVALID_INPUT');
  expectError(await send(Array.from({ length: 51 }, (_, i) => `u${i}`)), 400, 'INVALID_INPUT', '50');
  expectError(await api(B.url, 'GET', '/api/mentions?limit=0', token(bob)), 400, 'INVALID_INPUT', 'limit');
  expectError(await api(B.url, 'GET', '/api/mentions?limit=201', token(bob)), 400, 'INVALID_INPUT', 'limit');
  expectError(await api(B.url, 'GET', '/api/mentions?after=-1', token(bob)), 400, 'INVALID_INPUT', 'after');
  expectError(await api(B.url, 'GET', '/api/mentions'), 401, 'MISSING_TOKEN');
  assert.deepEqual((await read(conv, ann)).messages, [], 'nothing was appended');
});

test('pins: the author or a conversation admin pins and unpins; the room gets message:pinned / message:unpinned; details list pinned, oldest first', async () => {
  const conv = await newConversation();
  const annA = await joined(A.url, ann, conv);
  const bobB = await joined(B.url, bob, conv);
  try {
    const mine = await post(conv, bob, 'the plan');
    const yours = await post(conv, cat, 'the budget');
    const ack = await emitAck(bobB, 'message:pin', { conversationId: conv, messageId: mine.id });
    assert.deepEqual(Object.keys(ack).sort(), ['at', 'by', 'conversationId', 'messageId', 'pinned', 'position', 'success']);
    assert.deepEqual({ ...ack, at: 'T', position: 0 }, { success: true, conversationId: conv, messageId: mine.id, pinned: true, by: bob, at: 'T', position: 0 });
    const pushed = await waitFor(annA, 'message:pinned');
    assert.deepEqual(Object.keys(pushed).sort(), ['at', 'by', 'conversationId', 'messageId', 'offset']);
    assert.deepEqual({ ...pushed, offset: 0 }, { conversationId: conv, messageId: mine.id, by: bob, at: ack.at, offset: 0 });
    const lastNew = annA.received.filter((e) => e.event === 'message:new').at(-1).payload;
    assert.ok(pushed.offset > lastNew.offset, 'a pin has its own offset, after the messages before it');

    // A member cannot pin someone else's message; a conversation admin can.
    const refused = await emitAck(bobB, 'message:pin', { conversationId: conv, messageId: yours.id });
    assert.equal(refused.success, false);
    assert.equal(refused.error.code, 'UNAUTHORIZED');
    const admin = await api(A.url, 'POST', `/api/messages/${yours.id}/pin?conversationId=${conv}`, token(ann));
    assert.equal(admin.status, 200, JSON.stringify(admin.body));
    assert.deepEqual({ ...admin.body, at: 'T', position: 0 }, { conversationId: conv, messageId: yours.id, pinned: true, by: ann, at: 'T', position: 0 });
    expectError(await api(A.url, 'POST', `/api/messages/${yours.id}/pin?conversationId=${conv}`, token(ann)), 409, 'CONFLICT', 'already pinned');
    assert.deepEqual((await details(conv, cat, admin.body.position)).pinned, [mine.id, yours.id]);

    const unpinned = await api(A.url, 'DELETE', `/api/messages/${mine.id}/pin?conversationId=${conv}`, token(ann));
    assert.equal(unpinned.status, 200, JSON.stringify(unpinned.body));
    assert.equal(unpinned.body.pinned, false);
    const off = await waitFor(bobB, 'message:unpinned');
    assert.deepEqual({ ...off, offset: 0 }, { conversationId: conv, messageId: mine.id, by: ann, at: unpinned.body.at, offset: 0 });
    expectError(await api(A.url, 'DELETE', `/api/messages/${mine.id}/pin`, token(ann)), 404, 'NOT_FOUND', 'not pinned');
    assert.deepEqual((await details(conv, ann, unpinned.body.position)).pinned, [yours.id]);

    // Deleting a pinned message drops its pin.
    const del = await api(A.url, 'DELETE', `/api/messages/${yours.id}?conversationId=${conv}`, token(cat));
    assert.equal(del.status, 200, JSON.stringify(del.body));
    assert.deepEqual((await details(conv, ann, del.body.position)).pinned, []);
    expectError(await api(A.url, 'POST', `/api/messages/${yours.id}/pin`, token(ann)), 404, 'NOT_FOUND');
    expectError(await api(A.url, 'POST', `/api/messages/${mine.id}/pin`, token(eve)), 403, 'NOT_PARTICIPANT');
    expectError(await api(A.url, 'POST', '/api/messages/bad%20id/pin', token(ann)), 400, 'INVALID_INPUT');
    const bad = await emitAck(bobB, 'message:unpin', { conversationId: conv });
    assert.equal(bad.error.code, 'INVALID_INPUT');
  } finally {
    annA.disconnect();
    bobB.disconnect();
  }
});

test('catch-up with sinceOffset carries replies, thread updates and pins in order', async () => {
  const conv = await newConversation();
  const parent = await post(conv, ann, 'before the outage');
  const lastOffset = parent.offset;

  const reply = await post(conv, cat, 'while bob was away', { parentId: parent.id });
  const pin = await api(A.url, 'POST', `/api/messages/${parent.id}/pin?conversationId=${conv}`, token(ann));
  assert.equal(pin.status, 200, JSON.stringify(pin.body));
  const other = await post(conv, ann, 'and one more');

  const back = await authed(B.url, token(bob));
  try {
    const ack = await emitAck(back, 'conversation:join', { conversationId: conv, sinceOffset: lastOffset });
    assert.equal(ack.success, true, JSON.stringify(ack));
    await waitFor(back, 'message:new', (m) => m.id === other.id);
    const got = roomEvents(back, ['message:new', 'thread:updated', 'message:pinned']).map((e) => [e.event, e.payload.id ?? e.payload.messageId]);
    assert.deepEqual(got, [
      ['message:new', reply.id],
      ['thread:updated', parent.id],
      ['message:pinned', parent.id],
      ['message:new', other.id],
    ]);
    const thread = back.received.find((e) => e.event === 'thread:updated').payload;
    assert.deepEqual(thread, { conversationId: conv, messageId: parent.id, replyCount: 1, lastReplyAt: reply.createdAt, participantIds: [cat] });
    const offsets = back.received.filter((e) => e.payload?.offset !== undefined && e.payload?.conversationId === conv).map((e) => e.payload.offset);
    assert.deepEqual(offsets, [...offsets].sort((a, b) => a - b), 'offsets increase');
    assert.equal(new Set(offsets).size, offsets.length, 'no offset twice');
  } finally {
    back.disconnect();
  }
});

test('chat projections rebuild chat reads the same threads, mentions and pins', async () => {
  const conv = await newConversation();
  const parent = await post(conv, ann, 'root', { mentions: [bob] });
  const r1 = await post(conv, bob, 'r1', { parentId: parent.id, mentions: [cat, ann] });
  await post(conv, cat, 'r2', { parentId: parent.id });
  const pinned = await api(A.url, 'POST', `/api/messages/${r1.id}/pin?conversationId=${conv}`, token(bob));
  const read1 = await api(A.url, 'POST', '/api/messages/read', token(cat), { conversationId: conv, messageIds: [r1.id] });
  const pos = read1.body.position;
  assert.equal(pinned.status, 200);
  const snapshot = async (minPosition) => {
    const out = { details: await details(conv, ann, minPosition) };
    out.messages = (await read(conv, ann)).messages;
    out.thread = (await read(conv, ann, `&parentId=${parent.id}`)).messages;
    for (const who of [ann, bob, cat]) {
      out[who] = (await api(B.url, 'GET', '/api/mentions', token(who))).body;
      out[who + 'List'] = (await api(B.url, 'GET', '/api/conversations', token(who))).body.conversations.find((c) => c.id === conv);
    }
    return out;
  };
  const before = await snapshot(pos);
  assert.equal(before.messages[0].thread.replyCount, 2);
  assert.deepEqual(before.details.pinned, [r1.id]);
  assert.deepEqual(before[cat].mentions.map((m) => [m.messageId, m.read]), [[r1.id, true]]);
  assert.equal(before[bob + 'List'].unreadMentions, 1);

  await B.stop();
  await A.stop();
  const env = { ...process.env, ...dep, RUST_LOG: 'warn' };
  const rebuilt = await run(process.env.CHAT_BIN, ['projections', 'rebuild', 'chat'], { env });
  assert.match(rebuilt.stdout, /rebuilt up to position \d+/);
  [A, B] = await startNodes(dep, NO_LIMITS);
  assert.deepEqual(await snapshot(), before);
});
