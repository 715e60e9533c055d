//! The bus over a real Unix socket: the supervisor's hub with several worker clients. Each
//! Publish reaches every other worker exactly once and never its sender; a stalled worker
//! loses only its own messages and never blocks the others.

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use vaultbase::shared::bus::codec;
use vaultbase::shared::bus::{BusClient, BusMsg, PROTOCOL_VERSION};
use vaultbase::supervisor::hub::{Hub, HubEvent};

const RECV_TIMEOUT: Duration = Duration::from_secs(10);

async fn wait_joined(events: &mut mpsc::UnboundedReceiver<HubEvent>, n: usize) {
    let mut joined = 0;
    while joined < n {
        match tokio::time::timeout(RECV_TIMEOUT, events.recv()).await {
            Ok(Some(HubEvent::Joined { .. })) => joined += 1,
            Ok(Some(_)) => {}
            other => panic!("hub event stream ended: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_publish_reaches_each_other_worker_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(".bus.sock");
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let _hub = Hub::start(&path, ev_tx).expect("hub");

    const WORKERS: u32 = 4;
    const PER_WORKER: u64 = 250;
    let mut clients = Vec::new();
    for id in 0..WORKERS {
        let (client, welcome, rx) = BusClient::connect(&path, id).await.expect("connect");
        assert_eq!(welcome.cron_leader, id == 0, "exactly worker 0 leads cron");
        clients.push((id, client, rx));
    }
    wait_joined(&mut ev_rx, WORKERS as usize).await;

    for (id, client, _) in &clients {
        for seq in 0..PER_WORKER {
            client.send(&BusMsg::Publish { origin: *id, seq, topic: "posts".into(), payload: serde_json::json!({"n": seq}) });
        }
        client.send(&BusMsg::Invalidate { origin: *id, what: "collections".into() });
    }

    let expected = (WORKERS as u64 - 1) * (PER_WORKER + 1);
    for (id, _, rx) in clients.iter_mut() {
        let mut seen: HashMap<(u32, u64), u32> = HashMap::new();
        let mut invalidations = 0;
        for _ in 0..expected {
            let msg = tokio::time::timeout(RECV_TIMEOUT, rx.recv()).await.expect("in time").expect("open");
            match msg {
                BusMsg::Publish { origin, seq, .. } => {
                    assert_ne!(origin, *id, "a worker never receives its own publish");
                    *seen.entry((origin, seq)).or_default() += 1;
                }
                BusMsg::Invalidate { origin, .. } => {
                    assert_ne!(origin, *id);
                    invalidations += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(invalidations, WORKERS - 1);
        assert_eq!(seen.len() as u64, (WORKERS as u64 - 1) * PER_WORKER, "worker {id} got every publish");
        assert!(seen.values().all(|&n| n == 1), "worker {id} got duplicates");
        // Nothing more is on the way.
        assert!(tokio::time::timeout(Duration::from_millis(200), rx.recv()).await.is_err(), "extra messages");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_worker_never_blocks_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(".bus.sock");
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let hub = Hub::start(&path, ev_tx).expect("hub");

    // Worker 9 says Hello and then never reads again.
    let mut stalled = tokio::net::UnixStream::connect(&path).await.expect("connect");
    let hello = codec::encode(&BusMsg::Hello {
        worker_id: 9,
        pid: 1,
        version: env!("CARGO_PKG_VERSION").into(),
        proto: PROTOCOL_VERSION,
    })
    .expect("encode");
    stalled.write_all(hello.as_bytes().as_ref()).await.expect("hello");

    let (sender, _, _rx0) = BusClient::connect(&path, 0).await.expect("sender");
    let (_receiver_client, _, mut receiver) = BusClient::connect(&path, 1).await.expect("receiver");
    wait_joined(&mut ev_rx, 3).await;

    // Far more than the stalled worker's queue plus its socket buffer can hold, sent in
    // batches that the healthy receiver takes in full before the next, so only the stalled
    // worker can ever fall behind.
    const BATCHES: u64 = 30;
    const BATCH: u64 = 1000;
    let payload = serde_json::json!("x".repeat(200));
    for b in 0..BATCHES {
        for i in 0..BATCH {
            let seq = b * BATCH + i;
            sender.send(&BusMsg::Publish { origin: 0, seq, topic: "t".into(), payload: payload.clone() });
        }
        for i in 0..BATCH {
            let want = b * BATCH + i;
            match tokio::time::timeout(RECV_TIMEOUT, receiver.recv()).await {
                Ok(Some(BusMsg::Publish { seq, .. })) => assert_eq!(seq, want, "in order, none lost"),
                other => panic!("healthy receiver stalled at {want}: {other:?}"),
            }
        }
    }
    assert_eq!(sender.dropped(), 0);
    assert!(hub.dropped() > 0, "the stalled worker's overflow was dropped and counted");
}

#[tokio::test]
async fn a_worker_of_another_version_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(".bus.sock");
    let (ev_tx, _ev_rx) = mpsc::unbounded_channel();
    let _hub = Hub::start(&path, ev_tx).expect("hub");
    let mut s = tokio::net::UnixStream::connect(&path).await.expect("connect");
    let hello = codec::encode(&BusMsg::Hello { worker_id: 0, pid: 1, version: "0.0.0-old".into(), proto: PROTOCOL_VERSION })
        .expect("encode");
    s.write_all(hello.as_bytes().as_ref()).await.expect("hello");
    let answer = tokio::time::timeout(RECV_TIMEOUT, codec::read_frame(&mut s)).await.expect("in time");
    assert!(matches!(answer, Ok(None)), "closed without Welcome: {answer:?}");
}

#[tokio::test]
async fn an_oversized_frame_closes_only_that_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(".bus.sock");
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let _hub = Hub::start(&path, ev_tx).expect("hub");
    let (a, _, _ra) = BusClient::connect(&path, 0).await.expect("a");
    let (_b, _, mut rb) = BusClient::connect(&path, 1).await.expect("b");
    wait_joined(&mut ev_rx, 2).await;

    let mut evil = tokio::net::UnixStream::connect(&path).await.expect("connect");
    evil.write_all(&u32::MAX.to_be_bytes()).await.expect("write");
    let answer = tokio::time::timeout(RECV_TIMEOUT, codec::read_frame(&mut evil)).await.expect("in time");
    assert!(matches!(answer, Ok(None)), "the hub hangs up on a bogus length");

    a.send(&BusMsg::Invalidate { origin: 0, what: "settings".into() });
    let got = tokio::time::timeout(RECV_TIMEOUT, rb.recv()).await.expect("in time").expect("open");
    assert_eq!(got, BusMsg::Invalidate { origin: 0, what: "settings".into() });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_message_reaches_only_its_target_or_bounces_to_its_sender() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(".bus.sock");
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let _hub = Hub::start(&path, ev_tx).expect("hub");
    let (a, _, mut ra) = BusClient::connect(&path, 0).await.expect("a");
    let (_b, _, mut rb) = BusClient::connect(&path, 1).await.expect("b");
    let (_c, _, mut rc) = BusClient::connect(&path, 2).await.expect("c");
    wait_joined(&mut ev_rx, 3).await;

    let ask = BusMsg::Direct { to: 2, from: 0, topic: "realtime.subscribe".into(), payload: serde_json::json!({"id": 1}) };
    a.send(&ask);
    let got = tokio::time::timeout(RECV_TIMEOUT, rc.recv()).await.expect("in time").expect("open");
    assert_eq!(got, ask);
    // Worker 7 is not connected: the frame comes back to its sender, marked undeliverable.
    a.send(&BusMsg::Direct { to: 7, from: 0, topic: "realtime.subscribe".into(), payload: serde_json::json!({"id": 2}) });
    match tokio::time::timeout(RECV_TIMEOUT, ra.recv()).await.expect("in time").expect("open") {
        BusMsg::Direct { to, from, topic, payload } => {
            assert_eq!((to, from, topic.as_str()), (0, 7, vaultbase::shared::bus::UNDELIVERABLE));
            assert_eq!(payload["id"], 2);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(tokio::time::timeout(Duration::from_millis(200), rb.recv()).await.is_err(), "worker 1 saw a message not meant for it");
}
