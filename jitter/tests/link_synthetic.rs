//! Synthetic link models: statistical properties and determinism.

use std::time::Duration;

use sotto_jitter::link::synthetic::{
    GilbertElliott, Handover, Jitter, SyntheticConfig, SyntheticLink,
};
use sotto_jitter::link::{Delivery, Link, LinkSummary, voice_stream};

fn run(config: SyntheticConfig, packets: u64) -> Vec<Delivery> {
    SyntheticLink::new(config)
        .unwrap()
        .run(&voice_stream(packets, Duration::from_millis(20), 120))
        .unwrap()
}

#[test]
fn gilbert_elliott_long_run_loss_matches_the_stationary_value() {
    let ge = GilbertElliott {
        p_good_to_bad: 0.05,
        p_bad_to_good: 0.3,
        loss_good: 0.01,
        loss_bad: 0.8,
    };
    // π_B = 0.05 / 0.35 = 1/7; loss = 0.8/7 + 0.01·6/7 ≈ 0.1229.
    assert!((ge.stationary_loss() - (0.8 / 7.0 + 0.06 / 7.0)).abs() < 1e-12);
    let out = run(
        SyntheticConfig {
            loss: Some(ge),
            seed: 11,
            ..SyntheticConfig::default()
        },
        200_000,
    );
    let loss = LinkSummary::of(&out).loss_rate();
    assert!((loss - ge.stationary_loss()).abs() < 0.005, "{loss}");
}

#[test]
fn gilbert_bursts_have_the_expected_mean_length() {
    // Pure Gilbert: every Bad packet lost, no Good packet lost, so loss
    // runs are Bad periods with mean length 1 / r = 4.
    let ge = GilbertElliott {
        p_good_to_bad: 0.02,
        p_bad_to_good: 0.25,
        loss_good: 0.0,
        loss_bad: 1.0,
    };
    let out = run(
        SyntheticConfig {
            loss: Some(ge),
            seed: 5,
            ..SyntheticConfig::default()
        },
        200_000,
    );
    let (mut runs, mut lost, mut in_run) = (0u32, 0u32, false);
    for d in &out {
        let l = d.arrival.is_none();
        lost += u32::from(l);
        runs += u32::from(l && !in_run);
        in_run = l;
    }
    let mean = f64::from(lost) / f64::from(runs);
    assert!((mean - ge.mean_burst()).abs() < 0.15, "{mean}");
}

#[test]
fn seeds_make_runs_repeatable_and_distinct() {
    let config = |seed| SyntheticConfig {
        loss: Some(GilbertElliott {
            p_good_to_bad: 0.1,
            p_bad_to_good: 0.5,
            loss_good: 0.0,
            loss_bad: 0.5,
        }),
        jitter: Some(Jitter::LogNormal {
            median: Duration::from_millis(10),
            sigma: 0.8,
        }),
        seed,
        ..SyntheticConfig::default()
    };
    assert_eq!(run(config(3), 2000), run(config(3), 2000));
    assert_ne!(run(config(3), 2000), run(config(4), 2000));
}

#[test]
fn pareto_jitter_has_the_analytic_tail() {
    let (scale, shape) = (Duration::from_millis(5), 1.5);
    let out = run(
        SyntheticConfig {
            base_delay: Duration::ZERO,
            jitter: Some(Jitter::Pareto { scale, shape }),
            max_jitter: Duration::from_secs(1000),
            fifo: false,
            seed: 21,
            ..SyntheticConfig::default()
        },
        200_000,
    );
    let delays: Vec<f64> = out
        .iter()
        .map(|d| d.delay().unwrap().as_secs_f64())
        .collect();
    // Lomax survival: P(X > x) = (1 + x / scale)^-shape.
    for x_ms in [5.0, 20.0, 100.0] {
        let x = x_ms / 1000.0;
        let expected = (1.0 + x / scale.as_secs_f64()).powf(-shape);
        let got = delays.iter().filter(|&&d| d > x).count() as f64 / delays.len() as f64;
        assert!(
            (got - expected).abs() < 0.1 * expected + 0.001,
            "{x_ms} ms: {got} vs {expected}"
        );
    }
    // Without FIFO heavy-tailed jitter reorders packets.
    assert!(LinkSummary::of(&out).reordered > 0);
}

#[test]
fn lognormal_median_and_fifo_order() {
    let out = run(
        SyntheticConfig {
            base_delay: Duration::from_millis(30),
            jitter: Some(Jitter::LogNormal {
                median: Duration::from_millis(15),
                sigma: 0.5,
            }),
            fifo: false,
            seed: 8,
            ..SyntheticConfig::default()
        },
        50_000,
    );
    let mut extra: Vec<f64> = out
        .iter()
        .map(|d| d.delay().unwrap().as_secs_f64() * 1000.0 - 30.0)
        .collect();
    extra.sort_by(f64::total_cmp);
    let median = extra[extra.len() / 2];
    assert!((median - 15.0).abs() < 0.3, "{median}");
    // The same draws through a FIFO path never reorder and never arrive
    // earlier than they would have without FIFO.
    let fifo = run(
        SyntheticConfig {
            base_delay: Duration::from_millis(30),
            jitter: Some(Jitter::LogNormal {
                median: Duration::from_millis(15),
                sigma: 0.5,
            }),
            fifo: true,
            seed: 8,
            ..SyntheticConfig::default()
        },
        50_000,
    );
    assert_eq!(LinkSummary::of(&fifo).reordered, 0);
    assert!(fifo.iter().zip(&out).all(|(f, o)| f.arrival >= o.arrival));
}

#[test]
fn handover_outages_lose_their_share_of_packets() {
    let handover = Handover {
        mean_interval: Duration::from_secs(10),
        outage: Duration::from_millis(500),
        spike: Duration::from_millis(80),
        recovery: Duration::from_secs(1),
        drop_during_outage: true,
    };
    let out = run(
        SyntheticConfig {
            handover: Some(handover),
            seed: 2,
            ..SyntheticConfig::default()
        },
        100_000, // 2000 s: about 200 handovers
    );
    // Outages cover about 0.5 s of every 10 s: 5 % of the packets.
    let loss = LinkSummary::of(&out).loss_rate();
    assert!((loss - 0.05).abs() < 0.01, "{loss}");
    // After an outage the delay spikes, then decays back to the base.
    let s = LinkSummary::of(&out);
    assert!(s.max_delay > Duration::from_millis(110));
    assert!(s.max_delay <= Duration::from_millis(120));
    assert!(s.p95_delay < Duration::from_millis(100));
}
