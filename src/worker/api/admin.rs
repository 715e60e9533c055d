//! The admin dashboard at `/_/`. For now only the development mode: with
//! `VAULTBASE_ADMIN_DIR` set, files are read from that directory on every request (no cache),
//! so the dashboard can be edited without rebuilding. It must never serve outside that dir.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Response};

use crate::worker::api::public::{content_type, read_file, relative_path};
use crate::worker::http::body::{full, ResBody};
use crate::worker::http::error::ApiError;

/// The directory named by `VAULTBASE_ADMIN_DIR`, read once.
pub fn dev_dir() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| std::env::var_os("VAULTBASE_ADMIN_DIR").filter(|v| !v.is_empty()).map(PathBuf::from)).as_deref()
}

/// GET/HEAD `/_/…` from the development dir; `/_/` is its `index.html`.
pub async fn serve_dev(method: &Method, path: &str) -> Result<Response<ResBody>, ApiError> {
    let Some(root) = dev_dir() else { return Err(ApiError::route_not_found()) };
    let below = path.strip_prefix("/_").unwrap_or(path);
    let Some(relative) = relative_path(below) else { return Err(ApiError::route_not_found()) };
    let file = if relative.as_os_str().is_empty() { root.join("index.html") } else { root.join(relative) };
    let Some(bytes) = read_file(&file).await else { return Err(ApiError::route_not_found()) };
    let mut res = if method == Method::HEAD { full(Vec::new()) } else { full(bytes) };
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type(&file)));
    res.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}
