//! `POST /api/sql` (superusers): the SQL console, answered in PocketBase's shape. Parses and
//! validates `{query, allowWrites}`, reads the console setting, calls `ops::sql`, and after a write tells
//! the other workers to reload collections and settings (the version bump made in the write's
//! transaction already makes them reload on their next request).

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::shared::bus::BusMsg;
use crate::worker::http::body::{json as json_response, ResBody, DEFAULT_BODY_LIMIT_BYTES};
use crate::worker::http::error::ApiError;
use crate::worker::http::request::json_object;
use crate::worker::ops::sql::{self, SqlError, MAX_QUERY_CHARS};
use crate::worker::records::cache::INVALIDATE_COLLECTIONS;
use crate::worker::settings::INVALIDATE_SETTINGS;
use crate::worker::state::AppState;

const VALIDATION_MESSAGE: &str = "An error occurred while validating the submitted data.";
const UNCONSENTED_WRITE_MESSAGE: &str = "The SQL console is read-only for this request: the query would write. Send \"allowWrites\": true to run it.";

fn query_error(code: &str, message: &str, params: Option<Value>) -> ApiError {
    let mut field = json!({"code": code, "message": message});
    if let (Some(params), Some(obj)) = (params, field.as_object_mut()) {
        obj.insert("params".into(), params);
    }
    ApiError::validation(VALIDATION_MESSAGE, Map::from_iter([("query".to_owned(), field)]))
}

fn sql_error(e: SqlError) -> ApiError {
    match e {
        SqlError::Query(text) => ApiError::bad_request(format!("Failed to execute query. Raw error:\n{text}.")),
        SqlError::Timeout => ApiError::bad_request("Failed to execute query: it ran past its deadline (VAULTBASE_QUERY_TIMEOUT_MS)."),
        SqlError::ReadOnly => ApiError::forbidden("The SQL console is read-only (settings sql.readOnly): the query would write."),
        other => ApiError::internal(other),
    }
}

/// `POST /api/sql`
pub async fn run(state: &AppState, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let body = json_object(req.into_body(), DEFAULT_BODY_LIMIT_BYTES, "An error occurred while loading the submitted data.").await?;
    let query = match body.get("query") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::bad_request("An error occurred while loading the submitted data.")),
    };
    if query.is_empty() {
        return Err(query_error("validation_required", "Cannot be blank.", None));
    }
    if query.chars().count() > MAX_QUERY_CHARS {
        let params = json!({"max": MAX_QUERY_CHARS, "min": 0});
        return Err(query_error("validation_length_too_long", &format!("The length must be no more than {MAX_QUERY_CHARS}."), Some(params)));
    }
    // A write needs this request's consent; the setting, when on, refuses it even then.
    let allow_writes = match body.get("allowWrites") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::bad_request("An error occurred while loading the submitted data.")),
    };
    let settings = state.settings.fresh(&state.db).await.map_err(ApiError::internal)?;
    let locked = settings.settings.sql.read_only;
    let out = sql::run(&state.db, query, locked || !allow_writes, state.config.query_timeout).await.map_err(|e| match e {
        SqlError::ReadOnly if !locked => ApiError::forbidden(UNCONSENTED_WRITE_MESSAGE),
        other => sql_error(other),
    })?;
    if out.wrote {
        state.schema.invalidate();
        state.settings.invalidate();
        for what in [INVALIDATE_COLLECTIONS, INVALIDATE_SETTINGS] {
            state.bus.send(&BusMsg::Invalidate { origin: state.worker_id, what: what.to_owned() });
        }
        // The rate limiter keeps its rules until the shared settings-save count moves: a
        // console write may have changed them too.
        if let Some(limiter) = &state.rate_limiter {
            limiter.settings_changed();
        }
    }
    Ok(json_response(StatusCode::OK, &out))
}
