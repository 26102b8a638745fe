// Demo mode (contract 4.5): `chat serve --demo` (or CHAT_DEMO=true) adds
// `POST /api/demo/session` {name} → {userId, token}, registering the user by name; the banner says
// demo mode is on. Without it the route does not exist (404).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { deployment, startServer, api, authed, waitUntil, expectError, adminToken } from './helpers.mjs';

let demo, plain;

before(async () => {
  demo = await startServer(deployment(), { CHAT_DEMO: 'true' });
  plain = await startServer(deployment());
});
after(async () => {
  await demo?.stop();
  await plain?.stop();
});

test('a name signs in: the user is registered and the token works on REST and Socket.IO', async () => {
  await waitUntil(() => /demo mode is ON/.test(demo.output()), 5000, 'the demo banner');
  assert.doesNotMatch(plain.output(), /demo mode/);
  const r = await api(demo.url, 'POST', '/api/demo/session', undefined, { name: '  Alice Smith ' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(Object.keys(r.body), ['userId', 'token']);
  assert.equal(r.body.userId, 'demo-alice-smith');
  const me = await api(demo.url, 'GET', `/api/users/${r.body.userId}?minPosition=1`, r.body.token);
  assert.equal(me.status, 200, JSON.stringify(me.body));
  assert.equal(me.body.name, 'Alice Smith');
  assert.equal(me.body.status, 'active');
  const s = await authed(demo.url, r.body.token);
  s.disconnect();

  const again = await api(demo.url, 'POST', '/api/demo/session', undefined, { name: 'alice smith' });
  assert.equal(again.body.userId, r.body.userId, 'the same name is the same user');
  const bob = await api(demo.url, 'POST', '/api/demo/session', undefined, { name: 'Bob' });
  const conv = await api(demo.url, 'POST', '/api/conversations', bob.body.token, { participantIds: [r.body.userId] });
  assert.equal(conv.status, 201, JSON.stringify(conv.body));
});

test('bad names are refused with a code and register nobody', async () => {
  for (const body of [{ name: '' }, { name: '   ' }, { name: '日本' }, { name: 'x'.repeat(65) }, { name: 3 }, {}]) {
    expectError(await api(demo.url, 'POST', '/api/demo/session', undefined, body), 400, 'INVALID_INPUT');
  }
  expectError(await api(demo.url, 'POST', '/api/demo/session', undefined, 'not json'), 400, 'INVALID_INPUT');
});

test('without --demo the route does not exist', async () => {
  const r = await api(plain.url, 'POST', '/api/demo/session', undefined, { name: 'Alice' });
  assert.equal(r.status, 404);
  expectError(await api(plain.url, 'GET', '/api/users/demo-alice', adminToken()), 404, 'NOT_FOUND');
});
