// Typed handles on keys: what an app writes and reads. Each edit is the core's edit JSON
// (docs/http-api.md, `/edit`), applied by the replica and acknowledged once IndexedDB has it.

import { HazeError } from './errors.js';

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

// An app value as a scalar: a string, a safe integer, bytes, or an already tagged scalar.
export function scalar(v) {
  if (typeof v === 'string') return { string: v };
  if (Number.isSafeInteger(v)) return { int: v };
  if (v instanceof Uint8Array) return { bytes: hex(v) };
  if (v && typeof v === 'object' && ['string', 'int', 'uint', 'bytes'].includes(Object.keys(v)[0])) return v;
  throw new HazeError('invalid', `${v} is not a string, a safe integer or bytes`);
}

const equal = (a, b) => JSON.stringify(a) === JSON.stringify(b);

// `path`: the map fields a nested map handle edits through (outermost first).
function wrap(path, edit) {
  return path.reduceRight((e, key) => ({ map_update: { key: scalar(key), edit: e } }), edit);
}

// Reads the field of a map's view at `path` (a map view is [{key, type, value}]).
function fieldsAt(view, path) {
  let fields = view || [];
  for (const key of path) {
    const f = fields.find((f) => equal(f.key, key) && f.type === 'or_map');
    fields = f ? f.value : [];
  }
  return fields;
}

export function handles(db) {
  const edit = (key, ...edits) => db.edit(key, edits);
  const view = (key, empty) => {
    const v = db.view(key);
    return v === undefined ? empty : v;
  };
  const map = (key, path = []) => ({
    // A boolean is an enable-wins flag; a string, number or bytes a last-writer-wins register.
    set: (field, value) => {
      const e = typeof value === 'boolean'
        ? (value ? 'flag_enable' : 'flag_disable')
        : { register_set: scalar(value) };
      return edit(key, wrap(path, { map_update: { key: scalar(field), edit: e } }));
    },
    // Removes the field of every type under that key (the updates seen here: add wins).
    remove: (field) => {
      const kinds = fieldsAt(db.view(key), path).filter((f) => equal(f.key, field)).map((f) => f.type);
      return edit(key, ...kinds.map((type) => wrap(path, { map_remove: { key: scalar(field), type } })));
    },
    get: (field) => {
      const f = fieldsAt(db.view(key), path).find((f) => equal(f.key, field));
      return f ? f.value : undefined;
    },
    entries: () => fieldsAt(db.view(key), path).map((f) => [f.key, f.value]),
    // The nested map in field `field`.
    map: (field) => map(key, [...path, field]),
  });
  // A handle marks its key as wanted: a sync fetches it from the node if the replica lacks it.
  const want = (make) => (key) => {
    db.want(key);
    return make(key);
  };
  return {
    counter: want((key) => ({
      incr: (n = 1) => edit(key, { counter_add: n }),
      decr: (n = 1) => edit(key, { counter_add: -n }),
      value: () => view(key, 0),
    })),
    set: want((key) => ({
      add: (...members) => edit(key, { set_add: members.map(scalar) }),
      remove: (...members) => edit(key, { set_remove: members.map(scalar) }),
      clear: () => edit(key, 'set_clear'),
      members: () => view(key, []),
      has: (m) => view(key, []).some((x) => equal(x, m)),
    })),
    register: want((key) => ({
      set: (v) => edit(key, { register_set: scalar(v) }),
      get: () => view(key, null),
    })),
    mvregister: want((key) => ({
      set: (v) => edit(key, { mv_register_set: scalar(v) }),
      values: () => view(key, []),
    })),
    flag: want((key) => ({
      enable: () => edit(key, 'flag_enable'),
      disable: () => edit(key, 'flag_disable'),
      get: () => view(key, false),
    })),
    max: want((key) => ({ set: (v) => edit(key, { max_set: scalar(v) }), get: () => view(key, null) })),
    min: want((key) => ({ set: (v) => edit(key, { min_set: scalar(v) }), get: () => view(key, null) })),
    map: want((key) => map(key)),
  };
}
