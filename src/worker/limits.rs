//! Abuse limits on password attempts and mail-sending endpoints, per client IP and per account,
//! held in SQLite (`_vb_limits`) so that they are cluster-wide: every worker of a cluster counts
//! into the same rows inside a write transaction, so N workers never allow N× the limit.
//!
//! It owns the counters, their fixed windows and the configured limits' shape. It must not
//! decide what a refusal looks like on the wire (the handlers answer 429, or stay silent where
//! an answer would reveal whether an account exists) and must not keep any count in process
//! memory.

use std::net::{IpAddr, Ipv6Addr};

use rusqlite::{OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

/// At most this many hits per key in each window of `duration` seconds; `max: 0` switches the
/// limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Limit {
    pub max: u32,
    /// Window length, in seconds.
    pub duration: u64,
}

impl Default for Limit {
    fn default() -> Self {
        Limit { max: 0, duration: 60 }
    }
}

/// Failed password attempts allowed per client IP in the window (defaults below).
pub const PASSWORD_PER_IP_MAX: u32 = 30;
/// Failed password attempts allowed per identity (account) from one client IP in the window.
pub const PASSWORD_PER_ACCOUNT_MAX: u32 = 10;
/// The password-attempt window, in seconds.
pub const PASSWORD_WINDOW_SECS: u64 = 600;
/// Mail-sending requests allowed per client IP in the window.
pub const MAIL_PER_IP_MAX: u32 = 20;
/// The per-IP mail window, in seconds.
pub const MAIL_PER_IP_WINDOW_SECS: u64 = 3_600;
/// Mails of one kind sent to one account in the window (PocketBase resends at most every
/// 2 minutes; a little slack for a user who retries).
pub const MAIL_PER_ACCOUNT_MAX: u32 = 3;
/// The per-account mail window, in seconds.
pub const MAIL_PER_ACCOUNT_WINDOW_SECS: u64 = 600;
/// Attempts at one OTP (PocketBase: more than 5 in 180 s answers 429).
pub const OTP_ATTEMPTS_MAX: u32 = 5;
/// The OTP-attempt window, in seconds.
pub const OTP_ATTEMPTS_WINDOW_SECS: u64 = 180;

/// The `accountLimits` settings section (vaultbase's own; PocketBase has only generic rate
/// limits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AccountLimits {
    /// Failed password attempts per client IP (across all accounts).
    #[serde(rename = "passwordPerIP")]
    pub password_per_ip: Limit,
    /// Failed password attempts per account identity from one client IP (a limit across all
    /// IPs would let anyone lock the owner out).
    pub password_per_account: Limit,
    /// Requests to mail-sending endpoints per client IP.
    #[serde(rename = "mailPerIP")]
    pub mail_per_ip: Limit,
    /// Mails of one kind to one account; over it the request still answers as usual but no
    /// mail goes out (an error would tell that the account exists).
    pub mail_per_account: Limit,
}

impl Default for AccountLimits {
    fn default() -> Self {
        AccountLimits {
            password_per_ip: Limit { max: PASSWORD_PER_IP_MAX, duration: PASSWORD_WINDOW_SECS },
            password_per_account: Limit { max: PASSWORD_PER_ACCOUNT_MAX, duration: PASSWORD_WINDOW_SECS },
            mail_per_ip: Limit { max: MAIL_PER_IP_MAX, duration: MAIL_PER_IP_WINDOW_SECS },
            mail_per_account: Limit { max: MAIL_PER_ACCOUNT_MAX, duration: MAIL_PER_ACCOUNT_WINDOW_SECS },
        }
    }
}

/// Counts one hit for `key` at `now` (unix seconds) and tells whether it is within `limit`.
/// The upsert is one statement in the caller's write transaction, so concurrent workers are
/// serialised by SQLite's write lock and each sees the others' hits. Hits over the limit are
/// counted too (a client hammering a closed door does not get it reopened sooner by the count).
pub fn hit(tx: &Transaction<'_>, key: &str, limit: Limit, now: i64) -> rusqlite::Result<bool> {
    if limit.max == 0 {
        return Ok(true);
    }
    let window = i64::try_from(limit.duration.max(1)).unwrap_or(i64::MAX);
    prune(tx, now)?;
    let hits: i64 = tx
        .prepare_cached(
            "INSERT INTO _vb_limits (key, window_end, hits) VALUES (?1, ?2 + ?3, 1)
             ON CONFLICT(key) DO UPDATE SET
                hits = CASE WHEN window_end <= ?2 THEN 1 ELSE hits + 1 END,
                window_end = CASE WHEN window_end <= ?2 THEN ?2 + ?3 ELSE window_end END
             RETURNING hits",
        )?
        .query_row(rusqlite::params![key, now, window], |r| r.get(0))?;
    Ok(hits <= i64::from(limit.max))
}

/// Whether one more hit of `key` at `now` would be within `limit`, without counting it (the
/// caller counts it with [`hit`] once the limited thing really happens).
pub fn has_room(tx: &Transaction<'_>, key: &str, limit: Limit, now: i64) -> rusqlite::Result<bool> {
    if limit.max == 0 {
        return Ok(true);
    }
    let hits: Option<i64> = tx
        .prepare_cached("SELECT hits FROM _vb_limits WHERE key = ?1 AND window_end > ?2")?
        .query_row(rusqlite::params![key, now], |r| r.get(0))
        .optional()?;
    Ok(hits.unwrap_or(0) < i64::from(limit.max))
}

/// Takes back one hit of `key` (a password attempt that turned out right is not an attack).
pub fn refund(tx: &Transaction<'_>, key: &str) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE _vb_limits SET hits = max(hits - 1, 0) WHERE key = ?1")?.execute([key])?;
    Ok(())
}

/// Drops a few windows that have ended, so the table stays as small as the set of recently
/// active keys. Bounded per call so no request pays for a large backlog.
fn prune(tx: &Transaction<'_>, now: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM _vb_limits WHERE rowid IN (SELECT rowid FROM _vb_limits WHERE window_end <= ?1 LIMIT 16)")?
        .execute([now])?;
    Ok(())
}

/// The client part of a per-IP key. An IPv6 client counts by its /64 prefix: one subscriber
/// usually holds a whole /64 and can rotate through 2^64 addresses, so a key per address would
/// be no limit at all. IPv4 (and IPv4-mapped IPv6) addresses are kept whole; anything that is
/// not an address is kept as it is.
pub fn client_key(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{}/64", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => ip.to_owned(),
    }
}

/// The key of a per-IP counter.
pub fn ip_key(kind: &str, ip: &str) -> String {
    format!("{kind}:ip:{}", client_key(ip))
}

/// The key of a per-account counter: collection and identity, case-folded, whether or not
/// such an account exists (so a refusal says nothing about existence).
pub fn account_key(kind: &str, collection_id: &str, identity: &str) -> String {
    format!("{kind}:acct:{collection_id}:{}", identity.trim().to_lowercase())
}

/// The key of a per-account counter of one client IP. Failed passwords are counted this way:
/// a refusal that applied to every IP would let anyone lock the real user out of their own
/// account with a few wrong guesses.
pub fn ip_account_key(kind: &str, collection_id: &str, ip: &str, identity: &str) -> String {
    format!("{kind}:acct:{collection_id}:{}:{}", client_key(ip), identity.trim().to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> (tempfile::TempDir, rusqlite::Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = crate::shared::db::open::open(&dir.path().join("d.db"), crate::shared::db::open::Role::Writer).expect("open");
        crate::shared::db::migrate::run(&mut c).expect("migrate");
        (dir, c)
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_prefix() {
        let a = ip_key("password", "2001:db8:1:2:aaaa:bbbb:cccc:dddd");
        let b = ip_key("password", "2001:db8:1:2::1");
        assert_eq!(a, b, "one /64 is one client");
        assert_eq!(a, "password:ip:2001:db8:1:2::/64");
        assert_ne!(a, ip_key("password", "2001:db8:1:3::1"), "another /64 is another client");
        assert_eq!(ip_key("mail", "203.0.113.7"), "mail:ip:203.0.113.7", "IPv4 is unchanged");
        assert_ne!(ip_key("mail", "203.0.113.7"), ip_key("mail", "203.0.113.8"));
        assert_eq!(ip_key("mail", "::ffff:203.0.113.7"), "mail:ip:203.0.113.7", "mapped IPv4 is IPv4");
        assert_eq!(ip_key("mail", ""), "mail:ip:", "no address stays as it is");
        assert_eq!(
            ip_account_key("password", "c1", "2001:db8:1:2::9", " Me@Example.com"),
            ip_account_key("password", "c1", "2001:db8:1:2:ffff::1", "me@example.com"),
        );
    }

    #[test]
    fn counts_within_a_window_and_starts_over_after_it() {
        let (_d, mut c) = conn();
        let limit = Limit { max: 2, duration: 10 };
        let tx = c.transaction().expect("tx");
        assert!(hit(&tx, "k", limit, 100).expect("hit"));
        assert!(hit(&tx, "k", limit, 101).expect("hit"));
        assert!(!hit(&tx, "k", limit, 102).expect("hit"), "third hit in the window is over");
        refund(&tx, "k").expect("refund");
        assert!(!hit(&tx, "k", limit, 103).expect("hit"), "hits over the limit were counted too");
        assert!(hit(&tx, "k", limit, 110).expect("hit"), "a new window starts at window_end");
        assert!(hit(&tx, "other", limit, 110).expect("hit"), "keys are independent");
        assert!(hit(&tx, "k", Limit { max: 0, duration: 1 }, 110).expect("hit"), "max 0 is off");
    }

    #[test]
    fn room_is_asked_without_counting() {
        let (_d, mut c) = conn();
        let limit = Limit { max: 1, duration: 10 };
        let tx = c.transaction().expect("tx");
        for _ in 0..3 {
            assert!(has_room(&tx, "k", limit, 100).expect("room"), "asking uses nothing up");
        }
        assert!(hit(&tx, "k", limit, 100).expect("hit"));
        assert!(!has_room(&tx, "k", limit, 101).expect("room"), "the one hit is used");
        assert!(has_room(&tx, "k", limit, 110).expect("room"), "a window that ended leaves room");
        assert!(has_room(&tx, "k", Limit { max: 0, duration: 1 }, 101).expect("room"), "max 0 is off");
    }
}
