//! `haze repair`: salvages a data directory whose write-ahead log is damaged.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use haze_crdt::PhysicalClock;
use haze_storage::{DiskStore, StoreConfig, repair_log};

use crate::clock::SystemClock;

#[derive(Debug, Args)]
pub(crate) struct RepairArgs {
    /// The node's data directory (the node must be stopped).
    #[arg(long, default_value = "./haze-data")]
    data: PathBuf,
}

/// Salvages every intact record of the log, sets the damaged segments aside in
/// `DATA/damaged-<UTC time>/` with a report of what was recovered and what was lost, and checks
/// that the directory then opens.
pub(crate) fn run(args: RepairArgs) -> anyhow::Result<()> {
    crate::command::serve::init_logging();
    let aside = format!("damaged-{}", utc_stamp(SystemClock.now_millis()));
    let report = repair_log(&args.data, &aside)
        .with_context(|| format!("repairing the log of {}", args.data.display()))?;
    print!("{report}");
    match &report.aside {
        None => println!("nothing to repair: the log is intact"),
        Some(aside) => println!(
            "the damaged segments (never deleted) and this report (report.txt) are in {}",
            aside.display()
        ),
    }
    // What starting the node will do: replay the log, now without damage.
    let store = DiskStore::open(&args.data, StoreConfig::default()).with_context(|| {
        format!(
            "the log is repaired, but {} still does not open",
            args.data.display()
        )
    })?;
    drop(store);
    println!("{} opens: the node can start", args.data.display());
    Ok(())
}

/// `millis` since the Unix epoch as a UTC time, `YYYYMMDDTHHMMSSZ`.
pub(crate) fn utc_stamp(millis: u64) -> String {
    let secs = millis / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_stamps_are_calendar_times() {
        assert_eq!(super::utc_stamp(0), "19700101T000000Z");
        assert_eq!(super::utc_stamp(951_782_400_000), "20000229T000000Z");
        assert_eq!(super::utc_stamp(1_767_225_599_000), "20251231T235959Z");
    }
}
