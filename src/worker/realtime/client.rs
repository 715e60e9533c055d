//! Local realtime clients: one [`Client`] per open SSE stream or WebSocket on this worker,
//! with its auth, its subscriptions and its bounded outbox, and the [`Registry`] that finds
//! them by id. It owns per-client buffering and the end of a client (drain, overflow,
//! disconnect); it must not evaluate rules, read the database or write to sockets — the
//! stream bodies and sessions pull from the outbox, so a slow socket only fills its own
//! outbox and is cut off at the bounds, never slowing the dispatcher or other clients.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{BufMut, Bytes, BytesMut};

use super::topic::Topic;
use crate::worker::actor::Actor;

/// Bytes of events one client may have waiting before it is disconnected as too slow. A
/// single frame that finds the outbox empty is always taken, whatever its size: a record with
/// a large field must reach a client that keeps up (PocketBase delivers it), and the bound is
/// about a backlog, not about one event.
pub const MAX_PENDING_BYTES: usize = 4 * 1024 * 1024;
/// Events one client may have waiting before it is disconnected as too slow.
pub const MAX_PENDING_EVENTS: usize = 10_000;
/// Length of an SSE client id (PocketBase's).
pub const CLIENT_ID_CHARS: usize = 40;
/// Leading characters of a client id that name its owner worker (base 36, so up to 46,655).
pub const OWNER_PREFIX_CHARS: usize = 3;

const BASE36: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Sse,
    Ws,
}

/// Why a client's stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The worker drains: a final frame tells the client to reconnect elsewhere.
    Drain,
    /// Its outbox passed [`MAX_PENDING_BYTES`] or [`MAX_PENDING_EVENTS`].
    Overflow,
}

/// What a stream takes from the outbox in one go.
pub enum Taken {
    /// SSE: every pending frame, concatenated into one write.
    Data(Bytes),
    /// WS: every pending message, to be sent with one flush.
    Messages(Vec<Bytes>),
    End(End),
}

/// Auth and subscriptions: what the subscription POST (or WS messages) sets.
#[derive(Debug, Clone, Default)]
pub struct ClientState {
    pub actor: Actor,
    pub subs: Vec<Arc<Topic>>,
}

#[derive(Default)]
struct Outbox {
    sse: BytesMut,
    ws: Vec<Bytes>,
    events: usize,
    end: Option<End>,
    waker: Option<Waker>,
}

pub struct Client {
    pub id: String,
    pub transport: Transport,
    /// The stream's peer address: a subscription POST from another address is refused.
    pub ip: Option<IpAddr>,
    state: Mutex<ClientState>,
    outbox: Mutex<Outbox>,
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the data consistent (plain field writes), so a panic
    // elsewhere while holding it does not make it unusable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Client {
    pub fn new(id: String, transport: Transport, ip: Option<IpAddr>) -> Client {
        Client { id, transport, ip, state: Mutex::new(ClientState::default()), outbox: Mutex::new(Outbox::default()) }
    }

    /// The client's auth and subscriptions, for a moment (never held across an await).
    pub fn state(&self) -> MutexGuard<'_, ClientState> {
        relock(&self.state)
    }

    /// Queues one SSE frame (`id:`/`event:`/`data:`, no spaces, as PocketBase writes them).
    /// False if the client has ended (now or before).
    pub fn push_sse(&self, event: &str, data: &[u8]) -> bool {
        let mut out = relock(&self.outbox);
        if out.end.is_some() {
            return false;
        }
        let before = out.sse.len();
        let buf = &mut out.sse;
        buf.reserve(self.id.len() + event.len() + data.len() + 20);
        buf.put_slice(b"id:");
        buf.put_slice(self.id.as_bytes());
        buf.put_slice(b"\nevent:");
        buf.put_slice(event.as_bytes());
        buf.put_slice(b"\ndata:");
        buf.put_slice(data);
        buf.put_slice(b"\n\n");
        self.after_push(out, before)
    }

    /// Queues one WebSocket text message. False if the client has ended.
    pub fn push_ws(&self, msg: Bytes) -> bool {
        let mut out = relock(&self.outbox);
        if out.end.is_some() {
            return false;
        }
        let before = out.ws.iter().map(Bytes::len).sum::<usize>();
        out.ws.push(msg);
        self.after_push(out, before)
    }

    /// Counts the frame just queued (`before` bytes were pending ahead of it) and cuts the
    /// client off past the bounds; logged here, since nothing else sees why a client ended.
    fn after_push(&self, mut out: MutexGuard<'_, Outbox>, before: usize) -> bool {
        out.events += 1;
        let bytes = out.sse.len() + out.ws.iter().map(Bytes::len).sum::<usize>();
        if out.events > MAX_PENDING_EVENTS || (bytes > MAX_PENDING_BYTES && before > 0) {
            tracing::warn!(client_id = %self.id, pending_events = out.events, pending_bytes = bytes, "realtime client not reading; cut off and its pending events dropped");
            out.sse.clear();
            out.ws.clear();
            out.end = Some(End::Overflow);
        }
        let waker = out.waker.take();
        let alive = out.end.is_none();
        drop(out);
        if let Some(w) = waker {
            w.wake();
        }
        alive
    }

    /// Ends the client: what is pending (plus `last`, an SSE frame or WS message) is still
    /// taken, then [`Taken::End`]. Idempotent.
    pub fn end(&self, why: End, last: Option<&[u8]>) {
        let mut out = relock(&self.outbox);
        if out.end.is_some() {
            return;
        }
        if let Some(last) = last {
            match self.transport {
                Transport::Sse => out.sse.put_slice(last),
                Transport::Ws => out.ws.push(Bytes::copy_from_slice(last)),
            }
        }
        out.end = Some(why);
        let waker = out.waker.take();
        drop(out);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Takes everything pending, or registers `cx` to be woken by the next push.
    pub fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Taken> {
        let mut out = relock(&self.outbox);
        if !out.sse.is_empty() {
            out.events = 0;
            return Poll::Ready(Taken::Data(out.sse.split().freeze()));
        }
        if !out.ws.is_empty() {
            out.events = 0;
            return Poll::Ready(Taken::Messages(std::mem::take(&mut out.ws)));
        }
        if let Some(end) = out.end {
            return Poll::Ready(Taken::End(end));
        }
        out.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// A new client id: [`OWNER_PREFIX_CHARS`] naming `worker_id`, then random `[a-z0-9]`, 40 in all.
pub fn new_client_id(worker_id: u32) -> Result<String, crate::worker::auth::random::RandomError> {
    let mut prefix = Vec::with_capacity(OWNER_PREFIX_CHARS);
    let mut n = worker_id;
    for _ in 0..OWNER_PREFIX_CHARS {
        prefix.push(BASE36[(n % 36) as usize]);
        n /= 36;
    }
    prefix.reverse();
    let rest = crate::worker::auth::random::random_string(crate::worker::auth::random::ID_ALPHABET, CLIENT_ID_CHARS - OWNER_PREFIX_CHARS)?;
    Ok(format!("{}{rest}", String::from_utf8_lossy(&prefix)))
}

/// The worker a client id names, if it is one of ours in form.
pub fn owner_of(client_id: &str) -> Option<u32> {
    if client_id.len() != CLIENT_ID_CHARS || !client_id.is_ascii() {
        return None;
    }
    client_id[..OWNER_PREFIX_CHARS].bytes().try_fold(0u32, |acc, b| {
        let digit = BASE36.iter().position(|&d| d == b)? as u32;
        Some(acc * 36 + digit)
    })
}

/// The clients connected to this worker.
#[derive(Default)]
pub struct Registry {
    clients: Mutex<HashMap<String, Arc<Client>>>,
}

impl Registry {
    pub fn insert(&self, client: Arc<Client>) {
        relock(&self.clients).insert(client.id.clone(), client);
    }

    pub fn remove(&self, id: &str) {
        relock(&self.clients).remove(id);
    }

    pub fn get(&self, id: &str) -> Option<Arc<Client>> {
        relock(&self.clients).get(id).cloned()
    }

    /// Every client now, to deliver to without holding the registry lock.
    pub fn all(&self) -> Vec<Arc<Client>> {
        relock(&self.clients).values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        relock(&self.clients).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_name_their_owner() {
        for worker in [0u32, 1, 7, 35, 36, 255, 46_655] {
            let id = new_client_id(worker).expect("random");
            assert_eq!(id.len(), CLIENT_ID_CHARS);
            assert_eq!(owner_of(&id), Some(worker));
        }
        assert_eq!(owner_of("short"), None);
        assert_eq!(owner_of(&"!".repeat(CLIENT_ID_CHARS)), None);
    }

    fn take(c: &Client) -> Poll<Taken> {
        c.poll_take(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn pending_frames_coalesce_into_one_take() {
        let c = Client::new("c".repeat(CLIENT_ID_CHARS), Transport::Sse, None);
        assert!(c.push_sse("posts/*", br#"{"a":1}"#));
        assert!(c.push_sse("posts/*", br#"{"a":2}"#));
        match take(&c) {
            Poll::Ready(Taken::Data(b)) => {
                let text = String::from_utf8(b.to_vec()).expect("utf8");
                assert_eq!(text.matches("event:posts/*\n").count(), 2);
                assert!(text.starts_with(&format!("id:{}\nevent:posts/*\ndata:{{\"a\":1}}\n\n", c.id)));
            }
            _ => panic!("expected data"),
        }
        assert!(matches!(take(&c), Poll::Pending));
    }

    #[test]
    fn overflow_ends_the_client_and_drops_its_backlog() {
        let c = Client::new("x".repeat(CLIENT_ID_CHARS), Transport::Ws, None);
        let mut alive = true;
        for _ in 0..=MAX_PENDING_EVENTS {
            alive = c.push_ws(Bytes::from_static(b"{}"));
        }
        assert!(!alive);
        assert!(matches!(take(&c), Poll::Ready(Taken::End(End::Overflow))));
        assert!(!c.push_ws(Bytes::from_static(b"{}")));
    }

    #[test]
    fn a_lone_frame_larger_than_the_byte_bound_is_taken_but_a_backlog_is_not() {
        let c = Client::new("b".repeat(CLIENT_ID_CHARS), Transport::Sse, None);
        let big = vec![b'x'; MAX_PENDING_BYTES + 1];
        assert!(c.push_sse("t", &big), "a frame that finds the outbox empty is taken");
        assert!(matches!(take(&c), Poll::Ready(Taken::Data(b)) if b.len() > MAX_PENDING_BYTES));
        assert!(c.push_sse("t", &big));
        assert!(!c.push_sse("t", b"1"), "a backlog past the bound cuts the client off");
        assert!(matches!(take(&c), Poll::Ready(Taken::End(End::Overflow))));
    }

    #[test]
    fn drain_sends_what_is_pending_then_the_last_frame_then_ends() {
        let c = Client::new("d".repeat(CLIENT_ID_CHARS), Transport::Sse, None);
        c.push_sse("t", b"1");
        c.end(End::Drain, Some(b"bye"));
        match take(&c) {
            Poll::Ready(Taken::Data(b)) => assert!(b.ends_with(b"bye")),
            _ => panic!("expected data"),
        }
        assert!(matches!(take(&c), Poll::Ready(Taken::End(End::Drain))));
    }
}
