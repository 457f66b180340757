//! Properties every link model keeps on arbitrary input: one delivery per
//! packet in send order, nothing arrives before it is sent, FIFO models
//! never reorder, drop-tail limits hold, and runs are repeatable.

use std::time::Duration;

use proptest::prelude::*;
use sotto_jitter::link::cicv5g::{Cicv5gTrace, DelayTraceConfig, DelayTraceLink, OneWay};
use sotto_jitter::link::mahimahi::{
    CrossTraffic, MahimahiConfig, MahimahiLink, MahimahiTrace, QueueLimit,
};
use sotto_jitter::link::synthetic::{
    GilbertElliott, Handover, Jitter, SyntheticConfig, SyntheticLink,
};
use sotto_jitter::link::{Delivery, Link, LinkSummary, SentPacket};

/// Packets with non-decreasing send times and assorted sizes.
fn stream() -> impl Strategy<Value = Vec<SentPacket>> {
    prop::collection::vec((0u64..50, 40u32..3000), 1..120).prop_map(|steps| {
        let mut t = 0;
        steps
            .into_iter()
            .enumerate()
            .map(|(i, (dt, size))| {
                t += dt;
                SentPacket {
                    seq: i as u64,
                    send: Duration::from_millis(t),
                    size,
                }
            })
            .collect()
    })
}

fn check_basic(packets: &[SentPacket], out: &[Delivery]) -> Result<(), TestCaseError> {
    prop_assert_eq!(out.len(), packets.len());
    for (p, d) in packets.iter().zip(out) {
        prop_assert_eq!((p.seq, p.send), (d.seq, d.send));
        if let Some(a) = d.arrival {
            prop_assert!(a >= p.send);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn mahimahi_is_fifo_and_respects_its_limit(
        gaps in prop::collection::vec(0u64..40, 1..200),
        packets in stream(),
        limit in prop::option::of(1usize..40),
        cross in prop::option::of((100_000u64..5_000_000, 100u32..1500)),
        bulk in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut t = 0;
        let text: String = gaps.iter().map(|g| { t += g; format!("{}\n", t.max(1)) }).collect();
        let trace = MahimahiTrace::parse(&text).unwrap();
        let config = MahimahiConfig {
            queue_limit: limit.map(QueueLimit::Packets),
            cross: cross.map_or(CrossTraffic::None, |(bitrate_bps, packet_bytes)| {
                if bulk {
                    CrossTraffic::Bulk { packet_bytes, backlog: (bitrate_bps % 50 + 1) as usize }
                } else {
                    CrossTraffic::Constant { bitrate_bps, packet_bytes }
                }
            }),
            seed,
            ..MahimahiConfig::default()
        };
        let mut link = MahimahiLink::new(trace, config).unwrap();
        let out = link.run(&packets).unwrap();
        check_basic(&packets, &out)?;
        prop_assert_eq!(LinkSummary::of(&out).reordered, 0);
        let stats = link.queue_stats();
        if let Some(limit) = limit {
            prop_assert!(stats.max_packets <= limit);
        } else {
            prop_assert_eq!(LinkSummary::of(&out).lost, 0);
        }
        prop_assert_eq!(LinkSummary::of(&out).lost as u64, stats.stream_dropped);
        prop_assert_eq!(link.run(&packets).unwrap(), out);
    }

    #[test]
    fn synthetic_links_are_sane_and_repeatable(
        packets in stream(),
        p in 0.0f64..1.0, r in 0.01f64..1.0, lg in 0.0f64..0.2, lb in 0.0f64..1.0,
        pareto in any::<bool>(),
        fifo in any::<bool>(),
        handover in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let config = SyntheticConfig {
            loss: Some(GilbertElliott { p_good_to_bad: p, p_bad_to_good: r, loss_good: lg, loss_bad: lb }),
            jitter: Some(if pareto {
                Jitter::Pareto { scale: Duration::from_millis(3), shape: 1.2 }
            } else {
                Jitter::LogNormal { median: Duration::from_millis(5), sigma: 1.0 }
            }),
            handover: handover.then_some(Handover {
                mean_interval: Duration::from_millis(500),
                outage: Duration::from_millis(100),
                spike: Duration::from_millis(50),
                recovery: Duration::from_millis(200),
                drop_during_outage: false,
            }),
            fifo,
            seed,
            ..SyntheticConfig::default()
        };
        let out = SyntheticLink::new(config.clone()).unwrap().run(&packets).unwrap();
        check_basic(&packets, &out)?;
        if fifo {
            prop_assert_eq!(LinkSummary::of(&out).reordered, 0);
        }
        // Jitter is capped, and the base delay always applies.
        let worst = config.base_delay + config.max_jitter + Duration::from_millis(150);
        for d in out.iter().filter_map(Delivery::delay) {
            prop_assert!(d >= config.base_delay);
            prop_assert!(fifo || d <= worst);
        }
        prop_assert_eq!(SyntheticLink::new(config).unwrap().run(&packets).unwrap(), out);
    }

    #[test]
    fn delay_traces_follow_their_bounds(
        rows in prop::collection::vec((1u64..100, 1u64..500), 1..60),
        packets in stream(),
        half in any::<bool>(),
    ) {
        let mut t = 1_700_000_000_000u64;
        let mut text = String::from("pub_time(ms) sub_time(ms) delay(ms)\n");
        for (dt, rtt) in &rows {
            t += dt;
            text += &format!("{t} {} {rtt}\n", t + rtt);
        }
        let trace = Cicv5gTrace::parse(&text).unwrap();
        let one_way = if half { OneWay::HalfRtt } else { OneWay::default_variation() };
        let mut link = DelayTraceLink::new(&trace, DelayTraceConfig {
            one_way,
            deadline: None,
            ..DelayTraceConfig::default()
        }).unwrap();
        let out = link.run(&packets).unwrap();
        check_basic(&packets, &out)?;
        // Interpolated delays stay within the series' range.
        let (min, max) = rows.iter().fold((u64::MAX, 0), |(a, b), &(_, r)| (a.min(r), b.max(r)));
        let (lo, hi) = if half {
            (min as f64 / 2.0, max as f64 / 2.0)
        } else {
            (20.0, 20.0 + (max - min) as f64)
        };
        for d in out.iter().filter_map(Delivery::delay) {
            let ms = d.as_secs_f64() * 1000.0;
            prop_assert!(ms >= lo - 1e-3 && ms <= hi + 1e-3, "{} not in {}..{}", ms, lo, hi);
        }
    }
}
