//! Records domain: everything about reading and writing collection records that is independent
//! of HTTP. So far it holds only the filter/rule language front end ([`filter`]); it must not
//! import hyper or the HTTP layer — `api/` calls into it, never the other way round.

pub mod filter;
pub mod schema;
