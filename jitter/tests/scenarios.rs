//! Deterministic network scenarios through the real Opus codec, asserting
//! on the W3C statistics and on audio continuity at operation boundaries.

use std::time::{Duration, Instant};

use sotto_codecs::opus::{OpusConfig, OpusDecoder, OpusEncoder};
use sotto_codecs::{CodecError, Decoder, Encoder, FrameDuration};
use sotto_jitter::stretch::max_step;
use sotto_jitter::{Event, JitterBuffer, JitterConfig, Operation, RtpPacket};

const FRAME: usize = 960;

/// A 220 Hz tone at 48 kHz.
fn tone(seconds: f64) -> Vec<i16> {
    let n = (seconds * 48_000.0) as usize;
    (0..n)
        .map(|i| (8000.0 * (2.0 * std::f64::consts::PI * 220.0 * i as f64 / 48_000.0).sin()) as i16)
        .collect()
}

/// Encodes `pcm` as 20 ms Opus packets (FEC on) of one SSRC.
fn packets(pcm: &[i16], ssrc: u32, ts0: u32, dtx: bool) -> Vec<RtpPacket> {
    packets_of(FrameDuration::Ms20, pcm, ssrc, ts0, dtx)
}

/// [`packets`] with frames of `duration`.
fn packets_of(
    duration: FrameDuration,
    pcm: &[i16],
    ssrc: u32,
    ts0: u32,
    dtx: bool,
) -> Vec<RtpPacket> {
    let mut enc = OpusEncoder::new(OpusConfig {
        fec: true,
        packet_loss_pct: 10,
        dtx,
        frame: duration,
        ..OpusConfig::default()
    })
    .unwrap();
    let samples = duration.samples(48_000);
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for (k, frame) in pcm.chunks_exact(samples).enumerate() {
        enc.encode(frame, &mut buf).unwrap();
        out.push(RtpPacket {
            seq: (k as u16).wrapping_add(ts0 as u16),
            timestamp: ts0.wrapping_add((k * samples) as u32),
            ssrc,
            marker: k == 0,
            payload: buf.clone(),
        });
    }
    out
}

struct Run {
    audio: Vec<i16>,
    ops: Vec<Operation>,
    events: Vec<Event>,
    /// The pull (10 ms tick) each event came out of.
    event_ticks: Vec<usize>,
    timestamps: Vec<Option<u32>>,
    jb: JitterBuffer,
    /// Statistics when the last packet sent started playing (after it,
    /// the buffer conceals the end of the stream).
    at_last_packet: Option<sotto_jitter::JitterStats>,
    /// Playout delay of each played packet: from its first sample's
    /// capture (RTP timestamp, streams start at 0 at time 0) to its play, ms.
    delays: Vec<f64>,
}

/// Delivers `(packet, arrival ms)` and pulls every 10 ms for `seconds`.
fn run(arrivals: Vec<(RtpPacket, f64)>, seconds: f64) -> Run {
    run_with(JitterConfig::default(), arrivals, seconds)
}

/// [`run`] with a buffer of `config`.
fn run_with(config: JitterConfig, arrivals: Vec<(RtpPacket, f64)>, seconds: f64) -> Run {
    let dec = OpusDecoder::new(48_000, 1).unwrap();
    run_decoding(config, Box::new(dec), arrivals, seconds)
}

/// [`run_with`] through `decoder`.
fn run_decoding(
    config: JitterConfig,
    decoder: Box<dyn Decoder>,
    mut arrivals: Vec<(RtpPacket, f64)>,
    seconds: f64,
) -> Run {
    arrivals.sort_by(|a, b| a.1.total_cmp(&b.1));
    let last_ts = arrivals.iter().map(|(p, _)| p.timestamp).max();
    let mut at_last_packet = None;
    let mut delays = Vec::new();
    let mut jb = JitterBuffer::new(config, decoder).unwrap();
    let t0 = Instant::now();
    let at = |ms: f64| t0 + Duration::from_secs_f64(ms / 1000.0);
    let mut next = arrivals.into_iter().peekable();
    let (mut audio, mut ops, mut events, mut timestamps) = (vec![], vec![], vec![], vec![]);
    let mut event_ticks = vec![];
    let mut out = Vec::new();
    for tick in 0..(seconds * 100.0) as usize {
        let now = tick as f64 * 10.0;
        while let Some((_, a)) = next.peek() {
            if *a > now {
                break;
            }
            let (p, a) = next.next().unwrap();
            let _ = jb.insert(at(a), p);
        }
        let pulled = jb.pull(at(now), &mut out);
        audio.extend_from_slice(&out);
        ops.push(pulled.operation);
        timestamps.push(pulled.timestamp);
        while let Some(e) = jb.poll_event() {
            if let Event::Played {
                timestamp, offset, ..
            } = e
            {
                if Some(timestamp) == last_ts {
                    at_last_packet = Some(jb.stats().clone());
                }
                delays.push(now + offset as f64 / 48.0 - f64::from(timestamp) / 48.0);
            }
            events.push(e);
            event_ticks.push(tick);
        }
    }
    Run {
        audio,
        ops,
        events,
        event_ticks,
        timestamps,
        jb,
        at_last_packet,
        delays,
    }
}

/// The packets with their arrival times: the k-th arrives at `arrival(k)` ms.
fn arriving(ps: Vec<RtpPacket>, mut arrival: impl FnMut(usize) -> f64) -> Vec<(RtpPacket, f64)> {
    ps.into_iter()
        .enumerate()
        .map(|(k, p)| {
            let a = arrival(k);
            (p, a)
        })
        .collect()
}

fn played(r: &Run) -> usize {
    r.events
        .iter()
        .filter(|e| matches!(e, Event::Played { .. }))
        .count()
}

/// Largest step of the loss-free decode of the same tone.
fn natural_step(pcm: &[i16]) -> i32 {
    max_step(&loss_free(FrameDuration::Ms20, pcm)[4800..])
}

/// The decode of `pcm` in frames of `duration` with nothing lost.
fn loss_free(duration: FrameDuration, pcm: &[i16]) -> Vec<i16> {
    let mut dec = OpusDecoder::new(48_000, 1).unwrap();
    let mut out = Vec::new();
    for p in packets_of(duration, pcm, 1, 0, false) {
        sotto_codecs::Decoder::decode_into(&mut dec, &p.payload, &mut out).unwrap();
    }
    out
}

#[test]
fn reordering_and_jitter_lose_nothing_and_stay_smooth() {
    let pcm = tone(6.0);
    let ps = packets(&pcm, 7, 1000, false);
    let n = ps.len();
    // Deterministic jitter 0..40 ms, and every 7th packet swapped with the next.
    let arrivals = arriving(ps, |k| {
        let swap = if k % 7 == 0 { 25.0 } else { 0.0 };
        let jitter = ((k * 37) % 41) as f64;
        k as f64 * 20.0 + 30.0 + jitter + swap
    });
    let r = run(arrivals, 6.3);
    let s = r.at_last_packet.as_ref().expect("last packet played");
    // While the estimator learns the jitter, at most a couple of packets
    // come late; their audio comes back from the next packet's FEC.
    assert!(s.packets_discarded <= 2, "{s:?}");
    assert_eq!(played(&r), n);
    // The zero-margin target allows a few 10 ms underruns while learning.
    assert!(s.concealment_events <= 3, "{s:?}");
    assert!(s.concealed_samples <= 3 * 480, "{s:?}");
    // Continuity over the whole steady part, which has stretches in it.
    let natural = natural_step(&pcm);
    let steady = &r.audio[48_000..];
    assert!(
        max_step(steady) <= natural * 3 / 2,
        "{} vs {natural}",
        max_step(steady)
    );
    // The target follows the 40 ms jitter, not more.
    assert!(s.mean_delay_ms() < 120.0, "{}", s.mean_delay_ms());
    assert!(s.jitter_buffer_emitted_count > 0);
}

/// Real speech (48 kHz, 1.4 s), looped to `times` copies.
fn speech(times: usize) -> Vec<i16> {
    let clip = sotto_codecs::wav::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/speech/alsa_48k/Front_Center.wav"
    ))
    .unwrap();
    clip.samples.repeat(times)
}

/// Speech over a steady 30 ms link that loses packets 50..=53, and, with
/// `swap_early`, delivers packets 20 and 21 out of order first.
fn burst_after(swap_early: bool) -> Run {
    let pcm = speech(3);
    let ps = packets(&pcm, 1, 0, false);
    let arrivals: Vec<_> = ps
        .into_iter()
        .enumerate()
        .filter(|(k, _)| !(50..54).contains(k))
        .map(|(k, p)| {
            let swap = if swap_early && k == 20 { 25.0 } else { 0.0 };
            (p, k as f64 * 20.0 + 30.0 + swap)
        })
        .collect();
    run(arrivals, pcm.len() as f64 / 48_000.0)
}

#[test]
fn burst_loss_is_concealed_and_merged() {
    let r = burst_after(false);
    let s = r.jb.stats();
    // Packet 53 comes back from 54's FEC; 50..52 are concealed.
    assert!(s.fec_packets_used >= 1, "{s:?}");
    assert!(s.concealment_events >= 1);
    assert!(s.concealed_samples >= 3 * FRAME as u64, "{s:?}");
    assert!(r.ops.contains(&Operation::FecRecovery) || r.ops.contains(&Operation::Merge));
    // No click where decoded audio resumes: the step stays near the tone's.
    let natural = natural_step(&speech(3));
    let resume = r
        .ops
        .iter()
        .position(|o| matches!(o, Operation::FecRecovery | Operation::Merge))
        .unwrap();
    let around = &r.audio[(resume - 2) * 480..(resume + 4) * 480];
    assert!(
        max_step(around) <= natural * 2,
        "{} vs {natural}",
        max_step(around)
    );
}

/// Playout delay of packet `k` (20 ms packets from timestamp 0).
fn delay_of(r: &Run, k: u32) -> f64 {
    let i = r
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Played { timestamp, .. } => Some(*timestamp),
            _ => None,
        })
        .position(|ts| ts == k * FRAME as u32)
        .unwrap_or_else(|| panic!("packet {k} not played"));
    r.delays[i]
}

#[test]
fn a_burst_lost_on_an_in_order_link_delays_the_playout_by_no_more_than_the_fec_frame() {
    // Nothing came out of order: the wait at the hole (80 ms, until packet
    // 54 arrives) turns into the concealment of 50..=52, and 53 comes back
    // from 54's FEC. Only that frame, recovered 20 ms after its slot,
    // delays what follows (before, the buffer waited 80 ms and then
    // concealed 50..=52 as well: 80 ms later).
    let r = burst_after(false);
    let s = r.jb.stats();
    let (before, after) = (delay_of(&r, 49), delay_of(&r, 54));
    assert!(after <= before + 20.5, "{after} vs {before}");
    assert_eq!(s.fec_packets_used, 1, "{s:?}");
    assert_eq!(s.waiting_concealed_samples, FRAME as u64, "{s:?}");
    assert_eq!(s.packets_discarded, 0, "{s:?}");
}

#[test]
fn a_burst_lost_after_reordering_is_waited_for() {
    // A packet came out of order a second earlier (which also raised the
    // target): the missing ones may be late, so the buffer waits for them,
    // then conceals them too, and plays on later.
    let r = burst_after(true);
    let s = r.jb.stats();
    let (before, after) = (delay_of(&r, 49), delay_of(&r, 54));
    assert!(after > before + 20.5, "{after} vs {before}");
    assert!(s.waiting_concealed_samples > FRAME as u64, "{s:?}");
}

#[test]
fn three_second_outage_recovers_at_low_delay() {
    let pcm = tone(8.0);
    let ps = packets(&pcm, 1, 0, false);
    let n = ps.len();
    let arrivals: Vec<_> = ps
        .into_iter()
        .enumerate()
        .filter(|(k, _)| !(100..250).contains(k))
        .map(|(k, p)| (p, k as f64 * 20.0 + 30.0))
        .collect();
    let r = run(arrivals, 8.5);
    let s = r.jb.stats();
    assert!(s.concealed_samples >= 140 * FRAME as u64, "{s:?}");
    // Everything after the outage is played, without a backlog.
    assert_eq!(played(&r), n - 150);
    assert!(r.jb.packets_held() <= 3);
}

/// `pcm` over a steady 30 ms link that queues what is sent from 2 s on
/// for `outage_s` and delivers it together (0.05 ms apart) as the outage
/// ends, 10 ms before the first packet sent after it.
fn queued_outage(pcm: &[i16], outage_s: f64) -> (Run, usize) {
    outage_delivered(JitterConfig::default(), pcm, outage_s, 1, 0.05)
}

/// [`queued_outage`] through a buffer of `config`, the backlog delivered
/// in order `per_piece` packets at a time, `gap_ms` apart, and what is
/// sent after the outage behind it.
fn outage_delivered(
    config: JitterConfig,
    pcm: &[i16],
    outage_s: f64,
    per_piece: usize,
    gap_ms: f64,
) -> (Run, usize) {
    let ps = packets(pcm, 1, 0, false);
    let n = ps.len();
    let end = 100 + (outage_s * 50.0) as usize;
    let piece = |k: usize| end as f64 * 20.0 + 20.0 + ((k - 100) / per_piece) as f64 * gap_ms;
    let arrivals = arriving(ps, |k| match k {
        0..100 => k as f64 * 20.0 + 30.0,
        k if k < end => piece(k),
        k => (k as f64 * 20.0 + 30.0).max(piece(end - 1)),
    });
    let seconds = pcm.len() as f64 / 48_000.0 + 0.5;
    (run_with(config, arrivals, seconds), n)
}

/// The longest playout delay of the last second played, ms.
fn delay_at_end(r: &Run) -> f64 {
    r.delays[r.delays.len() - 50..]
        .iter()
        .copied()
        .fold(0.0, f64::max)
}

#[test]
fn a_queued_outage_backlog_is_played_fast_not_dropped() {
    // Speech, 1.5 s queued: the backlog is over the catch-up threshold
    // (800 ms) but under the flush (3 s). Every packet is played; the
    // delay is under 900 ms within 1.2 s of the backlog coming (it takes
    // 0.8 s; 1.5 s when only the acceleration under the threshold, one
    // pitch period per frame where a join is good, takes it); the
    // catch-up goes on until all of the backlog is gone, so the delay is
    // under 100 ms within 2.5 s (it takes 1.8 s; 4.3 s when it stops
    // 800 ms over target and the rest waits for acceleration and
    // pauses); no step of the output is over
    // half again the steepest of the speech's own decode; and the delay
    // is back at the link's by the end.
    let pcm = speech(10);
    let (r, n) = queued_outage(&pcm, 1.5);
    let s = r.jb.stats();
    assert_eq!(s.packets_discarded, 0, "{s:?}");
    assert_eq!(played(&r), n);
    let under = (100..n as u32)
        .find(|&k| delay_of(&r, k) < 900.0)
        .expect("delay back under 900 ms");
    let at = f64::from(under) * 20.0 + delay_of(&r, under);
    let came = 175.0 * 20.0 + 20.0; // the backlog, at 3.52 s
    assert!(at <= came + 1_200.0, "under 900 ms from {at} ms");
    let caught_up = (under..n as u32)
        .find(|&k| delay_of(&r, k) < 100.0)
        .expect("delay back under 100 ms");
    let at = f64::from(caught_up) * 20.0 + delay_of(&r, caught_up);
    assert!(at <= came + 2_500.0, "under 100 ms from {at} ms");
    let natural = natural_step(&pcm);
    let after = &r.audio[3 * 48_000..];
    assert!(
        max_step(after) <= natural * 3 / 2,
        "{} vs {natural}",
        max_step(after)
    );
    let at_end = delay_at_end(&r);
    assert!(at_end <= 60.0, "{at_end}");
}

#[test]
fn a_queued_outage_backlog_of_seconds_is_flushed() {
    // 4 s queued: even at twice the speed it would keep the call seconds
    // behind for as long again, so the oldest audio is dropped.
    let (r, _) = queued_outage(&tone(10.0), 4.0);
    let s = r.jb.stats();
    assert!(s.packets_discarded > 50, "{s:?}");
    // By the end the buffer is back near the network delay.
    let last = r.events.iter().rev().find_map(|e| match e {
        Event::Played { timestamp, .. } => Some(*timestamp),
        _ => None,
    });
    let played_ms = last.unwrap() as f64 / 48.0;
    assert!(
        10_500.0 - played_ms < 700.0,
        "last played at {played_ms} ms"
    );
}

/// A buffer that holds a packet an outage held up for the backlog
/// behind it (off by default).
fn outage_hold() -> JitterConfig {
    JitterConfig {
        outage_hold_ms: 1_000.0,
        ..JitterConfig::default()
    }
}

#[test]
fn a_backlog_of_seconds_that_comes_in_pieces_is_not_played_stale() {
    // 5 s queued, delivered as mobile links deliver a backlog: in
    // pieces (five packets every 10 ms, over 0.5 s). Without the hold
    // (the default) the first pieces play as they come, 5 s behind, and
    // the flush catches only what has come by the time the level crosses
    // it. With it the call goes back to live after the outage, the
    // link's 30 ms.
    let (r, _) = outage_delivered(outage_hold(), &tone(12.0), 5.0, 5, 10.0);
    let worst = r.delays.iter().copied().fold(0.0, f64::max);
    assert!(worst < 100.0, "played {worst} ms behind");
    let s = r.jb.stats();
    assert!(s.packets_discarded > 150, "{s:?}");
    let at_end = delay_at_end(&r);
    assert!(at_end <= 60.0, "{at_end}");
}

#[test]
fn a_delay_that_steps_up_by_seconds_and_stays_is_played_not_flushed() {
    // From 2 s on every packet takes 4 s longer and keeps coming every
    // 20 ms: no backlog comes, only a longer path. The buffer waits for
    // it and plays it; it drops nothing.
    let pcm = tone(12.0);
    let ps = packets(&pcm, 1, 0, false);
    let n = ps.len();
    let arrivals = arriving(ps, |k| {
        k as f64 * 20.0 + 30.0 + if k >= 100 { 4_000.0 } else { 0.0 }
    });
    let r = run_with(outage_hold(), arrivals, 12.5 + 4.0);
    let s = r.jb.stats();
    assert_eq!(s.packets_discarded, 0, "{s:?}");
    assert_eq!(played(&r), n);
}

/// A non-stop tone for five minutes from a sender whose clock is `ppm`
/// fast (negative: slow) against the receiver's, 0-6 ms of jitter.
fn drift(ppm: f64) -> Run {
    drifting(&tone(300.0), ppm)
}

/// `pcm` (no DTX) over a 30 ms link with 0-6 ms of jitter from a sender
/// whose clock is `ppm` fast against the receiver's.
fn drifting(pcm: &[i16], ppm: f64) -> Run {
    let ps = packets(pcm, 1, 0, false);
    let arrivals = arriving(ps, |k| {
        k as f64 * 20.0 * (1.0 - ppm * 1e-6) + 30.0 + ((k * 13) % 7) as f64
    });
    run(arrivals, pcm.len() as f64 / 48_000.0)
}

#[test]
fn sender_clock_fast_by_100_ppm_is_absorbed_by_acceleration() {
    let r = drift(100.0);
    let s = r.jb.stats();
    // 30 ms of extra audio over five minutes, removed by accelerate as
    // it builds up past the 15 ms band (no pauses in a tone): at least
    // 30 - 15 - one 10 ms pull of it by the end, so the delay measured
    // against the sender's timestamps falls by that much (the sender's
    // clock runs ahead of the receiver's).
    assert!(s.removed_samples_for_acceleration >= 48 * 5, "{s:?}");
    let (first, last) = (r.delays[100], r.delays[r.delays.len() - 100]);
    assert!(first - last >= 5.0, "{first} -> {last}");
    assert_eq!(s.packets_discarded, 0);
    assert!(r.jb.packets_held() <= 4);
}

/// Pulls after the first `seconds` that concealed (waits for a packet).
fn waits_after(r: &Run, seconds: usize) -> usize {
    r.ops[seconds * 100..]
        .iter()
        .filter(|o| **o == Operation::Expand)
        .count()
}

#[test]
fn sender_clock_slow_by_100_ppm_is_absorbed_by_stretching_without_a_wait() {
    let r = drift(-100.0);
    let s = r.jb.stats();
    assert_eq!(s.packets_discarded, 0);
    // The sender falls 10 ms behind every 100 s. The buffer stretches as
    // soon as the level is under target, before it sinks to where a
    // packet is late, and so never waits after the start (with a band of
    // 2 ms it waited every 100 s; with that band and stretching only once
    // a minute of transits had measured the skew, once in the first 70 s).
    assert_eq!(waits_after(&r, 1), 0, "{s:?}");
    assert!(s.concealment_events <= 2, "{s:?}");
    assert!(s.inserted_samples_for_deceleration > 0, "{s:?}");
    // No packet is slowed at the start, while the smoothed level is
    // still climbing to the buffering the first packets already have.
    assert!(
        !r.ops[..100].contains(&Operation::PreemptiveExpand),
        "{s:?}"
    );
    // Measured against the sender's timestamps, the delay grows by the
    // drift (30 ms in five minutes, as the transit does) and no more.
    let (first, last) = (r.delays[100], r.delays[r.delays.len() - 100]);
    assert!(last - first <= 30.0 + 10.0, "{first} -> {last}");
}

#[test]
fn a_slow_sender_clock_is_absorbed_in_the_pauses() {
    // Talkspurts with pauses, every frame sent (no DTX, as WebRTC's
    // default Opus): the pauses reach the buffer as quiet frames, and the
    // 30 ms the sender falls behind in five minutes goes into them,
    // lengthened before the buffer runs dry, not into waits inside the
    // talkspurts.
    let r = drifting(&talkspurts(214), -100.0);
    let s = r.jb.stats();
    assert_eq!(s.packets_discarded, 0);
    assert!(quiet_wherever(&r, Operation::PreemptiveExpand) > 0, "{s:?}");
    assert_eq!(waits_after(&r, 1), 0, "{s:?}");
    let (first, last) = (r.delays[100], r.delays[r.delays.len() - 100]);
    assert!(last - first <= 30.0 + 10.0, "{first} -> {last}");
}

/// The packets a DTX sender transmits, with their frame index: DTX
/// frames only as the first of a run.
fn transmitted(all: Vec<RtpPacket>) -> Vec<(usize, RtpPacket)> {
    let enc = OpusEncoder::new(OpusConfig {
        dtx: true,
        ..OpusConfig::default()
    })
    .unwrap();
    let mut prev_dtx = false;
    all.into_iter()
        .enumerate()
        .filter(|(_, p)| {
            let d = enc.is_dtx(&p.payload);
            let keep = !d || !prev_dtx;
            prev_dtx = d;
            keep
        })
        .collect()
}

#[test]
fn dtx_pause_plays_comfort_noise_not_concealment() {
    let speech = sotto_codecs::wav::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/speech/alsa_48k/Front_Center.wav"
    ))
    .unwrap();
    let mut pcm = speech.samples.clone();
    pcm.extend(std::iter::repeat_n(0i16, 48_000 * 2));
    pcm.extend_from_slice(&speech.samples);
    let all = packets(&pcm, 3, 0, true);
    let total = all.len();
    let sent: Vec<_> = transmitted(all)
        .into_iter()
        .map(|(k, p)| (p, k as f64 * 20.0 + 30.0))
        .collect();
    let n_sent = sent.len();
    assert!(
        n_sent < total - 50,
        "DTX should suppress packets: {n_sent} of {total}"
    );
    let r = run(sent, pcm.len() as f64 / 48_000.0 + 0.05);
    let s = r.jb.stats();
    assert!(s.comfort_noise_samples > 48_000, "{s:?}");
    assert!(s.concealed_samples < 10 * FRAME as u64, "{s:?}");
    assert_eq!(played(&r), n_sent);
    assert!(r.ops.contains(&Operation::ComfortNoise));
}

#[test]
fn ssrc_change_resets_and_plays_the_new_stream() {
    let pcm = tone(2.0);
    let a = packets(&pcm, 1, 0, false);
    let b = packets(&pcm, 2, 3_000_000_000, false);
    let na = a.len();
    let mut arrivals = arriving(a, |k| k as f64 * 20.0 + 30.0);
    arrivals.extend(arriving(b, |k| 2_000.0 + k as f64 * 20.0 + 30.0));
    let r = run(arrivals, 4.5);
    let resets: Vec<_> = r
        .events
        .iter()
        .filter(|e| matches!(e, Event::Reset { ssrc: 2 }))
        .collect();
    assert_eq!(resets.len(), 1);
    let from_b = r
        .events
        .iter()
        .filter(|e| matches!(e, Event::Played { timestamp, .. } if *timestamp >= 3_000_000_000))
        .count();
    assert!(from_b >= na - 3, "{from_b}");
    // Output timestamps never go backwards within a stream.
    let b_start = r
        .timestamps
        .iter()
        .position(|t| t.is_some_and(|t| t >= 3_000_000_000))
        .unwrap();
    for w in r.timestamps[b_start..].windows(2) {
        if let [Some(x), Some(y)] = w {
            assert!(y >= x);
        }
    }
}

#[test]
fn slack_follows_the_jitter_none_on_a_steady_link_the_full_margin_on_a_jittery_one() {
    let pcm = tone(6.0);
    let margin = JitterConfig::default().margin_ms;
    // Constant 30 ms transit: jitter below one 10 ms pull needs no slack.
    let steady = arriving(packets(&pcm, 1, 0, false), |k| k as f64 * 20.0 + 30.0);
    let r = run(steady, 6.0);
    let target = r.jb.target_delay_ms(Instant::now());
    assert!(target <= 5.0, "steady link target {target} ms");
    // 0-60 ms of jitter (deterministic LCG): quantile plus the whole margin.
    let mut x = 12345u64;
    let jittery = arriving(packets(&pcm, 1, 0, false), |k| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        k as f64 * 20.0 + 30.0 + (x >> 40) as f64 / (1u64 << 24) as f64 * 60.0
    });
    let r = run(jittery, 6.0);
    let target = r.jb.target_delay_ms(Instant::now());
    assert!(target >= 40.0 + margin, "jittery link target {target} ms");
}

/// Talkspurts of tone with pauses of silence, `spurts` times.
fn talkspurts(spurts: usize) -> Vec<i16> {
    let mut pcm = Vec::new();
    for _ in 0..spurts {
        pcm.extend(tone(1.0));
        pcm.extend(std::iter::repeat_n(0i16, 19_200)); // 0.4 s
    }
    pcm
}

/// Asserts that every 10 ms block whose pull did `op` is quiet (the
/// stretch fell in a pause, not in speech); returns how many there were.
fn quiet_wherever(r: &Run, op: Operation) -> usize {
    quiet_over_noise_wherever(r, op, None)
}

/// [`quiet_wherever`] over background noise at `noise_dbfs`: a block no
/// more than 6 dB above the noise counts as quiet.
fn quiet_over_noise_wherever(r: &Run, op: Operation, noise_dbfs: Option<f64>) -> usize {
    let mut n = 0;
    for (k, _) in r.ops.iter().enumerate().filter(|(_, o)| **o == op) {
        n += 1;
        let block = &r.audio[k * 480..(k + 1) * 480];
        let quiet = match noise_dbfs {
            None => sotto_jitter::stretch::is_quiet(block),
            Some(db) => {
                let power = block.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 480.0;
                10.0 * (power / 32_768f64.powi(2)).log10() <= db + 6.0
            }
        };
        assert!(quiet, "block {k} ({op:?}) in speech");
    }
    n
}

/// Steady 30 ms transit, but for a freeze of `frames` packets at 3 s
/// (packets 150.. arrive together with the first packet after them: for
/// 3 frames, packets 150-152 with packet 153, at 3.09 s).
fn frozen_at_3s(ps: Vec<RtpPacket>, frames: usize) -> Vec<(RtpPacket, f64)> {
    let end = 150 + frames;
    arriving(ps, |k| {
        let k = if (150..end).contains(&k) { end } else { k };
        k as f64 * 20.0 + 30.0
    })
}

/// Runs `spurts` talkspurts through a freeze of `frames` packets at 3 s
/// and checks that the pauses took the excess back: at least
/// `removed_ms` cut, only in quiet blocks, and by the last second the
/// delay is the steady 30 ms transit plus less than the 15 ms band (on
/// the pull grid: 40 ms). Returns the run and its worst delay.
fn excess_taken_back_in_the_pauses(
    spurts: usize,
    frames: usize,
    seconds: f64,
    removed_ms: u64,
) -> (Run, f64) {
    excess_taken_back_in_noisy_pauses(spurts, frames, seconds, removed_ms, None)
}

/// [`excess_taken_back_in_the_pauses`] with background noise at
/// `noise_dbfs` mixed into the talkspurts and the pauses.
fn excess_taken_back_in_noisy_pauses(
    spurts: usize,
    frames: usize,
    seconds: f64,
    removed_ms: u64,
    noise_dbfs: Option<f64>,
) -> (Run, f64) {
    let mut pcm = talkspurts(spurts);
    if let Some(db) = noise_dbfs {
        sotto_jitter::eval::add_noise(&mut pcm, db, 1);
    }
    let r = run(frozen_at_3s(packets(&pcm, 5, 0, false), frames), seconds);
    let s = r.jb.stats();
    assert!(
        s.removed_samples_for_acceleration >= 48 * removed_ms,
        "{s:?}"
    );
    assert!(quiet_over_noise_wherever(&r, Operation::Accelerate, noise_dbfs) > 0);
    let worst = r.delays.iter().copied().fold(0.0, f64::max);
    let at_end = r.delays[r.delays.len() - 100..]
        .iter()
        .copied()
        .fold(0.0, f64::max);
    assert!(at_end <= 40.0, "{at_end}");
    (r, worst)
}

#[test]
fn a_small_excess_is_removed_in_the_pauses_not_in_speech() {
    // The buffer waits through a 60 ms freeze, then holds about 60 ms too
    // much, under the speech band.
    let (_, worst) = excess_taken_back_in_the_pauses(10, 3, 14.0, 40);
    assert!(worst >= 80.0, "{worst}");
}

#[test]
fn the_backlog_of_a_long_freeze_is_removed_in_the_pauses_not_in_speech() {
    // A 340 ms freeze: the buffer waits through it, then holds about
    // 340 ms too much. Less than the speech band (400 ms), the catch-up
    // (800 ms) and the flush (3 s): the pauses take it all back; no speech is
    // accelerated and no audio dropped.
    let (r, worst) = excess_taken_back_in_the_pauses(12, 17, 17.0, 300);
    assert_eq!(r.jb.stats().packets_discarded, 0, "{:?}", r.jb.stats());
    assert!(worst >= 350.0, "{worst}");
}

#[test]
fn over_background_noise_the_backlog_is_removed_in_the_pauses_too() {
    // As above, with noise 25 dB under the tone in the talkspurts and
    // between them, loud enough that Opus goes on sending it: the pauses
    // are found over the noise, and take the backlog back.
    let (r, worst) = excess_taken_back_in_noisy_pauses(12, 17, 17.0, 300, Some(-40.0));
    assert_eq!(r.jb.stats().packets_discarded, 0, "{:?}", r.jb.stats());
    assert!(worst >= 350.0, "{worst}");
}

#[test]
fn a_dtx_pause_takes_back_the_backlog_of_the_talkspurt_before_it() {
    // 2 s of tone with a 340 ms freeze at 1 s, 2 s of silence (DTX, as
    // while the other party talks), 2 s of tone. Bands so wide that
    // nothing is accelerated: the first talkspurt keeps its backlog to
    // its end, and only the DTX pause can take it back.
    let mut pcm = tone(2.0);
    pcm.extend(std::iter::repeat_n(0i16, 2 * 48_000));
    pcm.extend(tone(2.0));
    let sent: Vec<_> = transmitted(packets(&pcm, 9, 0, true))
        .into_iter()
        .map(|(k, p)| {
            let k_arrives = if (50..67).contains(&k) { 67 } else { k };
            (p, k_arrives as f64 * 20.0 + 30.0)
        })
        .collect();
    let config = JitterConfig {
        high_band_ms: 1_000.0,
        speech_high_band_ms: 1_000.0,
        ..JitterConfig::default()
    };
    let r = run_with(config, sent, 6.5);
    let end_of_first = delay_of(&r, 99);
    let start_of_second = delay_of(&r, 200);
    assert!(end_of_first >= 340.0, "{end_of_first}");
    assert!(start_of_second <= 100.0, "{start_of_second}");
}

#[test]
fn a_rising_target_adds_delay_in_the_pauses_not_in_speech() {
    let pcm = talkspurts(12);
    let ps = packets(&pcm, 6, 0, false);
    // Steady 30 ms for 3 s, then every fifth packet 50 ms slower: the
    // target rises while the level of the others stays where it was.
    let arrivals = arriving(ps, |k| {
        let slow = k >= 150 && k % 5 == 0;
        k as f64 * 20.0 + 30.0 + if slow { 50.0 } else { 0.0 }
    });
    let r = run(arrivals, 17.0);
    assert!(quiet_wherever(&r, Operation::PreemptiveExpand) > 0);
    // The delay did rise, to cover the slow packets without late loss.
    let early = r.delays[..100].iter().copied().fold(0.0, f64::max);
    let late = r.delays[r.delays.len() - 100..]
        .iter()
        .copied()
        .fold(f64::MAX, f64::min);
    assert!(late >= early + 30.0, "{early} -> {late}");
    // Only slow packets of the first second, before the target rose, were
    // late.
    assert!(r.jb.stats().packets_discarded <= 10, "{:?}", r.jb.stats());
}

#[test]
fn short_pauses_inside_speech_are_not_edited() {
    // 60 ms gaps, as between the words of a phrase.
    cuts_only_in_long_pauses(3, None);
}

#[test]
fn over_background_noise_longer_gaps_inside_speech_are_not_edited_either() {
    // Over noise, a quiet stretch may be a soft sound of a word that the
    // noise covers: a pause is edited only after 80 ms there (40 ms in
    // silence), so an 80 ms gap is left alone. Fails with 40 ms.
    cuts_only_in_long_pauses(4, Some(-40.0));
}

/// Talkspurts of four 160 ms tones with gaps of `gap` frames, then a
/// 400 ms pause, with `noise_dbfs` of noise throughout; a 60 ms freeze at
/// 3 s leaves the buffer about 60 ms over target, which it must take back
/// in the long pauses only, none in the gaps between the words.
fn cuts_only_in_long_pauses(gap: usize, noise_dbfs: Option<f64>) {
    let spurt = 4 * (8 + gap);
    let cycle = spurt + 20;
    let mut pcm = Vec::new();
    for _ in 0..12 {
        for _ in 0..4 {
            pcm.extend(tone(0.16));
            pcm.extend(std::iter::repeat_n(0i16, gap * FRAME));
        }
        pcm.extend(std::iter::repeat_n(0i16, 20 * FRAME));
    }
    if let Some(db) = noise_dbfs {
        sotto_jitter::eval::add_noise(&mut pcm, db, 1);
    }
    let r = run(frozen_at_3s(packets(&pcm, 7, 0, false), 3), 17.0);
    assert!(
        r.jb.stats().removed_samples_for_acceleration >= 48 * 40,
        "{:?}",
        r.jb.stats()
    );
    // Every frame cut (decoded in a pull that accelerated) lies in a long
    // pause.
    let cut: Vec<u32> = r
        .events
        .iter()
        .zip(&r.event_ticks)
        .filter_map(|(e, &tick)| match e {
            Event::Played { timestamp, .. } if r.ops[tick] == Operation::Accelerate => {
                Some(timestamp / FRAME as u32)
            }
            _ => None,
        })
        .collect();
    assert!(!cut.is_empty());
    assert!(cut.iter().all(|&f| f as usize % cycle >= spurt), "{cut:?}");
}

/// (packet index, sample offset within its pull) of every packet played.
fn start_offsets(r: &Run) -> Vec<(u32, usize)> {
    r.events
        .iter()
        .filter_map(|e| match e {
            Event::Played {
                timestamp, offset, ..
            } => Some((timestamp / FRAME as u32, *offset)),
            _ => None,
        })
        .collect()
}

#[test]
fn pauses_put_packet_starts_back_on_pull_boundaries() {
    let pcm = talkspurts(10);
    let ps = packets(&pcm, 6, 0, false);
    // Steady for 3 s, then 0-40 ms of jitter: the target rises and (with
    // speech slowed as soon as the level is under target) the tone is
    // stretched by pitch periods, so packets start mid-pull.
    let arrivals = arriving(ps, |k| {
        let jitter = if k >= 150 {
            ((k * 37) % 41) as f64
        } else {
            0.0
        };
        k as f64 * 20.0 + 30.0 + jitter
    });
    let config = JitterConfig {
        speech_low_band_ms: 2.0,
        ..JitterConfig::default()
    };
    let r = run_with(config, arrivals, 14.3);
    let offsets = start_offsets(&r);
    assert!(offsets.iter().any(|&(_, o)| o != 0), "no stretch happened");
    // Audio of the previous packet queued in front of a packet delays it
    // without protecting it (it had to be here for that pull anyway): the
    // pauses cut it, so every talkspurt (70 packets: 50 of tone, then 20
    // of silence) after the jitter began starts on a pull boundary.
    let starts: Vec<_> = offsets
        .iter()
        .filter(|&&(k, _)| k >= 210 && k % 70 == 0)
        .collect();
    assert!(starts.len() >= 6, "{starts:?}");
    assert!(starts.iter().all(|&&(_, o)| o == 0), "{starts:?}");
}

#[test]
fn talkspurts_after_dtx_start_late_enough_for_the_packets_behind_them() {
    // Talkspurts of a second, each after a second of DTX, over a link of
    // 3-11 ms (as the 5G traces), so the target is under one pull. The
    // first packet of a talkspurt alone fills the target level; started
    // at the pull after it came, the packets behind it are late whenever
    // they are slower than 10 ms, one in eight: a wait in nearly every
    // talkspurt. Started once it has waited as long as the target asks,
    // none is late.
    let mut pcm = Vec::new();
    for _ in 0..30 {
        pcm.extend(tone(1.0));
        pcm.extend(std::iter::repeat_n(0i16, 48_000));
    }
    let r = with_dtx_over(&pcm, 3.0, 10.0);
    let s = r.jb.stats();
    assert!(s.comfort_noise_samples > 20 * 48_000, "{s:?}");
    assert_eq!(waits_after(&r, 5), 0, "{s:?}");
}

/// `pcm` sent by a DTX sender over a link whose k-th packet takes
/// `base_ms` plus (37 k mod 80) / `jitter_div` ms.
fn with_dtx_over(pcm: &[i16], base_ms: f64, jitter_div: f64) -> Run {
    let sent: Vec<_> = transmitted(packets(pcm, 5, 0, true))
        .into_iter()
        .map(|(k, p)| {
            let jitter = ((k * 37) % 80) as f64 / jitter_div;
            (p, k as f64 * 20.0 + base_ms + jitter)
        })
        .collect();
    run(sent, pcm.len() as f64 / 48_000.0)
}

/// `spurts` talkspurts of a 2 s tone, each followed by 3 s of silence
/// (the other party's turn).
fn turns(spurts: usize) -> Vec<i16> {
    let mut pcm = Vec::new();
    for _ in 0..spurts {
        pcm.extend(tone(2.0));
        pcm.extend(std::iter::repeat_n(0i16, 3 * 48_000));
    }
    pcm
}

#[test]
fn after_a_long_dtx_pause_speech_is_not_stretched() {
    // The other party's turns: 2 s talkspurts after 3 s of DTX, over a
    // link of 30-70 ms. A DTX pause is a pause: the talkspurt after it
    // keeps the wide bands meant for speech while pauses come, and its
    // level is changed only in the pauses, not inside the words. (Counted
    // from the last quiet frame decoded, the 3 s of comfort noise left
    // every talkspurt to start with the narrow bands of non-stop sound.)
    let mut pcm = vec![0i16; 3 * 48_000];
    pcm.extend(turns(20));
    let r = with_dtx_over(&pcm, 30.0, 2.0);
    let s = r.jb.stats();
    assert!(s.comfort_noise_samples > 50 * 48_000, "{s:?}");
    quiet_wherever(&r, Operation::PreemptiveExpand);
    quiet_wherever(&r, Operation::Accelerate);
}

/// `sent` (frame index, packet) through a 30 ms first-in first-out queue
/// that holds every tenth packet `hold_ms` and so those behind it; no
/// packet leaves before `not_before(k)` ms (an outage).
fn through_holding_queue(
    sent: Vec<(usize, RtpPacket)>,
    hold_ms: f64,
    not_before: impl Fn(usize) -> f64,
) -> Vec<(RtpPacket, f64)> {
    let mut free = 0.0f64;
    sent.into_iter()
        .map(|(k, p)| {
            let held = if k % 10 == 0 { hold_ms } else { 0.0 };
            free = free.max(k as f64 * 20.0 + 30.0 + held).max(not_before(k));
            (p, free)
        })
        .collect()
}

#[test]
fn a_talkspurt_that_comes_as_a_backlog_starts_at_once() {
    // Turns over a queue that holds every tenth packet 200 ms, so the
    // target is high. An outage from 2.5 s before the third talkspurt to
    // 700 ms into it loses what was sent in the pause and queues the
    // rest. The talkspurt's first packet then has a relative delay of 0
    // (the window holds nothing older), but the audio behind it already
    // covers the target: waiting for the target on top would only add to
    // the backlog (on the held-out UMTS traces, until it was flushed).
    let pcm = turns(3);
    let third = 2 * 250; // first frame of the third talkspurt
    let resume = third as f64 * 20.0 + 700.0;
    let sent: Vec<_> = transmitted(packets(&pcm, 6, 0, true))
        .into_iter()
        .filter(|(k, _)| !(third - 125..third).contains(k))
        .collect();
    let arrivals = through_holding_queue(sent, 200.0, |k| {
        if (third..third + 35).contains(&k) {
            resume
        } else {
            0.0
        }
    });
    let came: Vec<(u32, f64)> = arrivals
        .iter()
        .map(|(p, a)| (p.timestamp / FRAME as u32, *a))
        .collect();
    let r = run(arrivals, pcm.len() as f64 / 48_000.0);
    let target = r.jb.target_delay_ms(Instant::now());
    assert!(target >= 150.0, "{target}");
    // Played at the first pull after it came.
    let start = delay_of(&r, third as u32);
    assert!(start <= 700.0 + 10.0, "{start}");
    // The comfort-noise refreshes of the first pause (a coded frame every
    // 400 ms, a DTX frame behind it) are played as they come, not held
    // until the next talkspurt brings enough audio behind them.
    for &(k, at) in came.iter().filter(|(k, _)| (120..250).contains(k)) {
        let late = at - f64::from(k) * 20.0;
        let played = delay_of(&r, k);
        assert!(
            played <= late + 30.0,
            "frame {k}: came {late} ms late, played {played}"
        );
    }
}

#[test]
fn a_reply_shorter_than_the_target_is_played_when_it_is_all_here() {
    // Turns over a queue that holds every tenth packet 400 ms, then a
    // 100 ms reply. With Opus's DTX hangover the reply is 300 ms of
    // frames and then a DTX frame, less than the target: the audio behind
    // it never reaches the target, and it used to wait for the pause's
    // comfort-noise refreshes to add up to it.
    let mut pcm = turns(3);
    let reply = pcm.len() / FRAME;
    pcm.extend(tone(0.1));
    pcm.extend(std::iter::repeat_n(0i16, 3 * 48_000));
    let arrivals = through_holding_queue(transmitted(packets(&pcm, 7, 0, true)), 400.0, |_| 0.0);
    // The reply's DTX frame: 5 frames of tone, 10 of hangover.
    let (_, all_here) = arrivals
        .iter()
        .filter(|(p, _)| p.timestamp as usize >= reply * FRAME)
        .nth(15)
        .unwrap();
    let all_here = all_here - reply as f64 * 20.0;
    let r = run(arrivals, pcm.len() as f64 / 48_000.0);
    assert!(r.jb.target_delay_ms(Instant::now()) >= 300.0);
    // Played at the first pull after that.
    let played = delay_of(&r, reply as u32);
    assert!(
        played <= all_here + 10.0,
        "all here {all_here} ms after it was said, played {played}"
    );
}

#[test]
fn a_short_tail_of_slow_packets_is_buffered_for_not_waited_for() {
    // Talkspurts over a steady 30 ms link on which every 60th packet
    // (1.7 %) comes 15 ms late, still in order. Leaving them late would
    // cost 1.7 % x 1 500 ms = 25 ms against 15 ms of delay: the target
    // covers them, where the plain 98 % quantile leaves each to a wait,
    // a change of timing inside speech.
    let slow = || {
        arriving(packets(&talkspurts(20), 9, 0, false), |k| {
            k as f64 * 20.0 + 30.0 + if k % 60 == 30 { 15.0 } else { 0.0 }
        })
    };
    let waits = |r: &Run| r.jb.stats().concealment_events;
    let covered = run(slow(), 29.0);
    let plain = run_with(
        JitterConfig {
            estimator: sotto_jitter::estimator::EstimatorConfig {
                late_cost_ms: 0.0,
                ..Default::default()
            },
            ..JitterConfig::default()
        },
        slow(),
        29.0,
    );
    // 23 slow packets: the plain quantile waits for (nearly) each, the
    // late cost only while the histogram is still learning them.
    assert!(waits(&plain) >= 20, "{:?}", plain.jb.stats());
    assert!(waits(&covered) <= 3, "{:?}", covered.jb.stats());
}

#[test]
fn after_a_freeze_the_playout_is_slowed_no_more_than_the_margin_over_the_peak() {
    // Non-stop tone (no pauses: speech is stretched at the narrow bands)
    // over a steady 30 ms link that freezes for 300 ms at 2 s and for
    // 600 ms at 5 s; each backlog arrives at once when the freeze ends.
    // The second freeze is a repeated peak, so the target jumps to it
    // (plus the margin). The buffer waited through the freeze, so its
    // packets are buffered about as far as the peak; but the smoothed
    // level still remembers the steady link and takes a dozen packets to
    // follow. Stretching on the smoothed level alone would slow the
    // playout by 73 ms there, all of which must then be accelerated away.
    let ps = packets(&tone(9.0), 10, 0, false);
    let arrivals = arriving(ps, |k| {
        let k = match k {
            100..115 => 115,
            250..280 => 280,
            k => k,
        };
        k as f64 * 20.0 + 30.0
    });
    let r = run(arrivals, 9.0);
    let s = r.jb.stats();
    let margin = JitterConfig::default().margin_ms;
    assert!(
        s.inserted_samples_for_deceleration as f64 <= margin * 48.0,
        "{s:?}"
    );
    // It did wait through both freezes and take the backlog back.
    assert!(s.waiting_concealed_samples >= 48 * 800, "{s:?}");
    assert!(s.removed_samples_for_acceleration >= 48 * 800, "{s:?}");
}

#[test]
fn frames_of_10_40_and_60_ms_are_played_like_20_ms_ones() {
    let pcm = tone(6.0);
    for duration in FrameDuration::ALL {
        let ms = f64::from(duration.millis());
        let ps = packets_of(duration, &pcm, 3, 0, false);
        let n = ps.len();
        // 0-40 ms of jitter (out of order with 10 ms frames), one packet
        // in 23 lost.
        let lost = |k: usize| k % 23 == 11;
        let gone = (0..n).filter(|&k| lost(k)).count();
        let arrivals = ps
            .into_iter()
            .enumerate()
            .filter(|&(k, _)| !lost(k))
            .map(|(k, p)| (p, k as f64 * ms + 30.0 + ((k * 7919) % 41) as f64))
            .collect();
        let r = run(arrivals, 6.5);
        let s = r.at_last_packet.as_ref().expect("last packet played");
        // Every packet that came is played but for one or two that came
        // late while the estimator learnt the jitter; a lost one is rebuilt
        // from the next one's FEC or concealed.
        assert!(s.packets_discarded <= 2, "{ms} ms: {s:?}");
        let fec = s.fec_packets_used as usize;
        assert_eq!(
            played(&r),
            n - gone - s.packets_discarded as usize + fec,
            "{ms} ms"
        );
        assert!(
            s.concealment_events as usize >= gone - fec,
            "{ms} ms: {s:?}"
        );
        for w in r.timestamps.windows(2) {
            if let [Some(a), Some(b)] = *w {
                assert!(b.wrapping_sub(a) as i32 >= 0, "{ms} ms: {a} then {b}");
            }
        }
        // The jitter and the margin over it, whatever the frame.
        assert!(s.mean_delay_ms() < 80.0, "{ms} ms: {}", s.mean_delay_ms());
    }
}

/// A stateless codec at 48 kHz, as G.711 is at 8 kHz: a payload is its
/// samples (16-bit little-endian), concealment repeats the last 10 ms at
/// half the level each time (as `MuLawDecoder` does), and the packet
/// after it is decoded straight, without regard to the concealment.
struct Linear {
    last: Vec<i16>,
    joins: bool,
}

impl Decoder for Linear {
    fn sample_rate(&self) -> u32 {
        48_000
    }

    fn channels(&self) -> u16 {
        1
    }

    fn payload_samples(&self, payload: &[u8]) -> Result<usize, CodecError> {
        Ok(payload.len() / 2)
    }

    fn decode_into(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        let start = out.len();
        out.extend(
            payload
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]])),
        );
        self.last = out[out.len() - 480..].to_vec();
        Ok(out.len() - start)
    }

    fn conceal_into(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<usize, CodecError> {
        for i in 0..samples {
            if i % 480 == 0 {
                self.last.iter_mut().for_each(|s| *s /= 2);
            }
            out.push(self.last[i % 480]);
        }
        Ok(samples)
    }

    fn joins_after_concealment(&self) -> bool {
        self.joins
    }

    fn has_fec(&self, _payload: &[u8]) -> bool {
        false
    }

    fn decode_fec_into(&mut self, _: &[u8], _: &mut Vec<i16>) -> Result<Option<usize>, CodecError> {
        Ok(None)
    }
}

#[test]
fn a_codec_that_does_not_join_its_concealment_is_faded_into() {
    // A tone over a steady link that loses packets 50 and 51.
    let pcm = tone(2.0);
    let arrivals: Vec<_> = pcm
        .chunks_exact(FRAME)
        .enumerate()
        .filter(|(k, _)| !(50..52).contains(k))
        .map(|(k, frame)| {
            let p = RtpPacket {
                seq: k as u16,
                timestamp: (k * FRAME) as u32,
                ssrc: 9,
                marker: k == 0,
                payload: frame.iter().flat_map(|s| s.to_le_bytes()).collect(),
            };
            (p, k as f64 * 20.0 + 30.0)
        })
        .collect();
    // The largest step over the join: from the last concealed sample to
    // the end of the 5 ms fade.
    let join_step = |joins: bool| {
        let decoder = Linear {
            last: vec![0; 480],
            joins,
        };
        // 20 ms of 16-bit samples is 1 920 bytes.
        let config = JitterConfig {
            max_payload: 2 * FRAME,
            ..JitterConfig::default()
        };
        let r = run_decoding(config, Box::new(decoder), arrivals.clone(), 2.0);
        let (tick, offset) = r
            .events
            .iter()
            .zip(&r.event_ticks)
            .find_map(|(e, &tick)| match e {
                Event::Played {
                    timestamp, offset, ..
                } if *timestamp == 52 * FRAME as u32 => Some((tick, *offset)),
                _ => None,
            })
            .expect("packet 52 played");
        assert_eq!(r.ops[tick], Operation::Merge);
        let at = tick * 480 + offset;
        max_step(&r.audio[at - 1..at + 250])
    };
    let natural = max_step(&pcm);
    assert!(
        join_step(false) <= natural * 3 / 2,
        "{} vs {natural}",
        join_step(false)
    );
    // Decoded straight after the concealment, the tone jumps.
    assert!(
        join_step(true) > natural * 3,
        "{} vs {natural}",
        join_step(true)
    );
}

#[test]
fn g711_plays_through_the_buffer_at_its_own_rtp_clock() {
    use sotto_codecs::g711::{MuLawDecoder, MuLawEncoder};
    use sotto_codecs::resample::resample_clip;
    use sotto_codecs::resampled::Resampled;
    use sotto_codecs::samples::{f32_to_i16, i16_to_f32};

    // Real speech at 8 kHz, 20 ms packets stamped on G.711's 8 kHz clock,
    // 0-40 ms of jitter, packets 40, 41 and 90 lost.
    let narrow = f32_to_i16(&resample_clip(&i16_to_f32(&speech(3)), 1, 48_000, 8_000).unwrap());
    let mut enc = MuLawEncoder::new(FrameDuration::Ms20).unwrap();
    let lost = [40, 41, 90];
    let mut payload = Vec::new();
    let arrivals: Vec<_> = narrow
        .chunks_exact(160)
        .enumerate()
        .map(|(k, frame)| {
            enc.encode(frame, &mut payload).unwrap();
            let p = RtpPacket {
                seq: k as u16,
                timestamp: 7_000 + (k * 160) as u32,
                ssrc: 8,
                marker: k == 0,
                payload: payload.clone(),
            };
            (p, k as f64 * 20.0 + 30.0 + ((k * 7919) % 41) as f64)
        })
        .filter(|(p, _)| !lost.contains(&p.seq))
        .collect();
    let n = arrivals.len();
    // Not at 48 kHz mono, a decoder is refused, with the reason.
    for wrong in [
        Box::new(MuLawDecoder::new()) as Box<dyn Decoder>,
        Box::new(OpusDecoder::new(16_000, 1).unwrap()),
        Box::new(OpusDecoder::new(48_000, 2).unwrap()),
    ] {
        let e = JitterBuffer::new(JitterConfig::default(), wrong).unwrap_err();
        assert!(e.to_string().contains("48 kHz mono"), "{e}");
    }
    let decoder = Resampled::new(MuLawDecoder::new(), 48_000).unwrap();
    let r = run_decoding(JitterConfig::default(), Box::new(decoder), arrivals, 4.5);
    let s = r.jb.stats();
    // Played packets are reported with their own (8 kHz) timestamps, in
    // order, every one that came but for one or two late while learning.
    let played: Vec<u32> = r
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Played { timestamp, .. } => Some(*timestamp),
            _ => None,
        })
        .collect();
    assert!(played.len() + 2 >= n, "{} of {n}: {s:?}", played.len());
    assert!(played.windows(2).all(|w| w[1] > w[0]));
    assert!(played.iter().all(|ts| (ts - 7_000) % 160 == 0));
    // The losses are concealed and faded out of: G.711 does not join its
    // concealment itself.
    assert!(s.concealment_events >= 2, "{s:?}");
    let merges: Vec<usize> = (0..r.ops.len())
        .filter(|&i| r.ops[i] == Operation::Merge)
        .collect();
    assert!(!merges.is_empty());
    let natural = max_step(&r.audio[..48_000]);
    for &m in &merges {
        let around = &r.audio[(m - 1) * 480..(m + 2) * 480];
        assert!(
            max_step(around) <= natural,
            "{} vs {natural}",
            max_step(around)
        );
    }
    // The delay follows the 40 ms of jitter as with Opus.
    assert!(s.mean_delay_ms() < 120.0, "{}", s.mean_delay_ms());
}
