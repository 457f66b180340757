//! An online call set up end to end through a real server: offer, ringing,
//! answer, ICE, hang-up, each sealed, delivered once and in order.

mod common;

use sotto_signalling::client::ClientEvent;
use sotto_signalling::protocol::{CallId, MessageKind};
use sotto_signalling::seal::CallPayload;
use sotto_signalling::server;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_call_flow() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server::start(common::config(dir.path()), None)
        .await
        .unwrap();
    let base = format!("http://{}", srv.addr);
    let (alice, atok) = common::device(&base).await;
    let (bob, btok) = common::device(&base).await;
    let bob_keys = alice.device_keys(&atok, &bob.device_id()).await.unwrap();
    let alice_keys = bob.device_keys(&btok, &alice.device_id()).await.unwrap();

    let mut bconn = bob.connect(true);
    common::wait_for(&mut bconn, "bob connected", |e| {
        *e == ClientEvent::Connected
    })
    .await;
    let mut aconn = alice.connect(true);
    common::wait_for(&mut aconn, "alice connected", |e| {
        *e == ClientEvent::Connected
    })
    .await;

    let call = CallId::new("call-online").unwrap();
    let offer = CallPayload {
        media: Some("opus/48000".into()),
        ice_ufrag: Some("uf".into()),
        ice_pwd: Some("pw".into()),
        zrtp_hash: Some("1.10 0123abcd".into()),
        ..Default::default()
    };
    let bob_id = bob.device_id();
    let id = aconn
        .send(
            (&bob_id, &bob_keys),
            call.clone(),
            MessageKind::Offer,
            &offer,
        )
        .unwrap();
    common::wait_for(&mut aconn, "offer accepted", |e| {
        *e == ClientEvent::Accepted(id.clone())
    })
    .await;
    // Trickled candidates right behind the offer must arrive after it.
    let ice = CallPayload {
        candidates: vec!["candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host".into()],
        ..Default::default()
    };
    aconn
        .send((&bob_id, &bob_keys), call.clone(), MessageKind::Ice, &ice)
        .unwrap();

    let (envelope, payload) = common::next_message(&mut bconn, "offer").await;
    assert_eq!(envelope.kind, MessageKind::Offer);
    assert_eq!(envelope.from, alice.device_id());
    assert_eq!(*payload, offer);
    let (envelope, payload) = common::next_message(&mut bconn, "ice").await;
    assert_eq!(envelope.kind, MessageKind::Ice);
    assert_eq!(*payload, ice);

    let alice_id = alice.device_id();
    let answer = CallPayload {
        zrtp_hash: Some("1.10 feedbeef".into()),
        ..Default::default()
    };
    bconn
        .send(
            (&alice_id, &alice_keys),
            call.clone(),
            MessageKind::Ringing,
            &CallPayload::default(),
        )
        .unwrap();
    bconn
        .send(
            (&alice_id, &alice_keys),
            call.clone(),
            MessageKind::Answer,
            &answer,
        )
        .unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        let ev = common::wait_for(&mut aconn, "ringing and answer", |e| {
            matches!(e, ClientEvent::Message { .. })
        })
        .await;
        if let ClientEvent::Message { envelope, payload } = ev {
            if envelope.kind == MessageKind::Answer {
                assert_eq!(*payload, answer);
            }
            kinds.push(envelope.kind);
        }
    }
    assert_eq!(kinds, [MessageKind::Ringing, MessageKind::Answer]);
    srv.shutdown().await;
}

/// The caller learns when its offer waits for a callee that is not
/// connected, and for how long (the ring timeout), so that it stops
/// ringing when the offer is gone; an offer to a connected callee is
/// just accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_to_a_callee_not_connected_is_queued_for_the_ring_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.ring_timeout_s = 17;
    let srv = server::start(cfg, None).await.unwrap();
    let base = format!("http://{}", srv.addr);
    let (alice, atok) = common::device(&base).await;
    let (bob, _) = common::device(&base).await;
    let bob_id = bob.device_id();
    let bob_keys = alice.device_keys(&atok, &bob_id).await.unwrap();
    let mut aconn = alice.connect(true);
    let offer = |aconn: &mut sotto_signalling::client::Connection, call: &str| {
        aconn
            .send(
                (&bob_id, &bob_keys),
                CallId::new(call).unwrap(),
                MessageKind::Offer,
                &CallPayload::default(),
            )
            .unwrap()
    };

    let id = offer(&mut aconn, "while-away");
    let ev = common::wait_for(&mut aconn, "offer stored", |e| common::stored(e, &id)).await;
    assert_eq!(ev, ClientEvent::Queued(id, Duration::from_secs(17)));

    let mut bconn = bob.connect(true);
    common::wait_for(&mut bconn, "bob connected", |e| {
        *e == ClientEvent::Connected
    })
    .await;
    let id = offer(&mut aconn, "while-here");
    let ev = common::wait_for(&mut aconn, "offer stored", |e| common::stored(e, &id)).await;
    assert_eq!(ev, ClientEvent::Accepted(id));
    srv.shutdown().await;
}
