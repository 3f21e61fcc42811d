// Typed errors: every failure the SDK reports is a HazeError with a stable `code`.

/**
 * A failure with a stable `code`: the node's error codes (`unauthorized`, `forbidden`,
 * `type_mismatch`, `value_too_large`, ...), the core's (`invalid`, `refused`, `protocol`,
 * `corrupt`), and the SDK's own (`unreachable`: no answer from the node; `storage`:
 * IndexedDB failed; `closed`: the database was closed; `locked`: another tab holds it).
 */
export class HazeError extends Error {
  constructor(code, message, status) {
    super(message);
    this.name = 'HazeError';
    this.code = code;
    // The HTTP status, when the node answered one.
    this.status = status;
  }
}

// The wasm bindings throw their error as a JSON string {"code", "message"}.
export function fromThrown(e) {
  if (e instanceof HazeError) return e;
  if (typeof e === 'string') {
    try {
      const { code, message } = JSON.parse(e);
      if (typeof code === 'string') return new HazeError(code, message);
    } catch { /* not the bindings' JSON: falls through */ }
    return new HazeError('internal', e);
  }
  return new HazeError('internal', String(e && e.message || e));
}

// Calls into the bindings, turning what they throw into a HazeError.
export function call(f) {
  try {
    return f();
  } catch (e) {
    throw fromThrown(e);
  }
}
