//! The `haze` binary as a user runs it: `haze serve` and `haze controller` as processes on free
//! loopback ports, their logs, and `haze` commands against them.
//!
//! The binary's path is an argument ([`Haze::new`]): cargo names it to the integration tests of
//! the crate that builds it, as `env!("CARGO_BIN_EXE_haze")`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// The log line of `haze serve` once it serves.
const NODE_READY: &str = "haze node ready";
/// The log line of `haze controller` once it serves.
const CONTROLLER_READY: &str = "haze controller ready";
/// The log line of `haze serve --controller` once the controller knows it.
const REGISTERED: &str = "registered with the controller";

/// The `haze` binary at a path: starts its processes and runs its commands.
///
/// [`Haze::secure`] gives a copy whose processes run as a secure cluster does: a CA of its own,
/// a certificate for every node and the controller, and commands that present the controller's
/// admin token.
#[derive(Debug, Clone)]
pub struct Haze {
    bin: PathBuf,
    secure: Option<Arc<Secure>>,
}

/// The credentials of a secure [`Haze`].
#[derive(Debug)]
struct Secure {
    /// The CA and the certificates it issued (`NAME.pem`, `NAME.key`).
    certs: PathBuf,
    /// Where commands look for profiles (none are written there: the environment says all).
    config: PathBuf,
    /// The controller's admin token, once one started (`DATA/admin.token`).
    token: Mutex<Option<String>>,
}

impl Haze {
    /// The binary at `bin` (in a crate's integration tests: `env!("CARGO_BIN_EXE_haze")`).
    pub fn new(bin: impl Into<PathBuf>) -> Haze {
        Haze {
            bin: bin.into(),
            secure: None,
        }
    }

    /// This binary with TLS and tokens on: `haze certs init` makes a CA in `dir/certs`; every
    /// node started gets a certificate named after its data directory (`node1`) and the
    /// controller one named `controller`, with the `--tls-*` flags; every command trusts the
    /// CA (`HAZE_TLS_CA`) and presents the admin token of the controller last started
    /// (`HAZE_TOKEN`).
    ///
    /// # Panics
    ///
    /// If the CA cannot be made.
    pub fn secure(&self, dir: &Path) -> Haze {
        let certs = dir.join("certs");
        let made = Command::new(&self.bin)
            .args(["certs", "init", "--dir"])
            .arg(&certs)
            .output()
            .expect("haze certs runs");
        assert!(
            made.status.success(),
            "haze certs init: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        Haze {
            bin: self.bin.clone(),
            secure: Some(Arc::new(Secure {
                certs,
                config: dir.join("config"),
                token: Mutex::new(None),
            })),
        }
    }

    /// The CA's certificate of a secure binary ([`Haze::secure`]).
    pub fn ca(&self) -> Option<PathBuf> {
        self.secure.as_ref().map(|s| s.certs.join("ca.pem"))
    }

    /// Issues (once) a node certificate named `name` for loopback, and returns the `--tls-*`
    /// flags that use it.
    ///
    /// # Panics
    ///
    /// If this binary is not secure, or the certificate cannot be issued.
    pub fn tls_flags(&self, name: &str) -> Vec<String> {
        let secure = self.secure.as_ref().expect("a secure Haze (Haze::secure)");
        let cert = secure.certs.join(format!("{name}.pem"));
        if !cert.exists() {
            let made = Command::new(&self.bin)
                .args(["certs", "issue", "node", name, "--dir"])
                .arg(&secure.certs)
                .output()
                .expect("haze certs runs");
            assert!(
                made.status.success(),
                "haze certs issue node {name}: {}",
                String::from_utf8_lossy(&made.stderr)
            );
        }
        let path = |p: PathBuf| p.to_string_lossy().into_owned();
        vec![
            "--tls-cert".into(),
            path(cert),
            "--tls-key".into(),
            path(secure.certs.join(format!("{name}.key"))),
            "--tls-ca".into(),
            path(secure.certs.join("ca.pem")),
        ]
    }

    /// The admin token commands present (a secure binary's, once its controller started).
    pub fn admin_token(&self) -> Option<String> {
        let secure = self.secure.as_ref()?;
        secure
            .token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A command of the binary, with no arguments yet. It never reads the profiles of whoever
    /// runs the tests (`HAZE_CONFIG_DIR` points elsewhere); a secure binary's trusts its CA and
    /// presents its admin token.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.bin);
        for var in ["HAZE_TLS_CA", "HAZE_TOKEN", "HAZE_PROFILE"] {
            command.env_remove(var);
        }
        match &self.secure {
            Some(secure) => {
                command.env("HAZE_CONFIG_DIR", &secure.config);
                command.env("HAZE_TLS_CA", secure.certs.join("ca.pem"));
                if let Some(token) = self.admin_token() {
                    command.env("HAZE_TOKEN", token);
                }
            }
            None => {
                command.env(
                    "HAZE_CONFIG_DIR",
                    std::env::temp_dir().join("haze-testkit-none"),
                );
            }
        }
        command
    }

    /// `haze serve` on free loopback ports with its data in `data`.
    pub fn serve_command(&self, data: &Path) -> Command {
        let mut command = self.command();
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
                "--data",
            ])
            .arg(data);
        self.add_tls(&mut command, data);
        command
    }

    /// With a secure binary: the `--tls-*` flags of a certificate named after `data`'s last
    /// component.
    fn add_tls(&self, command: &mut Command, data: &Path) {
        if self.secure.is_some() {
            let name = data
                .file_name()
                .map_or_else(|| "node".to_string(), |n| n.to_string_lossy().into_owned());
            command.args(self.tls_flags(&name));
        }
    }

    /// Starts a node on free loopback ports with its data in `data` and `extra` flags, and waits
    /// until it is ready.
    pub fn serve(&self, data: &Path, extra: &[&str]) -> Process {
        let mut command = self.serve_command(data);
        command.args(extra);
        Process::launch(command, NODE_READY)
    }

    /// Starts a node listening on `addr` (to bring a stopped node back at its address).
    pub fn serve_at(&self, data: &Path, addr: &str, extra: &[&str]) -> Process {
        let mut command = self.command();
        command
            .args(["serve", "--listen", addr, "--http", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra);
        self.add_tls(&mut command, data);
        Process::launch(command, NODE_READY)
    }

    /// Starts a node following the controller at `controller` (`--controller`, then `extra`),
    /// and waits until the controller has registered it: nodes joined one at a time are n1, n2,
    /// … in that order.
    pub fn join(&self, data: &Path, controller: &str, extra: &[&str]) -> Process {
        let mut flags = vec!["--controller", controller];
        flags.extend(extra);
        let node = self.serve(data, &flags);
        node.wait_for_log(REGISTERED);
        node
    }

    /// Starts `haze controller` on a free loopback port with its state in `data`.
    pub fn controller(&self, data: &Path) -> Process {
        self.controller_at(data, "127.0.0.1:0")
    }

    /// Starts `haze controller` listening on `addr`.
    pub fn controller_at(&self, data: &Path, addr: &str) -> Process {
        self.controller_with(data, addr, &[])
    }

    /// Starts `haze controller` listening on `addr`, with `extra` flags.
    pub fn controller_with(&self, data: &Path, addr: &str, extra: &[&str]) -> Process {
        let mut command = self.command();
        command
            .args(["controller", "--listen", addr, "--data"])
            .arg(data)
            .args(extra);
        let Some(secure) = &self.secure else {
            return Process::launch(command, CONTROLLER_READY);
        };
        command.args(self.tls_flags("controller"));
        let controller = Process::launch(command, CONTROLLER_READY);
        // The controller writes its first admin token as it starts serving.
        let file = data.join("admin.token");
        for _ in 0..200 {
            if let Ok(token) = std::fs::read_to_string(&file)
                && !token.trim().is_empty()
            {
                *secure
                    .token
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(token.trim().to_string());
                return controller;
            }
            pause(50);
        }
        panic!("the controller wrote no {} within 10 s", file.display());
    }

    /// A cluster of processes: a controller with its state in `dir/controller` (and
    /// `controller_flags`) on a free port, then `nodes` nodes with their data in `dir/node1`,
    /// `dir/node2`, … (and `node_flags`), each [joined](Self::join) before the next starts, so
    /// node i is `n<i>`. None is added to the table yet (`haze cluster add`).
    pub fn cluster(
        &self,
        dir: &Path,
        nodes: usize,
        controller_flags: &[&str],
        node_flags: &[&str],
    ) -> (Process, Vec<Process>) {
        let controller =
            self.controller_with(&dir.join("controller"), "127.0.0.1:0", controller_flags);
        let nodes = (1..=nodes)
            .map(|i| self.join(&dir.join(format!("node{i}")), &controller.addr, node_flags))
            .collect();
        (controller, nodes)
    }

    /// Runs `haze ARGS --addr ADDR` against `server`.
    pub fn run(&self, server: &Process, args: &[&str]) -> Output {
        let out = self
            .command()
            .args(args)
            .args(["--addr", &server.addr])
            .output()
            .expect("haze runs");
        Output {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs a command against `server` that must succeed, and returns its stdout.
    pub fn ok(&self, server: &Process, args: &[&str]) -> String {
        let out = self.run(server, args);
        assert!(out.ok, "haze {args:?} failed: {}", out.stderr);
        out.stdout
    }

    /// Runs `haze cluster ARGS --controller ADDR`, which must succeed, and returns its stdout.
    pub fn cluster_ok(&self, controller: &str, args: &[&str]) -> String {
        let out = self
            .command()
            .arg("cluster")
            .args(args)
            .args(["--controller", controller])
            .output()
            .expect("haze runs");
        assert!(
            out.status.success(),
            "haze cluster {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `haze cluster status --json`, parsed.
    pub fn cluster_status(&self, controller: &str) -> serde_json::Value {
        serde_json::from_str(&self.cluster_ok(controller, &["status", "--json"]))
            .expect("JSON status")
    }
}

/// A running `haze serve` or `haze controller`; killed when dropped.
///
/// Its stderr (the log) is read by a thread: [`wait_for_log`](Self::wait_for_log) waits for a
/// line, and every line that reports a panic (the process's or one of its tasks') is kept. A
/// test whose processes panicked fails when they are dropped, even if everything else it checked
/// held.
#[derive(Debug)]
pub struct Process {
    child: Child,
    /// The address its ready line names (`listen=`).
    pub addr: String,
    /// Its HTTP address (`http=`), empty if the ready line names none.
    pub http: String,
    /// Its Redis-protocol address (`resp=`), empty if it serves none.
    pub resp: String,
    logs: mpsc::Receiver<String>,
    panics: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Process {
    /// Spawns `command` (stdout discarded, stderr read) and waits up to 30 s for a log line
    /// containing `ready`, which names its addresses (`listen=…`, `http=…`).
    ///
    /// # Panics
    ///
    /// If it does not start or log `ready` in time (the process is killed then).
    pub fn launch(mut command: Command, ready: &str) -> Process {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("haze serve starts");
        let stderr = child.stderr.take().expect("piped");
        let (tx, logs) = mpsc::channel();
        let panics = Arc::new(Mutex::new(Vec::new()));
        let seen = panics.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("panicked") {
                    seen.lock().unwrap().push(line.clone());
                }
                // The test may have stopped listening; the panics are still collected.
                let _ = tx.send(line);
            }
        });
        let field = |line: &str, name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .map(|v| v.trim_matches('"').to_string())
        };
        // From here the guard kills the process, whatever panics below.
        let mut process = Process {
            child,
            addr: String::new(),
            http: String::new(),
            resp: String::new(),
            logs,
            panics,
            reader: Some(reader),
        };
        loop {
            match process.logs.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.contains(ready) => {
                    process.addr =
                        field(&line, "listen=").expect("the ready line names the address");
                    process.http = field(&line, "http=").unwrap_or_default();
                    process.resp = field(&line, "resp=")
                        .filter(|r| r != "off")
                        .unwrap_or_default();
                    return process;
                }
                Ok(_) => continue,
                Err(e) => panic!("no {ready:?} line: {e}"),
            }
        }
    }

    /// Waits (up to 30 s) for a log line containing `needle`, and returns it. It consumes the
    /// lines it reads: a line read by an earlier wait (or by `launch`) is not seen again.
    pub fn wait_for_log(&self, needle: &str) -> String {
        loop {
            match self.logs.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(e) => panic!("no log line with {needle:?}: {e}"),
            }
        }
    }

    /// Sends SIGKILL and waits for the process to die.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("the process is reaped");
    }

    /// Sends SIGTERM and returns the exit status and whether a clean stop was logged.
    pub fn terminate(mut self) -> (ExitStatus, bool) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        let mut clean = false;
        while let Ok(line) = self.logs.recv_timeout(Duration::from_secs(5)) {
            clean |= line.contains("stopped cleanly");
        }
        (exit, clean)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Every line the process wrote, read: its panics are all known.
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let panics = self.panics.lock().unwrap();
        if !std::thread::panicking() {
            assert!(panics.is_empty(), "the process panicked: {panics:?}");
        }
    }
}

/// What a `haze` command printed and how it exited.
#[derive(Debug)]
pub struct Output {
    /// Whether it exited successfully.
    pub ok: bool,
    /// Its stdout, lossily decoded.
    pub stdout: String,
    /// Its stderr, lossily decoded.
    pub stderr: String,
}

/// Sleeps `ms` milliseconds (on a channel nobody sends to: tests may not call `sleep`).
pub fn pause(ms: u64) {
    let (_sender, never) = mpsc::channel::<()>();
    let _ = never.recv_timeout(Duration::from_millis(ms));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for `haze serve`: logs `lines` to stderr, then waits to be killed (`exec`, so
    /// the kill reaches the process that holds the pipe).
    fn fake(lines: &[&str]) -> Command {
        let script = lines
            .iter()
            .map(|l| format!("echo '{l}' >&2; "))
            .collect::<String>();
        let mut command = Command::new("sh");
        command.args(["-c", &format!("{script}exec sleep 60")]);
        command
    }

    #[test]
    fn the_ready_line_names_the_addresses() {
        let process = Process::launch(
            fake(&[
                "starting",
                "INFO haze node ready listen=127.0.0.1:4001 http=\"127.0.0.1:4002\"",
                "later",
            ]),
            NODE_READY,
        );
        assert_eq!(process.addr, "127.0.0.1:4001");
        assert_eq!(process.http, "127.0.0.1:4002");
        assert_eq!(process.wait_for_log("late"), "later");
    }

    #[test]
    fn a_process_that_logged_a_panic_fails_the_test_when_dropped() {
        let process = Process::launch(
            fake(&[
                "haze controller ready listen=127.0.0.1:4003",
                "thread 'tokio-runtime-worker' panicked at src/x.rs:1:1:",
            ]),
            CONTROLLER_READY,
        );
        process.wait_for_log("panicked");
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(process)));
        let message = dropped.expect_err("the drop fails the test");
        let message = message
            .downcast_ref::<String>()
            .expect("a formatted message");
        assert!(message.contains("the process panicked"), "{message}");
    }
}
