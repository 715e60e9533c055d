//! Static files from the public dir (PocketBase's `pb_public`, `--publicDir`) at every path
//! outside `/api/` and `/_/`, with PocketBase's `--indexFallback`: a path with no file answers
//! the root `index.html`, so a single-page app's client-side routes load.
//!
//! It owns mapping a request path to a file under the public dir and answering it. It must
//! never serve anything outside that dir (`..` segments are refused before the filesystem is
//! asked) and must not read files on a runtime thread's blocking calls (tokio::fs only).

use std::path::{Path, PathBuf};

use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Response};

use crate::worker::http::body::{full, ResBody};
use crate::worker::http::error::ApiError;
use crate::worker::state::AppState;

/// The file a directory path answers, and the fallback.
const INDEX_FILE: &str = "index.html";

/// Answers GET/HEAD `path` from the public dir, or PocketBase's 404.
pub async fn serve(state: &AppState, method: &Method, path: &str) -> Result<Response<ResBody>, ApiError> {
    let root = &state.config.public_dir;
    let Some(relative) = relative_path(path) else { return Err(ApiError::route_not_found()) };
    let mut candidate = root.join(&relative);
    if tokio::fs::metadata(&candidate).await.map(|m| m.is_dir()).unwrap_or(false) {
        candidate = candidate.join(INDEX_FILE);
    }
    let found = match read_file(&candidate).await {
        Some(bytes) => Some((candidate, bytes)),
        None if state.config.index_fallback => {
            let index = root.join(INDEX_FILE);
            read_file(&index).await.map(|bytes| (index, bytes))
        }
        None => None,
    };
    let Some((file, bytes)) = found else { return Err(ApiError::route_not_found()) };
    let mut res = if method == Method::HEAD { full(Vec::new()) } else { full(bytes) };
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type(&file)));
    // Files change on deploy; let clients revalidate rather than guess a lifetime.
    res.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(res)
}

/// The percent-decoded path below the public dir, or None for one that tries to leave it (or
/// is not valid UTF-8 once decoded).
pub(crate) fn relative_path(path: &str) -> Option<PathBuf> {
    let decoded = percent_decode(path)?;
    let mut out = PathBuf::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => return None,
            s if s.contains('\\') || s.contains('\0') => return None,
            s => out.push(s),
        }
    }
    Some(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

pub(crate) async fn read_file(path: &Path) -> Option<Vec<u8>> {
    match tokio::fs::metadata(path).await {
        Ok(m) if m.is_file() => tokio::fs::read(path).await.ok(),
        _ => None,
    }
}

/// The content type of the common web file kinds; anything else is served as bytes.
pub(crate) fn content_type(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "wasm" => "application/wasm",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_public_dir() {
        assert_eq!(relative_path("/a/b.css"), Some(PathBuf::from("a/b.css")));
        assert_eq!(relative_path("/"), Some(PathBuf::new()));
        assert_eq!(relative_path("/a%20b.txt"), Some(PathBuf::from("a b.txt")));
        assert_eq!(relative_path("/../etc/passwd"), None);
        assert_eq!(relative_path("/a/%2e%2e/%2e%2e/x"), None);
        assert_eq!(relative_path("/a%5c..%5cx"), None);
        assert_eq!(relative_path("/bad%zz"), None);
    }
}
