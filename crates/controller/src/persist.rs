//! The controller's state, kept in one file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::{ClusterId, ControllerState, Error, Result, StateError};

/// The controller: its state, and the file that keeps it. Every change is saved before the
/// method that made it returns.
#[derive(Debug)]
pub struct Controller {
    path: PathBuf,
    state: ControllerState,
    /// How many times the state changed since the controller opened.
    changes: u64,
    /// Held (locked) for the controller's life: two controllers on one folder would overwrite
    /// each other's acknowledged changes.
    _lock: std::fs::File,
}

/// The version of `controller.json`'s layout; a file with another is refused, never guessed at.
const FORMAT: u32 = 1;

/// The file's layout: the format version, then the state.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile<S> {
    format: u32,
    state: S,
}

pub(crate) fn state_error(path: &Path, source: impl Into<StateError>) -> Error {
    Error::State {
        path: path.display().to_string(),
        source: source.into(),
    }
}

/// Reads a state file: the version first (so a newer layout gets a clear refusal, not a parse
/// error about some field), then the state, then its consistency.
fn parse(bytes: &[u8]) -> std::result::Result<ControllerState, StateError> {
    #[derive(serde::Deserialize)]
    struct Version {
        format: u32,
    }
    let version: Version = serde_json::from_slice(bytes)?;
    if version.format != FORMAT {
        return Err(StateError::Format {
            found: version.format,
            expected: FORMAT,
        });
    }
    let file: StateFile<ControllerState> = serde_json::from_slice(bytes)?;
    file.state.check()?;
    Ok(file.state)
}

impl Controller {
    /// Opens the controller kept in `dir` (`controller.json`), or creates a new cluster there
    /// with `new_cluster`'s identity and parameters.
    ///
    /// # Errors
    ///
    /// [`Error::State`] if the file cannot be read, written or parsed; [`Error::Ring`] for bad
    /// parameters of a new cluster.
    pub fn open(
        dir: &Path,
        new_cluster: ClusterId,
        partitions: u32,
        replicas: usize,
    ) -> Result<Controller> {
        let lock = open_dir(dir)?;
        let path = dir.join("controller.json");
        match std::fs::read(&path) {
            Ok(bytes) => {
                let state = parse(&bytes).map_err(|e| state_error(&path, e))?;
                Ok(Controller {
                    path,
                    state,
                    changes: 0,
                    _lock: lock,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let controller = Controller {
                    path,
                    state: ControllerState::new(new_cluster, partitions, replicas)?,
                    changes: 0,
                    _lock: lock,
                };
                controller.save().map_err(|e| match e {
                    Saved::No(e) | Saved::NotSynced(e) => e,
                })?;
                Ok(controller)
            }
            Err(e) => Err(state_error(&path, e)),
        }
    }

    /// Returns the state.
    pub fn state(&self) -> &ControllerState {
        &self.state
    }

    /// Returns the folder it keeps its state in.
    pub fn dir(&self) -> &Path {
        parent(&self.path)
    }

    /// Returns how many times the state changed since the controller opened.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Applies `change` to a copy of the state; keeps it (and saves it) only if it succeeds.
    ///
    /// # Errors
    ///
    /// What `change` returns, or [`Error::State`] if saving fails: then nothing changed, unless
    /// the new file was in place and only syncing its folder failed (the error says so).
    pub fn change<R>(
        &mut self,
        change: impl FnOnce(&mut ControllerState) -> Result<R>,
    ) -> Result<R> {
        let mut next = self.state.clone();
        let r = change(&mut next)?;
        if next == self.state {
            return Ok(r); // nothing to save (a node registering again, say)
        }
        crate::outcome::log_news(&self.state, &next);
        let previous = std::mem::replace(&mut self.state, next);
        match self.save() {
            Ok(()) => {
                self.changes += 1;
                Ok(r)
            }
            Err(Saved::No(e)) => {
                self.state = previous;
                Err(e)
            }
            // The file holds the change: memory must too, or a restart would differ from it.
            Err(Saved::NotSynced(e)) => {
                self.changes += 1;
                Err(e)
            }
        }
    }

    fn save(&self) -> Result<(), Saved> {
        let file = StateFile {
            format: FORMAT,
            state: &self.state,
        };
        let bytes =
            serde_json::to_vec_pretty(&file).map_err(|e| Saved::No(state_error(&self.path, e)))?;
        let tmp = self.path.with_extension("json.tmp");
        let replace = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        replace().map_err(|e| Saved::No(state_error(&self.path, e)))?;
        sync_dir(parent(&self.path)).map_err(|source| {
            Saved::NotSynced(state_error(&self.path, StateError::NotSynced { source }))
        })
    }
}

/// How saving failed.
enum Saved {
    /// The file was not replaced: it holds the previous state.
    No(Error),
    /// The file holds the new state, not yet durably.
    NotSynced(Error),
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Creates `dir` durably (syncing its parent when it is new), and locks it for this process.
fn open_dir(dir: &Path) -> Result<std::fs::File> {
    let created = !dir.exists();
    std::fs::create_dir_all(dir).map_err(|e| state_error(dir, e))?;
    if created {
        sync_dir(parent(dir)).map_err(|e| state_error(dir, e))?;
    }
    let lock_path = dir.join("LOCK");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| state_error(&lock_path, e))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked(dir.display().to_string())),
        Err(std::fs::TryLockError::Error(e)) => Err(state_error(&lock_path, e)),
    }
}
