//! Property tests: arbitrary arrival sequences (reordering, duplicates,
//! jumps, SSRC changes, garbage payloads) never panic, keep memory within
//! the configured bounds and give monotonic output timestamps; arbitrary
//! delays keep the estimator's late-cost target between its quantiles.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use sotto_codecs::Encoder;
use sotto_codecs::opus::{OpusConfig, OpusDecoder, OpusEncoder};
use sotto_jitter::{Event, JitterBuffer, JitterConfig, RtpPacket};

/// Real Opus payloads (speech-like tone sweep, FEC on) to draw from.
fn payloads() -> &'static [Vec<u8>] {
    static P: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    P.get_or_init(|| {
        let mut enc = OpusEncoder::new(OpusConfig {
            fec: true,
            packet_loss_pct: 10,
            ..OpusConfig::default()
        })
        .unwrap();
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for k in 0..16 {
            let hz = 150.0 + 40.0 * k as f64;
            let frame: Vec<i16> = (0..960)
                .map(|i| {
                    (6000.0 * (2.0 * std::f64::consts::PI * hz * i as f64 / 48_000.0).sin()) as i16
                })
                .collect();
            enc.encode(&frame, &mut buf).unwrap();
            out.push(buf.clone());
        }
        out
    })
}

#[derive(Debug, Clone)]
enum Step {
    /// A packet `dseq` / `dts` frames from the last one, after `wait_ms`.
    Insert {
        dseq: i16,
        dts: i32,
        wait_ms: u16,
        payload: Result<usize, Vec<u8>>,
        ssrc: u32,
    },
    /// One 10 ms pull.
    Pull,
}

fn step() -> impl Strategy<Value = Step> {
    let payload = prop_oneof![
        8 => (0usize..16).prop_map(Ok),
        1 => proptest::collection::vec(any::<u8>(), 0..60).prop_map(Err),
    ];
    prop_oneof![
        3 => (
            prop_oneof![8 => -2i16..4, 1 => any::<i16>()],
            prop_oneof![8 => -3i32..5, 1 => -100_000i32..100_000],
            0u16..120,
            payload,
            prop_oneof![20 => Just(7u32), 1 => Just(8u32)],
        )
            .prop_map(|(dseq, dts, wait_ms, payload, ssrc)| Step::Insert { dseq, dts, wait_ms, payload, ssrc }),
        2 => Just(Step::Pull),
    ]
}

const MAX_PACKETS: usize = 16;
/// One pull, plus the longest packet, plus one stretch period.
const MAX_SYNC: usize = 480 + 5760 + 480;

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_arrivals_are_safe(
        steps in proptest::collection::vec(step(), 1..400),
        // The settings applications choose (the SDK's and the softphone's):
        // any lowest and highest target, the outage hold off or up to 1.5 s.
        min_target_ms in prop_oneof![Just(0.0f64), 0.0f64..500.0],
        above_min_ms in 0.0f64..3_000.0,
        outage_hold_ms in prop_oneof![Just(0.0f64), 0.0f64..1_500.0],
    ) {
        // Catch-up from 40 ms over target and a flush from 100 ms, so that
        // the few packets held reach them (and the hold) too.
        let config = JitterConfig {
            max_packets: MAX_PACKETS,
            min_target_ms,
            max_target_ms: min_target_ms + above_min_ms,
            catch_up_excess_ms: 40.0,
            flush_excess_ms: 100.0,
            outage_hold_ms,
            ..JitterConfig::default()
        };
        let mut jb = JitterBuffer::new(config, Box::new(OpusDecoder::new(48_000, 1).unwrap())).unwrap();
        let t0 = Instant::now();
        let mut now_ms = 0u64;
        let (mut seq, mut frame) = (1000u16, 50_000i64);
        let mut out = Vec::new();
        let mut last_ts: Option<u32> = None;
        for s in steps {
            match s {
                Step::Insert { dseq, dts, wait_ms, payload, ssrc } => {
                    now_ms += u64::from(wait_ms % 25);
                    seq = seq.wrapping_add(dseq as u16);
                    frame += i64::from(dts);
                    let payload = match payload {
                        Ok(i) => payloads()[i].clone(),
                        Err(bytes) => bytes,
                    };
                    let _ = jb.insert(
                        t0 + Duration::from_millis(now_ms),
                        RtpPacket { seq, timestamp: (frame * 960) as u32, ssrc, marker: false, payload },
                    );
                }
                Step::Pull => {
                    now_ms += 10;
                    let pulled = jb.pull(t0 + Duration::from_millis(now_ms), &mut out);
                    prop_assert_eq!(out.len(), 480);
                    while let Some(e) = jb.poll_event() {
                        if matches!(e, Event::Reset { .. }) {
                            last_ts = None;
                        }
                    }
                    if let Some(ts) = pulled.timestamp {
                        if let Some(prev) = last_ts {
                            // Monotonic in RTP (wrapping) arithmetic.
                            prop_assert!((ts.wrapping_sub(prev) as i32) >= 0, "{} after {}", ts, prev);
                        }
                        last_ts = Some(ts);
                    }
                }
            }
            prop_assert!(jb.packets_held() <= MAX_PACKETS);
            prop_assert!(jb.samples_held() <= MAX_SYNC, "{}", jb.samples_held());
        }
    }
}

/// The fuzz entry point survives random bytes (the fuzz target calls it).
#[test]
fn fuzz_entry_survives_random_bytes() {
    let mut x = 0x1234_5678_u64;
    for len in 0..400usize {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        sotto_jitter::fuzz_insert_pull(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the delays, the late-cost target reads the histogram
    /// between its two quantiles.
    #[test]
    fn the_late_cost_target_lies_between_its_quantiles(
        delays in proptest::collection::vec(
            prop_oneof![
                // A tight core with a thin tail just above it (where the
                // rule matters), or a long tail.
                60 => 0.0f64..5.0, 1 => 5.0f64..40.0, 1 => 0.0f64..3_000.0
            ], 1..600),
        late_cost_ms in 0.0f64..20_000.0,
    ) {
        use sotto_jitter::estimator::{DelayEstimator, EstimatorConfig};
        let with = |quantile: f64, quantile_max: f64, late_cost_ms: f64| {
            DelayEstimator::new(EstimatorConfig {
                quantile,
                quantile_max,
                late_cost_ms,
                ..EstimatorConfig::default()
            })
        };
        let (q, q_max) = (0.98, 0.995);
        let mut low = with(q, q, 0.0);
        let mut high = with(q_max, q_max, 0.0);
        let mut cost = with(q, q_max, late_cost_ms);
        for (k, d) in delays.iter().enumerate() {
            let sent = k as f64 * 20.0;
            for e in [&mut low, &mut high, &mut cost] {
                e.update(sent + 30.0 + d, sent);
            }
            prop_assert!(low.histogram_target_ms() <= cost.histogram_target_ms());
            prop_assert!(cost.histogram_target_ms() <= high.histogram_target_ms());
        }
    }
}
