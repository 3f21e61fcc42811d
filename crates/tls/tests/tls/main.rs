//! haze-tls through its public API: a CA and certificates generated in temporary directories,
//! handshakes over in-memory pipes through `TlsDial` and `accept`, and files as an attacker or
//! a careless operator would write them.

mod files;
mod generate;
mod handshake;
mod identity;
mod support;
