//! Routing to another node is counted only when it reached that node:
//! a PUBLISH no node listens to is a failed route, not a routed one.

mod common;
#[path = "common/servers.rs"]
mod servers;

use sotto_signalling::protocol::{CallId, MessageKind};
use sotto_signalling::seal::CallPayload;
use sotto_signalling::server;
use sotto_signalling::store::Store;
use sotto_signalling::util::unix_ms;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_to_a_gone_node_is_not_counted_as_routed() {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let redis = servers::Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.redis_url = Some(redis.url.clone());
    let srv = server::start(cfg.clone(), Some(handle)).await.unwrap();
    let base = format!("http://{}", srv.addr);
    let (alice, atok) = common::device(&base).await;
    let (bob, _) = common::device(&base).await;
    let bob_id = bob.device_id();

    // Bob's presence names a node that crashed: nothing subscribes to its channel.
    let store = Store::open(&cfg.database_url).await.unwrap();
    store
        .set_presence(&bob_id, "node-gone", unix_ms())
        .await
        .unwrap();

    let mut aconn = alice.connect(true);
    let keys = alice.device_keys(&atok, &bob_id).await.unwrap();
    let id = aconn
        .send(
            (&bob_id, &keys),
            CallId::new("to-gone-node").unwrap(),
            MessageKind::Offer,
            &CallPayload::default(),
        )
        .unwrap();
    // Not routed: queued for Bob, as for a device that is not connected.
    common::wait_for(&mut aconn, "offer queued", |e| common::queued(e, &id)).await;

    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("signald_routed_out_failed_total{reason=\"no_subscriber\"} 1"),
        "missing the failed route in:\n{text}"
    );
    assert!(
        !text.contains("signald_routed_out_total"),
        "a PUBLISH nobody heard was counted as routed:\n{text}"
    );
    store.close().await;
    srv.shutdown().await;
}
