//! Against bzrtp over UDP: multistream mode (a second, video stream keyed
//! from the first session, RFC 6189 §4.4.3) and the auxiliary shared
//! secret (§4.3).

mod zrtp_support;

use sotto_engine::zrtp::{Config, Endpoint, KeyAgreement, Role, ZidCache};
use sotto_peers::bzrtp::{Bzrtp, BzrtpConfig};
use zrtp_support::{RunOpts, assert_agree, drive};

fn multistream(first_role: Role, second_role: Role) {
    let bz = BzrtpConfig::default();
    let mut audio_peer = Bzrtp::new(0xa0d1_0001, &bz).unwrap();
    assert_eq!(audio_peer.start(), 0);
    let audio = Endpoint::new(Config::new(first_role), ZidCache::new());
    let (o, mut audio_peer) = drive(audio, audio_peer, &RunOpts::default());
    let (audio_sas, _) = assert_agree(&o, "X255");
    let session = o.endpoint.session_key().expect("session key");

    let mut video_peer = audio_peer
        .add_channel(0x0f1d_0002)
        .expect("bzrtp second channel");
    assert_eq!(video_peer.start(), 0);
    let video = Endpoint::new(
        Config {
            multistream: Some(session),
            ..Config::new(second_role)
        },
        o.endpoint.cache().clone(),
    );
    let (v, _video_peer) = drive(video, video_peer, &RunOpts::default());
    let (video_sas, video_role) = assert_agree(&v, "Mult");
    assert_eq!(video_sas, audio_sas);
    assert_eq!(video_role, second_role.name());
    let (va, aa) = (v.sotto.as_ref().unwrap(), o.sotto.as_ref().unwrap());
    assert_eq!(va.suite.key_agreement, KeyAgreement::Mult);
    assert_ne!(va.srtp, aa.srtp, "video keys must differ from audio keys");
    drop(audio_peer);
}

#[test]
fn multistream_sotto_initiates_video() {
    multistream(Role::Initiator, Role::Initiator);
}

#[test]
fn multistream_bzrtp_initiates_video() {
    multistream(Role::Responder, Role::Responder);
}

/// A third stream keyed from the second stream's session key: bzrtp keeps
/// one ZRTPSess per call (from the DH-mode stream, §4.5.2), so the second
/// stream must hand out that one, not a key of its own. (bzrtp holds two
/// channels at most: the second is gone when the third comes.)
#[test]
fn a_third_stream_keyed_from_the_second_agrees_with_bzrtp() {
    let bz = BzrtpConfig::default();
    let mut audio_peer = Bzrtp::new(0xa0d1_0011, &bz).unwrap();
    assert_eq!(audio_peer.start(), 0);
    let audio = Endpoint::new(Config::new(Role::Initiator), ZidCache::new());
    let (o, mut audio_peer) = drive(audio, audio_peer, &RunOpts::default());
    let (audio_sas, _) = assert_agree(&o, "X255");
    let mut key = o.endpoint.session_key().expect("session key");
    for ssrc in [0x0f1d_0012, 0x0f1d_0013] {
        let mut peer = audio_peer.add_channel(ssrc).expect("bzrtp channel");
        assert_eq!(peer.start(), 0);
        let ep = Endpoint::new(
            Config {
                multistream: Some(key),
                ..Config::new(Role::Initiator)
            },
            o.endpoint.cache().clone(),
        );
        let (s, peer) = drive(ep, peer, &RunOpts::default());
        let (sas, _) = assert_agree(&s, "Mult");
        assert_eq!(sas, audio_sas);
        key = s.endpoint.session_key().expect("stream session key");
        drop(peer);
    }
    drop(audio_peer);
}

#[test]
fn aux_secret_matches_bzrtp() {
    let secret = b"shared out of band: 0123456789abcdef".to_vec();
    for role in [Role::Initiator, Role::Responder] {
        let mut peer = Bzrtp::new(0xa0c5_0001, &BzrtpConfig::default()).unwrap();
        assert_eq!(peer.set_aux_secret(&secret), 0);
        assert_eq!(peer.start(), 0);
        let ep = Endpoint::new(
            Config {
                aux_secret: Some(secret.clone()),
                ..Config::new(role)
            },
            ZidCache::new(),
        );
        let (o, mut peer) = drive(ep, peer, &RunOpts::default());
        assert_agree(&o, "X255");
        assert_eq!(
            peer.aux_secret_mismatch(),
            0,
            "bzrtp saw an aux secret mismatch"
        );
    }
    // A different secret on our side: bzrtp reports the mismatch and the
    // keys still agree (s2 is then null on both sides).
    let mut peer = Bzrtp::new(0xa0c5_0002, &BzrtpConfig::default()).unwrap();
    assert_eq!(peer.set_aux_secret(&secret), 0);
    assert_eq!(peer.start(), 0);
    let ep = Endpoint::new(
        Config {
            aux_secret: Some(b"something else".to_vec()),
            ..Config::new(Role::Initiator)
        },
        ZidCache::new(),
    );
    let (o, mut peer) = drive(ep, peer, &RunOpts::default());
    assert_agree(&o, "X255");
    assert_eq!(peer.aux_secret_mismatch(), 1);
}

#[test]
fn continuity_with_bzrtp_cache_across_calls() {
    let dir = std::env::temp_dir().join(format!("sotto-zrtp-bzcache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ours, theirs) = (dir.join("sotto.zrtpcache"), dir.join("bzrtp.sqlite"));
    let call = |n: u32| {
        let mut peer = Bzrtp::with_cache(
            0xcac0_0000 + n,
            &BzrtpConfig::default(),
            &theirs,
            "sip:bob@sotto.test",
            "sip:alice@sotto.test",
        )
        .expect("bzrtp with cache");
        assert_eq!(peer.start(), 0);
        let ep = Endpoint::new(Config::new(Role::Initiator), ZidCache::load(&ours).unwrap());
        let (o, peer) = drive(ep, peer, &RunOpts::default());
        assert_agree(&o, "X255");
        o.endpoint.cache().save(&ours).unwrap();
        drop(peer);
        o
    };
    // First call: neither side has history.
    let o1 = call(1);
    assert!(
        !o1.sotto.as_ref().unwrap().cache_mismatch && !o1.bzrtp.as_ref().unwrap().cache_mismatch
    );
    // Second call: both hold rs1 from the first; a non-match would raise a
    // cache mismatch on both sides, so none means rs1 was used.
    let bz_zid = o1.sotto.as_ref().unwrap().peer_zid;
    let rs1_first = ZidCache::load(&ours)
        .unwrap()
        .get(&bz_zid)
        .and_then(|e| e.rs1);
    assert!(rs1_first.is_some());
    let o2 = call(2);
    assert_eq!(
        o2.sotto.as_ref().unwrap().peer_zid,
        bz_zid,
        "bzrtp kept its ZID in its cache"
    );
    assert_eq!(
        ZidCache::load(&ours)
            .unwrap()
            .get(&bz_zid)
            .and_then(|e| e.rs2),
        rs1_first
    );
    assert!(
        !o2.sotto.as_ref().unwrap().cache_mismatch,
        "Sotto: {:?}",
        o2.sotto_events
    );
    assert!(
        !o2.bzrtp.as_ref().unwrap().cache_mismatch,
        "bzrtp saw a cache mismatch"
    );
    // Corrupt our entry for bzrtp: both ends must flag the mismatch.
    zrtp_support::corrupt_cache_row(&ours, &bz_zid);
    let o3 = call(3);
    assert!(o3.sotto.as_ref().unwrap().cache_mismatch);
    assert!(
        o3.bzrtp.as_ref().unwrap().cache_mismatch,
        "bzrtp missed the mismatch"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
