// The node's HTTP API (docs/http-api.md): the sync endpoints and a key's read.

import { HazeError } from './errors.js';

export async function fetchJson(url, token, path, init = {}) {
  const headers = { ...(init.body ? { 'Content-Type': 'application/json' } : {}) };
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(url + path, { ...init, headers });
  } catch (e) {
    throw new HazeError('unreachable', `${url} did not answer: ${e.message}`);
  }
  const text = await response.text().catch(() => '');
  if (response.ok) return text;
  let code = response.status === 401 ? 'unauthorized' : 'http_' + response.status;
  let message = text || response.statusText;
  try {
    const { error } = JSON.parse(text);
    if (error && typeof error.code === 'string') ({ code, message } = error);
  } catch { /* not the node's JSON error: keep the status */ }
  throw new HazeError(code, message, response.status);
}

// Sends one message of the sync state machine; resolves with the answer's JSON text.
export function httpSend(url, token, message) {
  const { id, type, ...body } = message;
  const path = type === 'digests' ? '/v1/sync/digests' : '/v1/sync/merge';
  return fetchJson(url, token, path, { method: 'POST', body: JSON.stringify(body) });
}

// A key's full state as JSON text, or null if the node has none.
export async function getState(url, token, key) {
  try {
    const text = await fetchJson(url, token, '/v1/keys/' + encodeURIComponent(key));
    return JSON.stringify(JSON.parse(text).state);
  } catch (e) {
    if (e.code === 'not_found') return null;
    throw e;
  }
}
