// Where the offline queue is kept: IndexedDB in a browser, memory in Node, or any
// `QueueStorage` the application gives.

/** A send that the server has not acknowledged yet, in the order it was made. */
export interface QueuedSend {
  tempId: string;
  conversationId: string;
  content: string;
  parentId?: string;
  mentions?: string[];
  /** When the application called `send` (ISO 8601). */
  queuedAt: string;
}

/** Keeps the queue across restarts of the page or process. `save` replaces it whole. */
export interface QueueStorage {
  load(): Promise<QueuedSend[]>;
  save(queue: QueuedSend[]): Promise<void>;
}

export class MemoryStorage implements QueueStorage {
  private items: QueuedSend[] = [];
  async load(): Promise<QueuedSend[]> {
    return this.items.slice();
  }
  async save(queue: QueuedSend[]): Promise<void> {
    this.items = queue.slice();
  }
}

/** One record per key (a server and a user) in the `queue` store of database `chat-client`. */
export class IndexedDbStorage implements QueueStorage {
  constructor(private readonly key: string) {}

  private open(): Promise<IDBDatabase> {
    return new Promise((resolve, reject) => {
      const req = indexedDB.open('chat-client', 1);
      req.onupgradeneeded = () => req.result.createObjectStore('queue');
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }

  private async run<T>(mode: IDBTransactionMode, f: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
    const db = await this.open();
    try {
      return await new Promise<T>((resolve, reject) => {
        const req = f(db.transaction('queue', mode).objectStore('queue'));
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
      });
    } finally {
      db.close();
    }
  }

  async load(): Promise<QueuedSend[]> {
    const v = await this.run('readonly', (s) => s.get(this.key));
    return Array.isArray(v) ? (v as QueuedSend[]) : [];
  }

  async save(queue: QueuedSend[]): Promise<void> {
    await this.run('readwrite', (s) => s.put(queue, this.key));
  }
}

/** IndexedDB where there is one, else memory. */
export function defaultStorage(key: string): QueueStorage {
  return typeof indexedDB === 'undefined' ? new MemoryStorage() : new IndexedDbStorage(key);
}
