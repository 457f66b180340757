//! PostgreSQL storage and two signald nodes routing through Redis pub/sub,
//! against a real `postgres` and a real `redis-server` on loopback.

mod common;
#[path = "common/servers.rs"]
mod servers;

use sotto_signalling::client::{ClientEvent, Connection, SignalClient};
use sotto_signalling::protocol::{CallId, DeviceId, MessageKind};
use sotto_signalling::seal::{CallPayload, DevicePublic};
use sotto_signalling::server;
use sotto_signalling::store::{Enqueued, Store};
use sotto_signalling::util::unix_ms;

fn node_config(pg: &str, redis: &str, node: &str) -> sotto_signalling::config::Config {
    sotto_signalling::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: pg.into(),
        redis_url: Some(redis.into()),
        node_id: node.into(),
        ..Default::default()
    }
}

/// Two nodes, one database, Redis between them; Alice registered on node
/// A and Bob on node B, each holding the other's keys.
struct TwoNodes {
    a: server::Running,
    b: server::Running,
    alice: SignalClient,
    bob: SignalClient,
    bob_keys: DevicePublic,
    alice_keys: DevicePublic,
}

impl TwoNodes {
    async fn start(pg: &str, redis: &str) -> Self {
        let a = server::start(node_config(pg, redis, "node-a"), None)
            .await
            .unwrap();
        let b = server::start(node_config(pg, redis, "node-b"), None)
            .await
            .unwrap();
        let (alice, atok) = common::device(&format!("http://{}", a.addr)).await;
        let (bob, btok) = common::device(&format!("http://{}", b.addr)).await;
        let bob_keys = alice.device_keys(&atok, &bob.device_id()).await.unwrap();
        let alice_keys = bob.device_keys(&btok, &alice.device_id()).await.unwrap();
        Self {
            a,
            b,
            alice,
            bob,
            bob_keys,
            alice_keys,
        }
    }
}

/// Sends an offer for `call` from `from` to `to` and waits until it is accepted.
async fn offer(from: &mut Connection, to: (&DeviceId, &DevicePublic), call: &str) {
    let id = from
        .send(
            to,
            CallId::new(call).unwrap(),
            MessageKind::Offer,
            &CallPayload::default(),
        )
        .unwrap();
    common::wait_for(from, "offer accepted", |e| common::stored(e, &id)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_and_two_nodes_over_redis() {
    let pg = servers::Postgres::start();
    let redis = servers::Redis::start();

    // The same migrations and queries on PostgreSQL: order, dedupe, ack.
    let store = Store::open(&pg.url).await.unwrap();
    let bob = DeviceId::new("pg-bob").unwrap();
    let mut env = sotto_signalling::protocol::Envelope {
        v: 1,
        id: sotto_signalling::protocol::MessageId::new("m1").unwrap(),
        from: DeviceId::new("pg-alice").unwrap(),
        to: bob.clone(),
        call_id: CallId::new("c").unwrap(),
        kind: MessageKind::Offer,
        ts_ms: 0,
        enc: String::new(),
        ct: String::new(),
        sig: String::new(),
    };
    let far = unix_ms() + 60_000;
    assert_eq!(
        store.enqueue(&env, "one", far, far).await.unwrap(),
        Enqueued::Stored(1)
    );
    assert_eq!(
        store.enqueue(&env, "one", far, far).await.unwrap(),
        Enqueued::Duplicate
    );
    env.id = sotto_signalling::protocol::MessageId::new("m2").unwrap();
    assert_eq!(
        store.enqueue(&env, "two", far, far).await.unwrap(),
        Enqueued::Stored(2)
    );
    let q = store.fetch(&bob, 0, unix_ms(), 10).await.unwrap();
    assert_eq!(
        q.iter().map(|q| q.body.as_str()).collect::<Vec<_>>(),
        ["one", "two"]
    );
    assert!(store.ack(&bob, &env.from, "m1").await.unwrap());
    assert_eq!(store.fetch(&bob, 0, unix_ms(), 10).await.unwrap().len(), 1);
    // The per-device cap on push endpoints holds on PostgreSQL too.
    let ep = |token: &str| sotto_signalling::store::PushEndpoint {
        provider: "fcm".into(),
        endpoint: token.into(),
        p256dh: String::new(),
        auth: String::new(),
    };
    assert!(store.put_push_endpoint(&bob, &ep("t0"), 1).await.unwrap());
    assert!(!store.put_push_endpoint(&bob, &ep("t1"), 1).await.unwrap());
    assert!(store.put_push_endpoint(&bob, &ep("t0"), 1).await.unwrap());
    store.close().await;

    let TwoNodes {
        a,
        b,
        alice,
        bob,
        bob_keys,
        alice_keys,
    } = TwoNodes::start(&pg.url, &redis.url).await;
    let (bob_id, alice_id) = (bob.device_id(), alice.device_id());

    // Queued on node A while Bob is offline, delivered when he connects to B.
    let mut aconn = alice.connect(true);
    common::wait_for(&mut aconn, "alice on A", |e| *e == ClientEvent::Connected).await;
    let call = CallId::new("two-node").unwrap();
    let id = aconn
        .send(
            (&bob_id, &bob_keys),
            call.clone(),
            MessageKind::Offer,
            &CallPayload::default(),
        )
        .unwrap();
    common::wait_for(&mut aconn, "offer accepted", |e| common::stored(e, &id)).await;
    let mut bconn = bob.connect(true);
    let (envelope, _) = common::next_message(&mut bconn, "offer on B").await;
    assert_eq!(envelope.kind, MessageKind::Offer);

    // Live both ways: B -> Redis -> A, and A -> Redis -> B.
    bconn
        .send(
            (&alice_id, &alice_keys),
            call.clone(),
            MessageKind::Answer,
            &CallPayload::default(),
        )
        .unwrap();
    let (envelope, _) = common::next_message(&mut aconn, "answer on A").await;
    assert_eq!(
        (envelope.kind, envelope.from.clone()),
        (MessageKind::Answer, bob_id.clone())
    );
    aconn
        .send(
            (&bob_id, &bob_keys),
            call.clone(),
            MessageKind::Hangup,
            &CallPayload::default(),
        )
        .unwrap();
    let (envelope, _) = common::next_message(&mut bconn, "hang-up on B").await;
    assert_eq!(envelope.kind, MessageKind::Hangup);
    a.shutdown().await;
    b.shutdown().await;
}

/// A Redis restart drops both nodes' links to it (node A's PUBLISH
/// connection, node B's subscription); both come back by themselves and
/// an offer from A still reaches Bob, connected to B all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_survives_a_redis_restart() {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let pg = servers::Postgres::start();
    let mut redis = servers::Redis::start();
    let nodes = TwoNodes::start(&pg.url, &redis.url).await;
    let bob_id = nodes.bob.device_id();
    let mut aconn = nodes.alice.connect(true);
    let mut bconn = nodes.bob.connect(true);
    common::wait_for(&mut aconn, "alice on A", |e| *e == ClientEvent::Connected).await;
    common::wait_for(&mut bconn, "bob on B", |e| *e == ClientEvent::Connected).await;

    offer(&mut aconn, (&bob_id, &nodes.bob_keys), "before-restart").await;
    let (envelope, _) = common::next_message(&mut bconn, "offer before the restart").await;
    assert_eq!(envelope.call_id.as_str(), "before-restart");

    redis.restart();
    offer(&mut aconn, (&bob_id, &nodes.bob_keys), "after-restart").await;
    let (envelope, _) = common::next_message(&mut bconn, "offer after the restart").await;
    assert_eq!(envelope.call_id.as_str(), "after-restart");
    let text = metrics.render();
    for link in ["publish", "subscribe"] {
        let needle = format!("signald_redis_reconnects_total{{link=\"{link}\"}}");
        assert!(text.contains(&needle), "missing {needle:?} in:\n{text}");
    }
    nodes.a.shutdown().await;
    nodes.b.shutdown().await;
}

/// The per-device endpoint cap holds under concurrent PUTs on PostgreSQL,
/// whose READ COMMITTED would let each count without the others' rows;
/// so do the queue caps under concurrent senders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_hold_under_concurrent_writes_on_postgres() {
    use sotto_signalling::store::{PushEndpoint, QueueCaps};
    let pg = servers::Postgres::start();
    let store = Store::open(&pg.url).await.unwrap();
    let mut worst = 0;
    for round in 0..20 {
        let d = DeviceId::new(format!("dev{round}")).unwrap();
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
        let mut tasks = Vec::new();
        for n in 0..8 {
            let (store, d, barrier) = (store.clone(), d.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                let ep = PushEndpoint {
                    provider: "fcm".into(),
                    endpoint: format!("t{n}"),
                    p256dh: String::new(),
                    auth: String::new(),
                };
                barrier.wait().await;
                store.put_push_endpoint(&d, &ep, 3).await.unwrap()
            }));
        }
        let mut taken = 0;
        for t in tasks {
            taken += usize::from(t.await.unwrap());
        }
        let stored = store.push_endpoints(&d).await.unwrap().len();
        assert_eq!(taken, stored);
        worst = worst.max(stored);
    }
    assert_eq!(
        worst, 3,
        "cap 3: at most {worst} endpoints stored for one device"
    );

    let caps = QueueCaps {
        messages: 3,
        bytes: 1 << 20,
        per_sender: 3,
    };
    let far = unix_ms() + 600_000;
    let bob = DeviceId::new("bob").unwrap();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
    let mut tasks = Vec::new();
    for n in 0..8 {
        let (store, barrier, bob) = (store.clone(), barrier.clone(), bob.clone());
        tasks.push(tokio::spawn(async move {
            let env = sotto_signalling::protocol::Envelope {
                v: 1,
                id: sotto_signalling::protocol::MessageId::new("m").unwrap(),
                from: DeviceId::new(format!("s{n}")).unwrap(),
                to: bob,
                call_id: CallId::new("c").unwrap(),
                kind: MessageKind::Ice,
                ts_ms: 0,
                enc: String::new(),
                ct: String::new(),
                sig: String::new(),
            };
            barrier.wait().await;
            store
                .enqueue_capped(&env, "{}", far, far, unix_ms(), caps)
                .await
                .unwrap()
        }));
    }
    let mut stored = 0;
    for t in tasks {
        stored += usize::from(matches!(t.await.unwrap(), Enqueued::Stored(_)));
    }
    assert_eq!(stored, 3);
    assert_eq!(store.fetch(&bob, 0, unix_ms(), 100).await.unwrap().len(), 3);
    store.close().await;
}

/// While Redis is down, a wake for a device connected to another node is
/// lost: that node's connections read their queues every few seconds
/// until the subscription is back, so Bob still gets Alice's offer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_another_nodes_device_while_redis_is_down() {
    let pg = servers::Postgres::start();
    let mut redis = servers::Redis::start();
    let nodes = TwoNodes::start(&pg.url, &redis.url).await;
    let bob_id = nodes.bob.device_id();
    let mut aconn = nodes.alice.connect(true);
    let mut bconn = nodes.bob.connect(true);
    common::wait_for(&mut aconn, "alice on A", |e| *e == ClientEvent::Connected).await;
    common::wait_for(&mut bconn, "bob on B", |e| *e == ClientEvent::Connected).await;
    redis.stop();
    offer(&mut aconn, (&bob_id, &nodes.bob_keys), "redis-down").await;
    let (envelope, _) = common::next_message(&mut bconn, "the offer, Redis down").await;
    assert_eq!(envelope.call_id.as_str(), "redis-down");
    nodes.a.shutdown().await;
    nodes.b.shutdown().await;
}

/// A TCP proxy to `upstream` that can turn the connections it holds into
/// black holes: open, reading and dropping everything, never closing (a
/// half-open link: what a vanished network path looks like). Connections
/// made after that pass normally.
struct BlackHoleProxy {
    port: u16,
    /// Connections numbered below this swallow everything.
    swallow_below: std::sync::Arc<std::sync::atomic::AtomicU64>,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl BlackHoleProxy {
    async fn start(upstream: String) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let swallow_below = std::sync::Arc::new(AtomicU64::new(0));
        let next = std::sync::Arc::new(AtomicU64::new(0));
        let (swallow, counter) = (swallow_below.clone(), next.clone());
        tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let Ok(up) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let id = counter.fetch_add(1, Ordering::SeqCst);
                let (dr, dw) = down.into_split();
                let (ur, uw) = up.into_split();
                tokio::spawn(pipe(dr, uw, id, swallow.clone()));
                tokio::spawn(pipe(ur, dw, id, swallow.clone()));
            }
        });
        Self {
            port,
            swallow_below,
            next,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Every connection made so far becomes a black hole.
    fn swallow_existing(&self) {
        use std::sync::atomic::Ordering;
        let made = self.next.load(Ordering::SeqCst);
        self.swallow_below.store(made, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` until either closes, or, once connection `id` is
/// below `swallow`, reads and drops everything.
async fn pipe(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    id: u64,
    swallow: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let Ok(n) = from.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        if id < swallow.load(std::sync::atomic::Ordering::SeqCst) {
            continue; // swallowed, and the socket stays open
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Node B's link to Redis goes half-open: no reset, no error, nothing
/// read. Its subscription's pings go unanswered, so it subscribes again
/// over a new connection and an offer from A still reaches Bob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_gone_silent_is_found_and_renewed() {
    let pg = servers::Postgres::start();
    let redis = servers::Redis::start();
    let upstream = redis.url.trim_start_matches("redis://").to_owned();
    let proxy = BlackHoleProxy::start(upstream).await;
    let a = server::start(node_config(&pg.url, &redis.url, "node-a"), None)
        .await
        .unwrap();
    let b = server::start(node_config(&pg.url, &proxy.url(), "node-b"), None)
        .await
        .unwrap();
    let (alice, atok) = common::device(&format!("http://{}", a.addr)).await;
    let (bob, _) = common::device(&format!("http://{}", b.addr)).await;
    let bob_id = bob.device_id();
    let bob_keys = alice.device_keys(&atok, &bob_id).await.unwrap();
    let mut aconn = alice.connect(true);
    let mut bconn = bob.connect(true);
    common::wait_for(&mut aconn, "alice on A", |e| *e == ClientEvent::Connected).await;
    common::wait_for(&mut bconn, "bob on B", |e| *e == ClientEvent::Connected).await;

    offer(&mut aconn, (&bob_id, &bob_keys), "before-silence").await;
    let (envelope, _) = common::next_message(&mut bconn, "offer before the silence").await;
    assert_eq!(envelope.call_id.as_str(), "before-silence");

    proxy.swallow_existing();
    offer(&mut aconn, (&bob_id, &bob_keys), "after-silence").await;
    // Within a ping period and its timeout (7 s), and the re-subscription.
    let (envelope, _) = common::next_message(&mut bconn, "offer after the silence").await;
    assert_eq!(envelope.call_id.as_str(), "after-silence");
    a.shutdown().await;
    b.shutdown().await;
}
