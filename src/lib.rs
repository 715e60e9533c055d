//! vaultbase: a self-hosted backend in one binary that speaks PocketBase's wire protocol.
//!
//! # Process model
//!
//! ```text
//! vaultbase serve                      vaultbase cluster
//!   one worker (id 0), in-process bus    supervisor: lock data dir, migrate, secrets, port check,
//!                                        bus hub on <data>/.bus.sock, spawn N × `vaultbase worker`
//!                                          └── worker 0 … N-1: each binds the port with SO_REUSEPORT
//! ```
//!
//! # Layout and the one rule of direction
//!
//! `bin → {supervisor, worker} → shared`. [`supervisor`] and [`worker`] never import each
//! other; [`shared`] knows nothing of HTTP. Inside the worker, `api/` (HTTP-aware) calls the
//! domain, and the domain never imports hyper.

pub mod shared;
pub mod supervisor;
pub mod worker;
