//! Cost of one delay-estimator update (done once per received packet)
//! with the late-cost target and with the plain quantile, for relative
//! delays spread uniformly over 0, 200 ms and the whole 2 s histogram
//! (the worst case: every bucket is read).
//!
//! `cargo run --release -p sotto-jitter --example estimator_cost`

use std::time::Instant;

use sotto_jitter::estimator::{DelayEstimator, EstimatorConfig};

/// Mean ns per `update` over 200 000 packets with delays in `0..spread_ms`.
fn ns_per_update(config: EstimatorConfig, spread_ms: f64) -> f64 {
    let mut e = DelayEstimator::new(config);
    let mut x = 1u64;
    let n = 200_000u64;
    let started = Instant::now();
    for k in 0..n {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let d = (x >> 11) as f64 / (1u64 << 53) as f64 * spread_ms;
        let sent = k as f64 * 20.0;
        std::hint::black_box(e.update(sent + 30.0 + d, sent));
    }
    started.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    for spread_ms in [0.0, 200.0, 1_999.0] {
        let plain = EstimatorConfig {
            late_cost_ms: 0.0,
            ..EstimatorConfig::default()
        };
        let plain = ns_per_update(plain, spread_ms);
        let late_cost = ns_per_update(EstimatorConfig::default(), spread_ms);
        println!(
            "delays over {spread_ms} ms: plain quantile {plain:.0} ns, late cost {late_cost:.0} ns per packet"
        );
    }
}
