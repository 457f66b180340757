//! One complete ZRTP handshake, both sides in one process, Sotto against
//! bzrtp: `cargo xtask bench zrtp`.
//!
//! Cases: X255 (S256, AES1, HS32, B32) and DH3k (S384, AES3, HS80, B256).
//! One iteration = create two endpoints, run Hello … Conf2ACK through
//! memory until both report Secure (key generation, DH, KDF, Confirm
//! encryption and every MAC included). The bzrtp pair is pumped through
//! the `sotto-peers` shim the same way. Two bzrtp endpoints both commit
//! after the Hello/HelloACK exchange and resolve the contention (§4.2); the
//! Sotto pair is configured the same way (both initiators committing after
//! HelloACK) so both sides do the same protocol work. Groups are
//! `zrtp/<case>`, the functions `sotto` and `bzrtp`, as
//! `xtask/src/bench_report.rs` expects.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sotto_engine::zrtp::{
    AuthTagAlgo, CipherAlgo, Config, Endpoint, Event, HashAlgo, KeyAgreement, Policy, Role,
    SasAlgo, ZidCache,
};
use sotto_peers::bzrtp::{Bzrtp, BzrtpConfig};

struct Case {
    name: &'static str,
    policy: Policy,
    bzrtp: BzrtpConfig,
}

fn cases() -> Vec<Case> {
    let p = |ka, hash, cipher, auth, sas| Policy {
        hashes: vec![hash],
        ciphers: vec![cipher],
        auth_tags: vec![auth],
        key_agreements: vec![ka],
        sas: vec![sas],
    };
    vec![
        Case {
            name: "X255",
            policy: p(
                KeyAgreement::X255,
                HashAlgo::S256,
                CipherAlgo::Aes1,
                AuthTagAlgo::Hs32,
                SasAlgo::B32,
            ),
            bzrtp: BzrtpConfig::from_lists("S256", "AES1", "HS32", "X255", "B32"),
        },
        Case {
            name: "DH3k",
            policy: p(
                KeyAgreement::Dh3k,
                HashAlgo::S384,
                CipherAlgo::Aes3,
                AuthTagAlgo::Hs80,
                SasAlgo::B256,
            ),
            bzrtp: BzrtpConfig::from_lists("S384", "AES3", "HS80", "DH3k", "B256"),
        },
    ]
}

fn secure(ep: &mut Endpoint) -> bool {
    let mut done = ep.is_secure();
    while let Some(e) = ep.poll_event() {
        if let Event::Secure(_) = e {
            done = true;
        }
    }
    done
}

/// One Sotto handshake; returns a count so nothing is optimised away.
fn sotto_handshake(policy: &Policy) -> u32 {
    let now = Instant::now();
    let cfg = || Config {
        policy: policy.clone(),
        commit_after_hello_ack: true,
        ..Config::new(Role::Initiator)
    };
    let mut a = Endpoint::new(cfg(), ZidCache::new());
    let mut b = Endpoint::new(cfg(), ZidCache::new());
    a.start(now);
    b.start(now);
    let (mut sa, mut sb) = (false, false);
    for _ in 0..64 {
        while let Some(p) = a.poll_transmit() {
            let _ = b.handle_input(now, &p);
        }
        while let Some(p) = b.poll_transmit() {
            let _ = a.handle_input(now, &p);
        }
        sa |= secure(&mut a);
        sb |= secure(&mut b);
        if sa && sb {
            return a.stats().sent as u32;
        }
    }
    panic!("Sotto handshake did not complete");
}

/// One bzrtp handshake through the shim, in memory.
fn bzrtp_handshake(cfg: &BzrtpConfig) -> usize {
    let mut a = Bzrtp::new(0x1111_1111, cfg).expect("bzrtp");
    let mut b = Bzrtp::new(0x2222_2222, cfg).expect("bzrtp");
    a.start();
    b.start();
    let mut t = 0u64;
    let mut moved_total = 0;
    while !(a.is_secure() && b.is_secure()) {
        let mut moved = false;
        while let Some(p) = a.pop_packet() {
            b.process(&p);
            moved = true;
            moved_total += 1;
        }
        while let Some(p) = b.pop_packet() {
            a.process(&p);
            moved = true;
            moved_total += 1;
        }
        if !moved {
            t += 10;
            a.iterate(t);
            b.iterate(t);
            assert!(t < 60_000, "bzrtp handshake did not complete");
        }
    }
    moved_total
}

fn bench(c: &mut Criterion) {
    for case in cases() {
        let mut g = c.benchmark_group(format!("zrtp/{}", case.name));
        g.sample_size(20)
            .measurement_time(Duration::from_secs(4))
            .warm_up_time(Duration::from_secs(1));
        g.bench_function("sotto", |bch| {
            bch.iter(|| black_box(sotto_handshake(black_box(&case.policy))))
        });
        g.bench_function("bzrtp", |bch| {
            bch.iter(|| black_box(bzrtp_handshake(black_box(&case.bzrtp))))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
