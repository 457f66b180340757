//! End to end: ZRTP against bzrtp over UDP, then SRTP media both ways
//! between Sotto's SRTP context (keyed by Sotto's ZRTP) and libsrtp2
//! (keyed by bzrtp's secrets).

mod zrtp_support;

use sotto_engine::srtp::{Profile, SrtpContext};
use sotto_engine::zrtp::{
    AuthTagAlgo, CipherAlgo, Config, HashAlgo, KeyAgreement, Policy, Role, SasAlgo, ZidCache,
};
use sotto_peers::bzrtp::BzrtpConfig;
use sotto_peers::libsrtp2::{self, Direction};
use zrtp_support::{RunOpts, assert_agree, run_udp};

fn peer_profile(p: Profile) -> libsrtp2::Profile {
    libsrtp2::Profile::from_name(p.name()).expect("libsrtp2 has every profile")
}

fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 111];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..160u32).map(|i| (i as u8) ^ (seq as u8)));
    p
}

fn media_both_ways(
    ka: KeyAgreement,
    hash: HashAlgo,
    cipher: CipherAlgo,
    auth: AuthTagAlgo,
    role: Role,
) {
    let policy = Policy {
        hashes: vec![hash],
        ciphers: vec![cipher],
        auth_tags: vec![auth],
        key_agreements: vec![ka],
        sas: vec![SasAlgo::B32],
    };
    let bz = BzrtpConfig::from_lists(hash.name(), cipher.name(), auth.name(), ka.name(), "B32");
    let o = run_udp(
        Config {
            policy,
            ..Config::new(role)
        },
        ZidCache::new(),
        &bz,
        RunOpts::default(),
    );
    assert_agree(&o, ka.name());
    let info = o.sotto.as_ref().unwrap();
    let b = o.bzrtp.as_ref().unwrap();
    let profile = info.srtp_profile().expect("profile");

    // Sotto -> bzrtp's side (libsrtp2 keyed by bzrtp's receive secrets).
    let (lk, ls) = info.local_key_salt();
    let mut tx = SrtpContext::new(profile, lk, ls).unwrap();
    let mut rx_peer = libsrtp2::Session::new(
        peer_profile(profile),
        Direction::Inbound,
        &[b.peer_key.clone(), b.peer_salt.clone()].concat(),
        128,
    )
    .unwrap();
    // bzrtp's side -> Sotto.
    let mut tx_peer = libsrtp2::Session::new(
        peer_profile(profile),
        Direction::Outbound,
        &[b.self_key.clone(), b.self_salt.clone()].concat(),
        128,
    )
    .unwrap();
    let (rk, rs) = info.remote_key_salt();
    let mut rx = SrtpContext::new(profile, rk, rs).unwrap();
    for seq in 1000..1050u16 {
        let plain = rtp(seq, 0x5077_0001);
        let mut p = plain.clone();
        tx.protect_rtp(&mut p).unwrap();
        assert_ne!(p[12..172], plain[12..172]);
        rx_peer.unprotect(&mut p).unwrap();
        assert_eq!(p, plain);

        let plain = rtp(seq, 0xb2b2_0001);
        let mut p = plain.clone();
        tx_peer.protect(&mut p).unwrap();
        rx.unprotect_rtp(&mut p).unwrap();
        assert_eq!(p, plain);
    }
}

#[test]
fn x255_aes1_hs80_media_both_ways() {
    media_both_ways(
        KeyAgreement::X255,
        HashAlgo::S256,
        CipherAlgo::Aes1,
        AuthTagAlgo::Hs80,
        Role::Initiator,
    );
    media_both_ways(
        KeyAgreement::X255,
        HashAlgo::S256,
        CipherAlgo::Aes1,
        AuthTagAlgo::Hs32,
        Role::Responder,
    );
}

#[test]
fn dh3k_aes3_hs80_media_both_ways() {
    media_both_ways(
        KeyAgreement::Dh3k,
        HashAlgo::S384,
        CipherAlgo::Aes3,
        AuthTagAlgo::Hs80,
        Role::Responder,
    );
}

/// AES_256_CM_HMAC_SHA1_32 (AES3 + HS32, what the default policy picks
/// with X448): Sotto's SRTP against libsrtp2 keyed by bzrtp, both roles.
#[test]
fn x448_aes3_hs32_media_both_ways() {
    for role in [Role::Initiator, Role::Responder] {
        media_both_ways(
            KeyAgreement::X448,
            HashAlgo::S384,
            CipherAlgo::Aes3,
            AuthTagAlgo::Hs32,
            role,
        );
    }
}
