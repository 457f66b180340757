//! A client given a replay file refuses, after a restart, a message it
//! handed to the app before: a server cannot make an old call offer ring
//! the phone again by delivering it to the freshly started app.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::routing::get;
use futures_util::{SinkExt as _, StreamExt as _};
use sotto_signalling::auth::register_bytes;
use sotto_signalling::client::{Connection, SignalClient};
use sotto_signalling::protocol::{CallId, ClientFrame, Envelope, MessageKind, ServerFrame};
use sotto_signalling::seal::{CallPayload, DeviceIdentity};
use sotto_signalling::server;
use sotto_signalling::util::unix_ms;
use tokio_tungstenite::tungstenite;

fn offer(from: &DeviceIdentity, to: &DeviceIdentity, call: &str) -> Envelope {
    from.seal(
        (&to.device_id(), to.public()),
        CallId::new(call).unwrap(),
        MessageKind::Offer,
        unix_ms(),
        &CallPayload::default(),
    )
    .unwrap()
}

/// The call id of the next message `conn` hands to the app.
async fn next_call(conn: &mut Connection, what: &str) -> String {
    common::next_message(conn, what).await.0.call_id.to_string()
}

/// Holds the server's first answer for Alice's keys: tells the test it
/// was asked, and answers once released.
struct KeyGate {
    asked: tokio::sync::mpsc::UnboundedSender<()>,
    release: Arc<tokio::sync::Notify>,
}

/// A server that logs anyone in, vouches for Alice's keys, and delivers
/// Alice's first offer again on every connection, followed on the n-th
/// (from the second on) by a fresh offer `call-n`.
async fn redelivering_server(
    me: &DeviceIdentity,
    alice: &DeviceIdentity,
    gate: Option<KeyGate>,
) -> String {
    let (sign, seal) = (alice.public().sign_b64(), alice.public().seal_b64());
    let sig = alice.sign(&register_bytes(&sign, &seal));
    let keys = serde_json::json!({"sign_key": sign, "seal_key": seal, "sig": sig});
    let gate = Arc::new(gate);
    let gated = Arc::new(AtomicBool::new(false));
    let deliver =
        |env: Envelope| serde_json::to_string(&ServerFrame::Deliver { v: 1, msg: env }).unwrap();
    let first = deliver(offer(alice, me, "call-1"));
    let per_connection: Vec<Vec<String>> = (1..=3)
        .map(|n| {
            let mut frames = vec![first.clone()];
            if n > 1 {
                frames.push(deliver(offer(alice, me, &format!("call-{n}"))));
            }
            frames
        })
        .collect();
    let connections = Arc::new(AtomicUsize::new(0));
    let app = common::fake_login()
        .route(
            "/v1/devices/{id}/keys",
            get(move || {
                let keys = keys.clone();
                let (gate, gated) = (gate.clone(), gated.clone());
                async move {
                    if let Some(gate) = gate.as_ref()
                        && !gated.swap(true, Ordering::SeqCst)
                    {
                        gate.asked.send(()).unwrap();
                        gate.release.notified().await;
                    }
                    axum::Json(keys)
                }
            }),
        )
        .route(
            "/v1/ws",
            get(move |ws: WebSocketUpgrade| {
                let n = connections.fetch_add(1, Ordering::SeqCst);
                let frames = per_connection.get(n).cloned().unwrap_or_default();
                async move {
                    ws.on_upgrade(move |mut socket| async move {
                        for frame in frames {
                            let _ = socket.send(Message::Text(frame.into())).await;
                        }
                        // Hold the socket open until the client leaves.
                        while let Some(Ok(_)) = socket.recv().await {}
                    })
                }
            }),
        );
    common::serve(app).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_after_a_restart_is_refused_given_a_replay_file() {
    let me = Arc::new(DeviceIdentity::generate());
    let alice = DeviceIdentity::generate();
    let base = redelivering_server(&me, &alice, None).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay");

    let client = SignalClient::new(&base, me.clone())
        .with_replay_file(&path)
        .unwrap();
    let mut conn = client.connect(true);
    assert_eq!(next_call(&mut conn, "the offer").await, "call-1");
    // The app is killed, then woken again by a push.
    drop((conn, client));

    let client = SignalClient::new(&base, me.clone())
        .with_replay_file(&path)
        .unwrap();
    let mut conn = client.connect(true);
    // Messages are handled in order: had the old offer been accepted, it
    // would come first.
    assert_eq!(
        next_call(&mut conn, "the fresh offer").await,
        "call-2",
        "the old offer was handed to the app again after the restart"
    );
    drop((conn, client));

    // Without the file, the restarted app falls for it: the threat is real.
    let client = SignalClient::new(&base, me);
    let mut conn = client.connect(true);
    assert_eq!(next_call(&mut conn, "the replayed offer").await, "call-1");
}

/// The app goes away while a message is on its way to it (the driver is
/// fetching the sender's keys): the message was not handed on, so it must
/// not be remembered as if it had, or its redelivery to the next run of
/// the app would be refused and the call lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_app_never_got_is_accepted_after_a_restart() {
    let me = Arc::new(DeviceIdentity::generate());
    let alice = DeviceIdentity::generate();
    let (asked, mut was_asked) = tokio::sync::mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = KeyGate {
        asked,
        release: release.clone(),
    };
    let base = redelivering_server(&me, &alice, Some(gate)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay");

    let client = SignalClient::new(&base, me.clone())
        .with_replay_file(&path)
        .unwrap();
    let conn = client.connect(true);
    was_asked.recv().await.unwrap();
    drop((conn, client));
    release.notify_one();
    // The stopping driver undoes its record of the offer; wait (bounded,
    // as a hang guard only) until that is on the disk.
    let forgotten = async {
        while !std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .any(|l| l.starts_with("f "))
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), forgotten)
        .await
        .expect("the offer the app never got is still recorded after 30 s");

    let client = SignalClient::new(&base, me)
        .with_replay_file(&path)
        .unwrap();
    let mut conn = client.connect(true);
    assert_eq!(
        next_call(&mut conn, "the redelivered offer").await,
        "call-1",
        "the offer the app never got was refused as a replay"
    );
}

/// Sends `env` as its sender on a raw WebSocket and returns the answer.
async fn send_raw(addr: std::net::SocketAddr, token: &str, env: &Envelope) -> ServerFrame {
    let mut ws = common::raw_ws(addr, token).await;
    let frame = ClientFrame::Send {
        v: 1,
        msg: env.clone(),
    };
    let text = serde_json::to_string(&frame).unwrap();
    ws.send(tungstenite::Message::text(text)).await.unwrap();
    loop {
        match ws.next().await.expect("connection open").unwrap() {
            tungstenite::Message::Text(t) => return ServerFrame::parse(t.as_str()).unwrap(),
            _ => continue,
        }
    }
}

/// With the real server: Bob gets Alice's offer; then a server that has
/// lost its memory of it (a fresh database, as after a restore, or a node
/// that never saw it) takes the same sealed offer again and delivers it to
/// Bob's restarted app, which must not ring.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_server_cannot_ring_a_restarted_app_with_an_old_offer() {
    let alice = Arc::new(DeviceIdentity::generate());
    let bob = Arc::new(DeviceIdentity::generate());
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("bob-replay");
    let old = offer(&alice, &bob, "call-1");

    let dir = tempfile::tempdir().unwrap();
    let srv = server::start(common::config(dir.path()), None)
        .await
        .unwrap();
    let base = format!("http://{}", srv.addr);
    let alice_client = SignalClient::new(&base, alice.clone());
    alice_client.register().await.unwrap();
    let bob_client = SignalClient::new(&base, bob.clone())
        .with_replay_file(&path)
        .unwrap();
    bob_client.register().await.unwrap();
    let token = alice_client.login().await.unwrap();
    let reply = send_raw(srv.addr, &token, &old).await;
    assert!(matches!(reply, ServerFrame::Accepted { .. }), "{reply:?}");
    let mut conn = bob_client.connect(true);
    assert_eq!(next_call(&mut conn, "the offer").await, "call-1");
    drop((conn, bob_client));
    srv.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    let srv = server::start(common::config(dir.path()), None)
        .await
        .unwrap();
    let base = format!("http://{}", srv.addr);
    let alice_client = SignalClient::new(&base, alice.clone());
    alice_client.register().await.unwrap();
    SignalClient::new(&base, bob.clone())
        .register()
        .await
        .unwrap();
    let token = alice_client.login().await.unwrap();
    for env in [old, offer(&alice, &bob, "call-2")] {
        let reply = send_raw(srv.addr, &token, &env).await;
        assert!(matches!(reply, ServerFrame::Accepted { .. }), "{reply:?}");
    }
    let bob_client = SignalClient::new(&base, bob)
        .with_replay_file(&path)
        .unwrap();
    let mut conn = bob_client.connect(true);
    // Queued in this order, so delivered in it.
    assert_eq!(
        next_call(&mut conn, "the fresh offer").await,
        "call-2",
        "the old offer was handed to the restarted app again"
    );
    drop(conn);
    srv.shutdown().await;
}
