// The operator page at `/ops`: with an admin token, the log position, the projections and
// their lag, the nodes and their sockets (GET /api/ops/status every 2 s), messages per second
// from /metrics (`chat_send_ack_seconds_count`), and `audit verify` on demand.
import { ChatError, request } from '../../client/src/http.js';
import type { AuditVerified, OpsStatus } from '../../client/src/wire.js';

const $ = (id: string) => document.getElementById(id) as HTMLElement;
let token = sessionStorage.getItem('chat.ops.token') ?? '';
const rates: number[] = [];
let lastCount: { n: number; at: number } | undefined;

const api = <T>(method: string, path: string): Promise<T> => request<T>(location.origin, token, method, path);
const said = (e: unknown) => (e instanceof ChatError ? `${e.message} (${e.code})` : String(e));

function cell(text: string, num = false, cls = ''): HTMLTableCellElement {
  const td = document.createElement('td');
  td.textContent = text;
  td.className = (num ? 'num ' : '') + cls;
  return td;
}

function row(...cells: HTMLTableCellElement[]): HTMLTableRowElement {
  const tr = document.createElement('tr');
  tr.append(...cells);
  return tr;
}

async function refresh(): Promise<void> {
  try {
    const s = await api<OpsStatus>('GET', '/api/ops/status');
    $('error').textContent = '';
    $('console').hidden = false;
    $('log').textContent = `${s.log.backend} log at position ${s.log.position}; read store ${s.readStore.backend}`;
    $('projections').replaceChildren(
      ...s.projections.map((p) => row(cell(p.name), cell(String(p.checkpoint), true), cell(String(p.lag), true, p.lag > 1000 ? 'lagging' : ''))),
    );
    $('nodes').replaceChildren(
      ...s.nodes.map((n) => row(cell(n.id + (n.thisNode ? ' (this node)' : '')), cell(String(n.users), true), cell(n.sockets === undefined ? '—' : String(n.sockets), true))),
    );
    $('node').textContent = `${s.nodes.length} node${s.nodes.length === 1 ? '' : 's'}`;
  } catch (e) {
    $('error').textContent = said(e);
  }
  await sample();
}

/** Messages per second since the last sample, from the Prometheus counter of acked sends. */
async function sample(): Promise<void> {
  const text = await fetch('/metrics').then((r) => r.text()).catch(() => '');
  const m = text.match(/^chat_send_ack_seconds_count (\d+(?:\.\d+)?)/m);
  if (!m) return;
  const now = { n: Number(m[1]), at: Date.now() };
  if (lastCount) rates.push(Math.max(0, (now.n - lastCount.n) / ((now.at - lastCount.at) / 1000)));
  lastCount = now;
  if (rates.length > 60) rates.shift();
  draw();
}

function draw(): void {
  const svg = $('chart');
  const max = Math.max(1, ...rates);
  const pts = rates.map((r, i) => `${(i * 480) / 59},${115 - (r / max) * 105}`).join(' ');
  const ns = 'http://www.w3.org/2000/svg';
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('points', pts);
  line.setAttribute('fill', 'none');
  line.setAttribute('stroke', '#0b57d0');
  line.setAttribute('stroke-width', '2');
  const label = document.createElementNS(ns, 'text');
  label.setAttribute('x', '6');
  label.setAttribute('y', '14');
  label.setAttribute('font-size', '11');
  label.textContent = `max ${max.toFixed(1)}/s`;
  svg.replaceChildren(line, label);
  const now = rates[rates.length - 1] ?? 0;
  $('rate-now').textContent = `${now.toFixed(1)} messages/s now, over the last ${rates.length * 2} s`;
}

$('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  token = ($('token') as HTMLInputElement).value.trim();
  sessionStorage.setItem('chat.ops.token', token);
  void refresh();
});

$('verify').addEventListener('click', async () => {
  const out = $('verified');
  out.textContent = 'Verifying every chain of the log…';
  out.className = '';
  try {
    const v = await api<AuditVerified>('POST', '/api/ops/audit/verify');
    out.className = v.intact ? 'ok' : 'broken';
    out.textContent = v.intact
      ? `Log intact: ${v.commits} commits, ${v.events} events, ${v.aggregates} aggregates verified in ${v.tookMs} ms.`
      : `BROKEN at position ${v.brokenAt}: ${v.reason}`;
  } catch (e) {
    out.className = 'broken';
    out.textContent = said(e);
  }
});

setInterval(() => void (token && refresh()), 2000);
if (token) void refresh();
