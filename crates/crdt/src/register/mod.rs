//! Registers: last-writer-wins and multi-value.

mod lww_register;
mod mv_register;

pub use lww_register::{LwwRegister, Stamp};
pub use mv_register::MvRegister;
