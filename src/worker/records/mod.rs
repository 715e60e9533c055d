//! Records domain: everything about reading and writing collection records that is independent
//! of HTTP: the filter/rule language front end ([`filter`]) and collection schemas ([`schema`]). It must not
//! import hyper or the HTTP layer — `api/` calls into it, never the other way round.

pub mod cache;
pub mod filter;
pub mod rows;
pub mod schema;
pub mod store;
