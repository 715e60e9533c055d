//! Go 1.22 `ServeMux` path patterns, as `routerAdd` takes them: `/a/{id}`, `/files/{path...}`,
//! `/exact/{$}`, and a trailing `/` meaning "this and everything beneath". Matching, path values,
//! Go's "most specific wins" (approximated segment by segment), and the overlap test that keeps
//! a custom route from claiming a path vaultbase itself serves.
//!
//! Pure string work: no HTTP types, no JS.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    Wild(String),
    /// `{name...}`, or the implicit rest of a trailing-slash prefix (empty name). Last only.
    Rest(String),
}

/// A parsed path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// As written, for messages and duplicate detection.
    pub text: String,
    segs: Vec<Seg>,
}

impl Pattern {
    /// Parses a pattern; the error says what is wrong in PocketBase-ish words.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let path = text.trim();
        if !path.starts_with('/') {
            return Err(format!("invalid route path {text:?}: it must start with \"/\""));
        }
        let parts: Vec<&str> = path[1..].split('/').collect();
        let mut segs = Vec::with_capacity(parts.len());
        let last = parts.len() - 1;
        for (i, part) in parts.iter().enumerate() {
            if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                if inner == "$" {
                    if i != last {
                        return Err(format!("invalid route path {text:?}: {{$}} must be the last segment"));
                    }
                    // `/a/{$}` matches exactly "/a/": the empty segment after the slash.
                    segs.push(Seg::Lit(String::new()));
                } else if let Some(name) = inner.strip_suffix("...") {
                    if i != last {
                        return Err(format!("invalid route path {text:?}: {{{name}...}} must be the last segment"));
                    }
                    segs.push(Seg::Rest(valid_name(text, name)?));
                } else {
                    segs.push(Seg::Wild(valid_name(text, inner)?));
                }
            } else if part.contains('{') || part.contains('}') {
                return Err(format!("invalid route path {text:?}: a wildcard must be a whole segment"));
            } else if part.is_empty() && i == last {
                // Trailing slash: a prefix pattern.
                segs.push(Seg::Rest(String::new()));
            } else {
                segs.push(Seg::Lit(percent_decode(part)));
            }
        }
        Ok(Pattern { text: path.to_owned(), segs })
    }

    /// The path values if `path` (the raw request path) matches.
    pub fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let raw = path.strip_prefix('/')?;
        let parts: Vec<&str> = raw.split('/').collect();
        let mut values = Vec::new();
        for (i, seg) in self.segs.iter().enumerate() {
            match seg {
                Seg::Rest(name) => {
                    if parts.len() < i + 1 {
                        return None;
                    }
                    if !name.is_empty() {
                        let rest: Vec<String> = parts[i..].iter().map(|p| percent_decode(p)).collect();
                        values.push((name.clone(), rest.join("/")));
                    }
                    return Some(values);
                }
                Seg::Lit(lit) => {
                    if parts.get(i).map(|p| percent_decode(p)) != Some(lit.clone()) {
                        return None;
                    }
                }
                Seg::Wild(name) => match parts.get(i) {
                    Some(p) if !p.is_empty() => values.push((name.clone(), percent_decode(p))),
                    _ => return None,
                },
            }
        }
        (parts.len() == self.segs.len()).then_some(values)
    }

    /// Go's precedence, approximated: compared segment by segment, a literal beats a wildcard
    /// beats a rest; a longer pattern beats its own prefix.
    pub fn specificity_cmp(&self, other: &Pattern) -> Ordering {
        let rank = |s: &Seg| match s {
            Seg::Lit(_) => 3,
            Seg::Wild(_) => 2,
            Seg::Rest(_) => 1,
        };
        for (a, b) in self.segs.iter().zip(other.segs.iter()) {
            match rank(a).cmp(&rank(b)) {
                Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        self.segs.len().cmp(&other.segs.len())
    }

    /// Whether some path matches both patterns.
    pub fn overlaps(&self, other: &Pattern) -> bool {
        let (a, b) = (&self.segs, &other.segs);
        let mut i = 0;
        loop {
            match (a.get(i), b.get(i)) {
                (None, None) => return true,
                (Some(Seg::Rest(_)), _) | (_, Some(Seg::Rest(_))) => return true,
                (None, Some(_)) | (Some(_), None) => return false,
                (Some(Seg::Lit(x)), Some(Seg::Lit(y))) if x != y => return false,
                (Some(Seg::Lit(x)), Some(Seg::Wild(_))) | (Some(Seg::Wild(_)), Some(Seg::Lit(x))) if x.is_empty() => return false,
                _ => {}
            }
            i += 1;
        }
    }

    /// A pattern whose first segment is not a literal (`/`, `/{path...}`, `/{x}`): a
    /// catch-all that can only ever see what no system route answered.
    pub fn is_root_catch_all(&self) -> bool {
        !matches!(self.segs.first(), Some(Seg::Lit(l)) if !l.is_empty())
    }
}

fn valid_name(text: &str, name: &str) -> Result<String, String> {
    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err(format!("invalid route path {text:?}: bad wildcard name {name:?}"));
    }
    Ok(name.to_owned())
}

/// `%XX` decoding of one path segment; malformed escapes are kept as written.
pub fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).expect("valid pattern")
    }

    fn vals(pat: &str, path: &str) -> Option<Vec<(String, String)>> {
        p(pat).matches(path)
    }

    #[test]
    fn go_servemux_shapes() {
        assert_eq!(vals("/hello/{name}", "/hello/bob"), Some(vec![("name".into(), "bob".into())]));
        assert_eq!(vals("/hello/{name}", "/hello/"), None, "a wildcard needs a non-empty segment");
        assert_eq!(vals("/hello/{name}", "/hello/a/b"), None);
        assert_eq!(vals("/hello/{name}", "/hello/a%20b"), Some(vec![("name".into(), "a b".into())]));
        assert_eq!(vals("/f/{p...}", "/f/a/b/c"), Some(vec![("p".into(), "a/b/c".into())]));
        assert_eq!(vals("/f/{p...}", "/f/"), Some(vec![("p".into(), "".into())]));
        assert_eq!(vals("/f/{p...}", "/f"), None);
        assert!(vals("/pre/", "/pre/").is_some());
        assert!(vals("/pre/", "/pre/x/y").is_some());
        assert!(vals("/pre/", "/pre").is_none());
        assert!(vals("/x/{$}", "/x/").is_some());
        assert!(vals("/x/{$}", "/x/y").is_none());
        assert!(vals("/", "/anything/at/all").is_some());
        assert!(vals("/{$}", "/").is_some());
        assert!(vals("/{$}", "/a").is_none());
        assert!(vals("/exact", "/exact/").is_none());
        assert!(Pattern::parse("no-slash").is_err());
        assert!(Pattern::parse("/{a...}/b").is_err());
        assert!(Pattern::parse("/a{b}").is_err());
    }

    #[test]
    fn literals_beat_wildcards_beat_rests() {
        assert_eq!(p("/a/b").specificity_cmp(&p("/a/{x}")), Ordering::Greater);
        assert_eq!(p("/a/{x}").specificity_cmp(&p("/a/")), Ordering::Greater);
        assert_eq!(p("/a/{x}/c").specificity_cmp(&p("/a/{x}")), Ordering::Greater);
    }

    #[test]
    fn overlap_is_what_a_collision_check_needs() {
        assert!(p("/api/collections/{c}/records").overlaps(&p("/api/collections/{x}/{y}")));
        assert!(p("/api/health").overlaps(&p("/api/")));
        assert!(!p("/api/health").overlaps(&p("/api/hello")));
        assert!(!p("/api/collections/{c}").overlaps(&p("/api/collections/{$}")));
        assert!(p("/api/collections").overlaps(&p("/api/collections")));
        assert!(p("/{path...}").is_root_catch_all());
        assert!(!p("/api/x").is_root_catch_all());
    }
}
