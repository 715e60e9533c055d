//! Operator tools that are not record CRUD: the SQL console, request and application logs,
//! backups and restore. Domain code only — no HTTP here; the handlers in `worker/api` parse,
//! authorize and call in.

pub mod backups;
pub mod cluster;
pub mod hooks_view;
pub mod logs;
pub mod restore;
pub mod sql;
