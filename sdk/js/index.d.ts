// Types of @haze/sdk (hand-written: index.js is plain JavaScript).

/** A scalar as an app writes it: a string, a safe integer, bytes, or a tagged scalar. */
export type Scalar =
  | string
  | number
  | Uint8Array
  | { string: string }
  | { int: number }
  | { uint: number }
  | { bytes: string };

/** A scalar as the SDK reads it back: strings plain, integers as numbers (beyond 2^53 as
 * decimal strings), bytes as `{bytes: "hex"}`. */
export type ScalarView = string | number | { bytes: string };

/** A map field as read: fields are named by key *and* type. */
export interface FieldView {
  key: ScalarView;
  type: ValueType;
  value: View;
}

export type ValueType =
  | 'g_counter' | 'pn_counter' | 'or_set' | 'lww_register' | 'mv_register'
  | 'flag' | 'max' | 'min' | 'or_map';

/** A key's read view: a counter's number, a set's members, a register's value, a flag's
 * boolean, a map's fields. */
export type View = number | string | boolean | null | ScalarView | ScalarView[] | FieldView[];

/** Every failure of the SDK. */
export class HazeError extends Error {
  readonly name: 'HazeError';
  /** The node's code (`unauthorized`, `forbidden`, `type_mismatch`, ...), the core's
   * (`invalid`, `refused`, `protocol`, `corrupt`) or the SDK's (`unreachable`, `storage`,
   * `closed`, `locked`: another tab has the database open). */
  readonly code: string;
  /** The HTTP status, where the node answered one. */
  readonly status?: number;
  constructor(code: string, message: string, status?: number);
}

export interface OpenOptions {
  /** The node's HTTP base URL, e.g. `location.origin`. */
  url: string;
  /** A client token (`Authorization: Bearer`); none if the node requires none. */
  token?: string;
  /** The IndexedDB database holding this replica (default `"haze"`). */
  name?: string;
  /** Connect the WebSocket for live updates (default true). */
  live?: boolean;
  /** How often to sync while the socket is down, in ms (default 30000). */
  pollInterval?: number;
  /** How long after an edit to sync, in ms (default 300). */
  debounce?: number;
}

export interface SyncReport {
  checked: number;
  sent: number;
  updated: number;
  failed: { key: string; code: string; message: string }[];
}

export interface Status {
  /** `offline`: the node cannot be reached (retried with backoff); `error`: it refused. */
  state: 'idle' | 'syncing' | 'synced' | 'offline' | 'error';
  /** Whether the WebSocket is connected (live updates). */
  live: boolean;
  error: HazeError | null;
  lastSync: Date | null;
  report: SyncReport | null;
}

export interface Counter {
  incr(n?: number): Promise<number>;
  decr(n?: number): Promise<number>;
  value(): number;
}

export interface OrSet {
  add(...members: Scalar[]): Promise<ScalarView[]>;
  remove(...members: Scalar[]): Promise<ScalarView[]>;
  clear(): Promise<ScalarView[]>;
  members(): ScalarView[];
  has(member: ScalarView): boolean;
}

export interface OrMap {
  /** A boolean sets a flag field; a string, number or bytes a last-writer-wins register. */
  set(field: ScalarView, value: boolean | Scalar): Promise<FieldView[]>;
  /** Removes the field (of every type) as seen here: a concurrent update wins. */
  remove(field: ScalarView): Promise<FieldView[] | undefined>;
  get(field: ScalarView): View | undefined;
  entries(): [ScalarView, View][];
  /** The nested map in field `field`. */
  map(field: ScalarView): OrMap;
}

export interface Register {
  set(value: Scalar): Promise<ScalarView | null>;
  get(): ScalarView | null;
}

export interface MvRegister {
  set(value: Scalar): Promise<ScalarView[]>;
  values(): ScalarView[];
}

export interface Flag {
  enable(): Promise<boolean>;
  disable(): Promise<boolean>;
  get(): boolean;
}

export interface Extremum {
  set(value: Scalar): Promise<ScalarView | null>;
  get(): ScalarView | null;
}

export class Haze {
  static open(options: OpenOptions): Promise<Haze>;
  /** The actor id this replica edits with (16 hex digits). */
  readonly actor: string;
  status: Status;
  counter(key: string): Counter;
  set(key: string): OrSet;
  map(key: string): OrMap;
  register(key: string): Register;
  mvregister(key: string): MvRegister;
  flag(key: string): Flag;
  max(key: string): Extremum;
  min(key: string): Extremum;
  view(key: string): View | undefined;
  keys(): string[];
  subscribe(key: string, cb: (view: View | undefined) => void): () => void;
  /**
   * Calls `cb(key, view)` whenever a key under `prefix` changes, locally or from the node (keys
   * this replica did not hold join it as the node pushes them). Returns the unsubscribe.
   */
  subscribePrefix(prefix: string, cb: (key: string, view: View | undefined) => void): () => void;
  onStatus(cb: (status: Status) => void): () => void;
  sync(): Promise<SyncReport>;
  close(): Promise<void>;
}

export function health(url: string, token?: string): Promise<unknown>;

export default Haze;
