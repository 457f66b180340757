//! Push endpoints cannot turn the server into a request forwarder: only
//! public https hosts on port 443 unless allow-listed, a bounded number per device, and
//! redirects are not followed.

mod common;
#[path = "common/push_sink.rs"]
mod push_sink;

use std::time::Duration;

use sotto_signalling::client::ClientError;
use sotto_signalling::protocol::{CallId, MessageKind};
use sotto_signalling::seal::CallPayload;
use sotto_signalling::server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_must_be_public_https_and_few() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.push.endpoint_allow_hosts.clear();
    cfg.push.max_endpoints_per_device = 2;
    let srv = server::start(cfg, None).await.unwrap();
    let base = format!("http://{}", srv.addr);
    let (bob, btok) = common::device(&base).await;
    let (p256dh, auth) = push_sink::ua_keys();
    let put = |endpoint: &'static str| {
        let (bob, btok, p256dh, auth) = (bob.clone(), btok.clone(), p256dh.clone(), auth.clone());
        async move {
            bob.put_push(&btok, "webpush", endpoint, &p256dh, &auth)
                .await
        }
    };
    for refused in [
        "http://127.0.0.1:9/p",
        "https://127.0.0.1/p",
        "https://10.1.2.3/p",
        "https://169.254.169.254/latest",
        "https://[::1]/p",
        "https://[::ffff:192.168.0.1]/p",
        // NAT64 and 6to4 addresses that reach the metadata service and a
        // private IPv4 network.
        "https://[64:ff9b::a9fe:a9fe]/latest",
        "https://[2002:c0a8:101::1]/p",
        "https://localhost/p",
        "http://push.example.com/p",
        "ftp://push.example.com/p",
        // Public hosts, but not a push service's port: the server would
        // reflect requests at (or scan) whatever listens there.
        "https://push.example.com:22/p",
        "https://8.8.8.8:6379/p",
        "https://push.example.com:80/p",
    ] {
        assert!(
            matches!(put(refused).await, Err(ClientError::Status(400))),
            "{refused}"
        );
    }
    // Public https names are taken (nothing is sent until a push).
    put("https://push.example.com/a").await.unwrap();
    put("https://push.example.com/b").await.unwrap();
    assert!(matches!(
        put("https://push.example.com/c").await,
        Err(ClientError::Status(409))
    ));
    put("https://push.example.com/a").await.unwrap();
    assert!(matches!(
        bob.put_push(&btok, "fcm", "token", "", "").await,
        Err(ClientError::Status(409))
    ));
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirecting_push_service_is_not_followed() {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let (sink, mut pushes, script) = push_sink::start().await;
    script
        .lock()
        .unwrap()
        .insert("bob".into(), vec![(307, None)]);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.push.vapid_key_file = Some(dir.path().join("vapid.der"));
    let srv = server::start(cfg, Some(handle)).await.unwrap();
    let base = format!("http://{}", srv.addr);
    let (alice, atok) = common::device(&base).await;
    let (bob, btok) = common::device(&base).await;
    let (p256dh, auth) = push_sink::ua_keys();
    bob.put_push(&btok, "webpush", &format!("{sink}/bob"), &p256dh, &auth)
        .await
        .unwrap();
    let bob_id = bob.device_id();
    let keys = alice.device_keys(&atok, &bob_id).await.unwrap();
    let mut aconn = alice.connect(true);
    let id = aconn
        .send(
            (&bob_id, &keys),
            CallId::new("r").unwrap(),
            MessageKind::Offer,
            &CallPayload::default(),
        )
        .unwrap();
    common::wait_for(&mut aconn, "accepted", |e| common::queued(e, &id)).await;
    let got = tokio::time::timeout(Duration::from_secs(30), pushes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.path, "bob");
    // The push ends as refused, not as sent through the redirect.
    let metrics = reqwest::Client::new();
    let outcome = async {
        loop {
            let text = metrics
                .get(format!("{base}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if let Some(line) = text.lines().find(|l| {
                l.starts_with("signald_pushes_sent_total")
                    || l.starts_with("signald_pushes_failed_total")
            }) {
                return line.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let line = tokio::time::timeout(Duration::from_secs(30), outcome)
        .await
        .unwrap();
    assert!(line.starts_with("signald_pushes_failed_total"), "{line}");
    assert!(line.contains("reason=\"refused\""), "{line}");
    assert!(
        pushes.try_recv().is_err(),
        "the redirect target was not asked"
    );
    srv.shutdown().await;
}
