//! Prometheus metrics. Cores count in plain integers on the hot path;
//! drivers publish the deltas about once a second, so the endpoint is live
//! during allocations without a shared atomic per packet.

use std::net::SocketAddr;

use metrics::{Counter, Gauge, counter, gauge};

use crate::core::{DropReason, Stats};

/// Starts the Prometheus HTTP endpoint (needs a tokio runtime).
pub fn install(listen: SocketAddr) -> Result<(), metrics_exporter_prometheus::BuildError> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(listen)
        .install()
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
