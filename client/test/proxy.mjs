// A loopback HTTP proxy in front of `chat serve` that a test can break on purpose: refuse
// WebSocket upgrades (the client must fall back to long-polling), refuse Socket.IO altogether
// (the client must use REST and poll), or stop listening (HTTP down: the client must queue).
import http from 'node:http';
import net from 'node:net';

/** mode: 'open' | 'no-websocket' | 'no-socketio'. `down()` closes the port, `up()` reopens it. */
export async function startProxy(target, port = 0) {
  const to = new URL(target);
  const sockets = new Set();
  const proxy = {
    mode: 'open',
    port,
    url: '',
    server: null,
    async up() {
      const server = http.createServer((req, res) => {
        if (proxy.mode === 'no-socketio' && req.url.startsWith('/socket.io/')) {
          res.writeHead(503).end();
          return;
        }
        const up = http.request(
          { host: to.hostname, port: to.port, path: req.url, method: req.method, headers: req.headers },
          (r) => {
            res.writeHead(r.statusCode, r.headers);
            r.pipe(res);
          },
        );
        up.on('error', () => res.destroy());
        req.pipe(up);
      });
      server.on('connection', (s) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
      });
      server.on('upgrade', (req, socket, head) => {
        if (proxy.mode !== 'open') return socket.destroy();
        const up = net.connect(Number(to.port), to.hostname, () => {
          const lines = [`${req.method} ${req.url} HTTP/1.1`];
          for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
          up.write(lines.join('\r\n') + '\r\n\r\n');
          if (head.length) up.write(head);
          up.pipe(socket).pipe(up);
        });
        sockets.add(up);
        up.on('close', () => sockets.delete(up));
        up.on('error', () => socket.destroy());
        socket.on('error', () => up.destroy());
      });
      await new Promise((resolve) => server.listen(proxy.port, '127.0.0.1', resolve));
      proxy.port = server.address().port;
      proxy.url = `http://127.0.0.1:${proxy.port}`;
      proxy.server = server;
    },
    /** Closes the port and every connection through it. */
    async down() {
      const server = proxy.server;
      proxy.server = null;
      for (const s of sockets) s.destroy();
      if (server) await new Promise((resolve) => server.close(resolve));
    },
    /** Cuts every open connection (the client sees its transport fail) but keeps listening. */
    cut() {
      for (const s of sockets) s.destroy();
    },
  };
  await proxy.up();
  return proxy;
}
