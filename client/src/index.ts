// @chat/client: the reference client of the chat contract (section 4.5), on socket.io-client.
//
// Owns what the spec's section 5 asks of a client: rejoining every room with `sinceOffset`
// after a reconnect (the last offset of each room is kept, so nothing is missed and nothing is
// emitted twice), sending over REST with the same `tempId` while the socket is down, an ordered
// queue of sends kept in a `QueueStorage` while HTTP is down too, and polling
// `GET /api/messages?after=` while the socket is down. It holds no view state: the application
// keeps its own from the events.
import { io, type Socket } from 'socket.io-client';
import { ChatError, request } from './http.js';
import { defaultStorage, type QueueStorage, type QueuedSend } from './queue.js';
import type * as W from './wire.js';

export * from './wire.js';
export { ChatError, request } from './http.js';
export { MemoryStorage, IndexedDbStorage, type QueueStorage, type QueuedSend } from './queue.js';

/** `online`: the socket is up. `polling`: it is down but REST answers. `offline`: neither. */
export type Status = 'connecting' | 'online' | 'polling' | 'offline';

/** Events of the client itself, next to the server's. */
export interface LocalEvents {
  status: Status;
  /** The sends not acknowledged yet, oldest first, each time the list changes. */
  queue: QueuedSend[];
  /** A queued send the server refused (it is dropped from the queue). */
  'send:failed': { send: QueuedSend; error: W.ErrorBody };
}

export type Events = W.ServerEvents & LocalEvents;

export interface ChatClientOptions {
  /** The server, e.g. `http://127.0.0.1:3000`. */
  url: string;
  token: string;
  /** Where the offline queue is kept; IndexedDB in a browser, memory elsewhere. */
  storage?: QueueStorage;
  /** Socket.IO transports, `['polling', 'websocket']` by default. */
  transports?: ('polling' | 'websocket')[];
  /** How often to poll while the socket is down; 5,000 ms. */
  pollIntervalMs?: number;
  /** How long to wait for an ack before trying REST; 10,000 ms. */
  ackTimeoutMs?: number;
}

/** What a send resolves with, however it reached the server: the `message:send` ack and the
 *  send's `tempId`. */
export interface SendResult {
  success: true;
  messageId: string;
  seq: number;
  tempId: string;
}

export interface SendOptions {
  parentId?: string;
  mentions?: string[];
  /** Given by the application to retry a send of its own; one is made otherwise. */
  tempId?: string;
}

interface Room {
  /** The last room event offset received: where a rejoin catches up from. */
  offset?: number;
  /** The last `seq` seen: where polling reads from. */
  seq?: number;
  /** Ids of the messages already emitted as `message:new`, newest last. */
  seen: Set<string>;
}

const SEEN_KEPT = 5000;

type Handler<E extends keyof Events> = (payload: Events[E]) => void;

export class ChatClient {
  readonly socket: Socket;
  private readonly url: string;
  private readonly token: string;
  private readonly storage: QueueStorage;
  private readonly pollIntervalMs: number;
  private readonly ackTimeoutMs: number;
  private readonly rooms = new Map<string, Room>();
  private readonly handlers = new Map<string, Set<(p: unknown) => void>>();
  private readonly waiting = new Map<string, { resolve: (r: SendResult) => void; reject: (e: ChatError) => void }>();
  private queue: QueuedSend[] = [];
  private loaded: Promise<void>;
  private draining = false;
  private retryTimer?: ReturnType<typeof setTimeout>;
  private pollTimer?: ReturnType<typeof setInterval>;
  private closed = false;
  private current: Status = 'connecting';

  constructor(options: ChatClientOptions) {
    this.url = options.url.replace(/\/$/, '');
    this.token = options.token;
    this.storage = options.storage ?? defaultStorage(this.url + '#' + (tokenUser(options.token) ?? ''));
    this.pollIntervalMs = options.pollIntervalMs ?? 5000;
    this.ackTimeoutMs = options.ackTimeoutMs ?? 10000;
    this.socket = io(this.url, {
      auth: { token: options.token },
      transports: options.transports ?? ['polling', 'websocket'],
      reconnection: true,
      reconnectionDelay: 1000,
      reconnectionDelayMax: 5000,
      reconnectionAttempts: Infinity,
      timeout: 20000,
    });
    this.socket.onAny((event: string, payload: unknown) => this.receive(event, payload));
    this.socket.on('connect', () => this.connected());
    this.socket.on('disconnect', () => this.down());
    this.socket.on('connect_error', () => this.down());
    this.loaded = this.storage.load().then(
      (q) => {
        this.queue = [...q, ...this.queue];
        if (this.queue.length) this.changed();
      },
      () => undefined,
    );
  }

  /** The connection as the client sees it. */
  get status(): Status {
    return this.current;
  }

  /** The sends not acknowledged yet, oldest first. */
  queued(): QueuedSend[] {
    return this.queue.slice();
  }

  on<E extends keyof Events>(event: E, handler: Handler<E>): () => void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler as (p: unknown) => void);
    return () => this.off(event, handler);
  }

  off<E extends keyof Events>(event: E, handler: Handler<E>): void {
    this.handlers.get(event)?.delete(handler as (p: unknown) => void);
  }

  /**
   * Joins a conversation's room and keeps it joined across reconnects. Without a
   * `sinceOffset`, the first join starts from the room's latest message (read over REST), so
   * that a reconnect catches up on everything after the join.
   */
  async join(conversationId: string, opts: { sinceOffset?: number } = {}): Promise<W.Joined | null> {
    let room = this.rooms.get(conversationId);
    if (!room) this.rooms.set(conversationId, (room = { seen: new Set() }));
    if (opts.sinceOffset !== undefined) room.offset = opts.sinceOffset;
    if (room.offset === undefined) {
      try {
        const page = await this.rest<W.MessagePage>('GET', `/api/messages?conversationId=${enc(conversationId)}&limit=1`);
        const last = page.messages[page.messages.length - 1];
        room.offset ??= last?.offset ?? 0;
        if (last) room.seq = Math.max(room.seq ?? 0, last.seq);
      } catch {
        // Joined without catch-up: polling and the next join fill in.
      }
    }
    if (!this.socket.connected) return null;
    return this.joinRoom(conversationId);
  }

  async leave(conversationId: string): Promise<void> {
    this.rooms.delete(conversationId);
    if (this.socket.connected) await this.emit('conversation:leave', { conversationId });
  }

  /**
   * Sends a message; resolves once the server has it, over the socket, over REST, or from the
   * queue when the network comes back. Sends leave in the order they were made.
   */
  async send(conversationId: string, content: string, opts: SendOptions = {}): Promise<SendResult> {
    await this.loaded;
    const item: QueuedSend = {
      tempId: opts.tempId ?? newTempId(),
      conversationId,
      content,
      queuedAt: new Date().toISOString(),
      ...(opts.parentId ? { parentId: opts.parentId } : {}),
      ...(opts.mentions?.length ? { mentions: opts.mentions } : {}),
    };
    const done = new Promise<SendResult>((resolve, reject) => this.waiting.set(item.tempId, { resolve, reject }));
    this.queue.push(item);
    this.changed();
    void this.drain();
    return done;
  }

  /**
   * Emits a client event over the socket and resolves with its ack (rejects on a refusal, and
   * at once while the socket is down: socket.io-client would otherwise hold it and send it
   * late). Edits, deletes, reactions, reads and pins fall back to REST by themselves.
   */
  async emit<E extends keyof W.ClientEvents>(event: E, payload: W.ClientEvents[E][0]): Promise<W.ClientEvents[E][1]> {
    if (!this.socket.connected) throw new ChatError('NETWORK', `${event}: the socket is down`);
    let ack: W.Ack<W.ClientEvents[E][1]>;
    try {
      ack = await this.socket.timeout(this.ackTimeoutMs).emitWithAck(event, payload);
    } catch {
      throw new ChatError('TIMEOUT', `no answer to ${event}`);
    }
    if (!ack.success) throw new ChatError(ack.error.code, ack.error.message);
    return ack;
  }

  /** The socket event when the socket is up, else the REST route that does the same. */
  private act<E extends keyof W.ClientEvents>(
    event: E,
    payload: W.ClientEvents[E][0],
    method: string,
    path: string,
    body?: unknown,
  ): Promise<W.ClientEvents[E][1]> {
    return this.socket.connected ? this.emit(event, payload) : this.rest(method, path, body);
  }

  edit(conversationId: string, messageId: string, content: string): Promise<W.Edited> {
    const path = `/api/messages/${enc(messageId)}`;
    return this.act('message:update', { conversationId, messageId, content }, 'PATCH', path, { conversationId, content });
  }
  delete(conversationId: string, messageId: string): Promise<W.Deleted> {
    const q = `?conversationId=${enc(conversationId)}`;
    return this.act('message:delete', { conversationId, messageId }, 'DELETE', `/api/messages/${enc(messageId)}${q}`);
  }
  react(conversationId: string, messageId: string, emoji: string): Promise<W.Reaction> {
    const path = `/api/messages/${enc(messageId)}/reactions`;
    return this.act('reaction:add', { conversationId, messageId, emoji }, 'POST', path, { conversationId, emoji });
  }
  unreact(conversationId: string, messageId: string, reactionId: string): Promise<W.Positioned> {
    const path = `/api/messages/${enc(messageId)}/reactions/${enc(reactionId)}?conversationId=${enc(conversationId)}`;
    return this.act('reaction:remove', { conversationId, messageId, reactionId }, 'DELETE', path);
  }
  markRead(conversationId: string, messageIds: string[]): Promise<W.Positioned> {
    const p = { conversationId, messageIds };
    return this.act('message:read', p, 'POST', '/api/messages/read', p);
  }
  typing(conversationId: string, on: boolean): Promise<{}> {
    return this.emit(on ? 'typing:start' : 'typing:stop', { conversationId });
  }
  pin(conversationId: string, messageId: string, on = true): Promise<W.Pinned> {
    const path = `/api/messages/${enc(messageId)}/pin?conversationId=${enc(conversationId)}`;
    return this.act(on ? 'message:pin' : 'message:unpin', { conversationId, messageId }, on ? 'POST' : 'DELETE', path);
  }
  presence(conversationId: string): Promise<W.PresenceResponse> {
    return this.emit('presence:request', { conversationId });
  }

  /** A REST call with the client's token; rejects with a `ChatError`. */
  rest<T>(method: string, path: string, body?: unknown): Promise<T> {
    return request<T>(this.url, this.token, method, path, body);
  }


  /** Stops everything: the socket, polling and retries. Unsent messages stay in the storage. */
  close(): void {
    this.closed = true;
    clearInterval(this.pollTimer);
    clearTimeout(this.retryTimer);
    this.socket.close();
  }

  // ---- internals ---------------------------------------------------------------------

  private dispatch(event: string, payload: unknown): void {
    for (const h of this.handlers.get(event) ?? []) {
      try {
        h(payload);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  private setStatus(s: Status): void {
    if (s === this.current) return;
    this.current = s;
    this.dispatch('status', s);
  }

  private changed(): void {
    void this.storage.save(this.queue).catch(() => undefined);
    this.dispatch('queue', this.queued());
  }

  /** A server event: room events older than the room's offset and known messages are dropped. */
  private receive(event: string, payload: unknown): void {
    const p = payload as { conversationId?: string; offset?: unknown; id?: string; seq?: number };
    const room = p && typeof p.conversationId === 'string' ? this.rooms.get(p.conversationId) : undefined;
    if (room && typeof p.offset === 'number') {
      if (room.offset !== undefined && p.offset <= room.offset) return;
      room.offset = p.offset;
    }
    if (event === 'message:new' && room && !this.firstSight(room, p as W.MessageNew)) return;
    this.dispatch(event, payload);
  }

  /** Records a message as emitted; false when it was already. */
  private firstSight(room: Room, m: { id: string; seq: number }): boolean {
    if (room.seen.has(m.id)) return false;
    room.seen.add(m.id);
    if (room.seen.size > SEEN_KEPT) room.seen.delete(room.seen.values().next().value as string);
    room.seq = Math.max(room.seq ?? 0, m.seq);
    return true;
  }

  private async joinRoom(conversationId: string): Promise<W.Joined | null> {
    const room = this.rooms.get(conversationId);
    if (!room) return null;
    return this.emit('conversation:join', {
      conversationId,
      ...(room.offset !== undefined ? { sinceOffset: room.offset } : {}),
    });
  }

  private connected(): void {
    clearInterval(this.pollTimer);
    this.pollTimer = undefined;
    this.setStatus('online');
    for (const id of this.rooms.keys()) {
      this.joinRoom(id).catch((e: ChatError) =>
        this.dispatch('conversation:join:error', { message: e.message, code: e.code, conversationId: id }),
      );
    }
    void this.drain();
  }

  private down(): void {
    if (this.closed || this.socket.connected) return;
    if (this.current === 'online' || this.current === 'connecting') this.setStatus('polling');
    if (!this.pollTimer) {
      this.pollTimer = setInterval(() => void this.poll(), this.pollIntervalMs);
      void this.poll();
    }
    void this.drain();
  }

  /** Reads what was sent to each joined room since its last `seq`, while the socket is down. */
  private async poll(): Promise<void> {
    if (this.socket.connected || this.closed) return;
    try {
      for (const [id, room] of this.rooms) {
        for (let more = true; more; ) {
          const after = room.seq !== undefined ? `&after=${room.seq}` : '';
          const page = await this.rest<W.MessagePage>('GET', `/api/messages?conversationId=${enc(id)}&limit=200${after}`);
          for (const m of page.messages) this.emitFetched(room, m);
          more = page.hasMore && room.seq !== undefined;
        }
      }
      if (!this.socket.connected) this.setStatus('polling');
      void this.drain();
    } catch (e) {
      if (e instanceof ChatError && e.transient && !this.socket.connected) this.setStatus('offline');
    }
  }

  /** A message read over REST, emitted as `message:new` unless already seen. */
  private emitFetched(room: Room, m: W.Message | W.SentMessage): void {
    if (!this.firstSight(room, m)) return;
    const { position: _p, ...sent } = m as W.SentMessage;
    const msg: W.MessageNew = 'reactions' in m ? messageNewOf(m) : sent;
    this.dispatch('message:new', msg);
  }

  /** Sends the queue's head until it is empty or the network fails; the order is kept. */
  private async drain(): Promise<void> {
    if (this.draining || this.closed) return;
    this.draining = true;
    clearTimeout(this.retryTimer);
    try {
      await this.loaded;
      while (this.queue.length && !this.closed) {
        const item = this.queue[0]!;
        let result: SendResult;
        try {
          result = await this.deliver(item);
        } catch (e) {
          const err = e instanceof ChatError ? e : new ChatError('INTERNAL', String(e));
          if (err.transient) {
            if (!this.socket.connected && (err.code === 'NETWORK' || err.status === 502 || err.status === 503 || err.status === 504)) this.setStatus('offline');
            this.retryTimer = setTimeout(() => void this.drain(), 1000);
            return;
          }
          this.queue.shift();
          this.changed();
          this.waiting.get(item.tempId)?.reject(err);
          this.waiting.delete(item.tempId);
          this.dispatch('send:failed', { send: item, error: { code: err.code, message: err.message } });
          continue;
        }
        this.queue.shift();
        this.changed();
        this.waiting.get(item.tempId)?.resolve(result);
        this.waiting.delete(item.tempId);
      }
    } finally {
      this.draining = false;
    }
  }

  private async deliver(item: QueuedSend): Promise<SendResult> {
    const payload = {
      conversationId: item.conversationId,
      content: item.content,
      tempId: item.tempId,
      ...(item.parentId ? { parentId: item.parentId } : {}),
      ...(item.mentions ? { mentions: item.mentions } : {}),
    };
    if (this.socket.connected) {
      try {
        const ack = await this.emit('message:send', payload);
        return { success: true, messageId: ack.messageId, seq: ack.seq, tempId: item.tempId };
      } catch (e) {
        if (!(e instanceof ChatError) || e.code !== 'TIMEOUT') throw e;
        // No ack: REST with the same tempId, which the server answers with the first send.
      }
    }
    const sent = await this.rest<W.SentMessage>('POST', '/api/messages', payload);
    const room = this.rooms.get(item.conversationId);
    if (room) this.emitFetched(room, sent);
    if (!this.socket.connected) this.setStatus('polling');
    return { success: true, messageId: sent.id, seq: sent.seq, tempId: item.tempId };
  }
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

/** A fresh `tempId`, as `send` makes one. */
export function newTempId(): string {
  return 'tmp_' + globalThis.crypto.randomUUID();
}

/** A message read over REST in the shape of its `message:new` (which has no mentions). */
export function messageNewOf(m: W.Message): W.MessageNew {
  return {
    id: m.id,
    conversationId: m.conversationId,
    senderId: m.senderId,
    content: m.content,
    ...(m.erased ? { erased: m.erased } : {}),
    ...(m.expired ? { expired: m.expired } : {}),
    createdAt: m.createdAt ?? '',
    seq: m.seq,
    offset: m.offset,
    sender: { id: m.sender.id, name: m.sender.name, ...(m.sender.avatarUrl ? { avatarUrl: m.sender.avatarUrl } : {}) },
    ...(m.tempId ? { tempId: m.tempId } : {}),
    ...(m.parentId ? { parentId: m.parentId } : {}),
  };
}

/** The `userId` claim of a JWT, read without checking it (to name the queue's key, or the
 *  signed-in user in a page). */
export function tokenUser(token: string): string | undefined {
  try {
    const part = token.split('.')[1] ?? '';
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
    const id = (JSON.parse(json) as { userId?: unknown }).userId;
    return typeof id === 'string' ? id : undefined;
  } catch {
    return undefined;
  }
}
