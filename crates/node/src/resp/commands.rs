//! What each RESP command does (docs/resp.md): one connection's session, its commands mapped
//! onto the node's reads and typed operations, with the same routing, tokens and limits as the
//! binary protocol and the HTTP API.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use haze_controller::tokens::Right;
use haze_crdt::{Field, Scalar, Value, ValueKind};
use haze_device::Edit;
use haze_protocol::{ErrorCode, Request, Response, Role, TypedOp};
use tokio::sync::oneshot;

use super::codec::Reply;
use crate::error::RequestError;
use crate::metrics::Kind;
use crate::node::Node;
use crate::replica::CountedOp;
use crate::security::Caller;

/// Connection ids for `CLIENT ID`.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What a command needs before its reply.
pub(crate) enum Outcome {
    /// The reply is known.
    Now(Reply),
    /// A write submitted to this node's writer (a single node) or routed (a cluster): the
    /// reply comes with its outcome (the merged value, unless the write was submitted for
    /// whether it was applied only). Writes of a pipeline are submitted in order and share
    /// commits.
    Write(
        oneshot::Receiver<Result<Option<Value>, RequestError>>,
        Finish,
    ),
    /// The reply, then close the connection (`QUIT`).
    Close(Reply),
}

/// How a write's new value becomes its reply.
#[derive(Debug, Clone)]
pub(crate) enum Finish {
    /// `+OK`.
    Ok,
    /// The counter's new value.
    Counter,
    /// The new value of the counter field of this name of a map.
    MapCounter(Scalar),
    /// An integer known before the write (`SADD`'s count of new members, in a cluster).
    Int(i64),
    /// What the writer counted as it applied the write (`SADD`'s count of new members, on a
    /// single node: [`CountedOp`]).
    Counted(Arc<AtomicI64>),
}

impl Finish {
    pub(crate) fn reply(self, outcome: Result<Option<Value>, RequestError>) -> Reply {
        match outcome {
            Err(e) => error_reply(&e),
            Ok(value) => match (self, value) {
                (Finish::Ok, _) => Reply::Simple("OK"),
                (Finish::Int(n), _) => Reply::Int(n),
                (Finish::Counted(n), _) => Reply::Int(n.load(Ordering::Relaxed)),
                (Finish::Counter, Some(value)) => counter_reply(&value),
                (Finish::MapCounter(name), Some(Value::OrMap(map))) => map
                    .get(&Field::new(name, ValueKind::PnCounter))
                    .map_or(Reply::Int(0), counter_reply),
                (Finish::MapCounter(_), Some(_)) => wrongtype(),
                (Finish::Counter | Finish::MapCounter(_), None) => {
                    Reply::err("the write was applied but its value was not kept")
                }
            },
        }
    }
}

/// Waits for a write of [`Finish::Ok`] to end: `Err` with its error reply if it failed.
async fn written(outcome: Outcome) -> Result<(), Reply> {
    match outcome {
        Outcome::Write(rx, _) => match rx.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(error_reply(&e)),
            Err(_) => Err(error_reply(&RequestError::Unavailable(
                "the writer stopped".into(),
            ))),
        },
        Outcome::Now(Reply::Simple(_)) => Ok(()),
        Outcome::Now(reply) | Outcome::Close(reply) => Err(reply),
    }
}

/// One connection's state.
pub(crate) struct Session {
    node: Arc<Node>,
    /// Who the connection proved to be: `None` until `AUTH` where tokens are required.
    caller: Option<Caller>,
    /// The identity of the client's TLS certificate, if it presented one.
    identity: Option<haze_tls::Identity>,
    /// 2 or 3 (`HELLO`).
    pub(crate) version: u8,
    name: Option<Vec<u8>>,
    id: u64,
    /// When the RESP listener started (`INFO`'s uptime).
    started: tokio::time::Instant,
    /// What this connection's writes still in flight did (see [`Pending`]).
    pending: Pending,
}

/// What a connection's own writes not yet settled did to sets' members and maps' register
/// fields: `SADD`, `SREM` and `HSET` pipeline (their writes share commits), so the read each
/// does to count what it changes may not see the writes before it in the same pipeline; this
/// says what those did. Cleared whenever the connection's writes have settled (the reads see
/// them then), so it holds at most one pipeline's worth.
#[derive(Debug, Default)]
struct Pending {
    /// Set key → member → whether the member is in the set after this connection's writes.
    members: HashMap<Vec<u8>, BTreeMap<Scalar, bool>>,
    /// Map key → the register fields this connection's writes set.
    fields: HashMap<Vec<u8>, BTreeSet<Scalar>>,
    /// In a cluster: key → the end of this connection's last routed write to it (the next
    /// write to the key waits for it).
    tails: HashMap<Vec<u8>, oneshot::Receiver<()>>,
}

/// Commands a CRDT store cannot honour, and what to use instead.
const REFUSED: &[(&str, &str)] = &[
    (
        "del",
        "Haze keeps no deletes: every value is a CRDT merged with every replica's copy, so a \
         deleted key would come back with the next merge. Remove a set's members (SREM) or \
         overwrite a register (SET) instead",
    ),
    ("unlink", "see DEL: Haze keeps no deletes"),
    ("getdel", "see DEL: Haze keeps no deletes"),
    (
        "expire",
        "Haze keeps no expiries: a value lives until it is overwritten; keep a timestamp in a \
         register and ignore old ones",
    ),
    ("pexpire", "see EXPIRE: Haze keeps no expiries"),
    ("expireat", "see EXPIRE: Haze keeps no expiries"),
    ("setex", "see EXPIRE: Haze keeps no expiries; use SET"),
    ("psetex", "see EXPIRE: Haze keeps no expiries; use SET"),
    ("persist", "see EXPIRE: Haze keeps no expiries"),
    (
        "setnx",
        "conditional writes need coordination a CRDT store does not have: every write merges; \
         use SET",
    ),
    (
        "multi",
        "Haze has no transactions: each command merges into one key on its own, and replicas \
         converge without them",
    ),
    ("exec", "see MULTI: Haze has no transactions"),
    ("discard", "see MULTI: Haze has no transactions"),
    ("watch", "see MULTI: Haze has no transactions"),
    (
        "keys",
        "listing keys is an administrator's request of the binary protocol (Buckets and \
         BucketKeys, with an admin token); name the keys you read",
    ),
    ("scan", "see KEYS: listing keys is not offered over RESP"),
    (
        "eval",
        "Haze runs no scripts: each command is one CRDT operation",
    ),
    ("evalsha", "see EVAL: Haze runs no scripts"),
    ("fcall", "see EVAL: Haze runs no scripts"),
    ("flushall", "Haze keeps no deletes (see DEL)"),
    ("flushdb", "Haze keeps no deletes (see DEL)"),
    (
        "rename",
        "Haze keeps no deletes (see DEL), so a key cannot be renamed",
    ),
    (
        "spop",
        "removing a member nobody named cannot be merged deterministically: use SREM",
    ),
    (
        "append",
        "a register holds one value and merges by last writer: use SET with the whole value",
    ),
];

/// The commands served, with their arity as Redis counts it (negative: at least).
pub(crate) const COMMANDS: &[(&str, i64)] = &[
    ("get", 2),
    ("set", -3),
    ("incr", 2),
    ("incrby", 3),
    ("decr", 2),
    ("decrby", 3),
    ("sadd", -3),
    ("srem", -3),
    ("smembers", 2),
    ("sismember", 3),
    ("smismember", -3),
    ("scard", 2),
    ("exists", -2),
    ("type", 2),
    ("ping", -1),
    ("echo", 2),
    ("hello", -1),
    ("auth", -2),
    ("select", 2),
    ("quit", 1),
    ("client", -2),
    ("info", -1),
    ("command", -1),
    ("config", -2),
    ("hset", -4),
    ("hget", 3),
    ("hmget", -3),
    ("hgetall", 2),
    ("hdel", -3),
    ("hlen", 2),
    ("hexists", 3),
    ("hincrby", 4),
];

/// The error reply of a request's error, in Redis's words where Redis has them.
pub(crate) fn error_reply(e: &RequestError) -> Reply {
    match e.code() {
        ErrorCode::TypeMismatch => {
            Reply::Error("WRONGTYPE Operation against a key holding the wrong kind of value".into())
        }
        ErrorCode::Unauthorized => Reply::Error(format!("NOAUTH {}", message(e))),
        ErrorCode::Forbidden => Reply::Error(format!("NOPERM {}", message(e))),
        code => Reply::Error(format!("ERR {}: {}", code.name(), message(e))),
    }
}

/// An error's message without the code's name it may start with.
fn message(e: &RequestError) -> String {
    e.to_wire().message
}

fn counter_reply(value: &Value) -> Reply {
    match value {
        Value::PnCounter(c) => i64::try_from(c.value())
            .map_or_else(|_| Reply::err("the counter is beyond 64 bits"), Reply::Int),
        Value::GCounter(c) => i64::try_from(c.value())
            .map_or_else(|_| Reply::err("the counter is beyond 64 bits"), Reply::Int),
        _ => wrongtype(),
    }
}

fn wrongtype() -> Reply {
    Reply::Error("WRONGTYPE Operation against a key holding the wrong kind of value".into())
}

fn syntax() -> Reply {
    Reply::err("syntax error")
}

fn arity(name: &str) -> Reply {
    Reply::err(format!("wrong number of arguments for '{name}' command"))
}

/// A scalar as a RESP bulk string: text as it is, numbers in decimal, bytes raw.
fn scalar_bulk(s: &Scalar) -> Reply {
    match s {
        Scalar::String(t) => Reply::Bulk(t.as_bytes().to_vec()),
        Scalar::Bytes(b) => Reply::Bulk(b.clone()),
        Scalar::Int(n) => Reply::text(n.to_string()),
        Scalar::UInt(n) => Reply::text(n.to_string()),
    }
}

/// An argument as a scalar: UTF-8 text as a string, other bytes as bytes.
fn scalar(arg: Vec<u8>) -> Scalar {
    match String::from_utf8(arg) {
        Ok(text) => Scalar::String(text),
        Err(e) => Scalar::Bytes(e.into_bytes()),
    }
}

fn integer(arg: &[u8]) -> Option<i64> {
    std::str::from_utf8(arg).ok()?.parse().ok()
}

/// The RESP type name of a value (what Redis's TYPE says of the nearest thing it has).
fn type_name(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::PnCounter | ValueKind::GCounter | ValueKind::LwwRegister => "string",
        ValueKind::OrSet => "set",
        ValueKind::OrMap => "hash",
        _ => "haze",
    }
}

impl Session {
    /// A session for a connection to `node`, whose TLS certificate named `identity`.
    pub(crate) fn new(
        node: Arc<Node>,
        identity: Option<haze_tls::Identity>,
        started: tokio::time::Instant,
    ) -> Session {
        let caller = (!node.config().security.require_tokens).then_some(Caller::Anyone);
        Session {
            node,
            caller,
            identity,
            version: 2,
            name: None,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            started,
            pending: Pending::default(),
        }
    }

    /// Every write this connection submitted has its outcome: reads see them now.
    pub(crate) fn settled(&mut self) {
        self.pending.members.clear();
        self.pending.fields.clear();
        self.pending.tails.clear();
    }

    /// Checks that the session may `right` on `key` (its token read again if the cluster's
    /// tokens changed).
    fn allow(&mut self, key: &[u8], right: Right) -> Result<(), Reply> {
        let Some(caller) = &mut self.caller else {
            return Err(Reply::Error(
                "NOAUTH Authentication required: AUTH TOKEN (a token from `haze token create`)"
                    .into(),
            ));
        };
        if matches!(caller, Caller::Anyone | Caller::Node) {
            // Nothing to check. (`refresh` would read no clock either, but the checks' calls
            // still cost about 150 instructions per command: callgrind, GET.)
            return Ok(());
        }
        let node = &self.node;
        let checked = caller
            .refresh(node.cluster().tokens(), || node.replica().now_ms())
            .and_then(|()| {
                if caller.may(key, right) {
                    Ok(())
                } else {
                    Err(RequestError::Forbidden(format!(
                        "the token does not allow `{right}` on key {:?}",
                        String::from_utf8_lossy(key)
                    )))
                }
            });
        checked.map_err(|e| {
            self.node
                .metrics()
                .auth_failures
                .fetch_add(1, Ordering::Relaxed);
            if matches!(e, RequestError::Unauthorized(_)) {
                self.caller = None;
            }
            error_reply(&e)
        })
    }

    /// Reads `key`, routed in a cluster.
    async fn read(&mut self, key: &[u8]) -> Result<Option<Value>, Reply> {
        self.allow(key, Right::Read)?;
        let started = tokio::time::Instant::now();
        let result = if !self.node.routes() {
            // A single node: nothing to route (no request to build, no disposition to ask).
            self.node.get(key)
        } else {
            match self.routed(Request::Get { key: key.to_vec() }).await {
                Ok(Some(Response::Value(v))) => Ok(v),
                Ok(Some(other)) => Err(RequestError::Unavailable(format!(
                    "unexpected answer {other:?}"
                ))),
                Ok(None) => self.node.get(key),
                Err(e) => Err(e),
            }
        };
        self.node
            .metrics()
            .record(Kind::Get, result.is_ok(), started.elapsed());
        result.map_err(|e| error_reply(&e))
    }

    /// `request` routed to its key's replicas in a cluster; `None` on a single node.
    async fn routed(&self, request: Request) -> Result<Option<Response>, RequestError> {
        match self.node.cluster().answer(request).await? {
            Some(Response::Error(e)) => Err(RequestError::Remote(e)),
            other => Ok(other),
        }
    }

    /// Applies `op` to `key`: submitted to this node's writer on a single node, routed in a
    /// cluster; the reply follows its outcome, and the next command does not wait for it.
    async fn write(&mut self, key: Vec<u8>, op: TypedOp, finish: Finish) -> Outcome {
        if let Err(reply) = self.allow(&key, Right::Write) {
            return Outcome::Now(reply);
        }
        if !self.node.routes() {
            let (tx, rx) = oneshot::channel();
            let started = tokio::time::Instant::now();
            let node = self.node.clone();
            self.node.writes().submit(
                key,
                crate::replica::WriteRequest::Op(op),
                haze_storage::Priority::Foreground,
                Box::new(move |outcome| {
                    node.metrics()
                        .record(Kind::Op, outcome.is_ok(), started.elapsed());
                    let _ = tx.send(outcome.map(Some));
                }),
            );
            return Outcome::Write(rx, finish);
        }
        // In a cluster the write is routed in a task of its own, so that a pipeline's writes
        // travel together (the connection to each peer is pipelined); a write waits only for
        // this connection's write to the same key before it (`Pending::tails`), so one key's
        // writes are applied in the order they were sent.
        let (tx, rx) = oneshot::channel();
        let (done, tail) = oneshot::channel::<()>();
        let before = self.pending.tails.insert(key.clone(), tail);
        let node = self.node.clone();
        tokio::spawn(async move {
            if let Some(before) = before {
                let _ = before.await; // its sender is dropped when that write ends
            }
            let started = tokio::time::Instant::now();
            let result = match node.cluster().answer(Request::Op { key, op }).await {
                Ok(Some(Response::Value(Some(v)))) => Ok(v),
                Ok(Some(Response::Error(e))) => Err(RequestError::Remote(e)),
                Ok(other) => Err(RequestError::Unavailable(format!(
                    "unexpected answer {other:?}"
                ))),
                Err(e) => Err(e),
            };
            node.metrics()
                .record(Kind::Op, result.is_ok(), started.elapsed());
            let _ = tx.send(result.map(Some));
            drop(done);
        });
        Outcome::Write(rx, finish)
    }

    /// Applies a [`CountedOp`] on a single node: the writer counts what it changes as it
    /// applies it, so nothing is read first and the count is exact.
    fn write_counted(&mut self, key: Vec<u8>, op: CountedOp) -> Outcome {
        if let Err(reply) = self.allow(&key, Right::Write) {
            return Outcome::Now(reply);
        }
        let (tx, rx) = oneshot::channel();
        let started = tokio::time::Instant::now();
        let node = self.node.clone();
        let changed = Arc::new(AtomicI64::new(0));
        self.node.writes().submit_counted(
            key,
            op,
            changed.clone(),
            Box::new(move |outcome| {
                node.metrics()
                    .record(Kind::Op, outcome.is_ok(), started.elapsed());
                let _ = tx.send(outcome.map(|()| None));
            }),
        );
        Outcome::Write(rx, Finish::Counted(changed))
    }

    /// Runs one command.
    pub(crate) async fn execute(&mut self, mut args: Vec<Vec<u8>>) -> Outcome {
        if args.is_empty() {
            return Outcome::Now(Reply::err("empty command"));
        }
        // The table's own name, found without lowercasing the client's into a new string.
        let named = |n: &&str| n.as_bytes().eq_ignore_ascii_case(&args[0]);
        let name: &'static str =
            if let Some(&(name, arity_of)) = COMMANDS.iter().find(|(n, _)| named(n)) {
                let n = i64::try_from(args.len()).unwrap_or(i64::MAX);
                if (arity_of > 0 && n != arity_of) || (arity_of < 0 && n < -arity_of) {
                    return Outcome::Now(arity(name));
                }
                name
            } else if let Some((name, why)) = REFUSED.iter().find(|(n, _)| named(n)) {
                return Outcome::Now(Reply::err(format!(
                    "{} is not supported: {why}",
                    name.to_uppercase()
                )));
            } else {
                let shown: Vec<String> = args[1..]
                    .iter()
                    .take(8)
                    .map(|a| format!("'{}'", String::from_utf8_lossy(a)))
                    .collect();
                return Outcome::Now(Reply::err(format!(
                    "unknown command '{}', with args beginning with: {}",
                    String::from_utf8_lossy(&args[0]),
                    shown.join(" ")
                )));
            };
        let reply = match name {
            "ping" => match args.get(1) {
                Some(m) => Reply::Bulk(m.clone()),
                None => Reply::Simple("PONG"),
            },
            "echo" => Reply::Bulk(args.swap_remove(1)),
            "quit" => return Outcome::Close(Reply::Simple("OK")),
            "select" => match integer(&args[1]) {
                Some(0) => Reply::Simple("OK"),
                _ => Reply::err("DB index is out of range (Haze has one keyspace: 0)"),
            },
            "auth" => self.auth(args.last().cloned().unwrap_or_default()),
            "hello" => self.hello(&args),
            "client" => self.client(&args),
            "info" => self.info(args.get(1)),
            "command" => command(&args),
            "config" => config(&self.node, &args),
            "get" => match self.read(&args[1]).await {
                Err(reply) => reply,
                Ok(None) => Reply::Null,
                Ok(Some(Value::LwwRegister(r))) => r.get().map_or(Reply::Null, scalar_bulk),
                Ok(Some(v @ (Value::PnCounter(_) | Value::GCounter(_)))) => {
                    match counter_reply(&v) {
                        Reply::Int(n) => Reply::text(n.to_string()),
                        other => other,
                    }
                }
                Ok(Some(_)) => wrongtype(),
            },
            "set" => {
                if args.len() > 3 {
                    return Outcome::Now(Reply::err(
                        "SET options (NX, XX, EX, GET, ...) are not supported: a register \
                         merges by last writer, without conditions or expiries",
                    ));
                }
                let value = scalar(args.swap_remove(2));
                let key = args.swap_remove(1);
                return self
                    .write(key, TypedOp::RegisterSet(value), Finish::Ok)
                    .await;
            }
            "incr" | "decr" | "incrby" | "decrby" => {
                let by = match name {
                    "incr" => Some(1),
                    "decr" => Some(-1),
                    "incrby" => integer(&args[2]),
                    _ => integer(&args[2]).and_then(i64::checked_neg),
                };
                let Some(by) = by else {
                    return Outcome::Now(Reply::err("value is not an integer or out of range"));
                };
                let key = args.swap_remove(1);
                return self
                    .write(key, TypedOp::CounterAdd(by), Finish::Counter)
                    .await;
            }
            "sadd" | "srem" => return self.set_change(name, args).await,
            "smembers" | "sismember" | "smismember" | "scard" => match self.read(&args[1]).await {
                Err(reply) => reply,
                Ok(Some(Value::OrSet(set))) => set_read(name, &args, Some(&set)),
                Ok(None) => set_read(name, &args, None),
                Ok(Some(_)) => wrongtype(),
            },
            "exists" => {
                let mut n = 0;
                for key in &args[1..] {
                    match self.read(key).await {
                        Ok(Some(_)) => n += 1,
                        Ok(None) => {}
                        Err(reply) => return Outcome::Now(reply),
                    }
                }
                Reply::Int(n)
            }
            "hset" | "hdel" => return self.map_change(name, args).await,
            "hincrby" => {
                let Some(by) = integer(&args[3]) else {
                    return Outcome::Now(Reply::err("value is not an integer or out of range"));
                };
                let field = scalar(args.swap_remove(2));
                let key = args.swap_remove(1);
                let edit = Edit::map_update(field.clone(), Edit::CounterAdd(by));
                return self
                    .write(key, TypedOp::Edit(edit), Finish::MapCounter(field))
                    .await;
            }
            "hget" | "hmget" | "hgetall" | "hlen" | "hexists" => match self.read(&args[1]).await {
                Err(reply) => reply,
                Ok(Some(Value::OrMap(map))) => map_read(name, &args, Some(&map)),
                Ok(None) => map_read(name, &args, None),
                Ok(Some(_)) => wrongtype(),
            },
            "type" => match self.read(&args[1]).await {
                Err(reply) => reply,
                Ok(None) => Reply::Simple("none"),
                Ok(Some(v)) => Reply::Simple(type_name(v.kind())),
            },
            _ => Reply::err("unknown command"),
        };
        Outcome::Now(reply)
    }

    /// `SADD`/`SREM`: the set is read first so the reply can say how many members changed,
    /// as Redis does (with what this connection's unsettled writes did: [`Pending`]; a member
    /// added or removed concurrently elsewhere may make the count differ from what the merge
    /// did). The write is not waited for: a pipeline's writes share commits.
    async fn set_change(&mut self, name: &str, mut args: Vec<Vec<u8>>) -> Outcome {
        let key = args[1].clone();
        let members: Vec<Scalar> = args.drain(2..).map(scalar).collect();
        if !self.node.routes() {
            let op = match name == "sadd" {
                true => CountedOp::SetAdd(members),
                false => CountedOp::SetRemove(members),
            };
            return self.write_counted(key, op);
        }
        let before = match self.read(&key).await {
            Err(reply) => return Outcome::Now(reply),
            Ok(None) => None,
            Ok(Some(Value::OrSet(set))) => Some(set),
            Ok(Some(_)) => return Outcome::Now(wrongtype()),
        };
        let adding = name == "sadd";
        let own = self.pending.members.entry(key.clone()).or_default();
        let mut distinct = members.clone();
        distinct.sort();
        distinct.dedup();
        let mut changed = 0i64;
        for member in distinct {
            let had = own
                .get(&member)
                .copied()
                .unwrap_or_else(|| before.as_ref().is_some_and(|s| s.contains(&member)));
            if had != adding {
                changed += 1;
            }
            own.insert(member, adding);
        }
        let op = match adding {
            true => TypedOp::SetAdd(members),
            false => TypedOp::SetRemove(members),
        };
        self.write(key, op, Finish::Int(changed)).await
    }

    /// `HSET k f v [f v ...]` (each field a register) and `HDEL k f ...` (every field of that
    /// name, whatever its type): the map is read first, so the reply can count the fields
    /// added or removed, as Redis's does.
    async fn map_change(&mut self, name: &str, args: Vec<Vec<u8>>) -> Outcome {
        if name == "hset" && !args.len().is_multiple_of(2) {
            return Outcome::Now(arity(name));
        }
        let key = args[1].clone();
        if name == "hset" && !self.node.routes() {
            let pairs = args[2..]
                .chunks(2)
                .map(|pair| (scalar(pair[0].clone()), scalar(pair[1].clone())))
                .collect();
            return self.write_counted(key, CountedOp::MapSetRegisters(pairs));
        }
        let before = match self.read(&key).await {
            Err(reply) => return Outcome::Now(reply),
            Ok(None) => None,
            Ok(Some(Value::OrMap(map))) => Some(map),
            Ok(Some(_)) => return Outcome::Now(wrongtype()),
        };
        let fields_named = |name: &Scalar| -> Vec<Field> {
            before.as_ref().map_or_else(Vec::new, |m| {
                m.iter()
                    .map(|(f, _)| f.clone())
                    .filter(|f| &f.key == name)
                    .collect()
            })
        };
        let mut edits = Vec::new();
        let mut changed = 0i64;
        if name == "hset" {
            let own = self.pending.fields.entry(key.clone()).or_default();
            for pair in args[2..].chunks(2) {
                let field = scalar(pair[0].clone());
                let register = Field::new(field.clone(), ValueKind::LwwRegister);
                if !own.contains(&field) && !fields_named(&field).contains(&register) {
                    changed += 1;
                }
                own.insert(field.clone());
                edits.push(Edit::map_update(
                    field,
                    Edit::RegisterSet(scalar(pair[1].clone())),
                ));
            }
        } else {
            for arg in &args[2..] {
                let fields = fields_named(&scalar(arg.clone()));
                if !fields.is_empty() {
                    changed += 1;
                }
                edits.extend(fields.into_iter().map(Edit::MapRemove));
            }
        }
        // The last edit is not waited for (a pipeline's writes share commits); those before it
        // are, so that the first refused one answers for the command.
        let last = edits.pop();
        for edit in edits {
            let outcome = self
                .write(key.clone(), TypedOp::Edit(edit), Finish::Ok)
                .await;
            if let Err(reply) = written(outcome).await {
                return Outcome::Now(reply);
            }
        }
        match last {
            Some(edit) => {
                self.write(key, TypedOp::Edit(edit), Finish::Int(changed))
                    .await
            }
            None => Outcome::Now(Reply::Int(changed)),
        }
    }

    fn auth(&mut self, token: Vec<u8>) -> Reply {
        let token = String::from_utf8_lossy(&token).into_owned();
        let security = &self.node.config().security;
        if !security.require_tokens {
            return Reply::Simple("OK");
        }
        match crate::security::authenticate(
            security,
            self.node.cluster().tokens(),
            Role::Client,
            Some(&token),
            self.identity.as_ref(),
            self.node.replica().now_ms(),
        ) {
            Ok(caller) => {
                self.caller = Some(caller);
                Reply::Simple("OK")
            }
            Err(e) => {
                self.node
                    .metrics()
                    .auth_failures
                    .fetch_add(1, Ordering::Relaxed);
                Reply::Error(format!(
                    "WRONGPASS invalid username-password pair or user is disabled ({})",
                    message(&e)
                ))
            }
        }
    }

    fn hello(&mut self, args: &[Vec<u8>]) -> Reply {
        let mut rest = args[1..].iter();
        if let Some(version) = rest.next() {
            match integer(version) {
                Some(v @ (2 | 3)) => {
                    // Set below, once the options are valid.
                    let mut auth = None;
                    while let Some(option) = rest.next() {
                        match option.to_ascii_lowercase().as_slice() {
                            b"auth" => {
                                let (Some(_user), Some(pass)) = (rest.next(), rest.next()) else {
                                    return syntax();
                                };
                                auth = Some(pass.clone());
                            }
                            b"setname" => match rest.next() {
                                Some(name) => self.name = Some(name.clone()),
                                None => return syntax(),
                            },
                            _ => return syntax(),
                        }
                    }
                    if let Some(token) = auth
                        && let reply @ Reply::Error(_) = self.auth(token)
                    {
                        return reply;
                    }
                    self.version = u8::try_from(v).unwrap_or(2);
                }
                _ => {
                    return Reply::Error("NOPROTO unsupported protocol version".into());
                }
            }
        }
        Reply::Map(vec![
            (Reply::text("server"), Reply::text("haze")),
            (
                Reply::text("version"),
                Reply::text(env!("CARGO_PKG_VERSION")),
            ),
            (Reply::text("proto"), Reply::Int(i64::from(self.version))),
            (
                Reply::text("id"),
                Reply::Int(i64::try_from(self.id).unwrap_or(i64::MAX)),
            ),
            (Reply::text("mode"), Reply::text("standalone")),
            (Reply::text("role"), Reply::text("master")),
            (Reply::text("modules"), Reply::Array(Vec::new())),
        ])
    }

    fn client(&mut self, args: &[Vec<u8>]) -> Reply {
        match args[1].to_ascii_lowercase().as_slice() {
            b"setname" if args.len() == 3 => {
                self.name = Some(args[2].clone());
                Reply::Simple("OK")
            }
            b"getname" => self.name.clone().map_or(Reply::Null, Reply::Bulk),
            b"id" => Reply::Int(i64::try_from(self.id).unwrap_or(i64::MAX)),
            // Client libraries announce themselves (`CLIENT SETINFO lib-name ...`).
            b"setinfo" => Reply::Simple("OK"),
            _ => Reply::err("CLIENT supports SETNAME, GETNAME, ID and SETINFO"),
        }
    }

    fn info(&self, section: Option<&Vec<u8>>) -> Reply {
        let m = self.node.metrics();
        let section = section.map(|s| String::from_utf8_lossy(s).to_ascii_lowercase());
        let wanted = |name: &str| {
            section
                .as_deref()
                .is_none_or(|s| s == name || s == "all" || s == "default" || s == "everything")
        };
        let mut text = String::new();
        if wanted("server") {
            text.push_str(&format!(
                "# Server\r\nredis_version:7.0.0\r\nhaze_version:{}\r\nredis_mode:standalone\r\n\
                 process_id:{}\r\nuptime_in_seconds:{}\r\n\r\n",
                env!("CARGO_PKG_VERSION"),
                std::process::id(),
                self.started.elapsed().as_secs()
            ));
        }
        if wanted("clients") {
            text.push_str(&format!(
                "# Clients\r\nconnected_clients:{}\r\n\r\n",
                m.connections_open.load(Ordering::Relaxed)
            ));
        }
        if wanted("stats") {
            text.push_str(&format!(
                "# Stats\r\ntotal_connections_received:{}\r\nrejected_connections:{}\r\n\
                 total_commands_processed:{}\r\n\r\n",
                m.connections_total.load(Ordering::Relaxed),
                m.connections_refused.load(Ordering::Relaxed),
                m.requests_total()
            ));
        }
        if wanted("keyspace") {
            // This node's own keys (as each node of a Redis Cluster reports its own); no key
            // expires. Counting costs a lookup per recent key not yet flushed: INFO is rare.
            text.push_str("# Keyspace\r\n");
            match self.node.replica().store().key_count() {
                Ok(0) => {}
                Ok(keys) => {
                    text.push_str(&format!("db0:keys={keys},expires=0,avg_ttl=0\r\n"));
                }
                Err(e) => text.push_str(&format!("# keys not counted: {e}\r\n")),
            }
        }
        Reply::Bulk(text.into_bytes())
    }
}

/// A map field's value as Redis shows a hash field: a register's value, a counter's number.
fn field_bulk(value: &Value) -> Reply {
    match value {
        Value::LwwRegister(r) => r.get().map_or(Reply::Null, scalar_bulk),
        Value::PnCounter(_) | Value::GCounter(_) => match counter_reply(value) {
            Reply::Int(n) => Reply::text(n.to_string()),
            other => other,
        },
        other => Reply::text(serde_json::to_string(other).unwrap_or_default()),
    }
}

/// `HGET`, `HMGET`, `HGETALL`, `HLEN`, `HEXISTS` of `map` (`None`: no value). A field name
/// held by a register and a counter at once shows the register.
fn map_read(name: &str, args: &[Vec<u8>], map: Option<&haze_crdt::ValueMap>) -> Reply {
    let field = |arg: &Vec<u8>| -> Option<&Value> {
        let key = scalar(arg.clone());
        let map = map?;
        map.get(&Field::new(key.clone(), ValueKind::LwwRegister))
            .or_else(|| map.iter().find(|(f, _)| f.key == key).map(|(_, v)| v))
    };
    let mut names: Vec<&Scalar> =
        map.map_or_else(Vec::new, |m| m.iter().map(|(f, _)| &f.key).collect());
    names.dedup();
    match name {
        "hget" => field(&args[2]).map_or(Reply::Null, field_bulk),
        "hmget" => Reply::Array(
            args[2..]
                .iter()
                .map(|a| field(a).map_or(Reply::Null, field_bulk))
                .collect(),
        ),
        "hexists" => Reply::Int(i64::from(field(&args[2]).is_some())),
        "hlen" => Reply::Int(i64::try_from(names.len()).unwrap_or(i64::MAX)),
        _ => Reply::Map(
            names
                .into_iter()
                .filter_map(|n| {
                    let arg = match n {
                        Scalar::String(s) => s.as_bytes().to_vec(),
                        Scalar::Bytes(b) => b.clone(),
                        other => other.to_string().into_bytes(),
                    };
                    field(&arg).map(|v| (scalar_bulk(n), field_bulk(v)))
                })
                .collect(),
        ),
    }
}

/// `SMEMBERS`, `SISMEMBER`, `SMISMEMBER`, `SCARD` of `set` (`None`: no value).
fn set_read(name: &str, args: &[Vec<u8>], set: Option<&haze_crdt::OrSet<Scalar>>) -> Reply {
    let has = |arg: &Vec<u8>| set.is_some_and(|s| s.contains(&scalar(arg.clone())));
    match name {
        "smembers" => {
            Reply::Set(set.map_or_else(Vec::new, |s| s.iter().map(scalar_bulk).collect()))
        }
        "sismember" => Reply::Int(i64::from(has(&args[2]))),
        "smismember" => Reply::Array(
            args[2..]
                .iter()
                .map(|a| Reply::Int(i64::from(has(a))))
                .collect(),
        ),
        _ => Reply::Int(set.map_or(0, |s| i64::try_from(s.len()).unwrap_or(i64::MAX))),
    }
}

/// `COMMAND`, `COMMAND COUNT`, `COMMAND DOCS`, `COMMAND INFO`: enough for `redis-cli` and
/// client libraries to start.
fn command(args: &[Vec<u8>]) -> Reply {
    let info = |name: &str, arity: i64| {
        let first = i64::from(!matches!(
            name,
            "ping"
                | "echo"
                | "hello"
                | "auth"
                | "select"
                | "quit"
                | "client"
                | "info"
                | "command"
                | "config"
        ));
        let last = if name == "exists" { -1 } else { first };
        Reply::Array(vec![
            Reply::text(name),
            Reply::Int(arity),
            Reply::Set(Vec::new()),
            Reply::Int(first),
            Reply::Int(last),
            Reply::Int(first),
        ])
    };
    match args.get(1).map(|a| a.to_ascii_lowercase()) {
        None => Reply::Array(COMMANDS.iter().map(|&(n, a)| info(n, a)).collect()),
        Some(sub) if sub == b"count" => Reply::Int(i64::try_from(COMMANDS.len()).unwrap_or(0)),
        Some(sub) if sub == b"docs" => Reply::Map(Vec::new()),
        Some(sub) if sub == b"info" => Reply::Array(
            args[2..]
                .iter()
                .map(|a| {
                    let a = String::from_utf8_lossy(a).to_ascii_lowercase();
                    COMMANDS
                        .iter()
                        .find(|(n, _)| *n == a)
                        .map_or(Reply::Null, |&(n, ar)| info(n, ar))
                })
                .collect(),
        ),
        Some(_) => Reply::err("COMMAND supports COUNT, DOCS and INFO"),
    }
}

/// `CONFIG GET`: what `redis-benchmark` and client libraries ask at start.
fn config(node: &Node, args: &[Vec<u8>]) -> Reply {
    if !args[1].eq_ignore_ascii_case(b"get") {
        return Reply::err("CONFIG supports GET only: Haze is configured by its flags");
    }
    let appendonly = "yes";
    let appendfsync = match node.config().store.durability {
        haze_storage::Durability::Sync => "always",
        haze_storage::Durability::Periodic { .. } => "everysec",
    };
    let known = [
        ("save", ""),
        ("appendonly", appendonly),
        ("appendfsync", appendfsync),
        ("databases", "1"),
        ("maxmemory", "0"),
    ];
    let mut pairs = Vec::new();
    for pattern in &args[2..] {
        let pattern = String::from_utf8_lossy(pattern).to_ascii_lowercase();
        for (name, value) in known {
            if pattern == "*" || pattern == name {
                pairs.push((Reply::text(name), Reply::text(value)));
            }
        }
    }
    Reply::Map(pairs)
}
