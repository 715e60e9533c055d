//! What a failed dispatch answers, and how it is logged: the thrown JS value becomes
//! PocketBase's `{status, message, data}` (prelude.js `__vb.failure` does the ApiError
//! normalisation); a deadline or the memory limit is a 500. Non-ApiErrors are bugs in a hook:
//! logged with the file and line from the JS stack, answered with the generic 400.

use rquickjs::{CatchResultExt, CaughtError, Ctx, Object};
use serde_json::{Map, Value};

use super::engine::{self, Trap};

/// The answer to a failed hook chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub status: u16,
    pub message: String,
    pub data: Map<String, Value>,
}

pub const GENERIC_MESSAGE: &str = "Something went wrong while processing your request.";

impl Failure {
    pub fn internal() -> Failure {
        Failure { status: 500, message: GENERIC_MESSAGE.into(), data: Map::new() }
    }

    /// The PocketBase envelope.
    pub fn to_json(&self) -> Value {
        serde_json::json!({"data": self.data, "message": self.message, "status": self.status})
    }
}

/// Text of an rquickjs error, with the JS exception's message and stack when there is one.
pub fn describe(ctx: &Ctx<'_>, err: rquickjs::Error) -> String {
    describe_caught(CaughtError::from_error(ctx, err))
}

/// [`describe`] of an error already taken from the context.
pub fn describe_caught(caught: CaughtError<'_>) -> String {
    match caught {
        CaughtError::Exception(ex) => {
            let msg = ex.message().unwrap_or_default();
            let stack = ex.stack().unwrap_or_default();
            format!("{msg}\n{stack}").trim().to_owned()
        }
        CaughtError::Value(v) => format!("{v:?}"),
        CaughtError::Error(e) => e.to_string(),
    }
}

/// `file:line` of the innermost frame of a JS stack that is not vaultbase's own code.
pub fn location(stack: &str) -> Option<(String, u32)> {
    for line in stack.lines() {
        let inner = line.trim().trim_start_matches("at ");
        let inner = inner.rsplit_once('(').map(|(_, r)| r.trim_end_matches(')')).unwrap_or(inner);
        if inner.starts_with('<') || inner == "native" {
            continue;
        }
        let mut parts = inner.rsplitn(3, ':');
        let (a, b, file) = (parts.next(), parts.next(), parts.next());
        let (line_no, file) = match (a, b, file) {
            (Some(_col), Some(l), Some(f)) => (l, f),
            (Some(l), Some(f), None) => (l, f),
            _ => continue,
        };
        if let Ok(n) = line_no.parse::<u32>() {
            return Some((file.to_owned(), n));
        }
    }
    None
}

/// Whether `ex` is QuickJS's out-of-memory error. It is an InternalError "out of memory";
/// when even that message could not be allocated, the same error with no message (QuickJS
/// throws no other InternalError without one), which depends on where the limit was hit.
pub fn is_out_of_memory(ex: &rquickjs::Exception<'_>) -> bool {
    match ex.message() {
        Some(m) if !m.is_empty() => m.contains("out of memory"),
        _ => ex.get::<_, String>("name").is_ok_and(|n| n == "InternalError"),
    }
}

/// Turns the error of a chain run into its answer, logging what needs logging. `what` names
/// the dispatch for the log (e.g. `GET /hello/{name}`).
pub fn failure_of(ctx: &Ctx<'_>, err: rquickjs::Error, what: &str) -> Failure {
    if engine::interrupted() {
        // Drop the pending exception; the dispatcher reports the deadline.
        let _ = CaughtError::from_error(ctx, err);
        return Failure::internal();
    }
    let caught = CaughtError::from_error(ctx, err);
    let value = match caught {
        CaughtError::Exception(ex) => ex.into_value(),
        CaughtError::Value(v) => v,
        CaughtError::Error(e) => {
            tracing::error!(target: "vaultbase::hooks", hook = what, error = %e, "hook failed");
            return Failure::internal();
        }
    };
    if let Some(ex) = value.as_exception() {
        if is_out_of_memory(ex) {
            engine::note_out_of_memory();
            return Failure::internal();
        }
    }
    if value.is_null() {
        // QuickJS throws null when it cannot even allocate the error.
        engine::note_out_of_memory();
        return Failure::internal();
    }
    let mapped: Result<Object, _> = super::bindings::call_vb(ctx, "failure", (value,)).catch(ctx);
    let Ok(obj) = mapped else {
        engine::note_out_of_memory();
        return Failure::internal();
    };
    let status = obj.get::<_, f64>("status").unwrap_or(400.0) as u16;
    let message: String = obj.get("message").unwrap_or_else(|_| GENERIC_MESSAGE.into());
    let data = obj
        .get::<_, rquickjs::Value>("data")
        .ok()
        .and_then(|d| ctx.json_stringify(d).ok().flatten())
        .and_then(|s| s.to_string().ok())
        .and_then(|s| serde_json::from_str::<Map<String, Value>>(&s).ok())
        .unwrap_or_default();
    if obj.get::<_, bool>("log").unwrap_or(false) {
        let text: String = obj.get("text").unwrap_or_default();
        let stack: String = obj.get("stack").unwrap_or_default();
        let (file, line) = location(&stack).unwrap_or_default();
        tracing::error!(target: "vaultbase::hooks", hook = what, file = %file, line, error = %text, stack = %stack, "hook failed");
    }
    let status = if (400..=599).contains(&status) { status } else { 400 };
    Failure { status, message, data }
}

/// The answer and log line of a dispatch ended by a limit.
pub fn trapped(trap: Trap, what: &str, file: &str, line: u32, limits: &engine::Limits) -> Failure {
    match trap {
        Trap::Deadline => tracing::error!(
            target: "vaultbase::hooks", hook = what, file, line, timeout_s = limits.timeout.as_secs_f64(),
            "hook ran past its deadline and was interrupted (VAULTBASE_HOOKS_TIMEOUT)"
        ),
        Trap::OutOfMemory => tracing::error!(
            target: "vaultbase::hooks", hook = what, file, line, memory_mib = limits.memory_bytes / (1024 * 1024),
            "hook ran out of memory; its runtime is recycled (VAULTBASE_HOOKS_MEMORY)"
        ),
    }
    Failure::internal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_skips_internal_frames() {
        let stack = "    at <anonymous> (<vaultbase prelude>:10:5)\n    at handler (/x/main.pb.js:12:9)\n";
        assert_eq!(location(stack), Some(("/x/main.pb.js".into(), 12)));
        assert_eq!(location(""), None);
    }
}
