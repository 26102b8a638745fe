// Edit history (contract 4.3): `GET /api/messages/:id/history` reads every version of a
// message from the log, oldest first, with who wrote it, when and at which position, and its
// deletion; sealed content reads `null` once erased. Participants only.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { deployment, startServer, token, adminToken, api, unique, NO_LIMITS, expectError } from './helpers.mjs';

let dep, A, conv, other;
const ann = unique('ann'), bob = unique('bob'), zed = unique('zed');
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

before(async () => {
  dep = deployment();
  A = await startServer(dep, NO_LIMITS);
  for (const [id, name] of [[ann, 'Ann'], [bob, 'Bob'], [zed, 'Zed']]) {
    await api(A.url, 'PUT', `/api/users/${id}`, adminToken(), { name });
  }
  conv = (await api(A.url, 'POST', '/api/conversations', token(ann), { title: 'History', participantIds: [bob] })).body.id;
  other = (await api(A.url, 'POST', '/api/conversations', token(zed), { title: 'Elsewhere', participantIds: [ann] })).body.id;
});
after(async () => {
  await A?.stop();
});

const send = async (who, content) => {
  const r = await api(A.url, 'POST', '/api/messages', token(who), { conversationId: conv, content });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
};
const edit = async (who, id, content) => {
  const r = await api(A.url, 'PATCH', `/api/messages/${id}`, token(who), { conversationId: conv, content });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
};
const history = (id, who = bob, query = `conversationId=${conv}`) => api(A.url, 'GET', `/api/messages/${id}/history?${query}`, token(who));

test('every version oldest first, with author, time and position, then the deletion', async () => {
  const m = await send(ann, 'first');
  await send(bob, 'in between');
  const e1 = await edit(ann, m.id, 'second');
  await send(bob, 'more in between');
  const e2 = await edit(ann, m.id, 'third');

  const r = await history(m.id);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(Object.keys(r.body), ['versions', 'deletedAt', 'deletedBy']);
  assert.deepEqual(r.body.versions.map((v) => [v.content, v.by, v.erased, v.expired]), [
    ['first', ann, undefined, undefined],
    ['second', ann, undefined, undefined],
    ['third', ann, undefined, undefined],
  ]);
  assert.deepEqual(r.body.versions.map((v) => v.at), [m.createdAt, e1.editedAt, e2.editedAt]);
  assert.deepEqual(r.body.versions.map((v) => v.position), [m.position, e1.position, e2.position]);
  for (const v of r.body.versions) {
    assert.match(v.at, ISO);
    assert.deepEqual(Object.keys(v), ['content', 'at', 'by', 'position']);
  }
  assert.deepEqual([r.body.deletedAt, r.body.deletedBy], [null, null]);

  // Without conversationId the read models find the conversation.
  const found = await history(m.id, bob, `minPosition=${e2.position}`);
  assert.deepEqual(found.body, r.body);

  const del = await api(A.url, 'DELETE', `/api/messages/${m.id}`, token(ann), { conversationId: conv });
  assert.equal(del.status, 200, JSON.stringify(del.body));
  const after = (await history(m.id)).body;
  assert.deepEqual(after.versions, r.body.versions, 'the versions stay in the log');
  assert.equal(after.deletedAt, del.body.deletedAt);
  assert.equal(after.deletedBy, ann);
});

test('bad requests change nothing', async () => {
  const m = await send(ann, 'private');
  expectError(await history(m.id, zed), 403, 'NOT_PARTICIPANT');
  expectError(await history('msg_01unknownunknownunknownun'), 404, 'NOT_FOUND');
  expectError(await history(m.id, bob, `conversationId=${other}`), 403, 'NOT_PARTICIPANT');
  expectError(await history(m.id, zed, `conversationId=${other}`), 404, 'NOT_FOUND');
  expectError(await history('no%20such'), 400, 'INVALID_INPUT');
  expectError(await history(m.id, bob, 'conversationId=no%20such'), 400, 'INVALID_INPUT');
  expectError(await history(m.id, bob, 'conversationId=conv_nope'), 404, 'NOT_FOUND');
  expectError(await api(A.url, 'GET', `/api/messages/${m.id}/history?conversationId=${conv}`), 401, 'MISSING_TOKEN');
  assert.equal((await history(m.id)).body.versions.length, 1);
});

test('an erased author\'s versions read null', async () => {
  const eve = unique('eve');
  await api(A.url, 'PUT', `/api/users/${eve}`, adminToken(), { name: 'Eve' });
  await api(A.url, 'POST', `/api/conversations/${conv}/participants`, token(ann), { userId: eve });
  const r = await api(A.url, 'POST', '/api/messages', token(eve), { conversationId: conv, content: 'mine' });
  await api(A.url, 'PATCH', `/api/messages/${r.body.id}`, token(eve), { conversationId: conv, content: 'still mine' });
  assert.equal((await api(A.url, 'POST', `/api/users/${eve}/erase`, adminToken(), {})).status, 200);
  const h = (await history(r.body.id)).body;
  assert.deepEqual(h.versions.map((v) => [v.content, v.erased, v.by]), [[null, true, eve], [null, true, eve]]);
});
