//! `haze scrub`: verifies every value of a stopped node's data directory against its checksum.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use haze_storage::{DiskStore, StoreConfig, scrub_pass};

#[derive(Debug, Args)]
pub(crate) struct ScrubArgs {
    /// The node's data directory (the node must be stopped).
    #[arg(long, default_value = "./haze-data")]
    data: PathBuf,
    /// How fast to read, in MiB per second (default: as fast as the disk reads).
    #[arg(long)]
    mib_per_sec: Option<u64>,
}

/// Walks the whole store in ring order, verifying every value; prints each corrupt one (which
/// it quarantines, as a read would) and fails if there is any.
pub(crate) fn run(args: ScrubArgs) -> anyhow::Result<()> {
    crate::command::serve::init_logging();
    let store = DiskStore::open(&args.data, StoreConfig::default())
        .with_context(|| format!("opening the data directory {}", args.data.display()))?;
    let rate = args.mib_per_sec.map(|mib| mib.max(1) * 1024 * 1024);
    #[allow(
        clippy::disallowed_methods,
        reason = "an offline command paces its reads: no runtime to block"
    )]
    let pass = scrub_pass(&store, rate, std::thread::sleep)
        .with_context(|| format!("scrubbing {}", args.data.display()))?;
    for corrupt in &pass.corrupt {
        let when = if corrupt.earlier {
            "quarantined earlier, not yet repaired"
        } else {
            "found now, quarantined"
        };
        println!(
            "CORRUPT {:?}: {} ({when})",
            String::from_utf8_lossy(&corrupt.key),
            corrupt.detail
        );
    }
    println!(
        "scrubbed {}: {} keys, {} bytes, {} corrupt",
        args.data.display(),
        pass.keys,
        pass.bytes,
        pass.corrupt.len()
    );
    if !pass.corrupt.is_empty() {
        bail!(
            "{} corrupt values: reads of them fail with `corrupt` until a healthy copy is merged \
             into each (anti-entropy from a replica, `haze merge`, a device's sync)",
            pass.corrupt.len()
        );
    }
    Ok(())
}
