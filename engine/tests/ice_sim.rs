//! ICE over the simulator: set-up time, and recovery after an outage that
//! outlasts consent.

use sotto_engine::call::{CallConfig, EndReason, Event};
use sotto_engine::sim::{LinkSchedule, Network, Side, Sim};
use std::time::{Duration, Instant};

fn tone(seconds: usize) -> Vec<i16> {
    (0..48_000 * seconds)
        .map(|i| ((i as f64 * 0.03).sin() * 6000.0) as i16)
        .collect()
}

fn ended(sim: &Sim, side: Side) -> Option<EndReason> {
    sim.peer(side).events().find_map(|e| match e {
        Event::Ended { reason } => Some(*reason),
        _ => None,
    })
}

/// 120 s of a link with a 30 ms delay that carries nothing sent in `out`.
fn outage(out: std::ops::Range<Duration>) -> Network {
    Network::symmetric(LinkSchedule::with_outage(
        Duration::from_millis(30),
        out,
        Duration::from_secs(120),
    ))
}

/// Places and answers at once; returns the sim and the virtual time from
/// the answer to both sides Secure.
fn secure(net: Network) -> (Sim, Duration) {
    let mut sim = Sim::new(
        Instant::now(),
        CallConfig::default(),
        CallConfig::default(),
        net,
    )
    .unwrap();
    sim.set_audio(Side::A, tone(2));
    sim.set_audio(Side::B, tone(2));
    let answered = sim
        .connect(Duration::from_secs(2), Duration::from_secs(10))
        .unwrap();
    let took = sim.elapsed() - answered;
    (sim, took)
}

#[test]
fn setup_time() {
    let (_, took) = secure(outage(Duration::MAX..Duration::MAX));
    println!("answer to both secure (virtual): {took:?}");
}

/// The network is out from 20 s to `end_ms`, then clean. Consent was last
/// refreshed about 15 s in, so it is lost (and the caller restarts) about
/// 45 s in; the media timeout (30 s after the last packet) is about 50 s
/// in. Returns how each side ended, if it did, and the packets B received
/// after the outage.
fn outage_until(end_ms: u64) -> (Option<EndReason>, Option<EndReason>, u64) {
    let (mut sim, _) = secure(outage(
        Duration::from_secs(20)..Duration::from_millis(end_ms),
    ));
    sim.run_until(Duration::from_millis(end_ms), |_| false);
    let received = |s: &Sim| s.peer(Side::B).call.stats().inbound.packets_received;
    let before = received(&sim);
    sim.run_until(Duration::from_secs(90), |_| false);
    (
        ended(&sim, Side::A),
        ended(&sim, Side::B),
        received(&sim) - before,
    )
}

/// The restart's checks must outlast a network that comes back a few
/// seconds after consent was lost, up to the media timeout.
#[test]
fn a_network_back_before_the_media_timeout_keeps_the_call() {
    let mut bad = vec![];
    for end_ms in [45_300u64, 46_000, 47_000, 48_000, 49_000] {
        let r = outage_until(end_ms);
        println!("outage 20 s .. {end_ms} ms: {r:?}");
        if r.0.is_some() || r.1.is_some() || r.2 < 1000 {
            bad.push((end_ms, r));
        }
    }
    assert!(
        bad.is_empty(),
        "(outage end ms, (A ended, B ended, B received)): {bad:?}"
    );
}
