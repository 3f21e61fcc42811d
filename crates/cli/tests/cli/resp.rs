//! The Redis protocol front end as a Redis client uses it (`haze serve --resp`), spoken byte for
//! byte over TCP: pipelined commands, RESP2 and RESP3 replies, the errors Redis clients expect,
//! and tokens through `AUTH`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::{HAZE, Process};

/// The RESP address of a node started with `--resp 127.0.0.1:0`.
fn resp_addr(node: &Process) -> String {
    assert!(!node.resp.is_empty(), "the node serves no RESP");
    node.resp.clone()
}

/// Encodes commands as RESP arrays of bulk strings, all in one buffer (a pipeline).
fn pipeline(commands: &[&[&str]]) -> Vec<u8> {
    let mut out = Vec::new();
    for command in commands {
        out.extend_from_slice(format!("*{}\r\n", command.len()).as_bytes());
        for arg in *command {
            out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
        }
    }
    out
}

/// Sends `commands` in one write and reads until `expected` bytes of replies came (or 5 s).
fn exchange(stream: &mut TcpStream, commands: &[&[&str]], expected: &str) -> String {
    stream.write_all(&pipeline(commands)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    while got.len() < expected.len() {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn redis_commands_map_onto_crdt_operations_pipelined_in_resp2_and_resp3() {
    let dir = tempfile::tempdir().unwrap();
    let node = HAZE.serve(&dir.path().join("node"), &["--resp", "127.0.0.1:0"]);
    let mut conn = TcpStream::connect(resp_addr(&node)).unwrap();

    let expected = "+OK\r\n$5\r\nhello\r\n:1\r\n:6\r\n$1\r\n6\r\n:3\r\n:1\r\n:4\r\n:1\r\n*2\r\n:1\r\n:0\r\n\
                    :2\r\n+set\r\n+string\r\n:2\r\n$-1\r\n+PONG\r\n";
    let got = exchange(
        &mut conn,
        &[
            &["SET", "title", "hello"],
            &["GET", "title"],
            &["INCR", "visits"],
            &["INCRBY", "visits", "5"],
            &["GET", "visits"],
            &["SADD", "list", "milk", "eggs", "bread"],
            &["SADD", "list", "milk", "jam"],
            &["SCARD", "list"],
            &["SISMEMBER", "list", "jam"],
            &["SMISMEMBER", "list", "eggs", "tea"],
            &["SREM", "list", "eggs", "jam", "tea"],
            &["TYPE", "list"],
            &["TYPE", "title"],
            &["EXISTS", "list", "title", "nothing"],
            &["GET", "nothing"],
            &["PING"],
        ],
        expected,
    );
    assert_eq!(got, expected);
    println!("16 pipelined commands (registers, counters, sets): every reply as Redis gives it");

    // SADD, SREM and HSET pipeline (their writes share commits): each counts what it changed
    // with the writes before it in the same pipeline, not yet committed, as Redis would.
    let expected = ":1\r\n:0\r\n:2\r\n:1\r\n:1\r\n:1\r\n:0\r\n$1\r\n2\r\n:1\r\n";
    let got = exchange(
        &mut conn,
        &[
            &["HSET", "h", "f", "1"],
            &["HSET", "h", "f", "2"],
            &["HSET", "h", "g", "3", "k", "4"],
            &["SADD", "s", "a"],
            &["SREM", "s", "a"],
            &["SADD", "s", "a", "a"],
            &["SADD", "s", "a"],
            &["HGET", "h", "f"],
            &["SCARD", "s"],
        ],
        expected,
    );
    assert_eq!(got, expected);

    // A key of another type, and what a CRDT store cannot honour: errors that say why.
    let got = exchange(
        &mut conn,
        &[
            &["GET", "list"],
            &["INCR", "title"],
            &["DEL", "list"],
            &["EXPIRE", "title", "10"],
            &["MULTI"],
            &["SET", "title", "x", "NX"],
            &["FROB", "a"],
        ],
        "-WRONGTYPE",
    );
    let lines: Vec<&str> = got.lines().collect();
    assert!(lines[0].starts_with("-WRONGTYPE"), "{got}");
    assert!(lines[1].starts_with("-WRONGTYPE"), "{got}");
    for (line, word) in lines[2..].iter().zip([
        "deletes",
        "expiries",
        "transactions",
        "SET options",
        "unknown command",
    ]) {
        assert!(
            line.starts_with("-ERR") && line.contains(word),
            "{word}: {line}"
        );
    }
    println!(
        "WRONGTYPE for a set read as a string; DEL, EXPIRE, MULTI, SET NX refused with the reason"
    );

    // RESP3: HELLO 3 answers a map; a set's members come as a set, nothing as `_`.
    let got = exchange(
        &mut conn,
        &[&["HELLO", "3"], &["SMEMBERS", "list"], &["GET", "nothing"]],
        "%7",
    );
    assert!(got.starts_with("%7\r\n"), "{got}");
    assert!(got.contains("$6\r\nserver\r\n$4\r\nhaze\r\n"), "{got}");
    assert!(
        got.ends_with("~2\r\n$5\r\nbread\r\n$4\r\nmilk\r\n_\r\n"),
        "{got}"
    );

    // Writes through RESP are the node's: the binary protocol reads them.
    assert_eq!(HAZE.ok(&node, &["counter", "get", "visits"]), "6\n");
    assert_eq!(HAZE.ok(&node, &["set", "members", "list"]), "bread\nmilk\n");

    // INFO keyspace counts the node's keys: title, visits, list, h, s.
    let keyspace = "# Keyspace\r\ndb0:keys=5,expires=0,avg_ttl=0\r\n";
    let got = exchange(&mut conn, &[&["INFO", "keyspace"]], keyspace);
    assert!(got.contains(keyspace), "{got:?}");
}

#[test]
fn a_secure_cluster_asks_resp_clients_for_a_token_and_holds_them_to_its_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let haze = HAZE.secure(dir.path());
    let (controller, nodes) = haze.cluster(
        dir.path(),
        1,
        &["--partitions", "16"],
        &["--resp", "127.0.0.1:0"],
    );
    haze.cluster_ok(&controller.addr, &["add", "n1", "--wait"]);
    nodes[0].wait_for_log("cluster view installed");
    let out = haze
        .command()
        .args([
            "token",
            "create",
            "--prefix",
            "user:42/",
            "--read",
            "--write",
            "--controller",
            &controller.addr,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // The node learns of a new token at its next poll of the controller.
    let mut known = false;
    for _ in 0..100 {
        let read = haze
            .command()
            .env("HAZE_TOKEN", &token)
            .args(["counter", "get", "user:42/warm", "--addr", &nodes[0].addr])
            .output()
            .unwrap();
        if read.status.success() {
            known = true;
            break;
        }
        crate::harness::pause(100);
    }
    assert!(known, "the node never took the new token");

    // TLS on every port: a RESP client speaks TLS too (rustls, as redis-cli --tls would).
    let ca = haze.ca().unwrap();
    let tls = haze_tls::client_config(Some(&ca), None).unwrap();
    let addr = resp_addr(&nodes[0]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let got = runtime.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let name = haze_tls::server_name(&addr).unwrap();
        let mut stream = haze_tls::tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .unwrap();
        let commands: &[&[&str]] = &[
            &["INCR", "user:42/visits"],
            &["AUTH", "haze_not_a_token"],
            &["AUTH", &token],
            &["INCR", "user:42/visits"],
            &["INCR", "user:7/visits"],
        ];
        stream.write_all(&pipeline(commands)).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.iter().filter(|&&b| b == b'\n').count() < 5 {
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                .await
                .expect("replies within 5 s")
                .unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).into_owned()
    });
    let lines: Vec<&str> = got.lines().collect();
    assert!(lines[0].starts_with("-NOAUTH"), "{got}");
    assert!(lines[1].starts_with("-WRONGPASS"), "{got}");
    assert_eq!(&lines[2..4], ["+OK", ":1"], "{got}");
    assert!(lines[4].starts_with("-NOPERM"), "{got}");
    println!("over TLS: NOAUTH before AUTH, WRONGPASS for a bad token, NOPERM outside the prefix");
}

#[test]
fn bad_input_on_the_resp_port_is_bounded_answered_or_cut_and_others_are_served() {
    use std::io::ErrorKind;

    let dir = tempfile::tempdir().unwrap();
    let node = HAZE.serve(
        &dir.path().join("node"),
        &["--resp", "127.0.0.1:0", "--idle-timeout-secs", "2"],
    );
    let addr = resp_addr(&node);
    // Sends `bytes` on a fresh connection; returns what came back until the node closed it
    // (or 5 s passed).
    let probe = |bytes: &[u8]| -> String {
        let mut conn = TcpStream::connect(&addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = conn.write_all(bytes);
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    got.extend_from_slice(b"<still open>");
                    break;
                }
                Err(_) => break,
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    };
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "a bulk string announcing 4 GB",
            b"*1\r\n$4294967296\r\n".to_vec(),
            "-ERR Protocol error",
        ),
        (
            "an array of a billion elements",
            b"*1000000000\r\n".to_vec(),
            "-ERR Protocol error",
        ),
        (
            "a malformed frame",
            b"*1\r\n:12\r\n".to_vec(),
            "-ERR Protocol error",
        ),
        (
            "a length that is not a number",
            b"*x\r\n".to_vec(),
            "-ERR Protocol error",
        ),
        (
            "an inline command with no end of line",
            vec![b'a'; 70 * 1024],
            "-ERR Protocol error",
        ),
    ];
    for (what, bytes, expected) in cases {
        let got = probe(&bytes);
        assert!(
            got.starts_with(expected) && !got.contains("<still open>"),
            "{what}: {got}"
        );
        println!("{what}: answered {:?} and closed", got.trim_end());
    }

    // 100,000 pipelined commands from a client that never reads: the node stops reading it
    // (bounded memory) and cuts it off after the idle timeout, while others are served.
    let mut greedy = TcpStream::connect(&addr).unwrap();
    greedy
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // ECHO of 1 KB: 100 MB of replies that nobody reads fill every buffer on the way.
    let payload = "x".repeat(1024);
    let one = pipeline(&[&["ECHO", &payload]]);
    let mut sent = 0;
    let chunk: Vec<u8> = one.iter().copied().cycle().take(one.len() * 100).collect();
    for _ in 0..1000 {
        if greedy.write_all(&chunk).is_err() {
            break;
        }
        sent += 100;
    }
    let mut other = TcpStream::connect(&addr).unwrap();
    assert_eq!(exchange(&mut other, &[&["PING"]], "+PONG\r\n"), "+PONG\r\n");
    // Past the idle timeout (2 s) without reading, the node has closed the connection: what
    // it had sent is read, then the end (or a reset), never an open connection.
    crate::harness::pause(4000);
    // (Shorter than the idle timeout: an open connection that merely waits is not taken for one
    // the node closed.)
    greedy
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let cut = loop {
        match greedy.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break false;
            }
            Err(_) => break true,
        }
    };
    assert!(cut, "the node never cut off a client that does not read");
    println!("a client that sent {sent} commands and read nothing was cut off; another was served");

    // A client that asks every 0.5 s for 3 s (half again the idle timeout) is served all along;
    // once silent, it is cut off after the idle timeout.
    let mut busy = TcpStream::connect(&addr).unwrap();
    for _ in 0..6 {
        crate::harness::pause(500);
        assert_eq!(exchange(&mut busy, &[&["PING"]], "+PONG\r\n"), "+PONG\r\n");
    }
    busy.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let closed = match busy.read(&mut buf) {
        Ok(n) => n == 0,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    };
    assert!(closed, "a silent client was not cut off within 5 s");
    println!("a client asking every 0.5 s was served for 3 s, then cut off once silent");
}

/// Runs `redis-cli ARGS` against the RESP port at `addr`; its stdout.
fn redis_cli(addr: &str, args: &[&str]) -> String {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let out = std::process::Command::new("redis-cli")
        .args(["-h", host, "-p", port])
        .args(args)
        .output()
        .expect("redis-cli runs (.ci/run installs redis-tools)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn redis_cli_works_against_a_node_and_through_every_node_of_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let (controller, nodes) = HAZE.cluster(
        dir.path(),
        3,
        &["--partitions", "16"],
        &["--resp", "127.0.0.1:0"],
    );
    crate::harness::cluster_ok(&controller.addr, &["add", "n1", "n2", "n3", "--wait"]);
    for node in &nodes {
        node.wait_for_log("cluster view installed");
    }
    let [a, b, c] = [&nodes[0].resp, &nodes[1].resp, &nodes[2].resp];
    // Writes through one node, reads through the others: any node routes any key.
    for i in 0..10 {
        redis_cli(a, &["incr", &format!("visits:{i}")]);
        redis_cli(b, &["sadd", &format!("list:{i}"), "milk", "eggs"]);
        redis_cli(c, &["hset", &format!("user:{i}"), "name", "Ada"]);
    }
    for i in 0..10 {
        assert_eq!(redis_cli(c, &["get", &format!("visits:{i}")]), "1\n");
        assert_eq!(
            redis_cli(a, &["smembers", &format!("list:{i}")]),
            "eggs\nmilk\n"
        );
        assert_eq!(
            redis_cli(b, &["hget", &format!("user:{i}"), "name"]),
            "Ada\n"
        );
    }
    // RESP3, type errors, a refused command, and redis-cli's own start (COMMAND DOCS).
    assert_eq!(redis_cli(a, &["-3", "smembers", "list:0"]), "eggs\nmilk\n");
    assert!(redis_cli(b, &["get", "list:0"]).starts_with("WRONGTYPE"));
    assert!(redis_cli(c, &["del", "list:0"]).contains("Haze keeps no deletes"));
    // A pipeline (redis-cli --pipe sends raw commands as fast as it can).
    let mut pipe = std::process::Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            a.rsplit_once(':').unwrap().1,
            "--pipe",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let commands: String = (0..1000).map(|_| "INCR piped\r\n").collect();
    pipe.stdin
        .take()
        .unwrap()
        .write_all(commands.as_bytes())
        .unwrap();
    let out = pipe.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("errors: 0, replies: 1000"), "{said}");
    assert_eq!(redis_cli(b, &["get", "piped"]), "1000\n");

    // One pipeline through one node of the cluster: its writes are routed together, yet each
    // key's are applied in the order sent (the last SET wins, SADD counts what it adds).
    let mut conn = TcpStream::connect(a).unwrap();
    let sets: Vec<String> = (0..300).map(|i| format!("v{i}")).collect();
    let mut commands: Vec<Vec<&str>> = Vec::new();
    for (i, v) in sets.iter().enumerate() {
        commands.push(vec!["SET", "ordered", v]);
        commands.push(vec!["INCR", if i % 2 == 0 { "even" } else { "odd" }]);
        commands.push(vec!["SADD", "members", if i % 3 == 0 { "a" } else { "b" }]);
    }
    commands.push(vec!["GET", "ordered"]);
    let commands: Vec<&[&str]> = commands.iter().map(Vec::as_slice).collect();
    conn.write_all(&pipeline(&commands)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (mut got, mut buf) = (Vec::new(), [0u8; 4096]);
    // 900 one-line replies, then GET's two lines.
    while got.iter().filter(|&&b| b == b'\n').count() < 902 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let got = String::from_utf8_lossy(&got).into_owned();
    assert!(
        got.ends_with("$4\r\nv299\r\n"),
        "the last SET won: {}",
        &got[got.len() - 40..]
    );
    assert_eq!(
        got.matches(":1\r\n").count(),
        2 + 2,
        "INCR even and odd, SADD a and b: 1 once each"
    );
    assert_eq!(redis_cli(c, &["get", "even"]), "150\n");
    assert_eq!(redis_cli(b, &["scard", "members"]), "2\n");
    println!(
        "redis-cli: 30 writes through 3 nodes read back through the others; RESP3; --pipe 1000 INCRs"
    );
}

/// Reads one integer reply per command until `count` came (or 10 s).
fn integers(stream: &mut TcpStream, count: usize) -> Vec<i64> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (mut got, mut buf) = (Vec::new(), [0u8; 4096]);
    while got.iter().filter(|&&b| b == b'\n').count() < count {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got)
        .lines()
        .map(|l| {
            l.strip_prefix(':')
                .and_then(|n| n.parse().ok())
                .unwrap_or(-1)
        })
        .collect()
}

#[test]
fn concurrent_clients_adding_the_same_members_are_each_counted_once() {
    // Redis answers SADD and HSET with what each command added: of several clients adding the
    // same member, exactly one hears 1. The node counts on its writer, against the value each
    // write is applied to, so this holds however the clients' pipelines interleave.
    let dir = tempfile::tempdir().unwrap();
    let node = HAZE.serve(&dir.path().join("node"), &["--resp", "127.0.0.1:0"]);
    let addr = resp_addr(&node);
    let (clients, members, fields) = (6, 200, 100);
    let totals: Vec<(i64, i64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let addr = addr.clone();
                scope.spawn(move || {
                    let mut conn = TcpStream::connect(&addr).unwrap();
                    // Each client in its own order, so that their writes interleave.
                    let names: Vec<String> = (0..members)
                        .map(|i| format!("m{}", (i * 7 + c * 31) % members))
                        .collect();
                    let keys: Vec<String> = (0..fields)
                        .map(|i| format!("f{}", (i * 3 + c * 17) % fields))
                        .collect();
                    let mut commands: Vec<Vec<&str>> = Vec::new();
                    for name in &names {
                        commands.push(vec!["SADD", "together", name]);
                    }
                    for key in &keys {
                        commands.push(vec!["HSET", "shared", key, "v"]);
                    }
                    let commands: Vec<&[&str]> = commands.iter().map(Vec::as_slice).collect();
                    conn.write_all(&pipeline(&commands)).unwrap();
                    let replies = integers(&mut conn, members + fields);
                    assert_eq!(replies.len(), members + fields, "{replies:?}");
                    let (added, set) = replies.split_at(members);
                    (added.iter().sum::<i64>(), set.iter().sum::<i64>())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let added: i64 = totals.iter().map(|t| t.0).sum();
    let set: i64 = totals.iter().map(|t| t.1).sum();
    eprintln!(
        "{clients} clients pipelined SADD of the same {members} members and HSET of the same \
         {fields} fields: {added} members and {set} fields counted as added"
    );
    assert_eq!(
        added, members as i64,
        "each member counted once: {totals:?}"
    );
    assert_eq!(set, fields as i64, "each field counted once: {totals:?}");
    let mut conn = TcpStream::connect(&addr).unwrap();
    let got = exchange(
        &mut conn,
        &[&["SCARD", "together"], &["HLEN", "shared"]],
        ":200\r\n:100\r\n",
    );
    assert_eq!(got, ":200\r\n:100\r\n");
}
