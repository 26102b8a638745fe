// REST calls with a token, and the error every refusal becomes. No socket: the operator page
// uses this alone.
import type * as W from './wire.js';

/** A refusal from the server (an ack's or REST's `{message, code}`), or a network failure. */
export class ChatError extends Error {
  constructor(
    readonly code: W.ErrorCode,
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'ChatError';
  }
  /** Worth trying again later: the network, the server unavailable, a rate limit. */
  get transient(): boolean {
    return ['NETWORK', 'TIMEOUT', 'UNAVAILABLE', 'RATE_LIMIT', 'INTERNAL'].includes(this.code);
  }
}

/** `method path` on `url` with `token`; the JSON answer, or a `ChatError` (`NETWORK` when the
 *  server is not reached, else the body's `{message, code}`). */
export async function request<T>(url: string, token: string, method: string, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url + path, {
      method,
      headers: {
        authorization: 'Bearer ' + token,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ChatError('NETWORK', e instanceof Error ? e.message : String(e));
  }
  const text = await res.text().catch(() => '');
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const err = (json as { error?: W.ErrorBody } | undefined)?.error;
    const code = err?.code ?? (res.status >= 500 ? 'UNAVAILABLE' : 'INVALID_INPUT');
    throw new ChatError(code, err?.message ?? `${method} ${path}: ${res.status}`, res.status);
  }
  return json as T;
}
