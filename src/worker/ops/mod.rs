//! Operator tools that are not record CRUD: the SQL console, request and application logs. Domain code only — no HTTP here;
//! the handlers in `worker/api` parse, authorize and call in.

pub mod logs;
pub mod sql;
