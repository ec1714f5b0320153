//! The double-entry engine: commands in, journal entries out.
//!
//! Architecture invariant: nothing in `ledger/` does I/O or reads a clock; the
//! writer hands it the time. Replaying the same entries always yields the same
//! state.

pub mod command;
pub mod digest;
pub mod directory;
pub mod execute;
pub mod id_map;
pub mod limits;
pub mod state;
pub mod validate;
pub mod view;
