//! `haze bench`: a load generator for a Haze node, and for Redis side by side.
//!
//! Both targets are driven by the same engine: `--connections` connections, each keeping
//! `--pipeline` requests in flight, over uniformly random keys, for `--duration` seconds. Only
//! the encoding of requests and the parsing of responses differ. With `--rate`, the
//! connections send a fixed number of requests per second instead (an open loop), and a
//! request's latency counts from when it was due.

// A benchmark measures wall-clock time.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use haze_crdt::Scalar;
use haze_protocol::{PROTOCOL_VERSION, Request, Response, TypedOp, write_frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What each request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Op {
    /// Increment a counter (Redis: INCR).
    CounterIncr,
    /// Add a member of --value-size bytes to a set, answered with an acknowledgement (an
    /// `Apply`; Redis: SADD).
    SetAdd,
    /// Write a register of --value-size bytes, answered with an acknowledgement (an `Apply`;
    /// Redis: SET).
    RegisterSet,
    /// Read a register written before the run (Redis: GET of a string).
    Get,
    /// A quarter each of get, counter-incr, set-add and register-set.
    Mixed,
}

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// The Haze node's binary protocol address.
    #[arg(long, default_value = "127.0.0.1:7700")]
    addr: String,
    /// Connections, each with its own requests in flight.
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// The operation.
    #[arg(long, value_enum, default_value = "counter-incr")]
    op: Op,
    /// Bytes per written value (set member, register value).
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Distinct keys, chosen uniformly at random.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// The keys were written by an earlier run: `get` and `mixed` skip writing every key first.
    #[arg(long)]
    preloaded: bool,
    /// Seconds to run each target.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// With --baseline or --redis: split each target's --duration into this many slices and
    /// take the targets in turn, the order reversed every round (A B, B A, ...), so that drift
    /// and the order the targets run in fall on all of them alike.
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// Send this many requests per second in all (spread over the connections) instead of as
    /// many as the server answers: latency at a steady load below capacity. A request's latency
    /// counts from when it was due, so a server that falls behind is not hidden by the client
    /// waiting for it (each connection keeps at most --pipeline requests in flight).
    #[arg(long)]
    rate: Option<u64>,
    /// Also run the equivalent Redis commands against this address, and print the ratio.
    #[arg(long)]
    redis: Option<String>,
    /// Also run the same load against this Haze node (say, a single node beside a cluster's
    /// node at --addr), and print the ratio and the latency --addr adds.
    #[arg(long)]
    baseline: Option<String>,
    /// Route as a smart client does (`ClientConfig::direct`): fetch the cluster's partition
    /// table from --addr (and --baseline) and send each key's requests straight to its
    /// primary, the connections spread over the nodes (a node in no cluster holds every key:
    /// it gets them all). Without it every request goes to the one address, which forwards
    /// what it is not the primary of.
    #[arg(long)]
    direct: bool,
    /// Connect to Redis over TLS (its `--tls-port`), verifying it against this CA (PEM).
    #[arg(long, value_name = "PEM")]
    redis_tls_ca: Option<std::path::PathBuf>,
    /// How to reach the Haze nodes: `--tls-ca`/`--tls` for TLS, `--token` for a cluster that
    /// requires tokens, or a profile.
    #[command(flatten)]
    credentials: crate::command::profile::Credentials,
}

/// TLS and the token a target's connections use.
#[derive(Default)]
struct Security {
    tls: Option<Arc<haze_tls::rustls::ClientConfig>>,
    token: Option<String>,
}

/// The request of one step, before encoding.
#[derive(Debug, Clone, Copy)]
enum Step {
    Incr,
    Add,
    Set,
    Get,
}

impl Op {
    fn step(self, n: u64) -> Step {
        match self {
            Op::CounterIncr => Step::Incr,
            Op::SetAdd => Step::Add,
            Op::RegisterSet => Step::Set,
            Op::Get => Step::Get,
            Op::Mixed => [Step::Get, Step::Incr, Step::Add, Step::Set][(n % 4) as usize],
        }
    }
}

/// A target's wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Haze,
    Redis,
}

fn key_of(step: Step, k: u64) -> String {
    let kind = match step {
        Step::Incr => "c",
        Step::Add => "s",
        Step::Set | Step::Get => "r",
    };
    format!("bench:{kind}:{k}")
}

/// A value of exactly `size` bytes, different for each `n`.
fn payload(size: usize, n: u64) -> String {
    let mut s = format!("{n:016x}");
    s.truncate(size);
    while s.len() < size {
        s.push('x');
    }
    s
}

fn encode(target: Target, id: u64, step: Step, key: &str, value: &str, out: &mut Vec<u8>) {
    match target {
        Target::Haze => {
            let key = key.as_bytes().to_vec();
            let request = match step {
                Step::Incr => Request::Op {
                    key,
                    op: TypedOp::CounterAdd(1),
                },
                // Answered with an acknowledgement, not the new state: as Redis answers SADD
                // with a count and SET with OK (INCR, like an `Op`, with the value).
                Step::Add => Request::Apply {
                    key,
                    op: TypedOp::SetAdd(vec![Scalar::from(value)]),
                },
                Step::Set => Request::Apply {
                    key,
                    op: TypedOp::RegisterSet(Scalar::from(value)),
                },
                Step::Get => Request::Get { key },
            };
            let mut body = Vec::with_capacity(64 + value.len());
            request.encode(id, &mut body);
            write_frame(out, &body);
        }
        Target::Redis => {
            let args: Vec<&str> = match step {
                Step::Incr => vec!["INCR", key],
                Step::Add => vec!["SADD", key, value],
                Step::Set => vec!["SET", key, value],
                Step::Get => vec!["GET", key],
            };
            out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for arg in args {
                out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
                out.extend_from_slice(arg.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
    }
}

/// One parsed response: its request id (Haze; Redis answers in order) and whether it failed.
struct Parsed {
    consumed: usize,
    id: Option<u64>,
    error: bool,
    /// The error's text (Haze), for the report.
    message: Option<String>,
}

fn parse(target: Target, buf: &[u8]) -> anyhow::Result<Option<Parsed>> {
    match target {
        Target::Haze => {
            let Some(len) = buf.get(..4) else {
                return Ok(None);
            };
            let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
            let Some(body) = buf.get(4..4 + len) else {
                return Ok(None);
            };
            let (id, response) = Response::decode(body).context("an undecodable response")?;
            let message = match &response {
                Response::Error(e) => Some(e.to_string()),
                _ => None,
            };
            Ok(Some(Parsed {
                consumed: 4 + len,
                id: Some(id),
                error: message.is_some(),
                message,
            }))
        }
        Target::Redis => {
            let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
                return Ok(None);
            };
            let line = &buf[..end];
            let (consumed, error) = match line.first() {
                Some(b'+') | Some(b':') => (end + 2, false),
                Some(b'-') => (end + 2, true),
                Some(b'$') => {
                    let n: i64 = std::str::from_utf8(&line[1..])?.parse()?;
                    if n < 0 {
                        (end + 2, false)
                    } else {
                        let total = end + 2 + n as usize + 2;
                        if buf.len() < total {
                            return Ok(None);
                        }
                        (total, false)
                    }
                }
                _ => bail!("unexpected Redis reply {:?}", String::from_utf8_lossy(line)),
            };
            Ok(Some(Parsed {
                consumed,
                id: None,
                error,
                message: None,
            }))
        }
    }
}

/// What one connection measured.
#[derive(Debug, Default)]
struct Tally {
    done: u64,
    errors: u64,
    first_error: Option<String>,
    latencies_micros: Vec<u32>,
}

struct Plan {
    target: Target,
    op: Op,
    keys: u64,
    value_size: usize,
    pipeline: usize,
    /// Each connection's time between requests, when the load is a fixed rate.
    every: Option<Duration>,
    /// TLS and token.
    security: Arc<Security>,
}

async fn connect(
    target: Target,
    addr: &str,
    security: &Security,
) -> anyhow::Result<haze_protocol::BoxStream> {
    // The transports every client uses: TCP without Nagle, TLS over it if asked.
    let tcp: Arc<dyn haze_protocol::Dial> = Arc::new(haze_protocol::TcpDial);
    let dial: Arc<dyn haze_protocol::Dial> = match &security.tls {
        None => tcp,
        Some(tls) => Arc::new(haze_tls::TlsDial::new(tcp, tls.clone())),
    };
    let mut stream = dial
        .dial(addr.to_string())
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    if target == Target::Haze {
        let mut body = Vec::new();
        Request::Hello {
            version: PROTOCOL_VERSION,
            role: haze_protocol::Role::Client,
            token: security.token.clone(),
        }
        .encode(0, &mut body);
        let mut frame = Vec::new();
        write_frame(&mut frame, &body);
        stream.write_all(&frame).await?;
        let mut buf = [0u8; 64];
        let mut got = 0;
        loop {
            got += stream.read(&mut buf[got..]).await?;
            if let Some(parsed) = parse(target, &buf[..got])? {
                if parsed.error {
                    bail!("the node refused the handshake");
                }
                break;
            }
        }
    }
    Ok(stream)
}

/// Keys a connection keeps to: those whose primary is at this address.
type OnlyPrimary = (Arc<haze_ring::RoutingTable>, String);

async fn drive(
    plan: Arc<Plan>,
    addr: String,
    seed: u64,
    stop: Arc<AtomicBool>,
    limit: Option<u64>,
    only: Option<OnlyPrimary>,
) -> anyhow::Result<Tally> {
    let mut stream = connect(plan.target, &addr, &plan.security).await?;
    let mut tally = Tally::default();
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut sent_at: HashMap<u64, Instant> = HashMap::new();
    let (mut next_id, mut next_answer) = (1u64, 1u64);
    let (mut out, mut inbuf) = (Vec::new(), Vec::with_capacity(64 * 1024));
    let mut chunk = vec![0u8; 64 * 1024];
    let mut sent = 0u64;
    // When the next request is due, at a fixed rate.
    let mut due = tokio::time::Instant::now();
    loop {
        let stopping = stop.load(Ordering::Relaxed) || limit.is_some_and(|l| sent >= l);
        if stopping && sent_at.is_empty() {
            break;
        }
        out.clear();
        while !stopping
            && sent_at.len() < plan.pipeline
            && limit.is_none_or(|l| sent < l)
            && plan
                .every
                .is_none_or(|_| due <= tokio::time::Instant::now())
        {
            let step = plan.op.step(next_id);
            let k = if limit.is_some() {
                sent
            } else {
                next() % plan.keys
            };
            let mut key = key_of(step, k);
            if let Some((routing, here)) = &only {
                // Draw again until the key's primary is this connection's node (a third of the
                // keys each, on three nodes; bounded, should a node be primary of nothing).
                for _ in 0..256 {
                    if routing.primary_addr(key.as_bytes()) == Some(here.as_str()) {
                        break;
                    }
                    key = key_of(step, next() % plan.keys);
                }
            }
            let value = payload(plan.value_size, next_id ^ seed);
            encode(plan.target, next_id, step, &key, &value, &mut out);
            let at = match plan.every {
                Some(every) => {
                    let at = due.into_std();
                    due += every;
                    at
                }
                None => Instant::now(),
            };
            sent_at.insert(next_id, at);
            next_id += 1;
            sent += 1;
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
        }
        let n = if plan.every.is_some() && !stopping {
            tokio::select! {
                read = stream.read(&mut chunk) => read?,
                () = tokio::time::sleep_until(due) => continue,
            }
        } else {
            stream.read(&mut chunk).await?
        };
        if n == 0 {
            bail!("the server closed the connection");
        }
        inbuf.extend_from_slice(&chunk[..n]);
        let mut at = 0;
        while let Some(parsed) = parse(plan.target, &inbuf[at..])? {
            at += parsed.consumed;
            let id = parsed.id.unwrap_or_else(|| {
                next_answer += 1;
                next_answer - 1
            });
            if let Some(started) = sent_at.remove(&id) {
                tally
                    .latencies_micros
                    .push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            tally.done += 1;
            tally.errors += u64::from(parsed.error);
            if tally.first_error.is_none() {
                tally.first_error = parsed.message;
            }
        }
        inbuf.drain(..at);
    }
    Ok(tally)
}

/// The result of one target's run.
struct Outcome {
    ops_per_sec: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    errors: u64,
    /// The text of the first error, if any.
    first_error: Option<String>,
}

/// A target ready to be measured: its address and how to reach it.
struct Prepared {
    target: Target,
    addr: String,
    security: Arc<Security>,
    /// With `--direct`: the cluster's table, to send each key to its primary.
    routing: Option<Arc<haze_ring::RoutingTable>>,
}

/// The routing table of the cluster the node at `addr` belongs to; `None` for a node in no
/// cluster (it holds every key: sending everything to it is direct already).
async fn routing_table(
    addr: &str,
    security: &Security,
) -> anyhow::Result<Option<Arc<haze_ring::RoutingTable>>> {
    let mut config = haze_client::ClientConfig {
        token: security.token.clone(),
        ..haze_client::ClientConfig::default()
    };
    if let Some(tls) = &security.tls {
        config.dial = Arc::new(haze_tls::TlsDial::new(config.dial, tls.clone()));
    }
    let client = haze_client::Client::connect_with(addr, config)
        .await
        .with_context(|| format!("connecting to {addr} for its partition table"))?;
    match client.send(Request::Table, true).await? {
        Response::Table(Some(json)) => Ok(Some(Arc::new(
            serde_json::from_slice(&json).context("reading the partition table")?,
        ))),
        Response::Table(None) => Ok(None),
        other => bail!("--direct: {addr} answered the table request with {other:?}"),
    }
}

/// How to reach `addr` as `target`, with its keys written once first if the load reads.
async fn prepare(target: Target, addr: &str, args: &BenchArgs) -> anyhow::Result<Prepared> {
    let security = Arc::new(match target {
        Target::Haze => {
            let resolved = args.credentials.resolve(addr)?;
            Security {
                tls: resolved.tls,
                token: resolved.token,
            }
        }
        Target::Redis => Security {
            tls: match &args.redis_tls_ca {
                Some(ca) => Some(
                    haze_tls::client_config(Some(ca), None)
                        .with_context(|| format!("loading {}", ca.display()))?,
                ),
                None => None,
            },
            token: None,
        },
    });
    // Reads need something to read: write every key once first.
    if matches!(args.op, Op::Get | Op::Mixed) && !args.preloaded {
        let preload = Arc::new(Plan {
            target,
            op: Op::RegisterSet,
            keys: args.keys,
            value_size: args.value_size,
            pipeline: 64,
            every: None,
            security: security.clone(),
        });
        drive(
            preload,
            addr.to_string(),
            7,
            Arc::new(AtomicBool::new(false)),
            Some(args.keys),
            None,
        )
        .await?;
    }
    let routing = if args.direct && target == Target::Haze {
        routing_table(addr, &security).await?
    } else {
        None
    };
    Ok(Prepared {
        target,
        addr: addr.to_string(),
        security,
        routing,
    })
}

/// What one target's slices added up to.
#[derive(Default)]
struct Measured {
    tally: Tally,
    seconds: f64,
}

/// Drives `target` for `seconds`, adding what it did to `into`.
async fn measure(
    target: &Prepared,
    args: &BenchArgs,
    seconds: f64,
    into: &mut Measured,
) -> anyhow::Result<()> {
    let plan = Arc::new(Plan {
        target: target.target,
        op: args.op,
        keys: args.keys,
        value_size: args.value_size,
        pipeline: args.pipeline.max(1),
        every: args.rate.map(|rate| {
            Duration::from_secs_f64(args.connections.max(1) as f64 / rate.max(1) as f64)
        }),
        security: target.security.clone(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    // With a routing table, connection i goes to the i-th node (in turn) and sends only keys
    // that node is the primary of: every request reaches its primary, none is forwarded.
    let nodes: Vec<String> = target
        .routing
        .as_ref()
        .map(|r| r.addrs.values().cloned().collect())
        .unwrap_or_default();
    let tasks: Vec<_> = (0..args.connections.max(1))
        .map(|i| {
            let (addr, only) = match (&target.routing, nodes.get(i % nodes.len().max(1))) {
                (Some(routing), Some(node)) => {
                    (node.clone(), Some((routing.clone(), node.clone())))
                }
                _ => (target.addr.clone(), None),
            };
            tokio::spawn(drive(
                plan.clone(),
                addr,
                0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1),
                stop.clone(),
                None,
                only,
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let all = &mut into.tally;
    for task in tasks {
        let tally = task.await.context("a connection task failed")??;
        all.done += tally.done;
        all.errors += tally.errors;
        all.first_error = all.first_error.take().or(tally.first_error);
        all.latencies_micros.extend(tally.latencies_micros);
    }
    into.seconds += started.elapsed().as_secs_f64();
    Ok(())
}

impl Measured {
    fn outcome(mut self) -> Outcome {
        let all = &mut self.tally;
        all.latencies_micros.sort_unstable();
        let quantile = |q: f64| {
            let v = &all.latencies_micros;
            if v.is_empty() {
                0.0
            } else {
                f64::from(v[((v.len() - 1) as f64 * q) as usize]) / 1000.0
            }
        };
        Outcome {
            ops_per_sec: all.done as f64 / self.seconds.max(f64::MIN_POSITIVE),
            p50: quantile(0.5),
            p99: quantile(0.99),
            p999: quantile(0.999),
            errors: all.errors,
            first_error: all.first_error.take(),
        }
    }
}

fn report(name: &str, args: &BenchArgs, o: &Outcome) {
    let rate = args.rate.map_or_else(String::new, |r| format!("at {r}/s "));
    println!(
        "{name:<6} {:<13} {:>3} conns  pipeline {:<3} {rate}{:>10.0} ops/s   p50 {:>7.3} ms   p99 {:>7.3} ms   p999 {:>7.3} ms   errors {}",
        args.op
            .to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_string()),
        args.connections,
        args.pipeline,
        o.ops_per_sec,
        o.p50,
        o.p99,
        o.p999,
        o.errors
    );
    if let Some(e) = &o.first_error {
        println!("{name:<6} first error: {e}");
    }
}

pub(crate) fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.keys == 0 {
        bail!("--keys must be at least 1");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut targets = vec![(
            "haze",
            prepare(Target::Haze, &args.addr, &args)
                .await
                .context("preparing Haze")?,
        )];
        if let Some(addr) = &args.baseline {
            let prepared = prepare(Target::Haze, addr, &args)
                .await
                .context("preparing the baseline node")?;
            targets.push(("base", prepared));
        }
        if let Some(addr) = &args.redis {
            let prepared = prepare(Target::Redis, addr, &args)
                .await
                .context("preparing Redis")?;
            targets.push(("redis", prepared));
        }
        let rounds = args.rounds.max(1);
        let slice = args.duration as f64 / f64::from(rounds);
        let mut measured: Vec<Measured> = targets.iter().map(|_| Measured::default()).collect();
        for round in 0..rounds {
            let mut order: Vec<usize> = (0..targets.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let (name, target) = &targets[i];
                measure(target, &args, slice, &mut measured[i])
                    .await
                    .with_context(|| format!("benchmarking {name} at {}", target.addr))?;
            }
        }
        let mut outcomes = targets
            .iter()
            .map(|(name, _)| *name)
            .zip(measured.into_iter().map(Measured::outcome));
        let (_, haze) = outcomes.next().expect("haze is always measured");
        report("haze", &args, &haze);
        for (name, other) in outcomes {
            report(name, &args, &other);
            if name == "base" {
                println!(
                    "ratio  haze/base throughput {:.2}x   added latency p50 {:+.3} ms   p99 {:+.3} ms",
                    haze.ops_per_sec / other.ops_per_sec.max(f64::MIN_POSITIVE),
                    haze.p50 - other.p50,
                    haze.p99 - other.p99
                );
            } else {
                println!(
                    "ratio  haze/redis throughput {:.2}x   p99 {:.2}x",
                    haze.ops_per_sec / other.ops_per_sec.max(f64::MIN_POSITIVE),
                    haze.p99 / other.p99.max(f64::MIN_POSITIVE)
                );
            }
        }
        Ok(())
    })
}
