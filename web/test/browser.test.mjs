// The web app in headless Chromium (Debian's `chromium`, driven by playwright-core) against a
// real `chat serve --demo` (embedded backend, loopback). Two users in two browser contexts.
// Each test saves a screenshot under web/test/screenshots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { deployment, startServer, unique, freePort, NO_LIMITS, adminToken } from '../../e2e/test/helpers.mjs';

const SHOTS = new URL('./screenshots/', import.meta.url).pathname;
mkdirSync(SHOTS, { recursive: true });
const dep = deployment({ embedded: true });
const port = await freePort();
const serve = () => startServer(dep, { ...NO_LIMITS, CHAT_DEMO: 'true', CHAT_LISTEN: `127.0.0.1:${port}` });
let server;
let browser;
before(async () => {
  server = await serve();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

const T = { timeout: 20000 };

/** A page signed in by name (demo mode). */
async function signIn(name, { blockWebSocket = false } = {}) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  if (blockWebSocket) await context.addInitScript(() => { delete window.WebSocket; window.WebSocket = undefined; });
  const page = await context.newPage();
  page.sockets = [];
  page.on('websocket', (ws) => page.sockets.push(ws.url()));
  page.on('pageerror', (e) => console.error(`[${name}] page error:`, e));
  await page.goto(server.url + '/');
  await page.getByRole('textbox', { name: 'Name', exact: true }).fill(name);
  await page.getByRole('button', { name: 'Sign in' }).first().click();
  await page.getByText(`Signed in as demo-${name.toLowerCase()}`).waitFor(T);
  return page;
}

/** Ann and Bob (new names each time) signed in on two pages, in a conversation named `title`. */
async function twoUsers(title, { blockWebSocket = false } = {}) {
  const n = unique('n').slice(-6);
  const [ann, bob] = [`Ann${n}`, `Bob${n}`];
  const A = await signIn(ann, { blockWebSocket });
  const B = await signIn(bob);
  await talk(A, B, `demo-${bob.toLowerCase()}`, title);
  return { A, B, ann, bob };
}

/** `a` opens a conversation with `b`; `b` opens it from the list. */
async function talk(a, b, bId, title) {
  await a.getByRole('textbox', { name: 'Title', exact: true }).fill(title);
  await a.getByRole('textbox', { name: 'With (user ids, comma-separated)' }).fill(bId);
  await a.getByRole('button', { name: 'Create' }).click();
  await a.getByRole('heading', { name: title }).waitFor(T);
  await b.getByRole('navigation').getByRole('button', { name: new RegExp(title) }).click(T);
  await b.getByRole('heading', { name: title }).waitFor(T);
}

const log = (page) => page.getByRole('log', { name: 'Messages' });
const say = async (page, text) => {
  await page.getByRole('textbox', { name: 'Message', exact: true }).fill(text);
  await page.getByRole('textbox', { name: 'Message', exact: true }).press('Enter');
};
/** The list item of the message with this text. */
const msg = (page, text) => log(page).getByRole('listitem').filter({ hasText: text });

test('two users chat both ways: typing, delivered then read, a reaction and an edit', async () => {
  const { A, B, bob } = await twoUsers('Lunch');

  await say(A, 'Hello Bob');
  await msg(B, 'Hello Bob').waitFor(T);
  // Bob has the room open: delivered, then read, on Ann's page.
  await A.locator('li[data-state="read"]').filter({ hasText: 'Hello Bob' }).waitFor(T);
  assert.match(await msg(A, 'Hello Bob').locator('.state').innerText(), /read/);

  await B.getByRole('textbox', { name: 'Message', exact: true }).fill('Hi Ann, sushi?');
  await A.getByText(`${bob} is typing…`).waitFor(T);
  await B.getByRole('textbox', { name: 'Message', exact: true }).press('Enter');
  await msg(A, 'Hi Ann, sushi?').waitFor(T);
  await A.locator('#typing').filter({ hasText: /^$/ }).waitFor(T);

  await msg(A, 'Hi Ann, sushi?').getByRole('button', { name: 'React 👍' }).click();
  await msg(B, 'Hi Ann, sushi?').getByRole('button', { name: '👍 1' }).waitFor(T);

  A.once('dialog', (d) => d.accept('Hello Bob, edited'));
  await msg(A, 'Hello Bob').getByRole('button', { name: 'Edit' }).click();
  await msg(B, 'Hello Bob, edited').getByText('(edited)').waitFor(T);

  assert.equal(await log(B).getByRole('listitem').count(), 2);
  assert.equal(await log(A).getByRole('listitem').count(), 2);
  await A.screenshot({ path: SHOTS + 'chat-ann.png' });
  await B.screenshot({ path: SHOTS + 'chat-bob.png' });
  await A.context().close();
  await B.context().close();
});

test('kill -9: the offline banner shows, a message typed then is queued and arrives once on both pages', async () => {
  const { A, B } = await twoUsers('Outage');
  await say(A, 'before the crash');
  await msg(B, 'before the crash').waitFor(T);

  await server.stop(); // SIGKILL
  await A.getByRole('status').filter({ hasText: 'You are offline' }).waitFor(T);
  await say(A, 'typed while offline');
  await A.locator('li[data-state="queued"]').filter({ hasText: 'typed while offline' }).waitFor(T);
  await A.getByRole('status').filter({ hasText: '1 message queued' }).waitFor(T);
  await A.screenshot({ path: SHOTS + 'offline-ann.png' });

  server = await serve();
  await msg(B, 'typed while offline').waitFor({ timeout: 30000 });
  await A.locator('li[data-state="read"], li[data-state="delivered"], li[data-state="sent"]').filter({ hasText: 'typed while offline' }).waitFor(T);
  await A.getByRole('status').waitFor({ state: 'hidden', timeout: 30000 });
  await B.getByRole('status').waitFor({ state: 'hidden', timeout: 30000 });
  // Once on each page, and once in the conversation's history.
  assert.equal(await msg(B, 'typed while offline').count(), 1);
  assert.equal(await msg(A, 'typed while offline').count(), 1);
  await say(B, 'back online');
  await msg(A, 'back online').waitFor(T);
  assert.equal(await log(A).getByRole('listitem').count(), 3);
  assert.equal(await log(B).getByRole('listitem').count(), 3);
  await B.screenshot({ path: SHOTS + 'after-restart-bob.png' });
  await A.context().close();
  await B.context().close();
});

test('WebSocket blocked in the page: the app works over long-polling', async () => {
  const { A, B } = await twoUsers('Polling', { blockWebSocket: true });
  await say(A, 'from a page without WebSocket');
  await msg(B, 'from a page without WebSocket').waitFor(T);
  await say(B, 'and back');
  await msg(A, 'and back').waitFor(T);
  await A.locator('li[data-state="read"]').filter({ hasText: 'from a page without WebSocket' }).waitFor(T);
  assert.deepEqual(A.sockets, [], 'the page opened no WebSocket');
  assert.ok(B.sockets.length > 0, 'the other page did upgrade');
  assert.equal(await A.getByRole('status').isHidden(), true, 'no offline banner');
  await A.screenshot({ path: SHOTS + 'polling-ann.png' });
  await A.context().close();
  await B.context().close();
});

test('a reply in a thread, a mention, a pin and a delete show on the other page', async () => {
  const { A, B, ann } = await twoUsers('Friday');
  const annId = `demo-${ann.toLowerCase()}`;
  await say(A, 'Plan for Friday');
  await msg(B, 'Plan for Friday').getByRole('button', { name: 'Reply' }).click(T);
  const thread = B.getByRole('complementary', { name: 'Thread' });
  await thread.getByRole('textbox', { name: 'Reply' }).fill(`count me in @${annId}`);
  await thread.getByRole('button', { name: 'Reply', exact: true }).click();
  await thread.getByRole('listitem').filter({ hasText: 'count me in' }).waitFor(T);
  await msg(A, 'Plan for Friday').getByRole('button', { name: '1 reply' }).waitFor(T);
  await msg(A, 'count me in').getByText(`@${annId}`).waitFor(T);
  await A.getByRole('region', { name: /Mentions/ }).getByRole('button', { name: /count me in/ }).waitFor(T);
  await A.getByRole('heading', { name: 'Mentions (1)' }).waitFor(T);

  await msg(A, 'Plan for Friday').getByRole('button', { name: 'Pin' }).click();
  await B.getByText(`📌 ${ann}: Plan for Friday`).waitFor(T);
  await msg(A, 'Plan for Friday').getByRole('button', { name: 'Unpin' }).waitFor(T);
  assert.equal(await msg(B, 'Plan for Friday').getByRole('button', { name: /Pin|Unpin|Delete|Edit/ }).count(), 0, 'only the author or an admin is offered those');
  await B.screenshot({ path: SHOTS + 'thread-bob.png' });

  await msg(A, 'Plan for Friday').getByRole('button', { name: 'Delete' }).click();
  await log(B).getByRole('listitem').filter({ hasText: 'message deleted' }).waitFor(T);
  await B.getByText(`📌 ${ann}: Plan for Friday`).waitFor({ state: 'hidden', ...T });
  await log(B).getByRole('listitem').filter({ hasText: 'count me in' }).waitFor(T);
  await A.context().close();
  await B.context().close();
});

test('/ops with an admin token: log position, projections, nodes, the rate chart and audit verify', async () => {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  await page.goto(server.url + '/ops');
  await page.getByRole('textbox', { name: /JWT/ }).fill('not a token');
  await page.getByRole('button', { name: 'Open' }).click();
  await page.getByRole('alert').filter({ hasText: 'INVALID_TOKEN' }).waitFor(T);
  await page.getByRole('textbox', { name: /JWT/ }).fill(adminToken());
  await page.getByRole('button', { name: 'Open' }).click();
  await page.getByText(/^embedded log at position \d+; read store sqlite$/).waitFor(T);
  await page.getByRole('row', { name: /^chat \d+ 0$/ }).waitFor(T);
  await page.getByRole('row', { name: /\(this node\)/ }).waitFor(T);
  await page.locator('#chart polyline').waitFor({ state: 'attached', ...T });
  await page.getByText(/messages\/s now/).waitFor(T);
  await page.getByRole('button', { name: 'Run audit verify' }).click();
  await page.getByRole('status').filter({ hasText: /^Log intact: \d+ commits, \d+ events, \d+ aggregates verified/ }).waitFor(T);
  await page.screenshot({ path: SHOTS + 'ops.png', fullPage: true });
  await context.close();
});
