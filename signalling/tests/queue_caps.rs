//! What may wait for a device is bounded: per recipient (messages and
//! bytes) and per sender, refused to the sender as `queue_full`; and an
//! ack deletes only a message delivered on that connection, so acks cost
//! no more database writes than deliveries.

mod common;

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use sotto_signalling::client::ClientEvent;
use sotto_signalling::protocol::{CallId, ErrorCode, MessageKind, PROTOCOL_VERSION};
use sotto_signalling::seal::CallPayload;
use sotto_signalling::server;
use sotto_signalling::store::Store;
use sotto_signalling::util::unix_ms;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_messages_to_their_sender() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.queue_max_messages = 5;
    cfg.queue_max_per_sender = 3;
    let srv = server::start(cfg, None).await.unwrap();
    let base = format!("http://{}", srv.addr);
    let (alice, atok) = common::device(&base).await;
    let (carol, _) = common::device(&base).await;
    let (bob, _) = common::device(&base).await;
    let bob_id = bob.device_id();
    let bob_keys = alice.device_keys(&atok, &bob_id).await.unwrap();
    // Bob is offline: everything waits for him.
    let mut outcomes = Vec::new();
    for (who, n) in [(&alice, 4), (&carol, 3)] {
        let mut conn = who.connect(true);
        common::wait_for(&mut conn, "connected", |e| *e == ClientEvent::Connected).await;
        for i in 0..n {
            let id = conn
                .send(
                    (&bob_id, &bob_keys),
                    CallId::new(format!("c{i}")).unwrap(),
                    MessageKind::Ice,
                    &CallPayload::default(),
                )
                .unwrap();
            let ev = common::wait_for(&mut conn, "an outcome", |e| {
                matches!(e, ClientEvent::Queued(i, _) | ClientEvent::Rejected(i, _) if *i == id)
            })
            .await;
            outcomes.push(match ev {
                ClientEvent::Queued(..) => "queued",
                ClientEvent::Rejected(_, ErrorCode::QueueFull) => "full",
                other => panic!("{other:?}"),
            });
        }
    }
    // Alice's share is 3; Carol gets the 2 left of the 5.
    assert_eq!(
        outcomes,
        [
            "queued", "queued", "queued", "full", "queued", "queued", "full"
        ]
    );
    srv.shutdown().await;
}

/// Opens Bob's WebSocket.
async fn next_text(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> String {
    let next = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return t.to_string(),
                Some(Ok(_)) => {}
                other => panic!("socket ended: {other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), next)
        .await
        .expect("a frame within 30 s (hang guard)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_deletes_only_what_was_delivered_on_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    // No ping tick (which reads the queue) during the test.
    cfg.ws_ping_interval_s = 600;
    let db = cfg.database_url.clone();
    let srv = server::start(cfg, None).await.unwrap();
    let base = format!("http://{}", srv.addr);
    let (bob, btok) = common::device(&base).await;
    let bob_id = bob.device_id();
    let store = Store::open(&db).await.unwrap();
    let far = unix_ms() + 600_000;
    let ack =
        |id: &str| format!(r#"{{"type":"ack","v":{PROTOCOL_VERSION},"id":"{id}","from":"alice"}}"#);
    // A message queued before the connection: its first read of the queue
    // delivers it, so once it is here that read is over, and nothing reads
    // the queue again on its own (no ping tick, no wake). (Storing m1 right
    // after connecting raced that first read, which then delivered it.)
    let m0 = common::unsigned_offer(bob_id.clone(), "m0");
    store.enqueue(&m0, r#"{"m":0}"#, far, far).await.unwrap();
    let mut ws = common::raw_ws(srv.addr, &btok).await;
    let first = next_text(&mut ws).await;
    assert!(first.contains(r#""msg":{"m":0}"#), "{first}");
    ws.send(Message::text(ack("m0"))).await.unwrap();
    // A message stored behind the connection's back (as by another node
    // whose wake was lost): queued, not delivered on this connection.
    let env = common::unsigned_offer(bob_id.clone(), "m1");
    store.enqueue(&env, r#"{"m":1}"#, far, far).await.unwrap();
    ws.send(Message::text(ack("m1"))).await.unwrap();
    // Frames are handled in order: once this is answered, so were the acks.
    ws.send(Message::text("junk")).await.unwrap();
    assert!(next_text(&mut ws).await.contains("malformed"));
    drop(ws);
    // m1 is still there for the next connection (and m0, acked, is not).
    let mut ws = common::raw_ws(srv.addr, &btok).await;
    let frame = next_text(&mut ws).await;
    assert!(frame.contains(r#""type":"deliver""#), "{frame}");
    assert!(frame.contains(r#""msg":{"m":1}"#), "{frame}");
    store.close().await;
    srv.shutdown().await;
}
