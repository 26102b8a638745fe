// Legal holds (contract 4.2): holds on users and conversations are events (actor, reason),
// listed at `GET /api/holds`, and nothing under hold is destroyed: erasing a held user, or a
// user with messages in a held conversation, is 409 CONFLICT naming the hold.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { deployment, startServer, token, adminToken, api, unique, waitUntil, NO_LIMITS, expectError } from './helpers.mjs';

let dep, A, conv;
const ann = unique('ann'), carl = unique('carl'), dan = unique('dan');
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

before(async () => {
  dep = deployment();
  A = await startServer(dep, NO_LIMITS);
  for (const [id, name] of [[ann, 'Ann'], [carl, 'Carl'], [dan, 'Dan']]) {
    await api(A.url, 'PUT', `/api/users/${id}`, adminToken(), { name });
  }
  conv = (await api(A.url, 'POST', '/api/conversations', token(ann), { title: 'Held', participantIds: [dan] })).body.id;
  await api(A.url, 'POST', '/api/messages', token(dan), { conversationId: conv, content: 'evidence' });
});
after(async () => {
  await A?.stop();
});

const holds = async (minPosition) =>
  (await api(A.url, 'GET', `/api/holds${minPosition ? `?minPosition=${minPosition}` : ''}`, adminToken())).body.holds;

test('bad holds change nothing', async () => {
  expectError(await api(A.url, 'PUT', `/api/holds/users/${carl}`, token(ann), { reason: 'x' }), 403, 'UNAUTHORIZED');
  expectError(await api(A.url, 'DELETE', `/api/holds/users/${carl}`, token(ann)), 403, 'UNAUTHORIZED');
  expectError(await api(A.url, 'PUT', `/api/holds/conversations/${conv}`, token(ann), { reason: 'x' }), 403, 'UNAUTHORIZED');
  expectError(await api(A.url, 'PUT', `/api/holds/users/${carl}`, adminToken(), {}), 400, 'INVALID_INPUT');
  expectError(await api(A.url, 'PUT', `/api/holds/users/${carl}`, adminToken(), { reason: '  ' }), 400, 'INVALID_INPUT');
  expectError(await api(A.url, 'PUT', `/api/holds/users/${carl}`, adminToken(), { reason: 'x'.repeat(501) }), 400, 'INVALID_INPUT');
  expectError(await api(A.url, 'PUT', `/api/holds/users/${unique('nobody')}`, adminToken(), { reason: 'x' }), 404, 'NOT_FOUND');
  expectError(await api(A.url, 'PUT', '/api/holds/conversations/conv_nope', adminToken(), { reason: 'x' }), 404, 'NOT_FOUND');
  expectError(await api(A.url, 'GET', '/api/holds', token(ann)), 403, 'UNAUTHORIZED');
  assert.deepEqual(await holds(), []);
});

test('a held user is not erased until the hold is released', async () => {
  const held = await api(A.url, 'PUT', `/api/holds/users/${carl}`, adminToken(), { reason: 'case 7' });
  assert.equal(held.status, 200, JSON.stringify(held.body));
  assert.deepEqual({ ...held.body, position: typeof held.body.position }, { kind: 'user', id: carl, held: true, position: 'number' });
  const [listed] = await holds(held.body.position);
  assert.deepEqual({ ...listed, since: undefined }, { kind: 'user', id: carl, reason: 'case 7', actor: 'admin:e2e-admin', since: undefined, position: held.body.position });
  assert.match(listed.since, ISO);

  const refused = await api(A.url, 'POST', `/api/users/${carl}/erase`, adminToken(), {});
  expectError(refused, 409, 'CONFLICT');
  assert.match(refused.body.error.message, /legal hold: case 7/);
  assert.equal((await api(A.url, 'GET', `/api/users/${carl}`, token(ann))).body.name, 'Carl');

  const released = await api(A.url, 'DELETE', `/api/holds/users/${carl}`, adminToken());
  assert.equal(released.status, 200);
  assert.equal(released.body.held, false);
  assert.deepEqual(await holds(released.body.position), []);
  const erased = await api(A.url, 'POST', `/api/users/${carl}/erase`, adminToken(), {});
  assert.equal(erased.status, 200, JSON.stringify(erased.body));

  const audit = (await api(A.url, 'GET', '/api/audit?limit=1000', adminToken())).body.entries.filter((e) => e.aggregateId === carl);
  assert.deepEqual(audit.map((e) => [e.type, e.actor, e.data.reason]), [
    ['UserRegistered', 'admin:e2e-admin', undefined],
    ['UserHeld', 'admin:e2e-admin', 'case 7'],
    ['UserReleased', 'admin:e2e-admin', undefined],
    ['UserErased', 'admin:e2e-admin', null],
  ]);
});

test('a user with messages in a held conversation is not erased until it is released', async () => {
  const held = await api(A.url, 'PUT', `/api/holds/conversations/${conv}`, adminToken(), { reason: 'litigation' });
  assert.equal(held.status, 200, JSON.stringify(held.body));
  assert.equal(held.body.kind, 'conversation');
  const again = await api(A.url, 'PUT', `/api/holds/conversations/${conv}`, adminToken(), { reason: 'litigation' });
  assert.equal(again.status, 200, 'a second hold changes nothing');
  const listed = await holds(held.body.position);
  assert.deepEqual(listed.map((h) => [h.kind, h.id, h.reason]), [['conversation', conv, 'litigation']]);

  const refused = await api(A.url, 'POST', `/api/users/${dan}/erase`, adminToken(), {});
  expectError(refused, 409, 'CONFLICT');
  assert.ok(refused.body.error.message.includes(conv) && refused.body.error.message.includes('litigation'), refused.body.error.message);
  // Ann has no message there: she may be erased.
  const annErased = await api(A.url, 'POST', `/api/users/${ann}/erase`, adminToken(), {});
  assert.equal(annErased.status, 200, JSON.stringify(annErased.body));

  const released = await api(A.url, 'DELETE', `/api/holds/conversations/${conv}`, adminToken());
  assert.equal(released.status, 200);
  await waitUntil(async () => (await holds(released.body.position)).length === 0, 10000, 'the release');
  assert.equal((await api(A.url, 'POST', `/api/users/${dan}/erase`, adminToken(), {})).status, 200);
});
