//! A node in this process on 127.0.0.1:0, driven through the client, raw TCP and raw HTTP.

#![allow(unreachable_pub)]

mod bad_input;
mod cluster;
#[path = "../common/control.rs"]
mod control;
mod harness;
mod http;
mod layers;
mod live;
mod move_failures;
mod outside;
mod repartition;
mod requests;
mod transport;
