// The outbound webhook (contract 4.3): with CHAT_WEBHOOK_URL and CHAT_WEBHOOK_SECRET every
// committed event is POSTed in log order, in batches `{events: [{position, type, aggregateId,
// actor, occurredAt, data}]}` signed `X-Chat-Signature: sha256=<hex HMAC of the body>`. At
// least once, never out of order, never skipped: failures are retried with backoff (a
// Retry-After honoured), a restart resumes from the checkpoint, and a slow receiver slows
// nothing else. The receiver is a loopback server the test starts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createHmac } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { deployment, startServer, token, adminToken, api, waitUntil, unique, NO_LIMITS } from './helpers.mjs';

const run = promisify(execFile);
const SECRET = 'webhook-secret-' + unique('s');
let dep, A, receiver, env, conv;
const ann = unique('ann'), bob = unique('bob');
// Every request the receiver got, and how it answers the next one.
const requests = [];
let answer = () => ({ status: 200 });

before(async () => {
  receiver = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const raw = Buffer.concat(chunks);
      const { status, headers = {}, delayMs = 0 } = answer(requests.length);
      requests.push({ raw, signature: req.headers['x-chat-signature'], type: req.headers['content-type'], at: Date.now(), status });
      if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
      res.writeHead(status, headers).end();
    });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  env = {
    ...NO_LIMITS,
    CHAT_WEBHOOK_URL: `http://127.0.0.1:${receiver.address().port}/hook`,
    CHAT_WEBHOOK_SECRET: SECRET,
    CHAT_WEBHOOK_BACKOFF_MAX_MS: '400',
  };
  dep = deployment();
  A = await startServer(dep, env);
  for (const [id, name] of [[ann, 'Ann'], [bob, 'Bob']]) {
    await api(A.url, 'PUT', `/api/users/${id}`, adminToken(), { name });
  }
  conv = (await api(A.url, 'POST', '/api/conversations', token(ann), { title: 'Hooked', participantIds: [bob] })).body.id;
});
after(async () => {
  await A?.stop();
  receiver?.close();
});

const send = async (content) => {
  const r = await api(A.url, 'POST', '/api/messages', token(ann), { conversationId: conv, content });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
};
const accepted = () => requests.filter((r) => r.status >= 200 && r.status < 300);
/** Every event accepted, deduplicated by (position, index in its commit), in delivery order. */
const delivered = () => {
  const seen = new Set(), out = [];
  for (const r of accepted()) {
    const batch = JSON.parse(r.raw);
    const byPosition = new Map();
    for (const e of batch.events) {
      const i = byPosition.get(e.position) ?? 0;
      byPosition.set(e.position, i + 1);
      const key = `${e.position}/${i}`;
      if (!seen.has(key)) out.push(e), seen.add(key);
    }
  }
  return out;
};
const sentContents = () => delivered().filter((e) => e.type === 'MessageSent').map((e) => e.data.content);
const deliveredUpTo = (position) => waitUntil(() => delivered().some((e) => e.position >= position), 30000, `webhook reached ${position}`);
const assertOrdered = () => {
  const positions = delivered().map((e) => e.position);
  assert.deepEqual(positions, [...positions].sort((a, b) => a - b), 'log order');
};

test('a receiver failing the first requests gets every event, in order, signed, the same batch retried', async () => {
  const failFrom = requests.length;
  answer = (n) => ({ status: n < failFrom + 3 ? 500 : 200 });
  const sent = [];
  for (let i = 0; i < 10; i++) sent.push(await send(`hook ${i}`));
  await deliveredUpTo(sent.at(-1).position);
  const attempts = requests.slice(failFrom);
  assert.deepEqual(attempts.slice(0, 4).map((r) => r.status), [500, 500, 500, 200]);
  assert.deepEqual(attempts[1].raw, attempts[0].raw, 'a failed batch is retried as it was');
  assert.deepEqual(attempts[3].raw, attempts[0].raw);
  assertOrdered();
  assert.deepEqual(sentContents().slice(-10), sent.map((_, i) => `hook ${i}`), 'every message once, in order, decrypted');

  for (const r of attempts) {
    assert.equal(r.type, 'application/json');
    assert.equal(r.signature, 'sha256=' + createHmac('sha256', SECRET).update(r.raw).digest('hex'));
    // A receiver holding another secret, or a body altered on the way, sees the mismatch.
    assert.notEqual(r.signature, 'sha256=' + createHmac('sha256', SECRET + 'x').update(r.raw).digest('hex'));
    assert.notEqual(r.signature, 'sha256=' + createHmac('sha256', SECRET).update(Buffer.concat([r.raw, Buffer.from(' ')])).digest('hex'));
  }
  const events = delivered();
  const first = events.find((e) => e.type === 'MessageSent' && e.data.content === 'hook 0');
  assert.deepEqual(Object.keys(JSON.parse(accepted().at(-1).raw)), ['events']);
  assert.deepEqual(Object.keys(first), ['position', 'type', 'aggregateId', 'actor', 'occurredAt', 'data']);
  assert.deepEqual([first.position, first.aggregateId, first.actor], [sent[0].position, conv, ann]);
  assert.match(first.occurredAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(first.data.messageId, sent[0].id);
  // Everything from the log's start: the users and the conversation first.
  assert.deepEqual(events.slice(0, 3).map((e) => e.type), ['UserRegistered', 'UserRegistered', 'ConversationCreated']);
});

test('a Retry-After is honoured', async () => {
  const from = requests.length;
  answer = (n) => (n === from ? { status: 429, headers: { 'retry-after': '2' } } : { status: 200 });
  const m = await send('after a pause');
  await deliveredUpTo(m.position);
  const [refused, next] = requests.slice(from);
  assert.equal(refused.status, 429);
  assert.ok(next.at - refused.at >= 1900, `retried after ${next.at - refused.at} ms`);
});

test('a receiver down across a restart of the node gets everything once it is back, from the checkpoint', async () => {
  answer = () => ({ status: 503 });
  const from = requests.length;
  for (let i = 0; i < 5; i++) await send(`down ${i}`);
  await waitUntil(() => requests.slice(from).filter((r) => r.status === 503).length >= 3, 30000, 'refused attempts');
  await A.stop();
  A = await startServer(dep, env);
  const afterRestart = [await send('down 5'), await send('down 6')];
  answer = () => ({ status: 200 });
  await deliveredUpTo(afterRestart.at(-1).position);
  assertOrdered();
  const contents = sentContents();
  for (let i = 0; i < 7; i++) assert.equal(contents.filter((c) => c === `down ${i}`).length, 1, `down ${i} once`);
  assert.deepEqual(contents.slice(-7), [0, 1, 2, 3, 4, 5, 6].map((i) => `down ${i}`));

  const status = await run(process.env.CHAT_BIN, ['projections', 'status'], { env: { ...process.env, ...dep, ...env, RUST_LOG: 'warn' } });
  assert.match(status.stdout, /^webhook\s+checkpoint\s+\d+\s+lag\s+\d+/m);
  const plain = await run(process.env.CHAT_BIN, ['projections', 'status'], { env: { ...process.env, ...dep, RUST_LOG: 'warn' } });
  assert.doesNotMatch(plain.stdout, /webhook/, 'not configured, not listed');
});

test('a slow receiver gets bigger batches and slows nothing else', async () => {
  const from = requests.length;
  answer = () => ({ status: 200, delayMs: 1500 });
  const sent = [];
  for (let i = 0; i < 60; i++) sent.push(await send(`slow ${i}`));
  const last = sent.at(-1).position;
  // The read models are there at once while the webhook is still behind.
  const read = await api(A.url, 'GET', `/api/messages?conversationId=${conv}&minPosition=${last}&limit=1`, token(bob));
  assert.equal(read.status, 200, JSON.stringify(read.body));
  assert.equal(read.body.messages[0].content, 'slow 59');
  assert.ok(!delivered().some((e) => e.position >= last), 'the webhook is still behind');
  const metrics = await (await fetch(`${A.url}/metrics`)).text();
  const lag = Number(metrics.match(/chat_projection_lag\{projection="webhook"\} (\d+)/)?.[1]);
  assert.ok(lag > 0, `webhook lag ${lag}`);
  assert.equal((await fetch(`${A.url}/readyz`)).status, 200, 'a lagging webhook leaves the node ready');

  await deliveredUpTo(last);
  const sizes = requests.slice(from).map((r) => JSON.parse(r.raw).events.length);
  assert.ok(Math.max(...sizes) >= 10, `batches grew: ${sizes}`);
  assert.ok(sizes.length < 30, `fewer requests than messages: ${sizes.length}`);
  assertOrdered();
  assert.deepEqual(sentContents().slice(-60), sent.map((_, i) => `slow ${i}`));
});
