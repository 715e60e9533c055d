//! Records domain: everything about reading and writing collection records that is independent
//! of HTTP: the filter/rule language front end ([`filter`]) and its compiler to SQL
//! ([`query`]), the `expand` and `fields` response shaping ([`expand`], [`fields`]),
//! collection schemas ([`schema`]) with their storage ([`store`]) and per-worker cache
//! ([`cache`]), record values on the write and read paths ([`values`], [`rows`]), encrypted
//! fields sealed on write and opened on output ([`encrypted`]), the
//! rule-checked record operations ([`crud`]), the committed changes they report for
//! after-commit effects ([`changes`]) and the SQL parameter type they share ([`sql_value`]);
//! the `_webhooks` system collection's own write and output rules ([`webhooks_collection`]).
//! It must not import hyper or the HTTP layer — `api/` calls into it, never the other way
//! round.

pub mod cache;
pub mod changes;
pub mod crud;
pub mod encrypted;
pub mod expand;
pub mod fields;
pub mod filter;
pub mod query;
pub mod rows;
pub mod schema;
pub mod sql_value;
pub mod store;
pub mod values;
pub mod webhooks_collection;
pub mod write;
