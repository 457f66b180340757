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
    // call raises CacheMismatch on both sides and clears "verified".
    zrtp_support::corrupt_cache_row(&pa, &bob_zid);
    let loaded = ZidCache::load(&pa).unwrap();
    assert!(loaded.is_corrupt(&bob_zid) && loaded.get(&bob_zid).is_none());
    let o3 = call(&pa, &pb);
    let (a3, b3) = assert_sim_agree(&o3);
    assert!(a3.cache_mismatch && b3.cache_mismatch);
    assert!(mismatch(&o3.a_events) && mismatch(&o3.b_events));
    assert!(!a3.sas_verified && !b3.sas_verified);
    assert!(
        !ZidCache::load(&pb)
            .unwrap()
            .get(&b3.peer_zid)
            .unwrap()
            .verified
    );
    assert!(!ZidCache::load(&pa).unwrap().get(&bob_zid).unwrap().verified);
    let _ = std::fs::remove_dir_all(&dir);
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
