//! Byte-for-byte interop of `sotto_engine::srtp` with libsrtp2 (Debian
//! libsrtp2-dev, through the `sotto-peers` shim), both directions, all six
//! profiles, SRTP and SRTCP, across the 65535 -> 0 sequence wrap with
//! packets reordered around it.

use sotto_engine::srtp::{Config, Error, Profile, SrtpContext};
use sotto_peers::libsrtp2::{self, Direction, Session};

fn peer_profile(p: Profile) -> libsrtp2::Profile {
    libsrtp2::Profile::from_name(p.name()).expect("libsrtp2 has every profile")
}

/// Master key and salt for `profile`, distinct per profile.
fn master(profile: Profile, seed: u8) -> (Vec<u8>, Vec<u8>) {
    let key = (0..profile.key_len())
        .map(|i| seed ^ (i as u8 * 7))
        .collect();
    let salt = (0..profile.salt_len())
        .map(|i| seed.wrapping_add(i as u8 * 13))
        .collect();
    (key, salt)
}

fn ours(profile: Profile, seed: u8, window: usize) -> SrtpContext {
    let (key, salt) = master(profile, seed);
    let config = Config {
        replay_window: window,
        ..Config::default()
    };
    SrtpContext::with_config(profile, &key, &salt, config).unwrap()
}

fn theirs(profile: Profile, seed: u8, direction: Direction, window: u32) -> Session {
    let (mut key, salt) = master(profile, seed);
    key.extend_from_slice(&salt);
    Session::new(peer_profile(profile), direction, &key, window).unwrap()
}

/// An RTP packet: optional CSRCs and header extension, payload of `len`.
fn rtp(ssrc: u32, seq: u16, len: usize, csrcs: u8, ext: bool) -> Vec<u8> {
    let mut p = vec![0x80 | csrcs | if ext { 0x10 } else { 0 }, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    for c in 0..csrcs {
        p.extend_from_slice(&(0x1000 + u32::from(c)).to_be_bytes());
    }
    if ext {
        p.extend_from_slice(&[0xbe, 0xde, 0x00, 0x01, 0x10, 0xaa, 0x00, 0x00]);
    }
    p.extend((0..len).map(|i| (i as u16 ^ seq) as u8));
    p
}

/// An RTCP receiver report with one report block, then an SDES.
fn rtcp(ssrc: u32, n: u32) -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&0xdead_beefu32.to_be_bytes());
    p.extend_from_slice(&n.to_be_bytes());
    p.extend_from_slice(&[0u8; 16]);
    p.extend_from_slice(&[0x81, 202, 0, 3]);
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[1, 3, b'a', b'b', b'c', 0, 0, 0]);
    p
}

/// Sequence numbers 65520..=65535, 0..=20; each packet's shape varies.
fn stream(ssrc: u32) -> Vec<Vec<u8>> {
    (0..37u16)
        .map(|i| {
            let seq = 65_520u16.wrapping_add(i);
            let len = [160, 0, 1, 17, 1200, 33][usize::from(i) % 6];
            rtp(ssrc, seq, len, (i % 3) as u8, i % 4 == 1)
        })
        .collect()
}

/// Receive order: late and early packets around the wrap.
fn reordered<T: Clone>(packets: &[T]) -> Vec<T> {
    // 65520..65533 in order, then 65535, 0, 65534, 2, 1, 3.., and the
    // packet with seq 65533 re-ordered after 5.
    let mut order: Vec<usize> = (0..13).collect();
    order.extend([15, 16, 14, 18, 17, 19, 20, 21, 13]);
    order.extend(22..packets.len());
    assert_eq!(order.len(), packets.len());
    order.iter().map(|&i| packets[i].clone()).collect()
}

#[test]
fn srtp_byte_for_byte_both_directions_across_the_wrap() {
    for profile in Profile::ALL {
        let plain = stream(0x1234_5678);
        let mut our_tx = ours(profile, 1, 64);
        let mut their_tx = theirs(profile, 1, Direction::Outbound, 64);
        let mut ours_out = Vec::new();
        for p in &plain {
            let mut a = p.clone();
            our_tx.protect_rtp(&mut a).unwrap();
            let mut b = p.clone();
            their_tx.protect(&mut b).unwrap();
            assert_eq!(
                hex::encode(&a),
                hex::encode(&b),
                "{profile} protect differs"
            );
            ours_out.push(a);
        }

        // Sotto -> libsrtp2 and libsrtp2 -> Sotto, reordered around the wrap.
        let mut their_rx = theirs(profile, 1, Direction::Inbound, 64);
        let mut our_rx = ours(profile, 1, 64);
        for (protected, expected) in reordered(&ours_out).into_iter().zip(reordered(&plain)) {
            let mut a = protected.clone();
            their_rx.unprotect(&mut a).unwrap();
            assert_eq!(a, expected, "{profile}: libsrtp2 unprotect of ours");
            let mut b = protected.clone();
            our_rx.unprotect_rtp(&mut b).unwrap();
            assert_eq!(b, expected, "{profile}: our unprotect of libsrtp2's");
            // And each rejects the replay.
            let mut again = protected.clone();
            assert_eq!(
                their_rx.unprotect(&mut again),
                Err(libsrtp2::Error::REPLAY_FAIL)
            );
            let mut again = protected.clone();
            assert_eq!(our_rx.unprotect_rtp(&mut again), Err(Error::Replayed));
        }
        let stats = our_rx.stats();
        assert_eq!(stats.rtp_unprotected, plain.len() as u64);
        assert_eq!(stats.replays, plain.len() as u64);
    }
}

#[test]
fn srtcp_byte_for_byte_both_directions() {
    for profile in Profile::ALL {
        let mut our_tx = ours(profile, 2, 64);
        let mut their_tx = theirs(profile, 2, Direction::Outbound, 64);
        let mut protected = Vec::new();
        for n in 0..20 {
            for ssrc in [0xaaaa_0001u32, 0xaaaa_0002] {
                let p = rtcp(ssrc, n);
                let mut a = p.clone();
                our_tx.protect_rtcp(&mut a).unwrap();
                let mut b = p.clone();
                their_tx.protect_rtcp(&mut b).unwrap();
                assert_eq!(hex::encode(&a), hex::encode(&b), "{profile} SRTCP differs");
                protected.push((p, a));
            }
        }
        let mut their_rx = theirs(profile, 2, Direction::Inbound, 64);
        let mut our_rx = ours(profile, 2, 64);
        for (plain, srtcp) in reordered(&protected[..37]) {
            let mut a = srtcp.clone();
            their_rx.unprotect_rtcp(&mut a).unwrap();
            assert_eq!(a, plain, "{profile}: libsrtp2 SRTCP unprotect");
            let mut b = srtcp.clone();
            our_rx.unprotect_rtcp(&mut b).unwrap();
            assert_eq!(b, plain, "{profile}: our SRTCP unprotect");
            let mut again = srtcp.clone();
            assert_eq!(our_rx.unprotect_rtcp(&mut again), Err(Error::Replayed));
        }
    }
}

/// A 1024-packet window accepts what a 64-packet one calls too old, in
/// both implementations alike.
#[test]
fn large_replay_window_matches_libsrtp2() {
    for profile in [Profile::AesCm128HmacSha1_80, Profile::AeadAes128Gcm] {
        let mut tx = ours(profile, 3, 1024);
        let packets: Vec<Vec<u8>> = (0..1200u16)
            .map(|seq| {
                let mut p = rtp(7, seq.wrapping_add(64_000), 20, 0, false);
                tx.protect_rtp(&mut p).unwrap();
                p
            })
            .collect();
        let mut our_rx = ours(profile, 3, 1024);
        let mut their_rx = theirs(profile, 3, Direction::Inbound, 1024);
        let mut small = ours(profile, 3, 64);
        for i in [0, 1199, 1199 - 1000, 1199 - 1023, 1199 - 1024, 1199 - 1100] {
            let mut a = packets[i].clone();
            let mut b = packets[i].clone();
            let mut c = packets[i].clone();
            let ours = our_rx.unprotect_rtp(&mut a);
            let theirs = their_rx.unprotect(&mut b);
            let small = small.unprotect_rtp(&mut c);
            let age = 1199 - i;
            if i == 0 || age < 1024 {
                assert_eq!(ours, Ok(()), "age {age}");
                assert_eq!(theirs, Ok(()), "age {age}");
            } else {
                assert_eq!(ours, Err(Error::TooOld), "age {age}");
                assert_eq!(theirs, Err(libsrtp2::Error::REPLAY_OLD), "age {age}");
            }
            if i != 0 && i != 1199 {
                assert_eq!(small, Err(Error::TooOld), "age {age} in a 64 window");
            }
        }
    }
}

/// Outcome of an unprotect, comparable across the two implementations.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Accepted,
    TooOld,
    Replayed,
    Other,
}

fn ours_verdict(r: Result<(), Error>) -> Verdict {
    match r {
        Ok(()) => Verdict::Accepted,
        Err(Error::TooOld) => Verdict::TooOld,
        Err(Error::Replayed) => Verdict::Replayed,
        Err(_) => Verdict::Other,
    }
}

fn their_verdict(r: Result<(), libsrtp2::Error>) -> Verdict {
    match r {
        Ok(()) => Verdict::Accepted,
        Err(libsrtp2::Error::REPLAY_OLD) => Verdict::TooOld,
        Err(libsrtp2::Error::REPLAY_FAIL) => Verdict::Replayed,
        Err(_) => Verdict::Other,
    }
}

/// SRTCP replay protection accepts and refuses the same indices as
/// libsrtp2's (whose SRTCP window is 128 packets, whatever the SRTP one),
/// for every configured SRTP window.
#[test]
fn srtcp_replay_window_matches_libsrtp2() {
    for window in [64usize, 1024] {
        let profile = Profile::AesCm128HmacSha1_80;
        let mut tx = ours(profile, 4, window);
        let packets: Vec<Vec<u8>> = (0..300)
            .map(|n| {
                let mut p = rtcp(0x5555_0001, n);
                tx.protect_rtcp(&mut p).unwrap();
                p
            })
            .collect();
        let mut our_rx = ours(profile, 4, window);
        let mut their_rx = theirs(profile, 4, Direction::Inbound, window as u32);
        for age in [0usize, 1, 63, 64, 100, 127, 128, 129, 200, 0, 64] {
            let p = &packets[299 - age];
            let a = ours_verdict(our_rx.unprotect_rtcp(&mut p.clone()));
            let b = their_verdict(their_rx.unprotect_rtcp(&mut p.clone()));
            assert_eq!(
                a, b,
                "window {window}, SRTCP packet {age} behind the newest"
            );
        }
    }
}

/// libsrtp2 keeps the SRTP window as a bit vector of whole 32-bit words:
/// a configured size is rounded up to a multiple of 32. Sotto must accept
/// and refuse the same packets for every size both accept.
#[test]
fn srtp_replay_window_sizes_match_libsrtp2() {
    for window in [64usize, 65, 100, 128, 1000] {
        let profile = Profile::AeadAes128Gcm;
        let mut tx = ours(profile, 5, 64);
        let packets: Vec<Vec<u8>> = (0..1100u16)
            .map(|seq| {
                let mut p = rtp(9, seq, 20, 0, false);
                tx.protect_rtp(&mut p).unwrap();
                p
            })
            .collect();
        let mut our_rx = ours(profile, 5, window);
        let mut their_rx = theirs(profile, 5, Direction::Inbound, window as u32);
        let newest = packets.len() - 1;
        let mut ages = vec![0, 1, 63, 64, window - 1, window, window + 1];
        ages.extend([95, 96, 127, 128, 999, 1000, 1023, 1024]);
        for age in ages {
            let p = &packets[newest - age];
            let a = ours_verdict(our_rx.unprotect_rtp(&mut p.clone()));
            let b = their_verdict(their_rx.unprotect(&mut p.clone()));
            assert_eq!(a, b, "window {window}, SRTP packet {age} behind the newest");
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Differential: packets of one stream arrive in a random order (runs,
    /// reordering, duplicates, jumps ahead and far behind, across the
    /// 65535 -> 0 wrap); Sotto and libsrtp2 accept and refuse the same ones.
    #[test]
    fn srtp_verdicts_match_libsrtp2_on_random_arrivals(
        start in 0u64..65_536,
        steps in proptest::collection::vec((0u8..8, 0u64..40_000), 1..120),
        window in proptest::sample::select(vec![64usize, 128, 1024]),
    ) {
        let profile = Profile::AesCm128HmacSha1_80;
        // Arrival order of packet indices.
        let mut arrivals = vec![start];
        let mut top = start;
        for (kind, n) in steps {
            let last = *arrivals.last().unwrap();
            let next = match kind {
                0..=3 => top + 1,
                4 => last, // duplicate
                5 => top.saturating_sub(n % 300),
                6 => top + n, // jump ahead (beyond 2^15 sometimes)
                _ => top.saturating_sub(n), // far behind
            };
            top = top.max(next);
            arrivals.push(next);
        }
        // The sender protects each index once, in increasing order, with
        // fillers so that it never steps more than 2^15 at once.
        let mut wanted: Vec<u64> = arrivals.clone();
        wanted.sort_unstable();
        wanted.dedup();
        let mut tx = ours(profile, 6, 64);
        let mut protected = std::collections::HashMap::new();
        let mut prev: Option<u64> = None;
        for &i in &wanted {
            if let Some(mut p) = prev {
                while i - p > 30_000 {
                    p += 30_000;
                    let mut filler = rtp(0x77, p as u16, 4, 0, false);
                    tx.protect_rtp(&mut filler).unwrap();
                }
            }
            let mut pkt = rtp(0x77, i as u16, 8, 0, false);
            tx.protect_rtp(&mut pkt).unwrap();
            protected.insert(i, pkt);
            prev = Some(i);
        }
        let mut our_rx = ours(profile, 6, window);
        let mut their_rx = theirs(profile, 6, Direction::Inbound, window as u32);
        for (n, i) in arrivals.iter().enumerate() {
            let p = &protected[i];
            let a = ours_verdict(our_rx.unprotect_rtp(&mut p.clone()));
            let b = their_verdict(their_rx.unprotect(&mut p.clone()));
            proptest::prop_assert_eq!(a, b, "arrival {} (index {}) of {:?}", n, i, arrivals);
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Differential, SRTCP: reordered, duplicated and late packets get the
    /// same verdict from Sotto and libsrtp2, whatever the SRTP window.
    #[test]
    fn srtcp_verdicts_match_libsrtp2_on_random_arrivals(
        order in proptest::collection::vec(0usize..400, 1..150),
        window in proptest::sample::select(vec![64usize, 1024]),
    ) {
        let profile = Profile::AeadAes128Gcm;
        let mut tx = ours(profile, 7, 64);
        let packets: Vec<Vec<u8>> = (0..400)
            .map(|n| {
                let mut p = rtcp(0x6666_0001, n);
                tx.protect_rtcp(&mut p).unwrap();
                p
            })
            .collect();
        let mut our_rx = ours(profile, 7, window);
        let mut their_rx = theirs(profile, 7, Direction::Inbound, window as u32);
        for &i in &order {
            let a = ours_verdict(our_rx.unprotect_rtcp(&mut packets[i].clone()));
            let b = their_verdict(their_rx.unprotect_rtcp(&mut packets[i].clone()));
            proptest::prop_assert_eq!(a, b, "SRTCP index {} in {:?}", i + 1, order);
        }
    }
}
