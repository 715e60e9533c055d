//! The `:excerpt(max, withEllipsis?)` modifier: plain text from an HTML string, cut to `max`
//! characters (PocketBase's `tools/picker/excerpt_modifier.go`).
//!
//! The text is what PocketBase's HTML walk produces: the content of `script`, `style`, `img`,
//! `svg`, form controls and the other excluded elements is dropped; every element that is not
//! inline (`a`, `b`, `span`, `br`, … stay inline) becomes a single space around its content;
//! whitespace runs (`[\t\n\f\r ]+`) collapse to one space; the result is trimmed. Then, when it
//! is longer than `max`, it is cut, trimmed again and `...` is added if asked.
//!
//! A small hand-written scanner stands in for a full HTML5 parser: tags, comments, raw-text
//! elements (`script`, `style`, `textarea`, `title`, …), character references and an element
//! stack (so a stray end tag adds no space, as the parser would ignore it). Odd markup may space
//! differently from PocketBase; the words are the same. PocketBase counts `max` in bytes and can
//! split a multi-byte character (which its JSON encoder then turns into U+FFFD); this cuts at
//! characters, which is the same for ASCII text and never produces a broken character.
//!
//! Pure: no I/O, never panics on any input.

use super::FieldsError;

/// Appended to a cut excerpt when `withEllipsis` is on.
const ELLIPSIS: &str = "...";

/// Elements whose whole content is left out.
const EXCLUDED: &[&str] = &[
    "head", "style", "script", "iframe", "embed", "applet", "object", "svg", "img", "picture", "dialog", "template", "button", "form",
    "textarea", "input", "select", "option",
];

/// Elements that do not become a space (everything else is a block).
const INLINE: &[&str] = &[
    "a", "abbr", "acronym", "b", "bdo", "big", "br", "button", "cite", "code", "em", "i", "label", "q", "small", "span", "strong",
    "strike", "sub", "sup", "time",
];

/// Elements without content or end tag.
const VOID: &[&str] = &["area", "base", "br", "col", "embed", "hr", "img", "input", "keygen", "link", "meta", "param", "source", "track", "wbr"];

/// Elements whose content is text up to their end tag, never markup.
const RAW_TEXT: &[&str] = &["script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes", "noscript"];

/// The parsed modifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Excerpt {
    /// Longest excerpt, in characters (before the ellipsis).
    pub max_chars: usize,
    pub with_ellipsis: bool,
}

impl Excerpt {
    /// From the modifier's arguments: `max` (an integer > 0) and an optional boolean.
    pub fn from_args(args: &[String]) -> Result<Excerpt, FieldsError> {
        let (max, ellipsis) = match args {
            [] => return Err(FieldsError::Excerpt("max argument is required - expected (max, withEllipsis?)")),
            [max] => (max, None),
            [max, ellipsis] => (max, Some(ellipsis)),
            _ => return Err(FieldsError::Excerpt("too many arguments - expected (max, withEllipsis?)")),
        };
        let max_chars = parse_max(max).ok_or(FieldsError::Excerpt("max argument must be > 0"))?;
        // Go's strconv.ParseBool, where anything else is false (spf13/cast).
        let with_ellipsis = ellipsis.is_some_and(|e| matches!(e.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True"));
        Ok(Excerpt { max_chars, with_ellipsis })
    }

    /// The excerpt of `html`.
    pub fn apply(&self, html: &str) -> String {
        let text = plain_text(html);
        let text = text.trim();
        match text.char_indices().nth(self.max_chars) {
            None => text.to_owned(),
            Some((cut, _)) => {
                let mut out = text.get(..cut).unwrap_or(text).trim().to_owned();
                if self.with_ellipsis {
                    out.push_str(ELLIPSIS);
                }
                out
            }
        }
    }
}

/// An integer as spf13/cast reads one (`"5"`, `"5.0"`); zero, negatives and anything else are
/// refused (PocketBase refuses 0 and would fail on a negative at output time).
fn parse_max(s: &str) -> Option<usize> {
    let s = s.trim();
    let digits = match s.split_once('.') {
        Some((int, frac)) if !frac.is_empty() && frac.bytes().all(|b| b == b'0') => int,
        Some(_) => return None,
        None => s,
    };
    let digits = digits.strip_prefix('+').unwrap_or(digits);
    match digits.parse::<usize>() {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
    }
}

/// Accumulates text the way PocketBase's walk does.
struct Text {
    out: String,
    /// The output ends in a space (or nothing was written: leading spaces are trimmed anyway).
    prev_space: bool,
}

impl Text {
    fn push_text(&mut self, raw: &str) {
        let decoded = decode_references(raw);
        let mut collapsed = String::with_capacity(decoded.len());
        let mut in_space = false;
        for c in decoded.chars() {
            // Go's `\s`: only these five.
            if matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ') {
                if !in_space {
                    collapsed.push(' ');
                }
                in_space = true;
            } else {
                collapsed.push(c);
                in_space = false;
            }
        }
        let txt = if self.prev_space { collapsed.trim_start_matches(' ') } else { collapsed.as_str() };
        if !txt.is_empty() {
            self.prev_space = txt.ends_with(' ');
            self.out.push_str(txt);
        }
    }

    fn block(&mut self) {
        if !self.prev_space {
            self.out.push(' ');
            self.prev_space = true;
        }
    }
}

fn is_block(name: &str) -> bool {
    !INLINE.contains(&name)
}

/// The text of an HTML fragment, before trimming and cutting.
fn plain_text(html: &str) -> String {
    let mut text = Text { out: String::with_capacity(html.len().min(4096)), prev_space: true };
    // Open elements (lower-cased names), so end tags close what the parser would close.
    let mut stack: Vec<String> = Vec::new();
    // Inside an excluded element: its name and how many of that name are open.
    let mut skip: Option<(String, usize)> = None;
    let mut pos = 0;
    let mut text_start = 0;
    while let Some(rel) = html.get(pos..).and_then(|rest| rest.find('<')) {
        let lt = pos + rel;
        let after = html.get(lt + 1..).unwrap_or("");
        let flush = |text: &mut Text, skip: &Option<(String, usize)>| {
            if skip.is_none() {
                text.push_text(html.get(text_start..lt).unwrap_or(""));
            }
        };
        if let Some(body) = after.strip_prefix("!--") {
            flush(&mut text, &skip);
            pos = match body.find("-->") {
                Some(end) => lt + 4 + end + 3,
                None => html.len(),
            };
            text_start = pos;
            continue;
        }
        if after.starts_with('!') || after.starts_with('?') {
            flush(&mut text, &skip);
            pos = after.find('>').map_or(html.len(), |end| lt + 1 + end + 1);
            text_start = pos;
            continue;
        }
        let (closing, name_part) = match after.strip_prefix('/') {
            Some(rest) => (true, rest),
            None => (false, after),
        };
        if !name_part.starts_with(|c: char| c.is_ascii_alphabetic()) {
            // A `<` that opens no tag is text.
            pos = lt + 1;
            continue;
        }
        flush(&mut text, &skip);
        let name_len = name_part.find(|c: char| c.is_whitespace() || c == '/' || c == '>').unwrap_or(name_part.len());
        let name = name_part.get(..name_len).unwrap_or("").to_ascii_lowercase();
        let tag_start = lt + 1 + usize::from(closing) + name_len;
        let (tag_end, self_closing) = tag_close(html, tag_start);
        pos = tag_end;
        text_start = pos;

        if let Some((skipped, depth)) = skip.as_mut() {
            if *skipped == name && !self_closing {
                if closing {
                    *depth -= 1;
                } else if !VOID.contains(&name.as_str()) {
                    *depth += 1;
                }
            }
            if *depth == 0 {
                skip = None;
                if let Some(i) = stack.iter().rposition(|n| *n == name) {
                    stack.truncate(i);
                }
            }
            continue;
        }
        if closing {
            if let Some(i) = stack.iter().rposition(|n| *n == name) {
                if stack.get(i..).is_some_and(|closed| closed.iter().any(|n| is_block(n))) {
                    text.block();
                }
                stack.truncate(i);
            }
            continue;
        }
        let excluded = EXCLUDED.contains(&name.as_str());
        if RAW_TEXT.contains(&name.as_str()) && !self_closing {
            // Content up to `</name` is text (or dropped), never tags.
            let content_end = find_end_tag(html, pos, &name).unwrap_or(html.len());
            if !excluded {
                text.block();
                text.push_text(html.get(pos..content_end).unwrap_or(""));
                text.block();
            }
            pos = if content_end < html.len() { tag_close(html, content_end + 2 + name.len()).0 } else { html.len() };
            text_start = pos;
            continue;
        }
        if excluded {
            if !self_closing && !VOID.contains(&name.as_str()) {
                stack.push(name.clone());
                skip = Some((name, 1));
            }
            continue;
        }
        if is_block(&name) {
            text.block();
        }
        if !self_closing && !VOID.contains(&name.as_str()) {
            stack.push(name);
        } else if is_block(&name) {
            text.block();
        }
    }
    if skip.is_none() {
        text.push_text(html.get(text_start..).unwrap_or(""));
    }
    text.out
}

/// From inside a tag (after its name), the index just past its `>` (quotes in attribute
/// values respected), and whether it ends with `/>`.
fn tag_close(html: &str, from: usize) -> (usize, bool) {
    let bytes = html.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = from;
    while let Some(&b) = bytes.get(i) {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(b),
            (None, b'>') => return (i + 1, i > from && bytes.get(i - 1) == Some(&b'/')),
            _ => {}
        }
        i += 1;
    }
    (html.len(), false)
}

/// Where `</name` (any case) starts at or after `from`.
fn find_end_tag(html: &str, from: usize, name: &str) -> Option<usize> {
    let bytes = html.as_bytes();
    let mut i = from;
    while let Some(rel) = html.get(i..).and_then(|rest| rest.find("</")) {
        let at = i + rel;
        let candidate = bytes.get(at + 2..at + 2 + name.len());
        let boundary = bytes.get(at + 2 + name.len()).is_none_or(|b| b.is_ascii_whitespace() || *b == b'>' || *b == b'/');
        if candidate.is_some_and(|c| c.eq_ignore_ascii_case(name.as_bytes())) && boundary {
            return Some(at);
        }
        i = at + 2;
    }
    None
}

/// Decodes character references: `&#65;`, `&#x41;`, and the common named ones. Unknown names
/// stay as written (as the HTML parser leaves them).
fn decode_references(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('&') {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or(""));
        let tail = rest.get(amp + 1..).unwrap_or("");
        match reference(tail) {
            Some((c, used)) => {
                out.push(c);
                rest = tail.get(used..).unwrap_or("");
            }
            None => {
                out.push('&');
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// The character a reference (text after `&`) stands for, and the bytes it used.
fn reference(tail: &str) -> Option<(char, usize)> {
    if let Some(num) = tail.strip_prefix('#') {
        let (hex, digits_from) = match num.strip_prefix(['x', 'X']) {
            Some(_) => (true, 2),
            None => (false, 1),
        };
        let body = tail.get(digits_from..)?;
        let len = body.find(|c: char| if hex { !c.is_ascii_hexdigit() } else { !c.is_ascii_digit() }).unwrap_or(body.len());
        if len == 0 {
            return None;
        }
        let digits = body.get(..len)?;
        let code = u32::from_str_radix(digits, if hex { 16 } else { 10 }).unwrap_or(u32::MAX);
        let c = match code {
            0 => '\u{FFFD}',
            _ => char::from_u32(code).unwrap_or('\u{FFFD}'),
        };
        let semicolon = usize::from(body.get(len..).is_some_and(|r| r.starts_with(';')));
        return Some((c, digits_from + len + semicolon));
    }
    let len = tail.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(tail.len());
    if !tail.get(len..).is_some_and(|r| r.starts_with(';')) {
        return None;
    }
    let c = match tail.get(..len)? {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "hellip" => '…',
        "mdash" => '—',
        "ndash" => '–',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "laquo" => '«',
        "raquo" => '»',
        "euro" => '€',
        "middot" => '·',
        "bull" => '•',
        _ => return None,
    };
    Some((c, len + 1))
}
