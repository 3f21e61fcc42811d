//! How a client command reaches a node or the controller: over TLS against a CA, with a token,
//! from flags, the environment or a profile (docs/security.md).
//!
//! A profile is a small JSON file, `PROFILES/NAME.json`, in the spirit of a kubeconfig: the CA a
//! cluster's servers are verified against, the token to present, and the addresses it is for.
//! `haze dev` writes one named `dev`. A command uses the profile named by `--profile` or
//! `HAZE_PROFILE`, or else the first (by name) whose addresses include the one it connects to;
//! a flag or environment variable overrides what the profile says.
//!
//! `PROFILES` is `$HAZE_CONFIG_DIR/profiles`, or `$XDG_CONFIG_HOME/haze/profiles`, or
//! `~/.config/haze/profiles`.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use haze_tls::rustls::ClientConfig;
use serde::{Deserialize, Serialize};

/// The largest profile file read: a CA path, a token and a few addresses fit many times over.
const MAX_PROFILE_BYTES: u64 = 64 * 1024;

/// `--tls-ca`, `--tls`, `--token` and `--profile`, on every command that connects.
#[derive(Args, Clone, Default)]
pub(crate) struct Credentials {
    /// Connect over TLS and verify the server against this CA (PEM) (default: $HAZE_TLS_CA, or
    /// the profile's).
    #[arg(long = "tls-ca", global = true, value_name = "PEM")]
    tls_ca: Option<PathBuf>,
    /// Connect over TLS, verifying the server against the system's trusted roots (when no CA
    /// is given).
    #[arg(long, global = true)]
    tls: bool,
    /// The bearer token to present (default: $HAZE_TOKEN, which is better: a command line is
    /// visible to the machine's other users; or the profile's).
    #[arg(long, global = true, value_name = "TOKEN")]
    token: Option<String>,
    /// The profile to take the CA and token from (default: $HAZE_PROFILE, or a profile whose
    /// addresses include the one connected to).
    #[arg(long, global = true, value_name = "NAME")]
    profile: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("tls_ca", &self.tls_ca)
            .field("tls", &self.tls)
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .field("profile", &self.profile)
            .finish()
    }
}

/// What a connection uses: TLS (or not) and a token (or not).
#[derive(Default)]
pub(crate) struct Resolved {
    /// TLS, with the server verified against the CA or the system's roots.
    pub(crate) tls: Option<Arc<ClientConfig>>,
    /// The bearer token.
    pub(crate) token: Option<String>,
}

/// A profile's file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Profile {
    /// The CA servers are verified against (connect over TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ca: Option<PathBuf>,
    /// Connect over TLS with the system's roots when there is no CA.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) tls: bool,
    /// The token to present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) token: Option<String>,
    /// The addresses (`HOST:PORT`: nodes, HTTP APIs, the controller) this profile is for.
    #[serde(default)]
    pub(crate) addresses: Vec<String>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Where profiles are kept.
pub(crate) fn profiles_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = env("HAZE_CONFIG_DIR") {
        return Ok(PathBuf::from(dir).join("profiles"));
    }
    if let Some(dir) = env("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(dir).join("haze").join("profiles"));
    }
    match env("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".config/haze/profiles")),
        None => bail!("no HAZE_CONFIG_DIR, XDG_CONFIG_HOME or HOME to keep profiles in"),
    }
}

/// A profile's name: letters, digits, `-`, `_` and `.`, not starting with a dot.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        bail!("{name:?} is not a profile name: use letters, digits, '-', '_' and '.'");
    }
    Ok(())
}

/// Reads the profile at `path` (one of the profiles, or one kept beside a replica file:
/// [`write_at`]).
pub(crate) fn read(path: &Path) -> anyhow::Result<Profile> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_PROFILE_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {}", path.display()))?;
    if text.len() as u64 > MAX_PROFILE_BYTES {
        bail!(
            "{} is larger than a profile can be ({MAX_PROFILE_BYTES} bytes)",
            path.display()
        );
    }
    serde_json::from_str(&text).with_context(|| format!("parsing the profile {}", path.display()))
}

/// The profile `name`.
pub(crate) fn load(name: &str) -> anyhow::Result<Profile> {
    check_name(name)?;
    let path = profiles_dir()?.join(format!("{name}.json"));
    if !path.exists() {
        bail!(
            "no profile named {name:?} ({} does not exist)",
            path.display()
        );
    }
    read(&path)
}

/// The first profile (by name) whose addresses include `addr`; unreadable ones are skipped
/// with a warning on standard error.
fn find_for(addr: &str) -> Option<Profile> {
    let dir = profiles_dir().ok()?;
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    for path in paths {
        match read(&path) {
            Ok(profile) if profile.addresses.iter().any(|a| a == addr) => return Some(profile),
            Ok(_) => {}
            Err(e) => eprintln!("warning: skipping a profile: {e:#}"),
        }
    }
    None
}

/// Writes the profile `name` (the folder created mode 0700, the file 0600: it may hold a
/// token), replacing one of that name; returns its path.
pub(crate) fn save(name: &str, profile: &Profile) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    let dir = profiles_dir()?;
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{name}.json"));
    write_at(&path, profile)?;
    Ok(path)
}

/// Writes `profile` to `path` (mode 0600: it may hold a token), atomically: a temporary file
/// beside it, synced, then renamed over it.
pub(crate) fn write_at(path: &Path, profile: &Profile) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let temp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&temp)
        .with_context(|| format!("writing {}", temp.display()))?;
    file.write_all(serde_json::to_string_pretty(profile)?.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| format!("writing {}", path.display()))
}

impl Credentials {
    /// What a connection to `addr` uses: each of the CA, TLS and the token from its flag, or
    /// else its environment variable, or else the profile.
    pub(crate) fn resolve(&self, addr: &str) -> anyhow::Result<Resolved> {
        self.resolve_with(addr, None).map(|(resolved, _)| resolved)
    }

    /// As [`resolve`](Self::resolve), with `kept` (the credentials kept with a replica) in
    /// place of a profile found by address when no profile is named and `kept` is for `addr`;
    /// also returns what was used, as a profile for `addr` (the CA as an absolute path).
    pub(crate) fn resolve_with(
        &self,
        addr: &str,
        kept: Option<Profile>,
    ) -> anyhow::Result<(Resolved, Profile)> {
        let named = self.profile.clone().or_else(|| env("HAZE_PROFILE"));
        let profile = match named {
            Some(name) => load(&name)?,
            None => match kept.filter(|k| k.addresses.iter().any(|a| a == addr)) {
                Some(kept) => kept,
                None => find_for(addr).unwrap_or_default(),
            },
        };
        let ca = self
            .tls_ca
            .clone()
            .or_else(|| env("HAZE_TLS_CA").map(PathBuf::from))
            .or(profile.ca)
            .map(|ca| std::path::absolute(&ca).unwrap_or(ca));
        let tls = if ca.is_some() || self.tls || profile.tls {
            let config =
                haze_tls::client_config(ca.as_deref(), None).with_context(|| match &ca {
                    Some(ca) => format!("loading the CA {}", ca.display()),
                    None => "loading the system's trusted roots".to_string(),
                })?;
            Some(config)
        } else {
            None
        };
        let token = self
            .token
            .clone()
            .or_else(|| env("HAZE_TOKEN"))
            .or(profile.token)
            .filter(|t| !t.trim().is_empty());
        let used = Profile {
            tls: tls.is_some() && ca.is_none(),
            ca,
            token: token.clone(),
            addresses: vec![addr.to_string()],
        };
        Ok((Resolved { tls, token }, used))
    }

    /// A client of the controller at `addr`, with TLS and the token as resolved.
    pub(crate) fn controller(
        &self,
        addr: &str,
    ) -> anyhow::Result<haze_controller::ControllerClient> {
        let resolved = self.resolve(addr)?;
        let mut client = haze_controller::ControllerClient::new(addr);
        if let Some(tls) = resolved.tls {
            client = client.with_tls(tls);
        }
        if let Some(token) = resolved.token {
            client = client.with_token(token);
        }
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_names_cannot_leave_the_folder() {
        check_name("dev").unwrap();
        check_name("prod-eu.1").unwrap();
        for bad in ["", "../x", "a/b", ".hidden", "x y"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_profile_reads_back_and_unknown_fields_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        let profile = Profile {
            ca: Some("/certs/ca.pem".into()),
            tls: false,
            token: Some("t".into()),
            addresses: vec!["127.0.0.1:7701".into()],
        };
        std::fs::write(&path, serde_json::to_string(&profile).unwrap()).unwrap();
        assert_eq!(read(&path).unwrap(), profile);
        std::fs::write(&path, r#"{"tokn": "x"}"#).unwrap();
        assert!(read(&path).is_err());
        std::fs::write(&path, vec![b' '; 70 * 1024]).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("larger"), "{err}");
    }
}
