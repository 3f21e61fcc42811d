//! The controller's state, kept in one file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::{ClusterId, ControllerState, Error, Result};

/// The controller: its state, and the file that keeps it. Every change is saved before the
/// method that made it returns.
#[derive(Debug)]
pub struct Controller {
    path: PathBuf,
    state: ControllerState,
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

fn state_error(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::State {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Reads a state file: the version first (so a newer layout gets a clear refusal, not a parse
/// error about some field), then the state, then its consistency.
fn parse(bytes: &[u8]) -> std::result::Result<ControllerState, String> {
    #[derive(serde::Deserialize)]
    struct Version {
        format: u32,
    }
    let version: Version = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if version.format != FORMAT {
        return Err(format!(
            "format {} is not {FORMAT}, the one this version of Haze reads",
            version.format
        ));
    }
    let file: StateFile<ControllerState> =
        serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
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
        std::fs::create_dir_all(dir).map_err(|e| state_error(dir, e))?;
        let path = dir.join("controller.json");
        match std::fs::read(&path) {
            Ok(bytes) => {
                let state = parse(&bytes).map_err(|e| state_error(&path, e))?;
                Ok(Controller { path, state })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let controller = Controller {
                    path,
                    state: ControllerState::new(new_cluster, partitions, replicas)?,
                };
                controller.save()?;
                Ok(controller)
            }
            Err(e) => Err(state_error(&path, e)),
        }
    }

    /// Returns the state.
    pub fn state(&self) -> &ControllerState {
        &self.state
    }

    /// Applies `change` to a copy of the state; keeps it (and saves it) only if it succeeds.
    ///
    /// # Errors
    ///
    /// What `change` returns, or [`Error::State`] if saving fails (then nothing changed).
    pub fn change<R>(
        &mut self,
        change: impl FnOnce(&mut ControllerState) -> Result<R>,
    ) -> Result<R> {
        let mut next = self.state.clone();
        let r = change(&mut next)?;
        let previous = std::mem::replace(&mut self.state, next);
        if let Err(e) = self.save() {
            self.state = previous;
            return Err(e);
        }
        Ok(r)
    }

    fn save(&self) -> Result<()> {
        let file = StateFile {
            format: FORMAT,
            state: &self.state,
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| state_error(&self.path, e))?;
        let tmp = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            let dir = self
                .path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| state_error(&self.path, e))
    }
}
