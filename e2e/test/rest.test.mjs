// The REST routes of the first slice: shapes, statuses and error codes, and the
// read-your-writes handshake (`position` on writes, `minPosition` on reads).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { deployment, startServer, token, adminToken, jwt, api, authed, waitFor, emitAck, unique, NO_LIMITS, expectError } from './helpers.mjs';

let A, conv;
const ann = unique('ann'), ben = unique('ben'), cy = unique('cy');

before(async () => {
  A = await startServer(deployment(), NO_LIMITS);
  for (const [id, name] of [[ann, 'Ann'], [ben, 'Ben'], [cy, 'Cy']]) {
    assert.equal((await api(A.url, 'PUT', `/api/users/${id}`, adminToken(), { name })).status, 200);
  }
  conv = (await api(A.url, 'POST', '/api/conversations', token(ann), { participantIds: [ben] })).body.id;
});
after(() => A?.stop());

describe('authentication on REST', () => {
  test('missing, invalid and expired tokens are 401 with their code', async () => {
    expectError(await api(A.url, 'POST', '/api/messages', undefined, { conversationId: conv, content: 'x' }), 401, 'MISSING_TOKEN');
    expectError(await api(A.url, 'POST', '/api/messages', 'nope', { conversationId: conv, content: 'x' }), 401, 'INVALID_TOKEN');
    expectError(await api(A.url, 'GET', `/api/messages?conversationId=${conv}`, jwt({ userId: ann }, { alg: 'none' })), 401, 'INVALID_TOKEN');
    const expired = token(ann, { exp: Math.floor(Date.now() / 1000) - 1 });
    expectError(await api(A.url, 'GET', `/api/messages?conversationId=${conv}`, expired), 401, 'EXPIRED_TOKEN');
  });
});

describe('PUT /api/users/:id', () => {
  test('registers and updates, admin only', async () => {
    const id = unique('dee');
    const r = await api(A.url, 'PUT', `/api/users/${id}`, adminToken(), { name: 'Dee', avatarUrl: 'https://x/d.png' });
    assert.equal(r.status, 200);
    assert.equal(r.body.id, id);
    assert.equal(r.body.name, 'Dee');
    assert.equal(r.body.avatarUrl, 'https://x/d.png');
    assert.equal(typeof r.body.position, 'number');
    const u = await api(A.url, 'PUT', `/api/users/${id}`, adminToken(), { name: 'Dee Two' });
    assert.equal(u.body.name, 'Dee Two');
    assert.ok(u.body.position > r.body.position);
    expectError(await api(A.url, 'PUT', `/api/users/${id}`, token(ann), { name: 'Hacked' }), 403, 'UNAUTHORIZED');
  });
  test('bad input is 400 INVALID_INPUT', async () => {
    expectError(await api(A.url, 'PUT', `/api/users/${unique('x')}`, adminToken(), { name: '  ' }), 400, 'INVALID_INPUT');
    expectError(await api(A.url, 'PUT', `/api/users/${unique('x')}`, adminToken(), {}), 400, 'INVALID_INPUT');
    expectError(await api(A.url, 'PUT', `/api/users/${unique('x')}`, adminToken(), '{not json'), 400, 'INVALID_INPUT');
    expectError(await api(A.url, 'PUT', '/api/users/bad.id', adminToken(), { name: 'x' }), 400, 'INVALID_INPUT');
    expectError(await api(A.url, 'PUT', `/api/users/${'u'.repeat(129)}`, adminToken(), { name: 'x' }), 400, 'INVALID_INPUT');
  });
});

describe('POST /api/conversations', () => {
  test('creates with the caller as admin; 201 with position', async () => {
    const r = await api(A.url, 'POST', '/api/conversations', token(ben), { title: 'Hi', participantIds: [cy, cy] });
    assert.equal(r.status, 201);
    assert.match(r.body.id, /^conv_/);
    assert.equal(r.body.title, 'Hi');
    assert.deepEqual(r.body.participants.map((p) => `${p.userId}:${p.role}`).sort(), [`${ben}:admin`, `${cy}:member`].sort());
    assert.ok(!Number.isNaN(Date.parse(r.body.createdAt)));
    assert.equal(typeof r.body.position, 'number');
  });
  test('unknown participants are 404, bad bodies 400, unknown callers 403', async () => {
    expectError(await api(A.url, 'POST', '/api/conversations', token(ann), { participantIds: [unique('ghost')] }), 404, 'NOT_FOUND');
    expectError(await api(A.url, 'POST', '/api/conversations', token(ann), { participantIds: 'x' }), 400, 'INVALID_INPUT');
    expectError(await api(A.url, 'POST', '/api/conversations', token(ann), { participantIds: [], title: 't'.repeat(201) }), 400, 'INVALID_INPUT');
    expectError(await api(A.url, 'POST', '/api/conversations', token(unique('ghost')), { participantIds: [] }), 403, 'UNAUTHORIZED');
  });
});

describe('POST /api/messages and GET /api/messages', () => {
  test('a message sent over REST arrives over Socket.IO, and reads see it with minPosition', async () => {
    const s = await authed(A.url, token(ben));
    await emitAck(s, 'conversation:join', { conversationId: conv });
    const r = await api(A.url, 'POST', '/api/messages', token(ann), { conversationId: conv, content: 'via REST', tempId: 'r1' });
    assert.equal(r.status, 201);
    assert.equal(r.body.content, 'via REST');
    assert.equal(r.body.tempId, 'r1');
    assert.equal(r.body.senderId, ann);
    const live = await waitFor(s, 'message:new', (m) => m.id === r.body.id);
    const { position, ...payload } = r.body;
    assert.deepEqual(live, payload);
    const list = await api(A.url, 'GET', `/api/messages?conversationId=${conv}&minPosition=${position}`, token(ben));
    assert.equal(list.status, 200);
    assert.ok(list.body.messages.some((m) => m.id === r.body.id));
    s.disconnect();
  });

  test('pages by seq: latest, after, before, hasMore', async () => {
    const c = (await api(A.url, 'POST', '/api/conversations', token(ann), { participantIds: [ben] })).body.id;
    let position = 0;
    for (let i = 1; i <= 7; i++) {
      position = (await api(A.url, 'POST', '/api/messages', token(i % 2 ? ann : ben), { conversationId: c, content: `m${i}` })).body.position;
    }
    const page = async (q) => (await api(A.url, 'GET', `/api/messages?conversationId=${c}&minPosition=${position}&${q}`, token(ann))).body;
    const seqs = (p) => p.messages.map((m) => m.seq);
    assert.deepEqual(seqs(await page('limit=3')), [5, 6, 7]);
    assert.equal((await page('limit=3')).hasMore, true);
    assert.deepEqual(seqs(await page('limit=10')), [1, 2, 3, 4, 5, 6, 7]);
    assert.equal((await page('limit=10')).hasMore, false);
    assert.deepEqual(seqs(await page('after=2&limit=3')), [3, 4, 5]);
    assert.equal((await page('after=2&limit=3')).hasMore, true);
    assert.deepEqual(seqs(await page('after=5&limit=3')), [6, 7]);
    assert.equal((await page('after=5&limit=3')).hasMore, false);
    assert.deepEqual(seqs(await page('before=5&limit=3')), [2, 3, 4]);
    assert.equal((await page('before=5&limit=3')).hasMore, true);
    assert.deepEqual(seqs(await page('before=3&limit=3')), [1, 2]);
    assert.equal((await page('before=3&limit=3')).hasMore, false);
    assert.deepEqual(seqs(await page('after=7')), []);
    const m = (await page('limit=1')).messages[0];
    assert.deepEqual(m.sender, { id: ann, name: 'Ann' });
    assert.equal(m.content, 'm7');
  });

  test('errors: non-participant 403, unknown conversation 404, bad parameters 400', async () => {
    expectError(await api(A.url, 'GET', `/api/messages?conversationId=${conv}`, token(cy)), 403, 'NOT_PARTICIPANT');
    expectError(await api(A.url, 'POST', '/api/messages', token(cy), { conversationId: conv, content: 'x' }), 403, 'NOT_PARTICIPANT');
    expectError(await api(A.url, 'GET', '/api/messages?conversationId=conv_nope', token(cy)), 404, 'NOT_FOUND');
    expectError(await api(A.url, 'POST', '/api/messages', token(ann), { conversationId: 'conv_nope', content: 'x' }), 404, 'NOT_FOUND');
    expectError(await api(A.url, 'GET', '/api/messages', token(ann)), 400, 'INVALID_INPUT');
    for (const q of ['limit=0', 'limit=201', 'limit=x', 'after=-1', 'after=1&before=3', 'minPosition=abc']) {
      expectError(await api(A.url, 'GET', `/api/messages?conversationId=${conv}&${q}`, token(ann)), 400, 'INVALID_INPUT');
    }
    expectError(await api(A.url, 'POST', '/api/messages', token(ann), { conversationId: conv, content: '' }), 400, 'INVALID_INPUT');
    expectError(await api(A.url, 'POST', '/api/messages', token(ann), { conversationId: conv }), 400, 'INVALID_INPUT');
    expectError(await api(A.url, 'POST', '/api/messages', token(ann), 'null'), 400, 'INVALID_INPUT');
  });
});

describe('origins', () => {
  test('a foreign Origin is refused on REST and on the Socket.IO handshake', async () => {
    const r = await fetch(A.url + `/api/messages?conversationId=${conv}`, { headers: { origin: 'https://evil.example', authorization: 'Bearer ' + token(ann) } });
    assert.equal(r.status, 403);
    const p = await fetch(A.url + '/socket.io/?EIO=4&transport=polling', { headers: { origin: 'https://evil.example' } });
    assert.equal(p.status, 403);
    const ok = await fetch(A.url + '/socket.io/?EIO=4&transport=polling', { headers: { origin: 'http://localhost:5173' } });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('access-control-allow-origin'), 'http://localhost:5173');
    assert.equal(ok.headers.get('access-control-allow-credentials'), 'true');
  });
});
