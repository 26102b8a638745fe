// The Node.js reference of the benchmark (issue 6): a minimal socket.io server with the events
// the load generator uses, written the way the spec's own examples are (socket.io rooms, a
// JWT in `auth.token`, `saveMessage` then ack then `io.to(room).emit`). One process, as a
// socket.io server runs without a cluster adapter.
//
//   PORT=3100 JWT_SECRET=… node server.js                      # broadcast only
//   PORT=3101 JWT_SECRET=… DATABASE_URL=postgres://… node server.js   # INSERT before the ack
'use strict';
const http = require('node:http');
const crypto = require('node:crypto');
const { Server } = require('socket.io');
const jwt = require('jsonwebtoken');

const SECRET = process.env.JWT_SECRET;
const pool = process.env.DATABASE_URL ? new (require('pg').Pool)({ connectionString: process.env.DATABASE_URL, max: 16 }) : null;
const users = new Map(); // id -> {id, name}
const conversations = new Map(); // id -> {members: Set, seq}

async function schema() {
  if (!pool) return;
  await pool.query(`
    CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, name TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS conversations (id TEXT PRIMARY KEY, title TEXT, last_seq BIGINT NOT NULL DEFAULT 0, last_message_at TIMESTAMPTZ);
    CREATE TABLE IF NOT EXISTS participants (conversation_id TEXT, user_id TEXT, PRIMARY KEY (conversation_id, user_id));
    CREATE TABLE IF NOT EXISTS messages (id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, seq BIGINT NOT NULL, sender_id TEXT NOT NULL,
      content TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now(), UNIQUE (conversation_id, seq));`);
}

function auth(req) {
  try {
    return jwt.verify((req.headers.authorization || '').replace(/^Bearer /, ''), SECRET, { algorithms: ['HS256'] });
  } catch {
    return null;
  }
}

function body(req) {
  return new Promise((resolve) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => { try { resolve(JSON.parse(data || '{}')); } catch { resolve(null); } });
  });
}

function reply(res, status, value) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

const server = http.createServer(async (req, res) => {
  const claims = auth(req);
  if (!claims) return reply(res, 401, { error: { message: 'Invalid token', code: 'UNAUTHORIZED' } });
  const input = await body(req);
  if (!input) return reply(res, 400, { error: { message: 'Bad JSON', code: 'INVALID_INPUT' } });
  try {
    const user = req.url.match(/^\/api\/users\/([^/?]+)$/);
    if (req.method === 'PUT' && user && claims.role === 'admin') {
      users.set(user[1], { id: user[1], name: input.name });
      if (pool) await pool.query('INSERT INTO users (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = $2', [user[1], input.name]);
      return reply(res, 200, users.get(user[1]));
    }
    if (req.method === 'POST' && req.url === '/api/conversations') {
      const id = 'conv_' + crypto.randomUUID();
      const members = new Set([claims.userId, ...(input.participantIds || [])]);
      conversations.set(id, { members, seq: 0 });
      if (pool) {
        await pool.query('INSERT INTO conversations (id, title) VALUES ($1, $2)', [id, input.title || null]);
        await pool.query('INSERT INTO participants SELECT $1, unnest($2::text[])', [id, [...members]]);
      }
      return reply(res, 201, { id, title: input.title || null, participants: [...members] });
    }
    reply(res, 404, { error: { message: 'Not found', code: 'NOT_FOUND' } });
  } catch (e) {
    reply(res, 503, { error: { message: e.message, code: 'UNAVAILABLE' } });
  }
});

const io = new Server(server, { cors: { origin: false } });
io.use((socket, next) => {
  try {
    socket.data.user = jwt.verify(socket.handshake.auth.token, SECRET, { algorithms: ['HS256'] }).userId;
    next();
  } catch {
    next(new Error('INVALID_TOKEN'));
  }
});

async function saveMessage(userId, data) {
  const conv = conversations.get(data.conversationId);
  const id = 'msg_' + crypto.randomUUID();
  const createdAt = new Date().toISOString();
  let seq;
  if (pool) {
    const { rows } = await pool.query(
      `WITH c AS (UPDATE conversations SET last_seq = last_seq + 1, last_message_at = now() WHERE id = $1 RETURNING last_seq)
       INSERT INTO messages (id, conversation_id, seq, sender_id, content) SELECT $2, $1, last_seq, $3, $4 FROM c RETURNING seq`,
      [data.conversationId, id, userId, data.content]);
    seq = Number(rows[0].seq);
  } else {
    seq = ++conv.seq;
  }
  const sender = users.get(userId) || { id: userId, name: userId };
  return { id, conversationId: data.conversationId, senderId: userId, content: data.content, createdAt, seq, tempId: data.tempId, sender: { id: sender.id, name: sender.name } };
}

io.on('connection', (socket) => {
  const userId = socket.data.user;
  socket.join(`user-${userId}`);
  socket.emit('auth:success', { userId });
  socket.on('conversation:join', (data, callback) => {
    const conv = conversations.get(data && data.conversationId);
    if (!conv || !conv.members.has(userId)) return callback({ success: false, error: { message: 'Not a participant', code: 'NOT_PARTICIPANT' } });
    const room = `conversation-${data.conversationId}`;
    socket.join(room);
    callback({ success: true, conversationId: data.conversationId, participantCount: io.sockets.adapter.rooms.get(room)?.size || 1 });
  });
  socket.on('message:send', async (data, callback) => {
    const conv = conversations.get(data && data.conversationId);
    if (!conv || !conv.members.has(userId) || typeof data.content !== 'string' || !data.content) {
      return callback({ success: false, error: { message: 'Invalid', code: 'INVALID_INPUT' } });
    }
    try {
      const message = await saveMessage(userId, data);
      callback({ success: true, messageId: message.id, seq: message.seq });
      io.to(`conversation-${data.conversationId}`).emit('message:new', message);
    } catch (error) {
      callback({ success: false, error: { message: error.message, code: 'UNAVAILABLE' } });
    }
  });
});

schema().then(() => server.listen(Number(process.env.PORT || 3100), '127.0.0.1', () => {
  console.log(`node reference listening on http://127.0.0.1:${server.address().port}${pool ? ' (Postgres)' : ''}`);
}));
