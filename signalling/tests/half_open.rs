//! A device whose connection went silent (half-open: no FIN, no reads) is
//! found by its unanswered pings and dropped, so offers to it go by push
//! again; a live client answers the pings and stays connected.

mod common;
#[path = "common/push_sink.rs"]
mod push_sink;

use std::time::Duration;

use sotto_signalling::client::ClientEvent;
use sotto_signalling::protocol::{CallId, MessageKind};
use sotto_signalling::seal::CallPayload;
use sotto_signalling::server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_dropped_and_its_device_is_pushed_again() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, mut pushes, _) = push_sink::start().await;
    let mut cfg = common::config(dir.path());
    cfg.push.vapid_key_file = Some(dir.path().join("vapid.der"));
    cfg.ws_ping_interval_s = 1;
    cfg.ws_missed_pongs = 1;
    let srv = server::start(cfg, None).await.unwrap();
    let base = format!("http://{}", srv.addr);
    let (alice, atok) = common::device(&base).await;
    let (bob, btok) = common::device(&base).await;
    let (p256dh, auth) = push_sink::ua_keys();
    bob.put_push(&btok, "webpush", &format!("{sink}/bob"), &p256dh, &auth)
        .await
        .unwrap();
    let bob_id = bob.device_id();
    let bob_keys = alice.device_keys(&atok, &bob_id).await.unwrap();
    let mut aconn = alice.connect(true);
    common::wait_for(&mut aconn, "alice connected", |e| {
        *e == ClientEvent::Connected
    })
    .await;

    // Bob's socket stays open but is never read again: pings go unanswered.
    let _silent = common::raw_ws(srv.addr, &btok).await;

    // Offers go into the dead socket until the server notices; from then
    // on they wake Bob by push. (Polled; the bound is only a hang guard.)
    let mut woken = false;
    for n in 0..60 {
        let call = CallId::new(format!("c{n}")).unwrap();
        let id = aconn
            .send(
                (&bob_id, &bob_keys),
                call,
                MessageKind::Offer,
                &CallPayload::default(),
            )
            .unwrap();
        let ev = common::wait_for(&mut aconn, "stored", |e| {
            common::stored(e, &id) || *e == ClientEvent::Disconnected
        })
        .await;
        assert!(
            common::stored(&ev, &id),
            "alice answers pings and stays connected: {ev:?}"
        );
        if let Ok(Some(got)) = tokio::time::timeout(Duration::from_secs(1), pushes.recv()).await {
            assert_eq!(got.path, "bob");
            woken = true;
            break;
        }
    }
    assert!(woken, "the silent connection was never dropped");
    srv.shutdown().await;
}
