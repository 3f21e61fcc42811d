//! A small filesystem of its own for a test that fills a disk: a tmpfs of a given size,
//! mounted on a temporary directory and unmounted when dropped (also when the test fails).
//!
//! Mounting needs root. Where it is refused, [`Tmpfs::mount`] says why and the test skips,
//! except in CI (`CI=true`), which runs the tests as root: there a refusal fails the test.

use std::path::Path;

/// A mounted tmpfs; unmounted when dropped.
#[derive(Debug)]
pub struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=`, e.g. `"8m"`), or prints why it cannot
    /// and returns `None`.
    ///
    /// # Panics
    ///
    /// If it cannot be mounted while `CI=true`.
    pub fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(Tmpfs(dir)),
            other => {
                let why = match other {
                    Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI runs as root and must mount a tmpfs: {why}"
                );
                eprintln!(
                    "SKIPPED: mounting a {size} tmpfs is not permitted here ({why}); run as root"
                );
                None
            }
        }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let path = self.0.path();
        let unmounted = std::process::Command::new("umount").arg(path).status();
        if !unmounted.is_ok_and(|s| s.success()) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(path)
                .status();
        }
    }
}
