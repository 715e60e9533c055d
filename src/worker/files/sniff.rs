//! Content sniffing: the MIME type of a file from its first bytes, the extension a type
//! implies, and the type a download is served with.
//!
//! Owns only byte-signature and extension tables. It must never trust a client's claimed
//! `Content-Type`: `mimeTypes` limits are checked against what the bytes are.

/// Bytes of a file's head that [`sniff`] looks at.
pub const SNIFF_BYTES: usize = 512;

/// The MIME type of content starting with `head` (at most [`SNIFF_BYTES`] matter).
pub fn sniff(head: &[u8]) -> &'static str {
    let starts = |sig: &[u8]| head.starts_with(sig);
    let at = |offset: usize, sig: &[u8]| head.get(offset..offset + sig.len()) == Some(sig);
    if starts(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if starts(b"\xff\xd8\xff") {
        "image/jpeg"
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        "image/gif"
    } else if starts(b"RIFF") && at(8, b"WEBP") {
        "image/webp"
    } else if starts(b"RIFF") && at(8, b"WAVE") {
        "audio/wav"
    } else if starts(b"RIFF") && at(8, b"AVI ") {
        "video/x-msvideo"
    } else if starts(b"BM") && head.len() > 14 {
        "image/bmp"
    } else if starts(b"\x00\x00\x01\x00") {
        "image/x-icon"
    } else if starts(b"%PDF-") {
        "application/pdf"
    } else if at(4, b"ftyp") {
        match head.get(8..12) {
            Some(b"qt  ") => "video/quicktime",
            Some(b"avif") | Some(b"avis") => "image/avif",
            Some(b"heic") | Some(b"heix") => "image/heic",
            Some(b"M4A ") => "audio/mp4",
            _ => "video/mp4",
        }
    } else if starts(b"\x1a\x45\xdf\xa3") {
        if head.windows(4).any(|w| w == b"webm") {
            "video/webm"
        } else {
            "video/x-matroska"
        }
    } else if starts(b"ID3") || starts(b"\xff\xfb") || starts(b"\xff\xf3") {
        "audio/mpeg"
    } else if starts(b"OggS") {
        "audio/ogg"
    } else if starts(b"fLaC") {
        "audio/flac"
    } else if starts(b"PK\x03\x04") {
        "application/zip"
    } else if starts(b"\x1f\x8b") {
        "application/gzip"
    } else if starts(b"7z\xbc\xaf\x27\x1c") {
        "application/x-7z-compressed"
    } else if looks_like_text(head) {
        text_type(head)
    } else {
        "application/octet-stream"
    }
}

/// No NUL and no other binary control bytes, and valid UTF-8 except perhaps a character cut
/// at the end of the sniffed window.
fn looks_like_text(head: &[u8]) -> bool {
    if head.iter().any(|&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0c | 0x1b)) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    }
}

fn text_type(head: &[u8]) -> &'static str {
    let text = String::from_utf8_lossy(head);
    let t = text.trim_start_matches('\u{feff}').trim_start().to_ascii_lowercase();
    if t.starts_with("<svg") || (t.starts_with("<?xml") && t.contains("<svg")) {
        "image/svg+xml"
    } else if t.starts_with("<!doctype html") || t.starts_with("<html") {
        "text/html"
    } else if t.starts_with("<?xml") {
        "text/xml"
    } else if (t.starts_with('{') || t.starts_with('[')) && serde_json::from_slice::<serde_json::Value>(head).is_ok() {
        "application/json"
    } else {
        "text/plain"
    }
}

/// The extension (with its dot) a sniffed type is stored with when the upload had none.
pub fn extension_for(mime: &str) -> &'static str {
    match mime {
        "image/png" => ".png",
        "image/jpeg" => ".jpg",
        "image/gif" => ".gif",
        "image/webp" => ".webp",
        "image/bmp" => ".bmp",
        "image/x-icon" => ".ico",
        "image/svg+xml" => ".svg",
        "image/avif" => ".avif",
        "image/heic" => ".heic",
        "application/pdf" => ".pdf",
        "video/mp4" => ".mp4",
        "video/quicktime" => ".mov",
        "video/webm" => ".webm",
        "video/x-matroska" => ".mkv",
        "video/x-msvideo" => ".avi",
        "audio/mpeg" => ".mp3",
        "audio/ogg" => ".ogg",
        "audio/wav" => ".wav",
        "audio/flac" => ".flac",
        "audio/mp4" => ".m4a",
        "application/zip" => ".zip",
        "application/gzip" => ".gz",
        "application/x-7z-compressed" => ".7z",
        "application/json" => ".json",
        "text/html" => ".html",
        "text/xml" => ".xml",
        "text/plain" => ".txt",
        _ => "",
    }
}

/// Whether a sniffed type satisfies a field's `mimeTypes` entry (compared without
/// parameters, case-insensitively; `image/jpg` is an alias of `image/jpeg`).
pub fn mime_matches(sniffed: &str, allowed: &str) -> bool {
    let norm = |m: &str| {
        let base = m.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if base == "image/jpg" {
            "image/jpeg".to_owned()
        } else {
            base
        }
    };
    norm(sniffed) == norm(allowed)
}

/// The `Content-Type` a stored file is served with: fixed types for extensions whose content
/// sniffing cannot tell apart (as PocketBase does for svg, css, js), else the sniffed type,
/// with a charset for text.
pub fn served_type(name: &str, sniffed: &str) -> String {
    let ext = name.rsplit('.').next().unwrap_or_default().to_ascii_lowercase();
    let fixed = match ext.as_str() {
        "svg" => Some("image/svg+xml"),
        "css" => Some("text/css"),
        "js" | "mjs" => Some("text/javascript"),
        "docx" => Some("application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        "xlsx" => Some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        "pptx" => Some("application/vnd.openxmlformats-officedocument.presentationml.presentation"),
        _ => None,
    };
    let mime = fixed.unwrap_or(sniffed);
    if mime.starts_with("text/") || mime == "application/json" {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_owned()
    }
}

/// Whether a type is shown inline by default (PocketBase: images, video, audio, pdf).
pub fn is_inline(mime: &str) -> bool {
    mime.starts_with("image/") || mime.starts_with("video/") || mime.starts_with("audio/") || mime.starts_with("application/pdf")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
        assert_eq!(sniff(b"\xff\xd8\xff\xe0\0\x10JFIF"), "image/jpeg");
        assert_eq!(sniff(b"GIF89a\x01\0"), "image/gif");
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), "image/webp");
        assert_eq!(sniff(b"%PDF-1.7\n"), "application/pdf");
        assert_eq!(sniff(b"\0\0\0\x18ftypmp42"), "video/mp4");
        assert_eq!(sniff(b"hello world\n"), "text/plain");
        assert_eq!(sniff(b"<svg xmlns='http://www.w3.org/2000/svg'/>"), "image/svg+xml");
        assert_eq!(sniff(b"{\"a\":1}"), "application/json");
        assert_eq!(sniff(b"\0\x01\x02binary"), "application/octet-stream");
        assert_eq!(sniff(b""), "text/plain");
        // A multibyte character cut by the sniff window is still text.
        assert_eq!(sniff("ab\u{e9}".as_bytes().get(..3).unwrap_or_default()), "text/plain");
    }

    #[test]
    fn a_claimed_type_never_matters() {
        // A PNG signature is an image whatever the name says; text is never an image.
        assert!(mime_matches(sniff(b"\x89PNG\r\n\x1a\n"), "image/png"));
        assert!(!mime_matches(sniff(b"GIF89a"), "image/png"));
        assert!(mime_matches("image/jpeg", "image/jpg"));
        assert!(mime_matches("text/plain", "text/plain; charset=utf-8"));
    }

    #[test]
    fn served_types() {
        assert_eq!(served_type("a.txt", "text/plain"), "text/plain; charset=utf-8");
        assert_eq!(served_type("a.svg", "text/plain"), "image/svg+xml");
        assert_eq!(served_type("a.png", "image/png"), "image/png");
        assert!(is_inline("image/png") && is_inline("application/pdf") && !is_inline("text/plain"));
    }
}
