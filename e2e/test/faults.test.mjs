// Faults under load (issue 7), on NATS + Postgres: each test runs its own NATS and/or Postgres
// (helpers `privateNats`, `privatePostgres`) so it can stop and restart them, drives a steady
// sender with the stock socket.io-client, and checks what the contract promises: nothing
// acknowledged is lost or duplicated, a retry with the same `tempId` is answered with the first
// message, and the service comes back by itself. Each test stops by itself; loopback only.
import { test, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  EMBEDDED, deployment, startServer, token, adminToken, api, authed, emitAck, waitUntil, waitFor, unique,
  NO_LIMITS, privateNats, privateNatsCluster, privatePostgres, history,
} from './helpers.mjs';

const cleanups = [];
after(async () => {
  for (const f of cleanups.reverse()) await f();
});
const track = (s) => (cleanups.push(async () => s.disconnect()), s);
const serve = async (dep, env = {}) => {
  const s = await startServer(dep, { ...NO_LIMITS, ...env });
  cleanups.push(() => s.stop());
  return s;
};

/** Two users and a conversation of theirs, both joined from sockets on `url`. */
async function room(url) {
  const ann = unique('ann'), bob = unique('bob');
  for (const [id, name] of [[ann, 'Ann'], [bob, 'Bob']]) {
    assert.equal((await api(url, 'PUT', `/api/users/${id}`, adminToken(), { name })).status, 200);
  }
  const conv = (await api(url, 'POST', '/api/conversations', token(ann), { participantIds: [bob] })).body.id;
  const a = track(await authed(url, token(ann)));
  const b = track(await authed(url, token(bob)));
  for (const s of [a, b]) assert.equal((await emitAck(s, 'conversation:join', { conversationId: conv })).success, true);
  return { ann, bob, conv, a, b };
}

/**
 * Sends one message every `every` ms, each with a `tempId` of its own, waiting for each ack
 * (up to 20 s), until `stop()`. Every attempt is recorded: {tempId, ok, code, ms, at}.
 */
function steadySender(socket, conv, prefix, every = 50) {
  const sent = [];
  let stopped = false;
  const done = (async () => {
    for (let i = 0; !stopped; i++) {
      const tempId = `${prefix}-${i}`;
      const at = Date.now();
      let r;
      try {
        r = await emitAck(socket, 'message:send', { conversationId: conv, content: `${prefix} ${i}`, tempId }, 20000);
      } catch {
        r = { success: false, error: { code: 'NO_ACK' } };
      }
      sent.push({ tempId, at, ms: Date.now() - at, ok: r.success === true, messageId: r.messageId, seq: r.seq, code: r.error?.code });
      await sleep(every);
    }
  })();
  return { sent, stop: async () => { stopped = true; await done; } };
}

/**
 * Retries every attempt that got no success with its own `tempId` (as a client does after a
 * fault), then checks the conversation holds each `tempId` exactly once, with the acknowledged
 * id and `seq`, and `seq` gap-free from 1.
 */
async function everyTempIdOnce(url, socket, conv, who, sent) {
  for (const s of sent.filter((x) => !x.ok)) {
    const r = await emitAck(socket, 'message:send', { conversationId: conv, content: 'retry', tempId: s.tempId }, 20000);
    assert.equal(r.success, true, `retry of ${s.tempId}: ${JSON.stringify(r)}`);
    s.retriedAs = r.messageId;
  }
  let list;
  const missing = () => sent.filter((s) => !list.some((m) => m.id === (s.messageId ?? s.retriedAs)));
  try {
    await waitUntil(async () => {
      list = await history(url, conv, who).catch(() => []);
      return missing().length === 0;
    }, 60000, 'the read model to hold every message');
  } catch (e) {
    const ready = await api(url, 'GET', '/readyz');
    throw new Error(`${e.message}: ${missing().length} of ${sent.length} missing (first ${JSON.stringify(missing()[0])}), ${list.length} listed; /readyz ${ready.status} ${JSON.stringify(ready.body)}`);
  }
  for (const s of sent) {
    const found = list.filter((m) => m.tempId === s.tempId);
    assert.equal(found.length, 1, `${s.tempId} exactly once (got ${found.length})`);
    if (s.ok) {
      assert.equal(found[0].id, s.messageId, `${s.tempId}: the acknowledged message`);
      assert.equal(found[0].seq, s.seq, `${s.tempId}: the acknowledged seq`);
    } else {
      assert.equal(found[0].id, s.retriedAs, `${s.tempId}: the retry answered with the message`);
    }
  }
  assert.deepEqual(list.map((m) => m.seq), list.map((_, i) => i + 1), 'seq gap-free from 1');
  return list;
}

describe('faults under load', { skip: EMBEDDED && 'NATS and Postgres faults: the embedded mode has neither' }, () => {
  test('NATS stopped for 10 s: sends fail fast with UNAVAILABLE, everything resumes by itself, nothing acknowledged is lost', async () => {
    const nats = await privateNats();
    cleanups.push(() => nats.destroy());
    const A = await serve({ ...deployment(), CHAT_NATS_URL: nats.url });
    const { ann, conv, a, b } = await room(A.url);
    const load = steadySender(a, conv, unique('n'));
    await waitUntil(() => load.sent.filter((s) => s.ok).length >= 20, 20000, 'acknowledged sends before the fault');

    await nats.stop();
    const down = Date.now();
    await waitUntil(() => load.sent.some((s) => s.at > down && s.code === 'UNAVAILABLE'), 20000, 'a send refused with UNAVAILABLE');
    // The outage lasts 10 s (the fault's length, not a wait for a condition).
    await sleep(Math.max(0, 10000 - (Date.now() - down)));
    await nats.start();
    const up = Date.now();
    await waitUntil(() => load.sent.filter((s) => s.at > up && s.ok).length >= 20, 60000, 'acknowledged sends after NATS came back');
    await load.stop();

    const during = load.sent.filter((s) => s.at > down && s.at < up);
    assert.ok(during.length >= 5, `sends were attempted during the outage (${during.length})`);
    for (const s of during) {
      assert.ok(s.ok || s.code === 'UNAVAILABLE', `${s.tempId}: acknowledged or UNAVAILABLE, got ${s.code}`);
      assert.ok(s.ms <= 6000, `${s.tempId}: answered in ${s.ms} ms (no hang)`);
    }
    // Only what was in flight when NATS died waits for the publish timeout; once the client
    // knows the connection is gone, a send is refused at once.
    const slow = during.filter((s) => s.ms > 1000);
    assert.ok(slow.length <= 1, `refused at once while NATS is down: ${JSON.stringify(slow)}`);
    const list = await everyTempIdOnce(A.url, a, conv, ann, load.sent);

    // The broadcaster resumed: bob saw every message acknowledged after the restart, once.
    const last = load.sent.filter((s) => s.ok).at(-1);
    await waitFor(b, 'message:new', (m) => m.id === last.messageId, 20000);
    const seen = b.received.filter((e) => e.event === 'message:new').map((e) => e.payload.id);
    assert.equal(new Set(seen).size, seen.length, 'no message delivered twice');
    for (const s of load.sent.filter((x) => x.ok && x.at > up)) assert.ok(seen.includes(s.messageId), `${s.tempId} delivered live`);
    const r = await api(A.url, 'GET', '/readyz');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.ok(list.length >= 40);
  });

  test('Postgres stopped: sends keep working, reads answer 503 UNAVAILABLE, the projections catch up exactly once', async () => {
    const pg = await privatePostgres();
    cleanups.push(() => pg.destroy());
    const A = await serve({ ...deployment(), CHAT_DATABASE_URL: pg.url });
    const { ann, bob, conv, a, b } = await room(A.url);
    const load = steadySender(a, conv, unique('p'));
    await waitUntil(() => load.sent.filter((s) => s.ok).length >= 20, 20000, 'acknowledged sends before the fault');

    await pg.stop();
    const down = Date.now();
    let read;
    await waitUntil(async () => {
      read = await api(A.url, 'GET', `/api/messages?conversationId=${conv}&limit=10`, token(ann));
      return read.status === 503;
    }, 20000, 'reads to answer 503');
    assert.equal(read.body.error.code, 'UNAVAILABLE');
    const okDuring = () => load.sent.filter((s) => s.at > down + 1000 && s.ok).length;
    await waitUntil(() => okDuring() >= 20, 30000, 'acknowledged sends while Postgres is down');
    const last = load.sent.filter((s) => s.ok).at(-1);
    await waitFor(b, 'message:new', (m) => m.id === last.messageId, 10000);
    await pg.start();
    const up = Date.now();
    await waitUntil(() => load.sent.filter((s) => s.at > up && s.ok).length >= 5, 30000, 'sends after Postgres came back');
    await load.stop();

    for (const s of load.sent) assert.equal(s.ok, true, `${s.tempId}: ${s.code}`);
    const list = await everyTempIdOnce(A.url, a, conv, ann, load.sent);
    // The unread projection caught up exactly once too: everything ann sent is unread for bob.
    let unread;
    await waitUntil(async () => {
      const c = (await api(A.url, 'GET', '/api/conversations', token(bob))).body.conversations?.find((x) => x.id === conv);
      unread = c?.unreadCount;
      return unread === list.length;
    }, 20000, `bob's unreadCount to be ${list.length} (is ${unread})`);
  });

  test('kill -9 one of two nodes under load: its clients move to the other, rejoin with sinceOffset and end with the same history', async () => {
    const dep = deployment();
    const A = await serve(dep);
    const B = await serve(dep);
    const { ann, bob, conv, a, b } = await room(A.url);
    const carol = unique('carol');
    assert.equal((await api(B.url, 'PUT', `/api/users/${carol}`, adminToken(), { name: 'Carol' })).status, 200);
    const added = await api(B.url, 'POST', `/api/conversations/${conv}/participants`, token(ann), { userId: carol });
    assert.ok(added.status < 300, JSON.stringify(added.body));
    const c = track(await authed(B.url, token(carol)));
    assert.equal((await emitAck(c, 'conversation:join', { conversationId: conv })).success, true);

    const prefix = unique('k');
    const load = steadySender(a, conv, prefix, 20);
    await waitUntil(() => load.sent.filter((s) => s.ok).length >= 30, 20000, 'acknowledged sends before the kill');
    await A.stop(); // SIGKILL
    await load.stop();
    const news = (s) => s.received.filter((e) => e.event === 'message:new').map((e) => e.payload);
    const seenBeforeKill = news(b);
    const since = seenBeforeKill.at(-1).offset;

    // The clients of the dead node come back on the other one (as behind a load balancer).
    const a2 = track(await authed(B.url, token(ann)));
    assert.equal((await emitAck(a2, 'conversation:join', { conversationId: conv })).success, true);
    const b2 = track(await authed(B.url, token(bob)));
    assert.equal((await emitAck(b2, 'conversation:join', { conversationId: conv, sinceOffset: since })).success, true);
    const more = steadySender(a2, conv, prefix + 'b', 20);
    await waitUntil(() => more.sent.filter((s) => s.ok).length >= 20, 20000, 'acknowledged sends on the surviving node');
    await more.stop();
    const list = await everyTempIdOnce(B.url, a2, conv, ann, [...load.sent, ...more.sent]);

    // Bob's history (before the kill, then the replay and live on the other node) is carol's.
    const lastId = list.at(-1).id;
    await waitFor(c, 'message:new', (m) => m.id === lastId, 20000);
    await waitFor(b2, 'message:new', (m) => m.id === lastId, 20000);
    const carols = news(c).map((m) => m.id);
    const bobs = [...seenBeforeKill, ...news(b2)].map((m) => m.id);
    assert.deepEqual(bobs, carols, 'same messages, same order, none missing, none twice');
    assert.deepEqual(carols, list.map((m) => m.id), 'and the same as the read model');
  });

  test('two nodes writing one conversation at once: seq stays unique and gap-free, each sender in its order', async () => {
    const dep = deployment();
    const A = await serve(dep);
    const B = await serve(dep);
    const { ann, conv, a } = await room(A.url);
    const { bob } = await room(A.url);
    const added = await api(A.url, 'POST', `/api/conversations/${conv}/participants`, token(ann), { userId: bob });
    assert.ok(added.status < 300, JSON.stringify(added.body));
    const b = track(await authed(B.url, token(bob)));
    assert.equal((await emitAck(b, 'conversation:join', { conversationId: conv })).success, true);

    // Both fire without waiting, on different nodes, at the same moment.
    const burst = (socket, who) => Array.from({ length: 200 }, (_, i) =>
      emitAck(socket, 'message:send', { conversationId: conv, content: `${who} ${i}`, tempId: `${who}-${i}` }, 60000));
    const [fromA, fromB] = await Promise.all([Promise.all(burst(a, 'a')), Promise.all(burst(b, 'b'))]);
    for (const r of [...fromA, ...fromB]) assert.equal(r.success, true, JSON.stringify(r));
    const seqs = [...fromA, ...fromB].map((r) => r.seq).sort((x, y) => x - y);
    assert.deepEqual(seqs, seqs.map((_, i) => i + 1), 'unique and gap-free from 1');
    for (const mine of [fromA, fromB]) {
      const order = mine.map((r) => r.seq);
      assert.deepEqual(order, [...order].sort((x, y) => x - y), 'in the order each socket emitted');
    }
    let list = [];
    await waitUntil(async () => (list = await history(B.url, conv, bob)).length >= seqs.length, 20000, 'the read model to hold all 400');
    assert.deepEqual(list.map((m) => m.seq), seqs);
  });

  test('SIGTERM: stops accepting, finishes the sends in hand, closes the sockets so clients reconnect elsewhere, exits 0', async () => {
    const dep = deployment();
    const A = await serve(dep);
    const B = await serve(dep);
    const { ann, conv, a } = await room(A.url);
    const prefix = unique('t');
    // 200: within the socket's inbox (256 events waiting).
    const answers = new Array(200).fill(undefined);
    const pending = answers.map((_, i) =>
      emitAck(a, 'message:send', { conversationId: conv, content: `${prefix} ${i}`, tempId: `${prefix}-${i}` }, 30000)
        .then((r) => { answers[i] = r; }, () => { answers[i] = null; }));
    await waitUntil(() => answers.filter((r) => r?.success).length >= 20, 20000, 'acknowledgements before SIGTERM');
    const exited = new Promise((resolve) => A.child.once('exit', (code, signal) => resolve({ code, signal })));
    const t0 = Date.now();
    A.child.kill('SIGTERM');
    const { code, signal } = await exited;
    assert.equal(code, 0, `exit code (signal ${signal})`);
    assert.ok(Date.now() - t0 < 15000, `stopped in ${Date.now() - t0} ms`);
    await Promise.all(pending);
    await waitUntil(() => a.disconnectReason, 10000, 'the socket to be closed');
    assert.equal(a.disconnectReason, 'transport close', 'the transport was closed: socket.io-client reconnects by itself');
    await assert.rejects(fetch(A.url + '/healthz'), 'nothing listens any more');

    // Every send was acknowledged, refused with UNAVAILABLE, or never answered (still queued
    // when the socket closed); nothing was appended without its acknowledgement.
    for (const r of answers) assert.ok(r === null || r.success || r.error?.code === 'UNAVAILABLE', JSON.stringify(r));
    assert.ok(answers.some((r) => r?.error?.code === 'UNAVAILABLE'), 'sends still queued were refused: reconnect and retry');
    const acked = answers.filter((r) => r?.success);
    assert.ok(acked.length < answers.length, 'the shutdown came in the middle of the burst');
    let list = [];
    await waitUntil(async () => {
      list = await history(B.url, conv, ann);
      return acked.every((r) => list.some((m) => m.id === r.messageId));
    }, 20000, 'every acknowledged message in the read model');
    assert.deepEqual(list.map((m) => m.id).sort(), acked.map((r) => r.messageId).sort(), 'the log holds exactly the acknowledged sends');

    // The client carries on on the other node, retrying what was not acknowledged.
    const a2 = track(await authed(B.url, token(ann)));
    assert.equal((await emitAck(a2, 'conversation:join', { conversationId: conv })).success, true);
    const sent = answers.map((r, i) => ({ tempId: `${prefix}-${i}`, ok: !!r?.success, messageId: r?.messageId, seq: r?.seq }));
    await everyTempIdOnce(B.url, a2, conv, ann, sent);
  });

  test('a three-node NATS cluster loses a node under load: the stream (three replicas) keeps every acknowledged message', async () => {
    const cluster = await privateNatsCluster(3);
    cleanups.push(() => cluster.destroy());
    // The cluster elects its JetStream leader; the node retries its first connection until then.
    let A;
    await waitUntil(async () => {
      A = await startServer({ ...deployment(), CHAT_NATS_URL: cluster.url }, { ...NO_LIMITS, CHAT_STREAM_REPLICAS: '3' }).catch(() => undefined);
      return A !== undefined;
    }, 60000, 'chat serve on the cluster');
    cleanups.push(() => A.stop());
    const { ann, conv, a, b } = await room(A.url);
    const load = steadySender(a, conv, unique('c'), 20);
    await waitUntil(() => load.sent.filter((s) => s.ok).length >= 30, 30000, 'acknowledged sends before the fault');

    await cluster.nodes[0].stop();
    const down = Date.now();
    await waitUntil(() => load.sent.filter((s) => s.at > down + 2000 && s.ok).length >= 30, 60000, 'acknowledged sends with a node down');
    await cluster.nodes[0].start();
    const up = Date.now();
    await waitUntil(() => load.sent.filter((s) => s.at > up && s.ok).length >= 20, 60000, 'acknowledged sends after it came back');
    await load.stop();

    for (const s of load.sent) assert.ok(s.ok || s.code === 'UNAVAILABLE', `${s.tempId}: ${s.code}`);
    await everyTempIdOnce(A.url, a, conv, ann, load.sent);
    const last = load.sent.filter((s) => s.ok).at(-1);
    await waitFor(b, 'message:new', (m) => m.id === last.messageId, 20000);
  });
});
