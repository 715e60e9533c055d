//! `GET /api/logs`, `GET /api/logs/stats`, `GET /api/logs/{id}`, `DELETE /api/logs`
//! (superusers; the router checks): PocketBase's logs API over `auxiliary.db`. A bad `filter`
//! or `sort` is PocketBase's generic 400; `stats` answers a bad filter with "Invalid filter
//! format." as PocketBase does.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::worker::http::body::{json, json_bytes, ResBody};
use crate::worker::http::error::ApiError;
use crate::worker::http::request::{list_envelope, ListParams, Query};
use crate::worker::ops::logs::store::{self, LogItem, QueryFailure};
use crate::worker::ops::logs::LogsError;
use crate::worker::records::fields::Projection;
use crate::worker::records::query::CLIENT_ERROR_MESSAGE;
use crate::worker::state::AppState;

#[derive(Debug, thiserror::Error)]
enum Failed {
    #[error(transparent)]
    Query(#[from] QueryFailure),
    #[error(transparent)]
    Logs(#[from] LogsError),
    #[error("serialising log items: {0}")]
    Json(#[from] serde_json::Error),
}

impl From<crate::shared::db::DbError> for Failed {
    fn from(e: crate::shared::db::DbError) -> Self {
        Failed::Logs(LogsError::Db(e))
    }
}

fn api_error(e: Failed, bad_message: &str) -> ApiError {
    match e {
        Failed::Query(QueryFailure::Bad(why)) => {
            tracing::debug!(error = %why, "bad logs filter or sort");
            ApiError::bad_request(bad_message)
        }
        other => ApiError::internal(other),
    }
}

/// Projects serialised items with `fields` (PocketBase applies it to the whole answer).
fn project(items: &[LogItem], projection: &Projection) -> Result<Vec<u8>, serde_json::Error> {
    match projection {
        Projection::All => serde_json::to_vec(items),
        Projection::Pick(fields) => {
            let mut values = Vec::with_capacity(items.len());
            for item in items {
                let mut v = serde_json::to_value(item)?;
                fields.pick_value(&mut v);
                values.push(v);
            }
            serde_json::to_vec(&values)
        }
    }
}

fn projection(query: &Query) -> Result<Projection, ApiError> {
    Projection::parse(query.get("fields").unwrap_or_default()).map_err(|_| ApiError::bad_request(CLIENT_ERROR_MESSAGE))
}

/// `GET /api/logs`
pub async fn list(state: &AppState, req: &Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let query = Query::parse(req.uri().query());
    let params = ListParams::from_query(&query)?;
    let projection = projection(&query)?;
    let db = state.logs.db().await.map_err(ApiError::internal)?;
    let (filter, sort, per_page, offset, count) = (params.filter.clone(), params.sort.clone(), params.per_page, params.offset(), !params.skip_total);
    let (items, total) = db
        .read(move |conn| -> Result<_, Failed> { Ok(store::list(conn, &filter, &sort, per_page, offset, count)?) })
        .await
        .map_err(|e| api_error(e, CLIENT_ERROR_MESSAGE))?;
    let items = project(&items, &projection).map_err(ApiError::internal)?;
    Ok(json_bytes(StatusCode::OK, list_envelope(&params, total, &items)))
}

/// `GET /api/logs/{id}`
pub async fn view(state: &AppState, id: &str) -> Result<Response<ResBody>, ApiError> {
    let db = state.logs.db().await.map_err(ApiError::internal)?;
    let id = id.to_owned();
    let found = db.read(move |conn| -> Result<_, Failed> { Ok(store::view(conn, &id)?) }).await.map_err(|e| api_error(e, CLIENT_ERROR_MESSAGE))?;
    match found {
        Some(item) => Ok(json(StatusCode::OK, &item)),
        None => Err(ApiError::not_found()),
    }
}

/// `GET /api/logs/stats`
pub async fn stats(state: &AppState, req: &Request<Incoming>) -> Result<Response<ResBody>, ApiError> {
    let query = Query::parse(req.uri().query());
    let filter = query.get("filter").unwrap_or_default().to_owned();
    let db = state.logs.db().await.map_err(ApiError::internal)?;
    let totals = db.read(move |conn| -> Result<_, Failed> { Ok(store::stats(conn, &filter)?) }).await.map_err(|e| api_error(e, "Invalid filter format."))?;
    Ok(json(StatusCode::OK, &totals))
}

/// `DELETE /api/logs`: empties the table (the archive files stay).
pub async fn delete(state: &AppState) -> Result<Response<ResBody>, ApiError> {
    let db = state.logs.db().await.map_err(ApiError::internal)?;
    db.write(|tx| -> Result<_, Failed> { Ok(store::delete_all(tx).map_err(QueryFailure::from)?) }).await.map_err(|e| api_error(e, CLIENT_ERROR_MESSAGE))?;
    Ok(json_bytes(StatusCode::NO_CONTENT, bytes::Bytes::new()))
}
