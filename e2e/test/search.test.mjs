// Search (contract 4.3): `GET /api/search?q=&conversationId=&limit=` finds messages holding
// every word of `q`, stemmed (English), best first, with the matched words marked; only in
// conversations the caller takes part in now; never a deleted, erased or expired message; an
// edit by its new words only. It is the `search` projection: `chat projections rebuild search`
// builds the same index from the log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { deployment, startServer, token, adminToken, api, waitUntil, unique, NO_LIMITS, expectError, history } from './helpers.mjs';

const run = promisify(execFile);
const FAST = { ...NO_LIMITS, CHAT_RETENTION_SWEEP_SECS: '1', CHAT_KEY_PERIOD_SECS: '2' };
let dep, A;
const ann = unique('ann'), bob = unique('bob'), zed = unique('zed'), eve = unique('eve');

before(async () => {
  dep = deployment();
  A = await startServer(dep, FAST);
  for (const [id, name] of [[ann, 'Ann'], [bob, 'Bob'], [zed, 'Zed'], [eve, 'Eve']]) {
    await api(A.url, 'PUT', `/api/users/${id}`, adminToken(), { name });
  }
});
after(async () => {
  await A?.stop();
});

const newConversation = async (title, others = [bob]) => {
  const r = await api(A.url, 'POST', '/api/conversations', token(ann), { title, participantIds: others });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.id;
};
const send = async (conv, content, who = ann) => {
  const r = await api(A.url, 'POST', '/api/messages', token(who), { conversationId: conv, content });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
};
const search = (q, { who = bob, conv, limit, minPosition } = {}) => {
  const params = new URLSearchParams({ q });
  if (conv) params.set('conversationId', conv);
  if (limit !== undefined) params.set('limit', String(limit));
  if (minPosition) params.set('minPosition', String(minPosition));
  return api(A.url, 'GET', `/api/search?${params}`, token(who));
};
const found = async (q, opts) => {
  const r = await search(q, opts);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(Object.keys(r.body), ['results']);
  return r.body.results;
};
const ids = (results) => results.map((r) => r.message.id).sort();

test('every word is required, stemmed, marked in the highlight; the message reads as GET /api/messages does', async () => {
  const conv = await newConversation('Stemming');
  const late = await send(conv, 'I am running late today');
  const tests = await send(conv, 'Run the tests, please');
  const other = await send(conv, 'Nothing to see here', bob);

  const run1 = await found('run', { conv, minPosition: other.position });
  assert.deepEqual(ids(run1), [late.id, tests.id].sort(), 'running and run share their stem');
  for (const r of run1) assert.deepEqual(Object.keys(r), ['message', 'highlight']);

  const both = await found('RUNNING tests', { conv });
  assert.equal(both.length, 1, 'every word required');
  assert.equal(both[0].highlight, '<mark>Run</mark> the <mark>tests</mark>, please');
  const listed = (await history(A.url, conv, bob)).find((m) => m.id === tests.id);
  assert.deepEqual(both[0].message, listed, 'the message as the list reads it');

  assert.deepEqual((await found('running', { conv })).map((r) => r.highlight).sort(), [
    '<mark>Run</mark> the tests, please',
    'I am <mark>running</mark> late today',
  ]);
  assert.deepEqual((await found('late today', { conv })).map((r) => r.highlight), ['I am running <mark>late</mark> <mark>today</mark>']);
  assert.deepEqual(await found('tests nothing', { conv }), [], 'no message holds both');
  // Punctuation and what would be operators to an engine are only word separators.
  assert.deepEqual(ids(await found('tests* -(please)', { conv })), [tests.id]);
  assert.deepEqual(await found('NEAR(tests please)', { conv }), [], 'near is a word too, and no message holds it');
  assert.deepEqual(ids(await found('see', { who: ann, conv })), [other.id]);
});

test('best first, and limit caps the results', async () => {
  const conv = await newConversation('Ranking');
  const once = await send(conv, 'the deploy went out and the weather is fine');
  const thrice = await send(conv, 'deploy deploy deploy');
  const results = await found('deploy', { conv, minPosition: thrice.position });
  assert.deepEqual(results.map((r) => r.message.id), [thrice.id, once.id]);
  assert.deepEqual((await found('deploy', { conv, limit: 1 })).map((r) => r.message.id), [thrice.id]);
  let last;
  for (let i = 0; i < 22; i++) last = await send(conv, `release note number ${i}`);
  assert.equal((await found('release', { conv, minPosition: last.position })).length, 20, 'default limit');
  assert.equal((await found('release', { conv, limit: 50 })).length, 22);
});

test('an edit is found by its new words only; deleted, erased and expired messages are never found', async () => {
  const conv = await newConversation('Forgetting', [bob, eve]);
  const edited = await send(conv, 'meeting tomorrow morning');
  const r = await api(A.url, 'PATCH', `/api/messages/${edited.id}`, token(ann), { conversationId: conv, content: 'lunch on friday' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(await found('meeting', { conv, minPosition: r.body.position }), []);
  const lunch = await found('lunch friday', { conv });
  assert.deepEqual(lunch.map((x) => [x.message.id, x.message.content, x.highlight]), [
    [edited.id, 'lunch on friday', '<mark>lunch</mark> on <mark>friday</mark>'],
  ]);

  const deleted = await send(conv, 'secret password inside');
  assert.deepEqual(ids(await found('password', { conv, minPosition: deleted.position })), [deleted.id]);
  const d = await api(A.url, 'DELETE', `/api/messages/${deleted.id}?conversationId=${conv}`, token(ann));
  assert.equal(d.status, 200, JSON.stringify(d.body));
  assert.deepEqual(await found('password', { conv, minPosition: d.body.position }), []);

  const byEve = await send(conv, 'evening plans with everyone', eve);
  assert.deepEqual(ids(await found('evening plans', { conv, minPosition: byEve.position })), [byEve.id]);
  const erased = await api(A.url, 'POST', `/api/users/${eve}/erase`, adminToken(), {});
  assert.equal(erased.status, 200, JSON.stringify(erased.body));
  assert.deepEqual(await found('evening plans', { conv, minPosition: erased.body.position }), []);

  const expiring = await newConversation('Expiring');
  const old = await send(expiring, 'quarterly budget review');
  assert.deepEqual(ids(await found('budget', { conv: expiring, minPosition: old.position })), [old.id]);
  const set = await api(A.url, 'PUT', `/api/conversations/${expiring}/retention`, token(ann), { retentionSeconds: 1 });
  assert.equal(set.status, 200, JSON.stringify(set.body));
  await waitUntil(async () => (await history(A.url, expiring, bob)).find((m) => m.id === old.id)?.expired === true, 30000, 'expired');
  assert.deepEqual(await found('budget', { conv: expiring }), []);
});

test('only conversations the caller takes part in now: a removed participant stops finding them', async () => {
  const word = 'pineapple';
  const shared = await newConversation('Shared', [bob, zed]);
  const mine = await newConversation('Ann and Zed', [zed]);
  const a = await send(shared, `the ${word} pizza`);
  const b = await send(mine, `no ${word} for Bob`);
  const minPosition = b.position;
  assert.deepEqual(ids(await found(word, { who: zed, minPosition })), [a.id, b.id].sort());
  assert.deepEqual(ids(await found(word, { who: bob, minPosition })), [a.id]);
  assert.deepEqual(ids(await found(word, { who: zed, conv: mine })), [b.id]);

  const removed = await api(A.url, 'DELETE', `/api/conversations/${shared}/participants/${zed}`, token(ann));
  assert.equal(removed.status, 200, JSON.stringify(removed.body));
  assert.deepEqual(ids(await found(word, { who: zed, minPosition: removed.body.position })), [b.id]);
  expectError(await search(word, { who: zed, conv: shared }), 403, 'NOT_PARTICIPANT');
  assert.deepEqual(ids(await found(word, { who: bob })), [a.id], 'the others still find it');
});

test('bad requests get a clear error with a code', async () => {
  const conv = await newConversation('Bad input');
  expectError(await api(A.url, 'GET', '/api/search', token(bob)), 400, 'INVALID_INPUT', 'q');
  expectError(await search(''), 400, 'INVALID_INPUT', 'q');
  expectError(await search('  !!! ,. '), 400, 'INVALID_INPUT', 'q');
  expectError(await search(Array.from({ length: 1000 }, (_, i) => `w${i}`).join(' ')), 400, 'INVALID_INPUT', 'q');
  expectError(await search(Array.from({ length: 33 }, () => 'a').join(' ')), 400, 'INVALID_INPUT', '32 words');
  expectError(await search('x'.repeat(501)), 400, 'INVALID_INPUT', '500 characters');
  for (const limit of [0, 51, 'abc', -1, 1.5]) {
    expectError(await search('hello', { limit }), 400, 'INVALID_INPUT', 'limit');
  }
  expectError(await search('hello', { conv: 'no such' }), 400, 'INVALID_INPUT');
  expectError(await search('hello', { conv: 'conv_unknown' }), 404, 'NOT_FOUND');
  expectError(await search('hello', { who: zed, conv }), 403, 'NOT_PARTICIPANT');
  expectError(await search('hello', { minPosition: 'soon' }), 400, 'INVALID_INPUT', 'minPosition');
  expectError(await api(A.url, 'GET', '/api/search?q=hello'), 401, 'MISSING_TOKEN');
});

test('chat projections rebuild search builds the same index from the log', async () => {
  const conv = await newConversation('Rebuild');
  const kept = await send(conv, 'the rebuild keeps this sentence');
  const edit = await send(conv, 'an original draft');
  const e = await api(A.url, 'PATCH', `/api/messages/${edit.id}`, token(ann), { conversationId: conv, content: 'a rebuild revised version' });
  const gone = await send(conv, 'rebuild removes this one');
  const d = await api(A.url, 'DELETE', `/api/messages/${gone.id}?conversationId=${conv}`, token(ann));
  assert.equal(e.status, 200, JSON.stringify(e.body));
  assert.equal(d.status, 200, JSON.stringify(d.body));
  const queries = ['rebuild', 'sentence', 'draft', 'revised version', 'removes', 'pineapple', 'lunch friday', 'evening', 'budget', 'run'];
  const snapshot = async (minPosition) => {
    const out = {};
    for (const q of queries) out[q] = (await found(q, { who: ann, minPosition })).map((r) => [r.message.id, r.highlight]);
    return out;
  };
  const before = await snapshot(d.body.position);
  assert.deepEqual(before.rebuild.map(([id]) => id).sort(), [kept.id, edit.id].sort());
  assert.deepEqual(before.draft, []);
  assert.deepEqual(before.removes, []);

  await A.stop();
  const env = { ...process.env, ...dep, RUST_LOG: 'warn' };
  const rebuilt = await run(process.env.CHAT_BIN, ['projections', 'rebuild', 'search'], { env });
  assert.match(rebuilt.stdout, /rebuilt up to position \d+/);
  A = await startServer(dep, FAST);
  assert.deepEqual(await snapshot(), before);
});
