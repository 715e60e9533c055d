//! Records domain: everything about reading and writing collection records that is independent
//! of HTTP: the filter/rule language front end ([`filter`]), collection schemas ([`schema`]) and the
//! filter/sort compiler to SQL ([`query`]). It must not import hyper or the HTTP layer — `api/` calls
//! into it, never the other way round.

pub mod filter;
pub mod query;
pub mod schema;
