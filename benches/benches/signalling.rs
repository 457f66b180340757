//! `cargo xtask bench signalling`: offer-to-callee latency (online callee,
//! and callee woken by a Web Push to a local push endpoint), and connected
//! devices per node with the node's memory per connection.
//!
//! The node runs in a child process (this binary re-executed with
//! `SOTTO_SIGNALD_BENCH_DB` set) so its resident memory is its own.
//! Not criterion-shaped: prints its own table and a final JSON line.
#![forbid(unsafe_code)]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use sotto_signalling::client::{ClientEvent, Connection, SignalClient};
use sotto_signalling::config::Config;
use sotto_signalling::protocol::{CallId, DeviceId, MessageKind};
use sotto_signalling::seal::{CallPayload, DeviceIdentity};
use sotto_signalling::store::Store;
use sotto_signalling::util::{random_token, unix_ms};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

const ONLINE_SAMPLES: usize = 300;
const WOKEN_SAMPLES: usize = 40;

fn main() {
    if let Ok(db) = std::env::var("SOTTO_SIGNALD_BENCH_DB") {
        return serve(&db);
    }
    let connections: usize = std::env::var("SOTTO_BENCH_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    // Each connection is a socket here and one in the node.
    let limit = rlimit::increase_nofile_limit(connections as u64 + 2_000).unwrap_or(0);
    assert!(
        limit as usize > connections + 500,
        "RLIMIT_NOFILE {limit} is too low for {connections} connections"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(connections));
}

/// The node side: a signald on loopback, address printed on stdout, until
/// stdin closes.
fn serve(db: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .unwrap();
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: db.into(),
            // One client IP opens every connection here.
            ip_rate: 1e9,
            ip_burst: 1e9,
            max_connections: 1_000_000,
            max_connections_per_ip: 1_000_000,
            device_rate: 1e6,
            device_burst: 1e6,
            push: sotto_signalling::config::PushConfig {
                vapid_key_file: Some(std::env::var("SOTTO_SIGNALD_BENCH_VAPID").unwrap().into()),
                // The bench's push sink is on loopback.
                endpoint_allow_hosts: vec!["127.0.0.1".into()],
                ..Default::default()
            },
            ..Config::default()
        };
        let running = sotto_signalling::server::start(config, Some(metrics))
            .await
            .unwrap();
        println!("{}", running.addr);
        tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
        })
        .await
        .unwrap();
        running.shutdown().await;
    });
}

struct Node {
    child: Child,
    base: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

async fn next_message(conn: &mut Connection) {
    loop {
        match conn.next_event().await {
            Some(ClientEvent::Message { .. }) => return,
            Some(_) => {}
            None => panic!("connection stopped"),
        }
    }
}

async fn run(connections: usize) {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("bench.db").display());

    // Devices for the connection test go straight into the store, with
    // sessions, so setting them up does not dominate the run.
    let store = Store::open(&db).await.unwrap();
    let mut tokens = Vec::with_capacity(connections);
    let expires = unix_ms() + 3_600_000;
    for _ in 0..connections {
        let identity = DeviceIdentity::generate();
        let id = identity.device_id();
        let p = identity.public();
        store
            .register_device(&id, &p.sign_b64(), &p.seal_b64(), unix_ms())
            .await
            .unwrap();
        let token = random_token(32);
        let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()));
        store.put_session(&hash, &id, expires).await.unwrap();
        tokens.push(token);
    }

    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("SOTTO_SIGNALD_BENCH_DB", &db)
        .env("SOTTO_SIGNALD_BENCH_VAPID", dir.path().join("vapid.der"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let node = Node {
        base: format!("http://{}", line.trim()),
        child,
    };

    let (online, woken) = latency(&node, &store).await;
    let (connected, rss_before, rss_after) = connect_many(&node, &tokens).await;
    let per_conn_kib = (rss_after.saturating_sub(rss_before)) as f64 / connected as f64;

    println!();
    println!("{:<44} {:>10} {:>10}", "signalling", "p50 ms", "p99 ms");
    println!(
        "{:<44} {:>10.2} {:>10.2}",
        format!("offer to online callee ({} calls)", online.len()),
        percentile(&online, 0.5),
        percentile(&online, 0.99)
    );
    println!(
        "{:<44} {:>10.2} {:>10.2}",
        format!("offer to push-woken callee ({} calls)", woken.len()),
        percentile(&woken, 0.5),
        percentile(&woken, 0.99)
    );
    println!(
        "connected devices on one node: {connected}; node RSS {:.1} MiB -> {:.1} MiB ({per_conn_kib:.1} KiB per connection)",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0
    );
    println!(
        "{}",
        serde_json::json!({
            "bench": "signalling",
            "online_p50_ms": percentile(&online, 0.5),
            "online_p99_ms": percentile(&online, 0.99),
            "woken_p50_ms": percentile(&woken, 0.5),
            "woken_p99_ms": percentile(&woken, 0.99),
            "connected_devices": connected,
            "node_rss_mib": rss_after as f64 / 1024.0,
            "kib_per_connection": per_conn_kib,
        })
    );
}

async fn device(base: &str) -> (SignalClient, String) {
    let c = SignalClient::new(base, Arc::new(DeviceIdentity::generate()));
    c.register().await.unwrap();
    let t = c.login().await.unwrap();
    (c, t)
}

/// Offer-to-callee latency: from just before the caller seals the offer to
/// the callee holding the opened payload.
async fn latency(node: &Node, store: &Store) -> (Vec<Duration>, Vec<Duration>) {
    let (alice, atok) = device(&node.base).await;
    let (bob, btok) = device(&node.base).await;
    let (carol, ctok) = device(&node.base).await;
    let aconn = alice.connect(true);
    let mut bconn = bob.connect(true);
    let bob_id = bob.device_id();
    let bob_keys = alice.device_keys(&atok, &bob_id).await.unwrap();
    let offer = CallPayload {
        media: Some("opus/48000/2".into()),
        ice_ufrag: Some("ufrag".into()),
        ice_pwd: Some("icepasswordicepassword".into()),
        zrtp_hash: Some(format!("1.10 {}", "ab".repeat(32))),
        ..Default::default()
    };
    let _ = btok;
    let mut online = Vec::with_capacity(ONLINE_SAMPLES);
    for i in 0..ONLINE_SAMPLES + 20 {
        let t0 = Instant::now();
        aconn
            .send(
                (&bob_id, &bob_keys),
                CallId::new(format!("on{i}")).unwrap(),
                MessageKind::Offer,
                &offer,
            )
            .unwrap();
        next_message(&mut bconn).await;
        // The first calls warm caches and connections.
        if i >= 20 {
            online.push(t0.elapsed());
        }
    }
    online.sort();

    // Push-woken: Carol's only way to learn of a call is her push endpoint.
    let (sink, mut pushes) = push_sink().await;
    let rng = ring::rand::SystemRandom::new();
    let ua =
        ring::agreement::EphemeralPrivateKey::generate(&ring::agreement::ECDH_P256, &rng).unwrap();
    let p256dh = sotto_signalling::util::b64(ua.compute_public_key().unwrap().as_ref());
    carol
        .put_push(
            &ctok,
            "webpush",
            &format!("{sink}/push/carol"),
            &p256dh,
            &random_token(16),
        )
        .await
        .unwrap();
    let carol_id = carol.device_id();
    let carol_keys = alice.device_keys(&atok, &carol_id).await.unwrap();
    let mut woken = Vec::with_capacity(WOKEN_SAMPLES);
    for i in 0..WOKEN_SAMPLES {
        wait_offline(store, &carol_id).await;
        let mut cconn = carol.connect(false);
        let t0 = Instant::now();
        aconn
            .send(
                (&carol_id, &carol_keys),
                CallId::new(format!("wk{i}")).unwrap(),
                MessageKind::Offer,
                &offer,
            )
            .unwrap();
        pushes.recv().await.unwrap();
        cconn.on_push_received();
        next_message(&mut cconn).await;
        woken.push(t0.elapsed());
    }
    woken.sort();
    (online, woken)
}

/// Waits until the node has noticed a dropped connection of `device`.
async fn wait_offline(store: &Store, device: &DeviceId) {
    while store.presence(device).await.unwrap().is_some() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A local push endpoint: answers 201 and reports each request.
async fn push_sink() -> (String, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/push/{id}",
        axum::routing::post(move || {
            let tx = tx.clone();
            async move {
                let _ = tx.send(());
                axum::http::StatusCode::CREATED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), rx)
}

/// Opens one WebSocket per token and holds them; returns how many the node
/// reports connected and its RSS before and after, in KiB.
async fn connect_many(node: &Node, tokens: &[String]) -> (usize, u64, u64) {
    let before = node.rss_kib();
    let ws_url = format!("{}/v1/ws", node.base.replacen("http", "ws", 1));
    let mut held = Vec::with_capacity(tokens.len());
    for chunk in tokens.chunks(250) {
        let opens = chunk.iter().map(|token| {
            let mut req = ws_url.as_str().into_client_request().unwrap();
            req.headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
            tokio_tungstenite::connect_async(req)
        });
        for res in futures_util::future::join_all(opens).await {
            let (ws, _) = res.expect("websocket upgrade");
            let (sink, stream) = ws.split();
            // Keep reading so pings are answered and the socket stays healthy.
            tokio::spawn(stream.for_each(|_| async {}));
            held.push(sink);
        }
    }
    let http = reqwest::Client::new();
    let connected = loop {
        let text = http
            .get(format!("{}/metrics", node.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let n = text
            .lines()
            .find_map(|l| l.strip_prefix("signald_connected_devices "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0) as usize;
        if n >= tokens.len() {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let after = node.rss_kib();
    drop(held);
    (connected, before, after)
}
