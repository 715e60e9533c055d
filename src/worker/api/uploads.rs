//! Reading a record create/update body that may carry files: a multipart body is streamed
//! part by part — text parts become PocketBase's form values, file parts for file fields are
//! staged to temp files with their field's `maxSize` enforced as the bytes arrive and their
//! `mimeTypes` checked against the sniffed content — and the stored names of the uploads are
//! put into the body under their keys (`field`, `field+`, `+field`).
//!
//! The whole body is counted against the request's limit (PocketBase's 32 MiB plus, per file
//! field, `maxSize × maxSelect`): a declared length over it is refused before a byte is read,
//! and a streamed body is cut off with 413 the moment it passes it. No part is held whole in
//! memory. Other content types go to the records module's reader unchanged.
//!
//! The form's text is limited apart from its files ([`FormLimits`]): each plain value to
//! [`MAX_TEXT_PART_BYTES`], the `@jsonPayload` and all text together to PocketBase's 32 MiB,
//! and the number of parts to [`MAX_FORM_PARTS`] — so a body sized for a collection's file
//! fields cannot be spent on text held in memory, or on millions of tiny parts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::Request;
use serde_json::{json, Map, Value};

use crate::worker::files::names::stored_name;
use crate::worker::files::record::merge_uploads;
use crate::worker::files::sniff::{extension_for, mime_matches};
use crate::worker::files::staged::{StageError, StagedFile, Stager};
use crate::worker::http::body::DEFAULT_BODY_LIMIT_BYTES;
use crate::worker::http::error::ApiError;
use crate::worker::records::query::CLIENT_ERROR_MESSAGE;
use crate::worker::records::schema::field::{FileOptions, DEFAULT_FILE_MAX_BYTES};
use crate::worker::records::schema::{Collection, FieldKind};
use crate::worker::records::values::decode_form;
use crate::worker::state::AppState;

/// The largest plain (non-file, non-`@jsonPayload`) form value.
pub const MAX_TEXT_PART_BYTES: usize = 1024 * 1024;
/// The most parts one multipart body may have (Go's `mime/multipart` default, which
/// PocketBase inherits).
pub const MAX_FORM_PARTS: usize = 1000;
/// The JSON payload part's name.
const JSON_PAYLOAD: &str = "@jsonPayload";

/// What a multipart body's text parts have used so far.
#[derive(Default)]
pub(crate) struct FormLimits {
    parts: usize,
    text_bytes: usize,
}

impl FormLimits {
    /// Counts one more part; refuses the body past [`MAX_FORM_PARTS`].
    pub(crate) fn part(&mut self) -> Result<(), ApiError> {
        self.parts += 1;
        if self.parts > MAX_FORM_PARTS {
            return Err(ApiError::bad_request(format!("The form has more than {MAX_FORM_PARTS} parts.")));
        }
        Ok(())
    }

    /// Reads a text part whole, within its own limit and the form's text limit.
    pub(crate) async fn text(&mut self, part: &mut multer::Field<'_>, multer_error: impl Fn(multer::Error) -> ApiError) -> Result<Vec<u8>, ApiError> {
        let name = part.name().unwrap_or_default().to_owned();
        let own = if name == JSON_PAYLOAD { DEFAULT_BODY_LIMIT_BYTES } else { MAX_TEXT_PART_BYTES };
        let mut out = Vec::new();
        while let Some(chunk) = part.chunk().await.map_err(&multer_error)? {
            self.text_bytes = self.text_bytes.saturating_add(chunk.len());
            if out.len() + chunk.len() > own {
                return Err(ApiError::new(
                    hyper::StatusCode::PAYLOAD_TOO_LARGE,
                    format!("The form value {name:?} is over its {own}-byte limit."),
                ));
            }
            if self.text_bytes > DEFAULT_BODY_LIMIT_BYTES {
                return Err(ApiError::new(
                    hyper::StatusCode::PAYLOAD_TOO_LARGE,
                    format!("The form's text is over its {DEFAULT_BODY_LIMIT_BYTES}-byte limit."),
                ));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

/// A record body with its staged uploads (removed from disk when this is dropped).
pub struct RecordBody {
    pub body: Map<String, Value>,
    pub uploads: Vec<StagedFile>,
}

pub(crate) fn max_size(o: &FileOptions) -> u64 {
    u64::try_from(if o.max_size <= 0 { DEFAULT_FILE_MAX_BYTES } else { o.max_size }).unwrap_or(u64::MAX)
}

/// The body limit of a write to `c`: PocketBase's default plus what its file fields may hold.
pub fn body_limit(c: Option<&Collection>) -> u64 {
    let files: u64 = c
        .map(|c| {
            c.fields
                .iter()
                .filter_map(|f| match &f.kind {
                    FieldKind::File(o) => Some(max_size(o).saturating_mul(u64::from(o.max_select.max(1)))),
                    _ => None,
                })
                .fold(0u64, u64::saturating_add)
        })
        .unwrap_or(0);
    (DEFAULT_BODY_LIMIT_BYTES as u64).saturating_add(files)
}

/// The file field a multipart key addresses (`f`, `f+`, `+f`).
pub(crate) fn file_target<'c>(c: &'c Collection, key: &str) -> Option<(&'c str, &'c FileOptions)> {
    let name = key.strip_suffix('+').or_else(|| key.strip_prefix('+')).unwrap_or(key);
    let field = c.field(name)?;
    match &field.kind {
        FieldKind::File(o) => Some((field.name.as_str(), o)),
        _ => None,
    }
}

fn field_error(failed: &str, field: &str, code: &str, message: String) -> ApiError {
    let mut data = Map::new();
    data.insert(field.to_owned(), json!({"code": code, "message": message}));
    ApiError::validation(failed, data)
}

pub(crate) fn stage_error(e: StageError) -> ApiError {
    ApiError::internal(e)
}

/// Reads the body of a create/update of `collection`. `failed` is the message of a 400.
pub async fn record_body(state: &AppState, collection: &str, req: Request<Incoming>, failed: &str) -> Result<RecordBody, ApiError> {
    // The boundary is case-sensitive: only the media type is compared case-insensitively.
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    if !content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
        let body = super::records::body_map(req).await?;
        return Ok(RecordBody { body, uploads: Vec::new() });
    }
    let bad = || ApiError::bad_request(CLIENT_ERROR_MESSAGE);
    let boundary = multer::parse_boundary(&content_type).map_err(|_| bad())?;
    // The held snapshot is enough to size the limit; the write re-plans with a fresh one.
    let snap = state.schema.for_job(&state.db, collection, false).await.map_err(ApiError::internal)?;
    let c = snap.get(collection).cloned();
    let limit = body_limit(c.as_deref());
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::payload_too_large());
    }

    let over = Arc::new(AtomicBool::new(false));
    let stream = counted(req.into_body(), limit, over.clone());
    let mut multipart = multer::Multipart::new(stream, boundary);
    let multer_error = |_: multer::Error| if over.load(Ordering::Relaxed) { ApiError::payload_too_large() } else { bad() };

    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut uploads: Vec<StagedFile> = Vec::new();
    let mut limits = FormLimits::default();
    while let Some(mut part) = multipart.next_field().await.map_err(multer_error)? {
        limits.part()?;
        let key = part.name().unwrap_or_default().to_owned();
        // A part with an empty file name (an empty file input) is a plain value, as in Go.
        let Some(original) = part.file_name().filter(|n| !n.is_empty()).map(str::to_owned) else {
            let bytes = limits.text(&mut part, multer_error).await?;
            pairs.push((key, String::from_utf8(bytes).map_err(|_| bad())?));
            continue;
        };
        let Some((field, opts)) = c.as_deref().and_then(|c| file_target(c, &key)) else {
            // PocketBase ignores file parts that address no file field; they still count
            // against the body limit.
            while part.chunk().await.map_err(multer_error)?.is_some() {}
            continue;
        };
        let max = max_size(opts);
        let mut stager = Stager::create(state.files.data_dir()).await.map_err(stage_error)?;
        while let Some(chunk) = part.chunk().await.map_err(multer_error)? {
            stager.write(&chunk).await.map_err(stage_error)?;
            if stager.size() > max {
                // Too big for the field: stop keeping it (dropping the stager removes the temp
                // file) but read the part to its end, so a body that is also over the request
                // limit is answered 413, as PocketBase does, not 400.
                drop(stager);
                while part.chunk().await.map_err(multer_error)?.is_some() {}
                return Err(field_error(
                    failed,
                    field,
                    "validation_file_size_limit",
                    format!("Failed to upload {original:?} - the maximum allowed file size is {max} bytes."),
                ));
            }
        }
        let name_for = original.clone();
        let staged = stager
            .finish(key, field.to_owned(), original, |mime| Ok(stored_name(&name_for, extension_for(mime))?))
            .await
            .map_err(stage_error)?;
        if !opts.mime_types.is_empty() && !opts.mime_types.iter().any(|m| mime_matches(staged.mime, m)) {
            return Err(field_error(
                failed,
                field,
                "validation_invalid_mime_type",
                format!("Failed to upload {:?} due to unsupported file type.", staged.original),
            ));
        }
        uploads.push(staged);
    }
    let mut body = decode_form(pairs).map_err(|_| bad())?;
    merge_uploads(&mut body, &uploads);
    Ok(RecordBody { body, uploads })
}

/// The request body as a stream of data chunks that fails (and sets `over`) once more than
/// `limit` bytes have arrived.
pub(crate) fn counted(body: Incoming, limit: u64, over: Arc<AtomicBool>) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let frames = futures_util::stream::unfold(body, |mut body| async move {
        loop {
            match body.frame().await? {
                Err(e) => return Some((Err(std::io::Error::other(e)), body)),
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        return Some((Ok(data), body));
                    }
                }
            }
        }
    });
    let mut seen: u64 = 0;
    frames.map(move |item| {
        let data = item?;
        seen = seen.saturating_add(data.len() as u64);
        if seen > limit {
            over.store(true, Ordering::Relaxed);
            return Err(std::io::Error::other("request body over its limit"));
        }
        Ok(data)
    })
}
