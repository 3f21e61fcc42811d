//! The store's errors.
//!
//! An [`Error`] keeps what caused it as its [`source`](std::error::Error::source): the operating
//! system's error behind an I/O failure, redb's behind an engine failure, the first failure
//! behind a stopped store. Its own message says what the store was doing and does not repeat
//! the source's text, so a caller printing the whole chain prints each cause once (and one
//! printing only the message gets what failed, not why).

use std::borrow::Cow;
use std::sync::Arc;

use haze_crdt::ValueKind;

/// The store itself failed: it can no longer be trusted to make writes durable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The disk failed (an fsync, a write, a read), in the log, the directory or redb's file.
    #[error(transparent)]
    Io(IoError),
    /// The storage engine (redb) failed otherwise.
    #[error(transparent)]
    Engine(EngineError),
    /// Stored data is damaged in a way no key names: a file that is not a Haze log, the bucket
    /// digests' blob, a log record that passed its checksum but does not parse.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The stored value of `key` failed its checksum (or does not decode): it is never served
    /// nor sent. It is quarantined: reads of the key fail with this error until a merge of a
    /// healthy copy (from another replica, or a client) replaces it, which treats it as absent.
    #[error(
        "the stored value of key {} is corrupt: {detail}",
        crate::entry::printable(key)
    )]
    CorruptValue {
        /// The key (user bytes).
        key: Vec<u8>,
        /// What failed, and where the value was found.
        detail: String,
    },
    /// The write-ahead log is damaged where no crash could have damaged it (anywhere but the
    /// incomplete last record of the last segment): the store does not open, so that no
    /// acknowledged write after the damage is lost in silence. `haze repair` salvages every
    /// intact record and sets the damaged files aside.
    #[error(
        "the write-ahead log is damaged: {} at byte {offset}: {reason}; {records_after} intact \
         records follow the damage (`haze repair --data DIR` salvages them and sets the \
         damaged file aside)",
        file.display()
    )]
    LogDamaged {
        /// The damaged segment.
        file: std::path::PathBuf,
        /// Where in it the damage starts.
        offset: u64,
        /// How many intact records follow the damage, in that segment and the later ones:
        /// what a silent truncation would lose.
        records_after: u64,
        /// What is wrong there.
        reason: String,
    },
    /// The disk (or a quota) is full. Nothing of the commit that met it was applied or
    /// acknowledged, and the log was rewound to its last complete record: the store takes writes
    /// again once there is room. Only a write can fail so; an fsync that fails is an
    /// [`Error::Io`], which stops the store for good.
    #[error("the disk is full: the commit was not applied")]
    NoSpace(#[source] IoError),
    /// An earlier failure (the source) stopped the store: it acknowledges nothing more until
    /// restarted.
    #[error("the store stopped after an earlier failure")]
    Stopped(#[source] Box<Error>),
    /// The data directory was written by an incompatible version.
    #[error("unsupported storage format {found} (this build reads {expected})")]
    UnsupportedFormat {
        /// The version found on disk.
        found: u64,
        /// The version this build reads.
        expected: u64,
    },
}

impl Error {
    /// The error a stopped store answers with after `failure`: [`Error::Stopped`] with the
    /// first failure as its source (a failure that is itself a stop is not wrapped again).
    pub(crate) fn stopped(failure: &Error) -> Error {
        match failure {
            Error::Stopped(_) => failure.clone(),
            other => Error::Stopped(Box::new(other.clone())),
        }
    }

    /// Returns whether the error leaves the store able to take writes again (the disk was full:
    /// [`Error::NoSpace`]); every other failure of a commit stops it.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::NoSpace(_))
    }

    /// Returns whether the error (or the failure that stopped the store) is the disk or a
    /// quota being full: [`Error::NoSpace`], or an I/O error with ENOSPC/EDQUOT (a flush to
    /// redb, which then stops the store; or opening a data directory, whose log replay needs
    /// about as much room again in redb).
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::NoSpace(_) => true,
            Error::Stopped(failure) => failure.is_disk_full(),
            Error::Io(e) => e.source.as_deref().is_some_and(is_no_space),
            _ => false,
        }
    }

    /// The error as [`Error::NoSpace`] if it says the disk is full (see
    /// [`is_disk_full`](Self::is_disk_full)), so that it is retryable; else itself.
    pub(crate) fn into_no_space(self) -> Error {
        match self {
            Error::Io(e) if e.source.as_deref().is_some_and(is_no_space) => Error::NoSpace(e),
            other => other,
        }
    }

    /// Returns the key whose stored value is corrupt, if that is the error.
    pub fn corrupt_key(&self) -> Option<&[u8]> {
        match self {
            Error::CorruptValue { key, .. } => Some(key),
            _ => None,
        }
    }

    /// An error of redb, done while `context`: its I/O failures are [`Error::Io`], the rest
    /// [`Error::Engine`].
    pub(crate) fn engine(context: &'static str, source: impl Into<redb::Error>) -> Error {
        match source.into() {
            redb::Error::Io(io) => Error::Io(IoError::new(context, io)),
            other => Error::Engine(EngineError {
                context,
                source: Arc::new(other),
            }),
        }
    }
}

/// Maps an I/O error to [`Error::Io`], done while `context`.
pub(crate) fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io(IoError::new(context, source))
}

/// Maps an I/O error to [`Error::Io`], done while `what` the file or directory at `path`.
pub(crate) fn io_at<'a>(
    what: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io(IoError::new(format!("{what} {}", path.display()), source))
}

/// Whether an I/O error says the disk (or a quota) is full.
pub(crate) fn is_no_space(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    // ENOSPC is 28 and EDQUOT 122 on Linux, should the kind be another.
    matches!(e.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded)
        || matches!(e.raw_os_error(), Some(28 | 122))
}

/// Maps the error of a *write* to the file at `path`, done while `what`: [`Error::NoSpace`] if
/// the disk is full, else [`Error::Io`]. (An fsync's error is always [`Error::Io`]: see
/// [`Error::NoSpace`].)
pub(crate) fn write_at<'a>(
    what: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| {
        let full = is_no_space(&source);
        let e = IoError::new(format!("{what} {}", path.display()), source);
        if full {
            Error::NoSpace(e)
        } else {
            Error::Io(e)
        }
    }
}

/// Maps an error of redb to an [`Error`], done while `context` (see [`Error::engine`]).
pub(crate) fn engine<E: Into<redb::Error>>(context: &'static str) -> impl FnOnce(E) -> Error {
    move |source| Error::engine(context, source)
}

/// An I/O failure: what the store was doing, and the operating system's error (the source).
///
/// Equal when they say the same: the same context, and sources of the same kind and message.
#[derive(Debug, Clone)]
pub struct IoError {
    context: Cow<'static, str>,
    source: Option<Arc<std::io::Error>>,
}

impl IoError {
    /// Returns the failure of `source`, done while `context` (say what, and where: "syncing
    /// the log segment /data/wal-0000000000000001.log").
    pub fn new(context: impl Into<Cow<'static, str>>, source: std::io::Error) -> Self {
        IoError {
            context: context.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// Returns what the store was doing.
    pub fn context(&self) -> &str {
        &self.context
    }

    /// Returns the operating system's error, if the failure came with one.
    pub fn io_error(&self) -> Option<&std::io::Error> {
        self.source.as_deref()
    }
}

/// A failure described by its message alone, without an operating system's error (a failure a
/// test injects, or one the store finds itself, such as a record too large for the log).
impl From<&str> for IoError {
    fn from(context: &str) -> Self {
        IoError {
            context: Cow::Owned(context.to_owned()),
            source: None,
        }
    }
}

/// As `From<&str>`.
impl From<String> for IoError {
    fn from(context: String) -> Self {
        IoError {
            context: Cow::Owned(context),
            source: None,
        }
    }
}

impl std::fmt::Display for IoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "storage I/O failed: {}", self.context)
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

impl PartialEq for IoError {
    fn eq(&self, other: &Self) -> bool {
        let said = |e: &IoError| e.source.as_deref().map(|s| (s.kind(), s.to_string()));
        self.context == other.context && said(self) == said(other)
    }
}

impl Eq for IoError {}

/// A failure of the storage engine (redb) other than an I/O one: what the store was doing, and
/// redb's error (the source).
///
/// Equal when they say the same: the same context, and sources of the same message.
#[derive(Debug, Clone)]
pub struct EngineError {
    context: &'static str,
    source: Arc<redb::Error>,
}

impl EngineError {
    /// Returns what the store was doing.
    pub fn context(&self) -> &str {
        self.context
    }
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the storage engine failed: {}", self.context)
    }
}

impl std::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

impl PartialEq for EngineError {
    fn eq(&self, other: &Self) -> bool {
        self.context == other.context && self.source.to_string() == other.source.to_string()
    }
}

impl Eq for EngineError {}

/// One write was refused; nothing of it was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The key is longer than the configured limit.
    #[error("key of {size} bytes exceeds the limit of {limit} bytes")]
    KeyTooLarge {
        /// The key's length.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The merged value would be larger than the configured limit.
    #[error("value of {size} bytes exceeds the limit of {limit} bytes")]
    ValueTooLarge {
        /// The encoded size the value would have.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The stored value has another type than the one given.
    #[error("type mismatch: the stored value is a {stored}, the given value is a {given}")]
    TypeMismatch {
        /// The stored type.
        stored: ValueKind,
        /// The given type.
        given: ValueKind,
    },
    /// The operation was refused by the value (a counter overflow, a nesting limit).
    #[error("{0}")]
    Refused(haze_crdt::Error),
    /// The store failed; the write may or may not be durable.
    #[error(transparent)]
    Store(#[from] Error),
    /// The write could not be queued: the queue is full (the node is overloaded), or the writer
    /// has stopped. Nothing was written.
    #[error("the write was not queued: {0}")]
    NotQueued(crate::SubmitError),
}

impl From<haze_crdt::Error> for WriteError {
    fn from(e: haze_crdt::Error) -> Self {
        match e {
            haze_crdt::Error::TypeMismatch { stored, given } => {
                WriteError::TypeMismatch { stored, given }
            }
            other => WriteError::Refused(other),
        }
    }
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The messages down the chain of `e`, itself first.
    fn chain(e: &Error) -> Vec<String> {
        std::iter::successors(Some(e as &dyn std::error::Error), |&e| e.source())
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn each_cause_is_printed_once_down_the_chain() {
        let failed = io("syncing the log")(std::io::Error::other("the disk is on fire"));
        let stopped = Error::stopped(&failed);
        assert_eq!(
            chain(&stopped),
            [
                "the store stopped after an earlier failure",
                "storage I/O failed: syncing the log",
                "the disk is on fire",
            ]
        );
        // A stop is not wrapped again.
        assert_eq!(Error::stopped(&stopped), stopped);
        let engine = Error::engine("reading a value", redb::Error::Corrupted("a page".into()));
        assert_eq!(
            chain(&engine),
            [
                "the storage engine failed: reading a value",
                "DB corrupted: a page"
            ]
        );
        // redb's I/O failures are I/O failures.
        let disk = Error::engine("reading a value", std::io::Error::other("gone"));
        assert!(
            matches!(&disk, Error::Io(e) if e.io_error().is_some()),
            "{disk:?}"
        );
    }

    #[test]
    fn errors_are_equal_when_they_say_the_same() {
        let full = || std::io::Error::new(std::io::ErrorKind::StorageFull, "full");
        assert_eq!(io("appending")(full()), io("appending")(full()));
        assert_ne!(io("appending")(full()), io("syncing")(full()));
        assert_ne!(
            io("appending")(full()),
            io("appending")(std::io::Error::other("full"))
        );
        assert_ne!(io("appending")(full()), Error::Io("appending".into()));
        assert_eq!(Error::Io("injected".into()), Error::Io("injected".into()));
        assert_eq!(
            Error::Io("injected".into()).to_string(),
            "storage I/O failed: injected"
        );
    }
}
