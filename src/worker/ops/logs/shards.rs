//! Finished requests on their way to the logs thread: each thread that serves requests
//! appends its entries, encoded as bytes, to a buffer of its own (a shard), and the logs thread
//! swaps every shard's buffer for an empty one once per batch and decodes what it took.
//!
//! Why not a channel of boxed entries: each entry then allocated on a request thread and was
//! freed on the logs thread, and glibc's per-thread caches never saw those blocks again, so
//! every logged request sent the request thread's allocations down malloc's slow path. Here a
//! request allocates nothing that leaves its thread; the bytes are copied into a buffer that
//! is reused batch after batch. The shard's lock is only ever contended by the logs thread,
//! once per batch.
//!
//! This module only moves bytes: what is logged is decided by the caller, how a row is
//! written by `writer`. A shard's thread may end: the logs thread takes what it left and then
//! forgets the shard.

use std::cell::OnceCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{RequestEntry, RequestView};

/// Bytes a shard holds before new entries are dropped (and counted): the logs thread is far
/// behind (an entry is 100–300 bytes, so this is on the order of 100k requests).
pub(super) const SHARD_MAX_BYTES: usize = 32 * 1024 * 1024;
/// Bytes at which the request path nudges the logs thread instead of letting it sleep out its
/// interval (a burst, not the steady state).
pub(super) const NUDGE_AT_BYTES: usize = 4 * 1024 * 1024;
/// A spare buffer grown larger than this by a burst is not kept for good.
pub(super) const SPARE_KEEP_BYTES: usize = 8 * 1024 * 1024;

/// One thread's buffer of encoded entries.
struct Shard {
    buf: Mutex<Vec<u8>>,
}

/// Every shard, for the logs thread to drain.
static SHARDS: Mutex<Vec<Arc<Shard>>> = Mutex::new(Vec::new());

thread_local! {
    static LOCAL: OnceCell<Arc<Shard>> = const { OnceCell::new() };
}

/// A poisoned lock still holds valid bytes: every append is whole or absent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What [`push`] did with the entry.
pub(super) enum Pushed {
    Kept,
    /// Kept, and this shard just crossed [`NUDGE_AT_BYTES`].
    KeptNudge,
    /// The shard is full.
    Dropped,
}

/// Appends `entry` to this thread's shard.
pub(super) fn push(entry: &RequestEntry) -> Pushed {
    LOCAL.with(|local| {
        let shard = local.get_or_init(|| {
            let shard = Arc::new(Shard { buf: Mutex::new(Vec::new()) });
            lock(&SHARDS).push(shard.clone());
            shard
        });
        let mut buf = lock(&shard.buf);
        let before = buf.len();
        if before >= SHARD_MAX_BYTES {
            return Pushed::Dropped;
        }
        encode(&mut buf, entry);
        if before < NUDGE_AT_BYTES && buf.len() >= NUDGE_AT_BYTES {
            Pushed::KeptNudge
        } else {
            Pushed::Kept
        }
    })
}

/// Takes every shard's entries, calling `each` with each decoded entry (a shard's in the
/// order they were pushed). `spare` is the empty buffer swapped in; it comes back empty.
/// Answers how many entries could not be decoded (none unless the encoding has a bug).
pub(super) fn drain(spare: &mut Vec<u8>, mut each: impl FnMut(&RequestView<'_>)) -> u64 {
    let shards: Vec<Arc<Shard>> = lock(&SHARDS).clone();
    let mut broken = 0;
    for shard in &shards {
        {
            let mut buf = lock(&shard.buf);
            if buf.is_empty() {
                continue;
            }
            std::mem::swap(&mut *buf, spare);
        }
        let mut rest: &[u8] = spare;
        while !rest.is_empty() {
            match decode(rest) {
                Some((view, tail)) => {
                    each(&view);
                    rest = tail;
                }
                None => {
                    broken += 1;
                    break;
                }
            }
        }
        spare.clear();
        if spare.capacity() > SPARE_KEEP_BYTES {
            *spare = Vec::new();
        }
    }
    drop(shards);
    // A shard only the list still holds belongs to a thread that ended: once emptied above
    // (nothing can be pushed to it any more), it goes.
    lock(&SHARDS).retain(|s| Arc::strong_count(s) > 1 || !lock(&s.buf).is_empty());
    broken
}

const HAS_IPS: u8 = 1;
const HAS_AUTH_ID: u8 = 2;
const HAS_FAILURE: u8 = 4;

const IP_NONE: u8 = 0;
const IP_V4: u8 = 4;
const IP_V6: u8 = 6;

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes().get(..len as usize).unwrap_or_default());
}

fn put_ip(out: &mut Vec<u8>, ip: Option<IpAddr>) {
    match ip {
        None => out.push(IP_NONE),
        Some(IpAddr::V4(v4)) => {
            out.push(IP_V4);
            out.extend_from_slice(&v4.octets());
        }
        Some(IpAddr::V6(v6)) => {
            out.push(IP_V6);
            out.extend_from_slice(&v6.octets());
        }
    }
}

/// Appends `e` to `out`: fixed fields, then length-prefixed text; the failure's details are
/// serialised here (only 4xx/5xx answers have any) so the record is all bytes.
pub(super) fn encode(out: &mut Vec<u8>, e: &RequestEntry) {
    let mut flags = 0;
    if e.ips.is_some() {
        flags |= HAS_IPS;
    }
    if e.auth_id.is_some() {
        flags |= HAS_AUTH_ID;
    }
    if e.failure.is_some() {
        flags |= HAS_FAILURE;
    }
    out.extend_from_slice(&super::epoch_ms(e.created).to_le_bytes());
    out.extend_from_slice(&u64::try_from(e.exec_time.as_nanos()).unwrap_or(u64::MAX).to_le_bytes());
    out.extend_from_slice(&e.status.to_le_bytes());
    out.push(flags);
    if let Some((user, remote)) = e.ips {
        put_ip(out, user);
        put_ip(out, remote);
    }
    put_str(out, &e.method);
    put_str(out, e.text.url());
    put_str(out, e.text.referer());
    put_str(out, e.text.user_agent());
    put_str(out, &e.auth);
    if let Some(id) = &e.auth_id {
        put_str(out, id);
    }
    if let Some((error, details)) = &e.failure {
        put_str(out, error);
        // The details' length is known only once written: reserve its prefix, fill it after.
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        // Serialising a Value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, details);
        let len = u32::try_from(out.len() - at - 4).unwrap_or(u32::MAX);
        if let Some(prefix) = out.get_mut(at..at + 4) {
            prefix.copy_from_slice(&len.to_le_bytes());
        }
    }
}

/// A cursor over an encoded record.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    fn str(&mut self) -> Option<&'a str> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        std::str::from_utf8(self.take(len)?).ok()
    }

    fn ip(&mut self) -> Option<Option<IpAddr>> {
        match self.byte()? {
            IP_NONE => Some(None),
            IP_V4 => Some(Some(IpAddr::V4(Ipv4Addr::from(self.array::<4>()?)))),
            IP_V6 => Some(Some(IpAddr::V6(Ipv6Addr::from(self.array::<16>()?)))),
            _ => None,
        }
    }
}

/// The first record of `bytes` and what follows it; `None` when it is not a whole record.
pub(super) fn decode(bytes: &[u8]) -> Option<(RequestView<'_>, &[u8])> {
    let mut r = Reader(bytes);
    let created_ms = i64::from_le_bytes(r.array()?);
    let exec_time_ns = u64::from_le_bytes(r.array()?);
    let status = u16::from_le_bytes(r.array()?);
    let flags = r.byte()?;
    let ips = if flags & HAS_IPS != 0 { Some((r.ip()?, r.ip()?)) } else { None };
    let method = r.str()?;
    let url = r.str()?;
    let referer = r.str()?;
    let user_agent = r.str()?;
    let auth = r.str()?;
    let auth_id = if flags & HAS_AUTH_ID != 0 { Some(r.str()?) } else { None };
    let failure = if flags & HAS_FAILURE != 0 { Some((r.str()?, r.str()?)) } else { None };
    let view = RequestView { created_ms, method, url, referer, user_agent, status, exec_time_ns, auth, auth_id, ips, failure };
    Some((view, r.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn entries_round_trip_through_the_encoding() {
        let plain = RequestEntry {
            created: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            method: "GET".into(),
            text: super::super::RequestText::new("/api/x?y=%20", "https://ref", "ua/1.0"),
            status: 200,
            exec_time: Duration::from_nanos(1_234_567),
            auth: String::new(),
            auth_id: None,
            ips: None,
            failure: None,
        };
        let full = RequestEntry {
            method: "PROPFIND".into(),
            status: 404,
            auth: "users".into(),
            auth_id: Some("u1".into()),
            ips: Some((Some([10, 0, 0, 1].into()), Some("::1".parse().expect("v6")))),
            failure: Some(("Not found.".into(), serde_json::json!({"a": [1, "é"]}))),
            ..plain.clone()
        };
        let mut buf = Vec::new();
        encode(&mut buf, &plain);
        encode(&mut buf, &full);
        let (a, rest) = decode(&buf).expect("first");
        let (b, rest) = decode(rest).expect("second");
        assert!(rest.is_empty());
        assert_eq!((a.created_ms, a.exec_time_ns, a.status), (1_700_000_000_123, 1_234_567, 200));
        assert_eq!((a.method, a.url, a.referer, a.user_agent, a.auth), ("GET", "/api/x?y=%20", "https://ref", "ua/1.0", ""));
        assert!(a.auth_id.is_none() && a.ips.is_none() && a.failure.is_none());
        assert_eq!((b.method, b.status, b.auth, b.auth_id), ("PROPFIND", 404, "users", Some("u1")));
        assert_eq!(b.ips, Some((Some([10, 0, 0, 1].into()), Some("::1".parse().expect("v6")))));
        assert_eq!(b.failure, Some(("Not found.", r#"{"a":[1,"é"]}"#)));
        // A record cut anywhere is refused, not misread.
        let first_len = buf.len() - decode(&buf).expect("first").1.len();
        assert!((0..first_len).all(|cut| decode(&buf[..cut]).is_none()));
    }

    #[test]
    fn a_drain_takes_every_threads_entries_and_forgets_ended_threads() {
        let entry = |url: &str| RequestEntry {
            created: SystemTime::UNIX_EPOCH,
            method: "GET".into(),
            text: super::super::RequestText::new(url, "", ""),
            status: 200,
            exec_time: Duration::ZERO,
            auth: String::new(),
            auth_id: None,
            ips: None,
            failure: None,
        };
        let threads: Vec<_> = (0..3)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..100 {
                        assert!(matches!(push(&entry(&format!("/drain-test/{t}/{i}"))), Pushed::Kept));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let mut spare = Vec::new();
        let mut seen = Vec::new();
        assert_eq!(drain(&mut spare, |v| seen.push(v.url.to_owned())), 0);
        // Other tests of this binary may log through shards too: count only ours.
        let ours: Vec<&String> = seen.iter().filter(|u| u.starts_with("/drain-test/")).collect();
        assert_eq!(ours.len(), 300);
        for t in 0..3 {
            let order: Vec<usize> = ours.iter().filter_map(|u| u.strip_prefix(&format!("/drain-test/{t}/"))?.parse().ok()).collect();
            assert_eq!(order, (0..100).collect::<Vec<_>>(), "a thread's entries keep their order");
        }
        assert!(spare.is_empty());
        // The three threads ended and were drained: their shards are gone.
        let left = lock(&SHARDS).iter().filter(|s| Arc::strong_count(s) == 1).count();
        assert_eq!(left, 0);
    }
}
