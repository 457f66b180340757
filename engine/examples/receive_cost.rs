//! What a hostile or badly behaved peer costs the video receive path, per
//! packet: timing only, printed, never asserted (not a test: these
//! machines are shared and noisy). Run in release:
//!
//! ```text
//! cargo run --release -p sotto-engine --example receive_cost
//! ```

use sotto_engine::rtp::nack::{Arrival, NackRequester};
use sotto_engine::video::assembler::{AssemblerLimits, FrameAssembler};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Microseconds per item of `elapsed` over `items`.
fn per(elapsed: Duration, items: u64) -> f64 {
    elapsed.as_secs_f64() * 1e6 / items as f64
}

/// A sender that jumps its sequence numbers by 500 every packet: each packet
/// opens a gap just under `MAX_MISSING`.
fn nack_sequence_jumping_500_each_packet() {
    const PACKETS: u64 = 200_000;
    let t0 = Instant::now();
    let rtt = Some(Duration::from_millis(50));

    // The requester alone: what arriving packets cost (10 000 packets/s).
    let mut n = NackRequester::new();
    let started = Instant::now();
    for i in 0..PACKETS {
        let now = t0 + Duration::from_micros(100 * i);
        let seq = (i * 500) as u16;
        assert_ne!(black_box(n.on_packet(now, seq)), Arrival::Restart);
    }
    let arrivals = started.elapsed();

    // As a call drives it, requests taken whenever due; at 100 packets/s
    // each gap is asked for before the next one pushes it out.
    let mut n = NackRequester::new();
    let mut asked = 0u64;
    let started = Instant::now();
    for i in 0..PACKETS {
        let now = t0 + Duration::from_millis(10 * i);
        n.on_packet(now, (i * 500) as u16);
        if n.poll_timeout().is_some_and(|t| t <= now) {
            asked += black_box(n.take_due(now, rtt)).len() as u64;
        }
    }
    let driven = started.elapsed();
    println!(
        "nack, seq += 500: on_packet {:.3} µs/packet; with take_due {:.3} µs/packet \
         ({asked} packet requests over {PACKETS} packets)",
        per(arrivals, PACKETS),
        per(driven, PACKETS),
    );
}

/// One-packet VP8 payloads: an inter frame's start, a middle, a key frame.
const START: &[u8] = &[0x10, 0x51, 0, 0, 7];
const MIDDLE: &[u8] = &[0x00, 7, 7, 7];
const KEY: &[u8] = &[0x10, 0x50, 0, 0, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00];

/// A peer that fills the assembler with frames stuck behind a gap: a key
/// frame, one packet lost, an inter frame that never ends (`stuck`
/// packets), then `complete` whole one-packet inter frames. When the gap is
/// given up every one of these is dropped at once.
fn assembler_dropping_frames_stuck_behind_a_gap() {
    const CYCLES: u64 = 200;
    let limits = AssemblerLimits::default();
    let (stuck, complete) = (511u64, 511u64);
    let mut a = FrameAssembler::new(limits);
    let mut now = Instant::now();
    let mut seq = 0u16;
    let mut ts = 0u32;
    let mut next = |marker: bool, payload: &'static [u8], new_frame: bool| {
        if new_frame {
            ts = ts.wrapping_add(3000);
        }
        seq = seq.wrapping_add(1);
        (seq, ts, marker, payload)
    };
    let (mut inserting, mut dropping) = (Duration::ZERO, Duration::ZERO);
    let mut packets = 0;
    for _ in 0..CYCLES {
        let mut cycle = vec![next(true, KEY, true)];
        next(true, START, true); // lost
        cycle.push(next(false, START, true));
        cycle.extend((1..stuck).map(|_| next(false, MIDDLE, false)));
        cycle.extend((0..complete).map(|_| next(true, START, true)));
        packets += cycle.len() as u64;
        let started = Instant::now();
        for (s, t, m, p) in cycle {
            black_box(a.insert(now, s, t, m, p)).unwrap();
        }
        inserting += started.elapsed();
        while a.poll_frame().is_some() {}
        now += limits.max_wait;
        let dropped = a.stats().frames_dropped;
        let started = Instant::now();
        a.handle_timeout(now);
        dropping += started.elapsed();
        assert_eq!(a.stats().frames_dropped - dropped, complete);
        now += Duration::from_millis(1);
    }
    assert_eq!(a.stats().frames_assembled, CYCLES);
    println!(
        "assembler, {stuck} stuck + {complete} complete frames behind a gap: \
         inserts {:.3} µs/packet; dropping them {:.1} µs per gap given up \
         ({:.3} µs/packet); overall {:.3} µs/packet",
        per(inserting, packets),
        per(dropping, CYCLES),
        per(dropping, packets),
        per(inserting + dropping, packets),
    );
}

fn main() {
    nack_sequence_jumping_500_each_packet();
    assembler_dropping_frames_stuck_behind_a_gap();
}
