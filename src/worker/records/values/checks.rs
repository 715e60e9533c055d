//! Format checks for email and URL values: what passes as an address or a link before the
//! domain lists apply. Hand-written scanners rather than regexes, so they run in linear time
//! on any input and need no compiled state.

/// Longest email address accepted, in bytes (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;
/// Longest local part (before `@`), in bytes.
const MAX_EMAIL_LOCAL_BYTES: usize = 64;
/// Longest DNS label, in bytes.
const MAX_LABEL_BYTES: usize = 63;
/// Longest URL accepted, in bytes (the limit PocketBase's URL validator inherits).
pub const MAX_URL_BYTES: usize = 2083;

/// The characters of an email local part (the HTML5 / PocketBase email pattern's set).
fn is_local_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b)
}

/// One DNS label: letters, digits and inner hyphens.
fn is_label(label: &str) -> bool {
    let b = label.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_LABEL_BYTES
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b.first() != Some(&b'-')
        && b.last() != Some(&b'-')
}

/// A domain name: dot-separated labels.
pub fn is_domain(domain: &str) -> bool {
    !domain.is_empty() && domain.len() <= 253 && domain.split('.').all(is_label)
}

/// PocketBase's email format: `local@domain`, ASCII, the local part from the allowed set, the
/// domain made of DNS labels.
pub fn is_email(value: &str) -> bool {
    if value.len() > MAX_EMAIL_BYTES {
        return false;
    }
    let Some((local, domain)) = value.rsplit_once('@') else {
        return false;
    };
    !local.is_empty() && local.len() <= MAX_EMAIL_LOCAL_BYTES && local.bytes().all(is_local_char) && is_domain(domain)
}

/// The domain of an email address: what follows the last `@`.
pub fn email_domain(value: &str) -> &str {
    value.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}

/// Checks an absolute URL and returns its host as Go's `url.URL.Host` has it (host plus any
/// port, without user info), which is what PocketBase's domain lists compare against.
/// `None` unless there is a scheme, `://`, and a valid host (domain, IPv4 or bracketed IPv6).
pub fn url_host(value: &str) -> Option<&str> {
    if value.len() > MAX_URL_BYTES || value.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
        return None;
    }
    let (scheme, rest) = value.split_once("://")?;
    let mut sb = scheme.bytes();
    if !sb.next().is_some_and(|b| b.is_ascii_alphabetic()) || !sb.all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b)) {
        return None;
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest.get(..authority_end)?;
    let host_port = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    let host = if let Some(inner) = host_port.strip_prefix('[') {
        let (ip, after) = inner.split_once(']')?;
        ip.parse::<std::net::Ipv6Addr>().ok()?;
        check_port(after)?;
        host_port
    } else {
        let (name, port) = match host_port.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host_port, None),
        };
        if let Some(port) = port {
            check_port(&format!(":{port}"))?;
        }
        let ok = name.parse::<std::net::Ipv4Addr>().is_ok() || is_domain(name.strip_suffix('.').unwrap_or(name));
        if !ok {
            return None;
        }
        host_port
    };
    Some(host)
}

/// An empty suffix or `:` followed by 1–5 digits.
fn check_port(after_host: &str) -> Option<()> {
    if after_host.is_empty() {
        return Some(());
    }
    let digits = after_host.strip_prefix(':')?;
    (!digits.is_empty() && digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in ["a@b.c", "first.last+tag@example.co.uk", "x@localhost", "o'hara@example.com", "a@1.2.3.4"] {
            assert!(is_email(ok), "{ok}");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        for bad in ["", "a", "@b.c", "a@", "a b@c.d", "a@b..c", "a@-b.c", "a@b-.c", "ünï@example.com", "a@exa_mple.com", "a@b.c ", long_local.as_str()] {
            assert!(!is_email(bad), "{bad}");
        }
        assert_eq!(email_domain("a@b@example.com"), "example.com");
    }

    #[test]
    fn urls() {
        let cases = [
            ("https://example.com", Some("example.com")),
            ("http://example.com:8080/path?q=1#f", Some("example.com:8080")),
            ("https://user:pw@example.com/x", Some("example.com")),
            ("ftp://10.0.0.1/file", Some("10.0.0.1")),
            ("http://[::1]:80/", Some("[::1]:80")),
            ("https://localhost", Some("localhost")),
            ("example.com", None),
            ("https://", None),
            ("https:///path", None),
            ("https://exa mple.com", None),
            ("javascript:alert(1)", None),
            ("1http://example.com", None),
            ("http://example.com:99999999", None),
            ("http://[nope]/", None),
            ("http://-bad-.com", None),
        ];
        for (input, want) in cases {
            assert_eq!(url_host(input), want, "{input}");
        }
        assert_eq!(url_host(&format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES))), None);
    }
}
