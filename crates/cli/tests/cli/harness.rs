//! Starting `haze serve` as a process and running `haze` commands against it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The `haze` binary cargo built for these tests.
pub fn haze() -> Command {
    Command::new(env!("CARGO_BIN_EXE_haze"))
}

/// `haze serve` on free loopback ports with its data in `data`.
pub fn serve_command(data: &Path) -> Command {
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
        .arg(data);
    command
}

/// A running `haze serve`; killed when dropped.
pub struct Server {
    child: Child,
    pub addr: String,
    pub http: String,
    logs: mpsc::Receiver<String>,
    /// Log lines that report a panic (the process's or one of its tasks'): a test whose
    /// processes panicked fails when they stop, even if everything else it checked held.
    panics: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Starts a node on free loopback ports with its data in `data`, and waits until it is ready.
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        let mut command = serve_command(data);
        command.args(extra);
        Server::launch(command, "haze node ready")
    }

    /// Starts a node listening on `addr` (to bring a stopped node back at its address).
    pub fn start_at(data: &Path, addr: &str, extra: &[&str]) -> Server {
        let mut command = haze();
        command
            .args(["serve", "--listen", addr, "--http", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra);
        Server::launch(command, "haze node ready")
    }

    /// Starts `haze controller` on a free loopback port with its state in `data`.
    pub fn start_controller(data: &Path) -> Server {
        Server::start_controller_at(data, "127.0.0.1:0")
    }

    /// Starts `haze controller` listening on `addr`.
    pub fn start_controller_at(data: &Path, addr: &str) -> Server {
        Server::start_controller_with(data, addr, &[])
    }

    /// Starts `haze controller` listening on `addr`, with `extra` flags.
    pub fn start_controller_with(data: &Path, addr: &str, extra: &[&str]) -> Server {
        let mut command = haze();
        command
            .args(["controller", "--listen", addr, "--data"])
            .arg(data)
            .args(extra);
        Server::launch(command, "haze controller ready")
    }

    /// Waits (up to 30 s) for a log line containing `needle`, and returns it.
    pub fn wait_for_log(&self, needle: &str) -> String {
        loop {
            match self.logs.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(e) => panic!("no log line with {needle:?}: {e}"),
            }
        }
    }

    fn launch(mut command: Command, ready: &str) -> Server {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("haze serve starts");
        let stderr = child.stderr.take().expect("piped");
        let (tx, logs) = mpsc::channel();
        let panics = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
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
        let mut server = Server {
            child,
            addr: String::new(),
            http: String::new(),
            logs,
            panics,
            reader: Some(reader),
        };
        loop {
            match server.logs.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.contains(ready) => {
                    server.addr =
                        field(&line, "listen=").expect("the ready line names the address");
                    server.http = field(&line, "http=").unwrap_or_default();
                    return server;
                }
                Ok(_) => continue,
                Err(e) => panic!("no {ready:?} line: {e}"),
            }
        }
    }

    /// Sends SIGKILL and waits for the process to die.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("the process is reaped");
    }

    /// Sends SIGTERM and returns the exit status and whether a clean stop was logged.
    pub fn terminate(mut self) -> (std::process::ExitStatus, bool) {
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

impl Drop for Server {
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
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `haze ARGS --addr ADDR`.
pub fn run(server: &Server, args: &[&str]) -> Output {
    let out = haze()
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

/// Runs a command that must succeed and returns its stdout.
pub fn ok(server: &Server, args: &[&str]) -> String {
    let out = run(server, args);
    assert!(out.ok, "haze {args:?} failed: {}", out.stderr);
    out.stdout
}

/// Runs `haze cluster ARGS --controller ADDR`, which must succeed, and returns its stdout.
pub fn cluster_ok(controller: &str, args: &[&str]) -> String {
    let out = haze()
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
pub fn cluster_status(controller: &str) -> serde_json::Value {
    serde_json::from_str(&cluster_ok(controller, &["status", "--json"])).expect("JSON status")
}

/// Sleeps `ms` milliseconds (on a channel nobody sends to: tests may not call `sleep`).
pub fn pause(ms: u64) {
    let (_sender, never) = mpsc::channel::<()>();
    let _ = never.recv_timeout(Duration::from_millis(ms));
}
