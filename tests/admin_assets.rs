//! The dashboard's files as the binary serves them at `/_/`: embedded, precompressed, cached by
//! ETag and content hash, behind a strict Content-Security-Policy, and nothing outside them.

mod common;

use std::io::Read;

use base64::Engine as _;
use common::*;
use sha2::{Digest, Sha256};

fn get_with(port: u16, path: &str, headers: &[(&str, &str)]) -> Resp {
    call_with(port, "GET", path, None, None, headers)
}

/// The import map's `imports` object from the served index.html, and the script's exact text.
fn import_map(html: &str) -> (serde_json::Value, String) {
    let start = html.find("<script type=\"importmap\">").expect("an import map") + "<script type=\"importmap\">".len();
    let len = html[start..].find("</script>").expect("import map end");
    let text = html[start..start + len].to_owned();
    let value: serde_json::Value = serde_json::from_str(&text).expect("import map is JSON");
    (value["imports"].clone(), text)
}

#[test]
fn the_dashboard_is_served_compressed_cached_and_under_a_strict_policy() {
    let mut p = Spawn::serve().start();
    p.wait_healthy();
    let port = p.port;

    // index.html: revalidated every time, policy allowing exactly the import map inline.
    let index = get_with(port, "/_/", &[]);
    assert_eq!(index.status, 200);
    assert!(index.header("content-type").unwrap_or_default().starts_with("text/html"));
    assert_eq!(index.header("cache-control").as_deref(), Some("no-cache"));
    let html = String::from_utf8(index.body.clone()).expect("utf-8");
    assert!(!html.contains("<!--vb:importmap-->"), "the marker is replaced");
    let (imports, map_text) = import_map(&html);
    let csp = index.header("content-security-policy").expect("a CSP");
    let sha = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(map_text.as_bytes()));
    for directive in ["default-src 'self'", "frame-ancestors 'none'", "img-src 'self' data: blob:", "style-src 'self'", "object-src 'none'"] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(csp.contains(&format!("script-src 'self' 'sha256-{sha}'")), "the import map's hash in {csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    assert_eq!(html.matches("<script").count(), 2, "only the import map and the entry module: {html}");

    // The import map names every module's hashed URL; the stylesheet link is hashed too.
    let dom_hashed = imports["/_/js/lib/dom.js"].as_str().expect("dom.js is mapped").to_owned();
    assert!(dom_hashed.starts_with("/_/js/lib/dom.") && dom_hashed.ends_with(".js") && dom_hashed != "/_/js/lib/dom.js", "{dom_hashed}");
    assert!(imports["/_/js/screens/collections/sidebar.js"].is_string(), "nested modules are mapped: {imports}");
    assert!(!html.contains("href=\"/_/css/app.css\""), "the stylesheet link is rewritten: {html}");
    let css_href = html.split("rel=\"stylesheet\" href=\"").nth(1).and_then(|s| s.split('"').next()).expect("a stylesheet link");
    assert!(css_href.starts_with("/_/css/app.") && css_href.ends_with(".css"), "{css_href}");

    // A hashed name: same bytes as the plain one, cached forever; the plain one revalidates.
    let plain = get_with(port, "/_/js/lib/dom.js", &[]);
    let hashed = get_with(port, &dom_hashed, &[]);
    assert_eq!(plain.status, 200);
    assert_eq!(hashed.status, 200);
    assert_eq!(plain.body, hashed.body);
    assert!(plain.header("content-type").unwrap_or_default().starts_with("text/javascript"));
    assert_eq!(hashed.header("cache-control").as_deref(), Some("public, max-age=31536000, immutable"));
    assert_eq!(plain.header("cache-control").as_deref(), Some("no-cache"));
    let css = get_with(port, css_href, &[]);
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").unwrap_or_default().starts_with("text/css"));

    // Compression by Accept-Encoding, each decoding to the identity bytes, with Vary.
    let identity = plain.body.clone();
    assert!(plain.header("content-encoding").is_none());
    let gz = get_with(port, "/_/js/lib/dom.js", &[("Accept-Encoding", "gzip")]);
    assert_eq!(gz.header("content-encoding").as_deref(), Some("gzip"));
    assert_eq!(gz.header("vary").as_deref(), Some("Accept-Encoding"));
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gz.body[..]).read_to_end(&mut unzipped).expect("gunzip");
    assert_eq!(unzipped, identity);
    assert!(gz.body.len() < identity.len());
    let br = get_with(port, "/_/js/lib/dom.js", &[("Accept-Encoding", "gzip, deflate, br")]);
    assert_eq!(br.header("content-encoding").as_deref(), Some("br"));
    let mut unbrotli = Vec::new();
    brotli::Decompressor::new(&br.body[..], 4096).read_to_end(&mut unbrotli).expect("brotli");
    assert_eq!(unbrotli, identity);
    let refused = get_with(port, "/_/js/lib/dom.js", &[("Accept-Encoding", "br;q=0, gzip;q=0")]);
    assert!(refused.header("content-encoding").is_none());
    assert_eq!(refused.body, identity);

    // ETag → 304 for the same representation; another encoding's tag does not match.
    let etag = br.header("etag").expect("an ETag");
    let again = get_with(port, "/_/js/lib/dom.js", &[("Accept-Encoding", "br"), ("If-None-Match", &etag)]);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let other = get_with(port, "/_/js/lib/dom.js", &[("If-None-Match", &etag)]);
    assert_eq!(other.status, 200, "the identity bytes are another representation");
    let index_etag = index.header("etag").expect("index ETag");
    assert_eq!(get_with(port, "/_/", &[("If-None-Match", &index_etag)]).status, 304);

    // Unknown paths and escapes: 404 in the API's envelope, never a file from elsewhere.
    for path in [
        "/_/nope.js",
        "/_/js/lib/dom.000000000000.js",
        "/_/../Cargo.toml",
        "/_/%2e%2e/Cargo.toml",
        "/_/js/../../Cargo.toml",
        "/_/..%2fCargo.toml",
        "/_/setup.html",
    ] {
        let r = get_with(port, path, &[]);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.json()["status"], 404, "{path}");
        assert!(r.json()["message"].is_string(), "{path}");
    }
    // Positive control for the escapes: a real file one level down is served.
    assert_eq!(get_with(port, "/_/css/app.css", &[]).status, 200);
}

#[test]
fn setup_still_accepts_posts_beside_the_embedded_files() {
    let mut p = Spawn::serve().start();
    p.wait_healthy();
    let r = call(p.port, "POST", "/_/setup", None, Some(&serde_json::json!({"token": "x", "email": "", "password": ""})));
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["data"]["email"]["code"], "validation_required");
}
