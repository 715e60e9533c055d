//! HTTP handlers, one file per resource family. Each has one shape: parse → authorize → call
//! the domain → respond. Handlers may use hyper; the domain they call may not.

pub mod account_flows;
pub mod backups;
pub mod batch;
pub mod batch_hooks;
pub mod cluster;
pub mod collections;
pub mod custom_routes;
pub mod crons;
pub mod files;
pub mod health;
pub mod hook_files;
pub mod jobs;
pub mod logs;
pub mod oauth2;
pub mod public;
pub mod realtime;
pub mod record_auth;
pub mod record_hooks;
pub mod records;
pub mod settings;
pub mod sql;
pub mod admin;
pub mod setup;
pub mod test_routes;
pub mod uploads;
pub mod webhooks;
