//! Whole calls in the simulator over a clean direct path: setup, SAS,
//! the no-media-before-Secure rule, hang-up, decline, zrtp-hash and cache
//! mismatches; a relay-only call through sotto-relay's TURN core; and
//! sound cards whose clocks are not the system's.

mod relay_support;

use relay_support::{CoreRelay, RelayCounts};
use sotto_engine::call::wav::load_48k_mono;
use sotto_engine::call::{
    Call, CallConfig, CallSignal, ConfigError, EndReason, Event, MediaError, PathKind,
};
use sotto_engine::demux::PacketKind;
use sotto_engine::sim::audio::{Similarity, compare};
use sotto_engine::sim::{DeviceClock, LinkSchedule, Network, Record, Side, Sim, SimError};
use sotto_engine::zrtp::ZidCache;
use sotto_jitter::link::mahimahi::{MahimahiConfig, MahimahiLink, MahimahiTrace};
use sotto_jitter::{JitterConfig, JitterStats};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

fn net() -> Network {
    Network::symmetric(LinkSchedule::fixed(Duration::from_millis(30)))
}

fn tone(seconds: usize) -> Vec<i16> {
    (0..48_000 * seconds)
        .map(|i| ((i as f64 * 0.03).sin() * 6000.0) as i16)
        .collect()
}

/// Places, rings, answers and runs until both sides are Secure.
fn connected(a: CallConfig, b: CallConfig) -> Sim {
    connected_over(a, b, net())
}

/// [`connected`] over `network`.
fn connected_over(a: CallConfig, b: CallConfig, network: Network) -> Sim {
    let mut sim = Sim::new(Instant::now(), a, b, network).unwrap();
    sim.set_audio(Side::A, tone(2));
    sim.set_audio(Side::B, tone(2));
    sim.connect(Duration::from_secs(2), Duration::from_secs(10))
        .unwrap();
    sim
}

fn ended(sim: &Sim, side: Side) -> Option<EndReason> {
    sim.peer(side).events().find_map(|e| match e {
        Event::Ended { reason } => Some(*reason),
        _ => None,
    })
}

#[test]
fn call_reaches_secure_with_equal_sas_and_no_rtp_before_it() {
    let mut sim = connected(CallConfig::default(), CallConfig::default());
    let (a, b) = (sim.peer(Side::A), sim.peer(Side::B));
    let sas = a.sas().unwrap();
    assert_eq!(Some(sas.clone()), b.sas());
    assert_eq!(sas.len(), 4, "B32 SAS: {sas}");
    // Both rang (caller: remote ringing), connected on a direct path.
    for (p, incoming) in [(a, false), (b, true)] {
        assert!(
            p.events()
                .any(|e| matches!(e, Event::Ringing { incoming: i } if *i == incoming))
        );
        assert!(p.events().any(|e| matches!(e, Event::Connected)));
        assert!(
            p.events()
                .any(|e| matches!(e, Event::PathChanged(sotto_engine::call::PathKind::Direct)))
        );
    }
    sim.run_for(Duration::from_secs(3));
    for side in [Side::A, Side::B] {
        let p = sim.peer(side);
        // Every datagram that left before SecureUp was STUN or ZRTP:
        // first byte 0-3 or 16-19 (RFC 7983), never RTP/RTCP (128-191).
        let mut secure = false;
        let (mut before, mut after_rtp) = (0, 0);
        for r in &p.log {
            match r {
                Record::Event {
                    event: Event::SecureUp { .. },
                    ..
                } => secure = true,
                Record::Sent {
                    first_byte, kind, ..
                } => {
                    if secure {
                        after_rtp += usize::from(*kind == PacketKind::Rtp);
                    } else {
                        before += 1;
                        assert!(
                            matches!(first_byte, 0..=3 | 16..=19),
                            "{side:?} sent first byte {first_byte} before Secure"
                        );
                    }
                }
                _ => {}
            }
        }
        assert!(secure && before > 0);
        assert!(
            after_rtp > 100,
            "{side:?}: only {after_rtp} RTP after Secure"
        );
        // Audio pushed before Secure was dropped, not sent in the clear.
        assert!(p.call.audio_dropped() > 0);
    }
}

#[test]
fn hang_up_ends_both_sides() {
    let mut sim = connected(CallConfig::default(), CallConfig::default());
    sim.run_for(Duration::from_secs(1));
    sim.hang_up(Side::B);
    assert!(sim.run_until(Duration::from_secs(20), |s| ended(s, Side::A).is_some()));
    assert_eq!(ended(&sim, Side::B), Some(EndReason::LocalHangup));
    assert_eq!(ended(&sim, Side::A), Some(EndReason::RemoteHangup));
    assert!(sim.peer(Side::A).call.is_ended() && sim.peer(Side::B).call.is_ended());
    // Nothing more leaves either side once both have ended.
    let sent = |s: &Sim, side| s.peer(side).wire.sent;
    let (a, b) = (sent(&sim, Side::A), sent(&sim, Side::B));
    sim.run_for(Duration::from_secs(5));
    assert_eq!((a, b), (sent(&sim, Side::A), sent(&sim, Side::B)));
}

#[test]
fn decline_and_unanswered_calls_end_with_reasons() {
    let mut sim = Sim::new(
        Instant::now(),
        CallConfig::default(),
        CallConfig::default(),
        net(),
    )
    .unwrap();
    sim.place().unwrap();
    assert!(sim.run_until(Duration::from_secs(2), |s| s.peer(Side::B).is_ringing()));
    let now = sim.now();
    sim.peer_mut(Side::B).call.decline(now).unwrap();
    assert!(sim.run_until(Duration::from_secs(3), |s| ended(s, Side::A).is_some()));
    assert_eq!(ended(&sim, Side::A), Some(EndReason::RemoteDeclined));

    let cfg = CallConfig {
        ring_timeout: Duration::from_secs(5),
        ..CallConfig::default()
    };
    let mut sim = Sim::new(Instant::now(), cfg, CallConfig::default(), net()).unwrap();
    sim.place().unwrap();
    assert!(sim.run_until(Duration::from_secs(30), |s| ended(s, Side::B).is_some()));
    assert_eq!(ended(&sim, Side::A), Some(EndReason::NoAnswer));
    assert_eq!(ended(&sim, Side::B), Some(EndReason::RemoteHangup));
    assert!(sim.peer(Side::A).sas().is_none());
}

#[test]
fn tampered_zrtp_hash_in_the_offer_raises_hello_hash_mismatch() {
    let mut sim = Sim::new(
        Instant::now(),
        CallConfig::default(),
        CallConfig::default(),
        net(),
    )
    .unwrap();
    // A man in the middle of signalling swaps the caller's zrtp-hash.
    sim.set_signal_hook(Box::new(|from, msg| {
        if let (Side::A, CallSignal::Offer(d)) = (from, msg) {
            let mut h = d.zrtp_hash.clone().into_bytes();
            let last = h.len() - 1;
            h[last] = if h[last] == b'0' { b'1' } else { b'0' };
            d.zrtp_hash = String::from_utf8(h).unwrap();
        }
    }));
    sim.answer_when_ringing(Duration::from_secs(2)).unwrap();
    assert!(
        sim.run_until(Duration::from_secs(40), |s| ended(s, Side::B).is_some()
            && ended(s, Side::A).is_some())
    );
    let b = sim.peer(Side::B);
    assert!(b.events().any(|e| matches!(e, Event::HelloHashMismatch)));
    assert_eq!(ended(&sim, Side::B), Some(EndReason::HelloHashMismatch));
    assert!(sim.peer(Side::A).sas().is_none() && b.sas().is_none());
    assert_eq!(ended(&sim, Side::A), Some(EndReason::RemoteHangup));
    // And no media ever left either side.
    for side in [Side::A, Side::B] {
        assert!(sim.peer(side).log.iter().all(|r| !matches!(
            r,
            Record::Sent {
                kind: PacketKind::Rtp | PacketKind::Rtcp,
                ..
            }
        )));
    }
}

#[test]
fn second_call_with_a_lost_retained_secret_raises_cache_mismatch() {
    let (ca, cb) = (ZidCache::new(), ZidCache::new());
    let cfg = |c: &ZidCache| CallConfig {
        zid_cache: c.clone(),
        ..CallConfig::default()
    };
    // First call: no history, no mismatch; both caches learn rs1.
    let mut sim = connected(cfg(&ca), cfg(&cb));
    let first_sas = sim.peer(Side::A).sas();
    for side in [Side::A, Side::B] {
        assert!(
            !sim.peer(side)
                .events()
                .any(|e| matches!(e, Event::CacheMismatch))
        );
    }
    sim.hang_up(Side::A);
    sim.run_for(Duration::from_secs(1));
    let ca = sim.peer(Side::A).call.zid_cache().clone();
    let mut cb = sim.peer(Side::B).call.zid_cache().clone();
    assert_eq!(ca.len(), 1);
    assert_eq!(cb.len(), 1);

    // Second call with intact caches: continuity, no mismatch.
    let mut sim = connected(cfg(&ca), cfg(&cb));
    assert!(
        !sim.peer(Side::A)
            .events()
            .any(|e| matches!(e, Event::CacheMismatch))
    );
    sim.hang_up(Side::A);
    sim.run_for(Duration::from_secs(1));
    let ca = sim.peer(Side::A).call.zid_cache().clone();

    // Third call: B lost its secret for A (a new phone, or an attacker
    // with B's ZID): A expected one and must say so loudly.
    let a_zid = ca.self_zid();
    cb.remove(&a_zid);
    let sim = connected(cfg(&ca), cfg(&cb));
    let a = sim.peer(Side::A);
    assert!(a.events().any(|e| matches!(e, Event::CacheMismatch)));
    assert!(a.events().any(|e| matches!(
        e,
        Event::SecureUp {
            sas_verified: false,
            ..
        }
    )));
    assert_eq!(a.sas(), sim.peer(Side::B).sas());
    assert_ne!(
        a.sas(),
        first_sas,
        "fresh DH, fresh SAS (with high probability)"
    );
}

#[test]
fn sas_confirmed_by_both_is_verified_on_the_next_call() {
    let (ca, cb) = (ZidCache::new(), ZidCache::new());
    let cfg = |c: &ZidCache| CallConfig {
        zid_cache: c.clone(),
        ..CallConfig::default()
    };
    let mut sim = connected(cfg(&ca), cfg(&cb));
    let verified = |s: &Sim, side| {
        s.peer(side).events().any(|e| {
            matches!(
                e,
                Event::SecureUp {
                    sas_verified: true,
                    ..
                }
            )
        })
    };
    assert!(!verified(&sim, Side::A) && !verified(&sim, Side::B));
    let now = sim.now();
    for side in [Side::A, Side::B] {
        sim.peer_mut(side).call.confirm_sas(now, true).unwrap();
    }
    sim.hang_up(Side::A);
    sim.run_for(Duration::from_secs(1));
    let (ca, cb) = (
        sim.peer(Side::A).call.zid_cache().clone(),
        sim.peer(Side::B).call.zid_cache().clone(),
    );
    let sim = connected(cfg(&ca), cfg(&cb));
    assert!(verified(&sim, Side::A) && verified(&sim, Side::B));
}

/// RFC 6189 §4.6.1.1 at the Call level: after a cache mismatch, the cache
/// the call hands back (what the driver returns at the end and the SDK and
/// softphone save) keeps the old secret unless the SAS is confirmed: a
/// rejected SAS, or one never confirmed, leaves it as before the call, so
/// the same impostor is flagged again next time.
#[test]
fn a_cache_mismatch_changes_the_cache_only_once_the_sas_is_confirmed() {
    let cfg = |c: &ZidCache| CallConfig {
        zid_cache: c.clone(),
        ..CallConfig::default()
    };
    let mut sim = connected(cfg(&ZidCache::new()), cfg(&ZidCache::new()));
    sim.hang_up(Side::A);
    sim.run_for(Duration::from_secs(1));
    let ca = sim.peer(Side::A).call.zid_cache().clone();
    let cb = sim.peer(Side::B).call.zid_cache().clone();
    let (a_zid, b_zid) = (ca.self_zid(), cb.self_zid());
    let mismatch = |s: &Sim| {
        s.peer(Side::A)
            .events()
            .any(|e| matches!(e, Event::CacheMismatch))
    };
    // B's ZID without B's secrets (an impostor, or B after a reset).
    let mut impostor = cb.clone();
    impostor.remove(&a_zid);
    for confirm in [None, Some(false), Some(true)] {
        let mut sim = connected(cfg(&ca), cfg(&impostor));
        assert!(mismatch(&sim), "{confirm:?}");
        if let Some(ok) = confirm {
            let now = sim.now();
            sim.peer_mut(Side::A).call.confirm_sas(now, ok).unwrap();
        }
        sim.hang_up(Side::A);
        sim.run_for(Duration::from_secs(1));
        let after = sim.peer(Side::A).call.zid_cache().clone();
        let impostor_after = sim.peer(Side::B).call.zid_cache().clone();
        let sim = connected(cfg(&after), cfg(&impostor_after));
        if confirm == Some(true) {
            assert_ne!(after.get(&b_zid), ca.get(&b_zid));
            assert!(!mismatch(&sim), "verified: continuity");
        } else {
            assert_eq!(after.get(&b_zid), ca.get(&b_zid), "{confirm:?}");
            assert!(mismatch(&sim), "{confirm:?}: no warning the second time");
        }
    }
}

#[test]
fn rejecting_the_sas_ends_the_call() {
    let mut sim = connected(CallConfig::default(), CallConfig::default());
    let now = sim.now();
    sim.peer_mut(Side::B).call.confirm_sas(now, false).unwrap();
    // The driver would do this after the user's key press; run the sim on.
    sim.run_until(Duration::from_secs(20), |s| ended(s, Side::A).is_some());
    assert_eq!(ended(&sim, Side::B), Some(EndReason::SasRejected));
    assert_eq!(ended(&sim, Side::A), Some(EndReason::RemoteHangup));
}

#[test]
fn muted_side_sends_only_dtx() {
    let mut sim = connected(CallConfig::default(), CallConfig::default());
    sim.run_for(Duration::from_secs(2));
    let rtp = |s: &Sim, side| s.peer(side).wire.rtp_sent;
    sim.peer_mut(Side::A).call.set_muted(true);
    let (a0, b0) = (rtp(&sim, Side::A), rtp(&sim, Side::B));
    sim.run_for(Duration::from_secs(5));
    let (a1, b1) = (rtp(&sim, Side::A), rtp(&sim, Side::B));
    // B talks on (about 250 packets in 5 s); muted A sends a few DTX
    // frames and the RTCP-free gaps of silence.
    assert!(b1 - b0 > 200, "{}", b1 - b0);
    assert!(a1 - a0 < (b1 - b0) / 5, "muted A sent {}", a1 - a0);
    sim.peer_mut(Side::A).call.set_muted(false);
    sim.run_for(Duration::from_secs(2));
    assert!(rtp(&sim, Side::A) - a1 > 80);
}

#[test]
fn a_black_hole_times_out_without_media() {
    let lost = LinkSchedule::from_deliveries(&[sotto_jitter::link::Delivery {
        seq: 0,
        send: Duration::ZERO,
        arrival: None,
    }]);
    let cfg = || CallConfig {
        setup_timeout: Duration::from_secs(8),
        ..CallConfig::default()
    };
    let mut sim = Sim::new(Instant::now(), cfg(), cfg(), Network::symmetric(lost)).unwrap();
    sim.answer_when_ringing(Duration::from_secs(2)).unwrap();
    assert!(
        sim.run_until(Duration::from_secs(60), |s| ended(s, Side::A).is_some()
            && ended(s, Side::B).is_some())
    );
    for side in [Side::A, Side::B] {
        let r = ended(&sim, side).unwrap();
        assert!(
            matches!(
                r,
                EndReason::SetupTimeout | EndReason::ConnectionFailed | EndReason::RemoteHangup
            ),
            "{side:?}: {r:?}"
        );
        assert!(sim.peer(side).sas().is_none());
        assert!(sim.peer(side).log.iter().all(|r| !matches!(
            r,
            Record::Sent {
                kind: PacketKind::Rtp | PacketKind::Rtcp | PacketKind::Zrtp,
                ..
            }
        )));
    }
}

#[test]
fn stats_every_second_with_w3c_names() {
    // RTT needs an SR and the RR about it: report every second.
    let cfg = || {
        let mut c = CallConfig {
            rtcp_interval: Duration::from_secs(1),
            ..CallConfig::default()
        };
        c.audio.bitrate = 32_000;
        c
    };
    // 33 ms, off the 10 ms pull grid: packets wait in the buffer.
    let network = Network::symmetric(LinkSchedule::fixed(Duration::from_millis(33)));
    let mut sim = connected_over(cfg(), cfg(), network);
    sim.run_for(Duration::from_secs(5));
    let stats: Vec<_> = sim
        .peer(Side::B)
        .events()
        .filter_map(|e| match e {
            Event::Stats(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert!((5..=7).contains(&stats.len()), "{}", stats.len());
    let last = stats.last().unwrap().w3c();
    for name in [
        "inbound-rtp.packetsReceived",
        "inbound-rtp.jitterBufferDelay",
        "inbound-rtp.jitterBufferEmittedCount",
        "inbound-rtp.concealedSamples",
        "outbound-rtp.packetsSent",
        "outbound-rtp.targetBitrate",
        "remote-inbound-rtp.roundTripTime",
    ] {
        let v = last.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
        assert!(
            v.is_some_and(|v| v > 0.0 || name.contains("concealed")),
            "{name}: {v:?}"
        );
    }
    assert!(last.contains(&("outbound-rtp.targetBitrate".into(), 32_000.0)));
    // Counters only grow.
    for w in stats.windows(2) {
        assert!(w[1].inbound.packets_received >= w[0].inbound.packets_received);
        assert!(w[1].outbound.packets_sent >= w[0].outbound.packets_sent);
    }
}

#[test]
fn settings_out_of_range_are_refused_when_the_call_is_made() {
    let now = Instant::now();
    let with = |f: fn(&mut CallConfig)| {
        let mut c = CallConfig::default();
        f(&mut c);
        c
    };
    let codec: fn(&ConfigError) -> bool = |e| matches!(e, ConfigError::Audio(MediaError::Codec(_)));
    let jitter: fn(&ConfigError) -> bool =
        |e| matches!(e, ConfigError::Audio(MediaError::Jitter(_)));
    for (bad, refused) in [
        (with(|c| c.audio.bitrate = 100), codec),
        (with(|c| c.audio.complexity = 11), codec),
        (with(|c| c.audio.jitter.max_packets = 0), jitter),
        (with(|c| c.audio.jitter.outage_hold_ms = f64::NAN), jitter),
        // A zero interval would make the call's timer due at every turn
        // (the simulator's clock stood still).
        (with(|c| c.stats_interval = Duration::ZERO), |e| {
            matches!(e, ConfigError::Zero("stats_interval"))
        }),
        // A zero timeout would end the call at its first turn.
        (with(|c| c.ring_timeout = Duration::ZERO), |e| {
            matches!(e, ConfigError::Zero("ring_timeout"))
        }),
        (with(|c| c.setup_timeout = Duration::ZERO), |e| {
            matches!(e, ConfigError::Zero("setup_timeout"))
        }),
        (with(|c| c.media_timeout = Duration::ZERO), |e| {
            matches!(e, ConfigError::Zero("media_timeout"))
        }),
    ] {
        for e in [
            Call::outgoing(now, bad.clone()).unwrap_err(),
            Call::incoming(now, bad.clone()).unwrap_err(),
        ] {
            assert!(refused(&e), "{e}");
        }
        // The simulator refuses them too, before any packet.
        match Sim::new(now, bad, CallConfig::default(), net()) {
            Err(SimError::Call(e)) => assert!(refused(&e), "{e}"),
            _ => panic!("the simulator took a config that calls refuse"),
        }
    }
}

/// 120 s of a link with a 30 ms delay that carries nothing sent in `out`.
fn outage(out: std::ops::Range<Duration>) -> Network {
    Network::symmetric(LinkSchedule::with_outage(
        Duration::from_millis(30),
        out,
        Duration::from_secs(120),
    ))
}

#[test]
fn a_peer_that_vanishes_after_secure_ends_the_call_by_media_timeout() {
    let cfg = || CallConfig {
        media_timeout: Duration::from_secs(10),
        ..CallConfig::default()
    };
    let mut sim = connected_over(cfg(), cfg(), outage(Duration::from_secs(5)..Duration::MAX));
    // Both muted: DTX and RTCP alone keep a silent call up.
    sim.peer_mut(Side::A).call.set_muted(true);
    sim.peer_mut(Side::B).call.set_muted(true);
    sim.run_until(Duration::from_millis(4_900), |_| false);
    assert!(!sim.peer(Side::A).call.is_ended() && !sim.peer(Side::B).call.is_ended());
    // Then the network is gone for good, and neither side hangs up.
    assert!(
        sim.run_until(Duration::from_secs(30), |s| ended(s, Side::A).is_some()
            && ended(s, Side::B).is_some())
    );
    for side in [Side::A, Side::B] {
        assert_eq!(ended(&sim, side), Some(EndReason::MediaTimeout), "{side:?}");
    }
    // Not before the timeout after the last packet: DTX sends one at
    // least every 400 ms, so the last one came after 4.6 s.
    assert!(
        sim.elapsed() >= Duration::from_millis(14_600),
        "{:?}",
        sim.elapsed()
    );
    assert!(
        sim.elapsed() <= Duration::from_millis(15_100),
        "{:?}",
        sim.elapsed()
    );
}

#[test]
fn media_resumes_after_a_long_outage_through_an_ice_restart() {
    // 20 s of network, then 25.3 s of nothing: consent was last
    // refreshed at 15 s, so it is lost at 45 s; the caller's ICE restarts
    // through the calls' signalling, and its checks get through once the
    // network is back (they go on for about 39.5 s: `ice_sim.rs` has the
    // network back later, up to the media timeout).
    let net = outage(Duration::from_secs(20)..Duration::from_millis(45_300));
    let mut sim = Sim::new(
        Instant::now(),
        CallConfig::default(),
        CallConfig::default(),
        net,
    )
    .unwrap();
    sim.set_audio(Side::A, tone(2));
    sim.set_audio(Side::B, tone(2));
    sim.connect(Duration::from_secs(2), Duration::from_secs(10))
        .unwrap();
    let sas = sim.peer(Side::A).sas();
    let received = |s: &Sim| s.peer(Side::B).call.stats().inbound.packets_received;
    sim.run_until(Duration::from_secs(20), |_| false);
    let before = received(&sim);
    sim.run_until(Duration::from_millis(45_300), |_| false);
    assert!(received(&sim) - before < 10, "the outage let media through");
    let at_45 = received(&sim);
    sim.run_until(Duration::from_secs(75), |_| false);
    let ice_signals = sim
        .peer(Side::A)
        .events()
        .filter(|e| matches!(e, Event::Signal(CallSignal::Ice(_))))
        .count();
    println!(
        "after the outage: {} packets, {ice_signals} ICE signals from A",
        received(&sim) - at_45
    );
    assert!(!sim.peer(Side::A).call.is_ended() && !sim.peer(Side::B).call.is_ended());
    assert!(ice_signals >= 2, "no ICE restart went through signalling");
    assert!(received(&sim) - at_45 > 1000, "media did not resume");
    // Same ZRTP session: no new handshake, same SAS.
    assert_eq!(sim.peer(Side::A).sas(), sas);
}

#[test]
fn wrong_frame_sizes_are_refused_before_and_after_secure() {
    let mut sim = Sim::new(
        Instant::now(),
        CallConfig::default(),
        CallConfig::default(),
        net(),
    )
    .unwrap();
    let bad = vec![0i16; 500];
    let now = Instant::now();
    assert!(sim.peer_mut(Side::A).call.push_audio(now, &bad).is_err());
    let mut sim = connected(CallConfig::default(), CallConfig::default());
    let call = &mut sim.peer_mut(Side::A).call;
    assert!(call.push_audio(now, &bad).is_err());
    assert!(call.push_audio(now, &[0; 960]).is_ok() && call.push_audio(now, &[0; 480]).is_ok());
}

fn speech(rel: &str) -> Vec<i16> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/speech");
    load_48k_mono(dir.join(rel)).unwrap()
}

/// Speech each way (A and B get different clips): place, ring, answer,
/// until both are Secure; returns when that was.
fn speech_until_secure(sim: &mut Sim) -> Duration {
    sim.set_audio(Side::A, speech("asterisk_en_16k_g722dec/dir-intro.wav"));
    sim.set_audio(Side::B, speech("pesq_repo/speech.wav"));
    sim.connect(Duration::from_secs(3), Duration::from_secs(15))
        .unwrap();
    sim.elapsed()
}

/// How A and B hear the other's speech since `from` (before Secure, audio
/// is dropped, not sent).
fn hearing(sim: &Sim, from: Duration) -> [Similarity; 2] {
    [Side::A, Side::B].map(|side| {
        let from = from.as_millis() as usize * 48;
        let q = compare(
            &sim.peer(side.other()).audio.sent[from..],
            &sim.peer(side).audio.received[from..],
            Duration::from_millis(600),
        );
        println!("{side:?} hears: {q:?}");
        q
    })
}

/// Two relay-only sides over `net` and sotto-relay's core, 20 ms from
/// each; and what the relay did.
fn relay_only_sim(net: Network) -> (Sim, Rc<RefCell<RelayCounts>>) {
    let t0 = Instant::now();
    let relay = CoreRelay::new(t0, 49152);
    let counts = relay.counts();
    let cfg = || CallConfig {
        relay_only: true,
        ..CallConfig::default()
    };
    let hop = Duration::from_millis(20);
    let sim = Sim::new_relayed(t0, cfg(), cfg(), net, Box::new(relay), hop).unwrap();
    (sim, counts)
}

/// A relay-only call over `net` through sotto-relay's core (20 ms hop
/// back to each side), `seconds` of speech each way after Secure. Checks
/// what must hold on any link: equal SAS, only the relayed path, two
/// allocations, nothing refused by the relay, every RTP packet the links
/// delivered relayed both ways and received. Returns how each side heard
/// the other.
fn relayed_call(net: Network, seconds: u64) -> [Similarity; 2] {
    let (mut sim, counts) = relay_only_sim(net);
    let secure_at = speech_until_secure(&mut sim);
    println!("relayed setup (offer to both secure, virtual): {secure_at:?}");
    assert_eq!(sim.peer(Side::A).sas(), sim.peer(Side::B).sas());
    let at_secure = *counts.borrow();
    sim.run_for(Duration::from_secs(seconds));

    let relayed = *counts.borrow();
    println!("relay: {relayed:?}");
    assert_eq!(relayed.allocations, 2, "one allocation per side");
    // The calls' TURN clients never sent what the relay refuses (data
    // before a permission, unbound channels, ...).
    assert!(
        relayed.drops.iter().all(|&d| d == 0),
        "relay drops: {:?}",
        relayed.drops
    );
    let mut delivered = 0;
    for side in [Side::A, Side::B] {
        let p = sim.peer(side);
        let paths: Vec<PathKind> = p
            .events()
            .filter_map(|e| match e {
                Event::PathChanged(k) => Some(*k),
                _ => None,
            })
            .collect();
        assert_eq!(paths, [PathKind::Relay], "{side:?}");
        let last = p
            .events()
            .filter_map(|e| match e {
                Event::Stats(s) => Some(s),
                _ => None,
            })
            .last()
            .expect("stats events");
        assert!(last.candidate_pair.relayed);
        let now = p.call.stats();
        assert_eq!(now.inbound.srtp_rejected, 0);
        // The sender's link is the only lossy leg: what it delivered to the
        // relay reached this side (a few may still be in flight, or have
        // come before this side was Secure).
        let w = sim.peer(side.other()).wire;
        let got = now.inbound.packets_received;
        println!(
            "{side:?} received {got} of {} RTP, link lost {}",
            w.rtp_sent, w.rtp_lost
        );
        assert!(got <= w.rtp_sent - w.rtp_lost, "{side:?}");
        assert!(got + 10 >= w.rtp_sent - w.rtp_lost, "{side:?}");
        delivered += w.rtp_sent - w.rtp_lost;
    }
    // Each delivered RTP packet crossed the relay once in (client to
    // peer, from one allocation) and once out (peer to client, at the
    // other).
    let (c2p, p2c) = (relayed.c2p - at_secure.c2p, relayed.p2c - at_secure.p2c);
    assert!(c2p + 10 >= delivered, "{c2p} taken in for {delivered} RTP");
    assert!(
        p2c + 10 >= delivered,
        "{p2c} handed out for {delivered} RTP"
    );
    hearing(&sim, secure_at)
}

/// A relay whose policy refuses the peers (sotto-relay's default denies
/// private ranges, where the simulated hosts live): no relayed path can
/// come up, and each side is told why, once, instead of only timing out.
#[test]
fn a_relay_that_refuses_the_peer_is_reported() {
    use sotto_relay::policy::PeerPolicy;
    let t0 = Instant::now();
    let relay = CoreRelay::with_policy(t0, 49152, PeerPolicy::new(vec![], vec![]));
    let cfg = || CallConfig {
        relay_only: true,
        ..CallConfig::default()
    };
    let hop = Duration::from_millis(20);
    let mut sim = Sim::new_relayed(t0, cfg(), cfg(), net(), Box::new(relay), hop).unwrap();
    sim.answer_when_ringing(Duration::from_secs(2)).unwrap();
    sim.run_for(Duration::from_secs(40));
    for side in [Side::A, Side::B] {
        let p = sim.peer(side);
        let refused: Vec<&String> = p
            .events()
            .filter_map(|e| match e {
                Event::ServerFailed { reason, .. } => Some(reason),
                _ => None,
            })
            .collect();
        assert_eq!(refused.len(), 1, "{side:?}: {refused:?}");
        assert!(refused[0].contains("403"), "{side:?}: {refused:?}");
        assert!(!p.events().any(|e| matches!(e, Event::SecureUp { .. })));
        assert!(ended(&sim, side).is_some(), "{side:?} still up");
    }
}

#[test]
fn relay_only_call_goes_through_the_relay_with_equal_sas_and_continuous_media() {
    for q in relayed_call(net(), 10) {
        // The speech rhythm (5 ms envelopes) is what survives Opus and the
        // jitter buffer on both clips; the waveform correlation of the
        // pesq clip is low on a direct path too.
        assert!(
            q.windows >= 10 && q.median_envelope_correlation > 0.8,
            "{q:?}"
        );
    }
}

/// One direction of the ATT LTE driving trace (mahimahi; testdata/NOTICE.md)
/// as a FIFO bottleneck.
fn lte(file: &str, offset: u64, duration: Duration) -> LinkSchedule {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/traces/mahimahi");
    let trace = MahimahiTrace::from_path(dir.join(file)).unwrap();
    let cfg = MahimahiConfig {
        start_offset: Duration::from_secs(offset),
        seed: offset,
        ..MahimahiConfig::default()
    };
    let mut link = MahimahiLink::new(trace, cfg).unwrap();
    LinkSchedule::from_link(&mut link, duration).unwrap()
}

#[test]
fn relay_only_call_over_a_real_lte_trace() {
    let duration = Duration::from_secs(40);
    let net = Network {
        a_to_b: lte("ATT-LTE-driving-2016.up", 7, duration),
        b_to_a: lte("ATT-LTE-driving-2016.down", 8, duration),
        signalling_delay: Duration::from_millis(80),
    };
    let relayed = relayed_call(net.clone(), 20);
    // The same trace without the relay: the relay must not make it worse
    // (it adds a lossless 20 ms hop; how good the trace itself is depends
    // on the stretch of the drive).
    let cfg = CallConfig::default;
    let mut sim = Sim::new(Instant::now(), cfg(), cfg(), net).unwrap();
    let at = speech_until_secure(&mut sim);
    sim.run_for(Duration::from_secs(20));
    let direct = hearing(&sim, at);
    for (r, d) in relayed.iter().zip(&direct) {
        assert!(r.windows >= 20, "{r:?}");
        assert!(
            r.median_envelope_correlation >= d.median_envelope_correlation - 0.1,
            "relayed {r:?}\ndirect {d:?}"
        );
    }
}

/// A call config of its own (its own ZID) whose jitter buffer has `jitter`.
fn with_jitter(jitter: &JitterConfig) -> CallConfig {
    let mut c = CallConfig::default();
    c.audio.jitter = jitter.clone();
    c
}

/// A lowest target delay set for the call (like WebRTC's
/// `jitterBufferTarget`) holds B's playout up to it on a steady link,
/// where the buffer would otherwise play at the link's pace.
#[test]
fn a_lowest_target_set_for_the_call_holds_the_playout_delay_up() {
    let run = |min_target_ms: f64| {
        let jitter = JitterConfig {
            min_target_ms,
            ..JitterConfig::default()
        };
        let mut sim = connected(with_jitter(&jitter), with_jitter(&jitter));
        sim.set_audio(Side::A, tone(6));
        sim.run_for(Duration::from_secs(5));
        let s = sim.peer(Side::B).call.stats().inbound.jitter_buffer;
        let target = s.jitter_buffer_target_delay * 1000.0 / s.jitter_buffer_emitted_count as f64;
        println!(
            "lowest target {min_target_ms} ms: mean target {target:.1} ms, delay {:.1} ms",
            s.mean_delay_ms()
        );
        (target, s.mean_delay_ms())
    };
    let (default, held) = (run(0.0), run(120.0));
    assert!(default.0 < 60.0 && default.1 < 60.0, "{default:?}");
    assert!(held.0 >= 120.0 && held.1 >= 100.0, "{held:?}");
}

/// The jitter buffer's settings reach the call. Over the ATT LTE uplink's
/// 4.7 s outage, whose backlog the link delivers in pieces, B's buffer
/// with the outage hold (`JitterConfig::outage_hold_ms`) waits for the
/// whole backlog and drops it, so that the call is back to live sooner;
/// without it the buffer plays the first pieces late and drops only what
/// is 3 s over target.
#[test]
fn an_outage_hold_set_for_the_call_drops_the_backlog_and_plays_sooner() {
    let run = |outage_hold_ms: f64| {
        let jitter = JitterConfig {
            outage_hold_ms,
            ..JitterConfig::default()
        };
        let net = Network {
            a_to_b: lte("ATT-LTE-driving-2016.up", 18, Duration::from_secs(30)),
            ..net()
        };
        let (a, b) = (with_jitter(&jitter), with_jitter(&jitter));
        let mut sim = Sim::new(Instant::now(), a, b, net).unwrap();
        speech_until_secure(&mut sim);
        sim.run_for(Duration::from_secs(12));
        let heard = sim.peer(Side::B).call.stats().inbound.jitter_buffer;
        println!(
            "hold {outage_hold_ms} ms: {} discarded, mean delay {:.1} ms",
            heard.packets_discarded,
            heard.mean_delay_ms()
        );
        heard
    };
    let (off, on) = (run(0.0), run(1_000.0));
    assert!(off.packets_discarded > 0, "{off:?}");
    assert!(on.packets_discarded > off.packets_discarded, "{on:?}");
    assert!(on.mean_delay_ms() < off.mean_delay_ms());
}

/// Sound cards on their own clocks, 300 ppm off the system's (A's fast,
/// B's slow; callbacks of 1 024 and 256 samples), over three minutes of
/// speech each way: the cards' queues neither run dry nor fill up, and
/// each side's jitter buffer takes up the difference between the other
/// card's microphone and its own speaker (600 ppm: 108 ms in three
/// minutes) instead of letting its delay grow or run dry.
#[test]
fn sound_cards_off_the_system_clock_neither_starve_nor_fill_their_queues() {
    let cfg = CallConfig::default;
    let mut sim = Sim::new(Instant::now(), cfg(), cfg(), net()).unwrap();
    let cards = [(Side::A, -300.0, 1_024), (Side::B, 300.0, 256)];
    for (side, slow_ppm, period) in cards {
        sim.set_device(side, DeviceClock { slow_ppm, period })
            .unwrap();
    }
    for bad in [(f64::NAN, 480), (-1e6, 480), (0.0, 0)] {
        let clock = DeviceClock {
            slow_ppm: bad.0,
            period: bad.1,
        };
        assert!(sim.set_device(Side::A, clock).is_err(), "{bad:?}");
    }
    let at = speech_until_secure(&mut sim);
    let buffers =
        |sim: &Sim| [Side::A, Side::B].map(|s| sim.peer(s).call.stats().inbound.jitter_buffer);
    let start = buffers(&sim);
    sim.run_for(Duration::from_secs(30));
    let first = buffers(&sim);
    sim.run_for(Duration::from_secs(120));
    let last = buffers(&sim);
    sim.run_for(Duration::from_secs(30));
    let end = buffers(&sim);
    // Mean buffering delay between two snapshots, ms.
    let delay = |a: &JitterStats, b: &JitterStats| {
        (b.jitter_buffer_delay - a.jitter_buffer_delay)
            / (b.jitter_buffer_emitted_count - a.jitter_buffer_emitted_count) as f64
            * 1000.0
    };
    for (i, (side, _, period)) in cards.into_iter().enumerate() {
        let card = sim.peer(side).audio.device_stats().unwrap();
        let (early, late) = (delay(&start[i], &first[i]), delay(&last[i], &end[i]));
        println!(
            "{side:?}: {card:?}\n  {:?}\n  buffering {early:.1} ms in the first 30 s, {late:.1} ms in the last",
            end[i]
        );
        assert_eq!(card.underruns, 0, "{side:?}");
        assert_eq!((card.playout_overflows, card.capture_overflows), (0, 0));
        // One callback's worth and three frames: the pacer's slack.
        assert!(card.most_queued <= period + 3 * 480, "{side:?}");
        // The 108 ms neither piled up in the buffer nor drained it...
        assert!((late - early).abs() <= 10.0, "{side:?}: {early} -> {late}");
        // ...nor went into waits inside speech.
        assert!(end[i].concealment_events <= 3, "{side:?}");
    }
    // B's speech has no DTX pauses (its clip has a noise floor), so A,
    // whose speaker runs ahead of B's microphone, lengthened quiet
    // stretches by the 108 ms. (What B had in excess could also go into
    // A's DTX pauses, which are silence the buffer does not count.)
    let took_up = (end[0].inserted_samples_for_deceleration as f64
        - end[0].removed_samples_for_acceleration as f64)
        / 48.0;
    assert!((80.0..140.0).contains(&took_up), "{took_up}");
    for q in hearing(&sim, at) {
        assert!(
            q.windows >= 100 && q.median_envelope_correlation > 0.8,
            "{q:?}"
        );
    }
}

/// Packets `side` has received.
fn received(sim: &Sim, side: Side) -> u64 {
    sim.peer(side).call.stats().inbound.packets_received
}

/// Five seconds into a Secure call, `side`'s host changes address (Wi-Fi
/// to cellular). Checks that its ICE session follows: media flows both
/// ways again on a path from the new address (relayed if `relayed`), and
/// for ten more seconds; the call does not end. Before, a session could
/// not change sockets, and the call ended in `MediaTimeout`.
fn follows_a_move(mut sim: Sim, side: Side, relayed: bool) {
    sim.set_audio(Side::A, tone(2));
    sim.set_audio(Side::B, tone(2));
    sim.connect(Duration::from_secs(2), Duration::from_secs(10))
        .unwrap();
    sim.run_for(Duration::from_secs(5));
    let new_addr = "10.0.0.9:40001".parse().unwrap();
    sim.move_to(side, new_addr).unwrap();
    let moved = sim.elapsed();
    let before = (received(&sim, Side::A), received(&sim, Side::B));
    let flowing = |s: &Sim| {
        s.peer(side)
            .path()
            .is_some_and(|p| p.socket == new_addr && p.relayed == relayed)
            && received(s, Side::A) > before.0 + 10
            && received(s, Side::B) > before.1 + 10
    };
    let back = sim.run_until(moved + Duration::from_secs(10), flowing);
    println!(
        "{side:?} moved at {moved:?}; media back by {:?}",
        sim.elapsed()
    );
    let events: Vec<&Event> = (sim.peer(side).events())
        .filter(|e| !matches!(e, Event::Stats(_)))
        .collect();
    assert!(back, "{side:?}: {events:?}");
    let after = (received(&sim, Side::A), received(&sim, Side::B));
    sim.run_for(Duration::from_secs(10));
    assert_eq!((ended(&sim, Side::A), ended(&sim, Side::B)), (None, None));
    // 20 ms packets: 500 in 10 s.
    assert!(received(&sim, Side::A) - after.0 > 450, "{side:?}");
    assert!(received(&sim, Side::B) - after.1 > 450, "{side:?}");
}

#[test]
fn a_direct_call_follows_a_side_whose_address_changes() {
    for side in [Side::A, Side::B] {
        let cfg = CallConfig::default;
        let sim = Sim::new(Instant::now(), cfg(), cfg(), net()).unwrap();
        follows_a_move(sim, side, false);
    }
}

/// The moved side's allocation is left behind (its deletion cannot get
/// out from the address that is gone); a new one is made from the new
/// address.
#[test]
fn a_relay_only_call_follows_a_side_whose_address_changes() {
    for side in [Side::A, Side::B] {
        let (sim, counts) = relay_only_sim(net());
        follows_a_move(sim, side, true);
        assert_eq!(counts.borrow().allocations, 3, "{side:?}");
    }
}
