//! Two `sotto` processes call each other on loopback through a real
//! signald and a real sotto-relay (both in this test process): register,
//! listen, call relay-only with WAV in and out, Secure on both with the
//! same SAS, the callee hears what the caller sent, both exit 0 after the
//! hang-up and their media ports can be bound again.

mod common;

use common::{A_SPEECH, World, field, speech};
use sotto_engine::call::wav::load_48k_mono;
use sotto_engine::sim::audio::compare;
use sotto_engine::zrtp::ZidCache;
use std::net::SocketAddr;
use std::time::Duration;

fn sas(l: &[String]) -> String {
    field(l, "secure sas=")
        .map(|s| s.split_whitespace().next().unwrap().to_owned())
        .unwrap_or_else(|| panic!("never secure: {l:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sotto_processes_call_through_signald_and_relay() {
    let w = World::start().await;
    let ((ast, alines), (bst, blines)) = w.call(4).await;
    assert!(ast.success(), "alice: {ast:?} {alines:?}");
    assert!(bst.success(), "bob: {bst:?} {blines:?}");
    assert_eq!(sas(&alines), sas(&blines));
    assert_eq!(field(&alines, "path "), Some("Relay"));
    assert_eq!(field(&blines, "path "), Some("Relay"));
    assert_eq!(field(&alines, "ended "), Some("LocalHangup"));
    assert_eq!(field(&blines, "ended "), Some("RemoteHangup"));

    // Bob heard Alice's speech. Each recording starts when its side went
    // Secure, so 500 ms of leading silence turns any lead into a lag.
    let sent = load_48k_mono(speech(A_SPEECH)).unwrap();
    let mut heard = vec![0i16; 24_000];
    heard.extend(load_48k_mono(w.dir.path().join("bob_heard.wav")).unwrap());
    let sim = compare(&sent, &heard, Duration::from_millis(1500));
    println!("alice -> bob through two processes: {sim:?}");
    // Measured on loopback: envelope about 0.9; unrelated audio about 0.3.
    assert!(sim.windows >= 5, "{sim:?}");
    assert!(sim.median_envelope_correlation > 0.6, "{sim:?}");

    // Each side remembers the sealed messages it was handed (the offer,
    // the answer, the hang-up), so that signald cannot ring it again with
    // them after a restart.
    for side in ["alice", "bob"] {
        let journal = std::fs::read_to_string(w.side(side).join("replay.journal"))
            .unwrap_or_else(|e| panic!("{side}'s replay.journal: {e}"));
        assert!(
            journal.lines().any(|l| l.starts_with("a ")),
            "{side}: {journal:?}"
        );
    }

    // No socket left behind: every media port binds again.
    for l in alines.iter().chain(&blines) {
        if let Some(a) = l.strip_prefix("media socket ") {
            std::net::UdpSocket::bind(a.parse::<SocketAddr>().unwrap())
                .expect("media port still held after exit");
        }
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_retained_secret_is_a_cache_mismatch_warning() {
    let w = World::start().await;
    // First call: both caches learn the retained secret; no warning.
    let ((ast, alines), (bst, _)) = w.call(1).await;
    assert!(ast.success() && bst.success());
    assert!(
        !alines.iter().any(|l| l.contains("cache mismatch")),
        "{alines:?}"
    );
    let a_cache = ZidCache::load(&w.side("alice").join("zid.cache")).unwrap();
    let b_path = w.side("bob").join("zid.cache");
    let mut b_cache = ZidCache::load(&b_path).unwrap();
    assert_eq!((a_cache.len(), b_cache.len()), (1, 1), "caches persisted");
    // Bob loses his secret for Alice (a reinstalled phone, or someone
    // else presenting Bob's ZID): Alice expected one and must say so.
    b_cache.remove(&a_cache.self_zid());
    b_cache.save(&b_path).unwrap();
    let ((_, alines), _) = w.call(1).await;
    assert!(
        alines
            .iter()
            .any(|l| l.starts_with("warning: cache mismatch")),
        "{alines:?}"
    );
    assert!(
        field(&alines, "secure sas=")
            .unwrap()
            .contains("verified=false")
    );
    w.stop().await;
}
