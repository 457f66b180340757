//! Prometheus metrics: connected devices, messages, pushes by provider and
//! the wake-to-connect latency histogram, rendered at `/metrics`.

mod common;
#[path = "common/push_sink.rs"]
mod push_sink;

use std::time::Duration;

use sotto_signalling::client::ClientEvent;
use sotto_signalling::protocol::{CallId, MessageKind};
use sotto_signalling::seal::CallPayload;
use sotto_signalling::server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_a_woken_call() {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let (sink, mut pushes, _) = push_sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.push.vapid_key_file = Some(dir.path().join("vapid.der"));
    let srv = server::start(cfg, Some(handle)).await.unwrap();
    let base = format!("http://{}", srv.addr);
    let (alice, atok) = common::device(&base).await;
    let (bob, btok) = common::device(&base).await;
    // A syntactically valid subscription (a P-256 point and a 16-byte secret).
    let rng = ring::rand::SystemRandom::new();
    let ua =
        ring::agreement::EphemeralPrivateKey::generate(&ring::agreement::ECDH_P256, &rng).unwrap();
    let p256dh = sotto_signalling::util::b64(ua.compute_public_key().unwrap().as_ref());
    bob.put_push(
        &btok,
        "webpush",
        &format!("{sink}/push/bob"),
        &p256dh,
        &sotto_signalling::util::random_token(16),
    )
    .await
    .unwrap();

    let aconn = alice.connect(true);
    let mut bconn = bob.connect(false);
    let bob_id = bob.device_id();
    let keys = alice.device_keys(&atok, &bob_id).await.unwrap();
    aconn
        .send(
            (&bob_id, &keys),
            CallId::new("m").unwrap(),
            MessageKind::Offer,
            &CallPayload::default(),
        )
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), pushes.recv())
        .await
        .unwrap()
        .unwrap();
    bconn.on_push_received();
    common::wait_for(&mut bconn, "offer", |e| {
        matches!(e, ClientEvent::Message { .. })
    })
    .await;

    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "signald_connected_devices 2",
        "signald_messages_total{kind=\"offer\"} 1",
        "signald_pushes_sent_total{provider=\"webpush\"} 1",
        "signald_wake_to_connect_seconds_count 1",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    srv.shutdown().await;
}
