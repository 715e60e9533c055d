//! The first-run setup: the dashboard's setup screen, opened through the one-time link printed
//! at start-up (`/_/#/setup/<token>`), asks for the first superuser's email and password;
//! `POST /_/setup` redeems the link and creates that superuser.
//!
//! It must not be a way in once a superuser exists: the token is checked and consumed in the
//! same write transaction that inserts the superuser, and refused whenever one already
//! exists.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use serde_json::{json, Map, Value};

use crate::shared::setup_link;
use crate::worker::auth::password::{length_ok, PASSWORD_MAX_CHARS_LIMIT, PASSWORD_MIN_CHARS_DEFAULT};
use crate::worker::auth::random;
use crate::worker::http::body::{full, ResBody};
use crate::worker::http::error::ApiError;
use crate::worker::http::request::json_object;
use crate::worker::app::observe::Source;
use crate::worker::records::changes::{self, Action, Changes};
use crate::worker::state::AppState;
use crate::worker::superuser_cli::{insert_superuser, looks_like_email};

/// The page is tiny; its form posts a few hundred bytes.
const SETUP_BODY_LIMIT_BYTES: usize = 16 * 1024;
const INVALID_LINK: &str = "The setup link is invalid, expired or already used, or a superuser already exists.";

fn invalid(field: &str, code: &str, message: &str, data: &mut Map<String, Value>) {
    data.insert(field.to_owned(), json!({ "code": code, "message": message }));
}

/// `POST /_/setup` with `{token, email, password, passwordConfirm}`: 204 once the superuser
/// exists, 400 with field errors, 401 for a link that is not (or no longer) good.
pub async fn redeem(state: &AppState, req: Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let body = json_object(req.into_body(), SETUP_BODY_LIMIT_BYTES, "Failed to load the submitted data due to invalid formatting.").await?;
    let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let (token, email, password, confirm) = (text("token"), text("email").trim().to_owned(), text("password"), text("passwordConfirm"));

    let mut data = Map::new();
    if email.is_empty() {
        invalid("email", "validation_required", "Cannot be blank.", &mut data);
    } else if !looks_like_email(&email) {
        invalid("email", "validation_is_email", "Must be a valid email address.", &mut data);
    }
    if password.is_empty() {
        invalid("password", "validation_required", "Cannot be blank.", &mut data);
    } else if !length_ok(&password, PASSWORD_MIN_CHARS_DEFAULT, PASSWORD_MAX_CHARS_LIMIT) {
        let message = format!("The length must be between {PASSWORD_MIN_CHARS_DEFAULT} and {PASSWORD_MAX_CHARS_LIMIT}.");
        invalid("password", "validation_length_out_of_range", &message, &mut data);
    }
    if confirm != password {
        invalid("passwordConfirm", "validation_values_mismatch", "Values don't match.", &mut data);
    }
    if !data.is_empty() {
        return Err(ApiError::validation("Failed to create record.", data));
    }
    // Refuse a bad link before paying for a hash; the write below checks it again, for real.
    let probe = token.clone();
    let plausible = state
        .db
        .read(move |c| -> Result<bool, crate::shared::db::DbError> { Ok(setup_link::no_superuser(c)? && !probe.is_empty()) })
        .await
        .map_err(ApiError::internal)?;
    if !plausible {
        return Err(ApiError::unauthorized(INVALID_LINK));
    }
    let hash = state.passwords.hash(&password).await.map_err(ApiError::internal)?;
    let id = random::new_id().map_err(ApiError::internal)?;
    let token_key = random::new_token_key().map_err(ApiError::internal)?;
    let snap = state.schema.fresh(&state.db).await.map_err(ApiError::internal)?;
    let superusers = snap.get(crate::worker::actor::SUPERUSERS).cloned().ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "Missing collection context."))?;
    // A record write like any other: through the pipeline's transaction and after-commit
    // effects (realtime, observers).
    let created = state
        .writes()
        .commit(Source::Setup, move |tx: &rusqlite::Transaction<'_>, changes: &mut Changes| -> Result<bool, crate::shared::db::DbError> {
            if !setup_link::redeem(tx, &token)? {
                return Ok(false);
            }
            insert_superuser(tx, &id, &email, &hash, &token_key)?;
            changes::record_after(tx, &superusers, &id, Action::Create, None, changes)?;
            Ok(true)
        })
        .await
        .map_err(ApiError::internal)?;
    if !created {
        return Err(ApiError::unauthorized(INVALID_LINK));
    }
    tracing::info!("the first superuser was created through the setup link");
    let mut res = full(bytes::Bytes::new());
    *res.status_mut() = StatusCode::NO_CONTENT;
    Ok(res)
}
