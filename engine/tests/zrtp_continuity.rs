//! Key continuity (RFC 6189 §4.3, §4.6.1, §4.9): retained secrets in the
//! ZID cache file, cache mismatch, corrupted entries, the SAS-verified
//! flag, cache expiration.

mod zrtp_support;

use sotto_engine::zrtp::{Config, Endpoint, Event, Role, ZidCache};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};
use zrtp_support::{assert_sim_agree, perfect, simulate};

fn call(a_path: &Path, b_path: &Path) -> zrtp_support::SimOutcome {
    let a = Endpoint::new(
        Config::new(Role::Initiator),
        ZidCache::load(a_path).unwrap(),
    );
    let b = Endpoint::new(
        Config::new(Role::Responder),
        ZidCache::load(b_path).unwrap(),
    );
    let o = simulate(a, b, &mut perfect());
    o.a.cache().save(a_path).unwrap();
    o.b.cache().save(b_path).unwrap();
    o
}

fn mismatch(events: &[Event]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::CacheMismatch { .. }))
}

#[test]
fn second_call_uses_retained_secrets_then_corruption_is_caught() {
    let dir = std::env::temp_dir().join(format!("sotto-zrtp-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (pa, pb) = (dir.join("alice.zrtpcache"), dir.join("bob.zrtpcache"));
    let _ = std::fs::remove_file(&pa);
    let _ = std::fs::remove_file(&pb);

    // First call: no history, no mismatch.
    let o1 = call(&pa, &pb);
    let (a1, _) = assert_sim_agree(&o1);
    assert!(!a1.cache_mismatch && !mismatch(&o1.a_events) && !mismatch(&o1.b_events));
    let bob_zid = a1.peer_zid;
    let rs1_after_first = ZidCache::load(&pa).unwrap().get(&bob_zid).unwrap().rs1;
    assert!(rs1_after_first.is_some());

    // The users compare the SAS and mark it verified on both sides.
    for (p, peer) in [
        (&pa, bob_zid),
        (&pb, o1.b_secure.as_ref().unwrap().peer_zid),
    ] {
        let mut c = ZidCache::load(p).unwrap();
        assert!(c.set_verified(&peer, true));
        c.save(p).unwrap();
    }

    // Second call: continuity, verified flag carried through Confirm.
    let o2 = call(&pa, &pb);
    let (a2, b2) = assert_sim_agree(&o2);
    assert!(!a2.cache_mismatch && !b2.cache_mismatch);
    assert!(a2.sas_verified && b2.sas_verified);
    let entry = ZidCache::load(&pa).unwrap().get(&bob_zid).cloned().unwrap();
    assert_eq!(entry.rs2, rs1_after_first, "rs1 rotated into rs2");
    assert_ne!(entry.rs1, rs1_after_first);

    // Corrupt Alice's entry for Bob on disk: it is detected and the next
    // call raises CacheMismatch on both sides, and shows no verified SAS.
    let alice_zid = o2.b_secure.as_ref().unwrap().peer_zid;
    let bob_before = ZidCache::load(&pb).unwrap().get(&alice_zid).cloned();
    zrtp_support::corrupt_cache_row(&pa, &bob_zid);
    let loaded = ZidCache::load(&pa).unwrap();
    assert!(loaded.is_corrupt(&bob_zid) && loaded.get(&bob_zid).is_none());
    let o3 = call(&pa, &pb);
    let (a3, b3) = assert_sim_agree(&o3);
    assert!(a3.cache_mismatch && b3.cache_mismatch);
    assert!(mismatch(&o3.a_events) && mismatch(&o3.b_events));
    assert!(!a3.sas_verified && !b3.sas_verified);
    // Nobody verified this call's SAS, so neither side took its new secret
    // (§4.6.1.1): Bob's entry is as it was, Alice's still corrupt.
    assert_eq!(
        ZidCache::load(&pb).unwrap().get(&alice_zid).cloned(),
        bob_before
    );
    assert!(o3.a.cache().is_corrupt(&bob_zid) && o3.a.cache().get(&bob_zid).is_none());
    // Saved, the damaged row is still flagged, not forgotten: the next call
    // warns again instead of meeting Bob as someone new.
    let loaded = ZidCache::load(&pa).unwrap();
    assert!(loaded.is_corrupt(&bob_zid) && loaded.get(&bob_zid).is_none());
    let mut o4 = call(&pa, &pb);
    let (a4, b4) = assert_sim_agree(&o4);
    assert!(a4.cache_mismatch && b4.cache_mismatch);
    assert!(mismatch(&o4.a_events) && mismatch(&o4.b_events));
    // This time both users compare the SAS: continuity again after that.
    assert!(o4.a.set_sas_verified(true) && o4.b.set_sas_verified(true));
    o4.a.cache().save(&pa).unwrap();
    o4.b.cache().save(&pb).unwrap();
    assert!(!ZidCache::load(&pa).unwrap().is_corrupt(&bob_zid));
    let o5 = call(&pa, &pb);
    let (a5, b5) = assert_sim_agree(&o5);
    assert!(!a5.cache_mismatch && !b5.cache_mismatch);
    assert!(a5.sas_verified && b5.sas_verified);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A peer that claims a ZID we hold secrets for, but without them: Mallory
/// reusing Bob's ZID (as the reviewer's scenario has it), or Bob after
/// losing his cache. Returns Alice's cache after a first call with the
/// real Bob, Bob's (with Alice's secrets), and an empty cache with Bob's
/// ZID.
fn alice_bob_and_impostor() -> (ZidCache, ZidCache, ZidCache) {
    let bob_empty = ZidCache::new();
    let o = simulate(
        Endpoint::new(Config::new(Role::Initiator), ZidCache::new()),
        Endpoint::new(Config::new(Role::Responder), bob_empty.clone()),
        &mut perfect(),
    );
    let (a, _) = assert_sim_agree(&o);
    assert!(!a.cache_mismatch);
    (o.a.cache().clone(), o.b.cache().clone(), bob_empty)
}

/// A call from Alice (`alice`) to whoever holds `peer`.
fn call_with(alice: ZidCache, peer: ZidCache) -> zrtp_support::SimOutcome {
    simulate(
        Endpoint::new(Config::new(Role::Initiator), alice),
        Endpoint::new(Config::new(Role::Responder), peer),
        &mut perfect(),
    )
}

/// RFC 6189 §4.6.1.1 (and bzrtp, which defers its cache update "until Sas
/// confirmation by user"): after a cache mismatch the new retained secret
/// is kept only once the user verifies the SAS. Ignored or rejected, it is
/// thrown away and the cache stays as it was, so the impostor is flagged
/// again on the next call and the real Bob still has continuity.
#[test]
fn an_unverified_cache_mismatch_does_not_replace_the_retained_secret() {
    for verdict in [None, Some(false)] {
        let (alice, bob, mallory) = alice_bob_and_impostor();
        let bob_zid = bob.self_zid();
        let before = alice.get(&bob_zid).cloned().unwrap();

        // Mallory, with Bob's ZID: Alice is warned.
        let mut o = call_with(alice, mallory);
        let (a, _) = assert_sim_agree(&o);
        assert!(a.cache_mismatch && !a.sas_verified && mismatch(&o.a_events));
        if let Some(v) = verdict {
            // The user rejects the SAS (Call::confirm_sas(false)).
            assert!(o.a.set_sas_verified(v));
            assert!(!o.a.set_sas_verified(true), "a rejected secret is gone");
        }
        let alice = o.a.cache().clone();
        assert_eq!(alice.get(&bob_zid), Some(&before), "{verdict:?}");

        // Mallory again: warned again.
        let o = call_with(alice.clone(), o.b.cache().clone());
        let (a, _) = assert_sim_agree(&o);
        assert!(
            a.cache_mismatch && mismatch(&o.a_events),
            "{verdict:?}: the second call with the impostor raised no mismatch"
        );

        // The real Bob: continuity, no warning.
        let o = call_with(alice, bob.clone());
        let (a, b) = assert_sim_agree(&o);
        assert!(!a.cache_mismatch && !b.cache_mismatch, "{verdict:?}");
        assert!(!mismatch(&o.a_events) && !mismatch(&o.b_events));
    }
}

/// The other side of §4.6.1.1: once the user verifies the SAS after a
/// mismatch (Bob really did lose his cache), the new secret is kept,
/// verified, and the next call has continuity.
#[test]
fn a_verified_cache_mismatch_keeps_the_new_secret() {
    let (alice, _, bob_fresh) = alice_bob_and_impostor();
    let bob_zid = bob_fresh.self_zid();
    let old_rs1 = alice.get(&bob_zid).unwrap().rs1;
    let mut o = call_with(alice, bob_fresh);
    let (a, _) = assert_sim_agree(&o);
    assert!(a.cache_mismatch && mismatch(&o.a_events));
    assert_eq!(o.a.cache().get(&bob_zid).unwrap().rs1, old_rs1, "held back");
    assert!(o.a.set_sas_verified(true) && o.b.set_sas_verified(true));
    let e = o.a.cache().get(&bob_zid).cloned().unwrap();
    assert!(e.verified && e.rs1.is_some() && e.rs1 != old_rs1);
    assert_eq!(e.rs2, old_rs1, "the old rs1 rotated into rs2");
    // Marking it unverified again works as after any call.
    assert!(o.a.set_sas_verified(false));
    assert!(!o.a.cache().get(&bob_zid).unwrap().verified);
    assert!(o.a.set_sas_verified(true));

    let o = call_with(o.a.cache().clone(), o.b.cache().clone());
    let (a, b) = assert_sim_agree(&o);
    assert!(!a.cache_mismatch && !b.cache_mismatch);
    assert!(!mismatch(&o.a_events) && !mismatch(&o.b_events));
    assert!(a.sas_verified && b.sas_verified);
}

/// A mismatch in a call that keeps no new secret (§5.7: interval 0) has
/// nothing to store once verified, and must not mark the old secret, which
/// the peer did not have, verified instead.
#[test]
fn a_verified_mismatch_that_caches_nothing_marks_nothing_verified() {
    let (alice, _, mallory) = alice_bob_and_impostor();
    let bob_zid = mallory.self_zid();
    let before = alice.get(&bob_zid).cloned().unwrap();
    assert!(!before.verified);
    let no_caching = Config {
        cache_expiration: 0,
        ..Config::new(Role::Initiator)
    };
    let mut o = simulate(
        Endpoint::new(no_caching, alice),
        Endpoint::new(Config::new(Role::Responder), mallory),
        &mut perfect(),
    );
    let (a, _) = assert_sim_agree(&o);
    assert!(a.cache_mismatch && mismatch(&o.a_events));
    assert!(!o.a.set_sas_verified(true));
    assert_eq!(o.a.cache().get(&bob_zid), Some(&before));
}

/// A multistream stream keyed from a session with an unverified cache
/// mismatch is no better authenticated than that session: it reports the
/// mismatch and no verified SAS even if the cache (left as it was) and the
/// peer's Confirm say "verified", and it cannot mark the SAS verified
/// itself (the held-back secret is the DH stream's).
#[test]
fn a_multistream_stream_inherits_an_unverified_cache_mismatch() {
    let (mut alice, _, mallory) = alice_bob_and_impostor();
    let bob_zid = mallory.self_zid();
    assert!(
        alice.set_verified(&bob_zid, true),
        "Alice verified the real Bob"
    );
    let mut o = call_with(alice, mallory);
    let (a, _) = assert_sim_agree(&o);
    assert!(a.cache_mismatch && !a.sas_verified);
    // Mallory claims a verified SAS in its Confirm.
    assert!(o.b.set_sas_verified(true));
    let before = o.a.cache().get(&bob_zid).cloned();
    let stream = |key, role, cache: &ZidCache| {
        let cfg = Config {
            multistream: Some(key),
            ..Config::new(role)
        };
        Endpoint::new(cfg, cache.clone())
    };
    let mut o2 = simulate(
        stream(o.a.session_key().unwrap(), Role::Initiator, o.a.cache()),
        stream(o.b.session_key().unwrap(), Role::Responder, o.b.cache()),
        &mut perfect(),
    );
    let (m, _) = assert_sim_agree(&o2);
    assert!(m.cache_mismatch && !m.sas_verified);
    assert!(!o2.a.set_sas_verified(true));
    assert_eq!(o2.a.cache().get(&bob_zid).cloned(), before);
    // Verified on the DH stream, the secret is kept; a stream keyed after
    // that is as good as the session.
    assert!(o.a.set_sas_verified(true));
    let o3 = simulate(
        stream(o.a.session_key().unwrap(), Role::Initiator, o.a.cache()),
        stream(o.b.session_key().unwrap(), Role::Responder, o.b.cache()),
        &mut perfect(),
    );
    let (m, _) = assert_sim_agree(&o3);
    assert!(!m.cache_mismatch && m.sas_verified);
}

#[test]
fn a_peer_that_lost_its_cache_is_a_mismatch() {
    let mut a_cache = ZidCache::new();
    let b_cache = ZidCache::new();
    let o1 = simulate(
        Endpoint::new(Config::new(Role::Initiator), a_cache.clone()),
        Endpoint::new(Config::new(Role::Responder), b_cache.clone()),
        &mut perfect(),
    );
    assert_sim_agree(&o1);
    a_cache = o1.a.cache().clone();
    // Bob restarts with the same ZID but an empty history.
    let b_fresh = b_cache.clone();
    let o2 = simulate(
        Endpoint::new(Config::new(Role::Initiator), a_cache),
        Endpoint::new(Config::new(Role::Responder), b_fresh),
        &mut perfect(),
    );
    let (a, b) = assert_sim_agree(&o2);
    assert!(a.cache_mismatch, "Alice held a secret Bob no longer has");
    assert!(!b.cache_mismatch, "Bob had no history to mismatch");
}

#[test]
fn a_zero_cache_expiration_keeps_no_new_retained_secret() {
    // §5.7: the smaller of the two cache expiration intervals applies and
    // 0 means the new rs1 must not be cached, on either side.
    for zero_side in [Role::Initiator, Role::Responder] {
        let cfg = |role: Role| Config {
            cache_expiration: if role == zero_side { 0 } else { u32::MAX },
            ..Config::new(role)
        };
        // An earlier call retained a secret on both sides.
        let o1 = simulate(
            Endpoint::new(Config::new(Role::Initiator), ZidCache::new()),
            Endpoint::new(Config::new(Role::Responder), ZidCache::new()),
            &mut perfect(),
        );
        let (a1, b1) = assert_sim_agree(&o1);
        let (bob, alice) = (a1.peer_zid, b1.peer_zid);
        let (a_before, b_before) = (
            o1.a.cache().get(&bob).cloned().unwrap(),
            o1.b.cache().get(&alice).cloned().unwrap(),
        );
        let o2 = simulate(
            Endpoint::new(cfg(Role::Initiator), o1.a.cache().clone()),
            Endpoint::new(cfg(Role::Responder), o1.b.cache().clone()),
            &mut perfect(),
        );
        let (a2, b2) = assert_sim_agree(&o2);
        assert!(!a2.cache_mismatch && !b2.cache_mismatch);
        assert_eq!(o2.a.cache().get(&bob), Some(&a_before), "{zero_side:?}");
        assert_eq!(o2.b.cache().get(&alice), Some(&b_before), "{zero_side:?}");
    }
}

/// A config for `role` whose wall clock reads `secs` after the Unix epoch
/// now, with `cache_expiration`.
fn dated(role: Role, secs: u64, cache_expiration: u32) -> Config {
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    Config {
        cache_expiration,
        wall_clock: (Instant::now(), wall),
        ..Config::new(role)
    }
}

/// §4.9: a retained secret is kept for the smaller of the two sides' cache
/// expiration intervals. A first call at `T` with Alice asking for
/// `interval` seconds, both users then verify the SAS; a second call
/// `later` seconds after `T`. Time only goes through the configs.
fn second_call_after(interval: u32, later: u64) -> zrtp_support::SimOutcome {
    const T: u64 = 1_700_000_000;
    let o1 = simulate(
        Endpoint::new(dated(Role::Initiator, T, interval), ZidCache::new()),
        Endpoint::new(dated(Role::Responder, T, u32::MAX), ZidCache::new()),
        &mut perfect(),
    );
    let (a1, b1) = assert_sim_agree(&o1);
    let (bob, alice) = (a1.peer_zid, b1.peer_zid);
    let (mut a_cache, mut b_cache) = (o1.a.cache().clone(), o1.b.cache().clone());
    assert!(a_cache.set_verified(&bob, true) && b_cache.set_verified(&alice, true));
    simulate(
        Endpoint::new(dated(Role::Initiator, T + later, u32::MAX), a_cache),
        Endpoint::new(dated(Role::Responder, T + later, u32::MAX), b_cache),
        &mut perfect(),
    )
}

#[test]
fn a_retained_secret_is_used_until_it_expires_and_then_is_absent() {
    // Within the interval: continuity, the verified flag carries through,
    // rs1 rotates into rs2.
    let o = second_call_after(3600, 2);
    let (a, b) = assert_sim_agree(&o);
    assert!(!a.cache_mismatch && !b.cache_mismatch);
    assert!(a.sas_verified && b.sas_verified);
    let e = o.a.cache().get(&a.peer_zid).unwrap();
    assert!(e.rs2.is_some() && e.verified);

    // A 1-second interval, 2 seconds later: on both sides (Bob asked for
    // no limit, the smaller applies) the secret counts as never cached.
    // No mismatch, but no continuity either: "verified" is not carried
    // over to keys nothing links to the verified ones, and the expired
    // secret is not kept as rs2.
    let o = second_call_after(1, 2);
    let (a, b) = assert_sim_agree(&o);
    assert!(!mismatch(&o.a_events) && !mismatch(&o.b_events));
    assert!(!a.cache_mismatch && !b.cache_mismatch);
    assert!(!a.sas_verified && !b.sas_verified);
    for (cache, peer) in [(o.a.cache(), a.peer_zid), (o.b.cache(), b.peer_zid)] {
        let e = cache.get(&peer).unwrap();
        assert!(e.rs1.is_some() && e.rs2.is_none() && !e.verified);
        assert_eq!(e.rs1_expires, None, "the second call set no limit");
    }
}

/// An expired secret is absent, not a mismatch: Alice still holds an
/// expired one, Bob has none any more.
#[test]
fn an_expired_secret_the_peer_no_longer_has_is_no_mismatch() {
    const T: u64 = 1_700_000_000;
    let o1 = simulate(
        Endpoint::new(dated(Role::Initiator, T, 1), ZidCache::new()),
        Endpoint::new(dated(Role::Responder, T, u32::MAX), ZidCache::new()),
        &mut perfect(),
    );
    let (_, b1) = assert_sim_agree(&o1);
    let mut b_cache = o1.b.cache().clone();
    b_cache.remove(&b1.peer_zid);
    let o2 = simulate(
        Endpoint::new(
            dated(Role::Initiator, T + 2, u32::MAX),
            o1.a.cache().clone(),
        ),
        Endpoint::new(dated(Role::Responder, T + 2, u32::MAX), b_cache),
        &mut perfect(),
    );
    let (a, b) = assert_sim_agree(&o2);
    assert!(!a.cache_mismatch && !b.cache_mismatch);
    assert!(!mismatch(&o2.a_events) && !mismatch(&o2.b_events));
}
