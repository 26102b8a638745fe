// @chat/client against a real `chat serve` (embedded backend, loopback): the behaviour of the
// contract's section 4.5. A proxy in front of the server (proxy.mjs) blocks WebSocket, Socket.IO
// or all of HTTP on purpose; the server itself is killed with SIGKILL and restarted on its port.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { ChatClient, MemoryStorage, ChatError } from '../dist/index.js';
import { deployment, startServer, token, adminToken, api, waitUntil, unique, freePort, NO_LIMITS, history } from '../../e2e/test/helpers.mjs';
import { startProxy } from './proxy.mjs';

const dep = deployment({ embedded: true });
const port = await freePort();
const serve = () => startServer(dep, { ...NO_LIMITS, CHAT_LISTEN: `127.0.0.1:${port}` });
let server = await serve();
const proxy = await startProxy(server.url);
const clients = [];
after(async () => {
  for (const c of clients) c.close();
  await proxy.down();
  await server.stop();
});

const ann = unique('ann');
const bob = unique('bob');
for (const [id, name] of [[ann, 'Ann'], [bob, 'Bob']]) {
  assert.equal((await api(server.url, 'PUT', `/api/users/${id}`, adminToken(), { name })).status, 200);
}

/** A conversation of ann and bob. */
async function conversation(title) {
  const r = await api(server.url, 'POST', '/api/conversations', token(ann), { title, participantIds: [bob] });
  assert.equal(r.status, 201);
  return r.body.id;
}

/** A client that records what it emits. */
function client(who, opts = {}) {
  const c = new ChatClient({ url: proxy.url, token: token(who), storage: new MemoryStorage(), pollIntervalMs: 300, ...opts });
  c.events = [];
  for (const e of ['message:new', 'message:updated', 'reaction:added', 'status']) c.on(e, (p) => c.events.push([e, p]));
  clients.push(c);
  return c;
}
const news = (c, conv) => c.events.filter(([e, p]) => e === 'message:new' && p.conversationId === conv).map(([, p]) => p);
const online = (c) => waitUntil(() => c.status === 'online', 20000, 'online');
/** Ann's and Bob's clients, online and in the room. */
async function pair(conv, opts = {}) {
  const a = client(ann, opts);
  const b = client(bob, opts);
  await online(a);
  await online(b);
  await a.join(conv);
  await b.join(conv);
  return [a, b];
}

test('send, receive, edit and react, typed acks; a refusal rejects with its code', async () => {
  const conv = await conversation('basics');
  const a = client(ann);
  const b = client(bob);
  await online(a);
  await online(b);
  assert.deepEqual(await a.join(conv), { success: true, conversationId: conv, participantCount: 1 });
  await b.join(conv);
  const sent = await a.send(conv, 'hello bob');
  assert.deepEqual(Object.keys(sent).sort(), ['messageId', 'seq', 'success', 'tempId']);
  assert.equal(sent.success, true);
  assert.equal(sent.seq, 1);
  await waitUntil(() => news(b, conv).length === 1, 10000, 'bob gets the message');
  const m = news(b, conv)[0];
  assert.equal(m.id, sent.messageId);
  assert.equal(m.content, 'hello bob');
  assert.equal(m.tempId, sent.tempId);
  assert.equal(typeof m.offset, 'number');
  const edited = await a.edit(conv, sent.messageId, 'hello, bob');
  assert.equal(edited.messageId, sent.messageId);
  await b.react(conv, sent.messageId, '👍');
  await waitUntil(() => a.events.some(([e]) => e === 'reaction:added'), 10000, 'ann sees the reaction');
  await waitUntil(() => b.events.some(([e, p]) => e === 'message:updated' && p.content === 'hello, bob'), 10000, 'bob sees the edit');
  await assert.rejects(b.edit(conv, sent.messageId, 'not mine'), (e) => e instanceof ChatError && e.code === 'UNAUTHORIZED');
  await assert.rejects(a.send(conv, '   '), (e) => e instanceof ChatError && e.code === 'INVALID_INPUT');
  assert.deepEqual(a.queued(), []);
  assert.equal(news(a, conv).length, 1, 'the sender sees its message once');
});

test('kill -9 and restart under a client that keeps sending: every message once, in order', async () => {
  const conv = await conversation('restart');
  const [a, b] = await pair(conv);
  const N = 40;
  const results = [];
  let killed = false;
  for (let i = 0; i < N; i++) {
    results.push(a.send(conv, `m${i}`));
    if (i === 10) {
      await results[10];
      await server.stop(); // SIGKILL
      killed = true;
      await waitUntil(() => a.status === 'offline' && b.status === 'offline', 20000, 'both see the server gone');
    }
    if (i === 25) {
      assert.ok(a.queued().length > 0, 'sends made while the server is down wait in the queue');
      server = await serve();
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(killed);
  const sent = await Promise.all(results);
  assert.deepEqual(sent.map((s) => s.seq), Array.from({ length: N }, (_, i) => i + 1));
  let stored;
  await waitUntil(async () => (stored = await history(server.url, conv, bob)).length >= N, 10000, 'the read model has every message');
  assert.deepEqual(stored.map((m) => m.content), Array.from({ length: N }, (_, i) => `m${i}`), 'each message once, in order');
  await online(a);
  await online(b);
  await waitUntil(() => news(b, conv).length >= N, 20000, 'bob receives everything');
  assert.deepEqual(news(b, conv).map((m) => m.content), stored.map((m) => m.content), 'bob: every message once, in order');
  assert.deepEqual(news(a, conv).map((m) => m.id), stored.map((m) => m.id), 'ann: every message once, in order');
  assert.deepEqual(a.queued(), []);
});

test('WebSocket blocked: the client works over long-polling', async () => {
  proxy.mode = 'no-websocket';
  try {
    const conv = await conversation('polling');
    const [a, b] = await pair(conv);
    await a.send(conv, 'over polling');
    await waitUntil(() => news(b, conv).length === 1, 10000, 'bob gets it');
    assert.equal(a.socket.io.engine.transport.name, 'polling');
    assert.equal(b.socket.io.engine.transport.name, 'polling');
  } finally {
    proxy.mode = 'open';
  }
});

test('Socket.IO down: sends go over REST with their tempId and the client polls; then HTTP down: the queue holds them in order', async () => {
  const conv = await conversation('fallback');
  const [a, b] = await pair(conv, { transports: ['websocket'] });
  await a.send(conv, 'before');
  await waitUntil(() => news(b, conv).length === 1, 10000, 'bob gets the first');

  proxy.mode = 'no-socketio';
  proxy.cut();
  await waitUntil(() => a.status === 'polling' && b.status === 'polling', 20000, 'both fall back to REST');
  const over = await a.send(conv, 'over REST');
  let row;
  await waitUntil(async () => (row = (await history(server.url, conv, ann)).find((m) => m.id === over.messageId)), 10000, 'the REST send is readable');
  assert.equal(row.tempId, over.tempId, 'REST carried the tempId');
  await waitUntil(() => news(b, conv).length === 2, 10000, 'bob polls it');
  assert.equal(news(b, conv)[1].content, 'over REST');
  // Edits, reactions and reads go over REST too; events that have no route are refused at once.
  assert.equal((await a.edit(conv, over.messageId, 'over REST, edited')).messageId, over.messageId);
  assert.equal((await b.react(conv, over.messageId, '🎉')).emoji, '🎉');
  assert.equal(typeof (await b.markRead(conv, [over.messageId])).position, 'number');
  await assert.rejects(a.typing(conv, true), (e) => e instanceof ChatError && e.code === 'NETWORK');
  await waitUntil(async () => {
    const m = (await history(server.url, conv, ann)).find((x) => x.id === over.messageId);
    return m.content === 'over REST, edited' && m.reactions.length === 1;
  }, 10000, 'the REST edit and reaction are stored');

  await proxy.down();
  await waitUntil(() => a.status === 'offline', 20000, 'ann sees HTTP down');
  const later = ['q1', 'q2', 'q3'].map((t) => a.send(conv, t));
  await waitUntil(() => a.queued().length === 3, 5000, 'three queued');
  assert.deepEqual(a.queued().map((q) => q.content), ['q1', 'q2', 'q3']);

  proxy.mode = 'open';
  await proxy.up();
  const flushed = await Promise.all(later);
  assert.deepEqual(flushed.map((s) => s.seq), [3, 4, 5]);
  await online(a);
  await online(b);
  await waitUntil(() => news(b, conv).length === 5, 20000, 'bob gets the queue');
  const want = ['before', 'over REST', 'q1', 'q2', 'q3'];
  assert.deepEqual(news(b, conv).map((m) => m.content), want);
  assert.deepEqual(news(a, conv).map((m) => m.content), want);
  await waitUntil(async () => (await history(server.url, conv, ann)).length === 5, 10000, 'stored');
  assert.deepEqual((await history(server.url, conv, ann)).map((m) => m.content), ['before', 'over REST, edited', 'q1', 'q2', 'q3']);
  // The edit made over REST reaches bob when his socket catches up (he polled only new messages).
  await waitUntil(() => b.events.some(([e, p]) => e === 'message:updated' && p.content === 'over REST, edited'), 10000, 'bob catches up on the edit');
});
