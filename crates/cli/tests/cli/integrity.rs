//! Damage on disk, through the real binary (docs/storage-format.md, "What is checked, what is
//! repaired"): a byte flipped in the middle of the write-ahead log stops the node, naming the
//! file and the offset, and `haze repair` recovers every record but the damaged one; a torn
//! last record is cut and the node starts with every acknowledged write; a value damaged in
//! the B-tree fails its read with `corrupt`, and `haze scrub` finds it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use haze_client::{Client, Scalar};
use haze_crdt::LwwRegister;

use crate::harness::{HAZE, Process, haze, ok, run};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn key(i: usize) -> String {
    format!("reg:{i:04}")
}

fn value(i: usize) -> String {
    format!("value-{i:04}-end")
}

/// Writes registers `from..to` through a client, one acknowledged write (one commit, one log
/// record) at a time.
fn write_registers(addr: &str, range: std::ops::Range<usize>) {
    runtime().block_on(async {
        let client = Client::connect(addr).await.unwrap();
        for i in range {
            let written = Scalar::String(value(i));
            client.register_set(key(i), written).await.unwrap();
        }
    });
}

/// Reads registers `0..n`: each one's value, `None` if absent.
fn read_registers(addr: &str, n: usize) -> Vec<Option<String>> {
    runtime().block_on(async {
        let client = Client::connect(addr).await.unwrap();
        let mut found = Vec::new();
        for i in 0..n {
            let register: Option<LwwRegister<Scalar>> = client.get_typed(key(i)).await.unwrap();
            found.push(register.and_then(|r| match r.get() {
                Some(Scalar::String(s)) => Some(s.clone()),
                _ => None,
            }));
        }
        found
    })
}

/// The newest log segment of `data` (the one a running node writes).
fn newest_segment(data: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("wal-"))
        .collect();
    segments.sort();
    segments.pop().expect("a log segment")
}

fn find(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

/// A `haze serve` this test reads the whole log of; killed when dropped.
struct Started {
    child: Child,
    addr: String,
    /// Every log line before "haze node ready".
    before_ready: Vec<String>,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `haze serve` on `data`: `Ok` once it is ready (with its log until then), `Err` with its
/// exit status and whole log if it exits first.
fn serve(data: &Path) -> Result<Started, (ExitStatus, String)> {
    let mut child = HAZE
        .serve_command(data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("haze serve starts");
    let stderr = child.stderr.take().expect("piped");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut started = Started {
        child,
        addr: String::new(),
        before_ready: Vec::new(),
    };
    loop {
        match lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.contains("haze node ready") => {
                started.addr = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("listen="))
                    .expect("the ready line names the address")
                    .to_string();
                // Drain the rest, so that the node never blocks on a full pipe.
                std::thread::spawn(move || lines.into_iter().for_each(drop));
                return Ok(started);
            }
            Ok(line) => started.before_ready.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = started.child.wait().unwrap();
                return Err((status, started.before_ready.join("\n")));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("haze serve neither started nor ended"),
        }
    }
}

#[test]
fn a_byte_flipped_mid_log_stops_the_node_and_haze_repair_recovers_every_other_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let n = 300;
    let node = HAZE.serve(&data, &["--durability", "sync"]);
    write_registers(&node.addr, 0..n);
    node.kill(); // SIGKILL: every acknowledged write is only in the log
    let segment = newest_segment(&data);
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = value(n / 2);
    let [at] = find(&bytes, middle.as_bytes())[..] else {
        panic!("{middle} is in one record")
    };
    let flipped = at + 7; // a digit of the value
    bytes[flipped] ^= 0x01;
    std::fs::write(&segment, &bytes).unwrap();
    let name = segment.file_name().unwrap().to_string_lossy().into_owned();
    println!(
        "injected: {n} acknowledged sync-mode writes, SIGKILL, a bit of byte {flipped} of {name} \
         ({} bytes) flipped, in the value of {}",
        bytes.len(),
        key(n / 2)
    );

    let Err((status, log)) = serve(&data) else {
        panic!("the node started on a damaged log")
    };
    let error = log
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or(&log);
    println!("held: haze serve refused to start ({status}): {error}");
    assert!(!status.success());
    assert!(error.contains(&name), "names the file: {error}");
    let offset: u64 = error
        .split("at byte ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|o| o.parse().ok())
        .unwrap_or_else(|| panic!("names the offset: {error}"));
    assert!(offset <= flipped as u64 && flipped as u64 - offset < 100);
    assert!(error.contains("intact records follow"), "{error}");

    let out = haze()
        .args(["repair", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    println!("haze repair said:\n{report}");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains(&format!("LOST bytes {offset}..")),
        "says where: {report}"
    );
    assert!(
        report.contains("1 record (number"),
        "says how many: {report}"
    );
    assert!(
        report.contains(&format!("\"{}\"", key(n / 2))),
        "names the key: {report}"
    );
    assert!(report.contains(&format!("recovered {} record(s); lost 1 record(s)", n - 1)));
    let aside = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("damaged-")
        })
        .expect("the damaged segment set aside");
    assert_eq!(std::fs::read(aside.join(&name)).unwrap(), bytes);
    assert!(aside.join("report.txt").exists());

    let node = HAZE.serve(&data, &[]);
    let found = read_registers(&node.addr, n);
    let missing: Vec<String> = (0..n).filter(|&i| found[i].is_none()).map(key).collect();
    assert_eq!(missing, [key(n / 2)]);
    for (i, found) in found.iter().enumerate().filter(|(i, _)| *i != n / 2) {
        assert_eq!(found.as_deref(), Some(value(i).as_str()));
    }
    println!(
        "held: the node started after the repair; {} of {n} acknowledged writes read back, the \
         one lost is {}, in the damaged record",
        n - 1,
        key(n / 2)
    );
}

#[test]
fn a_torn_last_record_is_cut_and_the_node_starts_with_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let n = 50;
    let node = HAZE.serve(&data, &["--durability", "sync"]);
    write_registers(&node.addr, 0..n);
    let segment = newest_segment(&data);
    let acknowledged = std::fs::read(&segment).unwrap();
    // One more write, whose record the crash will tear: never acknowledged, in this story.
    write_registers(&node.addr, n..n + 1);
    node.kill();
    let whole = std::fs::read(&segment).unwrap();
    assert!(whole.starts_with(&acknowledged));
    let torn = acknowledged.len() + (whole.len() - acknowledged.len()) / 2;
    std::fs::write(&segment, &whole[..torn]).unwrap();
    println!(
        "injected: {n} acknowledged writes, then the log record of one more cut after {} of its \
         {} bytes, as a crash in the middle of its append leaves it",
        torn - acknowledged.len(),
        whole.len() - acknowledged.len()
    );

    let node = serve(&data).unwrap_or_else(|(status, log)| panic!("{status}: {log}"));
    let said = node
        .before_ready
        .iter()
        .find(|l| l.contains("cut a torn tail"))
        .unwrap_or_else(|| panic!("the cut is logged: {:?}", node.before_ready));
    println!("held: the node started and said: {said}");
    assert!(
        said.contains(&format!("bytes={}", torn - acknowledged.len()))
            && said.contains("records=1")
    );
    let found = read_registers(&node.addr, n + 1);
    for (i, found) in found.iter().enumerate().take(n) {
        assert_eq!(found.as_deref(), Some(value(i).as_str()), "{}", key(i));
    }
    assert_eq!(found[n], None, "the torn write");
    println!("held: all {n} acknowledged writes read back");
}

#[test]
fn a_value_damaged_in_the_btree_fails_its_read_with_corrupt_and_haze_scrub_finds_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let canary = "canary-3f9a7c1e5b";
    let node = HAZE.serve(&data, &[]);
    ok(&node, &["register", "set", "reg:canary", canary]);
    write_registers(&node.addr, 0..20);
    let healthy = ok(&node, &["get", "reg:canary"]);
    let (status, clean) = node.terminate(); // a clean stop: flushed into haze.redb
    assert!(status.success() && clean);
    let redb = data.join("haze.redb");
    let mut bytes = std::fs::read(&redb).unwrap();
    let found = find(&bytes, canary.as_bytes());
    assert!(!found.is_empty(), "the value is in the B-tree");
    for &at in &found {
        bytes[at + 9] ^= 0x02; // a digit of every copy redb keeps
    }
    std::fs::write(&redb, &bytes).unwrap();
    println!(
        "injected: a bit flipped in the value of reg:canary in haze.redb (at bytes {found:?})"
    );

    let scrub = |expect_ok: bool| {
        let out = haze()
            .args(["scrub", "--data"])
            .arg(&data)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.success(), expect_ok, "{stdout}");
        stdout
    };
    let said = scrub(false);
    println!("held: haze scrub failed and said:\n{said}");
    assert!(said.contains("CORRUPT \"reg:canary\""), "{said}");
    assert!(
        said.contains("21 keys") && said.contains("1 corrupt"),
        "{said}"
    );

    let node = HAZE.serve(&data, &[]);
    // The node's background scrub (on by default) finds it without anyone reading it.
    let found = node.wait_for_log("the scrub found a corrupt value");
    assert!(found.contains("reg:canary"), "{found}");
    println!("held: the background scrub found it: {found}");
    let read = run(&node, &["register", "get", "reg:canary"]);
    println!("held: the read failed: {}", read.stderr.trim());
    assert!(!read.ok && read.stderr.contains("corrupt"), "{read:?}");
    // An operation needs the value it cannot read: refused too.
    let op = run(&node, &["register", "set", "reg:canary", "later"]);
    assert!(!op.ok && op.stderr.contains("corrupt"), "{op:?}");
    for (i, found) in read_registers(&node.addr, 20).iter().enumerate() {
        assert_eq!(found.as_deref(), Some(value(i).as_str()));
    }
    // A healthy copy merged (as a replica's or a device's would be) replaces it.
    let state = dir.path().join("state.json");
    std::fs::write(&state, &healthy).unwrap();
    let mut merge = vec!["merge", "reg:canary", "--file"];
    merge.push(state.to_str().unwrap());
    ok(&node, &merge);
    assert_eq!(ok(&node, &["register", "get", "reg:canary"]).trim(), canary);
    println!("held: a merge of the healthy state repaired it");
    let (status, _) = node.terminate();
    assert!(status.success());
    let said = scrub(true);
    assert!(said.contains("0 corrupt"), "{said}");
}

/// `GET path` on `http` (`host:port`): the status line and the body.
fn http_get(http: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(http).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, body.to_string())
}

/// A set member large enough that a few thousand fill a small disk.
fn member(key: &str) -> Scalar {
    Scalar::String(format!("{key}:{}", "x".repeat(2000)))
}

#[test]
fn a_node_whose_log_fills_the_filesystem_refuses_writes_serves_reads_and_resumes_losing_nothing() {
    // The default flush threshold (64 MiB) is never reached: the log's appends meet the full
    // disk, and the log holds every write when the node is killed: a restart needs room to
    // replay it all into redb.
    fill_the_disk("64", true);
}

#[test]
fn a_node_whose_flushes_fill_the_filesystem_refuse_writes_serve_reads_and_resume_losing_nothing() {
    // A flush every MiB: redb's commits meet the full disk too (redb then refuses every call
    // until it is reopened). How much of the log a restart must replay depends on where the
    // flushes were when the node was killed: whether it finds room is not checked here.
    fill_the_disk("1", false);
}

/// Fills a small filesystem under a node flushing every `flush_mib` MiB, through its clients;
/// checks writes are refused and reads served while it is full, writes resume once there is
/// room, a restart without room refuses (if `restart_refuses`), and nothing acknowledged is
/// lost.
fn fill_the_disk(flush_mib: &str, restart_refuses: bool) {
    let Some(fs) = haze_testkit::Tmpfs::mount("16m") else {
        return;
    };
    let data = fs.path().join("data");
    // Room to free once the disk is full.
    let ballast = fs.path().join("ballast");
    std::fs::write(&ballast, vec![1u8; 2 * 1024 * 1024]).unwrap();
    let node = HAZE.serve(&data, &["--durability", "sync", "--flush-mib", flush_mib]);

    // Four writers, each until it has been refused three times.
    let (acknowledged, refusals) = runtime().block_on(async {
        let writers = (0..4).map(|t| {
            let addr = node.addr.clone();
            tokio::spawn(async move {
                let client = Client::connect(&addr).await.unwrap();
                let (mut acked, mut refused) = (Vec::new(), Vec::new());
                for n in 0..100_000 {
                    let key = format!("fill:{t}:{n:05}");
                    match client.set_add(&key, [member(&key)]).await {
                        Ok(_) => acked.push(key),
                        Err(e) => {
                            refused.push(e.to_string());
                            if refused.len() == 3 {
                                break;
                            }
                        }
                    }
                }
                (acked, refused)
            })
        });
        let mut acknowledged = Vec::new();
        let mut refusals = Vec::new();
        for writer in writers.collect::<Vec<_>>() {
            let (acked, refused) = writer.await.unwrap();
            acknowledged.extend(acked);
            refusals.extend(refused);
        }
        (acknowledged, refusals)
    });
    println!(
        "injected: a 16 MiB filesystem filled by 4 writers (flush every {flush_mib} MiB); {} \
         writes acknowledged, {} refused",
        acknowledged.len(),
        refusals.len()
    );
    assert_eq!(refusals.len(), 12, "every writer was refused three times");
    for refusal in &refusals {
        assert!(
            refusal.contains("unavailable") && refusal.contains("full"),
            "a write on a full disk was refused with {refusal:?}"
        );
    }
    let (status, body) = http_get(&node.http, "/health");
    assert!(status.contains("503"), "{status} {body}");
    assert!(body.contains("disk_full"), "{body}");
    // Reads go on.
    let first = &acknowledged[0];
    assert!(ok(&node, &["set", "members", first]).starts_with(first.as_str()));

    // Room again: writes resume by themselves.
    std::fs::remove_file(&ballast).unwrap();
    // (A flush to redb that found the disk full is tried again every second: a few writes may
    // still be refused.)
    let (resumed, tries) = runtime().block_on(async {
        let client = Client::connect(&node.addr).await.unwrap();
        let mut tries = 0;
        loop {
            tries += 1;
            let written = client.set_add("after", [member("after")]).await;
            if written.is_ok() || tries == 100 {
                return (written, tries);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    assert!(
        resumed.is_ok(),
        "no write within 10 s of room freed: {resumed:?}"
    );
    let (status, body) = http_get(&node.http, "/health");
    assert!(status.contains("200"), "{status} {body}");

    // A crash, and a restart on the disk as full as it was: replaying the log into redb needs
    // room, so the node refuses to start, saying why and that nothing is lost.
    node.kill();
    let refused = if restart_refuses {
        restart_without_room(&data)
    } else {
        "not checked (flushes had moved part of the log into redb)".to_string()
    };
    // The volume grows (an operator's fix): the node starts with every acknowledged write.
    let grown = std::process::Command::new("mount")
        .args(["-o", "remount,size=48m"])
        .arg(fs.path())
        .status()
        .unwrap();
    assert!(grown.success(), "growing the tmpfs");
    let node = HAZE.serve(&data, &[]);
    let missing = runtime().block_on(async {
        let client = Client::connect(&node.addr).await.unwrap();
        let mut missing = Vec::new();
        for key in acknowledged.iter().chain([&"after".to_string()]) {
            let set: Option<haze_crdt::OrSet<Scalar>> = client.get_typed(key).await.unwrap();
            if !set.is_some_and(|s| s.contains(&member(key))) {
                missing.push(key.clone());
            }
        }
        missing
    });
    assert!(missing.is_empty(), "lost: {missing:?}");
    println!(
        "held: writes refused with \"{}\", /health said disk_full, reads served, writes resumed \
         once 2 MiB were freed (try {}); after a SIGKILL the restart on the full disk: \"{}\", \
         and on the grown volume {} acknowledged writes were checked: 0 lost",
        refusals[0],
        tries,
        refused
            .lines()
            .find(|l| l.starts_with("error") || l.starts_with("not checked"))
            .unwrap_or_default(),
        acknowledged.len() + 1
    );
}

/// Starts a node on `data`, on a disk without room to replay its log: it must exit, saying the
/// disk is full and nothing is lost; returns what it said.
fn restart_without_room(data: &Path) -> String {
    let mut restart = HAZE
        .serve_command(data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut exited = None;
    for _ in 0..200 {
        exited = restart.try_wait().unwrap();
        if exited.is_some() {
            break;
        }
        haze_testkit::pause(100);
    }
    if exited.is_none() {
        let _ = restart.kill();
        let _ = restart.wait();
        panic!("the node started on a disk without room to replay its log");
    }
    let mut refused = String::new();
    std::io::Read::read_to_string(&mut restart.stderr.take().unwrap(), &mut refused).unwrap();
    assert!(
        refused.contains("the disk is full: nothing is lost"),
        "{refused}"
    );
    refused
}

#[test]
fn a_value_damaged_on_one_replica_is_read_whole_through_the_cluster_and_repaired_from_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let haze = HAZE.secure(dir.path());
    // Anti-entropy out of the way: the repair is the read's.
    let flags = ["--anti-entropy-ms", "600000"];
    let (controller, mut nodes) = haze.cluster(dir.path(), 3, &["--partitions", "16"], &flags);
    let out = haze.cluster_ok(&controller.addr, &["add", "n1", "n2", "n3", "--wait"]);
    assert!(out.contains("done: epoch"), "{out}");
    for node in &nodes {
        node.wait_for_log("cluster view installed");
    }
    let canary = "canary-8d41e07b2c";
    haze.ok(&nodes[0], &["register", "set", "reg:canary", canary]);
    for i in 0..20 {
        haze.ok(&nodes[i % 3], &["register", "set", &key(i), &value(i)]);
    }
    // Every replica holds the canary (a quorum write's third copy may trail it).
    let local = |node: &Process| haze.run(node, &["register", "get", "reg:canary", "--local"]);
    for node in &nodes {
        let mut held = local(node);
        for _ in 0..50 {
            if held.ok {
                break;
            }
            haze_testkit::pause(100);
            held = local(node);
        }
        assert_eq!(held.stdout.trim(), canary, "{held:?}");
    }

    // Node 3 stops cleanly (its values flushed into haze.redb) and a bit flips under the key.
    let victim = nodes.pop().unwrap();
    let addr = victim.addr.clone();
    let (status, clean) = victim.terminate();
    assert!(status.success() && clean);
    let data = dir.path().join("node3");
    let redb = data.join("haze.redb");
    let mut bytes = std::fs::read(&redb).unwrap();
    let found = find(&bytes, canary.as_bytes());
    assert!(!found.is_empty(), "the value is in the B-tree");
    for &at in &found {
        bytes[at + 9] ^= 0x02;
    }
    std::fs::write(&redb, &bytes).unwrap();
    println!("injected: a bit flipped under reg:canary in node 3's haze.redb (at {found:?})");
    let mut node_flags = vec!["--controller", controller.addr.as_str()];
    node_flags.extend(flags);
    let victim = haze.serve_at(&data, &addr, &node_flags);
    victim.wait_for_log("cluster view installed");
    let own = local(&victim);
    assert!(!own.ok && own.stderr.contains("corrupt"), "{own:?}");
    println!("held: node 3's own copy is refused: {}", own.stderr.trim());

    // A read through the damaged node merges a majority of replicas: the others' copies answer,
    // and the read writes the healthy state back to node 3.
    let routed = haze.run(&victim, &["register", "get", "reg:canary"]);
    assert!(routed.ok, "{routed:?}");
    assert_eq!(routed.stdout.trim(), canary);
    let mut repaired = local(&victim);
    for _ in 0..50 {
        if repaired.ok {
            break;
        }
        haze_testkit::pause(100);
        repaired = local(&victim);
    }
    assert_eq!(repaired.stdout.trim(), canary, "{repaired:?}");
    for (i, node) in nodes.iter().chain([&victim]).enumerate() {
        for k in 0..20 {
            let read = haze.ok(node, &["register", "get", &key(k)]);
            assert_eq!(read.trim(), value(k), "{} via node {}", key(k), i + 1);
        }
    }
    println!(
        "held: the routed read answered the healthy value and repaired node 3's copy; 21 keys \
         read through every node"
    );
}
