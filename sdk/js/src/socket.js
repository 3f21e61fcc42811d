// The node's WebSocket (`/v1/ws`): requests with ids, the node's pushed updates, and a
// reconnect with backoff whenever it closes (code 4000 "lagged": the node dropped a
// subscriber too slow to keep up). The SDK works without it: sync then goes over HTTP.

import { HazeError } from './errors.js';

const LAGGED = 4000;

export class LiveSocket {
  // hooks: onUpdate(key, stateJson), onReady() (authed and subscribed: time to sync by
  // digests, updates may have been missed), onDown().
  constructor(url, token, keys, prefixes, hooks) {
    this.url = url.replace(/^http/, 'ws') + '/v1/ws';
    this.token = token;
    this.keys = keys; // () => the keys to subscribe to
    this.prefixes = prefixes; // () => the key prefixes to subscribe to
    this.hooks = hooks;
    this.ready = false;
    this.closed = false;
    this.nextId = 1;
    this.pending = new Map();
    this.subscribed = new Set();
    this.subscribedPrefixes = new Set();
    this.backoff = 1000;
    this.connect();
  }

  connect() {
    if (this.closed || this.ws) return;
    clearTimeout(this.timer);
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      return this.retry();
    }
    this.ws = ws;
    ws.onopen = () => this.start().catch((e) => {
      this.refused = e.code === 'unauthorized' || e.code === 'forbidden' ? e : null;
      ws.close();
    });
    ws.onmessage = (e) => this.message(e.data);
    ws.onclose = (e) => this.down(e.code);
  }

  async start() {
    if (this.token) await this.request({ type: 'auth', token: this.token }, 'authed');
    this.authed = true;
    this.subscribed.clear();
    this.subscribedPrefixes.clear();
    await this.subscribe(this.keys(), this.prefixes());
    this.ready = true;
    this.backoff = 1000;
    this.hooks.onReady();
  }

  // Subscribes to the keys and prefixes not subscribed yet on this connection.
  async subscribe(keys, prefixes = []) {
    const fresh = [...keys].filter((k) => !this.subscribed.has(k));
    const freshPrefixes = [...prefixes].filter((p) => !this.subscribedPrefixes.has(p));
    // Before auth is answered, start() subscribes to everything once it is.
    if ((!fresh.length && !freshPrefixes.length) || !this.authed) return;
    fresh.forEach((k) => this.subscribed.add(k));
    freshPrefixes.forEach((p) => this.subscribedPrefixes.add(p));
    try {
      await this.request({ type: 'subscribe', keys: fresh, prefixes: freshPrefixes }, 'subscribed');
    } catch (e) {
      fresh.forEach((k) => this.subscribed.delete(k));
      freshPrefixes.forEach((p) => this.subscribedPrefixes.delete(p));
      throw e;
    }
  }

  // Sends a request; resolves with the answer's JSON text. `auth` carries no id: the node
  // answers it first, in order.
  request(body, expect) {
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
        return reject(new HazeError('unreachable', 'the socket is not open'));
      }
      const id = body.type === 'auth' ? 'auth' : this.nextId++;
      this.pending.set(id, { resolve, reject, expect });
      this.ws.send(JSON.stringify(id === 'auth' ? body : { id, ...body }));
    });
  }

  // A sync message of the state machine over the socket.
  send(message) {
    const { id, ...body } = message;
    return this.request(body);
  }

  message(text) {
    let m;
    try {
      m = JSON.parse(text);
    } catch {
      return this.ws && this.ws.close();
    }
    if (m.type === 'update' && typeof m.key === 'string') {
      return this.hooks.onUpdate(m.key, JSON.stringify(m.state));
    }
    const id = m.id !== undefined ? m.id : 'auth';
    const waiter = this.pending.get(id);
    if (!waiter) return;
    this.pending.delete(id);
    if (m.type === 'error') {
      const e = m.error || {};
      waiter.reject(new HazeError(e.code || 'protocol', e.message || 'the node refused'));
    } else if (waiter.expect && m.type !== waiter.expect) {
      waiter.reject(new HazeError('protocol', `expected ${waiter.expect}, got ${m.type}`));
    } else {
      waiter.resolve(text);
    }
  }

  down(code) {
    this.ws = null;
    this.ready = false;
    this.authed = false;
    for (const w of this.pending.values()) {
      w.reject(new HazeError('unreachable', `the socket closed (${code})`));
    }
    this.pending.clear();
    if (this.closed) return;
    this.hooks.onDown(code === LAGGED);
    // A refused token stays refused: retry only when woken (back online, a new sync).
    if (!this.refused) this.retry();
  }

  retry() {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), this.backoff * (0.5 + Math.random()));
    this.backoff = Math.min(this.backoff * 2, 60000);
  }

  // Connects now (the window came back online), instead of at the next backoff.
  wake() {
    this.backoff = 1000;
    this.refused = null;
    if (!this.ws) this.connect();
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close();
  }
}
