//! The CICV5G delay trace (urban, public 5G n78, 30 km/h, 20 Hz probes).

use std::path::PathBuf;
use std::time::Duration;

use sotto_jitter::link::cicv5g::{Cicv5gTrace, DelayTraceConfig, DelayTraceLink, OneWay};
use sotto_jitter::link::{Link, LinkSummary, voice_stream};

fn urban() -> Cicv5gTrace {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/traces/cicv5g/urban_n78_v30_run01_20hz.txt");
    Cicv5gTrace::from_path(path).unwrap()
}

fn rtt_quantile(sorted: &[u64], q: f64) -> u64 {
    sorted[((sorted.len() as f64 * q).ceil() as usize).saturating_sub(1)]
}

#[test]
fn trace_figures_match_the_data_readme() {
    // ../shared/data/README.md §1b: 4 296 rows over 244 s, RTT p50/p95/p99/max
    // 16/22/26/80 ms.
    let t = urban();
    assert_eq!(t.rows().len(), 4296);
    let span = t.rows().last().unwrap().time_ms;
    assert_eq!(span / 1000, 244);
    let mut rtt: Vec<u64> = t.rows().iter().map(|r| r.rtt_ms).collect();
    rtt.sort_unstable();
    assert_eq!(rtt_quantile(&rtt, 0.50), 16);
    assert_eq!(rtt_quantile(&rtt, 0.95), 22);
    assert_eq!(rtt_quantile(&rtt, 0.99), 26);
    assert_eq!(*rtt.last().unwrap(), 80);
    assert!(t.rows().iter().all(|r| r.cell.is_some()));
}

#[test]
fn half_rtt_link_follows_the_trace() {
    let t = urban();
    let mut link = DelayTraceLink::new(
        &t,
        DelayTraceConfig {
            one_way: OneWay::HalfRtt,
            deadline: None,
            ..DelayTraceConfig::default()
        },
    )
    .unwrap();
    // 240 s of 20 ms voice.
    let out = link
        .run(&voice_stream(12_000, Duration::from_millis(20), 120))
        .unwrap();
    let s = LinkSummary::of(&out);
    assert_eq!(s.lost, 0);
    let min = t.min_rtt() / 2;
    assert!(out.iter().all(|d| d.delay().unwrap() >= min));
    assert!(s.max_delay <= Duration::from_millis(40));
    // The mean one-way delay is close to half the mean RTT.
    let mean_rtt = t.rows().iter().map(|r| r.rtt_ms as f64).sum::<f64>() / t.rows().len() as f64;
    let mean = s.mean_delay.as_secs_f64() * 1000.0;
    assert!(
        (mean - mean_rtt / 2.0).abs() < 0.5,
        "{mean} vs {}",
        mean_rtt / 2.0
    );
}

#[test]
fn variation_mode_and_deadline() {
    let t = urban();
    let config = |deadline| DelayTraceConfig {
        one_way: OneWay::Variation {
            base: Duration::from_millis(20),
            fraction: 1.0,
        },
        deadline,
        ..DelayTraceConfig::default()
    };
    let stream = voice_stream(12_000, Duration::from_millis(20), 120);
    let out = DelayTraceLink::new(&t, config(None))
        .unwrap()
        .run(&stream)
        .unwrap();
    let s = LinkSummary::of(&out);
    // base + (rtt - min): at least 20 ms, at most 20 + (80 - min).
    let max = Duration::from_millis(20 + 80) - t.min_rtt();
    assert!(
        out.iter()
            .all(|d| d.delay().unwrap() >= Duration::from_millis(20))
    );
    assert!(s.max_delay <= max);
    // Variation is non-trivial: delays vary by more than one packet time.
    assert!(s.p95_delay - Duration::from_millis(20) >= Duration::from_millis(5));
    // A deadline below the worst delay loses exactly the late packets.
    let deadline = Duration::from_millis(40);
    let cut = DelayTraceLink::new(&t, config(Some(deadline)))
        .unwrap()
        .run(&stream)
        .unwrap();
    let late = out.iter().filter(|d| d.delay().unwrap() > deadline).count();
    assert!(late > 0);
    assert_eq!(LinkSummary::of(&cut).lost, late);
}
