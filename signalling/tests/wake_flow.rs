//! The whole wake flow: callee offline -> Web Push (checked by independent
//! http_ece / py_vapid) -> callee connects -> offer delivered once ->
//! answer -> caller told. Plus cancel pushes, retries and token pruning.

mod common;
#[path = "common/push_sink.rs"]
mod push_sink;
#[path = "common/python.rs"]
mod python;

use std::time::Duration;

use base64::Engine as _;
use sotto_signalling::client::{ClientEvent, SignalClient};
use sotto_signalling::protocol::{CallId, MessageKind};
use sotto_signalling::seal::CallPayload;
use sotto_signalling::server;
use sotto_signalling::store::Store;
use sotto_signalling::util::unix_ms;

struct Ua {
    keys: serde_json::Value,
}

impl Ua {
    fn new() -> Self {
        Self {
            keys: python::run(&["keygen"], &serde_json::Value::Null),
        }
    }
    async fn subscribe(&self, client: &SignalClient, token: &str, endpoint: &str) {
        let k = &self.keys;
        client
            .put_push(
                token,
                "webpush",
                endpoint,
                k["p256dh"].as_str().unwrap(),
                k["auth"].as_str().unwrap(),
            )
            .await
            .unwrap();
    }
    /// Decrypts and verifies one received push with the independent checker.
    fn check(&self, got: &push_sink::Received, sink_base: &str) -> serde_json::Value {
        let h = |n: &str| {
            got.headers
                .get(n)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        assert_eq!(h("content-encoding"), "aes128gcm");
        assert_eq!(h("urgency"), "high");
        let req = serde_json::json!({
            "private": self.keys["private"],
            "auth": self.keys["auth"],
            "body": base64::engine::general_purpose::STANDARD.encode(&got.body),
            "authorization": h("authorization"),
        });
        let out = python::run(&["check"], &req);
        assert_eq!(
            out["vapid_ok"], true,
            "VAPID signature verified by py_vapid"
        );
        assert_eq!(
            out["claims"]["aud"], sink_base,
            "VAPID audience is the push service origin"
        );
        let exp = out["claims"]["exp"].as_u64().unwrap();
        let now = unix_ms() / 1000;
        assert!(
            exp > now && exp <= now + 24 * 3600,
            "RFC 8292: exp within 24 h"
        );
        assert!(
            out["claims"]["sub"]
                .as_str()
                .unwrap()
                .starts_with("mailto:")
        );
        serde_json::from_str(out["plaintext"].as_str().unwrap()).unwrap()
    }
}

async fn next_push(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<push_sink::Received>,
) -> push_sink::Received {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("a push within 30 s")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_callee_is_woken_by_web_push() {
    let python_ok = python::interpreter();
    assert!(!python_ok.is_empty());
    let (sink, mut pushes, script) = push_sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.push.vapid_key_file = Some(dir.path().join("vapid.der"));
    cfg.push.retry_base_ms = 50;
    let srv = server::start(cfg, None).await.unwrap();
    let base = format!("http://{}", srv.addr);
    let (alice, atok) = common::device(&base).await;
    let (bob, btok) = common::device(&base).await;
    let (carol, ctok) = common::device(&base).await;
    let bob_ua = Ua::new();
    let carol_ua = Ua::new();
    bob_ua
        .subscribe(&bob, &btok, &format!("{sink}/push/bob"))
        .await;
    carol_ua
        .subscribe(&carol, &ctok, &format!("{sink}/push/carol"))
        .await;
    // Carol's push service is briefly overloaded: 429 with Retry-After first.
    script
        .lock()
        .unwrap()
        .insert("push/carol".into(), vec![(429, Some(1)), (201, None)]);

    let mut aconn = alice.connect(true);
    common::wait_for(&mut aconn, "alice connected", |e| {
        *e == ClientEvent::Connected
    })
    .await;
    let mut bconn = bob.connect(false); // asleep until pushed

    let call = CallId::new("call-wake").unwrap();
    let offer = CallPayload {
        zrtp_hash: Some("1.10 aaaa".into()),
        ..Default::default()
    };
    let (bob_id, carol_id) = (bob.device_id(), carol.device_id());
    let bob_keys = alice.device_keys(&atok, &bob_id).await.unwrap();
    let carol_keys = alice.device_keys(&atok, &carol_id).await.unwrap();
    // The same call rings both of the callee's devices.
    aconn
        .send(
            (&bob_id, &bob_keys),
            call.clone(),
            MessageKind::Offer,
            &offer,
        )
        .unwrap();
    aconn
        .send(
            (&carol_id, &carol_keys),
            call.clone(),
            MessageKind::Offer,
            &offer,
        )
        .unwrap();

    let mut by_path = std::collections::HashMap::<String, Vec<push_sink::Received>>::new();
    while by_path.get("push/bob").is_none_or(|v| v.is_empty())
        || by_path.get("push/carol").is_none_or(|v| v.len() < 2)
    {
        let got = next_push(&mut pushes).await;
        by_path.entry(got.path.clone()).or_default().push(got);
    }
    let bob_push = &by_path["push/bob"][0];
    assert_eq!(bob_push.headers["ttl"], "45");
    assert_eq!(bob_push.headers["topic"], call.as_str());
    let payload = bob_ua.check(bob_push, &sink);
    assert_eq!(payload["call_id"], call.as_str());
    assert_eq!(payload["kind"], "wake");
    // Carol's was retried after the 429 and then decrypts as well.
    assert_eq!(
        carol_ua.check(&by_path["push/carol"][1], &sink)["kind"],
        "wake"
    );

    // Bob's phone wakes on the push, connects and drains: the offer arrives once.
    bconn.on_push_received();
    let (envelope, payload) = common::next_message(&mut bconn, "offer after wake").await;
    assert_eq!(
        (envelope.kind, *payload),
        (MessageKind::Offer, offer.clone())
    );

    // Bob answers; Alice is told, and withdraws the call from Carol.
    let alice_id = alice.device_id();
    let alice_keys = bob.device_keys(&btok, &alice_id).await.unwrap();
    bconn
        .send(
            (&alice_id, &alice_keys),
            call.clone(),
            MessageKind::Answer,
            &CallPayload::default(),
        )
        .unwrap();
    let (envelope, _) = common::next_message(&mut aconn, "answer").await;
    assert_eq!(envelope.kind, MessageKind::Answer);
    assert_eq!(envelope.from, bob_id);
    aconn
        .send(
            (&carol_id, &carol_keys),
            call.clone(),
            MessageKind::Cancel,
            &CallPayload::default(),
        )
        .unwrap();

    // Carol gets a cancel push under the same Topic, so it replaces the wake.
    let cancel = loop {
        let got = next_push(&mut pushes).await;
        if got.path == "push/carol" {
            break got;
        }
    };
    assert_eq!(cancel.headers["topic"], call.as_str());
    assert_eq!(carol_ua.check(&cancel, &sink)["kind"], "cancel");
    // When Carol connects she finds only the cancel: the offer was withdrawn.
    let mut cconn = carol.connect(true);
    let (envelope, _) = common::next_message(&mut cconn, "cancel").await;
    assert_eq!(envelope.kind, MessageKind::Cancel);

    // Exactly once: Bob reconnecting gets nothing again (his ack deleted it).
    drop(bconn);
    let mut bconn = bob.connect(true);
    common::wait_for(&mut bconn, "bob reconnected", |e| {
        *e == ClientEvent::Connected
    })
    .await;
    let store = Store::open(&format!(
        "sqlite://{}",
        dir.path().join("signald.db").display()
    ))
    .await
    .unwrap();
    assert!(
        store
            .fetch(&bob_id, 0, unix_ms(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_subscriptions_are_pruned() {
    let (sink, mut pushes, script) = push_sink::start().await;
    script
        .lock()
        .unwrap()
        .insert("push/dave".into(), vec![(410, None)]);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.push.vapid_key_file = Some(dir.path().join("vapid.der"));
    let srv = server::start(cfg, None).await.unwrap();
    let base = format!("http://{}", srv.addr);
    let (alice, atok) = common::device(&base).await;
    let (dave, dtok) = common::device(&base).await;
    let ua = Ua::new();
    ua.subscribe(&dave, &dtok, &format!("{sink}/push/dave"))
        .await;
    let store = Store::open(&format!(
        "sqlite://{}",
        dir.path().join("signald.db").display()
    ))
    .await
    .unwrap();
    assert_eq!(
        store.push_endpoints(&dave.device_id()).await.unwrap().len(),
        1
    );

    let mut aconn = alice.connect(true);
    let dave_id = dave.device_id();
    let keys = alice.device_keys(&atok, &dave_id).await.unwrap();
    let id = aconn
        .send(
            (&dave_id, &keys),
            CallId::new("c-dead").unwrap(),
            MessageKind::Offer,
            &CallPayload::default(),
        )
        .unwrap();
    // Dave is not connected: the offer is queued for him.
    common::wait_for(&mut aconn, "queued", |e| common::queued(e, &id)).await;
    let got = next_push(&mut pushes).await;
    assert_eq!(got.path, "push/dave");
    // The 410 prunes the subscription (bounded poll: pruning is asynchronous).
    for _ in 0..300 {
        if store.push_endpoints(&dave_id).await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(store.push_endpoints(&dave_id).await.unwrap().is_empty());
    // The offer itself stays queued for when Dave comes back.
    assert_eq!(
        store.fetch(&dave_id, 0, unix_ms(), 10).await.unwrap().len(),
        1
    );
    srv.shutdown().await;
}
