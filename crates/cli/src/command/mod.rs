//! One module per group of subcommands.

pub(crate) mod bench;
pub(crate) mod certs;
pub(crate) mod cluster;
pub(crate) mod data;
pub(crate) mod dev;
pub(crate) mod join;
pub(crate) mod local;
pub(crate) mod profile;
pub(crate) mod progress;
pub(crate) mod repair;
pub(crate) mod scrub;
pub(crate) mod secure;
pub(crate) mod serve;
pub(crate) mod token;
pub(crate) mod types;
