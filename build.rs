//! Embeds the admin dashboard (`admin-dist/`) into the binary at compile time, so a release build
//! serves `/_/` without node or any file next to it.
//!
//! For every file it writes the raw bytes, a gzip and a brotli copy (kept only when smaller)
//! into OUT_DIR and a table (`admin_assets.rs`) that `src/worker/api/admin.rs` includes. Every
//! asset except `index.html` also gets a content-hashed name (`js/lib/dom.<hash>.js`); the
//! `index.html` that ships carries an import map from each module's plain URL to its hashed URL
//! (at the `<!--vb:importmap-->` marker), its stylesheet link and entry script point at hashed
//! URLs, and the import map's sha256 becomes part of the Content-Security-Policy.
//! It must not depend on anything outside `admin-dist/` nor on tools beyond cargo.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use sha2::{Digest, Sha256};

const DIST_DIR: &str = "admin-dist";
const URL_PREFIX: &str = "/_/";
const IMPORT_MAP_MARKER: &str = "<!--vb:importmap-->";
/// Hex digits of the content hash in a hashed file name (48 bits: collisions are not a concern
/// for a few dozen files, and the names stay short).
const NAME_HASH_HEX_CHARS: usize = 12;
const BROTLI_QUALITY: u32 = 11;
const BROTLI_WINDOW_LOG2: u32 = 22;
const BROTLI_BUFFER_BYTES: usize = 64 * 1024;

struct Asset {
    /// Path below `admin-dist/`, with `/` separators.
    rel: String,
    /// The same path with the content hash before the extension; empty for `index.html`.
    hashed: String,
    bytes: Vec<u8>,
}

fn main() {
    println!("cargo:rerun-if-changed={DIST_DIR}");
    let root = Path::new(env("CARGO_MANIFEST_DIR")).join(DIST_DIR);
    let out = PathBuf::from(env("OUT_DIR"));

    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    files.sort();
    let mut assets: Vec<Asset> = files
        .into_iter()
        .map(|rel| {
            let bytes = read(&root.join(&rel));
            let hashed = if rel == "index.html" { String::new() } else { hashed_name(&rel, &bytes) };
            Asset { rel, hashed, bytes }
        })
        .collect();

    let mut import_map_sha = String::new();
    let snapshot: Vec<(String, String)> = assets.iter().map(|a| (a.rel.clone(), a.hashed.clone())).collect();
    if let Some(index) = assets.iter_mut().find(|a| a.rel == "index.html") {
        let (html, sha) = rewrite_index(&index.bytes, &snapshot);
        index.bytes = html;
        import_map_sha = sha;
    }

    let mut table = String::new();
    writeln!(table, "/// sha256 of the import map script in the embedded `index.html`, base64.").ok();
    writeln!(table, "pub const IMPORT_MAP_SHA256: &str = {import_map_sha:?};").ok();
    writeln!(table, "pub static ASSETS: &[Asset] = &[").ok();
    for (i, asset) in assets.iter().enumerate() {
        let raw = out.join(format!("admin-{i}.raw"));
        write_file(&raw, &asset.bytes);
        let gzip = compressed_path(&out, i, "gz", &asset.bytes, gzip(&asset.bytes));
        let br = compressed_path(&out, i, "br", &asset.bytes, brotli(&asset.bytes));
        let etag = hex(&Sha256::digest(&asset.bytes)[..12]);
        writeln!(
            table,
            "    Asset {{ path: {:?}, hashed: {:?}, etag: {:?}, raw: include_bytes!({:?}), gzip: {}, br: {} }},",
            asset.rel,
            asset.hashed,
            etag,
            raw.display().to_string(),
            include_opt(&gzip),
            include_opt(&br),
        )
        .ok();
    }
    writeln!(table, "];").ok();
    write_file(&out.join("admin_assets.rs"), table.as_bytes());
}

fn env(key: &str) -> &'static str {
    match std::env::var(key) {
        Ok(v) => Box::leak(v.into_boxed_str()),
        Err(_) => panic!("build.rs: {key} is not set"),
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(err) => panic!("build.rs: cannot read {}: {err}", dir.display()),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            walk(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            out.push(parts.join("/"));
        }
    }
}

fn read(path: &Path) -> Vec<u8> {
    match std::fs::read(path) {
        Ok(b) => b,
        Err(err) => panic!("build.rs: cannot read {}: {err}", path.display()),
    }
}

fn write_file(path: &Path, bytes: &[u8]) {
    if let Err(err) = std::fs::write(path, bytes) {
        panic!("build.rs: cannot write {}: {err}", path.display());
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        write!(s, "{b:02x}").ok();
        s
    })
}

/// `js/lib/dom.js` → `js/lib/dom.<hash>.js`
fn hashed_name(rel: &str, bytes: &[u8]) -> String {
    let hash = hex(&Sha256::digest(bytes));
    let hash = &hash[..NAME_HASH_HEX_CHARS];
    let (dir, file) = rel.rsplit_once('/').map_or(("", rel), |(d, f)| (d, f));
    let named = match file.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{hash}.{ext}"),
        None => format!("{file}.{hash}"),
    };
    if dir.is_empty() { named } else { format!("{dir}/{named}") }
}

/// The shipped `index.html` and the base64 sha256 of its import map script.
fn rewrite_index(html: &[u8], assets: &[(String, String)]) -> (Vec<u8>, String) {
    let mut html = String::from_utf8_lossy(html).into_owned();
    let mut map = String::from("{\"imports\":{");
    let mut first = true;
    for (rel, hashed) in assets.iter().filter(|(rel, hashed)| !hashed.is_empty() && rel.ends_with(".js")) {
        if !first {
            map.push(',');
        }
        first = false;
        write!(map, "\"{URL_PREFIX}{rel}\":\"{URL_PREFIX}{hashed}\"").ok();
    }
    map.push_str("}}");
    let sha = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(map.as_bytes()));
    if !html.contains(IMPORT_MAP_MARKER) {
        panic!("build.rs: admin-dist/index.html lacks the {IMPORT_MAP_MARKER} marker");
    }
    html = html.replacen(IMPORT_MAP_MARKER, &format!("<script type=\"importmap\">{map}</script>"), 1);
    // Stylesheets and the entry script are not resolved through the import map.
    for (rel, hashed) in assets.iter().filter(|(_, hashed)| !hashed.is_empty()) {
        for attr in ["href", "src"] {
            let plain = format!("{attr}=\"{URL_PREFIX}{rel}\"");
            html = html.replace(&plain, &format!("{attr}=\"{URL_PREFIX}{hashed}\""));
        }
    }
    (html.into_bytes(), sha)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    if let Err(err) = enc.write_all(bytes) {
        panic!("build.rs: gzip: {err}");
    }
    match enc.finish() {
        Ok(v) => v,
        Err(err) => panic!("build.rs: gzip: {err}"),
    }
}

fn brotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = brotli::CompressorWriter::new(&mut out, BROTLI_BUFFER_BYTES, BROTLI_QUALITY, BROTLI_WINDOW_LOG2);
        if let Err(err) = enc.write_all(bytes) {
            panic!("build.rs: brotli: {err}");
        }
    }
    out
}

/// Writes a compressed copy when it is smaller than the original.
fn compressed_path(out: &Path, i: usize, ext: &str, original: &[u8], packed: Vec<u8>) -> Option<PathBuf> {
    if packed.len() >= original.len() {
        return None;
    }
    let path = out.join(format!("admin-{i}.{ext}"));
    write_file(&path, &packed);
    Some(path)
}

fn include_opt(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!("Some(include_bytes!({:?}))", p.display().to_string()),
        None => "None".to_owned(),
    }
}
