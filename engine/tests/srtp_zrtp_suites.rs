//! Every suite ZRTP agrees on keys SRTP: two Sotto endpoints negotiate,
//! then each side's SRTP context (keyed from its own `SecureInfo`) carries
//! RTP and RTCP to the other. Includes the reviewer's case: the default
//! policy against a peer offering X448 and DH3k (as a Linphone/bzrtp peer
//! may) agrees on S384/AES3/HS32, which needs AES_256_CM_HMAC_SHA1_32.

mod zrtp_support;

use sotto_engine::srtp::{Profile, SrtpContext};
use sotto_engine::zrtp::{
    AuthTagAlgo, CipherAlgo, Config, Endpoint, HashAlgo, KeyAgreement, Policy, Role, SecureInfo,
    ZidCache,
};
use zrtp_support::{assert_sim_agree, perfect, simulate};

/// Runs Sotto (`a`, initiator) against Sotto (`b`, responder) and returns
/// the agreed suite's SRTP profile after checking media flows both ways.
fn negotiate_and_talk(a: Policy, b: Policy) -> (SecureInfo, Profile) {
    let config = |role, policy| Config {
        policy,
        ..Config::new(role)
    };
    let o = simulate(
        Endpoint::new(config(Role::Initiator, a), ZidCache::new()),
        Endpoint::new(config(Role::Responder, b), ZidCache::new()),
        &mut perfect(),
    );
    let (a, b) = assert_sim_agree(&o);
    let profile = a.srtp_profile().unwrap_or_else(|| {
        panic!(
            "ZRTP went Secure with {} but there is no SRTP profile for it",
            a.suite
        )
    });
    assert_eq!(b.srtp_profile(), Some(profile));
    talk(a, b, profile);
    talk(b, a, profile);
    (a.clone(), profile)
}

/// `from` protects RTP and RTCP with its local keys; `to` unprotects with
/// its remote keys.
fn talk(from: &SecureInfo, to: &SecureInfo, profile: Profile) {
    let (k, s) = from.local_key_salt();
    let mut tx = SrtpContext::new(profile, k, s).unwrap();
    let (k, s) = to.remote_key_salt();
    let mut rx = SrtpContext::new(profile, k, s).unwrap();
    for seq in 0..20u16 {
        let mut rtp = vec![0x80, 111];
        rtp.extend_from_slice(&seq.to_be_bytes());
        rtp.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
        rtp.extend_from_slice(&0x5077_0001u32.to_be_bytes());
        rtp.extend((0..160u32).map(|i| i as u8 ^ seq as u8));
        let mut p = rtp.clone();
        tx.protect_rtp(&mut p).unwrap();
        assert_eq!(p.len(), rtp.len() + profile.rtp_tag_len());
        assert_ne!(p[12..rtp.len()], rtp[12..]);
        rx.unprotect_rtp(&mut p).unwrap();
        assert_eq!(p, rtp, "{profile}: RTP {seq}");
    }
    let rtcp = [0x80, 201, 0, 1, 0x50, 0x77, 0, 1];
    let mut p = rtcp.to_vec();
    tx.protect_rtcp(&mut p).unwrap();
    assert_eq!(p.len(), rtcp.len() + profile.rtcp_overhead());
    rx.unprotect_rtcp(&mut p).unwrap();
    assert_eq!(p, rtcp, "{profile}: RTCP");
}

fn x448_dh3k_peer() -> Policy {
    Policy {
        key_agreements: vec![KeyAgreement::X448, KeyAgreement::Dh3k],
        ..Policy::default()
    }
}

/// The reviewer's scenario, Sotto with the default policy as initiator:
/// it commits S384/AES3/HS32 (X448 forces AES3, HS32 stays first).
#[test]
fn default_policy_initiator_against_an_x448_dh3k_peer_keys_srtp() {
    let (info, profile) = negotiate_and_talk(Policy::default(), x448_dh3k_peer());
    assert_eq!(
        (
            info.suite.key_agreement,
            info.suite.hash,
            info.suite.cipher,
            info.suite.auth
        ),
        (
            KeyAgreement::X448,
            HashAlgo::S384,
            CipherAlgo::Aes3,
            AuthTagAlgo::Hs32
        )
    );
    assert_eq!(profile, Profile::AesCm256HmacSha1_32);
}

/// The same with roles swapped: Sotto with the default policy accepts the
/// peer's AES3 + HS32 Commit and keys SRTP for it.
#[test]
fn default_policy_responder_accepts_aes3_hs32_and_keys_srtp() {
    let (info, profile) = negotiate_and_talk(x448_dh3k_peer(), Policy::default());
    assert_eq!(
        (info.suite.cipher, info.suite.auth),
        (CipherAlgo::Aes3, AuthTagAlgo::Hs32)
    );
    assert_eq!(profile, Profile::AesCm256HmacSha1_32);
}

/// Every cipher and auth tag pair ZRTP can agree on, with a fast and a
/// strong key agreement, keys an SRTP profile that carries media.
#[test]
fn every_cipher_and_auth_tag_pair_keys_srtp() {
    for &cipher in CipherAlgo::ALL {
        for &auth in AuthTagAlgo::ALL {
            for key_agreement in [KeyAgreement::X255, KeyAgreement::X448] {
                let policy = Policy {
                    ciphers: vec![cipher],
                    auth_tags: vec![auth],
                    key_agreements: vec![key_agreement],
                    ..Policy::default()
                };
                let (info, profile) = negotiate_and_talk(policy.clone(), policy);
                assert_eq!((info.suite.cipher, info.suite.auth), (cipher, auth));
                assert_eq!(profile.key_len(), cipher.key_len());
                let tag = if auth == AuthTagAlgo::Hs32 { 4 } else { 10 };
                assert_eq!(profile.rtp_tag_len(), tag);
            }
        }
    }
}
