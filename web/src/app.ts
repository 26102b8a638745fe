// The web app served at `/`: sign-in, the conversation list, one open conversation with its
// thread panel. All traffic goes through @chat/client (reconnect, catch-up, REST fallback, the
// offline queue); this file only keeps view state and draws it. No framework: the DOM is
// rebuilt from state with textContent (never innerHTML of server data).
import { ChatClient, ChatError, messageNewOf, newTempId, tokenUser } from '../../client/src/index.js';
import type * as W from '../../client/src/wire.js';
import type { QueuedSend, Status } from '../../client/src/index.js';

type State = 'queued' | 'sending' | 'sent' | 'delivered' | 'read';
const RANK: Record<State, number> = { queued: 0, sending: 1, sent: 2, delivered: 3, read: 4 };

interface Msg {
  id?: string;
  tempId?: string;
  conversationId: string;
  senderId: string;
  senderName: string;
  content: string | null;
  gone?: string;
  createdAt: string;
  seq: number;
  editedAt?: string | null;
  deletedAt?: string | null;
  reactions: Map<string, { emoji: string; userId: string }>;
  parentId?: string;
  replyCount: number;
  state: State;
}

interface Conv {
  summary: W.ConversationSummary;
  messages: Map<string, Msg>;
  pending: Map<string, Msg>;
  loaded: boolean;
  hasMore: boolean;
  names: Map<string, string>;
  online: Set<string>;
  typing: Map<string, { name: string; timer: ReturnType<typeof setTimeout> }>;
  pinned: Set<string>;
  unread: number;
}

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const el = <K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]> = {}, ...kids: (Node | string)[]) => {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...kids);
  return e;
};

let client: ChatClient | undefined;
let me = '';
let open: string | undefined;
let thread: string | undefined;
const convs = new Map<string, Conv>();
const mentions: W.MentionNew[] = [];
let typingOff: ReturnType<typeof setTimeout> | undefined;
let listTimer: ReturnType<typeof setInterval> | undefined;

// ---- sign-in ----------------------------------------------------------------------------

$('demo-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const name = $<HTMLInputElement>('demo-name').value.trim();
  const res = await fetch('/api/demo/session', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name }),
  }).catch(() => undefined);
  if (!res) return void ($('signin-error').textContent = 'The server does not answer.');
  if (res.status === 404) return void ($('signin-error').textContent = 'Demo mode is off on this server: sign in with a token.');
  const body = (await res.json().catch(() => ({}))) as Partial<W.DemoSession> & { error?: W.ErrorBody };
  if (!res.ok || !body.token) return void ($('signin-error').textContent = body.error?.message ?? `Sign-in failed (${res.status}).`);
  start(body.token);
});

$('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  start($<HTMLInputElement>('token').value.trim());
});

$('signout').addEventListener('click', () => {
  sessionStorage.removeItem('chat.token');
  location.reload();
});

function start(token: string): void {
  sessionStorage.setItem('chat.token', token);
  me = tokenUser(token) ?? '';
  $('signin').hidden = true;
  $('app').hidden = false;
  $('signout').hidden = false;
  $('me').textContent = `Signed in as ${me}`;
  client = new ChatClient({ url: location.origin, token });
  wire(client);
  void refreshList();
  void loadMentions();
  listTimer = setInterval(() => void refreshList(), 5000);
}

// ---- events -------------------------------------------------------------------------------

function wire(c: ChatClient): void {
  c.on('auth:error', (e) => {
    clearInterval(listTimer);
    c.close();
    sessionStorage.removeItem('chat.token');
    $('app').hidden = true;
    $('signin').hidden = false;
    $('signin-error').textContent = `Signed out: ${e.message} (${e.code})`;
  });
  c.on('status', () => banner());
  c.on('queue', () => {
    banner();
    drawMessages();
  });
  c.on('send:failed', ({ send, error }) => {
    convs.get(send.conversationId)?.pending.delete(send.tempId);
    $('send-error').textContent = `Not sent: ${error.message} (${error.code})`;
    drawMessages();
  });
  c.on('message:new', (m) => onMessage(m));
  c.on('message:updated', (u) => {
    const m = convs.get(u.conversationId)?.messages.get(u.id);
    if (!m) return;
    m.content = u.content;
    m.gone = goneOf(u);
    m.editedAt = u.editedAt;
    drawMessages();
  });
  c.on('message:deleted', (d) => {
    const m = convs.get(d.conversationId)?.messages.get(d.id);
    if (m) {
      m.deletedAt = d.deletedAt;
      m.content = null;
    }
    drawMessages();
  });
  c.on('reaction:added', (r) => {
    convs.get(r.conversationId)?.messages.get(r.messageId)?.reactions.set(r.id, { emoji: r.emoji, userId: r.userId });
    drawMessages();
  });
  c.on('reaction:removed', (r) => {
    convs.get(r.conversationId)?.messages.get(r.messageId)?.reactions.delete(r.id);
    drawMessages();
  });
  c.on('message:delivered', (d) => {
    const m = convs.get(d.conversationId)?.messages.get(d.messageId);
    if (m) raise(m, 'delivered');
    drawMessages();
  });
  c.on('message:read:receipt', (r) => {
    const conv = convs.get(r.conversationId);
    for (const id of r.messageIds) {
      const m = conv?.messages.get(id);
      if (m) raise(m, 'read');
    }
    drawMessages();
  });
  c.on('thread:updated', (t) => {
    const m = convs.get(t.conversationId)?.messages.get(t.messageId);
    if (m) m.replyCount = t.replyCount;
    drawMessages();
  });
  c.on('message:pinned', (p) => {
    convs.get(p.conversationId)?.pinned.add(p.messageId);
    drawMessages();
  });
  c.on('message:unpinned', (p) => {
    convs.get(p.conversationId)?.pinned.delete(p.messageId);
    drawMessages();
  });
  c.on('mention:new', (m) => {
    mentions.unshift(m);
    drawMentions();
  });
  c.on('typing:user:start', (t) => {
    const conv = convs.get(t.conversationId);
    if (!conv || t.userId === me) return;
    clearTimeout(conv.typing.get(t.userId)?.timer);
    conv.typing.set(t.userId, { name: t.user.name, timer: setTimeout(() => stopTyping(t), 8000) });
    drawTyping();
  });
  c.on('typing:user:stop', (t) => stopTyping(t));
  c.on('user:online', (u) => {
    const conv = convs.get(u.conversationId);
    conv?.online.add(u.userId);
    if (u.user.name) conv?.names.set(u.userId, u.user.name);
    drawPresence();
  });
  c.on('user:offline', (u) => {
    convs.get(u.conversationId)?.online.delete(u.userId);
    drawPresence();
  });
  c.on('conversation:joined', () => void presence());
}

function stopTyping(t: { conversationId: string; userId: string }): void {
  const conv = convs.get(t.conversationId);
  clearTimeout(conv?.typing.get(t.userId)?.timer);
  conv?.typing.delete(t.userId);
  drawTyping();
}

function raise(m: Msg, s: State): void {
  if (RANK[s] > RANK[m.state]) m.state = s;
}

function goneOf(b: { erased?: boolean; expired?: boolean }): string | undefined {
  return b.erased ? 'erased' : b.expired ? 'expired' : undefined;
}

function fromNew(m: W.MessageNew, conv: Conv): Msg {
  return {
    id: m.id,
    conversationId: m.conversationId,
    senderId: m.senderId,
    senderName: m.sender.name ?? conv.names.get(m.senderId) ?? m.senderId,
    content: m.content,
    gone: goneOf(m),
    createdAt: m.createdAt,
    seq: m.seq,
    reactions: new Map(),
    parentId: m.parentId,
    replyCount: 0,
    state: 'sent',
  };
}

function fromRest(m: W.Message, conv: Conv): Msg {
  return {
    ...fromNew(messageNewOf(m), conv),
    editedAt: m.editedAt,
    deletedAt: m.deletedAt,
    reactions: new Map(m.reactions.map((r) => [r.id, { emoji: r.emoji, userId: r.userId }])),
    replyCount: m.thread?.replyCount ?? 0,
  };
}

function onMessage(m: W.MessageNew): void {
  const conv = convs.get(m.conversationId);
  if (!conv) return void refreshList();
  if (m.tempId) conv.pending.delete(m.tempId);
  const known = conv.messages.get(m.id);
  if (!known) conv.messages.set(m.id, fromNew(m, conv));
  conv.summary.lastMessage = { id: m.id, senderId: m.senderId, content: m.content, seq: m.seq, createdAt: m.createdAt, deletedAt: null };
  if (m.senderId !== me) {
    if (open === m.conversationId && document.visibilityState === 'visible') void markRead(conv, [m.id]);
    else if (!known) conv.unread += 1;
  }
  if (thread && m.parentId === thread) drawThread();
  drawList();
  drawMessages();
}

async function markRead(conv: Conv, ids: string[]): Promise<void> {
  if (!ids.length || !client) return;
  await client.markRead(conv.summary.id, ids.slice(-100)).catch(() => undefined);
}

// ---- conversations ------------------------------------------------------------------------

function newConv(s: W.ConversationSummary): Conv {
  return {
    summary: s,
    messages: new Map(),
    pending: new Map(),
    loaded: false,
    hasMore: false,
    names: new Map(),
    online: new Set(),
    typing: new Map(),
    pinned: new Set(),
    unread: s.unreadCount,
  };
}

/** The log position of this user's last conversation change: reads wait for it (`minPosition`). */
let seen = 0;

async function refreshList(): Promise<void> {
  if (!client) return;
  const list = await client.rest<W.ConversationList>('GET', `/api/conversations?minPosition=${seen}`).catch(() => undefined);
  if (!list) return;
  for (const s of list.conversations) {
    const conv = convs.get(s.id);
    if (conv) {
      conv.summary = s;
      if (open !== s.id) conv.unread = s.unreadCount;
    } else {
      convs.set(s.id, newConv(s));
      void client.join(s.id);
    }
  }
  drawList();
}

async function openConversation(id: string): Promise<void> {
  const conv = convs.get(id);
  if (!conv || !client) return;
  open = id;
  thread = undefined;
  conv.unread = 0;
  $('room').hidden = false;
  $('thread').hidden = true;
  $('room-title').textContent = conv.summary.title ?? id;
  drawList();
  const details = await client
    .rest<W.ConversationDetails>('GET', `/api/conversations/${encodeURIComponent(id)}?minPosition=${seen}`)
    .catch(() => undefined);
  if (details) {
    for (const p of details.participants) conv.names.set(p.userId, p.user.name ?? p.userId);
    conv.pinned = new Set(details.pinned);
  }
  if (!conv.loaded) await loadPage(conv);
  drawMessages();
  void presence();
  const theirs = [...conv.messages.values()].filter((m) => m.senderId !== me && m.id).map((m) => m.id as string);
  void markRead(conv, theirs);
  $('content').focus();
}

async function loadPage(conv: Conv, before?: number): Promise<void> {
  if (!client) return;
  const q = `/api/messages?conversationId=${encodeURIComponent(conv.summary.id)}&limit=50${before ? `&before=${before}` : ''}`;
  const page = await client.rest<W.MessagePage>('GET', q).catch(() => undefined);
  if (!page) return;
  for (const m of page.messages) if (!conv.messages.has(m.id)) conv.messages.set(m.id, fromRest(m, conv));
  if (!before || !conv.loaded) conv.hasMore = page.hasMore;
  if (before) conv.hasMore = page.hasMore;
  conv.loaded = true;
}

async function presence(): Promise<void> {
  if (!client || !open) return;
  const conv = convs.get(open);
  const r = await client.presence(open).catch(() => undefined);
  if (!r || !conv) return;
  conv.online = new Set(r.onlineUsers.map((u) => u.id));
  for (const u of r.onlineUsers) if (u.name) conv.names.set(u.id, u.name);
  drawPresence();
}

async function loadMentions(): Promise<void> {
  if (!client) return;
  const page = await client.rest<W.MentionPage>('GET', '/api/mentions?limit=20').catch(() => undefined);
  if (!page) return;
  for (const m of page.mentions.filter((m) => !m.read).reverse()) {
    mentions.push({ conversationId: m.conversationId, messageId: m.messageId, senderId: m.senderId, content: m.content, createdAt: m.createdAt ?? '' });
  }
  drawMentions();
}

$('new-conversation').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (!client) return;
  const participantIds = $<HTMLInputElement>('new-people').value.split(',').map((s) => s.trim()).filter(Boolean);
  const title = $<HTMLInputElement>('new-name').value.trim();
  try {
    const c = await client.rest<W.ConversationCreated>('POST', '/api/conversations', { ...(title ? { title } : {}), participantIds });
    seen = Math.max(seen, c.position);
    $('new-error').textContent = '';
    ($('new-conversation') as HTMLFormElement).reset();
    await refreshList();
    await openConversation(c.id);
  } catch (e) {
    $('new-error').textContent = e instanceof ChatError ? `${e.message} (${e.code})` : String(e);
  }
});

$('earlier').addEventListener('click', async () => {
  const conv = open ? convs.get(open) : undefined;
  if (!conv) return;
  const first = Math.min(...[...conv.messages.values()].map((m) => m.seq));
  await loadPage(conv, first);
  drawMessages();
});

// ---- composing ----------------------------------------------------------------------------

function mentionsIn(text: string, conv: Conv): string[] {
  const ids = [...text.matchAll(/@([\w.-]+)/g)].map((m) => m[1]!);
  return [...new Set(ids)].filter((id) => conv.names.has(id) && id !== me);
}

async function send(text: string, parentId?: string): Promise<void> {
  if (!client || !open) return;
  const conv = convs.get(open)!;
  const tempId = newTempId();
  const pending: Msg = {
    tempId,
    conversationId: open,
    senderId: me,
    senderName: conv.names.get(me) ?? me,
    content: text,
    createdAt: new Date().toISOString(),
    seq: Number.MAX_SAFE_INTEGER,
    reactions: new Map(),
    parentId,
    replyCount: 0,
    state: 'sending',
  };
  conv.pending.set(tempId, pending);
  drawMessages();
  $('send-error').textContent = '';
  try {
    const r = await client.send(open, text, { tempId, parentId, mentions: mentionsIn(text, conv) });
    const m = conv.messages.get(r.messageId);
    if (m) conv.pending.delete(tempId);
    else Object.assign(pending, { id: r.messageId, seq: r.seq, state: 'sent' });
    drawMessages();
  } catch (e) {
    conv.pending.delete(tempId);
    $('send-error').textContent = e instanceof ChatError ? `Not sent: ${e.message} (${e.code})` : String(e);
    drawMessages();
  }
}

function composer(form: string, input: string, parent: () => string | undefined): void {
  const box = $<HTMLTextAreaElement>(input);
  $(form).addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = box.value;
    if (!text.trim()) return;
    box.value = '';
    stopOwnTyping();
    void send(text, parent());
  });
  box.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey) {
      ev.preventDefault();
      ($(form) as HTMLFormElement).requestSubmit();
    }
  });
}
composer('composer', 'content', () => undefined);
composer('reply-form', 'reply', () => thread);

$('content').addEventListener('input', () => {
  if (!client || !open) return;
  if (!typingOff && client.status === 'online') void client.typing(open, true).catch(() => undefined);
  clearTimeout(typingOff);
  typingOff = setTimeout(stopOwnTyping, 3000);
});

function stopOwnTyping(): void {
  if (!typingOff) return;
  clearTimeout(typingOff);
  typingOff = undefined;
  if (client && open && client.status === 'online') void client.typing(open, false).catch(() => undefined);
}

$('thread-close').addEventListener('click', () => {
  thread = undefined;
  $('thread').hidden = true;
});

// ---- drawing ------------------------------------------------------------------------------

function banner(): void {
  const b = $('banner');
  const status: Status = client?.status ?? 'connecting';
  const queued = client?.queued().length ?? 0;
  const q = queued ? ` ${queued} message${queued > 1 ? 's' : ''} queued: sent when the connection is back.` : '';
  b.hidden = status === 'online' || status === 'connecting';
  b.textContent =
    status === 'offline'
      ? `You are offline.${q || ' Messages you send are queued.'}`
      : status === 'polling'
        ? `Live connection lost: sending over REST and checking for messages every 5 s.${q}`
        : '';
}

function drawList(): void {
  const ul = $('conversations');
  ul.replaceChildren(
    ...[...convs.values()].map((c) => {
      const label = c.summary.title ?? c.summary.id;
      const b = el('button', { type: 'button' }, el('span', {}, label));
      if (open === c.summary.id) b.setAttribute('aria-current', 'true');
      if (c.unread > 0) b.append(el('span', { className: 'badge', title: `${c.unread} unread` }, String(c.unread)));
      b.setAttribute('aria-label', c.unread > 0 ? `${label}, ${c.unread} unread` : label);
      b.addEventListener('click', () => void openConversation(c.summary.id));
      return el('li', {}, b);
    }),
  );
}

function stateOf(m: Msg, queued: QueuedSend[]): State {
  if (m.tempId && !m.id && queued.some((q) => q.tempId === m.tempId) && client?.status !== 'online') return 'queued';
  return m.state;
}

const STATE_TEXT: Record<State, string> = { queued: 'queued', sending: 'sending…', sent: '✓ sent', delivered: '✓✓ delivered', read: '✓✓ read' };

function text(content: string, conv: Conv): Node[] {
  return content.split(/(@[\w.-]+)/g).map((part) =>
    part.startsWith('@') && conv.names.has(part.slice(1)) ? el('span', { className: 'mention' }, part) : document.createTextNode(part),
  );
}

function item(m: Msg, conv: Conv, queued: QueuedSend[], inThread: boolean): HTMLLIElement {
  const mine = m.senderId === me;
  const li = el('li', { className: 'msg' + (mine ? ' mine' : '') });
  if (m.id) li.dataset.id = m.id;
  if (m.tempId && !m.id) li.dataset.temp = m.tempId;
  const time = el('time', { dateTime: m.createdAt }, m.createdAt ? new Date(m.createdAt).toLocaleTimeString() : '');
  li.append(el('span', { className: 'who' }, m.senderName));
  if (m.parentId && !inThread) li.append(el('span', { className: 'edited' }, '↳ reply '));
  const body = m.deletedAt
    ? el('span', { className: 'deleted text' }, 'message deleted')
    : m.content === null
      ? el('span', { className: 'deleted text' }, `message ${m.gone ?? 'removed'}`)
      : el('span', { className: 'text' }, ...text(m.content, conv));
  li.append(body, time);
  if (m.editedAt && !m.deletedAt) li.append(el('span', { className: 'edited' }, '(edited)'));
  if (mine) {
    const s = stateOf(m, queued);
    li.append(el('span', { className: 'state ' + s, title: s }, STATE_TEXT[s]));
    li.dataset.state = s;
  }
  if (m.id && !m.deletedAt && client) {
    const id = m.id;
    const actions = el('span', { className: 'actions' });
    const act = (label: string, f: () => Promise<unknown>) => {
      const b = el('button', { type: 'button' }, label);
      b.addEventListener('click', () => void f().catch((e: ChatError) => ($('send-error').textContent = `${e.message} (${e.code})`)));
      actions.append(b);
    };
    const c = client;
    act('React 👍', () => c.react(conv.summary.id, id, '👍'));
    if (!inThread && !m.parentId) act('Reply', async () => openThread(id));
    if (mine) {
      act('Edit', async () => {
        const next = prompt('Edit message', m.content ?? '');
        if (next && next.trim() && next !== m.content) await c.edit(conv.summary.id, id, next);
      });
    }
    if (mine || conv.summary.role === 'admin') {
      act('Delete', () => c.delete(conv.summary.id, id));
      if (!inThread) act(conv.pinned.has(id) ? 'Unpin' : 'Pin', () => c.pin(conv.summary.id, id, !conv.pinned.has(id)));
    }
    li.append(actions);
    if (m.replyCount > 0 && !inThread) {
      const b = el('button', { type: 'button', className: 'replies' }, `${m.replyCount} repl${m.replyCount > 1 ? 'ies' : 'y'}`);
      b.addEventListener('click', () => openThread(id));
      li.append(el('div', {}, b));
    }
  }
  if (m.reactions.size) {
    const counts = new Map<string, { n: number; mine?: string }>();
    for (const [rid, r] of m.reactions) {
      const x = counts.get(r.emoji) ?? { n: 0 };
      x.n += 1;
      if (r.userId === me) x.mine = rid;
      counts.set(r.emoji, x);
    }
    const row = el('div', { className: 'reactions', role: 'group' });
    row.setAttribute('aria-label', 'Reactions');
    for (const [emoji, { n, mine: rid }] of counts) {
      const b = el('button', { type: 'button', className: 'reaction' }, `${emoji} ${n}`);
      b.setAttribute('aria-pressed', String(!!rid));
      b.addEventListener('click', () => {
        if (!client || !m.id) return;
        void (rid ? client.unreact(conv.summary.id, m.id, rid) : client.react(conv.summary.id, m.id, emoji)).catch(() => undefined);
      });
      row.append(b);
    }
    li.append(row);
  }
  return li;
}

function ordered(conv: Conv): Msg[] {
  const real = [...conv.messages.values()].sort((a, b) => a.seq - b.seq);
  const pend = [...conv.pending.values()].filter((p) => !p.id || !conv.messages.has(p.id));
  return [...real, ...pend];
}

function drawMessages(): void {
  const conv = open ? convs.get(open) : undefined;
  if (!conv) return;
  const queued = client?.queued() ?? [];
  const list = $('messages');
  const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.replaceChildren(...ordered(conv).map((m) => item(m, conv, queued, false)));
  if (atEnd) list.scrollTop = list.scrollHeight;
  $('earlier').hidden = !conv.hasMore;
  const pins = [...conv.pinned].map((id) => conv.messages.get(id)).filter((m): m is Msg => !!m && !m.deletedAt);
  $('pinned').hidden = pins.length === 0;
  $('pinned').textContent = pins.length ? '📌 ' + pins.map((m) => `${m.senderName}: ${m.content ?? ''}`).join(' · ') : '';
  drawTyping();
  if (thread) drawThread();
}

function drawTyping(): void {
  const conv = open ? convs.get(open) : undefined;
  const names = conv ? [...conv.typing.values()].map((t) => t.name) : [];
  $('typing').textContent = names.length ? `${names.join(', ')} ${names.length > 1 ? 'are' : 'is'} typing…` : '';
}

function drawPresence(): void {
  const conv = open ? convs.get(open) : undefined;
  if (!conv) return;
  const names = [...conv.online].map((id) => conv.names.get(id) ?? id);
  $('presence').textContent = names.length ? `Online: ${names.join(', ')}` : '';
}

function drawMentions(): void {
  $('mention-count').textContent = mentions.length ? `(${mentions.length})` : '';
  $('mentions').replaceChildren(
    ...mentions.slice(0, 20).map((m) => {
      const b = el('button', { type: 'button' }, `${m.senderId}: ${m.content ?? ''}`);
      b.addEventListener('click', () => void openConversation(m.conversationId));
      return el('li', {}, b);
    }),
  );
}

function openThread(parentId: string): void {
  thread = parentId;
  $('thread').hidden = false;
  drawThread();
  $('reply').focus();
}

function drawThread(): void {
  const conv = open ? convs.get(open) : undefined;
  if (!conv || !thread) return;
  const queued = client?.queued() ?? [];
  const parent = conv.messages.get(thread);
  const replies = ordered(conv).filter((m) => m.parentId === thread);
  $('replies').replaceChildren(...[parent, ...replies].filter((m): m is Msg => !!m).map((m) => item(m, conv, queued, true)));
}

// A tab keeps its user (sessionStorage): two tabs can be two users.
const saved = sessionStorage.getItem('chat.token');
if (saved) start(saved);
