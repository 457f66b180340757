//! The client library rides out a server outage: messages sent while the
//! server is down are kept, resent after reconnecting (with back-off), and
//! delivered once.

mod common;

use sotto_signalling::client::ClientEvent;
use sotto_signalling::protocol::{CallId, MessageKind};
use sotto_signalling::seal::CallPayload;
use sotto_signalling::server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_messages_are_resent_after_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    let srv = server::start(cfg.clone(), None).await.unwrap();
    let base = format!("http://{}", srv.addr);
    let (alice, atok) = common::device(&base).await;
    let (bob, _) = common::device(&base).await;
    let bob_id = bob.device_id();
    let bob_keys = alice.device_keys(&atok, &bob_id).await.unwrap();
    let mut aconn = alice.connect(true);
    common::wait_for(&mut aconn, "connected", |e| *e == ClientEvent::Connected).await;

    // The server goes away; Alice keeps sending.
    cfg.listen = srv.addr;
    srv.shutdown().await;
    common::wait_for(&mut aconn, "disconnected", |e| {
        *e == ClientEvent::Disconnected
    })
    .await;
    let call = CallId::new("outage").unwrap();
    let offer = aconn
        .send(
            (&bob_id, &bob_keys),
            call.clone(),
            MessageKind::Offer,
            &CallPayload::default(),
        )
        .unwrap();
    let ice = aconn
        .send(
            (&bob_id, &bob_keys),
            call,
            MessageKind::Ice,
            &CallPayload::default(),
        )
        .unwrap();

    // Back on the same address: the driver reconnects and resends both.
    let srv = server::start(cfg, None).await.unwrap();
    common::wait_for(&mut aconn, "offer accepted", |e| common::stored(e, &offer)).await;
    common::wait_for(&mut aconn, "ice accepted", |e| common::stored(e, &ice)).await;
    let mut bconn = bob.connect(true);
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        if let ClientEvent::Message { envelope, .. } =
            common::wait_for(&mut bconn, "messages", |e| {
                matches!(e, ClientEvent::Message { .. })
            })
            .await
        {
            kinds.push(envelope.kind);
        }
    }
    assert_eq!(kinds, [MessageKind::Offer, MessageKind::Ice]);
    srv.shutdown().await;
}

/// A delivered message whose sender's keys cannot be fetched for a passing
/// reason (here the session behind the lookup is gone: 401) is neither
/// acknowledged nor dropped: the client reconnects, and the server's
/// redelivery is opened once the keys can be had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_key_lookup_leaves_the_message_for_redelivery() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(dir.path());
    let db = cfg.database_url.clone();
    let srv = server::start(cfg, None).await.unwrap();
    let base = format!("http://{}", srv.addr);
    let (alice, atok) = common::device(&base).await;
    let (bob, _) = common::device(&base).await;
    let bob_id = bob.device_id();
    let bob_keys = alice.device_keys(&atok, &bob_id).await.unwrap();
    let mut aconn = alice.connect(true);
    let mut bconn = bob.connect(true);
    common::wait_for(&mut aconn, "alice connected", |e| {
        *e == ClientEvent::Connected
    })
    .await;
    common::wait_for(&mut bconn, "bob connected", |e| {
        *e == ClientEvent::Connected
    })
    .await;

    // Every session ends; the open WebSockets stay up, but Bob's lookup of
    // Alice's keys will be refused until he logs in again.
    let store = sotto_signalling::store::Store::open(&db).await.unwrap();
    store.sweep(u64::MAX / 2).await.unwrap();
    store.close().await;

    let sent = aconn
        .send(
            (&bob_id, &bob_keys),
            CallId::new("lookup").unwrap(),
            MessageKind::Offer,
            &CallPayload::default(),
        )
        .unwrap();
    match common::wait_for(&mut bconn, "the offer, or its loss", |e| {
        matches!(e, ClientEvent::Message { .. } | ClientEvent::Dropped(_))
    })
    .await
    {
        ClientEvent::Message { envelope, .. } => assert_eq!(envelope.id, sent),
        other => panic!("the offer was dropped: {other:?}"),
    }
    srv.shutdown().await;
}
