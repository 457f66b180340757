//! Edge input a real network or a buggy (but authenticated) sender can
//! produce: targets the configured capacity cannot hold, sequence and
//! timestamp jumps, SSRC flapping, duplicate floods, wraps. Each case
//! checks that the buffer stays bounded and keeps playing, and that its
//! W3C counters stay consistent.

use std::time::{Duration, Instant};

use sotto_codecs::opus::{OpusConfig, OpusDecoder, OpusEncoder};
use sotto_codecs::{Encoder, FrameDuration};
use sotto_jitter::{Event, JitterBuffer, JitterConfig, JitterStats, Operation, RtpPacket};

/// A 220 Hz tone at 48 kHz.
fn tone(seconds: f64) -> Vec<i16> {
    let n = (seconds * 48_000.0) as usize;
    (0..n)
        .map(|i| (8000.0 * (2.0 * std::f64::consts::PI * 220.0 * i as f64 / 48_000.0).sin()) as i16)
        .collect()
}

/// `pcm` as Opus packets of `duration` (FEC on), from `seq0` / `ts0`.
fn packets(duration: FrameDuration, pcm: &[i16], seq0: u16, ts0: u32) -> Vec<RtpPacket> {
    let mut enc = OpusEncoder::new(OpusConfig {
        fec: true,
        packet_loss_pct: 10,
        frame: duration,
        ..OpusConfig::default()
    })
    .unwrap();
    let samples = duration.samples(48_000);
    let mut buf = Vec::new();
    pcm.chunks_exact(samples)
        .enumerate()
        .map(|(k, frame)| {
            enc.encode(frame, &mut buf).unwrap();
            RtpPacket {
                seq: seq0.wrapping_add(k as u16),
                timestamp: ts0.wrapping_add((k * samples) as u32),
                ssrc: 5,
                marker: k == 0,
                payload: buf.clone(),
            }
        })
        .collect()
}

/// What a run did.
struct Run {
    ops: Vec<Operation>,
    /// (pull index, RTP timestamp) of each packet played.
    played: Vec<(usize, u32)>,
    jb: JitterBuffer,
    /// The target delay at each pull, ms.
    targets: Vec<f64>,
}

/// Delivers `(packet, arrival ms)` (in order of arrival) and pulls every
/// 10 ms for `seconds`, checking at each pull what must always hold.
fn run(config: JitterConfig, arrivals: Vec<(RtpPacket, f64)>, seconds: f64) -> Run {
    let max_packets = config.max_packets;
    let mut jb = JitterBuffer::new(config, Box::new(OpusDecoder::new(48_000, 1).unwrap())).unwrap();
    let t0 = Instant::now();
    let at = |ms: f64| t0 + Duration::from_secs_f64(ms / 1000.0);
    let mut next = arrivals.into_iter().peekable();
    let (mut ops, mut played, mut targets) = (vec![], vec![], vec![]);
    let mut out = Vec::new();
    let mut prev = JitterStats::default();
    let mut last_ts: Option<u32> = None;
    for tick in 0..(seconds * 100.0) as usize {
        let now = tick as f64 * 10.0;
        while next.peek().is_some_and(|(_, a)| *a <= now) {
            let (p, a) = next.next().unwrap();
            let _ = jb.insert(at(a), p);
            assert!(jb.packets_held() <= max_packets);
        }
        let pulled = jb.pull(at(now), &mut out);
        assert_eq!(out.len(), 480);
        ops.push(pulled.operation);
        targets.push(jb.target_delay_ms(at(now)));
        while let Some(e) = jb.poll_event() {
            match e {
                Event::Played { timestamp, .. } => played.push((tick, timestamp)),
                Event::Reset { .. } => last_ts = None,
                Event::Discarded { .. } => {}
            }
        }
        if let Some(ts) = pulled.timestamp {
            if let Some(p) = last_ts {
                // Forward, and by no more than a jump (10 s) without a reset.
                let d = ts.wrapping_sub(p) as i32;
                assert!((0..=JUMP).contains(&d), "pull {tick}: {ts} after {p}");
            }
            last_ts = Some(ts);
        }
        let s = jb.stats().clone();
        check_counters(&prev, &s, tick);
        prev = s;
    }
    Run {
        ops,
        played,
        jb,
        targets,
    }
}

/// The default `reset_jump_ms` in RTP ticks at 48 kHz: the output timestamp
/// moves no further between pulls without a reset.
const JUMP: i32 = 10 * 48_000;

/// The W3C counters never decrease, and hold together.
fn check_counters(prev: &JitterStats, s: &JitterStats, tick: usize) {
    for ((name, a), (_, b)) in prev.w3c().into_iter().zip(s.w3c()) {
        assert!(b >= a && b.is_finite(), "pull {tick}: {name} {a} -> {b}");
    }
    assert!(s.concealed_samples >= s.silent_concealed_samples, "{s:?}");
    assert!(s.concealment_events <= s.concealed_samples, "{s:?}");
    assert!(
        s.fec_packets_used + s.fec_packets_discarded <= s.fec_packets_received,
        "{s:?}"
    );
    assert_eq!(s.total_samples_pulled, 480 * (tick as u64 + 1));
}

/// The packets, each arriving `transit_ms` after it was sent.
fn steady(ps: Vec<RtpPacket>, frame_ms: f64, transit_ms: f64) -> Vec<(RtpPacket, f64)> {
    ps.into_iter()
        .enumerate()
        .map(|(k, p)| (p, k as f64 * frame_ms + transit_ms))
        .collect()
}

#[test]
fn a_lowest_target_above_what_the_buffer_holds_still_plays() {
    // 10 ms frames (a sender's choice) hold 5 s in the default 500
    // packets; the lowest target an application may ask for is higher
    // (the SDK takes up to 7 000 ms). Steady 30 ms link, 20 s of tone.
    let config = JitterConfig {
        min_target_ms: 6_000.0,
        max_target_ms: 6_500.0,
        ..JitterConfig::default()
    };
    let ps = packets(FrameDuration::Ms10, &tone(20.0), 100, 1_000);
    let n = ps.len();
    let r = run(config, steady(ps, 10.0, 30.0), 20.5);
    let s = r.jb.stats();
    // Playout starts once the buffer is as full as it can be, and then
    // plays every packet: none dropped for want of room, none concealed.
    assert!(
        r.played.len() + 500 >= n,
        "{} of {n}: {s:?}",
        r.played.len()
    );
    assert_eq!(s.packets_discarded, 0, "{s:?}");
    assert_eq!(s.concealed_samples, 0, "{s:?}");
    assert!(!r.ops.contains(&Operation::Expand));
    // Once packets come, the target it reports is the one it can reach:
    // 499 packets of 10 ms less a pull.
    assert!(
        r.targets[10..].iter().all(|&t| t <= 4_980.0),
        "{:?}",
        r.targets.last()
    );
    // And so with 20 ms frames in a buffer of 50 packets (1 s).
    let config = JitterConfig {
        max_packets: 50,
        min_target_ms: 1_500.0,
        ..JitterConfig::default()
    };
    let ps = packets(FrameDuration::Ms20, &tone(10.0), 100, 1_000);
    let n = ps.len();
    let r = run(config, steady(ps, 20.0, 30.0), 10.5);
    let s = r.jb.stats();
    assert!(r.played.len() + 50 >= n, "{} of {n}: {s:?}", r.played.len());
    assert_eq!(s.packets_discarded, 0, "{s:?}");
}

/// 30 s of tone over a steady 30 ms link whose packet 1 000 is lost;
/// from packet 500 on the sender's sequence numbers are `seq_jump`
/// further on (its numbering restarted, the timestamps did not).
fn seq_restart(seq_jump: u16) -> Run {
    let mut ps = packets(FrameDuration::Ms20, &tone(30.0), 100, 1_000);
    for p in &mut ps[500..] {
        p.seq = p.seq.wrapping_add(seq_jump);
    }
    let mut arrivals = steady(ps, 20.0, 30.0);
    arrivals.remove(1_000);
    run(JitterConfig::default(), arrivals, 30.5)
}

#[test]
fn a_sequence_number_restart_is_not_taken_for_reordering() {
    // With the numbering unbroken, nothing came out of order: the lost
    // packet is concealed in its slot, and the playout does not wait.
    let calm = seq_restart(0);
    let s = calm.jb.stats().clone();
    assert_eq!(s.concealment_events, 2, "the loss and the end: {s:?}");
    // Numbers that jump back (or far ahead, which unwraps as back) by
    // thousands are a new numbering, not thousands of packets out of
    // order: the loss after it is played like the one above.
    for jump in [45_536u16, 30_000, 40_000] {
        let r = seq_restart(jump);
        let t = r.jb.stats();
        assert_eq!(t, &s, "jump {jump}");
        assert_eq!(r.played, calm.played, "jump {jump}");
        assert_eq!(r.ops, calm.ops, "jump {jump}");
    }
}

/// 40 s of tone over a steady 30 ms link, with a copy of packet 500
/// stamped `off` samples away from it (a sender's bug) right behind it.
fn one_misstamped_copy(off: i32) -> Run {
    let ps = packets(FrameDuration::Ms20, &tone(40.0), 100, 1_000);
    let mut copy = ps[500].clone();
    copy.timestamp = copy.timestamp.wrapping_add_signed(off);
    let mut arrivals = steady(ps, 20.0, 30.0);
    arrivals.insert(501, (copy, 500.0 * 20.0 + 30.0));
    run(JitterConfig::default(), arrivals, 40.5)
}

#[test]
fn one_packet_stamped_seconds_ahead_does_not_raise_the_target() {
    // Taken as the fastest transit yet, a packet 5 s ahead put every
    // packet of the next 2 s 5 s late for the estimator: the target went
    // to its highest (2 s) for half a minute, and the tone was slowed to
    // it. 5 s behind, it is one late packet.
    for secs in [5, 9, -5] {
        let r = one_misstamped_copy(secs * 48_000);
        let s = r.jb.stats();
        let first = r.targets[400];
        let worst = r.targets[400..].iter().copied().fold(0.0, f64::max);
        assert_eq!(worst, first, "{secs} s");
        assert_eq!(s.inserted_samples_for_deceleration, 0, "{secs} s: {s:?}");
        assert!(!r.ops[400..].contains(&Operation::PreemptiveExpand));
        // The copy ahead plays in the place of the packet stamped as it.
        assert!(r.played.len() >= 2_000, "{secs} s: {s:?}");
    }
}

/// 20 s of tone over a steady 30 ms link whose packets from 500 on are
/// stamped `off` samples away, up to packet `upto` (exclusive).
fn stamped_off(off: i32, upto: usize) -> Run {
    let mut ps = packets(FrameDuration::Ms20, &tone(20.0), 100, 1_000);
    for p in &mut ps[500..upto] {
        p.timestamp = p.timestamp.wrapping_add_signed(off);
    }
    run(JitterConfig::default(), steady(ps, 20.0, 30.0), 20.5)
}

#[test]
fn the_stream_goes_on_after_one_packet_stamped_seconds_ahead_or_a_clock_stepped_back() {
    // Packet 500 alone stamped 5 s ahead: played in its own slot's place
    // (it came first, and the hole is longer than a concealment), the
    // playout jumped 5 s ahead, and the next 5 s of the stream, numbered
    // after it, were dropped as late while the buffer concealed.
    let r = stamped_off(5 * 48_000, 501);
    let s = r.jb.stats();
    assert!(s.packets_discarded <= 2, "{s:?}");
    assert!(r.played.len() >= 995, "{}: {s:?}", r.played.len());
    // A sender's clock that steps back by 3 s (and goes on from there):
    // its packets were all late for 3 s.
    let r = stamped_off(-3 * 48_000, 1_000);
    let s = r.jb.stats();
    assert!(s.packets_discarded <= 2, "{s:?}");
    assert!(r.played.len() >= 995, "{}: {s:?}", r.played.len());
}

#[test]
fn packets_seconds_apart_before_playout_starts_do_not_make_the_output_jump() {
    // A lone packet at 0, then, before the next pull, 1 s of a stream
    // stamped 2^31 away from it and numbered after it. Both were held,
    // the stream was played, and then the lone packet, 2^31 ticks on:
    // the output timestamp jumped by half a day (or, from 2^31 on,
    // backwards) without a reset.
    let pcm = tone(1.0);
    let lone = packets(FrameDuration::Ms10, &pcm, 0, 0).swap_remove(0);
    let stream = packets(FrameDuration::Ms20, &pcm, 1, 1 << 31);
    let mut arrivals = vec![(lone, 1.0)];
    arrivals.extend(steady(stream, 20.0, 5.0));
    let r = run(JitterConfig::default(), arrivals, 2.0);
    let s = r.jb.stats();
    assert!(r.played.len() >= 49, "{}: {s:?}", r.played.len());
    assert!(
        r.played.iter().all(|&(_, ts)| ts >= 1 << 31),
        "{:?}",
        r.played
    );
}

mod adversarial {
    //! Arbitrary sequences from a sender that is buggy or hostile but
    //! authenticated: SSRC flapping every packet, sequence numbers and
    //! timestamps anywhere (wraps, ±2^31 jumps, frozen, backwards),
    //! floods of duplicates, payloads empty, garbage or too large,
    //! outages of seconds; and the receiver's pulls in between.

    use std::sync::OnceLock;

    use proptest::prelude::*;

    use sotto_codecs::g711::MuLawDecoder;
    use sotto_codecs::resampled::Resampled;

    use super::*;

    /// Real Opus payloads: 10, 20, 40 and 60 ms frames, and a DTX frame.
    fn payloads() -> &'static [Vec<u8>] {
        static P: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
        P.get_or_init(|| {
            let pcm = tone(0.2);
            let mut out: Vec<Vec<u8>> = FrameDuration::ALL
                .iter()
                .flat_map(|&d| packets(d, &pcm, 0, 0).into_iter().take(2))
                .map(|p| p.payload)
                .collect();
            out.push(vec![0x08]);
            out
        })
    }

    #[derive(Debug, Clone)]
    enum Step {
        Insert {
            dseq: u16,
            dts: u32,
            ssrc: u32,
            payload: Result<usize, Vec<u8>>,
            copies: u8,
            /// Stamped this many ms before the last pull (a receive time
            /// taken early, or a caller's clocks out of step).
            early: u8,
        },
        Pull,
        /// No packet for this many ms (pulls go on).
        Outage(u16),
    }

    fn step() -> impl Strategy<Value = Step> {
        let payload = prop_oneof![
            8 => (0usize..9).prop_map(Ok),
            1 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Err),
            1 => prop_oneof![Just(0usize), Just(1_501), Just(65_000)]
                .prop_map(|n| Err(vec![0xfc; n])),
        ];
        let dts = prop_oneof![
            8 => (0u32..4).prop_map(|k| k * 960),
            1 => any::<u32>(),
            1 => prop_oneof![Just(1u32 << 31), Just((1 << 31) - 1), Just(0u32.wrapping_sub(960))],
        ];
        let dseq = prop_oneof![8 => 0u16..3, 1 => any::<u16>(), 1 => Just(1u16 << 15)];
        prop_oneof![
            6 => (dseq, dts, prop_oneof![6 => Just(7u32), 1 => Just(8u32)], payload,
                  prop_oneof![9 => Just(1u8), 1 => 2u8..60], prop_oneof![9 => Just(0u8), 1 => any::<u8>()])
                .prop_map(|(dseq, dts, ssrc, payload, copies, early)| Step::Insert {
                    dseq, dts, ssrc, payload, copies, early,
                }),
            4 => Just(Step::Pull),
            1 => (0u16..6_000).prop_map(Step::Outage),
        ]
    }

    /// One pull, plus the longest packet, plus one stretch period.
    const MAX_SYNC: usize = 480 + 5_760 + 480;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn hostile_senders_keep_the_buffer_bounded_playing_and_counting(
            steps in proptest::collection::vec(step(), 1..300),
            max_packets in prop_oneof![Just(16usize), Just(500)],
            flap in any::<bool>(),
            seq0 in any::<u16>(),
            ts0 in any::<u32>(),
            g711 in any::<bool>(),
        ) {
            let config = JitterConfig {
                max_packets,
                catch_up_excess_ms: 40.0,
                flush_excess_ms: 100.0,
                ..JitterConfig::default()
            };
            // G.711 through the resampler: timestamps on an 8 kHz clock,
            // any bytes decode.
            let decoder: Box<dyn sotto_codecs::Decoder> = if g711 {
                Box::new(Resampled::new(MuLawDecoder::new(), 48_000).unwrap())
            } else {
                Box::new(OpusDecoder::new(48_000, 1).unwrap())
            };
            let (scale, jump) = if g711 { (6, JUMP / 6) } else { (1, JUMP) };
            let mut jb = JitterBuffer::new(config, decoder).unwrap();
            let t0 = Instant::now();
            let (mut now_ms, mut seq, mut ts, mut pulls) = (0u64, seq0, ts0, 0u64);
            let mut out = Vec::new();
            let mut prev = JitterStats::default();
            let mut last_ts: Option<u32> = None;
            let mut flip = 0u32;
            let mut last_played: Option<u32> = None;
            let mut pull = |jb: &mut JitterBuffer, now_ms: u64, pulls: &mut u64,
                            last_ts: &mut Option<u32>, last_played: &mut Option<u32>,
                            prev: &mut JitterStats| -> Result<(), TestCaseError> {
                let pulled = jb.pull(t0 + Duration::from_millis(now_ms), &mut out);
                *pulls += 1;
                prop_assert_eq!(out.len(), 480);
                while let Some(e) = jb.poll_event() {
                    match e {
                        Event::Reset { .. } => {
                            *last_ts = None;
                            *last_played = None;
                        }
                        // Packets are played in timestamp order.
                        Event::Played { timestamp, .. } => {
                            if let Some(p) = *last_played {
                                let d = timestamp.wrapping_sub(p) as i32;
                                prop_assert!((1..=jump).contains(&d), "played {} after {}", timestamp, p);
                            }
                            *last_played = Some(timestamp);
                        }
                        Event::Discarded { .. } => {}
                    }
                }
                if let Some(t) = pulled.timestamp {
                    if let Some(p) = *last_ts {
                        let d = t.wrapping_sub(p) as i32;
                        prop_assert!((0..=jump).contains(&d), "{} after {}", t, p);
                    }
                    *last_ts = Some(t);
                }
                let s = jb.stats().clone();
                for ((name, a), (_, b)) in prev.w3c().into_iter().zip(s.w3c()) {
                    prop_assert!(b >= a && b.is_finite(), "{}: {} -> {}", name, a, b);
                }
                prop_assert!(s.concealed_samples >= s.silent_concealed_samples);
                prop_assert!(s.fec_packets_used + s.fec_packets_discarded <= s.fec_packets_received);
                prop_assert_eq!(s.total_samples_pulled, 480 * *pulls);
                prop_assert!(jb.target_delay_ms(t0 + Duration::from_millis(now_ms)).is_finite());
                *prev = s;
                Ok(())
            };
            for s in steps {
                match s {
                    Step::Insert { dseq, dts, ssrc, payload, copies, early } => {
                        now_ms += 3;
                        seq = seq.wrapping_add(dseq);
                        ts = ts.wrapping_add(if dts % 960 == 0 { dts / scale } else { dts });
                        flip += 1;
                        let ssrc = if flap { flip % 2 } else { ssrc };
                        let payload = match payload {
                            // 20 ms of G.711 is 160 bytes; 1 and 2 bytes
                            // are not whole 2.5 ms.
                            Ok(i) if g711 => vec![0x55; [160, 80, 320, 480, 20, 1, 2, 40, 960][i]],
                            Ok(i) => payloads()[i].clone(),
                            Err(bytes) => bytes,
                        };
                        let at = t0 + Duration::from_millis(now_ms.saturating_sub(early.into()));
                        for _ in 0..copies {
                            let p = RtpPacket { seq, timestamp: ts, ssrc, marker: false, payload: payload.clone() };
                            let _ = jb.insert(at, p);
                        }
                    }
                    Step::Pull => {
                        now_ms += 10;
                        pull(&mut jb, now_ms, &mut pulls, &mut last_ts, &mut last_played, &mut prev)?;
                    }
                    Step::Outage(ms) => {
                        for _ in 0..ms / 10 {
                            now_ms += 10;
                            pull(&mut jb, now_ms, &mut pulls, &mut last_ts, &mut last_played, &mut prev)?;
                        }
                    }
                }
                prop_assert!(jb.packets_held() <= max_packets);
                prop_assert!(jb.samples_held() <= MAX_SYNC, "{}", jb.samples_held());
            }
        }
    }
}

/// 30 s of tone from a sender whose clock is `ppm` fast, over a 30 ms
/// link with 0-6 ms of jitter that carries nothing from 10 s for
/// `outage_s`; the sender's timestamps then go on `ts_jump_s` further than
/// before the outage (`outage_s`: it kept its clock running; 0: it paused
/// it). With `reorder`, two packets came swapped a second before the
/// outage. Returns each played packet's wait in the buffer, ms, by the
/// pull it played in.
fn outage(ppm: f64, outage_s: f64, ts_jump_s: f64, reorder: bool) -> Vec<(usize, f64)> {
    let pcm = tone(30.0);
    let mut ps = packets(FrameDuration::Ms20, &pcm, 9, 77);
    let (cut, out) = (500usize, (outage_s * 50.0) as usize);
    let shift = ((ts_jump_s - outage_s) * 48_000.0) as i32;
    let mut arrivals = Vec::new();
    let mut sent = std::collections::HashMap::new();
    for (k, p) in ps.iter_mut().enumerate() {
        if (cut..cut + out).contains(&k) {
            continue;
        }
        if k >= cut {
            p.timestamp = p.timestamp.wrapping_add_signed(shift);
        }
        let mut at = k as f64 * 20.0 * (1.0 - ppm * 1e-6) + 30.0 + ((k * 13) % 7) as f64;
        if reorder && k == 450 {
            at += 25.0;
        }
        sent.insert(p.timestamp, at);
        arrivals.push((p.clone(), at));
    }
    arrivals.sort_by(|a, b| a.1.total_cmp(&b.1));
    let r = run(JitterConfig::default(), arrivals, 30.0);
    r.played
        .iter()
        .map(|&(tick, ts)| (tick, tick as f64 * 10.0 - sent[&ts]))
        .collect()
}

#[test]
fn after_an_outage_of_seconds_the_wait_goes_back_to_what_it_was() {
    for ppm in [-100.0, 0.0, 100.0] {
        for (outage_s, ts_jump_s) in [(5.0, 5.0), (5.0, 0.0), (5.0, 8.0), (3.0, 1.0), (12.0, 12.0)]
        {
            for reorder in [false, true] {
                let waits = outage(ppm, outage_s, ts_jump_s, reorder);
                let mean = |from: f64, to: f64| {
                    let w: Vec<f64> = waits
                        .iter()
                        .filter(|(t, _)| (from * 100.0..to * 100.0).contains(&(*t as f64)))
                        .map(|&(_, w)| w)
                        .collect();
                    assert!(
                        !w.is_empty(),
                        "{ppm} {outage_s} {ts_jump_s} {reorder}: none in {from}..{to} s"
                    );
                    w.iter().sum::<f64>() / w.len() as f64
                };
                let before = mean(5.0, 10.0);
                // Three seconds after the link is back, and to the end.
                let resumed = 10.0 + outage_s;
                let after = mean(resumed + 3.0, 30.0);
                eprintln!(
                    "{ppm} ppm, {outage_s} s out, ts +{ts_jump_s} s, reorder {reorder}: wait {before:.1} -> {after:.1} ms"
                );
                assert!(
                    after <= before + 30.0,
                    "{ppm} {outage_s} {ts_jump_s} {reorder}: {before} -> {after}"
                );
            }
        }
    }
}

#[test]
fn any_number_of_packets_may_be_configured() {
    // The capacity the target is capped at is computed without overflow.
    let config = JitterConfig {
        max_packets: usize::MAX,
        ..JitterConfig::default()
    };
    let ps = packets(FrameDuration::Ms20, &tone(1.0), 0, 0);
    let r = run(config, steady(ps, 20.0, 30.0), 1.2);
    assert!(r.played.len() >= 49, "{}", r.played.len());
}

#[test]
fn bounds_of_any_size_may_be_configured() {
    // Levels in samples are added up without overflow, however far the
    // configured excesses and targets reach: up to the longest reset jump
    // (an hour), beyond which a configuration is refused.
    let hour = sotto_jitter::config::MAX_RESET_JUMP_MS;
    for config in [
        JitterConfig {
            flush_excess_ms: hour - 20_000.0,
            reset_jump_ms: hour,
            ..JitterConfig::default()
        },
        JitterConfig {
            max_packets: usize::MAX,
            min_target_ms: hour / 2.0,
            max_target_ms: hour / 2.0,
            reset_jump_ms: hour,
            ..JitterConfig::default()
        },
    ] {
        let ps = packets(FrameDuration::Ms20, &tone(1.0), 0, 0);
        run(config, steady(ps, 20.0, 30.0), 1.2);
    }
    let beyond = JitterConfig {
        flush_excess_ms: 1e300,
        reset_jump_ms: 1e301,
        ..JitterConfig::default()
    };
    assert!(beyond.validate().is_err());
}
