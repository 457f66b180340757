//! Interop with bzrtp 5.1 (Debian libbzrtp-dev) over UDP on 127.0.0.1:
//! Sotto as initiator, as responder and in commit contention, for each
//! key agreement bzrtp implements. Both sides must derive the same SAS,
//! algorithms and SRTP master keys and salts.

mod zrtp_support;

use sotto_engine::zrtp::{AuthTagAlgo, CipherAlgo, HashAlgo, SasAlgo, Suite};
use sotto_engine::zrtp::{Config, KeyAgreement, Policy, Role, ZidCache, packet};
use sotto_peers::bzrtp::BzrtpConfig;
use zrtp_support::{Outcome, RunOpts, assert_agree, run_udp};

fn policy(
    ka: KeyAgreement,
    hash: HashAlgo,
    cipher: CipherAlgo,
    auth: AuthTagAlgo,
    sas: SasAlgo,
) -> Policy {
    Policy {
        hashes: vec![hash],
        ciphers: vec![cipher],
        auth_tags: vec![auth],
        key_agreements: vec![ka, KeyAgreement::Mult],
        sas: vec![sas],
    }
}

fn config(role: Role, p: Policy) -> Config {
    Config {
        policy: p,
        ..Config::new(role)
    }
}

fn bz(ka: &str, hash: &str, cipher: &str, auth: &str, sas: &str) -> BzrtpConfig {
    BzrtpConfig::from_lists(hash, cipher, auth, ka, sas)
}

fn x255() -> (Policy, BzrtpConfig) {
    (
        policy(
            KeyAgreement::X255,
            HashAlgo::S256,
            CipherAlgo::Aes1,
            AuthTagAlgo::Hs32,
            SasAlgo::B32,
        ),
        bz("X255", "S256", "AES1", "HS32", "B32"),
    )
}

#[test]
fn crc_byte_order_matches_bzrtp() {
    let (p, b) = x255();
    let o = run_udp(
        config(Role::Responder, p),
        ZidCache::new(),
        &b,
        RunOpts::default(),
    );
    let first = o.bzrtp_packets.first().expect("bzrtp sent nothing");
    assert!(
        packet::parse(first).is_ok(),
        "bzrtp's packet fails our CRC check"
    );
    let n = first.len() - 4;
    assert_eq!(first[n..], zrtp_support::crc32c_ref(&first[..n]));
    assert_agree(&o, "X255");
}

/// One handshake with Sotto in `role` (commit contention forced for
/// [`Contention`]); checks agreement and returns the outcome.
fn handshake(p: Policy, b: &BzrtpConfig, ka: &str, role: Side) -> Outcome {
    let (cfg, opts) = match role {
        Side::Is(role) => (config(role, p), RunOpts::default()),
        Side::Contention => (
            Config {
                commit_after_hello_ack: true,
                ..config(Role::Initiator, p)
            },
            RunOpts {
                force_contention: true,
                ..RunOpts::default()
            },
        ),
    };
    let o = run_udp(cfg, ZidCache::new(), b, opts);
    let (_, r) = assert_agree(&o, ka);
    if let Side::Is(role) = role {
        assert_eq!(r, role.name());
    }
    o
}

/// Which part Sotto plays.
#[derive(Clone, Copy)]
enum Side {
    Is(Role),
    Contention,
}

#[test]
fn x255_sotto_initiator() {
    let (p, b) = x255();
    handshake(p, &b, "X255", Side::Is(Role::Initiator));
}

#[test]
fn x255_sotto_responder() {
    let (p, b) = x255();
    handshake(p, &b, "X255", Side::Is(Role::Responder));
}

#[test]
fn x255_commit_contention() {
    let (p, b) = x255();
    let o = handshake(p, &b, "X255", Side::Contention);
    use sotto_engine::zrtp::message::MessageType::Commit;
    let commits = |pkts: &[Vec<u8>]| {
        pkts.iter()
            .any(|p| zrtp_support::packet_type(p) == Some(Commit))
    };
    assert!(commits(&o.sotto_packets) && commits(&o.bzrtp_packets));
}

fn both_roles(p: Policy, b: BzrtpConfig, ka: &str) {
    for side in [
        Side::Is(Role::Initiator),
        Side::Is(Role::Responder),
        Side::Contention,
    ] {
        handshake(p.clone(), &b, ka, side);
    }
}

#[test]
fn x448_all_roles() {
    both_roles(
        policy(
            KeyAgreement::X448,
            HashAlgo::S384,
            CipherAlgo::Aes3,
            AuthTagAlgo::Hs80,
            SasAlgo::B32,
        ),
        bz("X448", "S384", "AES3", "HS80", "B32"),
        "X448",
    );
}

#[test]
fn dh3k_s384_aes3_hs80_b256_all_roles() {
    both_roles(
        policy(
            KeyAgreement::Dh3k,
            HashAlgo::S384,
            CipherAlgo::Aes3,
            AuthTagAlgo::Hs80,
            SasAlgo::B256,
        ),
        bz("DH3k", "S384", "AES3", "HS80", "B256"),
        "DH3k",
    );
}

/// Sotto's default policy against bzrtp offering X448 and DH3k (with both
/// hashes, ciphers and auth tags, in the order `first` puts them), in
/// every role; returns the suite of each run after checking it has an SRTP
/// profile and both ends agree on it.
fn default_policy_against_x448_dh3k(hashes: &str, ciphers: &str) -> Vec<(Role, Suite)> {
    let b = bz("X448,DH3k", hashes, ciphers, "HS32,HS80", "B32");
    let mut out = Vec::new();
    for side in [
        Side::Is(Role::Initiator),
        Side::Is(Role::Responder),
        Side::Contention,
    ] {
        let o = handshake(Policy::default(), &b, "X448", side);
        let s = o.sotto.as_ref().unwrap();
        assert!(
            s.srtp_profile().is_some(),
            "{} (Sotto as {}) has no SRTP profile",
            s.suite,
            s.role.name()
        );
        out.push((s.role, s.suite));
    }
    out
}

/// A Linphone-like bzrtp (S256 and AES1 preferred, HS32 first) against
/// the default policy: when Sotto commits, X448 takes S384 and AES3 and
/// the auth tag stays HS32, which keys AES_256_CM_HMAC_SHA1_32 (the
/// review's case); when bzrtp commits it picks its own (S256/AES1/HS32).
#[test]
fn default_policy_against_x448_dh3k_bzrtp_all_roles() {
    for (role, suite) in default_policy_against_x448_dh3k("S256,S384", "AES1,AES3") {
        if role == Role::Initiator {
            assert_eq!(
                (suite.hash, suite.cipher, suite.auth),
                (HashAlgo::S384, CipherAlgo::Aes3, AuthTagAlgo::Hs32)
            );
            assert_eq!(
                suite.srtp_profile(),
                Some(sotto_engine::srtp::Profile::AesCm256HmacSha1_32)
            );
        }
    }
}

/// bzrtp preferring S384 and AES3 commits AES3 with HS32 too, and Sotto's
/// default policy accepts it: S384/AES3/HS32 in every role.
#[test]
fn default_policy_and_bzrtp_agree_on_aes3_hs32_all_roles() {
    for (role, suite) in default_policy_against_x448_dh3k("S384,S256", "AES3,AES1") {
        assert_eq!(
            (suite.hash, suite.cipher, suite.auth),
            (HashAlgo::S384, CipherAlgo::Aes3, AuthTagAlgo::Hs32),
            "Sotto as {}",
            role.name()
        );
        assert_eq!(
            suite.srtp_profile(),
            Some(sotto_engine::srtp::Profile::AesCm256HmacSha1_32)
        );
    }
}

#[test]
fn dh2k_all_roles() {
    both_roles(
        policy(
            KeyAgreement::Dh2k,
            HashAlgo::S256,
            CipherAlgo::Aes1,
            AuthTagAlgo::Hs32,
            SasAlgo::B32,
        ),
        bz("DH2k", "S256", "AES1", "HS32", "B32"),
        "DH2k",
    );
}

#[test]
fn zrtp_hash_exchanged_both_ways_is_accepted() {
    let (p, b) = x255();
    let o = run_udp(
        config(Role::Initiator, p),
        ZidCache::new(),
        &b,
        RunOpts {
            bzrtp_gets_hello_hash: true,
            sotto_gets_hello_hash: true,
            ..RunOpts::default()
        },
    );
    assert_agree(&o, "X255");
}

#[test]
fn wrong_zrtp_hash_stops_bzrtp() {
    let (p, b) = x255();
    let wrong = format!("1.10 {}", "ab".repeat(32));
    let o = run_udp(
        config(Role::Responder, p),
        ZidCache::new(),
        &b,
        RunOpts {
            bzrtp_wrong_hello_hash: Some(wrong),
            ..RunOpts::default()
        },
    );
    assert!(o.bzrtp.is_none(), "bzrtp went secure despite a wrong hash");
    assert!(o.sotto.is_none());
}

#[test]
fn sotto_detects_a_wrong_zrtp_hash_for_bzrtp() {
    use sotto_engine::zrtp::{Event, Failure};
    let (p, b) = x255();
    let wrong = format!("1.10 {}", "cd".repeat(32)).parse().unwrap();
    let cfg = Config {
        peer_hello_hash: Some(wrong),
        ..config(Role::Initiator, p)
    };
    let o = run_udp(cfg, ZidCache::new(), &b, RunOpts::default());
    assert!(o.sotto.is_none());
    assert!(
        o.sotto_events
            .iter()
            .any(|e| matches!(e, Event::HelloHashMismatch))
    );
    assert!(
        o.sotto_events
            .iter()
            .any(|e| matches!(e, Event::Failed(Failure::HelloHashMismatch)))
    );
}
