//! SRTP protect/unprotect, Sotto against libsrtp2, one packet per
//! iteration: `cargo xtask bench srtp`.
//!
//! Cases: {protect, unprotect} x {160 B, 1200 B payload} x
//! {AES_CM_128_HMAC_SHA1_80, AEAD_AES_128_GCM}. Both sides do the same
//! work on the same packets: a fresh sequence number per iteration (new
//! index, so no replay rejection), the same 12-byte header, in-place
//! buffers with no allocation on either side. Unprotect inputs are
//! protected once, in advance, by the implementation under test.
//! The group is `srtp/<case>`, the functions `sotto` and `libsrtp2`, as
//! `xtask/src/bench_report.rs` expects.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use sotto_engine::srtp::{Profile, SrtpContext};
use sotto_peers::libsrtp2::{self, Direction, Session};

/// Pre-protected packets per unprotect run: well beyond what criterion
/// iterates in one sample, reused in order with a fresh receiver when the
/// batch is exhausted (outside the timed region is not possible with
/// `iter`, so the batch is large enough that a refill is rare).
const BATCH: usize = 1 << 16;

fn peer(profile: Profile) -> libsrtp2::Profile {
    match profile {
        Profile::AeadAes128Gcm => libsrtp2::Profile::AeadAes128Gcm,
        _ => libsrtp2::Profile::AesCm128HmacSha1_80,
    }
}

fn key(profile: Profile) -> (Vec<u8>, Vec<u8>) {
    (
        (0..16).collect(),
        (100..100 + profile.salt_len() as u8).collect(),
    )
}

fn rtp(seq: u16, payload: usize) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&u32::from(seq).wrapping_mul(160).to_be_bytes());
    p.extend_from_slice(&0x5eed_1234u32.to_be_bytes());
    p.extend((0..payload).map(|i| i as u8));
    p
}

fn sotto(profile: Profile) -> SrtpContext {
    let (k, s) = key(profile);
    SrtpContext::new(profile, &k, &s).unwrap()
}

fn libsrtp(profile: Profile, direction: Direction) -> Session {
    let (mut k, s) = key(profile);
    k.extend_from_slice(&s);
    Session::new(peer(profile), direction, &k, 64).unwrap()
}

/// `BATCH` consecutive packets protected by `protect`, each in a buffer
/// with spare room.
fn batch(payload: usize, mut protect: impl FnMut(&mut Vec<u8>)) -> Vec<(Vec<u8>, usize)> {
    (0..BATCH)
        .map(|i| {
            let mut p = rtp(i as u16, payload);
            protect(&mut p);
            let len = p.len();
            p.resize(len + 64, 0);
            (p, len)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    for profile in [Profile::AesCm128HmacSha1_80, Profile::AeadAes128Gcm] {
        let name = match profile {
            Profile::AeadAes128Gcm => "aead_aes_128_gcm",
            _ => "aes_cm_128_hmac_sha1_80",
        };
        for payload in [160usize, 1200] {
            // Protect: the same plaintext each time, a new sequence number
            // written into the header (two bytes) per iteration.
            let mut group = c.benchmark_group(format!("srtp/protect_{payload}B_{name}"));
            let template = rtp(0, payload);
            let mut buf = vec![0u8; template.len() + libsrtp2::max_trailer()];
            let mut ctx = sotto(profile);
            let mut seq = 0u16;
            group.bench_function("sotto", |b| {
                b.iter(|| {
                    seq = seq.wrapping_add(1);
                    buf[..template.len()].copy_from_slice(&template);
                    buf[2..4].copy_from_slice(&seq.to_be_bytes());
                    black_box(ctx.protect_rtp_in_place(&mut buf, template.len()).unwrap())
                })
            });
            let mut session = libsrtp(profile, Direction::Outbound);
            let mut seq = 0u16;
            group.bench_function("libsrtp2", |b| {
                b.iter(|| {
                    seq = seq.wrapping_add(1);
                    buf[..template.len()].copy_from_slice(&template);
                    buf[2..4].copy_from_slice(&seq.to_be_bytes());
                    black_box(session.protect_in_place(&mut buf, template.len()).unwrap())
                })
            });
            group.finish();

            // Unprotect: consecutive pre-protected packets, copied into a
            // work buffer (the same copy protect does) and unprotected.
            let mut group = c.benchmark_group(format!("srtp/unprotect_{payload}B_{name}"));
            let mut tx = sotto(profile);
            let ours = batch(payload, |p| tx.protect_rtp(p).unwrap());
            let mut tx = libsrtp(profile, Direction::Outbound);
            let theirs = batch(payload, |p| tx.protect(p).unwrap());
            let mut work = vec![0u8; ours[0].0.len()];
            let mut rx = sotto(profile);
            let mut i = 0;
            group.bench_function("sotto", |b| {
                b.iter(|| {
                    if i == BATCH {
                        i = 0;
                        rx = sotto(profile);
                    }
                    let (p, len) = &ours[i];
                    i += 1;
                    work[..*len].copy_from_slice(&p[..*len]);
                    black_box(rx.unprotect_rtp_in_place(&mut work, *len).unwrap())
                })
            });
            let mut rx = libsrtp(profile, Direction::Inbound);
            let mut i = 0;
            group.bench_function("libsrtp2", |b| {
                b.iter(|| {
                    if i == BATCH {
                        i = 0;
                        rx = libsrtp(profile, Direction::Inbound);
                    }
                    let (p, len) = &theirs[i];
                    i += 1;
                    work[..*len].copy_from_slice(&p[..*len]);
                    black_box(rx.unprotect_in_place(&mut work, *len).unwrap())
                })
            });
            group.finish();
        }
    }
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
