//! Security properties of the ZRTP endpoint, in virtual time: tampering,
//! replays, packet loss, a man in the middle, zrtp-hash checking, and
//! multistream keying.

mod zrtp_support;

use sotto_engine::zrtp::message::MessageType;
use sotto_engine::zrtp::{
    Config, Endpoint, Event, Failure, HelloHash, KeyAgreement, Policy, ProtocolError, Role,
    SasAlgo, ZidCache, packet,
};
use zrtp_support::{Dir, Rng, assert_sim_agree, fix_crc, packet_type, perfect, simulate};

fn pair(ka: KeyAgreement) -> (Endpoint, Endpoint) {
    let policy = Policy {
        key_agreements: vec![ka, KeyAgreement::Mult],
        ..Policy::default()
    };
    (
        Endpoint::new(
            Config {
                policy: policy.clone(),
                ..Config::new(Role::Initiator)
            },
            ZidCache::new(),
        ),
        Endpoint::new(
            Config {
                policy,
                ..Config::new(Role::Responder)
            },
            ZidCache::new(),
        ),
    )
}

#[test]
fn every_key_agreement_between_sotto_endpoints() {
    for ka in [
        KeyAgreement::X255,
        KeyAgreement::X448,
        KeyAgreement::Ec25,
        KeyAgreement::Ec38,
        KeyAgreement::Dh2k,
        KeyAgreement::Dh3k,
    ] {
        let (a, b) = pair(ka);
        let o = simulate(a, b, &mut perfect());
        let (ia, _) = assert_sim_agree(&o);
        assert_eq!(ia.suite.key_agreement, ka);
    }
}

#[test]
fn handshake_survives_30_percent_loss() {
    for seed in 1..=20u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut lost = 0;
        let (a, b) = pair(KeyAgreement::X255);
        let o = simulate(a, b, &mut |_, _, p| {
            if rng.chance(0.30) {
                lost += 1;
                vec![]
            } else {
                vec![p]
            }
        });
        assert_sim_agree(&o);
        assert!(lost > 0, "seed {seed} lost nothing");
    }
}

#[test]
fn loss_of_everything_ends_in_a_timeout_failure() {
    let (a, b) = pair(KeyAgreement::X255);
    let o = simulate(a, b, &mut |_, _, _| vec![]);
    assert!(
        o.a_events
            .iter()
            .any(|e| matches!(e, Event::Failed(Failure::Timeout)))
    );
    assert!(o.a_secure.is_none() && o.b_secure.is_none());
    // 20 Hello retransmissions from 50 ms doubling to 200 ms: about 4 s.
    assert!(
        o.virtual_elapsed.as_secs() >= 3 && o.virtual_elapsed.as_secs() <= 6,
        "{:?}",
        o.virtual_elapsed
    );
}

#[test]
fn replays_are_ignored() {
    // Every packet is delivered twice, and every earlier packet is replayed
    // again after each new one, verbatim (stale sequence numbers) and with a
    // fresh sequence number (the header is not authenticated).
    let mut seen: Vec<(Dir, Vec<u8>)> = Vec::new();
    let (a, b) = pair(KeyAgreement::X255);
    let o = simulate(a, b, &mut |dir, _, p| {
        let mut out = vec![p.clone(), p.clone()];
        for (d, old) in &seen {
            if *d == dir {
                out.push(old.clone());
                let mut fresh = old.clone();
                fresh[2] = 0x7f;
                fresh[3] = fresh[3].wrapping_add(1);
                fix_crc(&mut fresh);
                out.push(fresh);
            }
        }
        seen.push((dir, p));
        out
    });
    assert_sim_agree(&o);
    assert!(o.a.stats().dropped > 0 && o.b.stats().dropped > 0);
}

#[test]
fn a_replay_with_a_forged_high_sequence_number_does_not_block_the_peer() {
    // Ahead of every packet, an attacker replays each earlier packet of
    // that direction with the highest sequence number. The repeats are
    // answered or ignored; they must not make the endpoints drop the real
    // packets that follow, whose sequence numbers are lower.
    let mut seen: Vec<(Dir, Vec<u8>)> = Vec::new();
    let (a, b) = pair(KeyAgreement::X255);
    let o = simulate(a, b, &mut |dir, _, p| {
        let mut out = Vec::new();
        for (d, old) in &seen {
            if *d == dir {
                let mut forged = old.clone();
                forged[2..4].copy_from_slice(&u16::MAX.to_be_bytes());
                fix_crc(&mut forged);
                out.push(forged);
            }
        }
        out.push(p.clone());
        seen.push((dir, p));
        out
    });
    assert_sim_agree(&o);
}

/// Records the packets of one clean X255 handshake.
fn clean_trace() -> Vec<(Dir, Vec<u8>)> {
    let mut trace = Vec::new();
    let (a, b) = pair(KeyAgreement::X255);
    let o = simulate(a, b, &mut |d, _, p| {
        trace.push((d, p.clone()));
        vec![p]
    });
    assert_sim_agree(&o);
    trace
}

#[test]
fn flipping_any_message_byte_fails_or_is_dropped() {
    let trace = clean_trace();
    let mut cases = 0;
    for (k, (_, pkt)) in trace.iter().enumerate() {
        let ty = packet_type(pkt).unwrap();
        // Every byte of the message (the 12-byte header carries no
        // protected data; its CRC is recomputed so tampering gets past it).
        for pos in packet::HEADER_LEN..pkt.len() - packet::CRC_LEN {
            for bit in [0x01u8, 0x80] {
                cases += 1;
                let (a, b) = pair(KeyAgreement::X255);
                let mut tampered_dropped = None;
                let o = simulate(a, b, &mut |_, i, mut p| {
                    if i == k {
                        p[pos] ^= bit;
                        fix_crc(&mut p);
                        tampered_dropped = Some(());
                    }
                    vec![p]
                });
                assert!(tampered_dropped.is_some());
                match (&o.a_secure, &o.b_secure) {
                    (Some(_), Some(_)) => {
                        // Both secure: only possible if the tampered packet
                        // was thrown away and a retransmission got through.
                        assert_sim_agree(&o);
                        let receiver = if trace[k].0 == Dir::AtoB { &o.b } else { &o.a };
                        assert!(
                            receiver.stats().dropped > 0,
                            "{ty:?} byte {pos} accepted silently"
                        );
                    }
                    (Some(_), None) | (None, Some(_)) => {
                        // One side may finish only if the other failed loudly.
                        assert!(
                            o.failed(Dir::AtoB) || o.failed(Dir::BtoA),
                            "{ty:?} byte {pos}: half-secure without failure"
                        );
                    }
                    (None, None) => {}
                }
            }
        }
    }
    assert!(cases > 500);
}

#[test]
fn man_in_the_middle_gets_different_sases_and_is_caught_by_zrtp_hash() {
    // Alice <-> Mallory(as responder) ... Mallory(as initiator) <-> Bob.
    let alice = Endpoint::new(
        Config {
            policy: Policy {
                sas: vec![SasAlgo::B32],
                ..Policy::default()
            },
            ..Config::new(Role::Initiator)
        },
        ZidCache::new(),
    );
    let bob = Endpoint::new(Config::new(Role::Responder), ZidCache::new());
    let bob_hash = bob.hello_hash();
    let m1 = Endpoint::new(Config::new(Role::Responder), ZidCache::new());
    let m2 = Endpoint::new(Config::new(Role::Initiator), ZidCache::new());
    let left = simulate(alice, m1, &mut perfect());
    let right = simulate(m2, bob, &mut perfect());
    let (a, _) = assert_sim_agree(&left);
    let (_, b) = assert_sim_agree(&right);
    assert_ne!(a.sas_value, b.sas_value, "MitM produced equal SAS values");
    assert_ne!(a.srtp, b.srtp);

    // With Bob's zrtp-hash from signalling, Alice refuses Mallory's Hello.
    let alice = Endpoint::new(
        Config {
            peer_hello_hash: Some(bob_hash),
            ..Config::new(Role::Initiator)
        },
        ZidCache::new(),
    );
    let m1 = Endpoint::new(Config::new(Role::Responder), ZidCache::new());
    let o = simulate(alice, m1, &mut perfect());
    assert!(
        o.a_events
            .iter()
            .any(|e| matches!(e, Event::HelloHashMismatch))
    );
    assert!(
        o.a_events
            .iter()
            .any(|e| matches!(e, Event::Failed(Failure::HelloHashMismatch)))
    );
    assert!(o.a_secure.is_none());
}

#[test]
fn correct_zrtp_hash_is_accepted() {
    let bob = Endpoint::new(Config::new(Role::Responder), ZidCache::new());
    let h: HelloHash = bob.hello_hash().to_string().parse().unwrap();
    let alice = Endpoint::new(
        Config {
            peer_hello_hash: Some(h),
            ..Config::new(Role::Initiator)
        },
        ZidCache::new(),
    );
    assert_sim_agree(&simulate(alice, bob, &mut perfect()));
}

#[test]
fn commit_contention_between_sotto_endpoints() {
    let a = Endpoint::new(
        Config {
            commit_after_hello_ack: true,
            ..Config::new(Role::Initiator)
        },
        ZidCache::new(),
    );
    let b = Endpoint::new(
        Config {
            commit_after_hello_ack: true,
            ..Config::new(Role::Initiator)
        },
        ZidCache::new(),
    );
    let mut commits = 0;
    let o = simulate(a, b, &mut |_, _, p| {
        if packet_type(&p) == Some(MessageType::Commit) {
            commits += 1;
        }
        vec![p]
    });
    assert_sim_agree(&o);
    assert!(commits >= 2, "no contention happened");
}

#[test]
fn refused_key_agreement_gets_an_error_code() {
    let a = Endpoint::new(
        Config {
            policy: Policy {
                key_agreements: vec![KeyAgreement::Dh2k],
                ..Policy::default()
            },
            ..Config::new(Role::Initiator)
        },
        ZidCache::new(),
    );
    let b = Endpoint::new(Config::new(Role::Responder), ZidCache::new()); // refuses DH2k
    let o = simulate(a, b, &mut perfect());
    // Alice finds no common key agreement (§4.1.2) and says so with 0x53.
    assert!(
        o.a_events
            .iter()
            .any(|e| matches!(e, Event::Failed(Failure::Local(p)) if p.code() == 0x53)),
        "{:?}",
        o.a_events
    );
    assert!(
        o.b_events
            .iter()
            .any(|e| matches!(e, Event::Failed(Failure::Peer(0x53)))),
        "{:?}",
        o.b_events
    );
    assert!(o.a_secure.is_none() && o.b_secure.is_none());
}

#[test]
fn multistream_keys_a_second_stream_from_the_first() {
    let (a, b) = pair(KeyAgreement::X255);
    let o = simulate(a, b, &mut perfect());
    let (ia, _) = assert_sim_agree(&o);
    let (ka, kb) = (o.a.session_key().unwrap(), o.b.session_key().unwrap());
    let a2 = Endpoint::new(
        Config {
            multistream: Some(ka),
            ..Config::new(Role::Initiator)
        },
        o.a.cache().clone(),
    );
    let b2 = Endpoint::new(
        Config {
            multistream: Some(kb),
            ..Config::new(Role::Responder)
        },
        o.b.cache().clone(),
    );
    let o2 = simulate(a2, b2, &mut perfect());
    let (ja, _) = assert_sim_agree(&o2);
    assert_eq!(ja.suite.key_agreement, KeyAgreement::Mult);
    assert_eq!(ja.sas, ia.sas, "multistream shows the first stream's SAS");
    assert_ne!(ja.srtp, ia.srtp, "video keys differ from audio keys");
}

/// §4.4.3, §4.5.2: ZRTPSess comes from the DH-mode stream once per call
/// and keys every multistream stream, so a stream's session key is the
/// call's whichever stream hands it out (as bzrtp keeps one ZRTPSess per
/// call): a third stream keyed on one side from the second stream and on
/// the other from the first agrees.
#[test]
fn every_stream_hands_out_the_calls_session_key() {
    let (a, b) = pair(KeyAgreement::X255);
    let o = simulate(a, b, &mut perfect());
    let (ia, _) = assert_sim_agree(&o);
    let (a_cache, b_cache) = (o.a.cache().clone(), o.b.cache().clone());
    let stream = |key, role, cache: &ZidCache| {
        let cfg = Config {
            multistream: Some(key),
            ..Config::new(role)
        };
        Endpoint::new(cfg, cache.clone())
    };
    let (ka, kb) = (o.a.session_key().unwrap(), o.b.session_key().unwrap());
    let o2 = simulate(
        stream(ka, Role::Initiator, &a_cache),
        stream(kb.clone(), Role::Responder, &b_cache),
        &mut perfect(),
    );
    assert_sim_agree(&o2);
    let o3 = simulate(
        stream(o2.a.session_key().unwrap(), Role::Initiator, &a_cache),
        stream(kb, Role::Responder, &b_cache),
        &mut perfect(),
    );
    let (ja, _) = assert_sim_agree(&o3);
    assert_eq!(ja.sas, ia.sas);
}

/// The nonce of a multistream Commit packet, if `p` is one.
fn commit_nonce(p: &[u8]) -> Option<[u8; 16]> {
    use sotto_engine::zrtp::message::{CommitMode, Message};
    match Message::parse(packet::parse(p).ok()?.message).ok()? {
        Message::Commit(c) => match c.mode {
            CommitMode::Multistream { nonce } => Some(nonce),
            _ => None,
        },
        _ => None,
    }
}

/// §4.4.3, §5.4: a multistream Commit nonce is used once per ZRTPSess. A
/// third stream's Commit carrying the second stream's nonce (its hash
/// chain otherwise sound) is refused with Error 0x80, whichever stream's
/// copy of the session key each side holds.
#[test]
fn a_multistream_nonce_used_before_in_the_call_is_refused_with_0x80() {
    let (a, b) = pair(KeyAgreement::X255);
    let o = simulate(a, b, &mut perfect());
    assert_sim_agree(&o);
    let (a_cache, b_cache) = (o.a.cache().clone(), o.b.cache().clone());
    let stream = |key, role, cache: &ZidCache| {
        let cfg = Config {
            multistream: Some(key),
            ..Config::new(role)
        };
        Endpoint::new(cfg, cache.clone())
    };
    let (ka, kb) = (o.a.session_key().unwrap(), o.b.session_key().unwrap());
    let mut used = None;
    let o2 = simulate(
        stream(ka, Role::Initiator, &a_cache),
        stream(kb, Role::Responder, &b_cache),
        &mut |_, _, p| {
            used = used.or(commit_nonce(&p));
            vec![p]
        },
    );
    assert_sim_agree(&o2);
    let used = used.expect("a multistream Commit");
    // The third stream: Alice's Commit is made to carry the used nonce.
    let nonce_at = packet::HEADER_LEN + 12 + 32 + 12 + 20;
    let o3 = simulate(
        stream(o2.a.session_key().unwrap(), Role::Initiator, &a_cache),
        stream(o.b.session_key().unwrap(), Role::Responder, &b_cache),
        &mut |d, _, mut p| {
            if d == Dir::AtoB && commit_nonce(&p).is_some() {
                p[nonce_at..nonce_at + 16].copy_from_slice(&used);
                fix_crc(&mut p);
                assert_eq!(commit_nonce(&p), Some(used));
            }
            vec![p]
        },
    );
    assert!(o3.a_secure.is_none() && o3.b_secure.is_none());
    let failed = |events: &[Event], how: Failure| {
        events
            .iter()
            .any(|e| matches!(e, Event::Failed(f) if *f == how))
    };
    let reuse = Failure::Local(ProtocolError::NonceReuse);
    assert!(failed(&o3.b_events, reuse), "{:?}", o3.b_events);
    assert!(
        failed(&o3.a_events, Failure::Peer(0x80)),
        "{:?}",
        o3.a_events
    );
}

#[test]
fn go_clear_is_refused_and_ping_answered() {
    use sotto_engine::zrtp::message::{Message, Ping};
    let (a, b) = pair(KeyAgreement::X255);
    let mut o = simulate(a, b, &mut perfect());
    assert_sim_agree(&o);
    let now = std::time::Instant::now();
    let goclear = packet::build(0x7000, 1, &Message::GoClear([0; 8]).encode());
    o.b.handle_input(now, &goclear).unwrap();
    let reply = o.b.poll_transmit().unwrap();
    let raw = packet::parse(&reply).unwrap();
    assert_eq!(Message::parse(raw.message).unwrap(), Message::Error(0x100));
    assert!(matches!(o.b.poll_event(), Some(Event::GoClearRefused)));
    assert!(o.b.is_secure());
    let ping = packet::build(
        0x7001,
        0xabcd,
        &Message::Ping(Ping {
            version: *b"1.10",
            endpoint_hash: [5; 8],
        })
        .encode(),
    );
    o.b.handle_input(now, &ping).unwrap();
    let raw_reply = o.b.poll_transmit().unwrap();
    match Message::parse(packet::parse(&raw_reply).unwrap().message).unwrap() {
        Message::PingAck(p) => assert_eq!((p.received_hash, p.ssrc), ([5; 8], 0xabcd)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn state_machine_fuzz_entry_survives_random_input() {
    let mut rng = Rng(42);
    for len in 0..400usize {
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        sotto_engine::zrtp::fuzz_endpoint(&data);
        sotto_engine::zrtp::fuzz_parse(&data);
    }
}

#[test]
fn zrtp_hash_learnt_after_the_hello_still_catches_a_man_in_the_middle() {
    // The caller learns Bob's zrtp-hash from the answer, which can arrive
    // after Mallory's Hello (media before the answer): the late hash must
    // be checked against the Hello already received.
    let bob_hash = Endpoint::new(Config::new(Role::Responder), ZidCache::new()).hello_hash();
    let now = std::time::Instant::now();
    let mut alice = Endpoint::new(Config::new(Role::Initiator), ZidCache::new());
    let mut m1 = Endpoint::new(Config::new(Role::Responder), ZidCache::new());
    alice.start(now);
    m1.start(now);
    let hello = m1.poll_transmit().unwrap();
    alice.handle_input(now, &hello).unwrap();
    alice.set_peer_hello_hash(bob_hash);
    let o = simulate(alice, m1, &mut perfect());
    assert!(
        o.a_events
            .iter()
            .any(|e| matches!(e, Event::HelloHashMismatch)),
        "{:?}",
        o.a_events
    );
    assert!(o.a_secure.is_none());

    // Learnt only once the session is already secure: still loud, and the
    // session no longer counts as secure nor keys a multistream session.
    let bob_hash = Endpoint::new(Config::new(Role::Responder), ZidCache::new()).hello_hash();
    let (a, m1) = pair(KeyAgreement::X255);
    let mut o = simulate(a, m1, &mut perfect());
    let peer = assert_sim_agree(&o).0.peer_zid;
    assert!(o.a.cache().get(&peer).is_some());
    o.a.set_peer_hello_hash(bob_hash);
    // The secret retained from Mallory's session is forgotten again.
    assert!(o.a.cache().get(&peer).is_none());
    let events: Vec<Event> = std::iter::from_fn(|| o.a.poll_event()).collect();
    assert!(
        events.iter().any(|e| matches!(e, Event::HelloHashMismatch)),
        "{events:?}"
    );
    assert!(!o.a.is_secure() && o.a.session_key().is_none());

    // The right hash, learnt late, changes nothing.
    let (a, b) = pair(KeyAgreement::X255);
    let b_hash = b.hello_hash();
    let mut o = simulate(a, b, &mut perfect());
    assert_sim_agree(&o);
    o.a.set_peer_hello_hash(b_hash);
    assert!(o.a.poll_event().is_none() && o.a.is_secure());
}

#[test]
fn a_tampered_hello_or_commit_is_a_loud_failure_on_both_sides() {
    // An on-path attacker alters a Hello (one byte of the client id) or the
    // Commit (one byte of hvi), CRC fixed. Once the hash chain reveals the
    // key of that message's MAC, the MAC fails under a genuine key: proof
    // of tampering, which must end the session with an Error on both
    // sides, not stall into a timeout (or, for the responder, wait
    // forever).
    let cases = [
        (Dir::AtoB, MessageType::Hello, 12 + 4),
        (Dir::BtoA, MessageType::Hello, 12 + 4),
        (Dir::AtoB, MessageType::Commit, 12 + 32 + 12 + 20),
    ];
    for (dir, ty, offset) in cases {
        let (a, b) = pair(KeyAgreement::X255);
        let mut tampered = false;
        let o = simulate(a, b, &mut |d, _, mut p| {
            if d == dir && packet_type(&p) == Some(ty) {
                p[packet::HEADER_LEN + offset] ^= 0x01;
                fix_crc(&mut p);
                tampered = true;
            }
            vec![p]
        });
        assert!(tampered);
        assert!(o.a_secure.is_none() && o.b_secure.is_none());
        for events in [&o.a_events, &o.b_events] {
            assert!(
                events.iter().any(|e| matches!(
                    e,
                    Event::Failed(Failure::Local(_)) | Event::Failed(Failure::Peer(_))
                )),
                "{dir:?} {ty:?}: {events:?}"
            );
        }
    }
}

#[test]
fn multistream_works_with_a_policy_that_does_not_list_mult() {
    // Policy::key_agreements says Mult "is added when needed": a policy
    // naming only DH key agreements must still key a multistream session.
    let policy = Policy {
        key_agreements: vec![KeyAgreement::X255],
        ..Policy::default()
    };
    let cfg = |role| Config {
        policy: policy.clone(),
        ..Config::new(role)
    };
    let o = simulate(
        Endpoint::new(cfg(Role::Initiator), ZidCache::new()),
        Endpoint::new(cfg(Role::Responder), ZidCache::new()),
        &mut perfect(),
    );
    assert_sim_agree(&o);
    let (ka, kb) = (o.a.session_key().unwrap(), o.b.session_key().unwrap());
    let o2 = simulate(
        Endpoint::new(
            Config {
                multistream: Some(ka),
                ..cfg(Role::Initiator)
            },
            o.a.cache().clone(),
        ),
        Endpoint::new(
            Config {
                multistream: Some(kb),
                ..cfg(Role::Responder)
            },
            o.b.cache().clone(),
        ),
        &mut perfect(),
    );
    let (ja, _) = assert_sim_agree(&o2);
    assert_eq!(ja.suite.key_agreement, KeyAgreement::Mult);
}
