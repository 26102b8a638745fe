// As-of reads (contract 4.3): `GET /api/messages?conversationId=&asOf=POSITION` answers as the
// conversation stood right after that log position: the messages sent by then, each with the
// content, edit, deletion and reactions of that moment, paged as the live list is. At the
// log's end it equals the live list. Participants (now) only; what was erased since reads null.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { deployment, startServer, token, adminToken, api, unique, NO_LIMITS, expectError } from './helpers.mjs';

let dep, A, conv;
const ann = unique('ann'), bob = unique('bob'), eve = unique('eve'), zed = unique('zed');
// Positions and answers of the story below, in order.
const at = {};
let m1, m2, m3, e1, r1, del;

before(async () => {
  dep = deployment();
  A = await startServer(dep, NO_LIMITS);
  for (const [id, name] of [[ann, 'Ann'], [bob, 'Bob'], [eve, 'Eve'], [zed, 'Zed']]) {
    await api(A.url, 'PUT', `/api/users/${id}`, adminToken(), { name });
  }
  const created = await api(A.url, 'POST', '/api/conversations', token(ann), { title: 'As of', participantIds: [bob, eve] });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  conv = created.body.id;
  const ok = (r, status = 200) => {
    assert.equal(r.status, status, JSON.stringify(r.body));
    return r.body;
  };
  const send = async (who, content) => ok(await api(A.url, 'POST', '/api/messages', token(who), { conversationId: conv, content }), 201);
  m1 = await send(ann, 'one');
  at.m1 = m1.position;
  m2 = await send(bob, 'two');
  at.m2 = m2.position;
  e1 = ok(await api(A.url, 'PATCH', `/api/messages/${m1.id}`, token(ann), { conversationId: conv, content: 'one, edited' }));
  at.e1 = e1.position;
  r1 = ok(await api(A.url, 'POST', `/api/messages/${m2.id}/reactions`, token(ann), { conversationId: conv, emoji: '👍' }), 201);
  at.r1 = r1.position;
  m3 = await send(eve, 'three, by Eve');
  at.m3 = m3.position;
  del = ok(await api(A.url, 'DELETE', `/api/messages/${m2.id}?conversationId=${conv}`, token(bob)));
  at.del = del.position;
  const erased = ok(await api(A.url, 'POST', `/api/users/${eve}/erase`, adminToken(), {}));
  at.end = erased.position;
  // As-of reads check participation on the read model: let it catch up with the story first.
  ok(await api(A.url, 'GET', `/api/messages?conversationId=${conv}&minPosition=${at.end}`, token(bob)));
});
after(async () => {
  await A?.stop();
});

const asOf = (position, query = '', who = bob) =>
  api(A.url, 'GET', `/api/messages?conversationId=${conv}&asOf=${position}${query}`, token(who));
const page = async (position, query) => {
  const r = await asOf(position, query);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
};
const brief = (p) => p.messages.map((m) => [m.id, m.content, m.editedAt, m.deletedAt, m.reactions.map((x) => x.emoji)]);

test('each position reads the messages sent by then, with that moment\'s content, edits, deletion and reactions', async () => {
  assert.deepEqual(await page(0), { messages: [], hasMore: false });
  assert.deepEqual(brief(await page(at.m1)), [[m1.id, 'one', null, null, []]]);
  assert.deepEqual(brief(await page(at.m2)), [[m1.id, 'one', null, null, []], [m2.id, 'two', null, null, []]]);
  assert.deepEqual(brief(await page(at.e1)), [[m1.id, 'one, edited', e1.editedAt, null, []], [m2.id, 'two', null, null, []]]);
  const reacted = await page(at.r1);
  assert.deepEqual(brief(reacted), [[m1.id, 'one, edited', e1.editedAt, null, []], [m2.id, 'two', null, null, ['👍']]]);
  assert.deepEqual(reacted.messages[1].reactions, [{ id: r1.id, emoji: '👍', userId: ann, createdAt: reacted.messages[1].reactions[0].createdAt }]);
  const deleted = await page(at.del);
  assert.deepEqual(brief(deleted).slice(1, 2), [[m2.id, null, null, del.deletedAt, ['👍']]]);

  // Eve's message, as sent, before her erasure: it reads erased now, as everywhere.
  const third = (await page(at.m3)).messages[2];
  assert.deepEqual([third.id, third.content, third.erased, third.sender.name], [m3.id, null, true, null]);
  const first = (await page(at.m1)).messages[0];
  assert.deepEqual(
    [first.seq, first.offset, first.createdAt, first.senderId, first.sender, first.conversationId],
    [m1.seq, m1.offset, m1.createdAt, ann, { id: ann, name: 'Ann' }, conv],
  );
});

test('at the end of the log it equals the live list, page for page', async () => {
  const live = async (query) => (await api(A.url, 'GET', `/api/messages?conversationId=${conv}&minPosition=${at.end}${query}`, token(bob))).body;
  for (const query of ['', '&limit=1', '&limit=2', '&after=1', '&after=1&limit=1', '&before=3', '&before=3&limit=1', '&after=3']) {
    assert.deepEqual(await page(at.end, query), await live(query), query);
  }
});

test('paging as of a position stops at the messages sent by then', async () => {
  assert.deepEqual(await page(at.r1, '&limit=1').then((p) => [p.messages.map((m) => m.id), p.hasMore]), [[m2.id], true]);
  assert.deepEqual(await page(at.r1, '&after=1').then((p) => [p.messages.map((m) => m.id), p.hasMore]), [[m2.id], false]);
  assert.deepEqual(await page(at.m3, '&after=0&limit=2').then((p) => [p.messages.map((m) => m.id), p.hasMore]), [[m1.id, m2.id], true]);
  assert.deepEqual(await page(at.m3, '&before=3&limit=1').then((p) => [p.messages.map((m) => m.id), p.hasMore]), [[m2.id], true]);
  assert.deepEqual(await page(at.m2, '&after=2'), { messages: [], hasMore: false });
});

test('bad as-of reads get a clear error with a code', async () => {
  for (const bad of ['abc', '-1', '1.5', '']) {
    expectError(await asOf(bad), 400, 'INVALID_INPUT', 'asOf');
  }
  const r = await asOf(at.end + 1000);
  expectError(r, 400, 'INVALID_INPUT', 'past the end');
  expectError(await asOf(at.m1, '', zed), 403, 'NOT_PARTICIPANT');
  expectError(await api(A.url, 'GET', `/api/messages?conversationId=conv_unknown&asOf=${at.m1}`, token(bob)), 404, 'NOT_FOUND');
  expectError(await asOf(at.m1, '&limit=0'), 400, 'INVALID_INPUT', 'limit');
  expectError(await asOf(at.m1, '&after=1&before=2'), 400, 'INVALID_INPUT');
  expectError(await api(A.url, 'GET', `/api/messages?conversationId=${conv}&asOf=${at.m1}`), 401, 'MISSING_TOKEN');
});
