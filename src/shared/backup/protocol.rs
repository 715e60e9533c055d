//! The restore conversation on the bus, between the worker that took a restore request, the
//! supervisor and every worker. All of it travels as `BusMsg::Direct` frames; the supervisor's
//! address is [`crate::shared::bus::SUPERVISOR_ID`].
//!
//! requester → supervisor [`REQUEST`] `{op, staged}`; supervisor → every worker [`PAUSE`]
//! `{op}`, each answers [`PAUSED`] once its connections are closed; the supervisor swaps the
//! files, then sends [`RESUME`] `{op}`, each answers [`RESUMED`] once it serves the new file;
//! finally supervisor → requester [`DONE`] `{op, error?}`.

use serde::{Deserialize, Serialize};

pub const REQUEST: &str = "restore.request";
pub const PAUSE: &str = "restore.pause";
pub const PAUSED: &str = "restore.paused";
pub const RESUME: &str = "restore.resume";
pub const RESUMED: &str = "restore.resumed";
pub const DONE: &str = "restore.done";

/// Whether `topic` belongs to the restore conversation.
pub fn is_restore_topic(topic: &str) -> bool {
    topic.starts_with("restore.")
}

/// The payload of every restore message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// Names one restore from request to done.
    pub op: String,
    /// [`REQUEST`]: the name of the staging directory (in the data dir) holding the files to
    /// swap in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged: Option<String>,
    /// [`DONE`]: why the restore did not happen (`None`: it did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Payload {
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    pub fn from_value(v: serde_json::Value) -> Option<Payload> {
        serde_json::from_value(v).ok()
    }
}
