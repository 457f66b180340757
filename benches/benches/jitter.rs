//! Cost of Sotto's jitter buffer per 10 ms pull (decode, and time
//! stretching when it runs), next to one 20 ms Opus decode.
//!
//! Each group `jitter/<case>` times one unit of work per iteration:
//! `sotto` = one 10 ms `pull` (plus the packet insert it needs), and
//! `opus_decode` = one 20 ms Opus decode of the same packets. xtask's
//! ratio (opus_decode time / sotto time) is therefore how many 10 ms pulls
//! cost as much as one Opus decode; its inverse is the pull's cost in Opus
//! decodes. Cases: `steady` (no stretching), `accelerate`, `catch_up` and
//! `preemptive_expand` (the buffer is forced to stretch every frame).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sotto_codecs::opus::{OpusConfig, OpusDecoder, OpusEncoder};
use sotto_codecs::{Decoder, Encoder, wav};
use sotto_jitter::{JitterBuffer, JitterConfig, JitterStats, RtpPacket};

/// Real speech (48 kHz) as 20 ms Opus packets with FEC.
fn packets() -> Vec<Vec<u8>> {
    let clip = wav::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/speech/alsa_48k/Front_Center.wav"
    ))
    .expect("speech");
    let mut enc = OpusEncoder::new(OpusConfig {
        fec: true,
        packet_loss_pct: 10,
        ..OpusConfig::default()
    })
    .expect("encoder");
    let mut buf = Vec::new();
    clip.samples
        .chunks_exact(960)
        .map(|f| {
            enc.encode(f, &mut buf).expect("encode");
            buf.clone()
        })
        .collect()
}

/// A buffer kept fed with packets so that it never starves.
struct Fed {
    jb: JitterBuffer,
    payloads: Vec<Vec<u8>>,
    t0: Instant,
    tick: u64,
    next: u32,
    /// Packets kept in the buffer before each pull.
    hold: usize,
    out: Vec<i16>,
}

impl Fed {
    fn new(config: JitterConfig, payloads: Vec<Vec<u8>>) -> Self {
        let jb = JitterBuffer::new(
            config,
            Box::new(OpusDecoder::new(48_000, 1).expect("decoder")),
        )
        .expect("jb");
        Self {
            jb,
            payloads,
            t0: Instant::now(),
            tick: 0,
            next: 0,
            hold: 3,
            out: Vec::with_capacity(480),
        }
    }

    fn pull(&mut self) {
        let now = self.t0 + Duration::from_millis(self.tick * 10);
        while self.jb.packets_held() < self.hold {
            let k = self.next;
            let payload = self.payloads[k as usize % self.payloads.len()].clone();
            let p = RtpPacket {
                seq: k as u16,
                timestamp: k.wrapping_mul(960),
                ssrc: 1,
                marker: false,
                payload,
            };
            let _ = self.jb.insert(now, p);
            self.next += 1;
        }
        self.jb.pull(now, &mut self.out);
        while self.jb.poll_event().is_some() {}
        self.tick += 1;
    }
}

/// A zero target with no bands: every decoded frame is above it and
/// accelerated.
fn zero_target() -> JitterConfig {
    JitterConfig {
        initial_target_ms: 0.0,
        min_target_ms: 0.0,
        max_target_ms: 0.0,
        margin_ms: 0.0,
        high_band_ms: 0.0,
        speech_high_band_ms: 0.0,
        ..JitterConfig::default()
    }
}

/// Pulls within which every case starts doing its work.
const WARM_UP_PULLS: u64 = 500;

/// Timed pulls from which a case must have done its work at least once.
const MIN_CHECKED_PULLS: u64 = 100;

/// One bench case: a configuration that forces the work to time.
struct Case {
    name: &'static str,
    config: JitterConfig,
    /// What the case exists to time, as the buffer counts it.
    work: fn(&JitterStats) -> u64,
    /// Packets held for the first pull, before three from then on.
    first_hold: usize,
}

fn removed(s: &JitterStats) -> u64 {
    s.removed_samples_for_acceleration
}

fn bench(c: &mut Criterion) {
    let payloads = packets();
    let cases = [
        Case {
            name: "steady",
            config: JitterConfig::default(),
            work: |s| s.jitter_buffer_emitted_count,
            first_hold: 3,
        },
        Case {
            name: "accelerate",
            config: zero_target(),
            work: removed,
            first_hold: 3,
        },
        Case {
            name: "catch_up",
            config: JitterConfig {
                // Every frame caught up: several periods cut from it, at
                // a join found for each.
                catch_up_excess_ms: 0.0,
                ..zero_target()
            },
            work: removed,
            first_hold: 3,
        },
        Case {
            name: "preemptive_expand",
            config: JitterConfig {
                // A 1 s target that the three packets held never reach
                // once playing: every decoded frame (speech too) is below
                // it.
                initial_target_ms: 1_000.0,
                min_target_ms: 1_000.0,
                low_band_ms: 0.0,
                speech_low_band_ms: 0.0,
                ..JitterConfig::default()
            },
            work: |s| s.inserted_samples_for_deceleration,
            // Playout starts once the audio behind the first packet
            // covers the target: 1.2 s once, then three packets.
            first_hold: 60,
        },
    ];
    for Case {
        name,
        config,
        work,
        first_hold,
    } in cases
    {
        let mut g = c.benchmark_group(format!("jitter/{name}"));
        let mut fed = Fed::new(config, payloads.clone());
        fed.hold = first_hold;
        fed.pull();
        fed.hold = 3;
        // Timing starts once the case does its work: the first frames of
        // the clip are quiet, and a quiet frame is not stretched as speech.
        for _ in 0..WARM_UP_PULLS {
            if work(fed.jb.stats()) > 0 {
                break;
            }
            fed.pull();
        }
        let (work_before, tick_before) = (work(fed.jb.stats()), fed.tick);
        g.bench_function("sotto", |b| b.iter(|| fed.pull()));
        // The timed pulls really stretched (as opposed to timing a buffer
        // that never started). Criterion's `--test` mode times one pull,
        // which may fall on a frame without a join: only a run of pulls
        // is held to it.
        let (s, timed) = (fed.jb.stats(), fed.tick - tick_before);
        assert!(
            work(s) > work_before || timed < MIN_CHECKED_PULLS,
            "jitter/{name} did not do its work in {timed} pulls: {s:?}"
        );
        let mut dec = OpusDecoder::new(48_000, 1).expect("decoder");
        let mut pcm = Vec::with_capacity(960);
        let mut k = 0usize;
        g.bench_function("opus_decode", |b| {
            b.iter(|| {
                pcm.clear();
                let p = &payloads[k % payloads.len()];
                k += 1;
                black_box(dec.decode_into(black_box(p), &mut pcm).expect("decode"))
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
