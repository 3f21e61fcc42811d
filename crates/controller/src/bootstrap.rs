//! The first admin token of a controller that requires tokens: created at start when no admin
//! token works, and written to `DIR/admin.token` for whoever runs the controller.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use ring::rand::SecureRandom;

use crate::persist::{state_error, sync_dir};
use crate::tokens::{self, NewToken, Right, TokenId, TokenSecret};
use crate::{Controller, Result};

/// The file in the controller's folder that holds the admin token it created at its first
/// start with tokens required: readable by its owner only, created once, never overwritten.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// What [`Controller::bootstrap_admin`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Bootstrap {
    /// An admin token works already: nothing.
    NotNeeded,
    /// No admin token worked: one was created, and its text written to this file.
    Created {
        /// `DIR/admin.token`.
        path: PathBuf,
        /// The new token's id.
        id: TokenId,
    },
    /// No admin token works (all were revoked or expired, or a start was cut between writing
    /// the file and saving the token), and the file exists: it is never overwritten. Remove
    /// it and start again for a new admin token.
    FileExists {
        /// `DIR/admin.token`.
        path: PathBuf,
    },
}

impl Controller {
    /// Makes sure an admin token works at `now_ms` (milliseconds since the epoch): if none
    /// does, creates one (all keys, no expiry) with `random`, writes its text to
    /// `DIR/admin.token` (created exclusively, mode 0600, synced), and only then saves its
    /// hash, so a crash never leaves a saved admin token nobody has.
    ///
    /// # Errors
    ///
    /// [`Error::Token`](crate::Error::Token) if `random` fails; [`Error::State`](crate::Error::State)
    /// if the file or the state cannot be written (a file written for a token that could not
    /// be saved is removed).
    pub fn bootstrap_admin(&mut self, random: &dyn SecureRandom, now_ms: u64) -> Result<Bootstrap> {
        if self.state().tokens().has_live_admin(now_ms) {
            return Ok(Bootstrap::NotNeeded);
        }
        let path = self.dir().join(ADMIN_TOKEN_FILE);
        let (secret, hash) = tokens::generate(random)?;
        match write_new(&path, &secret) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Ok(Bootstrap::FileExists { path });
            }
            Err(e) => return Err(state_error(&path, e)),
        }
        sync_dir(self.dir()).map_err(|e| state_error(self.dir(), e))?;
        let new = NewToken {
            prefixes: Vec::new(),
            rights: BTreeSet::from([Right::Admin]),
            expires_at_ms: None,
            description: format!("created at the controller's start ({ADMIN_TOKEN_FILE})"),
        };
        match self.change(|s| s.create_token(new, hash, now_ms)) {
            Ok(token) => Ok(Bootstrap::Created { path, id: token.id }),
            Err(e) => {
                // Unsaved: the file names nothing, and would block the next start's attempt.
                if !self.state().tokens().contains(&hash) {
                    let _ = std::fs::remove_file(&path);
                }
                Err(e)
            }
        }
    }
}

/// Creates `path` (failing if it exists) readable and writable by its owner only, and writes
/// the token to it, durably.
fn write_new(path: &Path, secret: &TokenSecret) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    let written = file
        .write_all(secret.expose().as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all());
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written
}
