//! Behind a TLS-terminating proxy every request comes from the proxy's
//! address: with `trusted_proxies` set, the per-IP limit counts the client
//! the proxy names in `X-Forwarded-For` (the rightmost untrusted hop), and
//! IPv6 clients by their /64. From peers that are not trusted proxies the
//! header is ignored.

mod common;

use sotto_signalling::config::Cidr;
use sotto_signalling::server;

async fn status(client: &reqwest::Client, base: &str, xff: &str) -> u16 {
    client
        .get(format!("{base}/healthz"))
        .header("x-forwarded-for", xff)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ip_limit_counts_the_client_a_trusted_proxy_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.ip_burst = 2.0;
    cfg.ip_rate = 0.001;
    cfg.trusted_proxies = vec![Cidr::parse("127.0.0.0/8").unwrap()];
    let srv = server::start(cfg, None).await.unwrap();
    let base = format!("http://{}", srv.addr);
    let http = reqwest::Client::new();
    // A client's own (spoofed) entry is left of the one the proxy added.
    for _ in 0..2 {
        assert_eq!(status(&http, &base, "6.6.6.6, 198.51.100.1").await, 200);
    }
    assert_eq!(status(&http, &base, "7.7.7.7, 198.51.100.1").await, 429);
    // Another client through the same proxy has its own budget.
    assert_eq!(status(&http, &base, "198.51.100.2").await, 200);
    // IPv6 clients are counted by /64.
    for _ in 0..2 {
        assert_eq!(status(&http, &base, "2001:db8:1:2::1").await, 200);
    }
    assert_eq!(status(&http, &base, "2001:db8:1:2:ffff::9").await, 429);
    assert_eq!(status(&http, &base, "2001:db8:1:3::1").await, 200);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_trusted_proxies_the_header_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.ip_burst = 2.0;
    cfg.ip_rate = 0.001;
    let srv = server::start(cfg, None).await.unwrap();
    let base = format!("http://{}", srv.addr);
    let http = reqwest::Client::new();
    assert_eq!(status(&http, &base, "198.51.100.1").await, 200);
    assert_eq!(status(&http, &base, "198.51.100.2").await, 200);
    assert_eq!(status(&http, &base, "198.51.100.3").await, 429);
    srv.shutdown().await;
}

/// `/metrics` answers loopback by default, and through a trusted proxy
/// only a client in `metrics_allow`: a public server does not show its
/// traffic to everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_for_the_allowed_addresses_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.trusted_proxies = vec![Cidr::parse("127.0.0.0/8").unwrap()];
    cfg.metrics_allow = vec![
        Cidr::parse("127.0.0.0/8").unwrap(),
        Cidr::parse("10.1.2.3").unwrap(),
    ];
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .build_recorder()
        .handle();
    let srv = server::start(cfg, Some(handle)).await.unwrap();
    let base = format!("http://{}", srv.addr);
    let http = reqwest::Client::new();
    let metrics = |xff: Option<&str>| {
        let mut req = http.get(format!("{base}/metrics"));
        if let Some(xff) = xff {
            req = req.header("x-forwarded-for", xff);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(metrics(None).await, 200, "the proxy's own host");
    assert_eq!(metrics(Some("10.1.2.3")).await, 200, "an allowed scraper");
    assert_eq!(metrics(Some("198.51.100.1")).await, 403, "a client");
    // A client's own entry left of the proxy's proves nothing.
    assert_eq!(metrics(Some("10.1.2.3, 198.51.100.1")).await, 403);
    srv.shutdown().await;
}
