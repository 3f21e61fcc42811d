//! "Hosts" for the real-network tests: network namespaces, each with its own address on a
//! bridge (in a hub namespace of its own), created by a test and removed when it ends; `haze`
//! commands and threads run on them; the certificates that name their addresses.
//!
//! Namespaces need root: [`Hosts::create`] says why it could not make them, and
//! [`Hosts::create_or_skip`] turns that into a skip, except in CI (`CI=true`), where the test
//! must run.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;

/// A test's hosts: namespaces named after the test's process and a tag, so two runs (or two
/// tests of one run) never meet. Every host is on its own hub's bridge, so the same addresses
/// serve every set of hosts. Dropping it removes them all (and with them their links, routes and
/// rules).
pub struct Hosts {
    prefix: String,
    count: usize,
}

/// Runs `ip ARGS` (in namespace `ns` if given); returns whether it succeeded and its stderr.
fn ip(ns: Option<&str>, args: &[&str]) -> (bool, String) {
    let mut command = Command::new("ip");
    if let Some(ns) = ns {
        command.args(["netns", "exec", ns, "ip"]);
    }
    match command.args(args).output() {
        Ok(out) => (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ),
        Err(e) => (false, e.to_string()),
    }
}

fn must(ns: Option<&str>, args: &[&str]) {
    let (ok, err) = ip(ns, args);
    assert!(ok, "ip {args:?} in {ns:?}: {err}");
}

impl Hosts {
    /// Host `i`'s address.
    pub fn addr(i: usize) -> String {
        format!("10.77.{}.{i}", std::process::id() % 200)
    }

    /// The name of host `i`'s namespace.
    pub fn name(&self, i: usize) -> String {
        format!("{}-{i}", self.prefix)
    }

    fn hub(&self) -> String {
        format!("{}-hub", self.prefix)
    }

    /// Creates `count` hosts (1 to `count`) on a bridge, named after `tag`, or says why it
    /// cannot.
    pub fn create(tag: &str, count: usize) -> Result<Hosts, String> {
        let mut hosts = Hosts {
            prefix: format!("haze{}{tag}", std::process::id()),
            count: 0,
        };
        let (ok, err) = ip(None, &["netns", "add", &hosts.hub()]);
        if !ok {
            return Err(err);
        }
        let hub = hosts.hub();
        must(Some(&hub), &["link", "add", "br0", "type", "bridge"]);
        must(Some(&hub), &["link", "set", "br0", "up"]);
        for i in 1..=count {
            let ns = hosts.name(i);
            must(None, &["netns", "add", &ns]);
            // From here the drop removes this host too, whatever fails below.
            hosts.count = i;
            let port = format!("p{i}");
            must(
                Some(&hub),
                &[
                    "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
                ],
            );
            must(Some(&hub), &["link", "set", &port, "master", "br0", "up"]);
            let cidr = format!("{}/24", Hosts::addr(i));
            must(Some(&ns), &["addr", "add", &cidr, "dev", "eth0"]);
            must(Some(&ns), &["link", "set", "eth0", "up"]);
            must(Some(&ns), &["link", "set", "lo", "up"]);
        }
        Ok(hosts)
    }

    /// [`Hosts::create`], or `None` after printing why the test is skipped; in CI
    /// (`CI=true`), a panic instead: CI must run the network tests.
    pub fn create_or_skip(tag: &str, count: usize) -> Option<Hosts> {
        match Hosts::create(tag, count) {
            Ok(hosts) => Some(hosts),
            Err(why) if std::env::var("CI").as_deref() != Ok("true") => {
                println!("skipped: network namespaces cannot be created here ({why})");
                None
            }
            Err(why) => panic!("CI must run the network test, but: {why}"),
        }
    }

    /// Runs `ip ARGS` on host `i`; panics if it fails.
    pub fn ip(&self, i: usize, args: &[&str]) {
        must(Some(&self.name(i)), args);
    }

    /// `haze ARGS` on host `i`.
    pub fn haze(&self, i: usize, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name(i), env!("CARGO_BIN_EXE_haze")])
            .args(args)
            .env(
                "HAZE_CONFIG_DIR",
                std::env::temp_dir().join("haze-netns-none"),
            );
        command
    }

    /// A step that moves the thread that runs it onto host `i` (setns(2) into its network
    /// namespace): every socket the thread opens afterwards, and every thread it spawns, is
    /// on that host. Only that thread moves, not the test's process.
    pub fn enter(&self, i: usize) -> impl FnOnce() -> std::io::Result<()> + Send + 'static {
        let path = Path::new("/run/netns").join(self.name(i));
        move || {
            let ns = File::open(&path)?;
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )?;
            Ok(())
        }
    }

    /// Runs `f` on a new thread on host `i` ([`Hosts::enter`]).
    pub fn spawn<T: Send + 'static>(
        &self,
        i: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let enter = self.enter(i);
        std::thread::spawn(move || {
            enter().expect("the thread enters the host's network namespace");
            f()
        })
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for i in 1..=self.count {
            let _ = ip(None, &["netns", "del", &self.name(i)]);
        }
        let _ = ip(None, &["netns", "del", &self.hub()]);
    }
}

/// `haze certs ARGS --dir DIR`, which must succeed.
pub fn certs(dir: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_haze"))
        .arg("certs")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "haze certs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `--tls-*` flags of certificate `name` in `certs`.
pub fn tls_flags(certs: &Path, name: &str) -> Vec<String> {
    let path = |f: String| certs.join(f).to_string_lossy().into_owned();
    vec![
        "--tls-cert".into(),
        path(format!("{name}.pem")),
        "--tls-key".into(),
        path(format!("{name}.key")),
        "--tls-ca".into(),
        path("ca.pem".into()),
    ]
}

pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Waits (up to 10 s) for the admin token the controller with its state in `dir` writes as it
/// starts serving.
pub fn admin_token(dir: &Path) -> String {
    let file = dir.join("admin.token");
    for _ in 0..200 {
        let token = std::fs::read_to_string(&file).unwrap_or_default();
        if !token.trim().is_empty() {
            return token.trim().to_string();
        }
        haze_testkit::process::pause(50);
    }
    panic!("no admin token in {}", file.display());
}
