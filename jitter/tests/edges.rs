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
                assert!(
                    ts.wrapping_sub(p) as i32 >= 0,
                    "pull {tick}: {ts} after {p}"
                );
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
