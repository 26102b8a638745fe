// The operator API behind the /ops page: GET /api/ops/status and POST /api/ops/audit/verify,
// admin only, on whichever backend the suite runs (two nodes on NATS + Postgres).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { EMBEDDED, deployment, startNodes, token, adminToken, api, authed, emitAck, expectError, waitUntil, unique } from './helpers.mjs';

const dep = deployment();
const [A, B] = await startNodes(dep);
const sockets = [];
after(async () => {
  for (const s of sockets) s.disconnect();
  await A.stop();
  await B.stop();
});

const ann = unique('ann');
assert.equal((await api(A.url, 'PUT', `/api/users/${ann}`, adminToken(), { name: 'Ann' })).status, 200);
const conv = (await api(A.url, 'POST', '/api/conversations', token(ann), { participantIds: [] })).body.id;

test('only an admin reads the status or runs a verify', async () => {
  expectError(await api(A.url, 'GET', '/api/ops/status'), 401, 'MISSING_TOKEN');
  expectError(await api(A.url, 'GET', '/api/ops/status', token(ann)), 403, 'UNAUTHORIZED');
  expectError(await api(A.url, 'POST', '/api/ops/audit/verify', token(ann)), 403, 'UNAUTHORIZED');
});

test('status: the log position, every projection caught up, the nodes and this node\'s sockets', async () => {
  const a = await authed(A.url, token(ann));
  sockets.push(a);
  await emitAck(a, 'conversation:join', { conversationId: conv });
  const sent = await emitAck(a, 'message:send', { conversationId: conv, content: 'hello' });
  assert.equal(sent.success, true);
  let s;
  await waitUntil(async () => {
    s = (await api(A.url, 'GET', '/api/ops/status', adminToken())).body;
    return s.projections.every((p) => p.lag === 0) && s.nodes.length === (EMBEDDED ? 1 : 2);
  }, 20000, 'projections caught up and every node known');
  assert.deepEqual(Object.keys(s), ['log', 'readStore', 'projections', 'nodes']);
  assert.equal(s.log.backend, EMBEDDED ? 'embedded' : 'jetstream');
  assert.equal(s.readStore.backend, EMBEDDED ? 'sqlite' : 'postgres');
  assert.ok(s.log.position >= 3, 'user, conversation and message are in the log');
  assert.ok(s.projections.some((p) => p.name === 'chat'));
  for (const p of s.projections) assert.equal(p.checkpoint, s.log.position);
  assert.deepEqual(s.nodes[0], { id: s.nodes[0].id, thisNode: true, users: 1, sockets: 1 });
  if (!EMBEDDED) assert.deepEqual(s.nodes[1], { id: s.nodes[1].id, thisNode: false, users: 0 });
});

test('audit verify: every chain intact, with what was walked', async () => {
  const r = await api(A.url, 'POST', '/api/ops/audit/verify', adminToken());
  assert.equal(r.status, 200);
  const { tookMs, ...rest } = r.body;
  assert.equal(typeof tookMs, 'number');
  const last = (await api(A.url, 'GET', '/api/ops/status', adminToken())).body.log.position;
  assert.equal(rest.intact, true);
  assert.equal(rest.commits, last);
  assert.ok(rest.events >= rest.commits);
  assert.ok(rest.aggregates >= 2);
});
