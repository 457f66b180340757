//! Echo cancellation: Sotto's (`call::echo`, WebRTC AEC3) against the
//! Speex echo canceller (MDF with residual echo suppression), on the same
//! recording of a simulated room (`sim::room`: 12 s of real speech played,
//! its echo 60-70 ms later, the near-end talker from 8 s on).
//!
//! Printed first, once: how much of the echo each removes while only the
//! far end talks (echo return loss enhancement, 2-8 s), and how much of
//! the near end's voice each keeps while both talk (correlation, 8-12 s).
//! Then criterion's group `echo/frame`: one 10 ms frame (its far end in,
//! its capture out) for each; xtask's ratio is Speex's time over Sotto's.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use sotto_engine::call::echo::{EchoCancelled, EchoCanceller};
use sotto_engine::call::wav::{AudioPort, FRAME, load_48k_mono};
use sotto_engine::sim::room::{EchoRoom, correlation, erle_db};
use sotto_peers::speex_echo::SpeexEcho;

const SECONDS: usize = 12;
const DOUBLE_TALK_FROM: usize = 48_000 * 8;
/// Speex's filter: 200 ms, over the room's longest path (70 ms).
const SPEEX_FILTER: usize = 9_600;

fn speech(file: &str) -> Vec<i16> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/speech");
    let one = load_48k_mono(dir.join(file)).expect("speech");
    one.iter().copied().cycle().take(48_000 * SECONDS).collect()
}

/// What the room's microphone heard, frame by frame, while `far` played;
/// and the room (its echo alone, its near-end voice).
fn record(far: &[i16]) -> (Vec<i16>, EchoRoom) {
    let mut room = EchoRoom::new(speech("alsa_48k/Front_Center.wav"), DOUBLE_TALK_FROM);
    let mut captured = vec![0i16; far.len()];
    for (f, c) in far
        .chunks_exact(FRAME)
        .zip(captured.chunks_exact_mut(FRAME))
    {
        room.play(f);
        room.capture(c);
    }
    (captured, room)
}

/// A port that captures a recording, frame after frame (looping).
struct Replay {
    frames: Vec<i16>,
    at: usize,
}

impl AudioPort for Replay {
    fn capture(&mut self, frame: &mut [i16]) -> bool {
        frame.copy_from_slice(&self.frames[self.at..self.at + FRAME]);
        self.at = (self.at + FRAME) % self.frames.len();
        true
    }
    fn play(&mut self, _: &[i16]) {}
}

fn sotto_port(captured: &[i16]) -> EchoCancelled<Replay> {
    let replay = Replay {
        frames: captured.to_vec(),
        at: 0,
    };
    EchoCancelled::new(replay, EchoCanceller::start().expect("echo canceller"))
}

/// Runs both cancellers over the recording; returns what each sent.
fn cancel_both(far: &[i16], captured: &[i16]) -> (Vec<f32>, Vec<f32>) {
    let mut sotto = sotto_port(captured);
    let mut speex = SpeexEcho::new(FRAME, SPEEX_FILTER, 48_000).expect("speex echo");
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let (mut fa, mut fb) = ([0i16; FRAME], [0i16; FRAME]);
    for (f, c) in far.chunks_exact(FRAME).zip(captured.chunks_exact(FRAME)) {
        sotto.play(f);
        sotto.capture(&mut fa);
        speex.run(c, f, &mut fb);
        a.extend(fa.iter().map(|s| f32::from(*s)));
        b.extend(fb.iter().map(|s| f32::from(*s)));
    }
    (a, b)
}

fn report(far: &[i16], captured: &[i16], room: &EchoRoom) {
    let (sotto, speex) = cancel_both(far, captured);
    let single = 48_000 * 2..DOUBLE_TALK_FROM;
    let both = DOUBLE_TALK_FROM..far.len();
    let near: Vec<f32> = both.clone().map(|t| f32::from(room.near_at(t))).collect();
    let echo = &room.echo()[single.clone()];
    // Each at its best lag within two frames (Sotto's comes one late).
    let kept = |sent: &[f32]| {
        (0..=2 * FRAME)
            .map(|lag| (correlation(&sent[both.start + lag..], &near), lag))
            .fold((f64::MIN, 0), |a, b| if b.0 > a.0 { b } else { a })
    };
    let (kept_sotto, kept_speex) = (kept(&sotto), kept(&speex));
    println!(
        "echo removed, far end alone: sotto {:.1} dB, speex {:.1} dB; near end kept in double talk: sotto {:.3} ({} samples late), speex {:.3} ({} late)",
        erle_db(echo, &sotto[single.clone()]),
        erle_db(echo, &speex[single]),
        kept_sotto.0,
        kept_sotto.1,
        kept_speex.0,
        kept_speex.1,
    );
}

fn bench(c: &mut Criterion) {
    let far = speech("pesq_repo/speech.wav");
    let (captured, room) = record(&far);
    report(&far, &captured, &room);

    let mut g = c.benchmark_group("echo/frame");
    let mut port = sotto_port(&captured);
    let mut frame = [0i16; FRAME];
    let mut at = 0;
    g.bench_function("sotto", |b| {
        b.iter(|| {
            port.play(&far[at..at + FRAME]);
            port.capture(&mut frame);
            at = (at + FRAME) % far.len();
            black_box(&frame);
        })
    });
    let mut speex = SpeexEcho::new(FRAME, SPEEX_FILTER, 48_000).expect("speex echo");
    let mut at = 0;
    g.bench_function("speexdsp", |b| {
        b.iter(|| {
            speex.run(&captured[at..at + FRAME], &far[at..at + FRAME], &mut frame);
            at = (at + FRAME) % far.len();
            black_box(&frame);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
