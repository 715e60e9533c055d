//! SQLite access for every role: connection set-up ([`open`]), the thread-owning executor
//! ([`Db`]) and the embedded system migrations ([`migrate`]).
//!
//! Rules this module enforces so callers cannot get them wrong: rusqlite never runs on an async
//! runtime thread; every write is one `BEGIN IMMEDIATE` transaction on the single writer
//! thread; pragmas are applied on every connection with `busy_timeout` first.

mod executor;
pub mod migrate;
pub mod open;

pub use executor::{Db, DbError};
