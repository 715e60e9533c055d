//! Realtime load generator for `bench/realtime.sh`: opens N SSE subscribers on
//! `GET /api/realtime` (each its own connection, so the kernel spreads them over a cluster's
//! workers), subscribes each to `<collection>/*` with PocketBase's POST, then creates records at
//! a fixed rate for a fixed time and reports writes accepted, events lost and duplicated, and
//! delivery latency (from the moment a create was sent to the moment a subscriber read its
//! event). Works against vaultbase and PocketBase alike: it speaks only PocketBase's wire.
//! Creates are sent open-loop at RATE with at most 64 in flight; what a saturated server
//! cannot take within SECONDS is not sent (reported as accepted/sent, with the rate reached).
//!
//!   cargo run --release --example realtime_load -- HOST:PORT SUBSCRIBERS RATE SECONDS LABEL
//!
//! Each created record carries its sequence number in field `n`; each subscriber marks the
//! numbers it saw, so loss and duplicates are exact, not estimated.

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Creates allowed in flight at once; beyond this the generator waits (a saturated server).
const MAX_IN_FLIGHT_WRITES: usize = 64;
/// How long after the last create the subscribers may take to receive everything.
const DRAIN_GRACE: Duration = Duration::from_secs(15);
/// Subscribers connecting at once while the crowd is built.
const CONNECT_PARALLELISM: usize = 50;

struct Shared {
    t0: Instant,
    /// Send time of create n, in µs since t0 (0: not sent).
    sent_us: Vec<AtomicU64>,
    /// 1 once create n was answered 200.
    accepted: Vec<AtomicU8>,
    latencies_us: Mutex<Vec<u32>>,
    received: AtomicU64,
    duplicates: AtomicU64,
}

async fn request(addr: &str, method: &str, path: &str, body: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let status = std::str::from_utf8(raw.get(9..12).unwrap_or_default()).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = match raw.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => raw[p + 4..].to_vec(),
        None => Vec::new(),
    };
    Ok((status, body))
}

/// Opens one SSE stream, subscribes it, and returns its client id and a reader future.
async fn subscriber(addr: String, collection: String, shared: Arc<Shared>) -> std::io::Result<(String, tokio::task::JoinHandle<Vec<u8>>)> {
    let mut s = TcpStream::connect(&addr).await?;
    s.write_all(format!("GET /api/realtime HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n").as_bytes()).await?;
    let mut r = BufReader::new(s);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::other("closed in the head"));
        }
        if line == "\r\n" {
            break;
        }
    }
    let (id_tx, id_rx) = tokio::sync::oneshot::channel::<String>();
    let n_max = shared.sent_us.len();
    let reader = tokio::spawn(async move {
        let mut id_tx = Some(id_tx);
        let mut seen = vec![0u8; n_max];
        let mut pending: Vec<u8> = Vec::new();
        let mut size = String::new();
        loop {
            size.clear();
            if r.read_line(&mut size).await.unwrap_or(0) == 0 {
                break;
            }
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let start = pending.len();
            pending.resize(start + n + 2, 0);
            if r.read_exact(&mut pending[start..]).await.is_err() {
                break;
            }
            pending.truncate(start + n);
            let now_us = shared.t0.elapsed().as_micros() as u64;
            let mut consumed = 0;
            while let Some(pos) = pending[consumed..].windows(2).position(|w| w == b"\n\n") {
                let frame = &pending[consumed..consumed + pos];
                consumed += pos + 2;
                if let Some(tx) = id_tx.take() {
                    let text = String::from_utf8_lossy(frame);
                    let id = text.lines().find_map(|l| l.strip_prefix("id:")).unwrap_or_default().to_owned();
                    let _ = tx.send(id);
                    continue;
                }
                // The record's `"n":<number>`; the first occurrence is the field.
                let Some(p) = frame.windows(4).position(|w| w == b"\"n\":") else { continue };
                let digits: String = frame[p + 4..].iter().take_while(|b| b.is_ascii_digit()).map(|&b| b as char).collect();
                let Ok(k) = digits.parse::<usize>() else { continue };
                if k >= n_max {
                    continue;
                }
                seen[k] = seen[k].saturating_add(1);
                shared.received.fetch_add(1, Ordering::Relaxed);
                if seen[k] > 1 {
                    shared.duplicates.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let sent = shared.sent_us[k].load(Ordering::Relaxed);
                if sent > 0 && now_us >= sent {
                    if let Ok(mut l) = shared.latencies_us.lock() {
                        l.push(u32::try_from(now_us - sent).unwrap_or(u32::MAX));
                    }
                }
            }
            pending.drain(..consumed);
        }
        seen
    });
    let client_id = tokio::time::timeout(Duration::from_secs(30), id_rx)
        .await
        .map_err(|_| std::io::Error::other("no PB_CONNECT"))?
        .map_err(|_| std::io::Error::other("stream ended before PB_CONNECT"))?;
    let body = format!(r#"{{"clientId":"{client_id}","subscriptions":["{collection}/*"]}}"#);
    let (status, _) = request(&addr, "POST", "/api/realtime", &body).await?;
    if status != 204 {
        return Err(std::io::Error::other(format!("subscription POST answered {status}")));
    }
    Ok((client_id, reader))
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!("usage: realtime_load HOST:PORT SUBSCRIBERS RATE SECONDS LABEL");
        std::process::exit(2);
    }
    let addr = args[1].clone();
    let subs: usize = args[2].parse().expect("SUBSCRIBERS");
    let rate: u64 = args[3].parse().expect("RATE");
    let seconds: u64 = args[4].parse().expect("SECONDS");
    let label = args[5].clone();
    let collection = std::env::var("COLLECTION").unwrap_or_else(|_| "rt".to_owned());
    let total = (rate * seconds) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let shared = Arc::new(Shared {
            t0: Instant::now(),
            sent_us: (0..total).map(|_| AtomicU64::new(0)).collect(),
            accepted: (0..total).map(|_| AtomicU8::new(0)).collect(),
            latencies_us: Mutex::new(Vec::with_capacity(total * subs)),
            received: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
        });
        // Build the crowd.
        let gate = Arc::new(tokio::sync::Semaphore::new(CONNECT_PARALLELISM));
        let mut joins = Vec::with_capacity(subs);
        for _ in 0..subs {
            let (addr, collection, shared, gate) = (addr.clone(), collection.clone(), shared.clone(), gate.clone());
            joins.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await;
                subscriber(addr, collection, shared).await
            }));
        }
        let mut readers = Vec::with_capacity(subs);
        let mut owners = std::collections::BTreeMap::<String, usize>::new();
        for j in joins {
            match j.await {
                Ok(Ok((id, reader))) => {
                    *owners.entry(id.chars().take(3).collect()).or_default() += 1;
                    readers.push(reader);
                }
                Ok(Err(e)) => eprintln!("a subscriber failed to connect: {e}"),
                Err(e) => eprintln!("a subscriber task failed: {e}"),
            }
        }
        let connected = readers.len();
        // Writes at a fixed rate; each carries its number.
        let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT_WRITES));
        let done = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
        let mut writes = Vec::with_capacity(total);
        let window = Duration::from_secs(seconds);
        let mut sent = 0usize;
        for k in 0..total {
            tick.tick().await;
            let permit = in_flight.clone().acquire_owned().await.expect("semaphore");
            // A server that cannot keep up gets only what fits in the window: the rate it
            // sustains is the figure, not how long a backlog takes to clear.
            if start.elapsed() > window {
                break;
            }
            sent += 1;
            let (addr, collection, shared, done) = (addr.clone(), collection.clone(), shared.clone(), done.clone());
            writes.push(tokio::spawn(async move {
                let body = format!(r#"{{"n":{k},"title":"realtime bench record {k}"}}"#);
                shared.sent_us[k].store(shared.t0.elapsed().as_micros().max(1) as u64, Ordering::Relaxed);
                if let Ok((200, _)) = request(&addr, "POST", &format!("/api/collections/{collection}/records"), &body).await {
                    shared.accepted[k].store(1, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Relaxed);
                drop(permit);
            }));
        }
        for w in writes {
            let _ = w.await;
        }
        let write_secs = start.elapsed().as_secs_f64();
        let accepted: u64 = shared.accepted.iter().map(|a| u64::from(a.load(Ordering::Relaxed))).sum();
        let expected = accepted * connected as u64;
        let deadline = Instant::now() + DRAIN_GRACE;
        while shared.received.load(Ordering::Relaxed) - shared.duplicates.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut lost = 0u64;
        for r in readers {
            r.abort();
        }
        let unique = shared.received.load(Ordering::Relaxed) - shared.duplicates.load(Ordering::Relaxed);
        lost += expected.saturating_sub(unique);
        let mut lat = shared.latencies_us.lock().map(|l| l.clone()).unwrap_or_default();
        lat.sort_unstable();
        let spread: Vec<String> = owners.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        println!(
            "{:<28} {:>5} {:>7}/{:<6} {:>8.1} {:>9} {:>6} {:>5} {:>8.1} {:>8.1}   owners {}",
            label,
            connected,
            accepted,
            sent,
            accepted as f64 / write_secs,
            expected,
            lost,
            shared.duplicates.load(Ordering::Relaxed),
            percentile(&lat, 0.50),
            percentile(&lat, 0.99),
            if spread.len() <= 8 { spread.join(" ") } else { "n/a".to_owned() },
        );
    });
}
