// A stand-in for a node's /v1/ws, for testing the SDK's socket: an HTTP proxy to a real node
// that answers WebSocket upgrades itself, speaking the protocol of docs/http-api.md (auth,
// subscribe; get over the node's /v1/keys, digests and merge over its /v1/sync/*), records what
// the page sent, and can push updates or close a session as a lagging subscriber's (4000).
const http = require('node:http');
const crypto = require('node:crypto');

function frame(opcode, payload) {
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x80 | opcode, n])
    : n < 65536 ? Buffer.from([0x80 | opcode, 126, n >> 8, n & 255])
      : Buffer.concat([Buffer.from([0x80 | opcode, 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; })()]);
  return Buffer.concat([head, payload]);
}

// Reads the complete client frames at the start of `buf`: [{opcode, payload}], and the rest.
function parse(buf) {
  const frames = [];
  for (;;) {
    if (buf.length < 2) break;
    let len = buf[1] & 127;
    let at = 2;
    if (len === 126) { if (buf.length < 4) break; len = buf.readUInt16BE(2); at = 4; }
    else if (len === 127) { if (buf.length < 10) break; len = Number(buf.readBigUInt64BE(2)); at = 10; }
    if (buf.length < at + 4 + len) break;
    const mask = buf.subarray(at, at + 4);
    const payload = Buffer.from(buf.subarray(at + 4, at + 4 + len));
    for (let i = 0; i < len; i++) payload[i] ^= mask[i % 4];
    frames.push({ opcode: buf[0] & 15, payload });
    buf = buf.subarray(at + 4 + len);
  }
  return [frames, buf];
}

function startProxy(nodeUrl, token) {
  const seen = []; // every message the page sent, parsed
  const sessions = new Set();
  const server = http.createServer(async (req, res) => {
    const body = await new Promise((r) => { const c = []; req.on('data', (d) => c.push(d)); req.on('end', () => r(Buffer.concat(c))); });
    const headers = { ...req.headers };
    delete headers.host;
    const answer = await fetch(nodeUrl + req.url, { method: req.method, headers, body: ['GET', 'HEAD'].includes(req.method) ? undefined : body });
    const out = {};
    answer.headers.forEach((v, k) => { if (!['content-encoding', 'transfer-encoding', 'content-length'].includes(k)) out[k] = v; });
    res.writeHead(answer.status, out);
    res.end(Buffer.from(await answer.arrayBuffer()));
  });
  server.on('upgrade', (req, socket) => {
    const accept = crypto.createHash('sha1').update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    const session = { socket, authed: !token, send: (m) => socket.write(frame(1, Buffer.from(JSON.stringify(m)))) };
    session.close = (code, reason) => {
      const p = Buffer.alloc(2 + reason.length); p.writeUInt16BE(code); p.write(reason, 2);
      socket.end(frame(8, p));
    };
    sessions.add(session);
    socket.on('close', () => sessions.delete(session));
    socket.on('error', () => sessions.delete(session));
    let buf = Buffer.alloc(0);
    socket.on('data', async (d) => {
      let frames;
      [frames, buf] = parse(Buffer.concat([buf, d]));
      for (const f of frames) {
        if (f.opcode === 8) { socket.end(frame(8, f.payload.subarray(0, 2))); continue; }
        if (f.opcode !== 1) continue;
        const m = JSON.parse(f.payload.toString());
        seen.push(m);
        await handle(session, m);
      }
    });
  });
  async function handle(session, m) {
    if (m.type === 'auth') {
      if (m.token === token) { session.authed = true; return session.send({ type: 'authed' }); }
      session.send({ type: 'error', error: { code: 'unauthorized', message: 'unknown token' } });
      return session.close(4001, 'refused');
    }
    if (!session.authed) return session.send({ id: m.id, type: 'error', error: { code: 'unauthorized', message: 'auth first' } });
    if (m.type === 'subscribe') return session.send({ id: m.id, type: 'subscribed' });
    if (m.type === 'get') {
      const items = [];
      for (const key of m.keys) {
        const r = await fetch(`${nodeUrl}/v1/keys/${encodeURIComponent(key)}`);
        items.push({ key, state: r.status === 404 ? null : (await r.json()).state });
      }
      return session.send({ id: m.id, type: 'values', items });
    }
    const { id, type, ...body } = m;
    const path = type === 'digests' ? '/v1/sync/digests' : '/v1/sync/merge';
    const answer = await (await fetch(nodeUrl + path, { method: 'POST', body: JSON.stringify(body) })).json();
    if (answer.error) return session.send({ id, type: 'error', error: answer.error });
    if (answer.unknown_list) return session.send({ id, type: 'unknown_list' });
    session.send({ id, type: type === 'digests' ? 'digests' : 'merged', ...answer });
  }
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${server.address().port}`,
    seen,
    push: (key, state) => sessions.forEach((s) => s.authed && s.send({ type: 'update', key, state })),
    lag: () => sessions.forEach((s) => s.close(4000, 'lagged')),
    sessions: () => sessions.size,
    close: () => { sessions.forEach((s) => s.socket.destroy()); server.close(); },
  })));
}

module.exports = { startProxy };
