//! Prometheus metrics. Cores count in plain integers on the hot path;
//! drivers publish the deltas about once a second, so the endpoint is live
//! during allocations without a shared atomic per packet.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use metrics::{Counter, Gauge, counter, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::core::{DropReason, Stats};

/// Largest request head read from a scraper.
const MAX_HEAD: usize = 8192;
/// How long a scraper may take to send its request and read the answer.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Scrapes served at once; more connections are closed at once.
const MAX_SCRAPES: usize = 16;

/// Installs the Prometheus recorder and serves it on `listen` (needs a
/// tokio runtime): `GET /metrics` (and HEAD) the metrics, `GET /healthz`
/// "ok", any other path 404 and any other method 405. Returns the bound
/// address.
pub async fn install(listen: SocketAddr) -> anyhow::Result<SocketAddr> {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("metrics_listen {listen}"))?;
    let addr = listener.local_addr()?;
    tokio::spawn(serve(listener, handle));
    Ok(addr)
}

async fn serve(listener: TcpListener, handle: PrometheusHandle) {
    let slots = Arc::new(Semaphore::new(MAX_SCRAPES));
    let mut upkeep = tokio::time::interval(Duration::from_secs(5));
    loop {
        let accepted = tokio::select! {
            _ = upkeep.tick() => {
                handle.run_upkeep();
                continue;
            }
            r = listener.accept() => r,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(_) => {
                // Out of descriptors: do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(HTTP_TIMEOUT, answer(stream, &handle)).await;
            drop(permit);
        });
    }
}

/// What a request asks of the metrics endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Metrics,
    Health,
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Routes a request by its head (`GET /metrics HTTP/1.1…`); `head_only`
/// for HEAD.
fn route(head: &[u8]) -> (Route, bool) {
    let line = head
        .split(|b| *b == b'\r' || *b == b'\n')
        .next()
        .unwrap_or(&[]);
    let mut parts = line.split(|b| *b == b' ');
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return (Route::BadRequest, false);
    };
    let path = target.split(|b| *b == b'?').next().unwrap_or(&[]);
    let route = match path {
        b"/metrics" => Route::Metrics,
        b"/healthz" => Route::Health,
        _ => return (Route::NotFound, false),
    };
    match method {
        b"GET" => (route, false),
        b"HEAD" => (route, true),
        _ => (Route::MethodNotAllowed, false),
    }
}

async fn answer(mut stream: TcpStream, handle: &PrometheusHandle) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_HEAD {
            break;
        }
    }
    let (route, head_only) = route(&head);
    let (status, body, extra) = match route {
        Route::Metrics => ("200 OK", handle.render(), ""),
        Route::Health => ("200 OK", "ok\n".to_owned(), ""),
        Route::NotFound => ("404 Not Found", "not found\n".to_owned(), ""),
        Route::MethodNotAllowed => (
            "405 Method Not Allowed",
            "method not allowed\n".to_owned(),
            "Allow: GET, HEAD\r\n",
        ),
        Route::BadRequest => ("400 Bad Request", "bad request\n".to_owned(), ""),
    };
    let content_type = if route == Route::Metrics {
        "text/plain; version=0.0.4"
    } else {
        "text/plain"
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&out).await?;
    stream.shutdown().await
}

/// Counts one drop in `turn_drops_total` under a driver's `reason` (core
/// drops are published by [`Publisher`]).
pub fn count_drop(reason: &'static str) {
    counter!("turn_drops_total", "reason" => reason).increment(1);
}

/// Counts a credential reload (SIGHUP) that failed and kept the old
/// credentials.
pub fn reload_failed() {
    counter!("turn_credential_reload_failures_total").increment(1);
}

/// Publishes one core's counters.
#[derive(Debug)]
pub struct Publisher {
    last: Stats,
    last_allocations: usize,
    c2p_packets: Counter,
    c2p_bytes: Counter,
    p2c_packets: Counter,
    p2c_bytes: Counter,
    auth_failures: Counter,
    denied_peers: Counter,
    created: Counter,
    closed: Counter,
    drops: Vec<Counter>,
    allocations: Gauge,
}

impl Default for Publisher {
    fn default() -> Self {
        Self::new()
    }
}

impl Publisher {
    /// Registers the metric handles.
    pub fn new() -> Self {
        Publisher {
            last: Stats::default(),
            last_allocations: 0,
            c2p_packets: counter!("turn_relayed_packets_total", "direction" => "client_to_peer"),
            c2p_bytes: counter!("turn_relayed_bytes_total", "direction" => "client_to_peer"),
            p2c_packets: counter!("turn_relayed_packets_total", "direction" => "peer_to_client"),
            p2c_bytes: counter!("turn_relayed_bytes_total", "direction" => "peer_to_client"),
            auth_failures: counter!("turn_auth_failures_total"),
            denied_peers: counter!("turn_denied_peers_total"),
            created: counter!("turn_allocations_created_total"),
            closed: counter!("turn_allocations_closed_total"),
            drops: DropReason::ALL
                .iter()
                .map(|r| counter!("turn_drops_total", "reason" => r.label()))
                .collect(),
            allocations: gauge!("turn_allocations"),
        }
    }

    /// Publishes what changed since the last call.
    pub fn publish(&mut self, s: &Stats, allocations: usize) {
        self.c2p_packets
            .increment(s.c2p_packets - self.last.c2p_packets);
        self.c2p_bytes.increment(s.c2p_bytes - self.last.c2p_bytes);
        self.p2c_packets
            .increment(s.p2c_packets - self.last.p2c_packets);
        self.p2c_bytes.increment(s.p2c_bytes - self.last.p2c_bytes);
        self.auth_failures
            .increment(s.auth_failures - self.last.auth_failures);
        self.denied_peers
            .increment(s.denied_peers - self.last.denied_peers);
        self.created
            .increment(s.allocations_created - self.last.allocations_created);
        self.closed
            .increment(s.allocations_closed - self.last.allocations_closed);
        for (i, c) in self.drops.iter().enumerate() {
            c.increment(s.drops[i] - self.last.drops[i]);
        }
        self.allocations
            .increment(allocations as f64 - self.last_allocations as f64);
        self.last = s.clone();
        self.last_allocations = allocations;
    }

    /// Counts a datagram the driver could not send (socket buffer full).
    pub fn send_dropped(&self) {
        count_drop("send_failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only GET (or HEAD) /metrics and /healthz are served: the endpoint
    /// used to answer every path and method with the metrics.
    #[test]
    fn only_metrics_and_health_are_served() {
        let cases: [(&[u8], (Route, bool)); 9] = [
            (
                b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                (Route::Metrics, false),
            ),
            (
                b"GET /metrics?x=1 HTTP/1.0\r\n\r\n",
                (Route::Metrics, false),
            ),
            (b"HEAD /metrics HTTP/1.1\r\n\r\n", (Route::Metrics, true)),
            (b"GET /healthz HTTP/1.1\r\n\r\n", (Route::Health, false)),
            (b"GET /foo HTTP/1.1\r\n\r\n", (Route::NotFound, false)),
            (b"GET / HTTP/1.1\r\n\r\n", (Route::NotFound, false)),
            (
                b"POST /metrics HTTP/1.1\r\n\r\n",
                (Route::MethodNotAllowed, false),
            ),
            (
                b"DELETE /healthz HTTP/1.1\r\n\r\n",
                (Route::MethodNotAllowed, false),
            ),
            (b"garbage", (Route::BadRequest, false)),
        ];
        for (head, want) in cases {
            assert_eq!(route(head), want, "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn every_stats_counter_is_exported() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let mut p = Publisher::new();
            let s = Stats {
                allocations_created: 3,
                allocations_closed: 2,
                ..Stats::default()
            };
            p.publish(&s, 1);
        });
        let text = handle.render();
        assert!(text.contains("turn_allocations_created_total 3"), "{text}");
        assert!(text.contains("turn_allocations_closed_total 2"), "{text}");
    }
}
