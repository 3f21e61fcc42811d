//! The files a process keeps its state in, as a crash or another version leaves them: a
//! controller killed in the middle of saving restarts with its last acknowledged state; a
//! damaged `controller.json` stops the controller with the file and the reason, and is left as
//! it is (docs/cluster.md, "What the controller keeps"); `haze serve` refuses a data directory of
//! another format, naming both versions, and changes nothing in it (docs/storage-format.md).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::harness::{HAZE, cluster_status, haze, pause};

/// The file size limit (`ulimit -f`, in 512-byte blocks: 4 KiB) of the controller that is
/// killed while it saves: its first states fit, a few dozen registrations later one does not.
const FSIZE_BLOCKS: u64 = 8;
/// Linux's SIGXFSZ: what the kernel kills a process with when it writes past its file size
/// limit.
const SIGXFSZ: i32 = 25;

/// A process that is killed when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `command`, which must refuse to start, until it exits (a hang guard of 30 s kills
/// it), and returns how it exited and what it wrote to standard error. Panics at once if it
/// logs that it is ready instead.
fn run_to_exit(mut command: Command) -> (ExitStatus, String) {
    let mut child = Guard(
        command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("haze starts"),
    );
    let stderr = child.0.stderr.take().expect("piped");
    let (lines, log) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let mut written = Vec::new();
    for _ in 0..600 {
        while let Ok(line) = log.try_recv() {
            assert!(
                !line.contains(" ready "),
                "the process started instead of refusing: {line}"
            );
            written.push(line);
        }
        if let Some(status) = child.0.try_wait().unwrap() {
            // What it wrote last, up to the end of its standard error.
            written.extend(log.iter());
            return (status, written.join("\n"));
        }
        pause(50);
    }
    panic!("the process did not exit within 30 s; it wrote: {written:?}");
}

/// One HTTP/1.1 request to `addr`: the status and body, or `None` if the connection broke
/// before an answer (the process died).
fn request(addr: &str, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: \
         application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    let (_, body) = answer.split_once("\r\n\r\n")?;
    Some((status, body.to_string()))
}

/// Registers `addr` with the controller at `controller`: the node's id, or `None` if the
/// controller died before it answered.
fn register(controller: &str, addr: &str) -> Option<serde_json::Value> {
    let (status, body) = request(
        controller,
        "POST",
        "/v1/nodes",
        &format!(r#"{{"addr": "{addr}"}}"#),
    )?;
    assert_eq!(status, 200, "registering {addr}: {body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    Some(answer["node"].clone())
}

/// The members in `haze cluster status --json`: address → id.
fn members(controller: &str) -> BTreeMap<String, serde_json::Value> {
    cluster_status(controller)["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["addr"].as_str().unwrap().to_string(), m["id"].clone()))
        .collect()
}

/// A `haze controller` this test runs itself, and the thread that reads its log.
struct Launched {
    child: Guard,
    addr: String,
    log: std::thread::JoinHandle<Vec<String>>,
}

/// Starts `haze controller` on `data`, under a file size limit of `fsize_blocks` (512-byte
/// blocks) if given, and waits until it is ready; `Err` with its log if it exits first.
fn launch_controller(data: &Path, fsize_blocks: Option<u64>) -> Result<Launched, String> {
    let limit = fsize_blocks.map_or(String::new(), |b| format!("ulimit -f {b} && "));
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("{limit}ulimit -c 0 && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_haze"))
        .args(["controller", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = Guard(command.spawn().expect("sh starts"));
    let stderr = child.0.stderr.take().expect("piped");
    let mut lines = BufReader::new(stderr).lines().map_while(Result::ok);
    let mut before = Vec::new();
    let ready = loop {
        match lines.next() {
            Some(line) if line.contains("haze controller ready") => break line,
            Some(line) => before.push(line),
            // The process ended (its standard error closed) before it was ready.
            None => return Err(before.join("\n")),
        }
    };
    let addr = ready
        .split_whitespace()
        .find_map(|w| w.strip_prefix("listen="))
        .expect("the ready line names the address")
        .to_string();
    // The rest of its log, read as it comes so that the process never blocks on a full pipe.
    let log = std::thread::spawn(move || lines.collect());
    Ok(Launched { child, addr, log })
}

#[test]
fn a_controller_killed_while_it_saves_restarts_with_its_last_acknowledged_state() {
    use std::os::unix::process::ExitStatusExt as _;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("controller");
    // The controller under a file size limit: the save that would write past it is cut off in
    // the middle of its write and the kernel kills the process (SIGXFSZ), as a crash would.
    let mut limited =
        launch_controller(&data, Some(FSIZE_BLOCKS)).expect("the limited controller starts");
    let mut acknowledged = BTreeMap::new();
    for i in 0..1_000u32 {
        let node = format!("127.0.0.1:{}", 20_000 + i);
        match register(&limited.addr, &node) {
            Some(id) => {
                acknowledged.insert(node, id);
            }
            None => break,
        }
    }
    let status = limited.child.0.wait().unwrap();
    let log = limited.log.join().unwrap();
    assert_eq!(
        status.signal(),
        Some(SIGXFSZ),
        "the controller died writing past its file size limit ({status}) after {} \
         registrations: {log:?}",
        acknowledged.len()
    );
    assert!(acknowledged.len() > 3, "some changes were saved first");
    let temp = std::fs::read(data.join("controller.json.tmp")).ok();

    // Restarted without the limit: exactly the acknowledged registrations, with their ids.
    let restarted = match launch_controller(&data, None) {
        Ok(c) => c,
        Err(log) => panic!("the restart after the crash failed:\n{log}"),
    };
    assert_eq!(
        members(&restarted.addr),
        acknowledged,
        "the restart has the last acknowledged state"
    );
    // The crash hit a save in the middle: its temporary file is cut short (the restart read
    // the file the last completed save left instead).
    let temp = temp.expect("the crash left the save's temporary file");
    assert!(
        serde_json::from_slice::<serde_json::Value>(&temp).is_err(),
        "the save was cut off ({} bytes written)",
        temp.len()
    );
    // It saves its next change over what the crash left.
    let id = register(&restarted.addr, "127.0.0.1:19999").expect("registered");
    acknowledged.insert("127.0.0.1:19999".into(), id);
    assert_eq!(members(&restarted.addr), acknowledged);
    assert!(!data.join("controller.json.tmp").exists());
    drop(restarted.child);
    let log = restarted.log.join().unwrap();
    assert!(
        !log.iter().any(|l| l.contains("panicked")),
        "the controller panicked: {log:?}"
    );
}

#[test]
fn a_damaged_controller_json_stops_the_controller_with_the_file_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("controller");
    let controller = HAZE.controller(&data);
    for port in [7701, 7702] {
        register(&controller.addr, &format!("127.0.0.1:{port}")).expect("registered");
    }
    let (exit, clean) = controller.terminate();
    assert!(exit.success() && clean);
    let path = data.join("controller.json");
    let good = std::fs::read(&path).unwrap();

    let zeros = vec![0u8; good.len()];
    let damaged: [(&str, &[u8], &str); 3] = [
        ("cut in the middle", &good[..good.len() / 2], "EOF"),
        ("empty", b"", "EOF"),
        ("zeros", &zeros, "expected value"),
    ];
    for (how, bytes, why) in damaged {
        std::fs::write(&path, bytes).unwrap();
        let mut command = haze();
        command
            .args(["controller", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data);
        let (status, stderr) = run_to_exit(command);
        assert_eq!(status.code(), Some(1), "{how}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{how}: one error line: {stderr}");
        assert!(
            errors[0].contains(&path.display().to_string()) && errors[0].contains(why),
            "{how}: the error names the file and the reason ({why}): {}",
            errors[0]
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{how}: the refused file was changed"
        );
    }
    // Restored, beside a temporary file a crash left, it serves its state again.
    std::fs::write(&path, &good).unwrap();
    std::fs::write(data.join("controller.json.tmp"), &good[..good.len() / 3]).unwrap();
    let controller = HAZE.controller(&data);
    assert_eq!(members(&controller.addr).len(), 2);
}

/// Every file of a data directory: name → bytes (`haze.redb` by what its `meta` and `values`
/// tables hold: redb rewrites its own header whenever it opens the file for writing).
fn data_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    use redb::{ReadableDatabase as _, ReadableTable as _};
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "haze.redb" {
            let db = redb::ReadOnlyDatabase::open(&path).expect("a clean redb file");
            let txn = db.begin_read().unwrap();
            let mut tables = Vec::new();
            for (k, v) in txn
                .open_table(META)
                .unwrap()
                .iter()
                .unwrap()
                .map(Result::unwrap)
            {
                tables.extend(k.value().as_bytes());
                tables.extend(v.value().to_be_bytes());
            }
            for (k, v) in txn
                .open_table(VALUES)
                .unwrap()
                .iter()
                .unwrap()
                .map(Result::unwrap)
            {
                tables.extend(k.value());
                tables.extend(v.value());
            }
            files.insert(name, tables);
        } else {
            files.insert(name, std::fs::read(&path).unwrap());
        }
    }
    files
}

const META: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
const VALUES: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("values");

#[test]
fn haze_serve_refuses_a_data_directory_of_another_format_and_changes_nothing_in_it() {
    use haze_storage::{DiskStore, Mutation, Store, StoreConfig, Write as StoreWrite};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    {
        let store = DiskStore::open(&data, StoreConfig::default()).unwrap();
        let mut counter = haze_crdt::GCounter::new();
        counter.increment(haze_crdt::ActorId::new(1), 5).unwrap();
        let mut batch = [StoreWrite::new(
            b"visits".to_vec(),
            Mutation::Merge(counter.into()),
        )];
        store.apply(&mut batch).unwrap();
    }
    // What a later version of Haze would have marked it with.
    {
        let db = redb::Database::create(data.join("haze.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert("format", 3).unwrap();
        txn.commit().unwrap();
    }
    let before = data_files(&data);

    let mut command = haze();
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(&data);
    let (status, stderr) = run_to_exit(command);
    assert_eq!(status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    assert!(
        errors[0].contains(&data.display().to_string())
            && errors[0].contains("unsupported storage format 3 (this build reads 2)"),
        "the error names the directory and both versions: {}",
        errors[0]
    );
    assert!(
        !stderr.contains("haze node ready"),
        "the node did not start: {stderr}"
    );
    let after = data_files(&data);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "the refused start added or removed no file"
    );
    assert!(after == before, "the refused start changed the directory");
}
