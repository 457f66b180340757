//! A message whose wake never reached the connection (another node's
//! publish failed, say) is still delivered: each connection reads its
//! queue on its ping tick too.

mod common;

use std::time::Duration;

use futures_util::StreamExt as _;
use sotto_signalling::server;
use sotto_signalling::store::Store;
use sotto_signalling::util::unix_ms;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_stored_without_a_wake_is_delivered_on_the_ping_tick() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.ws_ping_interval_s = 1;
    let db = cfg.database_url.clone();
    let srv = server::start(cfg, None).await.unwrap();
    let (bob, btok) = common::device(&format!("http://{}", srv.addr)).await;
    let mut ws = common::raw_ws(srv.addr, &btok).await;
    // Stored behind the connection's back: nobody wakes it.
    let store = Store::open(&db).await.unwrap();
    let env = common::unsigned_offer(bob.device_id(), "m1");
    let far = unix_ms() + 600_000;
    store.enqueue(&env, "{}", far, far).await.unwrap();
    let delivered = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.contains("deliver") => return,
                Some(Ok(_)) => {}
                other => panic!("socket ended: {other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), delivered)
        .await
        .expect("delivered within 30 s (hang guard)");
    store.close().await;
    srv.shutdown().await;
}
