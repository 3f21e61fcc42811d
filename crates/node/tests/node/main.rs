//! A node in this process on 127.0.0.1:0, driven through the client, raw TCP and raw HTTP.

#![allow(unreachable_pub)]

mod bad_input;
mod cluster;
mod harness;
mod http;
mod requests;
mod transport;
