//! Records domain: everything about reading and writing collection records that is independent
//! of HTTP: the filter/rule language front end ([`filter`]), collection schemas ([`schema`]),
//! record values on the write and read paths ([`values`]) and the SQL parameter type they share
//! ([`sql_value`]). It must not import hyper or the HTTP layer — `api/` calls into it, never the
//! other way round.

pub mod cache;
pub mod filter;
pub mod rows;
pub mod schema;
pub mod store;
pub mod sql_value;
pub mod values;
