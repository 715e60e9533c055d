//! The records domain: collection schemas, the filter language, rules, validation and record
//! storage. HTTP-agnostic: nothing here imports hyper; `api/` calls into it.

pub mod schema;
