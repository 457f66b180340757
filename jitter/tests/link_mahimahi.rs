//! The mahimahi bottleneck on a real LTE trace (AT&T, driving, 2016).

use std::path::PathBuf;
use std::time::Duration;

use sotto_jitter::link::mahimahi::{
    CrossTraffic, MahimahiConfig, MahimahiLink, MahimahiTrace, QueueLimit,
};
use sotto_jitter::link::{Delivery, Link, LinkSummary, voice_stream};

fn trace(name: &str) -> MahimahiTrace {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/traces/mahimahi")
        .join(name);
    MahimahiTrace::from_path(path).unwrap()
}

/// Two minutes of 20 ms voice, 120-byte IP packets (Opus + RTP/SRTP/UDP/IP).
fn voice() -> Vec<sotto_jitter::link::SentPacket> {
    voice_stream(6000, Duration::from_millis(20), 120)
}

fn run(trace: MahimahiTrace, config: MahimahiConfig) -> (Vec<Delivery>, MahimahiLink) {
    let mut link = MahimahiLink::new(trace, config).unwrap();
    let out = link.run(&voice()).unwrap();
    (out, link)
}

#[test]
fn trace_figures_match_the_data_readme() {
    // testdata/../shared/data/README.md §1a: lines, duration, mean
    // capacity, longest gap.
    let up = trace("ATT-LTE-driving-2016.up");
    assert_eq!(up.opportunities(), 19_101);
    assert_eq!(up.period().as_secs(), 120);
    assert!((up.mean_capacity_bps() / 1e6 - 1.91).abs() < 0.005);
    assert_eq!(up.longest_gap(), Duration::from_millis(4061));
    let down = trace("ATT-LTE-driving-2016.down");
    assert_eq!(down.opportunities(), 45_604);
    assert!((down.mean_capacity_bps() / 1e6 - 4.56).abs() < 0.005);
    assert_eq!(down.longest_gap(), Duration::from_millis(1123));
}

#[test]
fn voice_alone_is_fifo_lossless_and_feels_the_outages() {
    let up = trace("ATT-LTE-driving-2016.up");
    let config = MahimahiConfig::default();
    let (out, link) = run(up.clone(), config.clone());
    let s = LinkSummary::of(&out);
    assert_eq!((s.lost, s.reordered), (0, 0));
    assert!(out.iter().all(|d| d.delay().unwrap() >= config.propagation));
    // The 4061 ms gap in the uplink trace shows up as delay.
    let gap = up.longest_gap() + config.propagation;
    assert!(s.max_delay >= gap - Duration::from_millis(20));
    // Golden figures from an independent re-implementation of the same
    // rules (a 20-line Python script written for this check, run once):
    // packet 1001 waits 4907 ms (a backlog from a sparse stretch before
    // the gap), and the mean delay is 209.1375 ms.
    assert_eq!(s.max_delay, Duration::from_millis(4907));
    assert_eq!(out[1001].delay(), Some(Duration::from_millis(4907)));
    assert_eq!(s.mean_delay.as_micros(), 209_137);
    assert!(link.queue_stats().max_packets >= 200);
    // Deterministic.
    assert_eq!(run(up, config).0, out);
}

#[test]
fn cross_traffic_adds_queueing_delay_and_drop_tail_bounds_the_queue() {
    let down = trace("ATT-LTE-driving-2016.down");
    let alone = LinkSummary::of(&run(down.clone(), MahimahiConfig::default()).0);
    let capacity = down.mean_capacity_bps();
    let loaded = |share: f64, limit: Option<QueueLimit>| {
        run(
            down.clone(),
            MahimahiConfig {
                cross: CrossTraffic::Constant {
                    bitrate_bps: (capacity * share) as u64,
                    packet_bytes: 1500,
                },
                queue_limit: limit,
                ..MahimahiConfig::default()
            },
        )
    };
    // 90 % load: more queueing, still FIFO.
    let (out, _) = loaded(0.9, None);
    let busy = LinkSummary::of(&out);
    assert!(busy.mean_delay > alone.mean_delay + Duration::from_millis(5));
    assert_eq!(busy.reordered, 0);
    // 150 % load: the queue fills; drop-tail at 50 packets caps it and
    // causes voice loss, and a larger limit trades loss for delay.
    let (small_out, small) = loaded(1.5, Some(QueueLimit::Packets(50)));
    let (big_out, big) = loaded(1.5, Some(QueueLimit::Packets(200)));
    let (qs, qb) = (small.queue_stats(), big.queue_stats());
    assert_eq!(qs.max_packets, 50);
    assert_eq!(qb.max_packets, 200);
    assert!(qs.cross_dropped > 0 && qs.stream_dropped > 0);
    let (s, b) = (LinkSummary::of(&small_out), LinkSummary::of(&big_out));
    assert_eq!(s.lost as u64, qs.stream_dropped);
    assert!(s.loss_rate() > 0.01, "{}", s.loss_rate());
    assert!(b.mean_delay > s.mean_delay);
    assert_eq!(s.reordered + b.reordered, 0);
    // A byte limit works the same way.
    let (_, bytes) = loaded(1.5, Some(QueueLimit::Bytes(30_000)));
    assert!(bytes.queue_stats().max_bytes <= 30_000);
}

#[test]
fn bursty_cross_traffic_is_deterministic_for_a_seed() {
    let down = trace("ATT-LTE-driving-2016.down");
    let config = |seed| MahimahiConfig {
        cross: CrossTraffic::OnOff {
            bitrate_bps: 8_000_000,
            packet_bytes: 1500,
            mean_on: Duration::from_millis(500),
            mean_off: Duration::from_millis(1500),
        },
        queue_limit: Some(QueueLimit::Packets(100)),
        seed,
        ..MahimahiConfig::default()
    };
    let (a, la) = run(down.clone(), config(1));
    let (b, _) = run(down.clone(), config(1));
    let (c, lc) = run(down.clone(), config(2));
    assert_eq!(a, b);
    assert_ne!(a, c);
    // On 25 % of the time at 8 Mbit/s: about 2 Mbit/s offered on average.
    for stats in [la.queue_stats(), lc.queue_stats()] {
        let offered = stats.cross_sent as f64 * 1500.0 * 8.0 / 120.0;
        assert!(offered > 1.0e6 && offered < 3.0e6, "{offered}");
    }
}

#[test]
fn start_offset_selects_another_part_of_the_trace() {
    let up = trace("ATT-LTE-driving-2016.up");
    let from = |secs| {
        LinkSummary::of(
            &run(
                up.clone(),
                MahimahiConfig {
                    start_offset: Duration::from_secs(secs),
                    ..MahimahiConfig::default()
                },
            )
            .0,
        )
    };
    // The whole two minutes are replayed either way (the trace loops), so
    // the worst delay is the same outage; the timing differs.
    let (a, b) = (from(0), from(60));
    assert_eq!(a.lost + b.lost, 0);
    assert_ne!(a.mean_delay, b.mean_delay);
}

#[test]
fn a_bulk_download_builds_a_standing_queue() {
    let down = trace("ATT-LTE-driving-2016.down");
    let alone = LinkSummary::of(&run(down.clone(), MahimahiConfig::default()).0);
    let bulk = |backlog, limit| {
        run(
            down.clone(),
            MahimahiConfig {
                cross: CrossTraffic::Bulk {
                    packet_bytes: 1500,
                    backlog,
                },
                queue_limit: Some(QueueLimit::Packets(limit)),
                ..MahimahiConfig::default()
            },
        )
    };
    // 30 full packets ahead of every voice packet: at the mean 4.56 Mbit/s
    // that is 30 * 1500 * 8 / 4.56e6 = 79 ms of extra queueing delay.
    let (out, link) = bulk(30, 100);
    let s = LinkSummary::of(&out);
    // Only the longest outages overflow the queue.
    assert_eq!(s.reordered, 0);
    assert!(s.loss_rate() < 0.01, "{}", s.loss_rate());
    let extra = s.mean_delay.saturating_sub(alone.mean_delay);
    assert!(
        extra > Duration::from_millis(50) && extra < Duration::from_millis(200),
        "{extra:?}"
    );
    assert!(link.queue_stats().max_packets <= 100);
    // A flow that fills the whole drop-tail queue makes voice lose packets.
    let (out, link) = bulk(100, 100);
    assert_eq!(link.queue_stats().max_packets, 100);
    assert!(LinkSummary::of(&out).loss_rate() > 0.05);
}
