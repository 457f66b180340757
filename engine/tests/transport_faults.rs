//! Faults mid-call: the selected path dies (media moves to another pair
//! after consent failure, through an ICE restart), the TURN server restarts
//! (the call recovers by ICE restart), and the peer's NAT rebinds its port.
//!
//! Paths are in-process UDP proxies (no network namespaces needed); consent
//! timing is shortened through `IceConfig`, and the only bounds are generous
//! protocol deadlines. The failover times are printed, not asserted.

mod transport_support;

use sotto_engine::driver::TransportHandle;
use sotto_engine::ice::IceConfig;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use transport_support::{
    Auth, Call, Coturn, Proxy, assert_failover_by_restart, count_tag, signalling, via_proxies,
};

fn fast(controlling: bool) -> IceConfig {
    IceConfig {
        controlling,
        consent_interval: Duration::from_millis(300),
        consent_timeout: Duration::from_millis(1500),
        ..IceConfig::default()
    }
}

fn v4() -> [SocketAddr; 1] {
    ["127.0.0.1:0".parse().unwrap()]
}

#[tokio::test]
async fn selected_path_dies_and_media_moves_to_another_pair() {
    let (sa, from_a, sb, from_b) = signalling();
    let a = TransportHandle::bind(&v4(), fast(true), Box::new(sa))
        .await
        .unwrap();
    let b = TransportHandle::bind(&v4(), fast(false), Box::new(sb))
        .await
        .unwrap();
    let b_addr = b.local_addrs()[0];
    let p1 = Proxy::start(b_addr).await;
    let p2 = Proxy::start(b_addr).await;
    let mut call = Call::new(a, from_a, b, from_b);
    call.rewrite_b = Some(via_proxies(vec![p1.front, p2.front]));
    call.a_candidates_to_b = false;
    assert!(call.connect(Duration::from_secs(20)).await);
    assert!(call.exchange(1, 20, 18).await, "no media before the fault");
    let first = call.a_selected.unwrap();
    let (dead, other) = if first.remote == p1.front {
        (&p1, &p2)
    } else {
        (&p2, &p1)
    };
    assert_eq!(first.remote, dead.front);
    dead.cut();
    let cut = Instant::now();
    // Keep talking through the fault, as a call would.
    let moved = call
        .run_until(Duration::from_secs(30), |c| {
            c.a_selected.is_some_and(|p| p.remote == other.front)
        })
        .await;
    assert!(moved, "no failover: {:?}", call.a_events);
    assert!(
        call.exchange(2, 50, 45).await,
        "media did not resume on the new pair"
    );
    let f = assert_failover_by_restart(&call, cut).await;
    println!(
        "path cut -> consent loss and ICE restart after {:?}; restart -> new pair after {:?}",
        f.to_restart, f.restart_to_selected
    );
}

#[tokio::test]
async fn nat_rebinding_of_the_peer_is_recovered() {
    let (sa, from_a, sb, from_b) = signalling();
    let a = TransportHandle::bind(&v4(), fast(true), Box::new(sa))
        .await
        .unwrap();
    let b = TransportHandle::bind(&v4(), fast(false), Box::new(sb))
        .await
        .unwrap();
    let p = Proxy::start(b.local_addrs()[0]).await;
    let mut call = Call::new(a, from_a, b, from_b);
    call.rewrite_b = Some(via_proxies(vec![p.front]));
    call.a_candidates_to_b = false;
    assert!(call.connect(Duration::from_secs(20)).await);
    assert!(call.exchange(1, 20, 18).await);
    let before = call.b_selected.unwrap();
    p.rebind();
    // B sees A's traffic from a new port: it must move there and accept media again.
    let moved = call
        .run_until(Duration::from_secs(30), |c| {
            c.b_selected.is_some_and(|s| s.remote != before.remote)
        })
        .await;
    assert!(
        moved,
        "B never moved off the stale mapping: {:?}",
        call.b_events
    );
    let (a0, b0) = (count_tag(&call.a_media, 2), count_tag(&call.b_media, 2));
    assert!(
        call.exchange(2, 50, 45).await,
        "media did not resume after rebinding ({a0}, {b0})"
    );
}

fn relay_cfg(controlling: bool, turn: &Coturn) -> IceConfig {
    IceConfig {
        relay_only: true,
        turn_servers: vec![turn.server("u", "p")],
        ..fast(controlling)
    }
}

#[tokio::test]
async fn turn_server_restart_is_recovered_by_ice_restart() {
    let mut turn = Coturn::start(Auth::LongTerm {
        user: "u",
        pass: "p",
    });
    let (sa, from_a, sb, from_b) = signalling();
    let a = TransportHandle::bind(&v4(), relay_cfg(true, &turn), Box::new(sa))
        .await
        .unwrap();
    let b = TransportHandle::bind(&v4(), relay_cfg(false, &turn), Box::new(sb))
        .await
        .unwrap();
    let mut call = Call::new(a, from_a, b, from_b);
    assert!(call.connect(Duration::from_secs(30)).await);
    assert!(call.exchange(1, 20, 18).await);
    let before = call.a_selected.unwrap();
    turn.restart();
    let cut = Instant::now();
    let recovered = call
        .run_until(Duration::from_secs(40), |c| {
            c.a_selected.is_some_and(|p| p != before)
        })
        .await;
    assert!(
        recovered,
        "no recovery after the relay restarted: {:?}",
        call.a_events
    );
    assert!(call.a_selected.unwrap().relayed);
    assert!(
        call.exchange(2, 50, 45).await,
        "media did not resume through the restarted relay"
    );
    let f = assert_failover_by_restart(&call, cut).await;
    println!(
        "relay restarted -> consent loss and ICE restart after {:?}; restart -> new relayed pair after {:?}",
        f.to_restart, f.restart_to_selected
    );
}
