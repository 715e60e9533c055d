//! PocketBase's request rate limits (`settings.rateLimits`): which rule a request falls under
//! and whether its client still has room in that rule's window.
//!
//! The rule is found as PocketBase 0.40 finds it: the request's labels are tried in order
//! (for collection routes `name:tag…`, then `*:tag…`; then `METHOD /path` and `/path`), each
//! against every rule's exact label first and then against the path-prefix rules (labels
//! ending in `/`), keeping only rules whose audience fits the caller (`""` always, `@guest`
//! without auth, `@auth` with it). Superusers and `excludedIPs` are never limited.
//!
//! Counting lives in the cluster-wide [`RateTable`]: the bucket is keyed by the settings
//! version (saving settings starts every counter afresh, as PocketBase does), the counter's
//! identity (the rule, or for collection routes the collection, route and tags, so `*:create`
//! counts per collection) and the client key (the client IP, an IPv6 client by its /64, as the
//! account limits key it). This module must not touch SQLite or the HTTP types.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::shared::db::rate_table::{self, BucketKey, Hit, RateTable};
use crate::worker::settings::{Loaded, RateLimitRule, RateLimits};

/// A worker's handle on the shared counters, with the settings it last read and the settings
/// epoch it read them at: a request reads the database for settings only after some worker
/// saved them, so a disabled limiter costs one atomic load per request.
pub struct RateLimiter {
    table: RateTable,
    seen: Mutex<Option<(u64, Arc<Loaded>)>>,
}

impl RateLimiter {
    pub fn new(table: RateTable) -> RateLimiter {
        RateLimiter { table, seen: Mutex::new(None) }
    }

    pub fn table(&self) -> &RateTable {
        &self.table
    }

    /// The cached settings if no worker saved settings since they were read, and the epoch
    /// to remember with a fresh read otherwise.
    pub fn cached(&self) -> Result<Arc<Loaded>, u64> {
        let epoch = self.table.settings_epoch();
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match &*seen {
            Some((at, loaded)) if *at == epoch => Ok(loaded.clone()),
            _ => Err(epoch),
        }
    }

    /// Remembers settings read after `epoch` was seen.
    pub fn remember(&self, epoch: u64, loaded: Arc<Loaded>) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.as_ref().is_none_or(|(at, held)| *at < epoch || held.version < loaded.version) {
            *seen = Some((epoch, loaded));
        }
    }

    /// Call after saving settings: every worker re-reads them on its next request.
    pub fn settings_changed(&self) {
        self.table.bump_settings_epoch();
    }
}

/// The audiences PocketBase knows.
pub const AUDIENCE_ALL: &str = "";
pub const AUDIENCE_GUEST: &str = "@guest";
pub const AUDIENCE_AUTH: &str = "@auth";

/// A collection route: the collection as named in the URL, the route pattern, and the tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectionRoute<'a> {
    pub collection: &'a str,
    pub pattern: &'static str,
    pub tags: &'static [&'static str],
}

/// The most segments a collection route has (`api/files/{c}/{id}/{name}`).
const MAX_ROUTE_SEGMENTS: usize = 5;

/// The collection route `method path` is, if any (PocketBase's per-route base tags).
pub fn collection_route<'a>(method: &str, path: &'a str) -> Option<CollectionRoute<'a>> {
    // Split into a fixed array: this runs on every request while a rule is on.
    let mut parts = [""; MAX_ROUTE_SEGMENTS];
    let mut count = 0;
    for part in path.trim_start_matches('/').split('/') {
        if count == MAX_ROUTE_SEGMENTS {
            return None;
        }
        parts[count] = part;
        count += 1;
    }
    let segments = &parts[..count];
    let (collection, pattern, tags): (&str, &'static str, &'static [&'static str]) = match (segments, method) {
        (["api", "collections", c, "records"], "GET" | "HEAD") => (c, "GET /records", &["list"]),
        (["api", "collections", c, "records", _], "GET" | "HEAD") => (c, "GET /records/{id}", &["view"]),
        (["api", "collections", c, "records"], "POST") => (c, "POST /records", &["create"]),
        (["api", "collections", c, "records", _], "PATCH") => (c, "PATCH /records/{id}", &["update"]),
        (["api", "collections", c, "records", _], "DELETE") => (c, "DELETE /records/{id}", &["delete"]),
        (["api", "collections", c, "auth-methods"], "GET" | "HEAD") => (c, "auth-methods", &["listAuthMethods"]),
        (["api", "collections", c, "auth-refresh"], "POST") => (c, "auth-refresh", &["authRefresh"]),
        (["api", "collections", c, "auth-with-password"], "POST") => (c, "auth-with-password", &["authWithPassword", "auth"]),
        (["api", "collections", c, "auth-with-oauth2"], "POST") => (c, "auth-with-oauth2", &["authWithOAuth2", "auth"]),
        (["api", "collections", c, "request-otp"], "POST") => (c, "request-otp", &["requestOTP"]),
        (["api", "collections", c, "auth-with-otp"], "POST") => (c, "auth-with-otp", &["authWithOTP", "auth"]),
        (["api", "collections", c, "request-password-reset"], "POST") => (c, "request-password-reset", &["requestPasswordReset"]),
        (["api", "collections", c, "confirm-password-reset"], "POST") => (c, "confirm-password-reset", &["confirmPasswordReset"]),
        (["api", "collections", c, "request-verification"], "POST") => (c, "request-verification", &["requestVerification"]),
        (["api", "collections", c, "confirm-verification"], "POST") => (c, "confirm-verification", &["confirmVerification"]),
        (["api", "collections", c, "request-email-change"], "POST") => (c, "request-email-change", &["requestEmailChange"]),
        (["api", "collections", c, "confirm-email-change"], "POST") => (c, "confirm-email-change", &["confirmEmailChange"]),
        (["api", "files", c, _, _], "GET" | "HEAD") => (c, "files", &["file"]),
        _ => return None,
    };
    Some(CollectionRoute { collection, pattern, tags })
}

/// One label a request is known by, held as up to three pieces (`posts` `:` `list`, `GET` ` `
/// `/api/x`) so matching never builds the string.
#[derive(Debug, Clone, Copy)]
pub struct Label<'a>([&'a str; 3]);

impl<'a> Label<'a> {
    const NONE: Label<'static> = Label(["", "", ""]);

    pub fn text(s: &'a str) -> Label<'a> {
        Label([s, "", ""])
    }

    fn joined(a: &'a str, sep: &'static str, b: &'a str) -> Label<'a> {
        Label([a, sep, b])
    }

    fn len(&self) -> usize {
        self.0.iter().map(|p| p.len()).sum()
    }

    /// Whether the label is exactly `s`.
    fn is(&self, s: &str) -> bool {
        self.len() == s.len() && starts_with(self.0.iter().copied(), s)
    }

    /// Whether the label followed by `/` starts with `prefix` (PocketBase's prefix rules).
    fn slashed_starts_with(&self, prefix: &str) -> bool {
        starts_with(self.0.iter().copied().chain(std::iter::once("/")), prefix)
    }
}

/// Whether the concatenation of `pieces` starts with `prefix`.
fn starts_with<'p>(pieces: impl Iterator<Item = &'p str>, prefix: &str) -> bool {
    let mut rest = prefix.as_bytes();
    for piece in pieces {
        let piece = piece.as_bytes();
        if rest.len() <= piece.len() {
            return piece.starts_with(rest);
        }
        if !rest.starts_with(piece) {
            return false;
        }
        rest = &rest[piece.len()..];
    }
    rest.is_empty()
}

/// The rule for these labels and audiences (PocketBase's `FindRateLimitRule`, including its
/// quirk that only the path-prefix rules seen while matching the first label are tried).
pub fn find_rule<'r>(rules: &'r [RateLimitRule], labels: &[Label<'_>], audiences: &[&str]) -> Option<&'r RateLimitRule> {
    let fits = |r: &RateLimitRule| audiences.contains(&r.audience.as_str());
    let prefix_rules = || rules.iter().filter(|r| r.label.ends_with('/'));
    for label in labels {
        if let Some(rule) = rules.iter().find(|r| label.is(&r.label) && fits(r)) {
            return Some(rule);
        }
        if let Some(rule) = prefix_rules().find(|r| label.slashed_starts_with(&r.label) && fits(r)) {
            return Some(rule);
        }
    }
    None
}

/// Who is asking, as far as rate limits care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Guest,
    Auth,
    Superuser,
}

/// What the check decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No rule applies, or there was room.
    Pass,
    /// Over the limit of this rule (label, audience).
    Limited { label: String, audience: String },
}

/// Whether `ip` is one of the `excludedIPs` entries (an address or a CIDR subnet).
pub fn is_excluded(excluded: &[String], ip: &str) -> bool {
    match ip.parse::<IpAddr>() {
        Ok(ip) => is_excluded_addr(excluded, ip),
        Err(_) => excluded.iter().any(|e| e == ip),
    }
}

fn is_excluded_addr(excluded: &[String], ip: IpAddr) -> bool {
    excluded.iter().any(|entry| match parse_subnet(entry) {
        Some((net, bits)) => in_subnet(ip, net, bits),
        None => false,
    })
}

/// An address (as a full-length subnet) or `addr/bits`.
pub fn parse_subnet(entry: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = match entry.split_once('/') {
        Some((a, b)) => (a.parse::<IpAddr>().ok()?, Some(b.parse::<u8>().ok()?)),
        None => (entry.parse::<IpAddr>().ok()?, None),
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((addr, bits))
}

fn in_subnet(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// One request to check.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The collection route and the collection's name when the route is a collection route
    /// and the collection exists (labels use the name even when the URL gives the id).
    pub collection: Option<(CollectionRoute<'a>, &'a str)>,
    pub caller: Caller,
    /// The client's address; None when there is no one to count against.
    pub client_ip: Option<IpAddr>,
}

/// The bytes a client is counted by: an IPv4 address, or an IPv6 client's /64 (as the account
/// limits key it), so one host cannot walk its subnet to escape the limit.
fn client_bytes(ip: IpAddr) -> ([u8; 8], usize) {
    let mut out = [0u8; 8];
    match ip {
        IpAddr::V4(v4) => {
            out[..4].copy_from_slice(&v4.octets());
            (out, 4)
        }
        IpAddr::V6(v6) => {
            out.copy_from_slice(&v6.octets()[..8]);
            (out, 8)
        }
    }
}

/// Checks (and counts) `req` against the rules; `settings_version` scopes the counters.
/// Builds no strings unless the request is refused: it runs on every request while a rule is on.
pub fn check(table: &RateTable, limits: &RateLimits, settings_version: i64, req: &Request<'_>) -> Verdict {
    if !limits.enabled || req.caller == Caller::Superuser || req.client_ip.is_some_and(|ip| is_excluded_addr(&limits.excluded_ips, ip)) {
        return Verdict::Pass;
    }
    let audiences: [&str; 2] = match req.caller {
        Caller::Auth => [AUDIENCE_ALL, AUDIENCE_AUTH],
        _ => [AUDIENCE_ALL, AUDIENCE_GUEST],
    };
    // At most two tags, each as `name:tag` and `*:tag`, then `METHOD /path` and `/path`.
    let mut labels = [Label::NONE; 6];
    let mut count = 0;
    if let Some((route, name)) = &req.collection {
        for tag in route.tags.iter().take(2) {
            labels[count] = Label::joined(name, ":", tag);
            count += 1;
        }
        for tag in route.tags.iter().take(2) {
            labels[count] = Label::joined("*", ":", tag);
            count += 1;
        }
    }
    labels[count] = Label::joined(req.method, " ", req.path);
    labels[count + 1] = Label::text(req.path);
    let Some(rule) = find_rule(&limits.rules, &labels[..count + 2], &audiences) else { return Verdict::Pass };
    let Some(ip) = req.client_ip else {
        // PocketBase skips too: there is no one to count against.
        return Verdict::Pass;
    };
    let (client, client_len) = client_bytes(ip);
    let client = &client[..client_len];
    let version = settings_version.to_le_bytes();
    let key = match &req.collection {
        // Per collection and route, so `*:create` allows its count in every collection.
        Some((route, name)) => BucketKey::of(&[&version, b"c", name.as_bytes(), route.pattern.as_bytes(), rule.audience.as_bytes(), client]),
        None => BucketKey::of(&[&version, b"r", rule.label.as_bytes(), rule.audience.as_bytes(), client]),
    };
    let window = u32::try_from(rule.duration).unwrap_or(u32::MAX);
    match table.hit(key, rule.max_requests, window, rate_table::now_secs()) {
        Hit::Allowed => Verdict::Pass,
        Hit::TableFull => {
            tracing::warn!(label = %rule.label, "rate-limit table full around this client's slot; request let through uncounted");
            Verdict::Pass
        }
        Hit::Limited => Verdict::Limited { label: rule.label.clone(), audience: rule.audience.clone() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(label: &str, audience: &str) -> RateLimitRule {
        RateLimitRule { label: label.into(), audience: audience.into(), duration: 60, max_requests: 1 }
    }

    fn labels<'a>(l: &[&'a str]) -> Vec<Label<'a>> {
        l.iter().map(|s| Label::text(s)).collect()
    }

    #[test]
    fn exact_labels_beat_prefixes_and_earlier_labels_beat_later_ones() {
        let rules = vec![rule("/api/", ""), rule("*:create", ""), rule("posts:create", "@auth"), rule("POST /api/collections/posts/records", "")];
        let ls = labels(&["posts:create", "*:create", "POST /api/collections/posts/records", "/api/collections/posts/records"]);
        let guest = [AUDIENCE_ALL, AUDIENCE_GUEST];
        let auth = [AUDIENCE_ALL, AUDIENCE_AUTH];
        assert_eq!(find_rule(&rules, &ls, &guest).map(|r| r.label.as_str()), Some("*:create"), "posts:create is @auth only");
        assert_eq!(find_rule(&rules, &ls, &auth).map(|r| r.label.as_str()), Some("posts:create"));
        let other = labels(&["GET /api/health", "/api/health"]);
        assert_eq!(find_rule(&rules, &other, &guest).map(|r| r.label.as_str()), Some("/api/"), "prefix");
        let exact_path = labels(&["GET /api", "/api"]);
        assert_eq!(find_rule(&rules, &exact_path, &guest).map(|r| r.label.as_str()), Some("/api/"), "/api is under /api/ as PocketBase matches");
        let none = labels(&["GET /_/", "/_/"]);
        assert_eq!(find_rule(&rules, &none, &guest), None);
        let method_prefix = vec![rule("POST /api/", "")];
        assert!(find_rule(&method_prefix, &labels(&["POST /api/x", "/api/x"]), &guest).is_some());
        assert!(find_rule(&method_prefix, &labels(&["GET /api/x", "/api/x"]), &guest).is_none());
    }

    #[test]
    fn labels_in_pieces_match_as_their_joined_text() {
        let tag = Label::joined("posts", ":", "create");
        assert!(tag.is("posts:create"));
        assert!(!tag.is("posts:creat") && !tag.is("posts:created") && !tag.is("post:screate"));
        let path = Label::joined("GET", " ", "/api/x");
        assert!(path.slashed_starts_with("GET /api/"), "a prefix ending inside the last piece");
        assert!(path.slashed_starts_with("GET /api/x/"), "the appended slash counts");
        assert!(!path.slashed_starts_with("GET /api/x/y"));
        assert!(!path.slashed_starts_with("POST /"));
        assert!(Label::text("/api").slashed_starts_with("/api/"));
        assert!(Label::text("").is(""));
    }

    #[test]
    fn collection_routes_carry_their_tags() {
        let r = collection_route("POST", "/api/collections/users/auth-with-password").expect("route");
        assert_eq!((r.collection, r.tags), ("users", &["authWithPassword", "auth"][..]));
        assert_eq!(collection_route("GET", "/api/collections/posts/records").map(|r| r.tags), Some(&["list"][..]));
        assert_eq!(collection_route("GET", "/api/files/posts/r1/a.png").map(|r| r.tags), Some(&["file"][..]));
        assert_eq!(collection_route("GET", "/api/collections/posts"), None);
        assert_eq!(collection_route("GET", "/api/files/posts/r1/a.png/more"), None, "longer than any route");
    }

    #[test]
    fn excluded_ips_take_addresses_and_subnets() {
        let ex = vec!["10.0.0.0/8".to_string(), "2001:db8::1".to_string()];
        assert!(is_excluded(&ex, "10.1.2.3"));
        assert!(!is_excluded(&ex, "11.1.2.3"));
        assert!(is_excluded(&ex, "2001:db8::1"));
        assert!(!is_excluded(&ex, "2001:db8::2"));
        assert!(parse_subnet("1.2.3.4/33").is_none());
        assert!(parse_subnet("nope").is_none());
    }

    #[test]
    fn cost_per_check() {
        // A measurement for the report, not an assertion: labels, rule search, one bucket hit.
        let dir = tempfile::tempdir().expect("tempdir");
        let table = RateTable::open(&dir.path().join("rl")).expect("open");
        let limits = RateLimits { enabled: true, ..RateLimits::default() };
        let rounds = 20_000u32;
        let started = std::time::Instant::now();
        for i in 0..rounds {
            let ip = IpAddr::from([10, 0, ((i / 256) % 256) as u8, (i % 256) as u8]);
            let path = "/api/collections/posts/records";
            let req = Request { method: "GET", path, collection: collection_route("GET", path).map(|r| (r, "posts")), caller: Caller::Guest, client_ip: Some(ip) };
            std::hint::black_box(check(&table, &limits, 1, &req));
        }
        println!("rate limit check: {} ns per request (default rules)", started.elapsed().as_nanos() / u128::from(rounds));
    }
}
