//! Stored file names and storage keys: PocketBase's normalisation of an uploaded file's name
//! into `<snake_base>_<10 random [a-z0-9]><.ext>`, and the keys under which originals and
//! thumbnails live (`<collectionId>/<recordId>/<name>`, `…/thumbs_<name>/<size>_<name>`).
//!
//! Owns only the shape of names and keys. It must not read or write storage, and it must never
//! build a key from a segment that could climb out of its directory: every segment passes
//! [`safe_segment`] first, so no client-chosen text can name another record's file.

use crate::worker::auth::random::{random_string, RandomError, ID_ALPHABET};

/// Characters of the random part of a stored name.
pub const RANDOM_SUFFIX_CHARS: usize = 10;
/// Characters of the original name kept before normalising (PocketBase keeps the last 300).
const MAX_ORIGINAL_CHARS: usize = 300;
/// Longest extension kept, in characters, counting its dots.
const MAX_EXTENSION_CHARS: usize = 20;
/// A base name shorter than this gets a second random part.
const MIN_BASE_CHARS: usize = 3;
/// Longest base name kept, in characters.
const MAX_BASE_CHARS: usize = 100;
/// Longest segment accepted in a key (stored names are ≤ 150 characters, ids far shorter).
const MAX_SEGMENT_BYTES: usize = 255;

/// The extension of `name` with its leading dot: the last dot segment, or the last two when
/// there is a second dot (`a.tar.gz` → `.tar.gz`), as PocketBase extracts it.
fn extract_extension(name: &str) -> &str {
    let Some(primary) = name.rfind('.') else { return "" };
    match name.get(..primary).and_then(|head| head.rfind('.')) {
        Some(secondary) => name.get(secondary..).unwrap_or_default(),
        None => name.get(primary..).unwrap_or_default(),
    }
}

/// Snake case as PocketBase's inflector makes it: every run of characters that are not
/// letters or digits becomes one `_`, a lower→upper step inserts one, and all is lower-cased.
fn snake_case(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut prev_lower_or_digit = false;
    for ch in text.chars() {
        if ch.is_alphanumeric() {
            if ch.is_uppercase() && prev_lower_or_digit && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(ch.to_lowercase());
            prev_lower_or_digit = ch.is_lowercase() || ch.is_numeric();
        } else {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            prev_lower_or_digit = false;
        }
    }
    out.trim_matches('_').to_owned()
}

/// The stored name for an upload called `original`. `sniffed_ext` (with its dot) is used
/// when the original has no usable extension. The extension keeps its case (PocketBase
/// 0.40: `My Photo.PNG` → `my_photo_<rand>.PNG`).
pub fn stored_name(original: &str, sniffed_ext: &str) -> Result<String, RandomError> {
    let skip = original.chars().count().saturating_sub(MAX_ORIGINAL_CHARS);
    let original: String = original.chars().skip(skip).collect();
    // A client may send a path ("C:\\dir\\a.png", "../a.png"): only its last part is a name.
    let original = original.rsplit(['/', '\\']).next().unwrap_or_default();
    let raw_ext = extract_extension(original);
    let mut ext: String = raw_ext
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '*' | '-' | '+' | '=' | '#'))
        .collect();
    if ext.trim_matches('.').is_empty() {
        ext = sniffed_ext.to_owned();
    }
    let ext_chars = ext.chars().count();
    if ext_chars > MAX_EXTENSION_CHARS {
        ext = format!(".{}", ext.chars().skip(ext_chars - MAX_EXTENSION_CHARS).collect::<String>());
    }
    let stem = original.get(..original.len() - raw_ext.len()).unwrap_or_default();
    let mut base = snake_case(stem);
    let base_chars = base.chars().count();
    if base_chars < MIN_BASE_CHARS {
        base.push_str(&random_string(ID_ALPHABET, RANDOM_SUFFIX_CHARS)?);
    } else if base_chars > MAX_BASE_CHARS {
        base = base.chars().take(MAX_BASE_CHARS).collect();
    }
    Ok(format!("{base}_{}{ext}", random_string(ID_ALPHABET, RANDOM_SUFFIX_CHARS)?))
}

/// Whether `segment` can be one component of a storage key: non-empty, no separator, not a
/// dot-only name, no control characters.
pub fn safe_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment.len() <= MAX_SEGMENT_BYTES
        && !segment.contains(['/', '\\', '\0'])
        && !segment.chars().all(|c| c == '.')
        && !segment.chars().any(char::is_control)
}

/// The key of an original file, or `None` if any part is unsafe.
pub fn original_key(collection_id: &str, record_id: &str, name: &str) -> Option<String> {
    [collection_id, record_id, name].iter().all(|s| safe_segment(s)).then(|| format!("{collection_id}/{record_id}/{name}"))
}

/// The key prefix (a "directory") holding every file of one record.
pub fn record_prefix(collection_id: &str, record_id: &str) -> Option<String> {
    [collection_id, record_id].iter().all(|s| safe_segment(s)).then(|| format!("{collection_id}/{record_id}"))
}

/// The prefix holding the thumbnails of one original.
pub fn thumbs_prefix(collection_id: &str, record_id: &str, name: &str) -> Option<String> {
    original_key(collection_id, record_id, name).map(|_| format!("{collection_id}/{record_id}/thumbs_{name}"))
}

/// The key of one thumbnail of an original (`size` as asked, e.g. `100x100t`).
pub fn thumb_key(collection_id: &str, record_id: &str, name: &str, size: &str) -> Option<String> {
    if !safe_segment(size) {
        return None;
    }
    thumbs_prefix(collection_id, record_id, name).map(|p| format!("{p}/{size}_{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(stored: &str) -> (String, String, String) {
        // base _ random10 ext
        let dot = stored.find('.').unwrap_or(stored.len());
        let (head, ext) = stored.split_at(dot);
        let (base, random) = head.split_at(head.len() - RANDOM_SUFFIX_CHARS);
        (base.trim_end_matches('_').to_owned(), random.to_owned(), ext.to_owned())
    }

    #[test]
    fn names_follow_pocketbase() {
        let s = stored_name("My Photo.PNG", ".png").expect("name");
        let (base, random, ext) = split(&s);
        assert_eq!((base.as_str(), ext.as_str()), ("my_photo", ".PNG"), "{s}");
        assert!(random.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()), "{s}");

        let s = stored_name("archive.tar.gz", "").expect("name");
        assert!(s.starts_with("archive_") && s.ends_with(".tar.gz"), "{s}");
        let s = stored_name("helloWorld-2.txt", "").expect("name");
        assert!(s.starts_with("hello_world_2_") && s.ends_with(".txt"), "{s}");
        let s = stored_name("noext", ".jpg").expect("name");
        assert!(s.starts_with("noext_") && s.ends_with(".jpg"), "{s}");
        let s = stored_name("a.bin", "").expect("name");
        assert_eq!(s.len(), 1 + 10 + 1 + 10 + 4, "short base gets a second random part: {s}");
        let s = stored_name(&"x".repeat(500), "").expect("name");
        assert_eq!(s.len(), 100 + 1 + 10, "{s}");
        let s = stored_name("photo.<script>", ".png").expect("name");
        assert!(s.ends_with(".script"), "{s}");
    }

    #[test]
    fn traversal_never_survives() {
        for evil in ["../../etc/passwd", "..\\..\\boot.ini", "/abs/path.png", "..", ".", "a/../../b.png", "\0.png"] {
            let s = stored_name(evil, ".bin").expect("name");
            assert!(safe_segment(&s), "{evil:?} → {s:?}");
            assert!(!s.contains('/') && !s.contains('\\') && !s.starts_with('.'), "{evil:?} → {s:?}");
        }
        assert!(original_key("c", "r", "..").is_none());
        assert!(original_key("c", "../r", "a.png").is_none());
        assert!(original_key("c", "r", "a/b.png").is_none());
        assert!(thumb_key("c", "r", "a.png", "../x").is_none());
        assert_eq!(thumb_key("c", "r", "a.png", "100x100").as_deref(), Some("c/r/thumbs_a.png/100x100_a.png"));
    }
}
