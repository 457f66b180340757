//! Everything unprotect must refuse, with the typed error and the counter
//! it must bump; key-lifetime and stream limits; proptest round trips
//! (against libsrtp2 too).

use proptest::prelude::*;
use sotto_engine::srtp::{
    Config, Error, Event, MAX_RETIRED_STREAMS, PacketKind, Profile, SrtpContext,
};
use sotto_peers::libsrtp2::{self, Direction, Session};

const KEY: [u8; 32] = [0x11; 32];
const SALT: [u8; 14] = [0x22; 14];

fn ctx(profile: Profile, config: Config) -> SrtpContext {
    SrtpContext::with_config(
        profile,
        &KEY[..profile.key_len()],
        &SALT[..profile.salt_len()],
        config,
    )
    .unwrap()
}

fn rtp(seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1, 0xca, 0xfe, 0xba, 0xbe]);
    p.extend_from_slice(payload);
    p
}

fn rtcp() -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7, 0xca, 0xfe, 0xba, 0xbe];
    p.extend((0..24).map(|i| i as u8));
    p
}

fn protected(profile: Profile, rtcp_packet: bool) -> (Vec<u8>, Vec<u8>) {
    let mut tx = ctx(profile, Config::default());
    let plain = if rtcp_packet {
        rtcp()
    } else {
        rtp(9, &[0x55; 40])
    };
    let mut p = plain.clone();
    if rtcp_packet {
        tx.protect_rtcp(&mut p).unwrap();
    } else {
        tx.protect_rtp(&mut p).unwrap();
    }
    (plain, p)
}

fn unprotect(rx: &mut SrtpContext, rtcp_packet: bool, p: &mut Vec<u8>) -> Result<(), Error> {
    if rtcp_packet {
        rx.unprotect_rtcp(p)
    } else {
        rx.unprotect_rtp(p)
    }
}

/// Flipping any bit of any byte makes the packet fail, and (header fields
/// aside) fail authentication; the untouched packet still passes after.
#[test]
fn every_tampered_byte_is_rejected() {
    for profile in Profile::ALL {
        for rtcp_packet in [false, true] {
            let (plain, good) = protected(profile, rtcp_packet);
            let mut rx = ctx(profile, Config::default());
            for pos in 0..good.len() {
                for bit in [0x01u8, 0x80] {
                    let mut bad = good.clone();
                    bad[pos] ^= bit;
                    let err = unprotect(&mut rx, rtcp_packet, &mut bad).unwrap_err();
                    // Version bits and header lengths are checked before the
                    // tag; every other change is an authentication failure.
                    assert!(
                        matches!(
                            err,
                            Error::AuthFailed | Error::BadVersion | Error::Malformed
                        ),
                        "{profile} rtcp={rtcp_packet} pos {pos}: {err:?}"
                    );
                    if pos >= 12 {
                        assert_eq!(err, Error::AuthFailed, "{profile} pos {pos}");
                    }
                }
            }
            let stats = rx.stats();
            assert!(stats.auth_failures > 0);
            assert_eq!(stats.auth_failures + stats.malformed, 2 * good.len() as u64);
            let mut ok = good.clone();
            unprotect(&mut rx, rtcp_packet, &mut ok).unwrap();
            assert_eq!(ok, plain);
        }
    }
}

#[test]
fn every_truncation_is_rejected() {
    for profile in Profile::ALL {
        for rtcp_packet in [false, true] {
            let (_, good) = protected(profile, rtcp_packet);
            let mut rx = ctx(profile, Config::default());
            for len in 0..good.len() {
                let mut short = good[..len].to_vec();
                let err = unprotect(&mut rx, rtcp_packet, &mut short).unwrap_err();
                assert!(
                    matches!(err, Error::AuthFailed | Error::Malformed),
                    "{profile} len {len}: {err:?}"
                );
            }
            assert_eq!(rx.stats().rtp_unprotected + rx.stats().rtcp_unprotected, 0);
        }
    }
}

#[test]
fn oversized_wrong_key_and_replayed_are_rejected() {
    for profile in Profile::ALL {
        let config = Config {
            max_packet_len: 200,
            ..Config::default()
        };
        let mut tx = ctx(profile, Config::default());
        let mut rx = ctx(profile, config.clone());
        let mut big = rtp(1, &[0; 300]);
        tx.protect_rtp(&mut big).unwrap();
        assert_eq!(
            rx.unprotect_rtp(&mut big.clone()),
            Err(Error::Oversized(big.len()))
        );
        let mut small = ctx(profile, config);
        let mut too_big = rtp(1, &[0; 300]);
        assert_eq!(small.protect_rtp(&mut too_big), Err(Error::Oversized(312)));

        let mut wrong = SrtpContext::new(
            profile,
            &[0x12; 32][..profile.key_len()],
            &SALT[..profile.salt_len()],
        )
        .unwrap();
        let (_, p) = protected(profile, false);
        assert_eq!(wrong.unprotect_rtp(&mut p.clone()), Err(Error::AuthFailed));
        let (_, p) = protected(profile, true);
        assert_eq!(wrong.unprotect_rtcp(&mut p.clone()), Err(Error::AuthFailed));
        assert_eq!(wrong.stats().auth_failures, 2);

        let mut rx = ctx(profile, Config::default());
        let (_, p) = protected(profile, false);
        rx.unprotect_rtp(&mut p.clone()).unwrap();
        assert_eq!(rx.unprotect_rtp(&mut p.clone()), Err(Error::Replayed));
        assert_eq!(rx.stats().replays, 1);
        // SRTCP keeps its own window, keyed by the SRTCP index.
        let (_, p) = protected(profile, true);
        rx.unprotect_rtcp(&mut p.clone()).unwrap();
        assert_eq!(rx.unprotect_rtcp(&mut p.clone()), Err(Error::Replayed));
        assert_eq!(rx.stats().replays, 2);
    }
    // Retired SSRCs are bounded: past the bound, streams are kept.
    let mut tx = ctx(Profile::AesCm128HmacSha1_32, Config::default());
    for ssrc in 0..=MAX_RETIRED_STREAMS as u32 {
        let mut p = rtp(1, b"x");
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        tx.protect_rtp(&mut p).unwrap();
        assert_eq!(tx.remove_stream(ssrc), ssrc < MAX_RETIRED_STREAMS as u32);
    }
    assert!(!tx.remove_stream(0xdead));
}

/// A failed packet must not move the replay window or the ROC: a forged
/// packet far ahead must not make genuine packets look too old.
#[test]
fn state_changes_only_after_authentication() {
    let profile = Profile::AesCm128HmacSha1_80;
    let mut tx = ctx(profile, Config::default());
    let mut rx = ctx(profile, Config::default());
    let mut first = rtp(100, b"one");
    tx.protect_rtp(&mut first).unwrap();
    rx.unprotect_rtp(&mut first).unwrap();
    let mut forged = rtp(30_000, b"forged packet with a junk tag");
    forged.extend_from_slice(&[0; 10]);
    assert_eq!(rx.unprotect_rtp(&mut forged), Err(Error::AuthFailed));
    let mut next = rtp(101, b"two");
    tx.protect_rtp(&mut next).unwrap();
    rx.unprotect_rtp(&mut next).unwrap();
    assert_eq!(next, rtp(101, b"two"));
}

#[test]
fn stream_limit_drops_new_ssrcs() {
    let config = Config {
        max_streams: 2,
        ..Config::default()
    };
    let mut tx = ctx(Profile::AeadAes128Gcm, Config::default());
    let mut rx = ctx(Profile::AeadAes128Gcm, config);
    for ssrc in 1u8..=3 {
        let mut p = rtp(5, b"x");
        p[11] = ssrc;
        tx.protect_rtp(&mut p).unwrap();
        let result = rx.unprotect_rtp(&mut p);
        if ssrc <= 2 {
            assert_eq!(result, Ok(()));
        } else {
            assert_eq!(result, Err(Error::TooManyStreams));
        }
    }
    assert_eq!(rx.stats().stream_limit_drops, 1);
    rx.remove_stream(0xcafeba01);
    let mut p = rtp(6, b"x");
    p[11] = 3;
    tx.protect_rtp(&mut p).unwrap();
    assert_eq!(rx.unprotect_rtp(&mut p), Ok(()));
}

/// Forgetting a stream must not let its indices be used again under the
/// same key: a sender would reuse keystream, a receiver accept replays.
#[test]
fn a_removed_stream_cannot_come_back_under_the_same_key() {
    for profile in [Profile::AesCm128HmacSha1_80, Profile::AeadAes128Gcm] {
        let mut tx = ctx(profile, Config::default());
        let mut rx = ctx(profile, Config::default());
        let mut first = rtp(7, b"secret one");
        tx.protect_rtp(&mut first).unwrap();
        let mut control = rtcp();
        tx.protect_rtcp(&mut control).unwrap();
        rx.unprotect_rtp(&mut first.clone()).unwrap();
        rx.unprotect_rtcp(&mut control.clone()).unwrap();

        tx.remove_stream(0xcafe_babe);
        let mut again = rtp(7, b"secret two");
        assert_eq!(
            tx.protect_rtp(&mut again),
            Err(Error::RekeyNeeded(PacketKind::Rtp))
        );
        assert_eq!(again, rtp(7, b"secret two"));
        assert_eq!(
            tx.protect_rtcp(&mut rtcp()),
            Err(Error::RekeyNeeded(PacketKind::Rtcp))
        );

        rx.remove_stream(0xcafe_babe);
        assert_eq!(rx.unprotect_rtp(&mut first.clone()), Err(Error::Replayed));
        assert_eq!(
            rx.unprotect_rtcp(&mut control.clone()),
            Err(Error::Replayed)
        );
        assert_eq!(rx.stats().replays, 2);
    }
}

/// The key limit raises `RekeyNeeded` before it is reached and refuses
/// packets at it instead of wrapping.
#[test]
fn key_lifetime_raises_rekey_needed() {
    for kind in [PacketKind::Rtp, PacketKind::Rtcp] {
        let config = Config {
            srtp_key_limit: 10,
            srtcp_key_limit: 10,
            rekey_margin: 3,
            ..Config::default()
        };
        let mut tx = ctx(Profile::AesCm128HmacSha1_32, config);
        for n in 0..10u16 {
            let mut p = if kind == PacketKind::Rtp {
                rtp(n, b"a")
            } else {
                rtcp()
            };
            if kind == PacketKind::Rtp {
                tx.protect_rtp(&mut p).unwrap();
            } else {
                tx.protect_rtcp(&mut p).unwrap();
            }
            let event = tx.poll_event();
            assert_eq!(event.is_some(), n == 6, "packet {n}: {event:?}");
            if let Some(e) = event {
                assert_eq!(e, Event::RekeyNeeded(kind));
            }
        }
        let mut p = if kind == PacketKind::Rtp {
            rtp(10, b"a")
        } else {
            rtcp()
        };
        let result = if kind == PacketKind::Rtp {
            tx.protect_rtp(&mut p)
        } else {
            tx.protect_rtcp(&mut p)
        };
        assert_eq!(result, Err(Error::RekeyNeeded(kind)));
        assert_eq!(tx.stats().key_limit_drops, 1);
    }
}

/// The in-place API refuses a buffer with no room for the tag and leaves
/// the packet as it was.
#[test]
fn in_place_needs_room_for_the_trailer() {
    let mut tx = ctx(Profile::AesCm128HmacSha1_80, Config::default());
    let plain = rtp(1, b"abc");
    let mut buf = plain.clone();
    buf.extend_from_slice(&[0; 9]);
    assert_eq!(
        tx.protect_rtp_in_place(&mut buf, plain.len()),
        Err(Error::BufferTooSmall { needed: 1 })
    );
    assert_eq!(buf[..plain.len()], plain[..]);
    buf.push(0);
    assert_eq!(
        tx.protect_rtp_in_place(&mut buf, plain.len()),
        Ok(plain.len() + 10)
    );
}

#[test]
fn bad_keys_and_config_are_refused() {
    assert_eq!(
        SrtpContext::new(Profile::AesCm256HmacSha1_80, &[0; 16], &[0; 14]).unwrap_err(),
        Error::KeyLength {
            expected: 32,
            got: 16
        }
    );
    assert_eq!(
        SrtpContext::new(Profile::AeadAes128Gcm, &[0; 16], &[0; 14]).unwrap_err(),
        Error::SaltLength {
            expected: 12,
            got: 14
        }
    );
    // Outside 64 (the RFC 3711 minimum, which libsrtp2 enforces too) to 32768.
    for replay_window in [0, 1, 63, 32_769] {
        let config = Config {
            replay_window,
            ..Config::default()
        };
        assert!(matches!(
            SrtpContext::with_config(Profile::AeadAes128Gcm, &[0; 16], &[0; 12], config),
            Err(Error::Config(_))
        ));
    }
}

/// RFC 3711 §9.2: one master key protects at most 2^48 SRTP and 2^31
/// SRTCP packets; a configuration cannot raise those limits.
#[test]
fn key_limits_above_rfc3711_are_refused() {
    for (srtp_key_limit, srtcp_key_limit) in [((1 << 48) + 1, 1 << 31), (1 << 48, (1 << 31) + 1)] {
        let config = Config {
            srtp_key_limit,
            srtcp_key_limit,
            ..Config::default()
        };
        assert!(matches!(
            SrtpContext::with_config(Profile::AesCm128HmacSha1_80, &[0; 16], &[0; 14], config),
            Err(Error::Config(_))
        ));
    }
}

/// AES-CM gives each packet index a keystream segment of 2^16 blocks
/// (RFC 3711 §4.1.1): a longer packet would run into the next index's
/// keystream and reuse it. The packet length limit cannot go past it.
#[test]
fn packets_cannot_outgrow_the_keystream_segment() {
    let config = |max_packet_len| Config {
        max_packet_len,
        ..Config::default()
    };
    assert!(matches!(
        SrtpContext::with_config(
            Profile::AesCm128HmacSha1_80,
            &[0; 16],
            &[0; 14],
            config((1 << 20) + 1)
        ),
        Err(Error::Config(_))
    ));
    // Up to 2^20 bytes, the encrypted part stays within its 2^16 blocks.
    let mut tx = SrtpContext::with_config(
        Profile::AesCm128HmacSha1_80,
        &[0; 16],
        &[0; 14],
        config(1 << 20),
    )
    .unwrap();
    let mut big = rtp(0, &[]);
    big.resize(1 << 20, 0);
    tx.protect_rtp(&mut big).unwrap();
}

fn peer(profile: Profile) -> libsrtp2::Profile {
    libsrtp2::Profile::from_name(profile.name()).expect("libsrtp2 has every profile")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Random keys, SSRC, sequence numbers and payloads: Sotto's output
    /// equals libsrtp2's, and Sotto gets the packet back.
    #[test]
    fn round_trip_and_match_libsrtp2(
        profile in prop::sample::select(Profile::ALL.to_vec()),
        key in prop::collection::vec(any::<u8>(), 46),
        ssrc in any::<u32>(),
        start in any::<u16>(),
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..8),
    ) {
        let (k, s) = key.split_at(profile.key_len());
        let s = &s[..profile.salt_len()];
        let mut tx = SrtpContext::new(profile, k, s).unwrap();
        let mut rx = SrtpContext::new(profile, k, s).unwrap();
        let mut key_salt = k.to_vec();
        key_salt.extend_from_slice(s);
        let mut peer_tx = Session::new(peer(profile), Direction::Outbound, &key_salt, 64).unwrap();
        for (i, payload) in payloads.iter().enumerate() {
            let mut plain = rtp(start.wrapping_add(i as u16), payload);
            plain[8..12].copy_from_slice(&ssrc.to_be_bytes());
            let mut ours = plain.clone();
            tx.protect_rtp(&mut ours).unwrap();
            let mut theirs = plain.clone();
            peer_tx.protect(&mut theirs).unwrap();
            prop_assert_eq!(&ours, &theirs);
            rx.unprotect_rtp(&mut ours).unwrap();
            prop_assert_eq!(&ours, &plain);

            let mut control = rtcp();
            control[4..8].copy_from_slice(&ssrc.to_be_bytes());
            control.extend_from_slice(payload);
            let mut ours = control.clone();
            tx.protect_rtcp(&mut ours).unwrap();
            let mut theirs = control.clone();
            peer_tx.protect_rtcp(&mut theirs).unwrap();
            prop_assert_eq!(&ours, &theirs);
            rx.unprotect_rtcp(&mut ours).unwrap();
            prop_assert_eq!(&ours, &control);
        }
    }
}
