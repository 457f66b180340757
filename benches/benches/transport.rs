//! Per-packet CPU of the media transport for one 20 ms Opus packet (100 B
//! payload, AES_CM_128_HMAC_SHA1_80 as ZRTP's AES1/HS80 keys it):
//! `cargo xtask bench transport`.
//!
//! * `transport/send_opus_100B`: RTP header build (`RtpSender`, sequence,
//!   timestamp, marker) + SRTP protect, into a reused buffer.
//! * `transport/recv_opus_100B`: datagram copied into the receive buffer,
//!   RFC 7983 demux, SRTP unprotect (replay window), RTP parse, receiver
//!   statistics (extended sequence, loss, RFC 3550 jitter) and hand-off of
//!   the payload into a jitter-buffer slot.
//!
//! `sotto` runs the engine's `MediaStream` (the API the call uses). There
//! is no reference transport on this machine, so the second function is the
//! same steps composed by hand with libsrtp2 doing the SRTP (`libsrtp2`):
//! every other step is shared code, so the ratio isolates the cryptography.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sotto_engine::demux::{PacketKind, classify};
use sotto_engine::rtp::{
    MediaStream, OPUS_20MS_TICKS, OPUS_PAYLOAD_TYPE, Received, ReceiverStats, RtpSender, parse,
};
use sotto_engine::srtp::{Profile, SrtpContext};
use sotto_peers::libsrtp2::{self, Direction, Session};

const PAYLOAD: usize = 100;
const SSRC: u32 = 0x5eed_1234;
/// Pre-protected packets for the receive case (one sequence cycle).
const BATCH: usize = 1 << 16;

fn key() -> (Vec<u8>, Vec<u8>) {
    ((0..16).collect(), (100..114).collect())
}

fn sotto_ctx() -> SrtpContext {
    let (k, s) = key();
    SrtpContext::new(Profile::AesCm128HmacSha1_80, &k, &s).unwrap()
}

fn libsrtp(direction: Direction) -> Session {
    let (mut k, s) = key();
    k.extend_from_slice(&s);
    Session::new(libsrtp2::Profile::AesCm128HmacSha1_80, direction, &k, 64).unwrap()
}

/// The engine's stream: sends with the same keys it receives with, so its
/// own output (and the protect batch below) is valid input.
fn media_stream() -> MediaStream {
    MediaStream::new(
        Instant::now(),
        sender(),
        sotto_ctx(),
        sotto_ctx(),
        (Instant::now(), 0),
    )
}

fn sender() -> RtpSender {
    RtpSender::new(SSRC, OPUS_PAYLOAD_TYPE, 0, 0).unwrap()
}

/// The receive path after the SRTP step: demux was done, `buf[..len]` is
/// plain RTP. Returns the payload length handed off.
fn after_srtp(buf: &[u8], len: usize, stats: &mut ReceiverStats, slot: &mut [u8]) -> usize {
    let p = parse(&buf[..len]).unwrap();
    stats.on_packet(Instant::now(), &p.header);
    slot[..p.payload.len()].copy_from_slice(p.payload);
    p.payload.len()
}

fn bench(c: &mut Criterion) {
    let opus = [0x5a_u8; PAYLOAD];
    let mut buf = vec![0u8; 12 + PAYLOAD + libsrtp2::max_trailer()];

    let mut group = c.benchmark_group(format!("transport/send_opus_{PAYLOAD}B"));
    let mut stream = media_stream();
    let now = Instant::now();
    group.bench_function("sotto", |b| {
        b.iter(|| {
            black_box(
                stream
                    .send_audio(now, black_box(&opus), OPUS_20MS_TICKS, &mut buf)
                    .unwrap(),
            )
        })
    });
    let (mut rtp, mut session) = (sender(), libsrtp(Direction::Outbound));
    group.bench_function("libsrtp2", |b| {
        b.iter(|| {
            let n = rtp
                .packetize(black_box(&opus), OPUS_20MS_TICKS, &mut buf)
                .unwrap();
            black_box(session.protect_in_place(&mut buf, n).unwrap())
        })
    });
    group.finish();

    // Receive inputs: one full sequence cycle of protected packets per implementation.
    let protect_all = |protect: &mut dyn FnMut(&mut Vec<u8>)| -> Vec<Vec<u8>> {
        let mut rtp = sender();
        (0..BATCH)
            .map(|_| {
                let mut p = vec![0u8; 12 + PAYLOAD];
                let n = rtp.packetize(&opus, OPUS_20MS_TICKS, &mut p).unwrap();
                p.truncate(n);
                protect(&mut p);
                p
            })
            .collect()
    };
    let mut tx = sotto_ctx();
    let ours = protect_all(&mut |p| tx.protect_rtp(p).unwrap());
    let mut tx = libsrtp(Direction::Outbound);
    let theirs = protect_all(&mut |p| tx.protect(p).unwrap());
    let mut slot = [0u8; 1500];

    let mut group = c.benchmark_group(format!("transport/recv_opus_{PAYLOAD}B"));
    let (mut stream, mut i) = (media_stream(), 0);
    group.bench_function("sotto", |b| {
        b.iter(|| {
            if i == BATCH {
                (i, stream) = (0, media_stream());
            }
            let p = &ours[i];
            i += 1;
            buf[..p.len()].copy_from_slice(p);
            match stream.receive(Instant::now(), &mut buf, p.len()).unwrap() {
                Received::Audio(a) => {
                    slot[..a.payload.len()].copy_from_slice(a.payload);
                    black_box(a.payload.len())
                }
                Received::Video(_) | Received::Control(_) => unreachable!(),
            }
        })
    });
    let (mut rx, mut stats, mut i) = (libsrtp(Direction::Inbound), ReceiverStats::new(48_000), 0);
    group.bench_function("libsrtp2", |b| {
        b.iter(|| {
            if i == BATCH {
                (i, rx, stats) = (0, libsrtp(Direction::Inbound), ReceiverStats::new(48_000));
            }
            let p = &theirs[i];
            i += 1;
            buf[..p.len()].copy_from_slice(p);
            assert_eq!(classify(&buf[..p.len()]), PacketKind::Rtp);
            let n = rx.unprotect_in_place(&mut buf, p.len()).unwrap();
            black_box(after_srtp(&buf, n, &mut stats, &mut slot))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = bench
}
criterion_main!(benches);
